"""Subscriptions, staff roles, announcements and their durable deliveries.

Delivery state lives in the database: the recipients of an announcement are stored before the
first message goes out, a worker claims a few at a time (FOR UPDATE SKIP LOCKED on PostgreSQL,
so several workers share the work), and a claim that is not finished within its lease (the
worker died) is claimed again. So nobody is skipped, and only the messages in flight at a crash
can be sent twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import Announcement, Delivery, Subscription, User, utcnow

ROLES = ("staff", "admin")
TERMINAL = ("sent", "failed", "blocked", "deferred")


@dataclass(frozen=True)
class Audience:
    """Who an announcement is for. Districts limit it to the author's districts (None: all)."""

    districts: list[str] | None = None
    topic: int | None = None
    identity: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"districts": self.districts, "topic": self.topic, "identity": self.identity}


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    announcement_id: int
    subscription_id: int
    channel: str
    address: str
    text: str
    attempts: int
    lang: str = "zh"  # the subscriber's, for the words around the announcement


@dataclass(frozen=True)
class Progress:
    announcement_id: int
    status: str
    text: str
    counts: dict[str, int]
    author_lang: str = "zh"  # for the delivery report

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class AnnouncementStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Roles ---------------------------------------------------------------------------------------

    async def grant(self, pseudonym: str, channel: str, role: str | None, districts: Sequence[str] = ()) -> None:
        """Make a user staff (for some districts) or admin; role None takes the role away."""
        async with self.db.session.begin() as session:
            user = await session.scalar(select(User).where(User.pseudonym == pseudonym))
            if user is None:
                now = utcnow()
                user = User(pseudonym=pseudonym, channel=channel, lang="zh", created_at=now, last_seen_at=now)
                session.add(user)
            user.role = role
            user.districts = list(districts) if role == "staff" else None

    async def staff(self) -> list[tuple[str, str, str | None, list[str] | None]]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(User.pseudonym, User.channel, User.role, User.districts).where(User.role.is_not(None))
            )
            return [tuple(row) for row in rows]

    async def save_draft(self, pseudonym: str, draft: dict[str, Any] | None) -> None:
        async with self.db.session.begin() as session:
            await session.execute(update(User).where(User.pseudonym == pseudonym).values(draft=draft))

    # Subscriptions -------------------------------------------------------------------------------

    async def subscribe(self, pseudonym: str, channel: str, address: str, district: str | None) -> Subscription:
        async with self.db.session.begin() as session:
            sub = await session.scalar(select(Subscription).where(Subscription.user_pseudonym == pseudonym))
            if sub is None:
                sub = Subscription(user_pseudonym=pseudonym, channel=channel, address=address, topics=[])
                session.add(sub)
            sub.address, sub.channel, sub.active, sub.district = address, channel, True, district
            await session.flush()
            return sub

    async def subscription(self, pseudonym: str) -> Subscription | None:
        async with self.db.session() as session:
            return await session.scalar(select(Subscription).where(Subscription.user_pseudonym == pseudonym))

    async def update_subscription(self, pseudonym: str, **values: Any) -> Subscription | None:
        async with self.db.session.begin() as session:
            sub = await session.scalar(select(Subscription).where(Subscription.user_pseudonym == pseudonym))
            if sub is not None:
                for key, value in values.items():
                    setattr(sub, key, value)
            return sub

    async def unsubscribe(self, pseudonym: str) -> bool:
        """Stop at once: the subscription is deleted, with its address and pending deliveries."""
        async with self.db.session.begin() as session:
            sub_id = await session.scalar(select(Subscription.id).where(Subscription.user_pseudonym == pseudonym))
            if sub_id is None:
                return False
            await session.execute(delete(Delivery).where(Delivery.subscription_id == sub_id))
            await session.execute(delete(Subscription).where(Subscription.id == sub_id))
            return True

    # Announcements -------------------------------------------------------------------------------

    def _recipients(self, audience: Audience):
        query = select(Subscription.id, Subscription.topics, User.profile).outerjoin(
            User, User.pseudonym == Subscription.user_pseudonym
        )
        query = query.where(Subscription.active.is_(True))
        if audience.districts is not None:
            query = query.where(Subscription.district.in_(audience.districts))
        return query

    async def count_recipients(self, audience: Audience) -> int:
        return len(await self._recipient_ids(audience))

    async def _recipient_ids(self, audience: Audience) -> list[int]:
        async with self.db.session() as session:
            rows = (await session.execute(self._recipients(audience))).all()
        return [sub_id for sub_id, topics, profile in rows if _wants(audience, topics, profile)]

    async def create(
        self,
        author: str,
        author_channel: str,
        author_address: str | None,
        text: str,
        audience: Audience,
        send_at: datetime | None = None,
        request_key: str | None = None,
    ) -> tuple[int, int]:
        """Store the announcement and one pending delivery per recipient; returns (id, recipients).
        With a `request_key` already used, nothing is stored: the earlier announcement's are returned."""
        if request_key is not None:
            earlier = await self._by_request_key(request_key)
            if earlier is not None:
                return earlier
        recipients = await self._recipient_ids(audience)
        announcement = Announcement(
            author_pseudonym=author,
            author_channel=author_channel,
            author_address=author_address,
            text=text,
            audience=audience.as_json(),
            status="scheduled",
            send_at=send_at or utcnow(),
            created_at=utcnow(),
            request_key=request_key,
        )
        try:
            return await self._store(announcement, recipients)
        except IntegrityError:
            earlier = await self._by_request_key(request_key) if request_key is not None else None
            if earlier is None:
                raise
            return earlier  # the same form, sent twice at once: the other request stored it

    async def _by_request_key(self, request_key: str) -> tuple[int, int] | None:
        query = (
            select(Announcement.id, func.count(Delivery.id))
            .outerjoin(Delivery, Delivery.announcement_id == Announcement.id)
            .where(Announcement.request_key == request_key)
            .group_by(Announcement.id)
        )
        async with self.db.session() as session:
            row = (await session.execute(query)).first()
        return (row[0], row[1]) if row is not None else None

    async def _store(self, announcement: Announcement, recipients: list[int]) -> tuple[int, int]:
        """The announcement and one pending delivery per recipient, in one transaction."""
        send_at = announcement.send_at
        async with self.db.session.begin() as session:
            session.add(announcement)
            await session.flush()
            if recipients:
                await session.execute(
                    Delivery.__table__.insert(),
                    [
                        {
                            "announcement_id": announcement.id,
                            "subscription_id": sub_id,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": send_at,
                        }
                        for sub_id in recipients
                    ],
                )
            if not recipients:
                announcement.status, announcement.finished_at = "done", utcnow()
            return announcement.id, len(recipients)

    async def progress(self, announcement_id: int) -> Progress | None:
        with_author = (
            select(Announcement, User.lang)
            .outerjoin(User, User.pseudonym == Announcement.author_pseudonym)
            .where(Announcement.id == announcement_id)
        )
        async with self.db.session() as session:
            found = (await session.execute(with_author)).first()
            if found is None:
                return None
            announcement, author_lang = found
            rows = await session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.announcement_id == announcement_id)
                .group_by(Delivery.status)
            )
            counts = {"pending": 0, "sending": 0, "sent": 0, "failed": 0, "blocked": 0, "deferred": 0}
            counts.update({status: n for status, n in rows})
            return Progress(announcement.id, announcement.status, announcement.text, counts, author_lang or "zh")

    async def recent(self, author: str | None, limit: int = 5) -> list[Progress]:
        async with self.db.session() as session:
            query = select(Announcement.id).order_by(Announcement.id.desc()).limit(limit)
            if author is not None:
                query = query.where(Announcement.author_pseudonym == author)
            ids = list(await session.scalars(query))
        return [p for i in ids if (p := await self.progress(i)) is not None]

    # Delivery ------------------------------------------------------------------------------------

    async def claim(self, worker: str, limit: int, lease: timedelta) -> list[Claimed]:
        """Take up to `limit` due deliveries for `worker`: pending ones, and ones whose claim expired."""
        now = utcnow()
        due = or_(
            and_(Delivery.status == "pending", Delivery.next_attempt_at <= now),
            and_(Delivery.status == "sending", Delivery.claimed_at < now - lease),
        )
        async with self.db.session.begin() as session:
            ids = list(
                await session.scalars(
                    select(Delivery.id).where(due).order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            await session.execute(
                update(Delivery).where(Delivery.id.in_(ids)).values(status="sending", claimed_by=worker, claimed_at=now)
            )
            await session.execute(
                update(Announcement)
                .where(Announcement.id.in_(select(Delivery.announcement_id).where(Delivery.id.in_(ids))))
                .where(Announcement.status == "scheduled")
                .values(status="sending")
            )
            rows = await session.execute(
                select(
                    Delivery.id,
                    Delivery.announcement_id,
                    Delivery.subscription_id,
                    Subscription.channel,
                    Subscription.address,
                    Announcement.text,
                    Delivery.attempts,
                    func.coalesce(User.lang, "zh"),
                )
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .join(Announcement, Announcement.id == Delivery.announcement_id)
                .outerjoin(User, User.pseudonym == Subscription.user_pseudonym)
                .where(Delivery.id.in_(ids))
                .order_by(Delivery.id)
            )
            return [Claimed(*row) for row in rows]

    async def finish(
        self, claimed: Claimed, status: str, error: str | None = None, retry_at: datetime | None = None
    ) -> None:
        """Record the outcome: sent, blocked (the user blocked the bot), failed, or pending again at `retry_at`."""
        values: dict[str, Any] = {"status": status, "last_error": (error or "")[:200] or None}
        if status == "sent":
            values["sent_at"] = utcnow()
        if status == "pending":
            values["next_attempt_at"] = retry_at or utcnow()
            values["attempts"] = claimed.attempts + (1 if error else 0)
        async with self.db.session.begin() as session:
            await session.execute(update(Delivery).where(Delivery.id == claimed.delivery_id).values(**values))
            if status == "blocked":
                await session.execute(
                    update(Subscription).where(Subscription.id == claimed.subscription_id).values(active=False)
                )

    async def finish_sent(self, delivery_ids: list[int]) -> None:
        """Mark many deliveries sent in one statement."""
        if not delivery_ids:
            return
        async with self.db.session.begin() as session:
            await session.execute(
                update(Delivery).where(Delivery.id.in_(delivery_ids)).values(status="sent", sent_at=utcnow())
            )

    async def take_deferred(self, pseudonym: str) -> list[str]:
        """Announcements that could not be pushed to this user (outside the channel's window): their
        texts, oldest first, now marked sent because they are shown with the user's next reply."""
        async with self.db.session.begin() as session:
            rows = (
                await session.execute(
                    select(Delivery.id, Announcement.text)
                    .join(Subscription, Subscription.id == Delivery.subscription_id)
                    .join(Announcement, Announcement.id == Delivery.announcement_id)
                    .where(Subscription.user_pseudonym == pseudonym, Delivery.status == "deferred")
                    .order_by(Delivery.id)
                )
            ).all()
            if rows:
                shown = [delivery_id for delivery_id, _text in rows]
                await session.execute(
                    update(Delivery).where(Delivery.id.in_(shown)).values(status="sent", sent_at=utcnow())
                )
            return [text for _id, text in rows]

    async def complete_finished(self) -> list[Announcement]:
        """Mark announcements with no delivery left to send as done; returns them (to report to authors)."""
        open_ = select(Delivery.announcement_id).where(Delivery.status.in_(("pending", "sending")))
        async with self.db.session.begin() as session:
            done = list(
                await session.scalars(
                    select(Announcement).where(Announcement.status == "sending").where(Announcement.id.not_in(open_))
                )
            )
            for announcement in done:
                announcement.status, announcement.finished_at = "done", utcnow()
            return done


def _wants(audience: Audience, topics: list[int] | None, profile: dict[str, Any] | None) -> bool:
    if audience.topic is not None and topics and audience.topic not in topics:
        return False
    return audience.identity is None or audience.identity in ((profile or {}).get("identity") or [])
