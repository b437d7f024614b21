"""Demand reports: what founders asked for over a period, from the inquiry log.

Counts are aggregated in the database (GROUP BY) with queries that run unchanged on SQLite and
PostgreSQL; only the small grouped results, the match rows' JSON (grouped by identical text first)
and the unanswered questions' texts are handled in Python. Reports hold counts and question texts
only: never a user's pseudonym, let alone a raw chat id. Days and ISO weeks are UTC.
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
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, Text, and_, case, cast, false, func, literal_column, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from storage.db import Database
from storage.models import Inquiry

if TYPE_CHECKING:
    from content.loader import Content

TOP_QUESTIONS = 20
TOP_MEASURES = 10
EXAMPLES_PER_GROUP = 3
# Near-duplicate questions: character-bigram Jaccard similarity of at least 3/5 (kept as a fraction: exact).
SIMILAR_NUM, SIMILAR_DEN = 3, 5
KIND_ORDER = (
    "menu",
    "plans",
    "plan",
    "measure",
    "deeplink",
    "targets",
    "help",
    "question",
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
    """Demand for one measure. `total` is the sum of the four counts."""

    measure: int
    plan: int | None
    title: str | None
    views: int = 0
    deeplinks: int = 0
    question_hits: int = 0
    matches: int = 0
    total: int = 0


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

    Grouping the unanswered questions is CPU work: it runs in a thread (off the event loop of a running bot),
    alongside the other queries, which spend their time in the database. On PostgreSQL all queries read one
    snapshot; on SQLite each reads the latest, so rows logged meanwhile may show in some sections only."""
    since, until = period.utc()
    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        statements = _statements(conn.dialect.name, since, until)
        unanswered = (await conn.execute(statements.pop("unanswered"))).all()
        grouping = asyncio.to_thread(group_questions, [(text, n) for text, n in unanswered])
        questions, rows = await asyncio.gather(grouping, _run(conn, statements))

    report = DemandReport(since=since, until=until)
    _add_facets(report, rows["facets"], rows["hits"], rows["matches"], content)
    report.weeks = _weeks(rows["days"])
    report.unanswered = questions[:TOP_QUESTIONS]
    report.funnel = _funnel(*rows["funnel"][0])
    report.context = _context(report.measures, content)
    return report


async def _run(conn: AsyncConnection, statements: dict[str, Select[Any]]) -> dict[str, list[Any]]:
    return {name: list((await conn.execute(statement)).all()) for name, statement in statements.items()}


def _statements(dialect: str, since: datetime, until: datetime) -> dict[str, Select[Any]]:
    """The report's queries, by name: plain SQL aggregates that run on SQLite and PostgreSQL alike."""
    created = _scan_created_at(dialect)
    scan = and_(created >= since, created < until)  # whole-period scans: grouped through an index
    window = and_(Inquiry.created_at >= since, Inquiry.created_at < until)  # one kind: by (kind, answered)
    group = (Inquiry.kind, Inquiry.measure, Inquiry.plan, Inquiry.channel, Inquiry.district)
    day = _day(dialect).label("day")
    first = Inquiry.results[(0, "measure")].as_integer()
    results_text, profile_text = cast(Inquiry.results, Text).label("r"), cast(Inquiry.profile, Text).label("p")
    return {
        "unanswered": select(Inquiry.text, func.count())
        .where(window, Inquiry.kind == "question", Inquiry.answered == false(), Inquiry.text.is_not(None))
        .group_by(Inquiry.text),
        "facets": select(*group, func.count()).where(scan).group_by(*group),
        "days": select(day, Inquiry.kind, func.count()).where(scan).group_by(day, Inquiry.kind),
        # Questions whose first result (rank 1) is a measure; the targets card has no measure.
        "hits": select(first.label("first"), func.count())
        .where(
            window,
            Inquiry.kind == "question",
            Inquiry.answered == true(),
            Inquiry.results[(0, "rank")].as_integer() == 1,
        )
        .group_by("first"),
        # Match rows repeat (the same profile gives the same results): each distinct JSON is parsed once.
        "matches": select(results_text, profile_text, func.count())
        .where(window, Inquiry.kind == "match", Inquiry.answered.in_((True, False)))
        .group_by(results_text, profile_text),
        "funnel": _funnel_query(scan),
    }


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _scan_created_at(dialect: str) -> ColumnElement[Any]:
    """created_at for the period filter of whole-log scans. On SQLite it is written `+created_at`, which keeps
    the planner off the created_at index: a period of months is most of the log, and scanning an index in
    GROUP BY order (migration 0003) beats fetching rows by date and sorting them in a temporary B-tree."""
    if dialect == "sqlite":
        return UnaryExpression(Inquiry.created_at, operator=custom_op("+"), type_=Inquiry.created_at.type)
    return Inquiry.created_at


def _day(dialect: str) -> ColumnElement[Any]:
    """The UTC day of created_at as 'YYYY-MM-DD'. SQLite stores UTC text (and indexes this very expression,
    constants written out); PostgreSQL a timestamptz."""
    if dialect == "sqlite":
        return func.substr(Inquiry.created_at, literal_column("1"), literal_column("10"))
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Inquiry.created_at), "YYYY-MM-DD")
    return func.date(Inquiry.created_at)


def _funnel_query(window: ColumnElement[bool]) -> Select[Any]:
    card = or_(
        and_(Inquiry.kind.in_(("measure", "deeplink")), Inquiry.measure.is_not(None)),
        and_(Inquiry.kind == "question", Inquiry.answered == true()),
    )
    per_user = (
        select(
            func.max(case((card, 1), else_=0)).label("card"),
            func.max(case((Inquiry.kind == "match", 1), else_=0)).label("matched"),
        )
        .where(window)
        .group_by(Inquiry.user_pseudonym)
        .subquery()
    )
    return select(
        func.count(),
        func.coalesce(func.sum(per_user.c.card), 0),
        func.coalesce(func.sum(per_user.c.card * per_user.c.matched), 0),
    )


def _add_facets(
    report: DemandReport,
    facets: Iterable[Any],
    hits: Iterable[Any],
    matches: Iterable[Any],
    content: Content | None,
) -> None:
    """Per measure, per plan, channel, district and identity counts from the grouped rows."""
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
    for kind, measure, plan, channel, district, n in facets:
        report.inquiries += n
        channels[channel] += n
        districts[district or "unknown"] += n
        if kind == "plan" and plan is not None:
            menu_views[plan] += n
        elif kind in ("measure", "deeplink") and measure is not None:
            row = demand(measure)
            if kind == "measure":
                row.views += n
            else:
                row.deeplinks += n
            if plan is not None:
                plan_of.setdefault(measure, plan)
    for measure, n in hits:
        if measure is not None:
            demand(measure).question_hits += n
    for results_json, profile_json, n in matches:
        for number in _applicable(results_json):
            demand(number).matches += n
        for identity in _identities(profile_json):
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


def _applicable(results_json: str | None) -> set[int]:
    """The measures a match found applicable (near misses left out), each once."""
    results = json.loads(results_json) if results_json else None
    if not isinstance(results, list):
        return set()
    return {
        r["measure"]
        for r in results
        if isinstance(r, dict) and isinstance(r.get("measure"), int) and not r.get("near_miss")
    }


def _identities(profile_json: str | None) -> set[str]:
    profile = json.loads(profile_json) if profile_json else None
    values = profile.get("identity") if isinstance(profile, dict) else None
    return {v for v in values if isinstance(v, str)} if isinstance(values, list) else set()


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

_SPLIT = re.compile(r"[\W_]+")
_LONG_NUMBER = re.compile(r"\d{7,}")
_PARTICLES = "啊呀吗呢吧哦啦嘛呗"
_FOLDS = (("怎么样", "怎么"), ("怎样", "怎么"), ("如何", "怎么"), ("咋", "怎么"))


def mask(text: str) -> str:
    """The text with long digit runs (phone numbers, ids someone typed) masked."""
    return _LONG_NUMBER.sub("#", text)


def normalise(text: str) -> str:
    """The comparable form of a question: NFKC, lower case, no punctuation or white space.

    Also drops a clause's trailing modal particles (啊, 吗, 呢...) and folds 怎样/如何/咋 into 怎么,
    so that "怎样办营业执照啊" and "怎么办营业执照？" compare equal: bigram Jaccard alone gives them 0.44.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(piece.rstrip(_PARTICLES) for piece in _SPLIT.split(text))
    for variant, common in _FOLDS:
        text = text.replace(variant, common)
    return text.removeprefix("请问")


def bigrams(text: str) -> frozenset[str]:
    """The character bigrams of a normalised text (a one-character text is its own gram)."""
    return frozenset(text[i : i + 2] for i in range(len(text) - 1)) if len(text) > 1 else frozenset(text)


def group_questions(counted: Iterable[tuple[str, int]]) -> list[QuestionGroup]:
    """Group question texts (with their counts) that are equal once normalised, or whose bigram sets have a
    Jaccard similarity of at least 3/5. Greedy: forms are taken most asked first; each joins the first group
    whose founding form it resembles, or founds a group. Founders are looked up through an index of their
    rarest bigrams (a prefix filter, as in PPJoin: two sets that similar must share one of those), rarest
    first, so tens of thousands of distinct texts take about a second. Largest groups first."""
    texts: Counter[str] = Counter()
    for text, n in counted:
        texts[mask(text).strip()] += n
    forms: dict[str, Counter[str]] = defaultdict(Counter)
    for text, n in texts.items():
        forms[normalise(text)][text] += n
    order = sorted(forms, key=lambda f: (-sum(forms[f].values()), f))
    grams = [bigrams(f) for f in order]
    frequency = Counter(g for found in grams for g in found)
    founders: list[frozenset[str]] = []
    members: list[Counter[str]] = []
    index: dict[str, list[int]] = defaultdict(list)  # bigram -> groups whose founder has it among its rarest
    for form, mine in zip(order, grams, strict=True):
        size = len(mine)
        rarest = sorted(mine, key=lambda g: (frequency[g], g))[: size - (SIMILAR_NUM * size - 1) // SIMILAR_DEN]
        joined = _first_similar(mine, rarest, index, founders) if size else None
        if joined is None:
            joined = len(founders)
            founders.append(mine)
            members.append(Counter())
            for gram in rarest:
                index[gram].append(joined)
        members[joined].update(forms[form])
    groups = []
    for wordings in members:
        common = sorted(wordings.items(), key=lambda kv: (-kv[1], kv[0]))
        groups.append(QuestionGroup(common[0][0], sum(wordings.values()), [t for t, _ in common[:EXAMPLES_PER_GROUP]]))
    groups.sort(key=lambda g: (-g.count, g.text))
    return groups


def _first_similar(
    mine: frozenset[str], rarest: list[str], index: dict[str, list[int]], founders: list[frozenset[str]]
) -> int | None:
    """The first group met through `rarest` whose founder is similar enough: |A ∩ B| / |A ∪ B| ≥ 3/5, which
    in integers is 8·|A ∩ B| ≥ 3·(|A| + |B|). Sizes out of [3/5·|A|, 5/3·|A|] cannot be, and are skipped."""
    num, total = SIMILAR_NUM, SIMILAR_NUM + SIMILAR_DEN
    size = len(mine)
    low, high = -(-SIMILAR_NUM * size // SIMILAR_DEN), SIMILAR_DEN * size // SIMILAR_NUM
    seen: set[int] = set()
    for gram in rarest:
        for group in index.get(gram, ()):
            if group in seen:
                continue
            seen.add(group)
            theirs = founders[group]
            their_size = len(theirs)
            if low <= their_size <= high and len(mine & theirs) * total >= num * (size + their_size):
                return group
    return None


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
        for metric in ("views", "deeplinks", "question_hits", "matches", "total"):
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
            ["measure", "title", "views", "deeplinks", "question_hits", "matches", "total"],
            [
                [m.measure, m.title or "", m.views, m.deeplinks, m.question_hits, m.matches, m.total]
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
