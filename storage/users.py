"""Users, known by pseudonym only, and deleting what the assistant holds about one."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from content.schema import Profile
from storage.db import Database
from storage.models import Delivery, Inquiry, QuestionFounder, Subscription, User, utcnow
from storage.questions import form_digest, question_form

LAST_SEEN_RESOLUTION = timedelta(minutes=10)
_SEEN = (User.channel, User.lang, User.last_seen_at, User.profile, User.role, User.districts, User.draft, User.followup)


class Pseudonymizer:
    """Turns a channel's user id into a stable keyed hash; the raw id is never stored."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        self._key = key

    def __call__(self, channel: str, user_id: str) -> str:
        message = f"{channel}:{user_id}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class UserRecord:
    pseudonym: str
    channel: str
    lang: str
    is_new: bool
    profile: Profile | None = None
    role: str | None = None
    districts: list[str] | None = None
    draft: dict | None = None
    followup: dict | None = None


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def seen(self, pseudonym: str, channel: str, lang: str) -> UserRecord:
        """The user, created on first contact with `lang`; marks them as seen now."""
        try:
            return await self._seen(pseudonym, channel, lang)
        except IntegrityError:
            # Two first messages of a new user at once: the other one created the row; read it.
            return await self._seen(pseudonym, channel, lang)

    async def _seen(self, pseudonym: str, channel: str, lang: str) -> UserRecord:
        # Core, not the ORM: this runs on every update, and a returning user is one SELECT (see Database.reads).
        now = utcnow()
        async with self.db.reads.connect() as conn:
            row = (await conn.execute(select(*_SEEN).where(User.pseudonym == pseudonym))).first()
        if row is None:
            values = {"channel": channel, "lang": lang, "created_at": now, "last_seen_at": now}
            async with self.db.autocommit.connect() as conn:
                await conn.execute(insert(User).values(pseudonym=pseudonym, **values))
            return UserRecord(pseudonym, channel, lang, is_new=True)
        if now - _aware(row.last_seen_at) > LAST_SEEN_RESOLUTION:
            async with self.db.autocommit.connect() as conn:
                await conn.execute(update(User).where(User.pseudonym == pseudonym).values(last_seen_at=now))
        return UserRecord(
            pseudonym,
            row.channel,
            row.lang,
            is_new=False,
            profile=_profile(row.profile),
            role=row.role,
            districts=row.districts,
            draft=row.draft,
            followup=row.followup,
        )

    async def set_lang(self, pseudonym: str, lang: str) -> None:
        async with self.db.session.begin() as session:
            await session.execute(update(User).where(User.pseudonym == pseudonym).values(lang=lang))

    async def set_profile(self, pseudonym: str, profile: Profile | None) -> None:
        stored = profile.model_dump(mode="json") if profile is not None else None
        async with self.db.session.begin() as session:
            await session.execute(
                update(User).where(User.pseudonym == pseudonym).values(profile=stored, profile_updated_at=utcnow())
            )

    async def set_followup(self, pseudonym: str, followup: dict | None) -> None:
        async with self.db.session.begin() as session:
            await session.execute(update(User).where(User.pseudonym == pseudonym).values(followup=followup))

    async def menu(self, pseudonym: str) -> dict | None:
        """The numbered choices last shown to the user by a channel without buttons."""
        async with self.db.reads.connect() as conn:
            return await conn.scalar(select(User.menu).where(User.pseudonym == pseudonym))

    async def set_menu(self, pseudonym: str, menu: dict | None) -> None:
        async with self.db.autocommit.connect() as conn:
            await conn.execute(update(User).where(User.pseudonym == pseudonym).values(menu=menu))

    async def forget(self, pseudonym: str) -> None:
        """Delete the user, their subscription and everything logged under their pseudonym, including
        their wording where it founded a group of unanswered questions that others' questions joined."""
        async with self.db.session.begin() as session:
            subscription = select(Subscription.id).where(Subscription.user_pseudonym == pseudonym)
            await session.execute(delete(Delivery).where(Delivery.subscription_id.in_(subscription)))
            await session.execute(delete(Subscription).where(Subscription.user_pseudonym == pseudonym))
            theirs = select(Inquiry.question_group, Inquiry.text).where(
                Inquiry.user_pseudonym == pseudonym, Inquiry.question_group.is_not(None)
            )
            grouped = (await session.execute(theirs)).all()
            await session.execute(delete(Inquiry).where(Inquiry.user_pseudonym == pseudonym))
            forms = {question_form(text or "") for _, text in grouped}
            await _refound_groups(session, {group for group, _ in grouped}, forms)
            await session.execute(delete(User).where(User.pseudonym == pseudonym))


async def _refound_groups(session: AsyncSession, groups: set[int], forms: set[str]) -> None:
    """Groups that a forgotten user's question founded, and that others' questions still belong to, are
    founded again by the wording of one of those (a group whose rows are all gone was deleted by the trigger).

    A group founded again gets a new id: a running inquiry log sees a founder it does not know and loads the
    founders afresh, so no worker keeps grouping by (or holding) the forgotten wording."""
    founded = select(QuestionFounder).where(QuestionFounder.id.in_(groups), QuestionFounder.form.in_(forms))
    for founder in (await session.scalars(founded)).all():
        member = select(Inquiry.text).where(Inquiry.question_group == founder.id, Inquiry.text.is_not(None)).limit(1)
        text = await session.scalar(member)
        form = question_form(text or "")
        taken = await session.scalar(select(QuestionFounder.id).where(QuestionFounder.digest == form_digest(form)))
        if text is None or (taken is not None and taken != founder.id):
            ungroup = update(Inquiry).where(Inquiry.question_group == founder.id).values(question_group=None)
            await session.execute(ungroup)
            await session.delete(founder)  # its rows are grouped by the report, as rows without a group are
        elif taken is None:  # (taken is the founder itself when the member's form is the same)
            await session.delete(founder)
            again = QuestionFounder(form=form, digest=form_digest(form))
            session.add(again)
            await session.flush()
            regroup = update(Inquiry).where(Inquiry.question_group == founder.id).values(question_group=again.id)
            await session.execute(regroup)


def _profile(stored: dict | None) -> Profile | None:
    """The stored profile; one that no longer fits the vocabulary is dropped rather than crash a reply."""
    if stored is None:
        return None
    try:
        return Profile.model_validate(stored)
    except ValidationError:
        return None


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
