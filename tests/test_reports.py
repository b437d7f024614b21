"""Demand reports on a known inquiry log, on SQLite (and PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.config import Settings
from content.loader import Content, load_content
from storage import reports
from storage.db import Database
from storage.inquiry_log import InquiryLog, InquiryRecord
from storage.reports import (
    DemandReport,
    Period,
    bigrams,
    demand_report,
    group_questions,
    normalise,
    to_csv,
    to_json,
    to_table,
)
from storage.users import Pseudonymizer
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
    weeks = {(r["key"], r["label"]): int(r["value"]) for r in rows if r["section"] == "weeks"}
    assert weeks == {(w.week.isoformat(), w.kind): w.count for w in report.weeks}
    assert ["怎么办营业执照", "count", "3"] in [[r["label"], r["metric"], r["value"]] for r in rows]

    table = to_table(report)
    assert "20 inquiries" in table
    assert "怎么办营业执照" in table
    assert "新发放创业担保贷款6亿元以上 (target by 2026, 威政办字〔2025〕8号)" in table
    seven = next(line for line in table.splitlines() if line.split()[:2] == ["7", "强化金融服务助力创业"])
    assert seven.split()[2:] == ["2", "1", "1", "2", "6"]

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
