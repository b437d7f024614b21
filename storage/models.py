"""Database tables. Schema changes go through the Alembic migrations beside this file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    """A person talking to the assistant, known only by a keyed hash of their channel id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    profile_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    role: Mapped[str | None] = mapped_column(String(8))
    districts: Mapped[list[str] | None] = mapped_column(JSON)
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    followup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What a channel without buttons (WeChat) numbered in its last reply: {"actions": {"1": payload}, ...}.
    menu: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# Funnel steps (Inquiry.step): the row showed a measure card (a measure, a deep link, an answered question)...
CARD_STEP = 1
# ...or was a match.
MATCH_STEP = 2
# The kinds of rows the assistant could not answer (answered is false): a question it found nothing for (its
# `measure` set when the question was held back from that measure as not about the plan), and a question
# answered with a measure whose asker said it was not what they asked ("rejected", its `measure` that one).
UNANSWERED_KINDS = ("question", "rejected")


class Inquiry(Base):
    """One thing a user asked for: a menu, a measure, a deep link or a free-text question.

    The last five columns are worked out by the inquiry log as it writes the row, for the reports (see
    storage.inquiry_log): the measure a question's first result (ranked 1) is (`hit`), the funnel step, the
    group of near-duplicates of an unanswered question (a QuestionFounder id; None if not grouped), and for a
    match the measures found applicable and the profile's identities (`matched`, `identities`: JSON lists)."""

    __tablename__ = "inquiries"
    __table_args__ = (
        Index("ix_inquiries_created_at", "created_at"),
        Index("ix_inquiries_user", "user_pseudonym"),
        Index("ix_inquiries_measure_created", "measure", "created_at"),
        Index("ix_inquiries_kind_answered_created", "kind", "answered", "created_at"),
        # Questions by group, for the report and for deleting a group with its last row. SQLite holds the text
        # too, so that the report's GROUP BY group, text streams through the index; PostgreSQL cannot index a
        # text that long (an entry is at most about 2.7 kB), and hash-aggregates instead.
        Index(
            "ix_inquiries_grouped",
            "question_group",
            "created_at",
            postgresql_where=literal_column("question_group IS NOT NULL"),
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_inquiries_report_grouped",
            "question_group",
            "text",
            "created_at",
            sqlite_where=literal_column("question_group IS NOT NULL"),
        ).ddl_if(dialect="sqlite"),
        # The funnel groups by user over a period: SQLite streams through this index (see storage.reports).
        Index("ix_inquiries_report_funnel", "user_pseudonym", "created_at", "step").ddl_if(dialect="sqlite"),
        # A period's matches without a look-up in the table per row.
        Index(
            "ix_inquiries_report_matches",
            "created_at",
            "matched",
            "identities",
            sqlite_where=literal_column("matched IS NOT NULL"),
        ).ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    channel: Mapped[str] = mapped_column(String(16))
    user_pseudonym: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    measure: Mapped[int | None] = mapped_column(Integer)
    plan: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    answered: Mapped[bool | None]
    results: Mapped[list[Any] | None] = mapped_column(JSON)
    district: Mapped[str | None] = mapped_column(String(16))
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    hit: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(SmallInteger)
    question_group: Mapped[int | None] = mapped_column(BigInteger)
    matched: Mapped[str | None] = mapped_column(Text)
    identities: Mapped[str | None] = mapped_column(Text)


class QuestionFounder(Base):
    """The form (storage.questions.question_form) that founded a group of near-duplicate unanswered questions.
    A group whose rows are all deleted (/forget) is deleted with them (a trigger, migration 0007)."""

    __tablename__ = "question_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(32), unique=True)
    form: Mapped[str] = mapped_column(Text)


class DailyInquiries(Base):
    """Inquiries per UTC day by kind, measure, plan and hit: kept by the inquiry log in the transaction that
    writes the rows, and by a trigger when rows are deleted (migration 0007), so it always adds up to the
    rows. A report reads whole days here. An absent measure, plan or hit is 0 (a key has no NULL)."""

    __tablename__ = "daily_inquiries"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    measure: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan: Mapped[int] = mapped_column(Integer, primary_key=True)
    hit: Mapped[int] = mapped_column(Integer, primary_key=True)
    inquiries: Mapped[int] = mapped_column(Integer)


class DailyPlaces(Base):
    """Inquiries per UTC day by channel and district, kept like DailyInquiries. An absent district is ''."""

    __tablename__ = "daily_places"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    district: Mapped[str] = mapped_column(String(16), primary_key=True)
    inquiries: Mapped[int] = mapped_column(Integer)


class Subscription(Base):
    """A founder who asked for announcements. `address` is the channel's chat id, kept (only) so
    announcements can be delivered; it is deleted with the subscription."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))
    topics: Mapped[list[int]] = mapped_column(JSON, default=list)
    district: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Announcement(Base):
    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    author_pseudonym: Mapped[str] = mapped_column(String(64))
    author_channel: Mapped[str] = mapped_column(String(16))
    author_address: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="scheduled")
    send_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The dashboard's Confirm form carries a key, so that sending the form twice stores one announcement.
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)


class Delivery(Base):
    """One announcement to one subscriber. Stored before sending, so nobody is skipped after a crash."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("announcement_id", "subscription_id"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    announcement_id: Mapped[int] = mapped_column(ForeignKey("announcements.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(200))
