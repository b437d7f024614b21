"""The inquiry log: what founders ask for, written in the background so a reply never waits on it.

As it writes a batch, the log also does the reports' work (storage/reports.py), so that a report does not
have to, however long the log: it works out each row's `hit`, `step`, `question_group`, `matched` and
`identities` (see Inquiry), and adds the batch to the daily counts (DailyInquiries, DailyPlaces) in the same
transaction as the rows. (Not by a trigger on insert: SQLite would build a copy of each whole row for it,
about 50 µs a row.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import (
    CARD_STEP,
    MATCH_STEP,
    UNANSWERED_KINDS,
    DailyInquiries,
    DailyPlaces,
    Inquiry,
    QuestionFounder,
    utcnow,
)
from storage.questions import QuestionGrouper, form_digest, question_form, question_key

log = logging.getLogger(__name__)

POISON_AFTER_FAILURES = 3
# How far back a "not what I asked" button finds its question among the user's latest rows.
RECENT_ROWS = 50
# Rows that do not change what a conversation is about: a thank-you, a question too vague to tell.
ASIDE_KINDS = ("smalltalk", "vague", "outcome", "lang", "help", "invalid_button", "unknown_command")


@dataclass(frozen=True)
class AskedQuestion:
    """A user's answered question as logged, and whether they already said the answer was not what they asked."""

    text: str
    results: list[Any]
    rejected: bool

    @property
    def first_measure(self) -> int | None:
        return first_hit("question", True, self.results)


@dataclass(frozen=True)
class InquiryRecord:
    channel: str
    user_pseudonym: str
    lang: str
    kind: str
    measure: int | None = None
    plan: int | None = None
    text: str | None = None
    answered: bool | None = None
    results: list[Any] | None = None
    district: str | None = None
    profile: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=utcnow)


class InquiryLog:
    """Queues records and writes them in batches.

    A failed write is retried with backoff and the batch kept, so a database outage
    delays the log but loses nothing; `close()` drains the queue on a clean shutdown.
    The writer lingers a moment after the first record of a batch, so that a trickle of
    updates is written as a few transactions a second rather than one per update (each
    costs a commit and the daily counts' upserts). The conversation reads a user's latest rows
    back (`asked`, `topic`), after a flush, rather than keep a second copy of them.
    """

    def __init__(self, db: Database, batch_size: int = 500, max_backoff: float = 30.0, linger: float = 0.2) -> None:
        self.db = db
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.linger = linger
        self._hurry = asyncio.Event()
        # The question groups' founders, as stored (loaded at the first unanswered question, then kept up to date).
        self._grouper: QuestionGrouper | None = None
        self._last_founder = 0
        self._queue: asyncio.Queue[InquiryRecord] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def record(self, record: InquiryRecord) -> None:
        self._idle.clear()
        self._queue.put_nowait(record)
        if self._queue.qsize() >= self.batch_size:
            self._hurry.set()

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="inquiry-log-writer")

    async def flush(self) -> None:
        """Wait until everything recorded so far is in the database."""
        if self._writer is None:
            await self._write_pending()
        else:
            if not self._idle.is_set():
                self._hurry.set()
            await self._idle.wait()

    async def close(self) -> None:
        if self._writer is not None:
            await self.flush()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        await self._write_pending()

    async def asked(self, pseudonym: str, key: str) -> AskedQuestion | None:
        """The user's recent answered question whose `question_key` is `key`, once what is queued is written
        (one the assistant could not answer is among the unanswered already)."""
        await self.flush()
        latest = (
            select(Inquiry.kind, Inquiry.text, Inquiry.answered, Inquiry.results)
            .where(Inquiry.user_pseudonym == pseudonym, Inquiry.kind.in_(UNANSWERED_KINDS), Inquiry.text.is_not(None))
            .order_by(Inquiry.id.desc())
            .limit(RECENT_ROWS)
        )
        async with self.db.reads.connect() as conn:
            rows = [row for row in (await conn.execute(latest)).all() if question_key(row.text) == key]
        question = next((row for row in rows if row.kind == "question" and row.answered), None)
        if question is None:
            return None
        results = question.results if isinstance(question.results, list) else []
        return AskedQuestion(question.text, results, rejected=any(row.kind == "rejected" for row in rows))

    async def topic(self, pseudonym: str, since: datetime) -> int | None:
        """The measure whose card the user last saw, if they did so after `since` and did nothing since but
        asides (small talk, vague questions): a card from the menu, a deep link or a question answered with
        one card (its first result marked `card`, or `topic` for a follow-up on it)."""
        await self.flush()
        latest = (
            select(Inquiry.kind, Inquiry.measure, Inquiry.answered, Inquiry.results)
            .where(
                Inquiry.user_pseudonym == pseudonym,
                Inquiry.created_at >= since,
                Inquiry.kind.not_in(ASIDE_KINDS),
            )
            .order_by(Inquiry.id.desc())
            .limit(1)
        )
        async with self.db.reads.connect() as conn:
            row = (await conn.execute(latest)).first()
        if row is None:
            return None
        if row.kind in ("measure", "deeplink"):
            return row.measure
        first = row.results[0] if row.kind == "question" and row.answered and row.results else None
        if isinstance(first, dict) and (first.get("card") or first.get("topic")) and _is_int(first.get("measure")):
            return first["measure"]
        return None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _write_forever(self) -> None:
        while True:
            first = await self._queue.get()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self.linger)
            except asyncio.CancelledError:
                self._queue.put_nowait(first)  # close() writes what is still queued
                raise
            self._hurry.clear()
            batch = [first, *self._take(self.batch_size - 1)]
            await self._write_with_retry(batch)
            if self._queue.empty():
                self._idle.set()

    def _take(self, limit: int) -> list[InquiryRecord]:
        batch = []
        while len(batch) < limit and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write_with_retry(self, batch: list[InquiryRecord]) -> None:
        delay = 0.1
        failures = 0
        while batch:
            try:
                await self._insert(batch)
                return
            except asyncio.CancelledError:
                for record in batch:
                    self._queue.put_nowait(record)
                raise
            except Exception:
                failures += 1
                log.exception("writing %d inquiries failed; retrying in %.1fs", len(batch), delay)
            if failures >= POISON_AFTER_FAILURES:
                batch = await self._drop_poison(batch)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _drop_poison(self, batch: list[InquiryRecord]) -> list[InquiryRecord]:
        """Write the batch one by one, dropping records the database refuses as data (they would
        block the log forever); records that fail for any other reason are kept for a retry."""
        kept = []
        for record in batch:
            try:
                await self._insert([record])
            except Exception as exc:
                if _refused_as_data(exc):
                    log.error("dropped an inquiry the database refuses (kind=%s): %s", record.kind, type(exc).__name__)
                else:
                    kept.append(record)
        return kept

    async def _write_pending(self) -> None:
        while not self._queue.empty():
            await self._insert(self._take(self.batch_size))
        self._idle.set()

    async def _insert(self, batch: list[InquiryRecord]) -> None:
        forms = [question_form(r.text) if is_unanswered(r.kind, r.answered, r.text) else None for r in batch]
        groups = await self._group(forms)
        rows = [_row(r, None if form is None else groups.get(form)) for r, form in zip(batch, forms, strict=True)]
        kinds, places = daily_counts(rows)
        async with self.db.session.begin() as session:
            await session.execute(insert(Inquiry), rows)
            await self._add(session, DailyInquiries, kinds)
            await self._add(session, DailyPlaces, places)

    async def _add(
        self, session: AsyncSession, model: type[DailyInquiries | DailyPlaces], counts: Counter[tuple[Any, ...]]
    ) -> None:
        """Add to the daily counts, in key order (so that concurrent writers lock rows in the same order)."""
        table = model.__table__
        keys = [column.name for column in table.primary_key.columns]
        statement = self._dialect.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={"inquiries": table.c.inquiries + statement.excluded.inquiries}
        )
        values = [{**dict(zip(keys, key, strict=True)), "inquiries": n} for key, n in sorted(counts.items())]
        await session.execute(statement, values)

    @property
    def _dialect(self) -> Any:
        return sqlite if self.db.is_sqlite else postgresql

    async def _group(self, forms: list[str | None]) -> dict[str, int]:
        """The group of each unanswered question's form, founding groups as needed (committed at once).

        Never raises: if grouping fails, the questions are logged without a group, and the report groups them.
        Comparing forms is CPU work: it runs in a thread, off the event loop that answers users."""
        wanted = list(dict.fromkeys(form for form in forms if form is not None))  # in the order they were asked
        if not wanted:
            return {}
        try:
            async with self.db.session.begin() as session:
                grouper = await self._founders(session)
                first_new = len(grouper)
                positions = await asyncio.to_thread(grouper.place, wanted)
                founded = grouper.forms[first_new:]
                if founded:
                    keys = await self._found(session, founded)
                    grouper.keys[first_new:] = [keys[form] for form in founded]
                    self._last_founder = max(self._last_founder, *keys.values())
            return {form: grouper.keys[position] for form, position in positions.items()}
        except BaseException as exc:
            self._grouper = None  # it may hold founders that were not committed: load them afresh next time
            if not isinstance(exc, Exception):
                raise
            log.exception("grouping %d unanswered questions failed; they are logged without a group", len(wanted))
            return {}

    async def _found(self, session: AsyncSession, forms: list[str]) -> dict[str, int]:
        """Store new groups' founding forms; their groups' ids (another worker may just have founded some)."""
        digests = {form_digest(form): form for form in forms}
        statement = self._dialect.insert(QuestionFounder).on_conflict_do_nothing(index_elements=["digest"])
        await session.execute(statement, [{"digest": digest, "form": form} for digest, form in digests.items()])
        stored = select(QuestionFounder.digest, QuestionFounder.id).where(QuestionFounder.digest.in_(digests))
        return {digests[digest]: key for digest, key in (await session.execute(stored)).all()}

    async def _founders(self, session: AsyncSession) -> QuestionGrouper:
        """The founders as stored: new ones (from other workers) are added; if any went missing (a group
        deleted with its last row) or came in out of order, all are loaded again."""
        count, last = (await session.execute(select(func.count(), func.max(QuestionFounder.id)))).one()
        grouper = self._grouper
        if grouper is not None and count == len(grouper) and (last or 0) == self._last_founder:
            return grouper
        if grouper is not None:
            newer = select(QuestionFounder.id, QuestionFounder.form).where(QuestionFounder.id > self._last_founder)
            rows = (await session.execute(newer.order_by(QuestionFounder.id))).all()
            if len(grouper) + len(rows) == count:
                for key, form in rows:
                    grouper.add(key, form)
                self._last_founder = last or 0
                return grouper
        everything = select(QuestionFounder.id, QuestionFounder.form).order_by(QuestionFounder.id)
        self._grouper = await asyncio.to_thread(QuestionGrouper, (await session.execute(everything)).all())
        self._last_founder = last or 0
        return self._grouper


def is_unanswered(kind: str, answered: Any, text: str | None) -> bool:
    """A question the assistant could not answer: the reports group these by near-duplicates."""
    return kind in UNANSWERED_KINDS and answered is not None and not answered and text is not None


def first_hit(kind: str, answered: Any, results: Any) -> int | None:
    """The measure an answered question's first result is, when that result is ranked 1 (not the targets)."""
    if kind != "question" or not answered or not isinstance(results, list) or not results:
        return None
    first = results[0]
    if not isinstance(first, dict) or first.get("rank") != 1:
        return None
    measure = first.get("measure")
    return measure if _is_int(measure) else None


def funnel_step(kind: str, measure: int | None, answered: Any) -> int | None:
    """CARD_STEP for a row that showed a measure card, MATCH_STEP for a match, else None."""
    if (kind in ("measure", "deeplink") and measure is not None) or (kind == "question" and answered):
        return CARD_STEP
    return MATCH_STEP if kind == "match" else None


def match_facts(kind: str, answered: Any, results: Any, profile: Any) -> tuple[str | None, str | None]:
    """For a match (answered or not): the measures it found applicable (near misses left out) and the profile's
    identities, each a sorted JSON list; (None, None) for any other row."""
    if kind != "match" or answered is None:
        return None, None
    measures = set()
    if isinstance(results, list):
        measures = {
            r["measure"]
            for r in results
            if isinstance(r, dict) and _is_int(r.get("measure")) and not r.get("near_miss")
        }
    values = profile.get("identity") if isinstance(profile, dict) else None
    identities = {v for v in values if isinstance(v, str)} if isinstance(values, list) else set()
    return json.dumps(sorted(measures)), json.dumps(sorted(identities), ensure_ascii=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def daily_keys(row: dict[str, Any]) -> tuple[tuple[Hashable, ...], tuple[Hashable, ...]]:
    """A row's keys in DailyInquiries and DailyPlaces (its created_at in UTC)."""
    day: date = row["created_at"].date()
    kinds = (day, row["kind"], row["measure"] or 0, row["plan"] or 0, row["hit"] or 0)
    return kinds, (day, row["channel"], row["district"] or "")


def daily_counts(rows: list[dict[str, Any]]) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    kinds: Counter[tuple[Any, ...]] = Counter()
    places: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        kind_key, place_key = daily_keys(row)
        kinds[kind_key] += 1
        places[place_key] += 1
    return kinds, places


def _row(record: InquiryRecord, question_group: int | None) -> dict[str, Any]:
    row = asdict(record)
    created = record.created_at
    row["created_at"] = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    row["hit"] = first_hit(record.kind, record.answered, record.results)
    row["step"] = funnel_step(record.kind, record.measure, record.answered)
    row["question_group"] = question_group
    row["matched"], row["identities"] = match_facts(record.kind, record.answered, record.results, record.profile)
    return row


def _refused_as_data(exc: Exception) -> bool:
    """The record itself is bad (unencodable value, constraint), not the database unavailable."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return isinstance(exc.orig, TypeError | ValueError)
    return isinstance(exc, TypeError | ValueError)
