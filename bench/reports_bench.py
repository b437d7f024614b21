"""Benchmark the demand report: N realistic inquiry rows in a SQLite file, then time the report and its formats.

    .venv/bin/python bench/reports_bench.py [--rows 1000000] [--db data/reports_bench.db] [--keep] [--reuse]

The schema is made by the real migrations (Database.migrate); rows go in with the sqlite3 module in one
transaction, in the same text formats SQLAlchemy writes, with what the inquiry log works out as it writes
(each row's hit, funnel step, question group, matched measures and identities; the daily counts), by the log's
own functions. Pseudonyms are random hex, as real ones are hashes. The report is timed with its four renderings:
the CLI's table, CSV, JSON and the dashboard's page.
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
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape  # noqa: E402

from bot.dashboard import TEMPLATES, page_context  # noqa: E402
from content.loader import load_content  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.inquiry_log import daily_keys, first_hit, funnel_step, is_unanswered, match_facts  # noqa: E402
from storage.questions import QuestionGrouper, form_digest, question_form  # noqa: E402
from storage.reports import DemandReport, Period, demand_report, to_csv, to_json, to_table  # noqa: E402

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
        user = {
            "pseudonym": rng.getrandbits(256).to_bytes(32, "big").hex(),
            "channel": weighted(rng, CHANNELS)[0],
            "lang": rng.choices(["zh", "en", "ko"], weights=[85, 10, 5])[0],
            "profile": profile,
            "district": profile["district"] if profile else None,
        }
        if profile:
            results = match_results(rng, profile)
            user |= {"match": json.dumps(results), "profile_json": json.dumps(profile)}
            user["facts"] = match_facts("match", True, results, profile)
        users.append(user)
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


def question(rng: random.Random) -> tuple[str, bool, list[dict]]:
    if rng.random() < 0.2:
        base = long_tail(rng) if rng.random() < 0.4 else rng.choice(UNANSWERED)
        return base + rng.choice(SUFFIXES), False, []
    first = rng.choices(range(1, 25), weights=MEASURE_WEIGHTS)[0]
    hits = [{"measure": first, "targets": False, "rank": 1, "score": round(rng.uniform(2, 9), 2)}]
    if rng.random() < 0.05:
        hits = [{"measure": None, "targets": True, "rank": 1, "score": 5.0}]
    return rng.choice(ANSWERED) + rng.choice(SUFFIXES), True, hits


class Logged:
    """What the inquiry log works out as it writes rows, by its own functions: question groups (founded in the
    order asked) and the daily counts."""

    def __init__(self) -> None:
        self.grouper = QuestionGrouper()
        self.groups: dict[str, int] = {}  # form -> group, so that each form is looked up once
        self.kinds: Counter = Counter()
        self.places: Counter = Counter()

    def count(self, row: dict) -> None:
        kind, place = daily_keys(row)
        self.kinds[kind] += 1
        self.places[place] += 1

    def group(self, text: str) -> int:
        form = question_form(text)
        key = self.groups.get(form)
        if key is None:
            key = self.groups[form] = self.grouper.place([form])[form] + 1  # founders get ids 1, 2... in order
        return key

    def founders(self) -> list[tuple[int, str, str]]:
        return [(key, form_digest(form), form) for key, form in enumerate(self.grouper.forms, 1)]


def rows(rng: random.Random, users: list[dict], n: int, logged: Logged):
    kinds = list(KINDS)
    kind_weights = [KINDS[k] for k in kinds]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(users))]  # some people come back a lot
    picked_users = rng.choices(users, weights=weights, k=n)
    picked_kinds = rng.choices(kinds, weights=kind_weights, k=n)
    # Logged as they happen: in time order, so row ids follow created_at as in a real log.
    moments = sorted(rng.randrange(DAYS * 86400 * 10**6) for _ in range(n))
    for user, kind, moment in zip(picked_users, picked_kinds, moments, strict=True):
        when = START + timedelta(microseconds=moment)
        measure = plan = text = answered = hits = None
        results = profile = "null"
        facts = (None, None)
        if kind in ("measure", "deeplink"):
            measure = rng.choices(range(1, 25), weights=MEASURE_WEIGHTS)[0]
            plan = PLAN_OF[measure]
            text = f"m{measure}" if kind == "deeplink" else None
        elif kind == "plan":
            plan = rng.randint(1, 7)
        elif kind == "question":
            text, answered, hits = question(rng)
            results = json.dumps(hits)
        elif kind == "match":
            if user["profile"] is None:
                kind = "profile"
            else:
                answered, results, profile, facts = True, user["match"], user["profile_json"], user["facts"]
        row = {"created_at": when, "kind": kind, "measure": measure, "plan": plan, "channel": user["channel"]}
        row |= {"district": user["district"], "hit": first_hit(kind, answered, hits)}
        logged.count(row)
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
            row["hit"],
            funnel_step(kind, measure, answered),
            logged.group(text) if is_unanswered(kind, answered, text) else None,
            *facts,
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
    logged = Logged()
    generated = rows(rng, users, n, logged)
    with conn:
        while batch := [row for _, row in zip(range(50_000), generated, strict=False)]:
            conn.executemany(
                "INSERT INTO inquiries (created_at, channel, user_pseudonym, lang, kind, measure, plan, text, "
                "answered, results, district, profile, hit, step, question_group, matched, identities) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
        conn.executemany("INSERT INTO question_groups (id, digest, form) VALUES (?, ?, ?)", logged.founders())
        conn.executemany(
            "INSERT INTO daily_inquiries (day, kind, measure, plan, hit, inquiries) VALUES (?, ?, ?, ?, ?, ?)",
            ((day.isoformat(), *key, count) for (day, *key), count in logged.kinds.items()),
        )
        conn.executemany(
            "INSERT INTO daily_places (day, channel, district, inquiries) VALUES (?, ?, ?, ?)",
            ((day.isoformat(), *key, count) for (day, *key), count in logged.places.items()),
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
    for name, render in (("table", to_table), ("csv", to_csv), ("json", to_json), ("dashboard", dashboard_page)):
        started = time.perf_counter()
        size = len(render(report))
        formats[name] = (time.perf_counter() - started, size)
    print(f"inquiries in period: {report.inquiries:,}")
    print(f"demand_report wall: first {walls[0]:.3f} s, best of {runs} {min(walls):.3f} s")
    print(f"demand_report CPU (all threads): first {cpus[0]:.3f} s, best {min(cpus):.3f} s")
    print(f"  {stored(path, period)}")
    for name, (seconds, size) in formats.items():
        print(f"{name}: {seconds * 1000:.1f} ms ({size:,} chars)")
    rendering = sum(seconds for seconds, _ in formats.values())
    for label, seconds in (("first run", walls[0]), (f"best of {runs}", min(walls))):
        verdict = "met" if seconds + rendering < GOAL_SECONDS else "MISSED"
        print(f"report + four renderings, {label}: {seconds + rendering:.3f} s -> {GOAL_SECONDS:.0f} s goal {verdict}")


def dashboard_page(report: DemandReport) -> str:
    """The dashboard's page for the report (bot/dashboard.py renders it so, from its templates)."""
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    until = report.until.date() - timedelta(days=1)  # the dashboard's period names its last day
    return templates.get_template("dashboard.html").render(
        session=None, **page_context(report, report.since.date(), until)
    )


def stored(path: Path, period: Period) -> str:
    """What the log stored for the report: unanswered questions and their groups, the daily tables' rows."""
    since, until = (moment.strftime("%Y-%m-%d %H:%M:%S.%f") for moment in period.utc())
    conn = sqlite3.connect(path)
    asked, texts, groups, ungrouped = conn.execute(
        "SELECT count(*), count(DISTINCT text), count(DISTINCT question_group), count(*) - count(question_group) "
        "FROM inquiries WHERE kind = 'question' AND answered = 0 AND text IS NOT NULL "
        "AND created_at >= ? AND created_at < ?",
        (since, until),
    ).fetchone()
    daily = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("daily_inquiries", "daily_places"))
    conn.close()
    return (
        f"{asked:,} unanswered questions ({texts:,} distinct texts) in {groups:,} groups assigned as they were "
        f"logged ({ungrouped:,} left to group); {daily:,} rows in the daily tables"
    )


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
