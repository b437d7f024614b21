"""The database: one async engine for SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    def __init__(self, url: str, schema: str | None = None, **engine_options: Any) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if schema and not self.is_sqlite:
            engine_options.setdefault("connect_args", {"server_settings": {"search_path": schema}})
        # A server can drop a pooled connection (restart, failover): test each one on checkout. An SQLite file
        # cannot, and the test would cost a round trip to its thread on every query.
        engine_options.setdefault("pool_pre_ping", not self.is_sqlite)
        self.engine: AsyncEngine = create_async_engine(url, **engine_options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        # For single statements that need no transaction around them. Writes run in autocommit, so one holds
        # SQLite's write lock for the statement only, never across a wait for a busy event loop to send COMMIT.
        # Reads run in autocommit on PostgreSQL (no BEGIN and ROLLBACK round trips); on SQLite through the plain
        # engine, whose driver opens no transaction for a SELECT, while switching a pooled connection to
        # autocommit and back costs two round trips to its thread.
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.reads = self.engine if self.is_sqlite else self.autocommit

    async def migrate(self) -> None:
        """Bring the schema up to the newest Alembic revision."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()

    def new_session(self) -> AsyncSession:
        return self.session()


def alembic_config(connection: Connection | None = None):  # -> alembic.config.Config
    from alembic.config import Config  # imported when migrating only: it costs memory in every worker

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
