"""Demand reports: what founders asked for over a period, from the inquiry log.

Most of the work is done as the inquiries are logged (storage.inquiry_log), not when a report is asked for. The
counts come from the daily tables the log keeps (DailyInquiries, DailyPlaces) for the period's whole UTC days,
and from the rows for the part-days at its edges, so they cost the same however long the log. The funnel
(distinct users over the period) reads each row's funnel step, the matches the measures and identities stored
with them, and the unanswered questions the near-duplicate groups the log put them in as they were asked.
Queries run unchanged on SQLite and PostgreSQL. Reports hold counts and question texts only: never a user's
pseudonym, let alone a raw chat id. Days and ISO weeks are UTC.

Deleting rows (/forget deletes a user's) takes them off the daily tables too (a trigger), so a report always
counts exactly the rows still held: a forgotten user's inquiries drop out of every section alike.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Date, Select, and_, case, cast, false, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.operators import custom_op

from storage.db import Database
from storage.models import (
    CARD_STEP,
    MATCH_STEP,
    UNANSWERED_KINDS,
    DailyInquiries,
    DailyPlaces,
    Inquiry,
    QuestionFounder,
)
from storage.questions import QuestionGrouper, normalise, wording

if TYPE_CHECKING:
    from content.loader import Content

TOP_QUESTIONS = 20
TOP_MEASURES = 10
EXAMPLES_PER_GROUP = 3
KIND_ORDER = (
    "menu",
    "plans",
    "plan",
    "measure",
    "deeplink",
    "targets",
    "help",
    "question",
    "rejected",
    "vague",
    "smalltalk",
    "match",
    "profile",
    "lang",
    "invalid_button",
    "unknown_command",
)
# Which measures speak to which of the plan's city-wide targets (by the target's Chinese label).
CONTEXT_MEASURES: dict[str, tuple[int, ...]] = {
    "新发放创业担保贷款": (7,),
    "新增个体工商户经营性贷款": (7,),
    "培育专精特新企业": (21,),
    "扶持高层次科技人才团队": (11,),
    "征集创业创新赛事优质项目": (24,),
}
CONTEXT_NOTE = "context only: interest shown in the assistant, not progress toward the target"


@dataclass(frozen=True)
class Period:
    """The half-open interval [since, until). Naive datetimes are taken as UTC."""

    since: datetime
    until: datetime

    def utc(self) -> tuple[datetime, datetime]:
        return _as_utc(self.since), _as_utc(self.until)


@dataclass
class MeasureDemand:
    """Demand for one measure. `total` is the sum of the four counts; `rejected` (not in it) counts the
    questions answered first with the measure whose askers said it was not what they asked, and `held_back`
    (not in it either) the questions that matched it best but were held back as not about the plan (by the
    labelled messages): those that should have had it belong in content/messages/about_the_plan.txt."""

    measure: int
    plan: int | None
    title: str | None
    views: int = 0
    deeplinks: int = 0
    question_hits: int = 0
    matches: int = 0
    total: int = 0
    rejected: int = 0
    held_back: int = 0


@dataclass
class PlanDemand:
    """Demand for one plan: its measures' totals plus views of its menu."""

    plan: int
    name: str | None
    measure_rows: int = 0
    menu_views: int = 0
    total: int = 0


@dataclass
class WeekKind:
    week: date  # the Monday that starts the ISO week
    kind: str
    count: int


@dataclass
class Count:
    key: str
    count: int


@dataclass
class QuestionGroup:
    """Near-duplicate unanswered questions: the most asked wording, how often, a few wordings."""

    text: str
    count: int
    examples: list[str]


@dataclass
class RankedMeasure:
    rank: int
    measure: int
    title: str | None
    count: int


@dataclass
class FunnelStep:
    """Distinct users at one step; `share` is of the step before (None for the first)."""

    step: str
    users: int
    share: float | None


@dataclass
class ContextRow:
    """Interest in the measures behind one of the plan's targets, shown beside the target's words."""

    label: str
    measures: list[int]
    interest: int
    target: str
    note: str = CONTEXT_NOTE


@dataclass
class DemandReport:
    since: datetime
    until: datetime
    inquiries: int = 0
    measures: list[MeasureDemand] = field(default_factory=list)
    plans: list[PlanDemand] = field(default_factory=list)
    weeks: list[WeekKind] = field(default_factory=list)
    channels: list[Count] = field(default_factory=list)
    districts: list[Count] = field(default_factory=list)
    identities: list[Count] = field(default_factory=list)
    unanswered: list[QuestionGroup] = field(default_factory=list)
    most_matched: list[RankedMeasure] = field(default_factory=list)
    most_viewed: list[RankedMeasure] = field(default_factory=list)
    funnel: list[FunnelStep] = field(default_factory=list)
    context: list[ContextRow] = field(default_factory=list)


# --- building the report ---------------------------------------------------------------------------------------


async def demand_report(db: Database, period: Period, content: Content | None = None) -> DemandReport:
    """Everything the demand report shows for `period`; `content` adds titles, plan names and target context.

    On PostgreSQL all queries read one snapshot. On SQLite each reads the latest, so rows logged meanwhile may
    show in some sections only; and the funnel, the slowest query, runs on a connection of its own, beside the
    others and the Python work. Folding the question groups runs in a thread (off the event loop of a running
    bot): it is quick, unless many questions were logged without a group (before migration 0007, or when
    grouping them failed) and have to be grouped here, among the stored groups."""
    since, until = period.utc()
    dialect = db.engine.dialect.name
    statements = _statements(dialect, since, until)
    beside = None
    if dialect == "sqlite":
        beside = asyncio.create_task(_read(db, {"funnel": statements.pop("funnel")}))
    try:
        async with db.engine.connect() as conn:
            if dialect == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            rows = await _run(conn, statements)
            ungrouped: list[Any] = []
            founders: list[Any] = []
            if rows["unanswered"][0][0] > sum(n for *_, n in rows["grouped"]):
                ungrouped = list((await conn.execute(_ungrouped_query(since, until))).all())
                everyone = select(QuestionFounder.id, QuestionFounder.form).order_by(QuestionFounder.id)
                founders = list((await conn.execute(everyone)).all())
        questions = await asyncio.to_thread(group_questions, ungrouped, founders, rows["grouped"], TOP_QUESTIONS)
        report = DemandReport(since=since, until=until)
        kinds, days, places = _tallies(rows)
        _add_facets(report, kinds, places, rows["matched"], rows["identities"], content)
        if beside is not None:
            rows |= await beside
    finally:
        if beside is not None and not beside.done():
            beside.cancel()
            await asyncio.gather(beside, return_exceptions=True)
    report.weeks = _weeks(days)
    report.unanswered = questions
    report.funnel = _funnel(*rows["funnel"][0])
    report.context = _context(report.measures, content)
    return report


async def _read(db: Database, statements: dict[str, Select[Any]]) -> dict[str, list[Any]]:
    async with db.engine.connect() as conn:
        return await _run(conn, statements)


async def _run(conn: AsyncConnection, statements: dict[str, Select[Any]]) -> dict[str, list[Any]]:
    return {name: list((await conn.execute(statement)).all()) for name, statement in statements.items()}


def _tallies(rows: dict[str, list[Any]]) -> tuple[list[Any], list[Any], list[Any]]:
    """The daily tables' whole days plus the edges' rows: per (kind, measure, plan, hit), per (day, kind) and per
    (channel, district), leaving out what adds up to nothing (counts of rows since deleted)."""
    kinds: Counter[tuple[Any, ...]] = Counter()
    days: Counter[tuple[Any, ...]] = Counter()
    places: Counter[tuple[Any, ...]] = Counter()
    for *key, n in rows["kinds"]:
        kinds[tuple(key)] += n
    for day, kind, n in rows["days"]:
        days[day, kind] += n
    for day, *key, n in rows["edge_kinds"]:
        kinds[tuple(key)] += n
        days[day, key[0]] += n
    for *key, n in [*rows["places"], *rows["edge_places"]]:
        places[tuple(key)] += n
    return [[(*key, n) for key, n in counts.items() if n > 0] for counts in (kinds, days, places)]


def _statements(dialect: str, since: datetime, until: datetime) -> dict[str, Select[Any]]:
    """The report's queries, by name: plain SQL aggregates that run on SQLite and PostgreSQL alike."""
    window = and_(Inquiry.created_at >= since, Inquiry.created_at < until)
    created = _scan_created_at(dialect)
    first_day, end_day = _whole_days(since, until)
    whole = first_day < end_day
    ranges = [(since, _midnight(first_day)), (_midnight(end_day), until)] if whole else [(since, until)]
    edges = or_(false(), *(and_(Inquiry.created_at >= a, Inquiry.created_at < b) for a, b in ranges if a < b))
    kinds, places = DailyInquiries, DailyPlaces
    by_kind = (kinds.kind, kinds.measure, kinds.plan, kinds.hit)
    by_place = (places.channel, places.district)
    zero = literal_column("0")
    edge_kind = (
        _day(dialect),
        Inquiry.kind,
        func.coalesce(Inquiry.measure, zero),
        func.coalesce(Inquiry.plan, zero),
        func.coalesce(Inquiry.hit, zero),
    )
    edge_place = (Inquiry.channel, func.coalesce(Inquiry.district, ""))
    return {
        # Whole days from the daily tables, the part-days at the edges from the rows, in the daily tables' terms.
        "kinds": select(*by_kind, func.sum(kinds.inquiries))
        .where(kinds.day >= first_day, kinds.day < end_day)
        .group_by(*by_kind),
        "days": select(kinds.day, kinds.kind, func.sum(kinds.inquiries))
        .where(kinds.day >= first_day, kinds.day < end_day)
        .group_by(kinds.day, kinds.kind),
        "places": select(*by_place, func.sum(places.inquiries))
        .where(places.day >= first_day, places.day < end_day)
        .group_by(*by_place),
        "edge_kinds": select(*edge_kind, func.count()).where(edges).group_by(*edge_kind),
        "edge_places": select(*edge_place, func.count()).where(edges).group_by(*edge_place),
        # Matches repeat (the same profile gives the same results): each distinct list is parsed once.
        "matched": select(Inquiry.matched, func.count())
        .where(Inquiry.matched.is_not(None), window)
        .group_by(Inquiry.matched),
        "identities": select(Inquiry.identities, func.count())
        .where(Inquiry.matched.is_not(None), window)
        .group_by(Inquiry.identities),
        "funnel": _funnel_query(dialect, since, until),
        # The log groups unanswered questions as it writes them (only those): the rest, if any, are grouped here.
        "grouped": select(Inquiry.question_group, Inquiry.text, func.count())
        .where(Inquiry.question_group.is_not(None), Inquiry.text.is_not(None), created >= since, created < until)
        .group_by(Inquiry.question_group, Inquiry.text),
        "unanswered": select(func.count()).where(
            Inquiry.kind.in_(UNANSWERED_KINDS), Inquiry.answered == false(), window
        ),
    }


def _ungrouped_query(since: datetime, until: datetime) -> Select[Any]:
    """Unanswered questions the log did not group (logged before it did, or when grouping failed)."""
    return (
        select(Inquiry.text, func.count())
        .where(
            Inquiry.kind.in_(UNANSWERED_KINDS),
            Inquiry.answered == false(),
            Inquiry.question_group.is_(None),
            Inquiry.text.is_not(None),
            Inquiry.created_at >= since,
            Inquiry.created_at < until,
        )
        .group_by(Inquiry.text)
    )


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _whole_days(since: datetime, until: datetime) -> tuple[date, date]:
    """The whole UTC days in [since, until), as [first, end): empty (first ≥ end) when there are none."""
    first = since.date() if since.timetz() == time(tzinfo=UTC) else since.date() + timedelta(days=1)
    return first, until.date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _day(dialect: str) -> ColumnElement[Any]:
    """The UTC day of created_at, as DailyInquiries.day: SQLite stores UTC text (YYYY-MM-DD...), PostgreSQL a
    timestamptz."""
    if dialect == "sqlite":
        return func.substr(Inquiry.created_at, literal_column("1"), literal_column("10"), type_=Date)
    return cast(func.timezone("UTC", Inquiry.created_at), Date)


def _scan_created_at(dialect: str) -> ColumnElement[Any]:
    """created_at for queries that should not use its index. On SQLite it is written `+created_at`, which keeps
    the planner off ix_inquiries_created_at: for the funnel, a period of months is most of the log, and
    streaming through ix_inquiries_report_funnel in user order beats fetching rows by date and sorting them by
    user in a temporary B-tree; for the question groups, ix_inquiries_report_grouped holds everything."""
    if dialect == "sqlite":
        return UnaryExpression(Inquiry.created_at, operator=custom_op("+"), type_=Inquiry.created_at.type)
    return Inquiry.created_at


def _funnel_query(dialect: str, since: datetime, until: datetime) -> Select[Any]:
    """Per user, whether they saw a measure card and whether they got a match, then counted. Steps are
    CARD_STEP (1) < MATCH_STEP (2): a user's lowest step is 1 if they saw a card, their highest 2 if matched."""
    created = _scan_created_at(dialect)
    per_user = (
        select(func.min(Inquiry.step).label("low"), func.max(Inquiry.step).label("high"))
        .where(created >= since, created < until)
        .group_by(Inquiry.user_pseudonym)
        .subquery()
    )
    card = per_user.c.low == CARD_STEP
    return select(
        func.count(),
        func.coalesce(func.sum(case((card, 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(card, per_user.c.high == MATCH_STEP), 1), else_=0)), 0),
    )


def _add_facets(
    report: DemandReport,
    kinds: Iterable[Any],
    places: Iterable[Any],
    matched: Iterable[Any],
    identities_matched: Iterable[Any],
    content: Content | None,
) -> None:
    """Per measure, per plan, channel, district and identity counts from the grouped rows (where an absent
    measure, plan or hit is 0 and an absent district '', as in the daily tables)."""
    measures: dict[int, MeasureDemand] = {}
    plan_of: dict[int, int] = {}
    menu_views: Counter[int] = Counter()
    channels: Counter[str] = Counter()
    districts: Counter[str] = Counter()
    identities: Counter[str] = Counter()

    def demand(number: int) -> MeasureDemand:
        if number not in measures:
            measures[number] = MeasureDemand(number, None, None)
        return measures[number]

    if content is not None:
        for number, measure in content.measures.items():
            plan_of[number] = measure.plan
            demand(number).title = measure.title.zh
    for kind, measure, plan, hit, n in kinds:
        report.inquiries += n
        if kind == "plan" and plan:
            menu_views[plan] += n
        elif kind in ("measure", "deeplink") and measure:
            row = demand(measure)
            if kind == "measure":
                row.views += n
            else:
                row.deeplinks += n
            if plan:
                plan_of.setdefault(measure, plan)
        elif kind == "rejected" and measure:
            demand(measure).rejected += n
        elif kind == "question" and measure:
            demand(measure).held_back += n
        if hit:
            demand(hit).question_hits += n
    for channel, district, n in places:
        channels[channel] += n
        districts[district or "unknown"] += n
    for numbers, n in matched:
        for number in json.loads(numbers):
            demand(number).matches += n
    for names, n in identities_matched:
        for identity in json.loads(names):
            identities[identity] += n

    plans: dict[int, PlanDemand] = {}
    if content is not None:
        plans = {number: PlanDemand(number, plan.short_name.zh) for number, plan in sorted(content.plans.items())}
    for row in measures.values():
        row.total = row.views + row.deeplinks + row.question_hits + row.matches
        row.plan = plan_of.get(row.measure)
        if row.plan is not None:
            plans.setdefault(row.plan, PlanDemand(row.plan, None)).measure_rows += row.total
    for number, n in menu_views.items():
        plans.setdefault(number, PlanDemand(number, None)).menu_views += n
    for row in plans.values():
        row.total = row.measure_rows + row.menu_views

    report.measures = [measures[n] for n in sorted(measures)]
    report.plans = [plans[n] for n in sorted(plans)]
    report.channels = _counts(channels)
    report.districts = _counts(districts)
    report.identities = _counts(identities)
    report.most_matched = _ranked(report.measures, lambda m: m.matches)
    report.most_viewed = _ranked(report.measures, lambda m: m.views + m.deeplinks)


def _counts(counter: Counter[str]) -> list[Count]:
    return [Count(key, n) for key, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _ranked(rows: list[MeasureDemand], score: Callable[[MeasureDemand], int]) -> list[RankedMeasure]:
    ordered = sorted((r for r in rows if score(r) > 0), key=lambda r: (-score(r), r.measure))[:TOP_MEASURES]
    return [RankedMeasure(rank, r.measure, r.title, score(r)) for rank, r in enumerate(ordered, 1)]


def _weeks(days: Iterable[Any]) -> list[WeekKind]:
    """Per-day counts folded into ISO weeks, each named by its Monday."""
    weeks: Counter[tuple[date, str]] = Counter()
    for day, kind, n in days:
        when = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
        weeks[when - timedelta(days=when.weekday()), kind] += n
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    keys = sorted(weeks, key=lambda wk: (wk[0], order.get(wk[1], len(order)), wk[1]))
    return [WeekKind(week, kind, weeks[week, kind]) for week, kind in keys]


def _funnel(users: int, with_card: int, matched: int) -> list[FunnelStep]:
    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return [
        FunnelStep("inquired", users, None),
        FunnelStep("saw_measure_card", with_card, share(with_card, users)),
        FunnelStep("matched", matched, share(matched, with_card)),
    ]


def _context(measures: list[MeasureDemand], content: Content | None) -> list[ContextRow]:
    """Interest (views, deep links, questions answered first with the measure) beside the plan's targets."""
    if content is None:
        return []
    by_number = {m.measure: m for m in measures}
    document = content.targets.source.document
    rows = []
    for figure in content.targets.targets:
        numbers = CONTEXT_MEASURES.get(figure.label.zh)
        if not numbers:
            continue
        interest = sum(
            m.views + m.deeplinks + m.question_hits for m in (by_number.get(n) for n in numbers) if m is not None
        )
        period = f" {figure.period.en}" if figure.period else ""
        quote = re.sub(r"\s+", "", figure.quote)
        target = f"{quote} (target{period}, {document})"
        rows.append(ContextRow(figure.label.zh, list(numbers), interest, target))
    return rows


# --- near-duplicate questions ----------------------------------------------------------------------------------


def group_questions(
    counted: Iterable[tuple[str, int]],
    founders: Iterable[tuple[int, str]] = (),
    grouped: Iterable[tuple[int, str, int]] = (),
    limit: int | None = None,
) -> list[QuestionGroup]:
    """Near-duplicate questions, largest groups first (the first `limit`). `grouped` holds (group, text, count)
    as the log grouped them; the question texts of `counted` (with their counts) are grouped here, greedily,
    the most asked form first, each joining the earliest founded group whose founding form it is alike to
    (storage.questions), `founders` (group, form) first, or founding a group."""
    members: dict[int, Counter[str]] = defaultdict(Counter)
    for key, text, n in grouped:
        members[key][wording(text)] += n
    texts: Counter[str] = Counter()
    for text, n in counted:
        texts[wording(text)] += n
    forms: dict[str, Counter[str]] = defaultdict(Counter)
    for text, n in texts.items():
        forms[normalise(text)][text] += n
    grouper = QuestionGrouper(founders)
    stored = len(grouper)
    for form, position in grouper.place(sorted(forms, key=lambda f: (-sum(forms[f].values()), f))).items():
        key = grouper.keys[position] if position < stored else -1 - position  # founded here: never a stored id
        members[key].update(forms[form])
    return _fold(members, limit)


def _fold(members: dict[int, Counter[str]], limit: int | None = None) -> list[QuestionGroup]:
    """Each group shown by its most asked wording, with a few wordings; largest groups first."""
    ranked = []
    for wordings in members.values():
        most = max(wordings.values())
        ranked.append((-sum(wordings.values()), min(t for t, n in wordings.items() if n == most), wordings))
    ranked.sort(key=lambda r: r[:2])
    groups = []
    for count, text, wordings in ranked[:limit]:
        examples = sorted(wordings.items(), key=lambda kv: (-kv[1], kv[0]))[:EXAMPLES_PER_GROUP]
        groups.append(QuestionGroup(text, -count, [t for t, _ in examples]))
    return groups


# --- output formats --------------------------------------------------------------------------------------------


def to_json(report: DemandReport) -> str:
    """The report as JSON (dates in ISO format, Chinese kept readable)."""
    return json.dumps(asdict(report), ensure_ascii=False, indent=2, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"not serialisable: {type(value).__name__}")


CSV_COLUMNS = ("section", "key", "label", "metric", "value")


def _long_rows(report: DemandReport) -> Iterator[tuple[str, Any, Any, str, Any]]:
    """Every number in the report as (section, key, label, metric, value)."""
    yield "period", "since", "", "since", report.since.isoformat()
    yield "period", "until", "", "until", report.until.isoformat()
    yield "period", "inquiries", "", "count", report.inquiries
    for m in report.measures:
        for metric in ("views", "deeplinks", "question_hits", "matches", "total", "rejected", "held_back"):
            yield "measures", m.measure, m.title or "", metric, getattr(m, metric)
    for p in report.plans:
        for metric in ("measure_rows", "menu_views", "total"):
            yield "plans", p.plan, p.name or "", metric, getattr(p, metric)
    for w in report.weeks:
        yield "weeks", w.week.isoformat(), w.kind, "count", w.count
    for section in ("channels", "districts", "identities"):
        for c in getattr(report, section):
            yield section, c.key, "", "count", c.count
    for rank, q in enumerate(report.unanswered, 1):
        yield "unanswered", rank, q.text, "count", q.count
        for example in q.examples:
            yield "unanswered", rank, q.text, "example", example
    for section in ("most_matched", "most_viewed"):
        for r in getattr(report, section):
            yield section, r.rank, r.title or "", f"measure {r.measure}", r.count
    for f in report.funnel:
        yield "funnel", f.step, "", "users", f.users
        yield "funnel", f.step, "", "share", "" if f.share is None else f.share
    for c in report.context:
        yield "context", c.label, c.target, f"interest in measures {','.join(map(str, c.measures))}", c.interest


def to_csv(report: DemandReport) -> str:
    """The report as one long CSV: a `section` column, then key, label, metric and value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_long_rows(report))
    return out.getvalue()


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def _grid(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(header))]
    lines = [f"== {title} =="]
    for n, row in enumerate(cells):
        lines.append("  ".join(_pad(c, widths[i], numeric[i]) for i, c in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def to_table(report: DemandReport) -> str:
    """The report as plain-text tables for a terminal."""
    kinds = sorted({w.kind for w in report.weeks}, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else 99, k))
    weeks: dict[date, dict[str, int]] = defaultdict(dict)
    for w in report.weeks:
        weeks[w.week][w.kind] = w.count
    sections = [
        f"Demand report {report.since.isoformat()} to {report.until.isoformat()} (UTC): {report.inquiries} inquiries",
        _grid(
            "Measures",
            ["measure", "title", "views", "deeplinks", "question_hits", "matches", "total", "rejected", "held_back"],
            [
                [
                    *(m.measure, m.title or "", m.views, m.deeplinks, m.question_hits),
                    *(m.matches, m.total, m.rejected, m.held_back),
                ]
                for m in report.measures
            ],
        ),
        _grid(
            "Plans",
            ["plan", "name", "measure_rows", "menu_views", "total"],
            [[p.plan, p.name or "", p.measure_rows, p.menu_views, p.total] for p in report.plans],
        ),
        _grid(
            "Weeks (Monday) by kind",
            ["week", *kinds, "total"],
            [
                [week.isoformat(), *(counts.get(k, 0) for k in kinds), sum(counts.values())]
                for week, counts in sorted(weeks.items())
            ],
        ),
        _grid("Channels", ["channel", "count"], [[c.key, c.count] for c in report.channels]),
        _grid("Districts", ["district", "count"], [[c.key, c.count] for c in report.districts]),
        _grid("Profile identities (match rows)", ["identity", "count"], [[c.key, c.count] for c in report.identities]),
        _grid(
            "Top unanswered questions",
            ["#", "question", "count", "examples"],
            [[i, q.text, q.count, " | ".join(q.examples)] for i, q in enumerate(report.unanswered, 1)],
        ),
        _grid(
            "Most matched measures",
            ["rank", "measure", "title", "matches"],
            [[r.rank, r.measure, r.title or "", r.count] for r in report.most_matched],
        ),
        _grid(
            "Most viewed measures (views + deep links)",
            ["rank", "measure", "title", "views"],
            [[r.rank, r.measure, r.title or "", r.count] for r in report.most_viewed],
        ),
        _grid(
            "Funnel (distinct users)",
            ["step", "users", "share of previous"],
            [[f.step, f.users, "" if f.share is None else f"{f.share:.1%}"] for f in report.funnel],
        ),
        _grid(
            f"Context beside the plan's targets ({CONTEXT_NOTE})",
            ["target", "measures", "interest"],
            [[c.target, ",".join(map(str, c.measures)), c.interest] for c in report.context],
        ),
    ]
    return "\n\n".join(sections) + "\n"
