"""Benchmark announcement delivery: N subscribers, one announcement, the real DeliveryWorker and TelegramSender
(python-telegram-bot over HTTP) against the fake Bot API on 127.0.0.1, which enforces a global rate limit.

    .venv/bin/python bench/delivery_bench.py [--recipients 10000] [--rate 400] [--limit 500]
        [--database sqlite|postgresql] [--concurrency 8] [--timeout SECONDS] [--fake-in-process]

Two runs, each on a fresh database (a SQLite file in a temp dir, or a fresh schema on PostgreSQL, dropped at
the end) and a fresh fake (~1% of chats blocked -> 403, ~1% answering one 429):

  normal  one worker delivers the announcement until it is done;
  crash   the worker is cancelled abruptly when about half are sent (its claims are left 'sending', as when the
          process is killed), then a NEW worker (new engine, new Bot) finishes the job.

Goals: time within 5% of the ideal (deliverable recipients / worker rate), nobody lost, and at most the in-flight
window (the worker's concurrency) sent twice. The fake runs in a child process by default, so its own CPU time
does not slow the worker down (on a real deployment Telegram is another machine).

Each run has a time budget (default max(30 s, 3.2 x ideal), so the whole bench ends in about 3 minutes for 10,000
at the default rate); a run that has not finished by then is reported as such, with what is still unsent and the
time the whole announcement would take at its pace. The crash comes at half-way or half-way through the budget,
whichever is first. --timeout 0 lets both runs go to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from telegram import Bot  # noqa: E402

from bot.channels.telegram import TelegramSender  # noqa: E402
from bot.delivery import DeliveryWorker, Outcome, Sender  # noqa: E402
from handlers.replies import Reply  # noqa: E402
from storage.announcements import AnnouncementStore, Audience, Claimed  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Announcement, Delivery, Subscription, utcnow  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TOKEN = FakeTelegram.token
FIRST_CHAT = 100_000_000
AUTHOR_CHAT = 42  # gets the delivery report when the announcement is done: that is how the end is seen
TEXT = "威海市创业担保贷款申请通道已开放，详情见 /m7。Applications for start-up guarantee loans are open."
TIME_GOAL = 1.05


# The fake Bot API ---------------------------------------------------------------------------------------------


@dataclass
class FakeStats:
    chats: list[int]  # chat id of every accepted sendMessage, in order
    rate_refused: int  # 429s the fake gave for its global rate limit (the busy_once 429s are not counted)


class FakeApi:
    """FakeTelegram, in this process or in a child process of its own, driven by the same four calls."""

    def __init__(self, limit: float, in_process: bool) -> None:
        self.limit, self.in_process = limit, in_process
        self.base_url = ""
        self._fake: FakeTelegram | None = None
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    async def start(self) -> None:
        if self.in_process:
            self._fake = FakeTelegram(max_per_second=self.limit)
            await self._fake.start()
            self.base_url = self._fake.base_url
            return
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_fake_process, args=(child, self.limit), daemon=True)
        self._process.start()
        self.base_url = await self._ask(("url",))

    async def reset(self, blocked: set[int], busy_once: set[int]) -> None:
        if self._fake is not None:
            _reset(self._fake, blocked, busy_once)
        else:
            await self._ask(("reset", blocked, busy_once))

    async def stats(self) -> FakeStats:
        if self._fake is not None:
            return _stats(self._fake)
        return await self._ask(("stats",))

    async def close(self) -> None:
        if self._fake is not None:
            await self._fake.close()
        if self._process is not None:
            with contextlib.suppress(Exception):
                await self._ask(("close",))
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()

    async def _ask(self, message: tuple[Any, ...]) -> Any:
        assert self._conn is not None
        self._conn.send(message)
        return await asyncio.to_thread(self._conn.recv)


def _reset(fake: FakeTelegram, blocked: set[int], busy_once: set[int]) -> None:
    fake.calls.clear()
    fake.blocked_chats, fake.busy_once_chats = set(blocked), set(busy_once)
    fake.refused = 0
    fake._window.clear()


def _stats(fake: FakeTelegram) -> FakeStats:
    return FakeStats([int(c.params["chat_id"]) for c in fake.calls if c.method == "sendMessage"], fake.refused)


def _fake_process(conn: Connection, limit: float) -> None:
    asyncio.run(_serve_fake(conn, limit))


async def _serve_fake(conn: Connection, limit: float) -> None:
    fake = FakeTelegram(max_per_second=limit)
    await fake.start()
    try:
        while True:
            command, *rest = await asyncio.to_thread(conn.recv)
            if command == "url":
                conn.send(fake.base_url)
            elif command == "reset":
                _reset(fake, *rest)
                conn.send(True)
            elif command == "stats":
                conn.send(_stats(fake))
            else:
                conn.send(True)
                return
    finally:
        await fake.close()


# Databases ----------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_database(kind: str, url: str) -> AsyncIterator[tuple[str, str | None]]:
    """(url, schema) of an empty database: a SQLite file in a temp dir, or a new PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="delivery_bench_") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", None
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield url, schema
    finally:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.dispose()


async def populate(db: Database, chats: list[int]) -> tuple[int, int]:
    """Migrate, subscribe every chat (one bulk insert), and create one announcement for all of them."""
    await db.migrate()
    now = utcnow()
    rows = [
        {
            "user_pseudonym": secrets.token_hex(32),
            "channel": "telegram",
            "address": str(chat),
            "topics": [],
            "district": None,
            "active": True,
            "created_at": now,
        }
        for chat in chats
    ]
    async with db.session.begin() as session:
        await session.execute(Subscription.__table__.insert(), rows)
    store = AnnouncementStore(db)
    return await store.create("bench-author", "telegram", str(AUTHOR_CHAT), TEXT, Audience(None))


# Instruments: where the worker's time goes --------------------------------------------------------------------


@dataclass
class Timer:
    calls: int = 0
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds

    @property
    def mean_ms(self) -> float:
        return 1000 * self.seconds / self.calls if self.calls else 0.0


@dataclass
class Meter:
    """Shared by the store and the sender of both workers of a run."""

    claim: Timer = field(default_factory=Timer)
    finish: Timer = field(default_factory=Timer)
    complete: Timer = field(default_factory=Timer)
    batch: Timer = field(default_factory=Timer)
    send: Timer = field(default_factory=Timer)
    outcomes: Counter[str] = field(default_factory=Counter)
    pauses: list[tuple[float, float]] = field(default_factory=list)
    done_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    half: asyncio.Event = field(default_factory=asyncio.Event)
    half_at: int = 0
    cpu: float = 0.0  # CPU seconds of this process (all its threads) during the run

    def paused_seconds(self) -> float:
        """How long the worker stood still for 429s: the union of the retry_after intervals."""
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.pauses):
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total


class MeteredStore(AnnouncementStore):
    def __init__(self, db: Database, meter: Meter) -> None:
        super().__init__(db)
        self.meter = meter

    async def claim(self, worker: str, limit: int, lease: timedelta) -> list[Claimed]:
        start = time.perf_counter()
        try:
            return await super().claim(worker, limit, lease)
        finally:
            self.meter.claim.add(time.perf_counter() - start)

    async def finish(
        self, claimed: Claimed, status: str, error: str | None = None, retry_at: datetime | None = None
    ) -> None:
        start = time.perf_counter()
        try:
            await super().finish(claimed, status, error, retry_at)
        finally:
            self.meter.finish.add(time.perf_counter() - start)

    async def complete_finished(self) -> list[Announcement]:
        start = time.perf_counter()
        try:
            return await super().complete_finished()
        finally:
            self.meter.complete.add(time.perf_counter() - start)


class MeteredSender:
    """Counts outcomes, times the HTTP round trip, and notices half-way and the author's delivery report."""

    def __init__(self, inner: Sender, meter: Meter) -> None:
        self.inner, self.meter = inner, meter

    async def send(self, address: str, reply: Reply) -> Outcome:
        meter = self.meter
        if address == str(AUTHOR_CHAT):  # complete_finished marked it done: the run is over
            meter.done_at = meter.done_at or time.perf_counter()
            meter.done.set()
            return await self.inner.send(address, reply)
        start = time.perf_counter()
        outcome = await self.inner.send(address, reply)
        meter.send.add(time.perf_counter() - start)
        meter.outcomes[outcome.status] += 1
        if outcome.status == "retry_after":
            now = time.perf_counter()
            meter.pauses.append((now, now + outcome.retry_after))
        if outcome.status == "sent" and meter.outcomes["sent"] >= meter.half_at:
            meter.half.set()
        return outcome


# One run ------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    seconds: float
    ideal: float
    budget: float
    finished: bool
    recipients: int
    deliverable: int
    accepted: int
    retry_after: int
    rate_refused: int
    duplicate_chats: int
    extra_messages: int
    lost: int  # not blocked, never received, and its delivery is marked done (sent, failed...)
    unsent: int  # not blocked, never received, still pending or sending when the run stopped
    window: int
    meter: Meter
    states: Counter[str]
    crashed_after: int | None = None

    @property
    def ratio(self) -> float:
        return self.seconds / self.ideal

    @property
    def delivered(self) -> int:
        return self.deliverable - self.lost - self.unsent

    @property
    def projected(self) -> float:
        """The time the whole announcement would take at the pace of this run."""
        return self.seconds * self.deliverable / max(1, self.delivered)

    def goals(self) -> dict[str, str]:
        def verdict(ok: bool) -> str:
            return "yes" if ok else "NO"

        time_ok = verdict(self.finished and self.ratio <= TIME_GOAL)
        lost = verdict(self.lost == 0) if self.finished else f"{verdict(self.lost == 0)} so far ({self.unsent} unsent)"
        return {
            f"time <= {TIME_GOAL:.2f} x ideal": time_ok,
            "0 lost": lost,
            f"duplicates <= {self.window}": verdict(self.duplicate_chats <= self.window),
        }


class MeteredWorker(DeliveryWorker):
    """The real worker; only times each round of its loop (claim, send the batch, complete_finished)."""

    meter: Meter

    async def run_once(self) -> bool:
        start = time.perf_counter()
        worked = await super().run_once()
        if worked:
            self.meter.batch.add(time.perf_counter() - start)
        return worked


async def new_worker(
    args: argparse.Namespace, url: str, schema: str | None, meter: Meter, fake: FakeApi
) -> tuple[DeliveryWorker, Database, Bot]:
    """A worker as a fresh process would build it: its own engine, its own Bot."""
    db = Database(url, schema=schema)
    bot = Bot(TOKEN, base_url=fake.base_url)
    await bot.initialize()
    sender = MeteredSender(TelegramSender(bot), meter)
    lease = args.lease if args.lease is not None else 0.0
    worker = MeteredWorker(
        MeteredStore(db, meter), {"telegram": sender}, rate=args.rate, concurrency=args.concurrency, lease=lease
    )
    worker.meter = meter
    return worker, db, bot


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def delivery_states(db: Database, announcement: int) -> dict[int, str]:
    async with db.session() as session:
        rows = await session.execute(
            select(Subscription.address, Delivery.status)
            .join(Delivery, Delivery.subscription_id == Subscription.id)
            .where(Delivery.announcement_id == announcement)
        )
        return {int(address): status for address, status in rows}


async def run(args: argparse.Namespace, fake: FakeApi, crash: bool) -> Result:
    rng = random.Random(args.seed + crash)
    chats = [FIRST_CHAT + i for i in range(args.recipients)]
    picked = rng.sample(chats, round(args.recipients * args.blocked_share) + round(args.recipients * args.busy_share))
    blocked = set(picked[: round(args.recipients * args.blocked_share)])
    busy_once = set(picked) - blocked
    await fake.reset(blocked, busy_once)
    meter = Meter()
    async with fresh_database(args.database, args.url) as (url, schema):
        setup = Database(url, schema=schema)
        announcement, recipients = await populate(setup, chats)
        await setup.close()
        deliverable = recipients - len(blocked)
        meter.half_at = deliverable // 2
        ideal = deliverable / args.rate
        budget = args.timeout if args.timeout is not None else max(30.0, 3.2 * ideal)
        budget = budget or float("inf")

        worker, db, bot = await new_worker(args, url, schema, meter, fake)
        start, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(worker.run())
        crashed_after = None
        if crash:  # at half-way, or half-way through the time budget if the worker is slower than that
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(meter.half.wait(), budget / 2)
            await stop(task)  # killed: whatever it had claimed and not finished stays 'sending'
            crashed_after = meter.outcomes["sent"]
            await db.close()  # a dead process holds no connection
            await bot.shutdown()
            worker, db, bot = await new_worker(args, url, schema, meter, fake)
            task = asyncio.create_task(worker.run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(meter.done.wait(), max(1.0, budget - (time.perf_counter() - start)))
        end = meter.done_at or time.perf_counter()
        meter.cpu = time.process_time() - cpu
        await stop(task)
        await bot.shutdown()
        states = await delivery_states(db, announcement)
        await db.close()
    stats = await fake.stats()
    received = Counter(chat for chat in stats.chats if chat != AUTHOR_CHAT)
    missing = [chat for chat in chats if chat not in blocked and chat not in received]
    unsent = sum(1 for chat in missing if states.get(chat) in ("pending", "sending"))
    return Result(
        name="crash + restart" if crash else "normal",
        seconds=end - start,
        ideal=ideal,
        budget=budget,
        finished=meter.done.is_set(),
        recipients=recipients,
        deliverable=deliverable,
        accepted=sum(received.values()),
        retry_after=meter.outcomes["retry_after"],
        rate_refused=stats.rate_refused,
        duplicate_chats=sum(1 for n in received.values() if n > 1),
        extra_messages=sum(n - 1 for n in received.values() if n > 1),
        lost=len(missing) - unsent,
        unsent=unsent,
        window=args.concurrency,
        meter=meter,
        states=Counter(states.values()),
        crashed_after=crashed_after,
    )


# Report -------------------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: list[Result]) -> bool:
    print(
        f"\ndelivery bench: {args.database}, {args.recipients} recipients ({args.blocked_share:.0%} blocked, "
        f"{args.busy_share:.0%} answering one 429), worker rate {args.rate:g}/s, concurrency {args.concurrency}, "
        f"lease {args.lease if args.lease is not None else 0:g} s; fake limit {args.limit:g}/s, "
        f"{'in this process' if args.fake_in_process else 'in a child process'}\n"
    )
    head = f"{'run':<16}{'time s':>8}{'ideal s':>9}{'ratio':>7}{'accepted':>10}{'429s':>6}{'(rate)':>7}"
    head += f"{'dup chats':>10}{'extra':>7}{'lost':>6}{'unsent':>8}{'msg/s':>7}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.name:<16}{r.seconds:>8.1f}{r.ideal:>9.1f}{r.ratio:>7.2f}{r.accepted:>10}{r.retry_after:>6}"
            f"{r.rate_refused:>7}{r.duplicate_chats:>10}{r.extra_messages:>7}{r.lost:>6}{r.unsent:>8}"
            f"{r.delivered / r.seconds:>7.0f}"
        )
    print(
        "429s: retry_after answers the worker got, (rate): those from the fake's rate limit (the rest: one per busy "
        "chat);\ndup chats: chats that got it more than once, extra: the extra messages; lost: not blocked, never got "
        "it, yet\nits delivery is finished; unsent: still pending/sending when the run's time budget ran out"
    )
    for r in results:
        if not r.finished:
            print(
                f"  {r.name}: NOT FINISHED within its {r.budget:.0f} s budget ({r.delivered}/{r.deliverable} "
                f"delivered); at this pace the whole announcement takes ~{r.projected:.0f} s = "
                f"{r.projected / r.ideal:.1f} x ideal (--timeout 0: no budget)"
            )
    print("\nwhere the time goes: each round claims a batch, sends it concurrently (each message: limiter, HTTP,")
    print("finish in its own transaction), and runs complete_finished; the next round starts when the batch is done")
    for r in results:
        m = r.meter
        serial = m.claim.seconds + m.complete.seconds
        gather = m.batch.seconds - serial
        print(
            f"  {r.name:<16} {m.batch.calls} rounds of {m.batch.mean_ms:.1f} ms = {m.batch.seconds:.1f} s: claim "
            f"{m.claim.mean_ms:.1f} ms + complete_finished {m.complete.mean_ms:.1f} ms (serial DB {serial:.1f} s) + "
            f"batch {1000 * gather / max(1, m.batch.calls):.1f} ms ({gather:.1f} s)"
        )
        print(
            f"  {'':<16} per message: HTTP send {m.send.mean_ms:.1f} ms, finish {m.finish.mean_ms:.1f} ms "
            f"(x {m.finish.calls}); 429 pause windows (retry_after, union) {m.paused_seconds():.1f} s "
            f"(+ idle waits {max(0.0, r.seconds - m.batch.seconds):.1f} s outside rounds)"
        )
        print(
            f"  {'':<16} worker process CPU {m.cpu:.1f} s = {100 * m.cpu / r.seconds:.0f}% of one core "
            f"({1000 * m.cpu / max(1, m.send.calls):.2f} ms per message)"
        )
        crashed = f"crashed after {r.crashed_after} sent; " if r.crashed_after is not None else ""
        print(f"  {'':<16} {crashed}final delivery states {dict(sorted(r.states.items()))}")
    print("\ngoals")
    met = True
    for r in results:
        goals = r.goals()
        met = met and all(ok == "yes" for ok in goals.values())
        print(f"  {r.name:<16} " + "   ".join(f"{name}: {ok}" for name, ok in goals.items()))
    print(f"\nall goals met: {'yes' if met else 'NO'}")
    return met


async def main_async(args: argparse.Namespace) -> bool:
    fake = FakeApi(args.limit, args.fake_in_process)
    await fake.start()
    try:
        results = [await run(args, fake, crash=False), await run(args, fake, crash=True)]
    finally:
        await fake.close()
    return report(args, results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=400.0, help="the worker's rate, messages/s")
    parser.add_argument("--limit", type=float, default=500.0, help="the fake's allowed rate, messages/s")
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's batch size (in-flight window)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", POSTGRES_URL), help="PostgreSQL")
    parser.add_argument("--lease", type=float, default=None, help="seconds; default 0 (a single worker)")
    parser.add_argument("--blocked-share", type=float, default=0.01, help="share of chats that blocked the bot")
    parser.add_argument("--busy-share", type=float, default=0.01, help="share of chats answering one 429")
    parser.add_argument("--timeout", type=float, default=None, help="s per run; default max(30, 3.2 x ideal); 0: none")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fake-in-process", action="store_true", help="run the fake in this event loop")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return 0 if asyncio.run(main_async(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
