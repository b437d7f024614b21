"""Demand reports on a known inquiry log, on SQLite (and PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, select, update

from bot.config import Settings
from content.loader import Content, load_content
from storage import reports
from storage.db import Database, alembic_config
from storage.inquiry_log import InquiryLog, InquiryRecord
from storage.models import DailyInquiries, DailyPlaces, Inquiry, QuestionFounder
from storage.questions import QuestionGrouper, bigrams, normalise
from storage.reports import (
    DemandReport,
    Period,
    demand_report,
    group_questions,
    to_csv,
    to_json,
    to_table,
)
from storage.users import Pseudonymizer, UserStore
from tests.conftest import CONTENT

RAW_IDS = {"u1": ("telegram", "100000001"), "u2": ("web", "100000002"), "u3": ("wechat", "100000003")}
RAW_IDS["u4"] = ("api", "100000004")
PSEUDONYMIZE = Pseudonymizer(b"report-test-key-0123456789abcdef")
PSEUDONYMS = {user: PSEUDONYMIZE(channel, raw) for user, (channel, raw) in RAW_IDS.items()}
DISTRICTS = {"u1": "huancui", "u2": None, "u3": "wendeng", "u4": None}
PERIOD = Period(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))
PHONE = "13812345678"


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def row(user: str, when: datetime, kind: str, **fields: Any) -> InquiryRecord:
    channel = RAW_IDS[user][0]
    return InquiryRecord(
        channel=channel,
        user_pseudonym=PSEUDONYMS[user],
        lang="zh",
        kind=kind,
        district=DISTRICTS[user],
        created_at=when,
        **fields,
    )


def hit(measure: int | None, rank: int) -> dict[str, Any]:
    return {"measure": measure, "targets": measure is None, "rank": rank, "score": 5.0 - rank}


PROFILE_U3 = {"identity": ["college_student", "returnee"], "stage": "idea", "sector": "tech"}
PROFILE_U3 |= {"district": "wendeng", "needs": ["loan"]}
PROFILE_U1 = {"identity": ["returnee"], "stage": "early", "sector": "services", "district": "huancui", "needs": []}

LOG = [
    # week of Monday 2026-01-05
    row("u1", at(5, 9), "menu"),
    row("u1", at(5, 9, 1), "measure", measure=7, plan=3),
    row("u1", at(6, 10), "measure", measure=7, plan=3),
    row("u2", at(6, 11), "deeplink", measure=7, plan=3, text="m7"),
    row("u2", at(7, 8), "plan", plan=3),
    row("u2", at(7, 9), "question", text="创业担保贷款怎么申请", answered=True, results=[hit(7, 1), hit(10, 2)]),
    row("u3", at(8, 9), "question", text="大学生创业补贴", answered=True, results=[hit(14, 1), hit(7, 2)]),
    row("u3", at(8, 10), "question", text="目标是什么", answered=True, results=[hit(None, 1)]),
    row(
        "u3",
        at(9, 9),
        "match",
        answered=True,
        profile=PROFILE_U3,
        results=[
            {"measure": 14, "rank": 1, "score": 3.0},
            {"measure": 7, "rank": 2, "score": 2.0},
            {"measure": 3, "near_miss": True, "score": 0.5},
        ],
    ),
    row("u1", at(9, 10), "question", text="怎么办营业执照？", answered=False, results=[]),
    row("u4", at(10, 10), "menu"),
    # week of Monday 2026-01-12
    row("u2", at(12, 0, 0, 1), "question", text="怎么办营业执照", answered=False, results=[]),
    row("u3", at(13, 9), "question", text="怎样办营业执照啊", answered=False, results=[]),
    row("u1", at(13, 10), "question", text="哪里可以停车", answered=False, results=[]),
    row(
        "u1",
        at(14, 9),
        "match",
        answered=True,
        profile=PROFILE_U1,
        results=[
            {"measure": 7, "rank": 1, "score": 3.0},
            {"measure": 13, "rank": 2, "score": 2.0},
            {"measure": 14, "near_miss": True, "score": 0.5},
        ],
    ),
    row("u3", at(15, 9), "measure", measure=14, plan=4),
    row("u2", at(15, 10), "plan", plan=4),
    row("u1", at(16, 9), "measure", text="m99", answered=False),
    row("u4", at(18, 23, 59, 59), "help"),
    row("u3", at(18, 10), "question", text=f"请联系我 {PHONE}", answered=False, results=[]),
    # outside the period
    row("u1", at(4, 23, 59, 59), "measure", measure=7, plan=3),
    row("u2", at(19, 0), "question", text="怎么办营业执照", answered=False, results=[]),
    row("u3", at(31, 9, month=12, year=2025), "match", answered=True, profile=PROFILE_U3, results=[hit(7, 1)]),
    row("u4", at(1, month=2), "menu"),
]


@pytest.fixture(scope="module")
def content() -> Content:
    return load_content(CONTENT)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, schema=settings.database_schema)
    await database.migrate()
    log = InquiryLog(database)
    for record in LOG:
        log.record(record)
    await log.close()
    yield database
    await database.close()


@pytest.fixture
async def report(db: Database, content: Content) -> DemandReport:
    return await demand_report(db, PERIOD, content)


def by_measure(report: DemandReport) -> dict[int, tuple[int, int, int, int, int]]:
    return {m.measure: (m.views, m.deeplinks, m.question_hits, m.matches, m.total) for m in report.measures}


async def test_measures_count_views_deep_links_first_ranked_questions_and_applicable_matches(
    report: DemandReport,
) -> None:
    counts = by_measure(report)
    assert set(counts) == set(range(1, 25))  # every measure of the plan, asked about or not
    assert counts[7] == (2, 1, 1, 2, 6)
    assert counts[14] == (1, 0, 1, 1, 3)
    assert counts[13] == (0, 0, 0, 1, 1)
    assert counts[3] == (0, 0, 0, 0, 0)  # a near miss is not a match
    assert counts[10] == (0, 0, 0, 0, 0)  # ranked second is not a hit
    assert sum(total for *_, total in counts.values()) == 10
    seven = next(m for m in report.measures if m.measure == 7)
    assert (seven.plan, seven.title) == (3, "强化金融服务助力创业")
    assert report.inquiries == 20


async def test_plans_add_their_measures_and_menu_views(report: DemandReport) -> None:
    plans = {p.plan: (p.measure_rows, p.menu_views, p.total) for p in report.plans}
    assert plans == {1: (0, 0, 0), 2: (0, 0, 0), 3: (6, 1, 7), 4: (4, 1, 5), 5: (0, 0, 0), 6: (0, 0, 0), 7: (0, 0, 0)}
    assert report.plans[2].name == "护航计划"


async def test_weeks_by_kind(report: DemandReport) -> None:
    weeks = {(w.week, w.kind): w.count for w in report.weeks}
    first, second = date(2026, 1, 5), date(2026, 1, 12)
    assert weeks == {
        (first, "menu"): 2,
        (first, "plan"): 1,
        (first, "measure"): 2,
        (first, "deeplink"): 1,
        (first, "question"): 4,
        (first, "match"): 1,
        (second, "plan"): 1,
        (second, "measure"): 2,
        (second, "help"): 1,
        (second, "question"): 4,
        (second, "match"): 1,
    }
    assert [w.kind for w in report.weeks if w.week == first] == [
        "menu",
        "plan",
        "measure",
        "deeplink",
        "question",
        "match",
    ]


async def test_channels_districts_and_identities(report: DemandReport) -> None:
    assert [(c.key, c.count) for c in report.channels] == [("telegram", 7), ("wechat", 6), ("web", 5), ("api", 2)]
    assert [(c.key, c.count) for c in report.districts] == [("huancui", 7), ("unknown", 7), ("wendeng", 6)]
    assert [(c.key, c.count) for c in report.identities] == [("returnee", 2), ("college_student", 1)]


async def test_unanswered_questions_are_grouped_and_masked(report: DemandReport) -> None:
    assert [(q.text, q.count, q.examples) for q in report.unanswered] == [
        ("怎么办营业执照", 3, ["怎么办营业执照", "怎么办营业执照？", "怎样办营业执照啊"]),
        ("哪里可以停车", 1, ["哪里可以停车"]),
        ("请联系我 #", 1, ["请联系我 #"]),
    ]


async def test_most_matched_most_viewed_and_funnel(report: DemandReport) -> None:
    assert [(r.rank, r.measure, r.count) for r in report.most_matched] == [(1, 7, 2), (2, 13, 1), (3, 14, 1)]
    assert [(r.rank, r.measure, r.count) for r in report.most_viewed] == [(1, 7, 3), (2, 14, 1)]
    assert [(f.step, f.users, f.share) for f in report.funnel] == [
        ("inquired", 4, None),
        ("saw_measure_card", 3, 0.75),
        ("matched", 2, 0.6667),
    ]


async def test_context_sets_interest_beside_the_targets_as_context(report: DemandReport) -> None:
    context = {c.label: (c.measures, c.interest, c.target) for c in report.context}
    assert context["新发放创业担保贷款"] == (
        [7],
        4,
        "新发放创业担保贷款6亿元以上 (target by 2026, 威政办字〔2025〕8号)",
    )
    assert context["新增个体工商户经营性贷款"][:2] == ([7], 4)
    assert context["培育专精特新企业"][:2] == ([21], 0)
    assert all("context" in c.note and "not progress" in c.note for c in report.context)


async def test_without_content_the_log_alone_is_reported(db: Database) -> None:
    report = await demand_report(db, PERIOD)
    assert by_measure(report) == {7: (2, 1, 1, 2, 6), 13: (0, 0, 0, 1, 1), 14: (1, 0, 1, 1, 3)}
    assert {p.plan: (p.measure_rows, p.menu_views, p.total) for p in report.plans} == {3: (6, 1, 7), 4: (3, 1, 4)}
    assert report.context == []  # measure 13 was only matched, so its plan comes from content alone


async def test_the_period_is_half_open_and_naive_times_are_utc(db: Database) -> None:
    before = await demand_report(db, Period(datetime(2026, 1, 4), datetime(2026, 1, 5)))
    assert before.inquiries == 1
    assert by_measure(before) == {7: (1, 0, 0, 0, 1)}
    shanghai = timezone(timedelta(hours=8))
    edge = await demand_report(db, Period(datetime(2026, 1, 19, 8, tzinfo=shanghai), datetime(2026, 1, 20)))
    assert [(q.text, q.count) for q in edge.unanswered] == [("怎么办营业执照", 1)]
    everything = await demand_report(db, Period(datetime(2025, 1, 1), datetime(2027, 1, 1)))
    assert everything.inquiries == len(LOG)
    assert everything.unanswered[0].count == 4
    empty = await demand_report(db, Period(datetime(2030, 1, 1), datetime(2031, 1, 1)))
    assert empty.inquiries == 0
    assert [f.users for f in empty.funnel] == [0, 0, 0]


async def test_three_formats_carry_the_same_numbers_and_no_ids(report: DemandReport) -> None:
    as_json = json.loads(to_json(report))
    assert as_json == json.loads(json.dumps(asdict(report), default=lambda value: value.isoformat()))
    assert as_json["since"] == "2026-01-05T00:00:00+00:00"
    assert as_json["measures"][6] == {
        "measure": 7,
        "plan": 3,
        "title": "强化金融服务助力创业",
        "views": 2,
        "deeplinks": 1,
        "question_hits": 1,
        "matches": 2,
        "total": 6,
        "rejected": 0,
        "held_back": 0,
    }

    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {r["section"] for r in rows} == {
        "period",
        "measures",
        "plans",
        "weeks",
        "channels",
        "districts",
        "identities",
        "unanswered",
        "most_matched",
        "most_viewed",
        "funnel",
        "context",
    }
    csv_measures = {(int(r["key"]), r["metric"]): int(r["value"]) for r in rows if r["section"] == "measures"}
    for m in report.measures:
        assert csv_measures[m.measure, "total"] == m.total
        assert csv_measures[m.measure, "matches"] == m.matches
        assert csv_measures[m.measure, "rejected"] == m.rejected
        assert csv_measures[m.measure, "held_back"] == m.held_back
    weeks = {(r["key"], r["label"]): int(r["value"]) for r in rows if r["section"] == "weeks"}
    assert weeks == {(w.week.isoformat(), w.kind): w.count for w in report.weeks}
    assert ["怎么办营业执照", "count", "3"] in [[r["label"], r["metric"], r["value"]] for r in rows]

    table = to_table(report)
    assert "20 inquiries" in table
    assert "怎么办营业执照" in table
    assert "新发放创业担保贷款6亿元以上 (target by 2026, 威政办字〔2025〕8号)" in table
    seven = next(line for line in table.splitlines() if line.split()[:2] == ["7", "强化金融服务助力创业"])
    assert seven.split()[2:] == ["2", "1", "1", "2", "6", "0", "0"]

    for text in (to_json(report), to_csv(report), table):
        for _, raw in RAW_IDS.values():
            assert raw not in text
        for pseudonym in PSEUDONYMS.values():
            assert pseudonym not in text
        assert PHONE not in text


def test_near_duplicates_group_and_unrelated_questions_do_not() -> None:
    asked = [
        ("怎么办营业执照？", 2),
        ("怎么办营业执照", 1),
        ("怎样办营业执照啊", 1),
        ("营业执照在哪里办", 1),
        ("社保怎么交", 1),
        ("How do I register a company?", 1),
        ("how do i register a company", 1),
        ("大学生创业补贴有哪些", 1),
        ("大学生创业补贴有哪些项目", 1),
        ("大学生就业补贴", 1),
    ]
    groups = {g.text: (g.count, sorted(g.examples)) for g in group_questions(asked)}
    assert groups == {
        "怎么办营业执照？": (4, sorted(["怎么办营业执照？", "怎么办营业执照", "怎样办营业执照啊"])),
        "How do I register a company?": (2, sorted(["How do I register a company?", "how do i register a company"])),
        "大学生创业补贴有哪些": (2, sorted(["大学生创业补贴有哪些", "大学生创业补贴有哪些项目"])),
        "营业执照在哪里办": (1, ["营业执照在哪里办"]),
        "社保怎么交": (1, ["社保怎么交"]),
        "大学生就业补贴": (1, ["大学生就业补贴"]),
    }


def test_normalising_and_similarity() -> None:
    assert (
        normalise("怎么办营业执照？")
        == normalise("怎么办营业执照")
        == normalise("怎样办营业执照啊")
        == "怎么办营业执照"
    )
    assert normalise("  Ｈｏｗ  do I, register?! ") == "howdoiregister"
    assert normalise("请问，如何申请贷款呢？") == "怎么申请贷款"
    a, b = bigrams("大学生创业补贴"), bigrams("大学生就业补贴")
    assert len(a & b) / len(a | b) == 0.5  # below 0.6: kept apart
    assert bigrams("x") == {"x"}
    assert bigrams("") == frozenset()


def test_groups_are_sorted_and_keep_three_examples() -> None:
    asked = [("社保怎么交", 1), ("社保怎么交？", 3), ("社保怎么交啊", 2), ("社保怎么交。", 1), ("停车", 5)]
    groups = group_questions(asked)
    assert [(g.text, g.count) for g in groups] == [("社保怎么交？", 7), ("停车", 5)]
    assert groups[0].examples == ["社保怎么交？", "社保怎么交啊", "社保怎么交"]


def test_a_similarity_of_exactly_three_fifths_groups() -> None:
    groups = group_questions([("abcde", 2), ("abcdx", 1), ("abcxy", 1)])  # 3 of 5 bigrams shared; then 2 of 6
    assert [(g.text, g.count) for g in groups] == [("abcde", 3), ("abcxy", 1)]


def test_a_form_like_two_founders_joins_the_earlier() -> None:
    first, second = "abcdefgh", "defghijk"  # 4 bigrams of 10 in common: two groups
    between = "bcdefghij"  # 6 of 9 in common with each
    assert QuestionGrouper([(10, first), (11, second)]).find(between) == 10
    assert QuestionGrouper([(11, second), (10, first)]).find(between) == 11
    grouper = QuestionGrouper([(10, first)])
    assert (grouper.find(first), grouper.find("xyz"), grouper.find("")) == (10, None, None)
    grouper.add(12, "")
    assert grouper.find("") == 12  # an empty form is like no other, only itself


def test_grouping_is_a_greedy_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    """On random texts: every text lands in one group; each group's founder (its most asked form) is unlike
    every earlier founder, and every other form of the group is like its founder."""
    monkeypatch.setattr(reports, "EXAMPLES_PER_GROUP", 10**6)
    rng = random.Random(20260105)

    def similar(a: str, b: str) -> bool:
        x, y = bigrams(a), bigrams(b)
        return len(x & y) * 5 >= 3 * len(x | y)

    for _ in range(200):
        alphabet = "怎么办营业执照贷款补贴社保税务注册公司"[: rng.randint(3, 20)]
        asked: dict[str, int] = {}
        for _ in range(rng.randint(1, 40)):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))) + rng.choice(["", "？", "啊"])
            asked[text] = asked.get(text, 0) + rng.randint(1, 4)
        groups = group_questions(list(asked.items()))
        assert sorted(t for g in groups for t in g.examples) == sorted(asked)
        assert sum(g.count for g in groups) == sum(asked.values())
        founders: list[tuple[int, str]] = []
        for g in groups:
            forms: dict[str, int] = {}
            for text in g.examples:
                forms[normalise(text)] = forms.get(normalise(text), 0) + asked[text]
            founder = min(forms, key=lambda f: (-forms[f], f))
            assert all(similar(founder, f) for f in forms if f != founder)
            founders.append((-forms[founder], founder))
        founders.sort()
        for i, (_, later) in enumerate(founders):
            assert not any(similar(earlier, later) for _, earlier in founders[:i])


# --- the work the log does for the reports -------------------------------------------------------------------


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def from_rows(records: list[InquiryRecord], since: datetime, until: datetime) -> dict[str, Any]:
    """What a report must count for [since, until), worked out from the records themselves."""
    rows = [r for r in records if since <= r.created_at < until]
    hits = [r.results[0]["measure"] for r in rows if r.kind == "question" and r.answered and r.results]
    cards = {r.user_pseudonym for r in rows if (r.kind in ("measure", "deeplink") and r.measure)}
    cards |= {r.user_pseudonym for r in rows if r.kind == "question" and r.answered}
    matched = {r.user_pseudonym for r in rows if r.kind == "match"} & cards
    return {
        "inquiries": len(rows),
        "channels": Counter(r.channel for r in rows),
        "districts": Counter(r.district or "unknown" for r in rows),
        "weeks": Counter((monday(r.created_at.date()), r.kind) for r in rows),
        "views": Counter(r.measure for r in rows if r.kind == "measure" and r.measure),
        "deeplinks": Counter(r.measure for r in rows if r.kind == "deeplink" and r.measure),
        "hits": Counter(m for m in hits if m is not None),
        "funnel": [len({r.user_pseudonym for r in rows}), len(cards), len(matched)],
        "unanswered": sum(1 for r in rows if r.kind == "question" and r.answered is False),
    }


def in_report(report: DemandReport) -> dict[str, Any]:
    return {
        "inquiries": report.inquiries,
        "channels": Counter({c.key: c.count for c in report.channels}),
        "districts": Counter({c.key: c.count for c in report.districts}),
        "weeks": Counter({(w.week, w.kind): w.count for w in report.weeks}),
        "views": Counter({m.measure: m.views for m in report.measures if m.views}),
        "deeplinks": Counter({m.measure: m.deeplinks for m in report.measures if m.deeplinks}),
        "hits": Counter({m.measure: m.question_hits for m in report.measures if m.question_hits}),
        "funnel": [f.users for f in report.funnel],
        "unanswered": sum(q.count for q in report.unanswered),
    }


def random_periods(rng: random.Random, count: int) -> list[tuple[datetime, datetime]]:
    """Periods around the log: whole days, part-days at either edge, within one day, empty."""
    start = at(1, 0, month=1) - timedelta(days=3)
    periods = [(at(5, 0), at(19, 0)), (at(9, 10), at(9, 10)), (at(9, 9, 30), at(9, 10, 30))]
    for _ in range(count):
        since = start + timedelta(hours=rng.randrange(24 * 40)) + timedelta(minutes=rng.choice((0, 0, 1, 59)))
        until = since + timedelta(hours=rng.randrange(1, 24 * 20)) + timedelta(minutes=rng.choice((0, 0, 30)))
        periods.append((since, until))
    return periods


async def test_every_period_counts_exactly_its_rows_whole_days_and_edges(db: Database) -> None:
    """The daily tables serve the whole days and the rows the edges: together exactly the period's rows."""
    for since, until in random_periods(random.Random(5), 30):
        report = await demand_report(db, Period(since, until))
        assert in_report(report) == from_rows(LOG, since, until), (since, until)


async def test_a_forgotten_user_drops_out_of_every_section(db: Database, content: Content) -> None:
    """/forget deletes the user's rows; the trigger takes them off the daily tables, so the counts still add up
    to the rows held, whole days and edges alike, and a question group with no row left is deleted."""
    await UserStore(db).forget(PSEUDONYMS["u1"])
    kept = [r for r in LOG if r.user_pseudonym != PSEUDONYMS["u1"]]
    for since, until in random_periods(random.Random(6), 20):
        report = await demand_report(db, Period(since, until), content)
        assert in_report(report) == from_rows(kept, since, until), (since, until)
    report = await demand_report(db, PERIOD)
    assert "telegram" not in [c.key for c in report.channels]  # u1 was the only Telegram user
    assert [(q.text, q.count) for q in report.unanswered] == [("怎么办营业执照", 2), ("请联系我 #", 1)]
    assert await daily_rows(db) == await daily_rows_from_inquiries(db)
    async with db.session() as session:
        founders = set((await session.scalars(select(QuestionFounder.form))).all())
    assert "哪里可以停车" not in founders  # only u1 asked it
    assert "怎么办营业执照" in founders  # u1 asked it first, but others too


async def daily_rows(db: Database) -> set[tuple[Any, ...]]:
    async with db.session() as session:
        kinds = (await session.execute(select(DailyInquiries.__table__).where(DailyInquiries.inquiries > 0))).all()
        places = (await session.execute(select(DailyPlaces.__table__).where(DailyPlaces.inquiries > 0))).all()
    return {("kinds", *row) for row in kinds} | {("places", *row) for row in places}


async def daily_rows_from_inquiries(db: Database) -> set[tuple[Any, ...]]:
    async with db.session() as session:
        rows = (await session.scalars(select(Inquiry))).all()
    kinds: Counter[tuple[Any, ...]] = Counter()
    places: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        day = row.created_at.date()  # UTC: SQLite hands back naive UTC, PostgreSQL aware in the session's zone
        if row.created_at.tzinfo is not None:
            day = row.created_at.astimezone(UTC).date()
        kinds[day, row.kind, row.measure or 0, row.plan or 0, row.hit or 0] += 1
        places[day, row.channel, row.district or ""] += 1
    return {("kinds", *key, n) for key, n in kinds.items()} | {("places", *key, n) for key, n in places.items()}


async def test_the_log_fills_the_daily_tables_and_the_reports_columns(db: Database) -> None:
    assert await daily_rows(db) == await daily_rows_from_inquiries(db)
    async with db.session() as session:
        rows = (await session.scalars(select(Inquiry).order_by(Inquiry.id))).all()
    by_text = {r.text: r for r in rows if r.kind == "question"}
    assert by_text["创业担保贷款怎么申请"].hit == 7
    assert by_text["目标是什么"].hit is None  # ranked first: the targets card, not a measure
    assert {r.step for r in rows if r.kind == "match"} == {2}
    assert {r.step for r in rows if r.kind in ("measure", "deeplink") and r.measure} == {1}
    assert by_text["创业担保贷款怎么申请"].step == 1
    assert {r.step for r in rows if r.kind in ("menu", "plan", "help")} == {None}
    groups = {r.text: r.question_group for r in rows if r.kind == "question" and r.answered is False}
    assert groups["怎么办营业执照？"] == groups["怎么办营业执照"] == groups["怎样办营业执照啊"] is not None
    assert len({groups["怎么办营业执照"], groups["哪里可以停车"], groups[f"请联系我 {PHONE}"]}) == 3
    assert all(r.question_group is None for r in rows if not (r.kind == "question" and r.answered is False))


async def test_questions_logged_without_a_group_are_grouped_by_the_report(db: Database, content: Content) -> None:
    """Rows the log could not group (or logged before it grouped) join the stored groups as the log would."""
    before = await demand_report(db, PERIOD, content)
    async with db.session.begin() as session:
        await session.execute(
            update(Inquiry).where(Inquiry.text.in_(("怎样办营业执照啊", "哪里可以停车"))).values(question_group=None)
        )
    after = await demand_report(db, PERIOD, content)
    assert after.unanswered == before.unanswered
    async with db.session.begin() as session:
        await session.execute(update(Inquiry).values(question_group=None))
        await session.execute(delete(QuestionFounder))
    assert (await demand_report(db, PERIOD, content)).unanswered == before.unanswered


async def test_when_grouping_fails_the_questions_are_logged_all_the_same(db: Database) -> None:
    """Grouping never holds up the log: with the founders' table gone, questions are logged without a group,
    and the report still groups them."""
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE question_groups RENAME TO question_groups_away")
    log = InquiryLog(db)
    log.record(row("u4", at(12, 13), "question", text="怎么办营业执照呢", answered=False, results=[]))
    await log.close()
    async with db.session() as session:
        (logged,) = (await session.scalars(select(Inquiry).where(Inquiry.text == "怎么办营业执照呢"))).all()
    assert logged.question_group is None
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE question_groups_away RENAME TO question_groups")
    report = await demand_report(db, PERIOD)
    assert (report.unanswered[0].text, report.unanswered[0].count) == ("怎么办营业执照", 4)


async def test_two_writers_share_the_groups(db: Database) -> None:
    """Two workers' logs: a group one founds is the group the other assigns, and a form both found at once is
    stored once."""
    first, second = InquiryLog(db), InquiryLog(db)
    first.record(row("u1", at(20, 9), "question", text="社保怎么交", answered=False, results=[]))
    await first.close()
    second.record(row("u2", at(20, 10), "question", text="社保怎么交？", answered=False, results=[]))
    await second.close()
    first.record(row("u3", at(20, 11), "question", text="公积金怎么交", answered=False, results=[]))
    second.record(row("u4", at(20, 12), "question", text="公积金怎么交啊", answered=False, results=[]))
    await asyncio.gather(first.close(), second.close())
    async with db.session() as session:
        later = select(Inquiry.text, Inquiry.question_group).where(Inquiry.created_at >= at(20, 0))
        groups = {text: group for text, group in (await session.execute(later)).all()}
        founders = (await session.scalars(select(QuestionFounder.form))).all()
    assert groups["社保怎么交"] == groups["社保怎么交？"] != groups["公积金怎么交"] == groups["公积金怎么交啊"]
    assert sorted(f for f in founders if "交" in f) == ["公积金怎么交", "社保怎么交"]


async def test_the_migration_backfills_rows_logged_before_it(settings: Settings, content: Content) -> None:
    """Rows written before migration 0007 get their hit, step and group, and the daily tables: the report is
    the same as for rows logged since."""
    db = Database(settings.database_url, schema=settings.database_schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0006"))
    old_columns = ("created_at", "channel", "user_pseudonym", "lang", "kind", "measure", "plan", "text", "answered")
    old_columns += ("results", "district", "profile")
    async with db.session.begin() as session:
        rows = [{c: getattr(r, c) for c in old_columns} for r in LOG]
        await session.execute(insert(Inquiry.__table__), rows)
    await db.migrate()
    backfilled = await demand_report(db, PERIOD, content)
    assert await daily_rows(db) == await daily_rows_from_inquiries(db)

    async with db.session.begin() as session:
        await session.execute(delete(Inquiry))
    assert await daily_rows(db) == set()
    log = InquiryLog(db)
    for record in LOG:
        log.record(record)
    await log.close()
    assert to_json(backfilled) == to_json(await demand_report(db, PERIOD, content))
    await db.close()
