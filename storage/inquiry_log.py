"""The inquiry log: what founders ask for, written in the background so a reply never waits on it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from storage.db import Database
from storage.models import Inquiry, utcnow

log = logging.getLogger(__name__)

POISON_AFTER_FAILURES = 3


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
    """

    def __init__(self, db: Database, batch_size: int = 500, max_backoff: float = 30.0) -> None:
        self.db = db
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self._queue: asyncio.Queue[InquiryRecord] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def record(self, record: InquiryRecord) -> None:
        self._idle.clear()
        self._queue.put_nowait(record)

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="inquiry-log-writer")

    async def flush(self) -> None:
        """Wait until everything recorded so far is in the database."""
        if self._writer is None:
            await self._write_pending()
        else:
            await self._idle.wait()

    async def close(self) -> None:
        if self._writer is not None:
            await self.flush()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        await self._write_pending()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _write_forever(self) -> None:
        while True:
            first = await self._queue.get()
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
        async with self.db.session.begin() as session:
            await session.execute(insert(Inquiry), [asdict(r) for r in batch])


def _refused_as_data(exc: Exception) -> bool:
    """The record itself is bad (unencodable value, constraint), not the database unavailable."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return isinstance(exc.orig, TypeError | ValueError)
    return isinstance(exc, TypeError | ValueError)
