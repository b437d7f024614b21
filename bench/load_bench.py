"""Load benchmark: the assistant through its real Telegram code path against a bare python-telegram-bot echo bot.

    .venv/bin/python bench/load_bench.py [--database sqlite|postgresql|both] [--updates 2000] [--users 500]
                                         [--repeat 3] [--rate 100] [--paced-updates 1000] [--profile [paced]]
                                         [--echo-concurrency 256] [--echo-transport httpx|aiohttp]
                                         [--assistant-concurrency N]

Each bot runs in a process of its own (the "bot process"): the assistant is `Services.start` +
`telegram.build_application` + `telegram.start_polling`, what `python -m bot` runs with a token; the echo bot is a
python-telegram-bot Application with one MessageHandler that sends the text back, built and polled the same way
(same builder defaults, concurrent_updates 256 = what the assistant's `concurrent_updates(True)` means). This process
serves the fake Bot API of tests/fake_telegram.py on 127.0.0.1 (with a real server's listen backlog) and drives it,
so the fake's CPU is not charged to the bots (2 cores: bot on one, fake on the other).

For each bot, after a warm-up (jieba, the connection pools, the first INSERTs):
  * burst, --repeat times, echo and assistant alternating (the medians are compared): U updates pushed at once (the
    fake's getUpdates hands all pending updates over in one answer); throughput = U / (first push -> last reply
    reaching the fake); latency = push -> matching reply;
  * paced: N updates at a steady offered rate (--rate), for the latency and CPU cost of a bot that is not saturated.
Replies (sendMessage / editMessageText) are matched to updates by chat id and order. Every phase uses users never
seen before, each sending several updates interleaved with everyone else's (first contact, then returning).
The bot processes' CPU (user + system, all threads, from /proc/PID/stat) is reported per update.

The goal printed: the assistant reaches >= 80% of the echo bot's throughput (burst medians), and the same ratio
computed from CPU per update in the paced phase (the throughput ratio of two CPU-bound bots, free of the effects
of a saturated connection pool). --profile adds an unmeasured burst (--profile paced: paced phase) per bot under
pyinstrument (else cProfile) and prints where the time went. --echo-concurrency, --echo-transport and
--assistant-concurrency are what-ifs (the last patches ApplicationBuilder in the assistant's process only; the
product code is not changed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.fake_telegram import FakeTelegram  # noqa: E402

GOAL_RATIO = 0.80
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ERROR_TEXT = "抱歉，出了点问题"
QUESTIONS = [
    "我想贷款开个小店",
    "回老家创业有什么扶持",
    "大学生创业有什么补贴",
    "创业担保贷款怎么申请",
    "孵化器在哪里",
    "有没有免费的办公场地",
    "退役军人创业能贷多少钱",
    "想开个公司 营业执照去哪办",
    "天使投资怎么找",
    "创业培训在哪报名",
    "你好",
    "谢谢",
    "开奶茶店需要什么手续",
    "威海到2026年要扶持多少创业者",
]
# (kind, weight) of the steps after a user's first /start.
ASSISTANT_MIX = {"question": 35, "measure_button": 20, "plan_button": 15, "plans_button": 15, "m_command": 10}
ASSISTANT_MIX |= {"start": 5}
WARMUP_UPDATES = 150
CLK_TCK = os.sysconf("SC_CLK_TCK")


# The bot process -----------------------------------------------------------------------------------------------


async def serve_bot(args: argparse.Namespace) -> None:
    """Run one bot against the fake at --base-url until SIGTERM; SIGUSR1/SIGUSR2 start/stop the profiler."""
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    from bot.app import Services
    from bot.channels import telegram
    from bot.config import PROJECT_ROOT, Settings

    # Both bots log warnings and errors only: at INFO, httpx would log a line per Bot API request.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    services = None
    if args.serve == "assistant":
        settings = Settings(
            database_url=args.database_url,
            database_schema=args.schema or None,
            content_dir=PROJECT_ROOT / "content",
            content_watch=False,
            pseudonym_key="bench-key-0123456789abcdef",
            pseudonym_key_file=Path(args.tmp) / "pseudonym.key",
            telegram_bot_token=None,
            _env_file=None,
        )
        services = await Services.start(settings)
        if args.assistant_concurrency:  # a what-if, patched in this process only: not the product's setting
            chosen, original = args.assistant_concurrency, ApplicationBuilder.concurrent_updates

            def bounded(builder: Any, _value: object) -> Any:
                return original(builder, chosen)

            ApplicationBuilder.concurrent_updates = bounded
        application = telegram.build_application(services.assistant, args.token, args.base_url)
    else:

        async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await context.bot.send_message(update.effective_chat.id, update.effective_message.text)

        builder = (
            ApplicationBuilder()
            .token(args.token)
            .base_url(args.base_url)
            .base_file_url(args.base_url.replace("/bot", "/file/bot", 1))
            .concurrent_updates(args.echo_concurrency)
        )
        if args.echo_transport == "aiohttp":
            from bot.channels.telegram_http import AiohttpRequest

            builder = builder.request(AiohttpRequest()).get_updates_request(AiohttpRequest(connection_pool_size=1))
        application = builder.build()
        application.add_handler(MessageHandler(filters.TEXT, echo))
    await telegram.start_polling(application, poll_timeout=10)

    stop = asyncio.Event()
    profiler = Profiling(args.profile_out) if args.profile_out else None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if profiler is not None:
        loop.add_signal_handler(signal.SIGUSR1, profiler.start)
        loop.add_signal_handler(signal.SIGUSR2, profiler.stop)
    print("ready", flush=True)
    await stop.wait()
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
    if services is not None:
        await services.close()


class Profiling:
    """pyinstrument (samples the whole thread: every task, and SQLAlchemy's greenlets) when installed, else
    cProfile. Writes where the time went, by area, then the call tree."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.profiler: Any = None

    def start(self) -> None:
        try:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.001, async_mode="disabled")
            self.profiler.start()
        except ImportError:
            import cProfile

            self.profiler = cProfile.Profile()
            self.profiler.enable()

    def stop(self) -> None:
        if self.profiler is None:
            return
        if hasattr(self.profiler, "output_text"):
            session = self.profiler.stop()
            text = breakdown(session.frame_records) + "\n\n" + self.profiler.output_text(unicode=True, color=False)
        else:
            import io
            import pstats

            self.profiler.disable()
            stream = io.StringIO()
            stats = pstats.Stats(self.profiler, stream=stream)
            stats.sort_stats("tottime").print_stats(35)
            stats.sort_stats("cumulative").print_stats(45)
            text = stream.getvalue()
        self.out.with_suffix(".tmp").write_text(text)
        self.out.with_suffix(".tmp").rename(self.out)
        self.profiler = None


CARDS = tuple(f"{ROOT}/handlers/{name}.py" for name in ("cards", "profile_cards", "i18n"))
# (area, substrings of which one must be in a frame of the stack); the first area that matches a sample wins.
# Frames are pyinstrument's "function\0file\0line..." strings; the product's files are matched by full path.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("idle: event loop waiting in select()", ("select\x00",)),
    ("Bot API call: answerCallbackQuery (PTB + httpx)", ("answer_callback_query\x00",)),
    ("Bot API call: editMessageText (PTB + httpx)", ("edit_message_text\x00",)),
    ("Bot API call: sendMessage (PTB + httpx)", ("send_message\x00",)),
    ("Bot API: getUpdates, decoding updates (PTB)", ("get_updates\x00", "_network_loop", "de_list", "de_json")),
    ("core: users table (UserStore.seen & co)", (f"{ROOT}/storage/users.py",)),
    ("core: question search (QuestionIndex, jieba)", (f"{ROOT}/handlers/search.py",)),
    ("core: building replies (cards, i18n)", CARDS),
    ("core: flood control, inquiry records, rest", (f"{ROOT}/handlers/",)),
    ("inquiry log writer (batched INSERTs)", (f"{ROOT}/storage/inquiry_log.py",)),
    ("database: SQLAlchemy/driver (in greenlets)", ("sqlalchemy", "aiosqlite", "asyncpg")),
    ("Telegram channel glue: keyboards, Incoming", (f"{ROOT}/bot/channels/telegram.py",)),
    ("PTB: update dispatch (Application, handlers)", ("/telegram/",)),
]
# Within the Bot API calls: which layer of python-telegram-bot -> httpx -> httpcore the time is spent in.
BOT_API_PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("httpcore pool: matching requests to connections", ("_assign_requests_to_connections", "AsyncPoolRequest")),
    ("httpcore pool: closing expired connections", ("_close_connections", "_close_expired")),
    ("h11: HTTP/1.1 framing", ("/h11/",)),
    ("sockets: anyio streams, asyncio transports", ("/anyio/", "asyncio/selector_events", "asyncio/streams")),
    ("PTB: params to JSON, reply to Message (de_json)", ("de_json", "to_dict", "json", "_insert_defaults")),
    ("httpx: Request/Response objects, headers, URLs", ("/httpx/",)),
    ("httpcore: connection handling", ("/httpcore/",)),
    ("PTB: Bot/ExtBot/HTTPXRequest wrappers", ("/telegram/",)),
]


def _area(joined: str, areas: list[tuple[str, tuple[str, ...]]], default: str) -> str:
    return next((name for name, marks in areas if any(m in joined for m in marks)), default)


def breakdown(records: list[tuple[list[str], float]]) -> str:
    """The profiled time by area, from pyinstrument's samples (each a call stack and the time it stood for)."""
    totals: Counter[str] = Counter()
    api: Counter[str] = Counter()
    for stack, seconds in records:
        joined = "\n".join(stack)
        area = _area(joined, AREAS, "other: event loop, tasks")
        totals[area] += seconds
        if area.startswith("Bot API call"):
            api[_area(joined, BOT_API_PARTS, "other")] += seconds
    busy = sum(t for a, t in totals.items() if not a.startswith("idle"))
    lines = [f"time by area (share of the non-idle time; {busy:.1f} s busy of {sum(totals.values()):.1f} s):"]
    for area, seconds in totals.most_common():
        share = "" if area.startswith("idle") else f"{seconds / busy:6.1%}"
        lines.append(f"  {area:<52}{seconds:>8.2f} s {share}")
    calls = sum(api.values())
    lines.append(f"of which the Bot API calls ({calls:.1f} s), by layer:")
    lines += [f"  {part:<52}{seconds:>8.2f} s {seconds / calls:6.1%}" for part, seconds in api.most_common()]
    return "\n".join(lines)


# The driver: fake Bot API and measurements --------------------------------------------------------------------


@dataclass
class TimedFake(FakeTelegram):
    """The test fake, stamping the moment each reply reaches it, per chat."""

    replies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    expected: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    extra: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.remaining = 0
        self.done = asyncio.Event()

    async def start(self) -> None:
        """As the test fake, but with a listen backlog like a real server's: a burst makes python-telegram-bot
        open up to 256 connections at once, and aiohttp's default backlog (128) would drop SYNs (1 s retries,
        ConnectTimeout after 5 s) whenever this process is slow to accept."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096).start()
        self.port = self._runner.addresses[0][1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def close(self) -> None:
        await self._runner.cleanup()

    def expect(self, counts: dict[int, int]) -> None:
        """Start a phase: forget what earlier phases left (all delivered and answered by now, or given up on:
        the fake scans its whole update list on every getUpdates) and wait for these replies."""
        self.updates.clear()
        self.calls.clear()
        self.replies = defaultdict(list)
        self.expected = counts
        self.remaining = sum(counts.values())
        self.errors = self.extra = 0
        self.done = asyncio.Event()

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._sendMessage(params)
        self._stamp(params)
        return result

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._editMessageText(params)
        self._stamp(params)
        return result

    def _stamp(self, params: dict[str, Any]) -> None:
        now = time.perf_counter()
        chat = int(params["chat_id"])
        if str(params.get("text", "")).startswith(ERROR_TEXT):
            self.errors += 1
        stamps = self.replies[chat]
        stamps.append(now)
        if len(stamps) <= self.expected.get(chat, 0):
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()
        else:
            self.extra += 1


class Updates:
    """Telegram update bodies for users of one phase."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids = itertools.count(500_000)

    def user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": "Founder", "language_code": "zh-hans"}

    def text(self, user_id: int, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self.ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": self.user(user_id),
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return {"message": message}

    def press(self, user_id: int, data: str) -> dict[str, Any]:
        query = {
            "id": str(next(self.ids)),
            "from": self.user(user_id),
            "chat_instance": str(user_id),
            "data": data,
            "message": {
                "message_id": next(self.ids),
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": 123456, "is_bot": True, "first_name": "创业威海", "username": "weihai_test_bot"},
                "text": "menu",
            },
        }
        return {"callback_query": query}

    def assistant_step(self, user_id: int, first: bool) -> dict[str, Any]:
        kind = "start" if first else self.rng.choices(list(ASSISTANT_MIX), weights=list(ASSISTANT_MIX.values()))[0]
        if kind == "start":
            return self.text(user_id, "/start")
        if kind == "question":
            return self.text(user_id, self.rng.choice(QUESTIONS))
        if kind == "m_command":
            return self.text(user_id, f"/m{self.rng.randint(1, 24)}")
        if kind == "plans_button":
            return self.press(user_id, "plans")
        if kind == "plan_button":
            return self.press(user_id, f"plan:{self.rng.randint(1, 7)}")
        return self.press(user_id, f"m:{self.rng.randint(1, 24)}")

    def echo_step(self, user_id: int, _first: bool) -> dict[str, Any]:
        return self.text(user_id, self.rng.choice([*QUESTIONS, "hello", "在吗", "谢谢你"]))

    def phase(self, bot: str, count: int, users: int, first_id: int) -> list[tuple[int, dict[str, Any]]]:
        """`count` updates from `users` new users, round-robin: each user's next step comes after everyone's."""
        step = self.assistant_step if bot == "assistant" else self.echo_step
        out: list[tuple[int, dict[str, Any]]] = []
        for n in itertools.count():
            for u in range(users):
                if len(out) == count:
                    return out
                out.append((first_id + u, step(first_id + u, n == 0)))
        return out


@dataclass
class Result:
    label: str
    updates: int
    users: int
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    errors: int = 0
    extra: int = 0
    bot_cpu: float = 0.0
    fake_cpu: float = 0.0

    @property
    def throughput(self) -> float:
        return (self.updates - self.missing) / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")

    def row(self) -> str:
        per_update = self.bot_cpu / max(1, self.updates) * 1000
        return (
            f"  {self.label:<26}{self.updates:>7}{self.users:>6}{self.wall:>8.2f}{self.throughput:>9.0f}"
            f"{self.pct(0.50):>9.1f}{self.pct(0.99):>9.1f}{self.mean_ms():>9.1f}"
            f"{per_update:>9.2f}{self.bot_cpu / self.wall * 100 if self.wall else 0:>7.0f}%"
            f"{self.fake_cpu / self.wall * 100 if self.wall else 0:>7.0f}%"
            f"{self.missing:>6}{self.errors:>5}{self.extra:>5}"
        )


HEADER = (
    f"  {'bot, phase':<26}{'upd':>7}{'users':>6}{'wall s':>8}{'upd/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
    f"{'CPU ms/u':>9}{'botCPU':>8}{'fakeCPU':>8}{'miss':>6}{'err':>5}{'xtra':>5}"
)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_phase(
    fake: TimedFake,
    pid: int,
    label: str,
    updates: list[tuple[int, dict[str, Any]]],
    users: int,
    rate: float | None,
    timeout: float,
) -> Result:
    counts: dict[int, int] = defaultdict(int)
    for chat, _ in updates:
        counts[chat] += 1
    fake.expect(dict(counts))
    pushed: dict[int, list[float]] = defaultdict(list)
    cpu0, fake0 = cpu_seconds(pid), time.process_time()
    start = time.perf_counter()
    for i, (chat, update) in enumerate(updates):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        pushed[chat].append(time.perf_counter())
        await fake.push(update)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fake.done.wait(), timeout)
    result = Result(label, len(updates), users, missing=fake.remaining, errors=fake.errors, extra=fake.extra)
    last = max((t for stamps in fake.replies.values() for t in stamps), default=start)
    result.wall = last - start
    result.bot_cpu, result.fake_cpu = cpu_seconds(pid) - cpu0, time.process_time() - fake0
    for chat, times in pushed.items():
        replies = fake.replies.get(chat, [])
        result.latencies += [r - p for p, r in zip(times, replies, strict=False)]
    return result


class BotProcess:
    """One bot in a process of its own, polling a fake Bot API that this process serves."""

    def __init__(self, bot: str, args: argparse.Namespace, tmp: str, database_url: str = "", schema: str = "") -> None:
        self.bot, self.args, self.tmp = bot, args, tmp
        self.database_url, self.schema = database_url, schema
        self.fake = TimedFake()
        self.updates = Updates(random.Random(7))
        self.next_user = 10_000_000
        self.child: asyncio.subprocess.Process | None = None
        self.log = Path(tmp) / f"{bot}.log"
        self.profile_out = Path(tmp) / f"profile-{bot}.txt"

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    async def start(self) -> None:
        await self.fake.start()
        command = [sys.executable, str(SCRIPT), "--serve", self.bot]
        command += ["--base-url", self.fake.base_url, "--token", self.fake.token, "--tmp", self.tmp]
        command += ["--database-url", self.database_url, "--schema", self.schema]
        command += ["--echo-concurrency", str(self.args.echo_concurrency)]
        command += ["--echo-transport", self.args.echo_transport]
        command += ["--assistant-concurrency", str(self.args.assistant_concurrency)]
        command += ["--profile-out", str(self.profile_out)] if self.args.profile else []
        with self.log.open("wb") as log:
            self.child = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert self.child.stdout is not None
        line = await asyncio.wait_for(self.child.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"the {self.bot} bot did not start; see {self.log}")
        warm = await self.phase("warm-up", WARMUP_UPDATES, WARMUP_UPDATES // 3)
        if warm.missing:
            raise RuntimeError(f"the {self.bot} bot answered {warm.updates - warm.missing}/{warm.updates} warm-ups")

    async def phase(self, label: str, count: int, users: int, rate: float | None = None) -> Result:
        """`count` updates from `users` users never seen before."""
        updates = self.updates.phase(self.bot, count, users, self.next_user)
        self.next_user += users
        timeout = max(60.0, count / 20)
        return await run_phase(self.fake, self.pid, label, updates, users, rate, timeout)

    def signal(self, number: int) -> None:
        if self.child is not None and self.child.returncode is None:
            self.child.send_signal(number)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def logged_errors(self) -> list[str]:
        """The exception lines the bot process logged (tracebacks' last lines), most frequent first."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(errors="replace").splitlines()
        pattern = r"^(ERROR|WARNING) |^[\w.]+(Error|Exception|TimedOut|Timeout)\w*(:|$)"
        found = [line for line in lines if re.match(pattern, line)]
        return [f"{n} x {text[:150]}" for text, n in Counter(found).most_common(3)]

    async def stop(self) -> None:
        if self.child is not None and self.child.returncode is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.child.wait(), 30)
            except TimeoutError:
                self.child.kill()
                await self.child.wait()
        await self.fake.close()


def median_result(label: str, results: list[Result]) -> Result:
    """The repeat with the median throughput."""
    ordered = sorted(results, key=lambda r: r.throughput)
    chosen = ordered[(len(ordered) - 1) // 2]
    return replace(chosen, label=label)


async def bench_database(database: str, args: argparse.Namespace) -> tuple[Result, Result]:
    from sqlalchemy.ext.asyncio import create_async_engine

    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        schema = ""
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            title = f"SQLite (temp file {Path(tmp) / 'bench.db'})"
        else:
            url, schema = args.postgres_url, f"bench_{uuid.uuid4().hex[:10]}"
            title = f"PostgreSQL ({url}, schema {schema}, created and dropped)"
        admin = create_async_engine(args.postgres_url) if schema else None
        if admin is not None:
            async with admin.begin() as conn:
                await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        echo, assistant = BotProcess("echo", args, tmp), BotProcess("assistant", args, tmp, url, schema)
        try:
            await echo.start()
            await assistant.start()
            rows: list[Result] = []
            for n in range(1, args.repeat + 1):
                rows.append(await echo.phase(f"echo, burst #{n}", args.updates, args.users))
                rows.append(await assistant.phase(f"assistant, burst #{n}", args.updates, args.users))
            echo_median = median_result("echo, burst median", rows[0::2])
            assistant_median = median_result("assistant, burst median", rows[1::2])
            paced: list[Result] = []
            if args.rate:
                users, label = max(1, args.paced_updates // 4), f"paced {args.rate:g}/s"
                paced.append(await echo.phase(f"echo, {label}", args.paced_updates, users, args.rate))
                paced.append(await assistant.phase(f"assistant, {label}", args.paced_updates, users, args.rate))
            rss = f"peak RSS of the bot processes (before any profiling): echo {echo.peak_rss_mb():.0f} MB, assistant "
            rss += f"{assistant.peak_rss_mb():.0f} MB"
            profiles: dict[str, str] = {}
            for proc in (echo, assistant) if args.profile else ():
                proc.signal(signal.SIGUSR1)
                if args.profile == "paced":
                    await proc.phase(f"{proc.bot}, profiled", args.paced_updates, args.paced_updates // 4, args.rate)
                else:
                    await proc.phase(f"{proc.bot}, profiled", args.updates, args.users)
                proc.signal(signal.SIGUSR2)
                for _ in range(600):
                    if proc.profile_out.exists():
                        break
                    await asyncio.sleep(0.1)
                profiles[proc.bot] = proc.profile_out.read_text() if proc.profile_out.exists() else "(no profile)"
        finally:
            await echo.stop()
            await assistant.stop()
            if admin is not None:
                async with admin.begin() as conn:
                    await conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                await admin.dispose()
        errors = assistant.logged_errors() + echo.logged_errors()
    print(f"\n== {title} ==  (load average now: {_loadavg()})")
    print(HEADER)
    for result in [*rows, echo_median, assistant_median, *paced]:
        print(result.row())
    print(f"  {rss}")
    for line in errors:
        print(f"  logged by a bot process: {line}")
    ratio = assistant_median.throughput / echo_median.throughput
    verdict = "met" if ratio >= GOAL_RATIO else "MISSED"
    print(
        f"  throughput assistant/echo (burst medians): {assistant_median.throughput:.0f} / "
        f"{echo_median.throughput:.0f} upd/s = {ratio:.2f}  -> goal >= {GOAL_RATIO:.2f}: {verdict}"
    )
    best_echo = max(rows[0::2], key=lambda r: r.throughput)
    print(
        f"  throughput assistant (median) / echo's best burst: {assistant_median.throughput:.0f} / "
        f"{best_echo.throughput:.0f} upd/s = {assistant_median.throughput / best_echo.throughput:.2f}  (httpx's pool "
        "slows the echo bot from its second burst on)"
    )
    cpu_from = paced or [echo_median, assistant_median]
    cpu_ratio = (cpu_from[0].bot_cpu / cpu_from[0].updates) / (cpu_from[1].bot_cpu / cpu_from[1].updates)
    verdict = "met" if cpu_ratio >= GOAL_RATIO else "MISSED"
    print(
        f"  CPU per update echo/assistant ({'paced' if paced else 'burst'}): {cpu_ratio:.2f}  (the throughput ratio "
        f"if both were CPU-bound) -> goal >= {GOAL_RATIO:.2f}: {verdict}"
    )
    if paced:
        e, a = paced
        print(
            f"  latency at {args.rate:g} upd/s offered: assistant p50 {a.pct(0.5):.1f} ms, p99 {a.pct(0.99):.1f} ms;"
            f" echo p50 {e.pct(0.5):.1f} ms, p99 {e.pct(0.99):.1f} ms"
        )
    for bot, profile in profiles.items():
        print(f"\n  profile of the {bot} bot process (main thread) during an extra, unmeasured {args.profile} phase:")
        print("\n".join("    " + line for line in profile.splitlines()))
    return echo_median, assistant_median


async def drive(args: argparse.Namespace) -> int:
    print(
        f"load benchmark: {args.updates} updates from {args.users} users per burst"
        + (f", then {args.paced_updates} paced at {args.rate:g}/s" if args.rate else "")
        + f"; {os.cpu_count()} CPUs; bot and fake Bot API in separate processes on 127.0.0.1"
    )
    print(f"goal: the assistant reaches >= {GOAL_RATIO:.0%} of the echo bot's throughput")
    print(f"load average of the machine at the start (other work competes for the 2 cores): {_loadavg()}")
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    missed = False
    for database in databases:
        echo, assistant = await bench_database(database, args)
        missed |= assistant.throughput < GOAL_RATIO * echo.throughput
    print(
        "\ncolumns: upd/s = updates / (first push -> last reply at the fake); latency = push -> matching reply"
        " (chat id, order); CPU ms/u and botCPU = the bot process's user+sys CPU (all threads) per update and"
        " per wall second; fakeCPU = this driver process (fake Bot API); miss = updates never answered;"
        " err = 'sorry' error replies; xtra = replies beyond one per update"
    )
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--updates", type=int, default=2000, help="updates per burst (default 2000)")
    parser.add_argument("--users", type=int, default=0, help="distinct users per burst (default updates/4)")
    parser.add_argument("--rate", type=float, default=100.0, help="offered rate of the paced phase; 0: no such phase")
    parser.add_argument("--paced-updates", type=int, default=1000, help="updates in the paced phase (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="bursts per bot, alternating (default 3)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--echo-concurrency",
        type=int,
        default=256,
        help="the echo bot's concurrent_updates (default 256: what concurrent_updates(True) means, as the assistant)",
    )
    parser.add_argument(
        "--echo-transport",
        choices=["httpx", "aiohttp"],
        default="httpx",
        help="what-if: the echo bot's Bot API transport (default httpx: python-telegram-bot's own; the assistant "
        "uses bot/channels/telegram_http.py's aiohttp one)",
    )
    parser.add_argument(
        "--assistant-concurrency",
        type=int,
        default=0,
        help="what-if: patch concurrent_updates(True) to this in the assistant's process (default 0: as the product)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="burst",
        choices=["burst", "paced"],
        help="profile an extra burst (default) or paced phase in each bot process",
    )
    parser.add_argument("--serve", choices=["assistant", "echo"], help=argparse.SUPPRESS)
    for hidden in ("--base-url", "--token", "--database-url", "--schema", "--tmp", "--profile-out"):
        parser.add_argument(hidden, default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_bot(args))
        return 0
    args.users = args.users or max(1, args.updates // 4)
    return asyncio.run(drive(args))


if __name__ == "__main__":
    sys.exit(main())
