"""Memory benchmark: the serving process's RSS with a big SQLite database, after start and after a chat workload.

    .venv/bin/python bench/memory_bench.py [--users 100000] [--inquiries 1000000] [--requests 3000]
                                           [--db data/memory_bench.db] [--keep] [--breakdown]

Three processes, so that the figure is the serving process's alone:
  1. a generator process migrates a SQLite file with the real migrations (Database.migrate) and bulk-inserts
     N users, every one with a profile, and M logged inquiries (sqlite3 executemany in one transaction, indexes
     dropped during the load and rebuilt after, in the text formats SQLAlchemy writes);
  2. this process, the one measured: Services.start + web_application on 127.0.0.1 (and the content watcher,
     as `python -m bot` runs it), reading that file;
  3. a client process sending a few thousand POST /chat requests over loopback: returning users with stored
     profiles asking /match and /profile, new visitors browsing menus and asking questions in Chinese, and
     new visitors filling in a profile step by step and asking for their matches.
RSS is read from /proc/self/status (VmRSS now, VmHWM the peak) and resource.getrusage(RUSAGE_SELF).ru_maxrss
(the peak, this process only: children are not counted), after imports, after start and after the workload.
--breakdown loads jieba, OpenCC and pypinyin one at a time before Services.start (which then reuses them), to show
what each costs. The goal printed: peak RSS of the serving process under 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

GOAL_MB = 200.0
KEY = "bench-key-0123456789abcdef"
WEB_SHARE = 0.3  # of the users, those of the web chat: sessions member-000000 ... (the client returns as them)
IDENTITIES = ["college_student", "graduate", "vocational_student", "researcher", "returnee", "farmer", "veteran"]
IDENTITIES += ["gig_worker", "individual_business", "sme_owner", "high_level_talent", "failed_founder", "other"]
STAGES = ["idea", "preparing", "early", "growing"]
SECTORS = ["tech", "manufacturing", "agriculture", "services", "ecommerce", "culture_tourism", "other"]
DISTRICTS = ["huancui", "wendeng", "rongcheng", "rushan", "gaoqu", "jingqu", "lingang", "nanhai"]
NEEDS = ["loan", "investment", "workspace", "training", "mentor", "competition", "registration", "talent_support"]
NEEDS += ["tech_platform", "industry_links", "social_insurance", "branding"]
KINDS = {"menu": 12, "plans": 6, "plan": 8, "measure": 22, "deeplink": 4, "targets": 3, "help": 2}
KINDS |= {"question": 30, "smalltalk": 4, "match": 5, "profile": 2, "lang": 1, "invalid_button": 1}
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
    "开奶茶店需要什么手续",
    "威海到2026年要扶持多少创业者",
    "我是返乡农民工，想搞养殖，有政策吗",
    "高校毕业生创业有没有场地补贴",
    "你好",
    "谢谢",
]


# 1. The generator process ---------------------------------------------------------------------------------------


def generate(path: Path, users: int, inquiries: int, seed: int = 11) -> None:
    from storage.db import Database
    from storage.users import Pseudonymizer

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.migrate()
        await db.close()

    asyncio.run(migrate())
    rng = random.Random(seed)
    pseudonymize = Pseudonymizer(KEY.encode())
    now = datetime.now(UTC)
    web_users = int(users * WEB_SHARE)
    people = []
    for i in range(users):
        channel, address = ("web", f"member-{i:06d}") if i < web_users else ("telegram", str(700_000_000 + i))
        profile = {
            "identity": rng.sample(IDENTITIES, rng.choice((1, 1, 1, 2))),
            "stage": rng.choice(STAGES),
            "sector": rng.choice(SECTORS),
            "district": rng.choice(DISTRICTS),
            "needs": rng.sample(NEEDS, rng.randint(1, 3)),
        }
        people.append(
            (pseudonymize(channel, address), channel, rng.choices(["zh", "en", "ko"], [85, 10, 5])[0], profile)
        )
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='inquiries'")
    indexes = [(name, sql) for name, sql in indexes if sql]
    created, seen, updated = (_stamp(now - timedelta(days=d)) for d in (400, 2, 30))
    with conn:
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(
            "INSERT INTO users (pseudonym, channel, lang, created_at, last_seen_at, profile, profile_updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((p, channel, lang, created, seen, json.dumps(profile), updated) for p, channel, lang, profile in people),
        )
        conn.executemany(
            "INSERT INTO inquiries (created_at, channel, user_pseudonym, lang, kind, measure, plan, text, answered, "
            "results, district, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _inquiries(rng, people, inquiries, now),
        )
        for _, sql in indexes:
            conn.execute(sql)
    conn.execute("ANALYZE")
    conn.close()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _inquiries(rng: random.Random, people: list[tuple[str, str, str, dict]], n: int, now: datetime):
    kinds, weights = list(KINDS), list(KINDS.values())
    picked = rng.choices(people, weights=[1 / (i + 1) ** 0.5 for i in range(len(people))], k=n)
    picked_kinds = rng.choices(kinds, weights=weights, k=n)
    start = now - timedelta(days=365)
    moments = sorted(rng.randrange(365 * 86400) for _ in range(n))
    for (pseudonym, channel, lang, profile), kind, second in zip(picked, picked_kinds, moments, strict=True):
        measure = plan = text = answered = results = stored_profile = None
        if kind in ("measure", "deeplink"):
            measure = rng.randint(1, 24)
            plan = (measure - 1) // 4 + 1
        elif kind == "plan":
            plan = rng.randint(1, 7)
        elif kind == "question":
            text, answered = rng.choice(QUESTIONS), rng.random() < 0.8
            results = json.dumps([{"measure": rng.randint(1, 24), "targets": False, "rank": 1, "score": 6.5}])
        elif kind == "match":
            answered, stored_profile = True, json.dumps(profile)
            results = json.dumps(
                [{"measure": m, "rank": r, "score": 5} for r, m in enumerate(rng.sample(range(1, 25), 5), 1)]
            )
        yield (
            _stamp(start + timedelta(seconds=second)),
            channel,
            pseudonym,
            lang,
            kind,
            measure,
            plan,
            text,
            answered,
            results,
            profile["district"],
            stored_profile,
        )


# 3. The client process --------------------------------------------------------------------------------------------


def flows(rng: random.Random, requests: int, members: int) -> list[tuple[str, list[dict[str, str]]]]:
    """Sessions and what each sends, in order, until `requests` messages in all."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    total = 0
    for n in range(10**9):
        if total >= requests:
            break
        roll = rng.random()
        if roll < 0.35 and members:
            session = f"member-{rng.randrange(members):06d}"
            steps = [{"text": "/match"}, {"action": f"m:{rng.randint(1, 24)}"}, {"text": rng.choice(QUESTIONS)}]
            steps += [{"text": "/profile"}] if rng.random() < 0.3 else []
        elif roll < 0.55:
            session = f"visitor-p{n:06d}"
            steps = [{"text": "/start"}, {"action": "pedit"}, {"action": f"pid:{rng.choice(IDENTITIES)}"}]
            steps += [{"action": f"pst:{rng.choice(STAGES)}"}, {"action": f"psc:{rng.choice(SECTORS)}"}]
            steps += [{"action": f"pdi:{rng.choice(DISTRICTS)}"}, {"action": f"pne:{rng.choice(NEEDS)}"}]
            steps += [{"text": "/match"}]
        else:
            session = f"visitor-q{n:06d}"
            steps = [{"text": "/start"}, {"action": "plans"}, {"action": f"plan:{rng.randint(1, 7)}"}]
            steps += [{"action": f"m:{rng.randint(1, 24)}"}, {"text": f"/m{rng.randint(1, 24)}"}]
            steps += [{"text": rng.choice(QUESTIONS)} for _ in range(rng.randint(1, 3))]
        steps = steps[: requests - total]
        total += len(steps)
        out.append((session, steps))
    return out


async def client(url: str, requests: int, members: int, concurrency: int) -> dict[str, Any]:
    import aiohttp

    work = flows(random.Random(5), requests, members)
    latencies: list[float] = []
    slow: dict[str, int] = {}
    failures: dict[str, int] = {}
    empty = 0
    queue: asyncio.Queue[tuple[str, list[dict[str, str]]]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal empty
        while not queue.empty():
            session, steps = queue.get_nowait()
            for step in steps:
                started = time.perf_counter()
                async with http.post(f"{url}/chat", json={"session": session, **step}) as response:
                    body = await response.json()
                latencies.append(time.perf_counter() - started)
                if latencies[-1] > 0.25:
                    kind = step.get("action", "").split(":")[0] or step["text"].split()[0]
                    kind = kind if kind.startswith(("/", "p", "m")) else "question"
                    slow[kind] = slow.get(kind, 0) + 1
                if response.status != 200:
                    failures[str(response.status)] = failures.get(str(response.status), 0) + 1
                elif not body.get("replies"):
                    empty += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "sessions": len(work),
        "failures": failures,
        "empty": empty,
        "seconds": elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "slow": dict(sorted(slow.items(), key=lambda item: -item[1])),
    }


# 2. The measured process -----------------------------------------------------------------------------------------


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


class Readings:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, float]] = []

    def take(self, label: str) -> None:
        self.rows.append((label, status_mb("VmRSS"), status_mb("VmHWM"), maxrss_mb()))

    def print(self) -> None:
        print(f"  {'':<48}{'VmRSS':>10}{'VmHWM':>10}{'ru_maxrss':>11}")
        for label, rss, hwm, peak in self.rows:
            print(f"  {label:<48}{rss:>7.1f} MB{hwm:>7.1f} MB{peak:>8.1f} MB")


def breakdown(readings: Readings) -> None:
    """Load, one at a time and ahead of Services.start, what it would load anyway (all cached for it to reuse),
    to see what each costs; the totals are unchanged."""
    from handlers import search

    for label, load in [
        ("+ jieba dictionary (search._dictionary())", getattr(search, "_dictionary", None)),
        ("+ OpenCC t2s (search._converter())", getattr(search, "_converter", None)),
        ("+ pypinyin (import, as the search index does)", lambda: __import__("pypinyin").lazy_pinyin("贷款")),
    ]:
        if load is not None:
            load()
            readings.take(label)


async def serve_and_measure(args: argparse.Namespace, db: Path, readings: Readings) -> dict[str, Any]:
    from aiohttp import web

    from bot.app import Services, web_application
    from bot.config import PROJECT_ROOT, Settings

    readings.take("after importing bot.app (aiohttp, PTB, SA...)")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db}",
        content_dir=PROJECT_ROOT / "content",
        content_watch=not args.no_watch,
        pseudonym_key=KEY,
        pseudonym_key_file=db.parent / "pseudonym.key",
        telegram_bot_token=None,
        _env_file=None,
    )
    if args.breakdown:
        breakdown(readings)
    services = await Services.start(settings)
    runner = web.AppRunner(web_application(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    watcher = asyncio.create_task(services.content.watch()) if settings.content_watch else None
    await asyncio.sleep(0.5)
    readings.take("after Services.start + web app (idle)")
    sampled: list[float] = []

    async def sample() -> None:
        while True:
            sampled.append(status_mb("VmRSS"))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    command = [sys.executable, str(SCRIPT), "--client", f"http://127.0.0.1:{port}", "--requests", str(args.requests)]
    command += ["--members", str(int(args.users * WEB_SHARE)), "--concurrency", str(args.concurrency)]
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    sampler.cancel()
    if proc.returncode != 0:
        raise RuntimeError(f"the client failed with exit code {proc.returncode}")
    summary = json.loads(out.decode().strip().splitlines()[-1])
    summary["sampled_max"] = max(sampled, default=float("nan"))
    await services.inquiries.flush()
    readings.take(f"after the workload ({summary['requests']} POST /chat)")
    gc.collect()
    readings.take("after the workload, after gc.collect()")
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    await runner.cleanup()
    await services.close()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--inquiries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3000, help="POST /chat requests of the workload")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client sessions")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="reuse --db when it exists, and keep it")
    parser.add_argument("--breakdown", action="store_true", help="also measure jieba, OpenCC, pypinyin one by one")
    parser.add_argument("--no-watch", action="store_true", help="do not run the content watcher")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--members", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.users, args.inquiries)
        return 0
    if args.client:
        print(json.dumps(asyncio.run(client(args.client, args.requests, args.members, args.concurrency))))
        return 0

    readings = Readings()
    readings.take("interpreter + this script (stdlib only)")
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        db = args.db or Path(tmp) / "memory_bench.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        generated = "reused"
        if not (args.keep and db.exists()):
            for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                stale.unlink(missing_ok=True)
            started = time.perf_counter()
            command = [sys.executable, str(SCRIPT), "--generate", str(db)]
            subprocess.run([*command, "--users", str(args.users), "--inquiries", str(args.inquiries)], check=True)
            generated = f"generated in a separate process in {time.perf_counter() - started:.1f} s"
        readings.take("after generation (in a child process)")
        with sqlite3.connect(db) as conn:
            users = conn.execute("SELECT count(*), count(profile) FROM users").fetchone()
            inquiries = conn.execute("SELECT count(*) FROM inquiries").fetchone()[0]
        size = db.stat().st_size / 2**20
        summary = asyncio.run(serve_and_measure(args, db, readings))
        if args.db and not args.keep:
            db.unlink(missing_ok=True)

    print(
        f"memory benchmark: SQLite file of {size:.0f} MB with {users[0]:,} users ({users[1]:,} with a profile) "
        f"and {inquiries:,} inquiries, {generated}"
    )
    print("measured process: this one (pid-local /proc/self/status and getrusage(RUSAGE_SELF); the generator and")
    print("the HTTP client are child processes, not counted); Services.start + web_application on 127.0.0.1")
    readings.print()
    failures = sum(summary["failures"].values())
    print(
        f"  workload: {summary['requests']} POST /chat in {summary['sessions']} sessions from a client process, "
        f"{args.concurrency} at a time, {summary['seconds']:.1f} s ({summary['requests'] / summary['seconds']:.0f}"
        f" req/s), latency p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms; {failures} failed"
        f" {summary['failures'] or ''}, {summary['empty']} without replies; highest VmRSS sampled during it"
        f" {summary['sampled_max']:.1f} MB"
    )
    print(f"  requests slower than 250 ms, by what they sent: {summary['slow'] or 'none'}")
    peak = max(maxrss_mb(), status_mb("VmHWM"))
    verdict = "met" if peak < GOAL_MB else "MISSED"
    print(f"goal: peak RSS of the serving process < {GOAL_MB:.0f} MB: {verdict} (peak {peak:.1f} MB)")
    return 0 if peak < GOAL_MB else 1


if __name__ == "__main__":
    sys.exit(main())
