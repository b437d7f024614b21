"""The announcement worker: sends stored deliveries at a safe rate, retries, and resumes after a crash.

Guarantee: recipients are stored before sending; a delivery is marked sent right after the
channel accepted it. If the process dies, deliveries it had claimed but not finished (at most
`concurrency` messages in flight) are claimed again after the lease expires, so nobody is
skipped and at most those in-flight messages can arrive twice. A channel that can only push
within a window (WeChat: 48 hours after the user's last message) defers the delivery, and the
user sees it with their next reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Protocol

from aiolimiter import AsyncLimiter

from handlers.announcements import announcement_reply, delivery_report
from handlers.replies import Reply
from storage.announcements import AnnouncementStore, Claimed
from storage.models import utcnow

log = logging.getLogger(__name__)

GLOBAL_PAUSE_AFTER_429S = 3


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "blocked", "deferred", "retry_after", "error", "failed"]
    retry_after: float = 0.0
    error: str | None = None


class Sender(Protocol):
    """A channel's way to push a message to an address (a chat id, an OpenID)."""

    async def send(self, address: str, reply: Reply) -> Outcome: ...


class DeliveryWorker:
    def __init__(
        self,
        store: AnnouncementStore,
        senders: dict[str, Sender],
        rate: float = 25.0,
        concurrency: int = 8,
        lease: float = 60.0,
        max_attempts: int = 5,
        idle_poll: float = 1.0,
    ) -> None:
        self.store = store
        self.senders = senders
        # A bucket of 1/20 s: AsyncLimiter(rate, 1.0) would let a whole second's worth out at once.
        self.limiter = AsyncLimiter(max(1.0, rate / 20), 1 / 20)
        self.concurrency = concurrency
        self.lease = timedelta(seconds=lease)
        self.max_attempts = max_attempts
        self.idle_poll = idle_poll
        self.worker_id = secrets.token_hex(6)
        self._paused_until = 0.0
        self._recent_429s: list[float] = []
        self._last_sent: dict[str, float] = {}
        self._wake = asyncio.Event()
        self.on_outcome: Callable[[str], None] = lambda status: None

    def wake(self) -> None:
        """Look for work now (a new announcement was queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            worked = await self.run_once()
            if not worked:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll)

    async def run_once(self) -> bool:
        """Claim one batch and deliver it; False when there was nothing to do."""
        batch = await self.store.claim(self.worker_id, self.concurrency, self.lease)
        if batch:
            outcomes = await asyncio.gather(*(self._deliver(claimed) for claimed in batch))
            sent = [
                claimed.delivery_id
                for claimed, outcome in zip(batch, outcomes, strict=True)
                if outcome.status == "sent"
            ]
            await self.store.finish_sent(sent)
            for claimed, outcome in zip(batch, outcomes, strict=True):
                self.on_outcome(outcome.status)
                if outcome.status != "sent":
                    await self._record(claimed, outcome)
        for announcement in await self.store.complete_finished():
            await self._report(announcement.id, announcement.author_channel, announcement.author_address)
        return bool(batch)

    async def _deliver(self, claimed: Claimed) -> Outcome:
        sender = self.senders.get(claimed.channel)
        if sender is None:
            return Outcome("failed", error=f"no sender for channel {claimed.channel}")
        await self._wait_turn(claimed.address)
        try:
            reply = announcement_reply(claimed.text, claimed.announcement_id, claimed.lang)
            return await sender.send(claimed.address, reply)
        except Exception as exc:  # a sender bug must not stop the worker
            log.exception("sending delivery %d failed", claimed.delivery_id)
            return Outcome("error", error=repr(exc))

    async def _wait_turn(self, address: str) -> None:
        """Global rate, a pause after a 429, and at most one message a second to the same chat."""
        while (pause := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110 - a pause until a time
            await asyncio.sleep(pause)
        await self.limiter.acquire()
        last = self._last_sent.get(address)
        if last is not None and (wait := last + 1.0 - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self._last_sent[address] = time.monotonic()
        if len(self._last_sent) > 10_000:
            cutoff = time.monotonic() - 1.0
            self._last_sent = {a: t for a, t in self._last_sent.items() if t > cutoff}

    async def _record(self, claimed: Claimed, outcome: Outcome) -> None:
        """Record an outcome other than sent (those are recorded together, per batch)."""
        if outcome.status in ("blocked", "deferred"):
            await self.store.finish(claimed, outcome.status, error=outcome.error)
        elif outcome.status == "retry_after":
            self._throttled(outcome.retry_after)
            retry_at = utcnow() + timedelta(seconds=outcome.retry_after)
            await self.store.finish(claimed, "pending", retry_at=retry_at)
            asyncio.get_running_loop().call_later(outcome.retry_after, self.wake)
        elif outcome.status == "error" and claimed.attempts + 1 < self.max_attempts:
            backoff = timedelta(seconds=min(2 ** (claimed.attempts + 1), 300))
            await self.store.finish(claimed, "pending", error=outcome.error or "error", retry_at=utcnow() + backoff)
        else:
            await self.store.finish(claimed, "failed", error=outcome.error)

    def _throttled(self, retry_after: float) -> None:
        """A 429 delays its own delivery; several in a second mean the bot as a whole is over the
        limit, so everything pauses for `retry_after`."""
        now = time.monotonic()
        self._recent_429s = [t for t in self._recent_429s if t > now - 1.0] + [now]
        if len(self._recent_429s) >= GLOBAL_PAUSE_AFTER_429S:
            self._paused_until = max(self._paused_until, now + retry_after)

    async def _report(self, announcement_id: int, channel: str, address: str | None) -> None:
        progress = await self.store.progress(announcement_id)
        sender = self.senders.get(channel)
        if progress is None or sender is None or address is None:
            return
        outcome = await sender.send(address, delivery_report(progress, progress.author_lang))
        if outcome.status != "sent":
            log.warning("could not send the delivery report of announcement %d: %s", announcement_id, outcome)
