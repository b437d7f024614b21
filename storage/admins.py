"""Dashboard admins: accounts with argon2id password hashes, and server-side sessions.

A session's token is random and only its SHA-256 is stored, so a copy of the database opens no session.
Each session carries its own CSRF token. Sessions end after a fixed time (8 hours by default) or at logout.
Failed logins are counted per client address in the database, so the limit holds however many workers
serve the dashboard. The tables are created by migrations 0005 and 0009; they are declared here, apart
from the chat's models.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import utcnow

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
SESSION_TTL = timedelta(hours=8)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")

BigId = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()
admins = Table(
    "admins",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64), nullable=False),
    Column("admin_id", BigId, ForeignKey("admins.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_admin_sessions_expires_at", "expires_at"),
    Index("ix_admin_sessions_admin_id", "admin_id"),
)
login_failures = Table(  # migration 0009
    "login_failures",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("client", String(64), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Index("ix_login_failures_client_failed_at", "client", "failed_at"),
)


class AdminError(ValueError):
    """An admin account that cannot be created; the message says why."""


@dataclass(frozen=True)
class Admin:
    id: int
    username: str
    created_at: datetime


@dataclass(frozen=True)
class AdminSession:
    """A signed-in admin. `token` is the cookie value (never stored); `csrf` guards their forms."""

    token: str
    csrf: str
    admin_id: int
    username: str
    created_at: datetime
    expires_at: datetime


def normalise_username(username: str) -> str:
    """Usernames compare in NFKC lower case, without surrounding blanks."""
    return unicodedata.normalize("NFKC", username).strip().lower()


def token_hash(token: str) -> str:
    """What is stored of a session token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class AdminStore:
    """Admin accounts and sessions in the database. `clock` gives the current UTC time (tests move it)."""

    def __init__(
        self,
        db: Database,
        session_ttl: timedelta = SESSION_TTL,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.session_ttl = session_ttl
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self.clock = clock
        self._dummy_hash: str | None = None

    # --- accounts -------------------------------------------------------------------------------------------

    async def create_admin(self, username: str, password: str) -> Admin:
        """A new admin; refuses bad or taken usernames and passwords shorter than 12 characters."""
        name = normalise_username(username)
        if not USERNAME.match(name):
            raise AdminError("the username must be 1 to 64 letters, digits, '.', '_', '@' or '-'")
        if len(password) < MIN_PASSWORD:
            raise AdminError(f"the password must have at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise AdminError(f"the password must have at most {MAX_PASSWORD} characters")
        if await self._find(name) is not None:
            raise AdminError(f"the username {name!r} is taken")
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        created = self.clock()
        try:
            async with self.db.engine.begin() as conn:
                result = await conn.execute(
                    insert(admins).values(username=name, password_hash=hashed, created_at=created)
                )
        except IntegrityError as exc:  # created meanwhile by someone else
            raise AdminError(f"the username {name!r} is taken") from exc
        return Admin(result.inserted_primary_key[0], name, created)

    async def verify(self, username: str, password: str) -> Admin | None:
        """The admin if the password is theirs, else None. An unknown user costs one hash too."""
        row = await self._find(normalise_username(username)) if len(password) <= MAX_PASSWORD else None
        if row is None:
            await asyncio.to_thread(self._check, await self._dummy(), password)
            return None
        if not await asyncio.to_thread(self._check, row.password_hash, password):
            return None
        if self.hasher.check_needs_rehash(row.password_hash):
            await self._rehash(row.id, password)
        return Admin(row.id, row.username, _as_utc(row.created_at))

    async def _find(self, name: str):  # -> Row | None
        async with self.db.engine.connect() as conn:
            return (await conn.execute(select(admins).where(admins.c.username == name))).first()

    def _check(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self.hasher.hash, secrets.token_urlsafe(16))
        return self._dummy_hash

    async def _rehash(self, admin_id: int, password: str) -> None:
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        async with self.db.engine.begin() as conn:
            await conn.execute(admins.update().where(admins.c.id == admin_id).values(password_hash=hashed))

    # --- failed logins ----------------------------------------------------------------------------------------

    async def login_retry_after(self, client: str, attempts: int, window: timedelta) -> int:
        """Seconds until `client` may try to sign in again: 0 while it has had fewer than `attempts`
        failed logins within `window`."""
        now = self.clock()
        query = (
            select(login_failures.c.failed_at)
            .where(login_failures.c.client == client[:64], login_failures.c.failed_at > now - window)
            .order_by(login_failures.c.failed_at)
        )
        async with self.db.reads.connect() as conn:
            recent = (await conn.scalars(query)).all()
        if len(recent) < attempts:
            return 0
        return max(1, int((_as_utc(recent[0]) + window - now).total_seconds()) + 1)

    async def login_failed(self, client: str, window: timedelta) -> None:
        """Count a failed login of `client`; its failures older than `window` are dropped on the way."""
        now = self.clock()
        async with self.db.engine.begin() as conn:
            stale = (login_failures.c.client == client[:64]) & (login_failures.c.failed_at <= now - window)
            await conn.execute(delete(login_failures).where(stale))
            await conn.execute(insert(login_failures).values(client=client[:64], failed_at=now))

    # --- sessions -------------------------------------------------------------------------------------------

    async def create_session(self, admin: Admin) -> AdminSession:
        """A new session for `admin` (expired sessions of anyone are cleared on the way)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.session_ttl
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(admin_sessions).where(admin_sessions.c.expires_at <= now))
            await conn.execute(
                insert(admin_sessions).values(
                    token_hash=token_hash(token), csrf_token=csrf, admin_id=admin.id, created_at=now, expires_at=expires
                )
            )
        return AdminSession(token, csrf, admin.id, admin.username, now, expires)

    async def get_session(self, token: str) -> AdminSession | None:
        """The live session for this cookie value, or None (unknown or expired)."""
        if not token or len(token) > 128:
            return None
        query = (
            select(admin_sessions, admins.c.username)
            .join(admins, admins.c.id == admin_sessions.c.admin_id)
            .where(admin_sessions.c.token_hash == token_hash(token))
        )
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        expires = _as_utc(row.expires_at)
        if expires <= self.clock():
            await self.delete_session(token)
            return None
        return AdminSession(token, row.csrf_token, row.admin_id, row.username, _as_utc(row.created_at), expires)

    async def delete_session(self, token: str) -> None:
        """End the session of this cookie value (nothing happens if there is none)."""
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(admin_sessions).where(admin_sessions.c.token_hash == token_hash(token)))


def _as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def create_admin_command(db: Database, username: str, password: str) -> str:
    """For `python -m bot admin create`: create the admin and say so. Raises AdminError with the reason
    when the account is refused (the CLI prints it and exits non-zero)."""
    admin = await AdminStore(db).create_admin(username, password)
    return f"created admin {admin.username!r}; sign in at /admin/login"
