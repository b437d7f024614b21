"""Benchmark the demand report: N realistic inquiry rows in a SQLite file, then time the report and its formats.

    .venv/bin/python bench/reports_bench.py [--rows 1000000] [--db data/reports_bench.db] [--keep]

The schema is made by the real migrations (Database.migrate); rows go in with the sqlite3 module in one
transaction, in the same text formats SQLAlchemy writes. Pseudonyms are random hex, as real ones are hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from content.loader import load_content  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.reports import Period, demand_report, group_questions, to_csv, to_json, to_table  # noqa: E402

GOAL_SECONDS = 2.0
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 365
KINDS = {
    "menu": 12,
    "plans": 6,
    "plan": 8,
    "measure": 22,
    "deeplink": 4,
    "targets": 3,
    "help": 2,
    "question": 30,
    "smalltalk": 4,
    "match": 4,
    "profile": 2,
    "lang": 1,
    "invalid_button": 1,
    "unknown_command": 1,
}
CHANNELS = {"telegram": 40, "wechat": 30, "web": 20, "api": 6, "shell": 4}
DISTRICTS = ["huancui", "wendeng", "rongcheng", "rushan", "gaoqu", "jingqu", "lingang", "nanhai"]
IDENTITIES = ["college_student", "graduate", "returnee", "farmer", "veteran", "gig_worker", "individual_business"]
IDENTITIES += ["sme_owner", "high_level_talent", "researcher", "failed_founder", "other"]
STAGES = ["idea", "preparing", "early", "growing"]
SECTORS = ["tech", "manufacturing", "agriculture", "services", "ecommerce", "culture_tourism", "other"]
NEEDS = ["loan", "investment", "workspace", "training", "mentor", "competition", "registration"]
PLAN_OF = {m: p for p, ms in enumerate([(1, 2), (3, 4, 5, 6), (7, 8, 9, 10), (11, 12, 13, 14)], 1) for m in ms}
PLAN_OF |= {m: p for p, ms in enumerate([(15, 16, 17, 18), (19, 20, 21), (22, 23, 24)], 5) for m in ms}
# Loans, youth and returnees are asked about most; a long tail for the rest.
MEASURE_WEIGHTS = [3, 2, 4, 2, 1, 3, 20, 5, 3, 2, 4, 3, 6, 9, 2, 1, 3, 4, 5, 4, 2, 1, 1, 3]
UNANSWERED = [
    "怎么办营业执照",
    "公司注册需要什么材料",
    "社保怎么交",
    "有没有免费的办公场地",
    "个人所得税怎么算",
    "商标怎么注册",
    "开网店要交税吗",
    "外地户口可以申请吗",
    "食品经营许可证怎么办",
    "残疾人创业有补贴吗",
    "how do i register a company",
    "where is the service centre",
]
SUFFIXES = ["", "？", "?", "啊", "呢", "吗？", "。", " ", "！"]
ANSWERED = ["创业担保贷款怎么申请", "大学生创业有什么补贴", "返乡创业政策", "孵化器在哪里", "天使投资", "创业培训"]


def weighted(rng: random.Random, table: dict[str, int]) -> list[str]:
    keys = list(table)
    return rng.choices(keys, weights=[table[k] for k in keys], k=1)


def make_users(rng: random.Random, count: int) -> list[dict]:
    users = []
    for _ in range(count):
        has_profile = rng.random() < 0.45
        profile = None
        if has_profile:
            profile = {
                "identity": rng.sample(IDENTITIES, rng.choice((1, 1, 1, 2))),
                "stage": rng.choice(STAGES),
                "sector": rng.choice(SECTORS),
                "district": rng.choice(DISTRICTS) if rng.random() < 0.9 else None,
                "needs": rng.sample(NEEDS, rng.randint(0, 3)),
            }
        users.append(
            {
                "pseudonym": rng.getrandbits(256).to_bytes(32, "big").hex(),
                "channel": weighted(rng, CHANNELS)[0],
                "lang": rng.choices(["zh", "en", "ko"], weights=[85, 10, 5])[0],
                "profile": profile,
                "district": profile["district"] if profile else None,
                "match": json.dumps(match_results(rng, profile)) if profile else None,
                "profile_json": json.dumps(profile) if profile else None,
            }
        )
    return users


def match_results(rng: random.Random, profile: dict | None) -> list[dict]:
    picked = rng.sample(range(1, 25), rng.randint(3, 9))
    applicable = [{"measure": m, "rank": i, "score": round(rng.uniform(1, 9), 2)} for i, m in enumerate(picked, 1)]
    near = [{"measure": m, "near_miss": True, "score": 0.5} for m in rng.sample(range(1, 25), rng.randint(0, 2))]
    return applicable + [n for n in near if n["measure"] not in picked]


# The long tail of unanswered questions: wordings put together from parts, most of them asked once.
WHO = ["", "我", "我家", "大学生", "退役军人", "个体户", "外地人", "残疾人", "农民", "宝妈", "留学生", "我朋友"]
WHERE = ["", "在环翠区", "在文登", "在荣成", "在乳山", "在高区", "在经区", "在临港", "在南海新区", "在威海"]
WHAT = ["开奶茶店", "开网店", "做直播带货", "开民宿", "开超市", "办养殖场", "开汽修店", "做外贸", "开咖啡馆"]
WHAT += ["开培训机构", "做跨境电商", "开小饭馆", "开美甲店", "搞农家乐", "开宠物店", "做短视频", "开花店", "办托育机构"]
ASK = ["需要什么手续", "要办哪些证", "去哪里办", "大概要多少钱", "能不能贷款", "有补贴吗", "怎么交税", "要消防验收吗"]
ASK += ["要不要环评", "房租有减免吗", "能贷{n}万吗", "{n}岁还能申请吗"]


def long_tail(rng: random.Random) -> str:
    ask = rng.choice(ASK).format(n=rng.choice((5, 10, 20, 30, 50, 35, 45)))
    return rng.choice(WHO) + rng.choice(WHERE) + rng.choice(WHAT) + ask


def question(rng: random.Random) -> tuple[str, bool, str]:
    if rng.random() < 0.2:
        base = long_tail(rng) if rng.random() < 0.4 else rng.choice(UNANSWERED)
        return base + rng.choice(SUFFIXES), False, "[]"
    first = rng.choices(range(1, 25), weights=MEASURE_WEIGHTS)[0]
    hits = [{"measure": first, "targets": False, "rank": 1, "score": round(rng.uniform(2, 9), 2)}]
    if rng.random() < 0.05:
        hits = [{"measure": None, "targets": True, "rank": 1, "score": 5.0}]
    return rng.choice(ANSWERED) + rng.choice(SUFFIXES), True, json.dumps(hits)


def rows(rng: random.Random, users: list[dict], n: int):
    kinds = list(KINDS)
    kind_weights = [KINDS[k] for k in kinds]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(users))]  # some people come back a lot
    picked_users = rng.choices(users, weights=weights, k=n)
    picked_kinds = rng.choices(kinds, weights=kind_weights, k=n)
    # Logged as they happen: in time order, so row ids follow created_at as in a real log.
    moments = sorted(rng.randrange(DAYS * 86400 * 10**6) for _ in range(n))
    for user, kind, moment in zip(picked_users, picked_kinds, moments, strict=True):
        when = START + timedelta(microseconds=moment)
        measure = plan = text = answered = None
        results = profile = "null"
        if kind in ("measure", "deeplink"):
            measure = rng.choices(range(1, 25), weights=MEASURE_WEIGHTS)[0]
            plan = PLAN_OF[measure]
            text = f"m{measure}" if kind == "deeplink" else None
        elif kind == "plan":
            plan = rng.randint(1, 7)
        elif kind == "question":
            text, answered, results = question(rng)
        elif kind == "match":
            if user["profile"] is None:
                kind = "profile"
            else:
                answered, results, profile = True, user["match"], user["profile_json"]
        yield (
            when.strftime("%Y-%m-%d %H:%M:%S.%f"),
            user["channel"],
            user["pseudonym"],
            user["lang"],
            kind,
            measure,
            plan,
            text,
            answered,
            results,
            user["district"],
            profile,
        )


async def migrate(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.close()


def fill(path: Path, n: int, seed: int) -> float:
    rng = random.Random(seed)
    users = make_users(rng, max(n // 20, 10))
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    generated = rows(rng, users, n)
    with conn:
        while batch := [row for _, row in zip(range(50_000), generated, strict=False)]:
            conn.executemany(
                "INSERT INTO inquiries (created_at, channel, user_pseudonym, lang, kind, measure, plan, text, "
                "answered, results, district, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


async def time_report(path: Path, period: Period, runs: int) -> None:
    content = load_content(ROOT / "content")
    print(f"load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    db = Database(f"sqlite+aiosqlite:///{path}")
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        report = await demand_report(db, period, content)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    await db.close()
    formats = {}
    for name, render in (("table", to_table), ("csv", to_csv), ("json", to_json)):
        started = time.perf_counter()
        size = len(render(report))
        formats[name] = (time.perf_counter() - started, size)
    print(f"inquiries in period: {report.inquiries:,}")
    print(f"demand_report wall: first {walls[0]:.3f} s, best of {runs} {min(walls):.3f} s")
    print(f"demand_report CPU (all threads): first {cpus[0]:.3f} s, best {min(cpus):.3f} s")
    print(f"  of which grouping {grouping_parts(path, period)} (in a thread, beside the queries)")
    for name, (seconds, size) in formats.items():
        print(f"to_{name}: {seconds * 1000:.1f} ms ({size:,} chars)")
    rendering = sum(seconds for seconds, _ in formats.values())
    for label, seconds in (("first run", walls[0]), (f"best of {runs}", min(walls))):
        verdict = "met" if seconds + rendering < GOAL_SECONDS else "MISSED"
        print(f"report + three formats, {label}: {seconds + rendering:.3f} s -> {GOAL_SECONDS:.0f} s goal {verdict}")


def grouping_parts(path: Path, period: Period) -> str:
    """The unanswered questions of the period, and how long grouping them takes on its own."""
    since, until = (moment.strftime("%Y-%m-%d %H:%M:%S.%f") for moment in period.utc())
    conn = sqlite3.connect(path)
    texts = conn.execute(
        "SELECT text, count(*) FROM inquiries WHERE kind = 'question' AND answered = 0 AND text IS NOT NULL "
        "AND created_at >= ? AND created_at < ? GROUP BY text",
        (since, until),
    ).fetchall()
    conn.close()
    started = time.perf_counter()
    groups = group_questions(texts)
    seconds = time.perf_counter() - started
    asked = sum(n for _, n in texts)
    return f"{asked:,} unanswered ({len(texts):,} distinct texts) into {len(groups):,} groups: {seconds:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "reports_bench.db")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="time an existing file instead of refilling it")
    parser.add_argument("--keep", action="store_true", help="keep the database file afterwards")
    args = parser.parse_args()
    if not args.reuse or not args.db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        args.db.parent.mkdir(parents=True, exist_ok=True)
        asyncio.run(migrate(args.db))
        seconds = fill(args.db, args.rows, args.seed)
        print(f"generated {args.rows:,} rows in {seconds:.1f} s ({args.db.stat().st_size / 2**20:.0f} MiB)")
    period = Period(START, START + timedelta(days=DAYS))
    asyncio.run(time_report(args.db, period, args.runs))
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
