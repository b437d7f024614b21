"""The admin dashboard under /admin: the demand report (storage/reports.py) as a web page with SVG charts, and
its CSV and JSON downloads; announcements to subscribers (compose, preview, send, progress) and the staff and admin
roles of the chat (storage/announcements.py); all behind a login.

Sessions live in the database (storage/admins.py) and ride in an HttpOnly, SameSite=Strict cookie limited to
/admin; it is Secure when the request came over HTTPS (directly or per X-Forwarded-Proto) or the setting
`admin_cookie_secure` says so. The login form's CSRF token is an HMAC of a pre-login cookie, every later form
carries the session's own token, and failed logins are limited per client address. Pages are rendered with
Jinja2 autoescaping and served with a strict Content-Security-Policy: no inline script or style, charts are
SVG drawn on the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select

from content.schema import District, Identity
from handlers.vocabulary import LABELS, label
from storage.admins import MAX_PASSWORD, AdminSession, AdminStore
from storage.announcements import ROLES, Audience, Progress
from storage.models import Announcement
from storage.reports import CONTEXT_NOTE, KIND_ORDER, DemandReport, Period, demand_report, to_csv, to_json

if TYPE_CHECKING:
    from bot.app import Services

ADMIN = "/admin"
LOGIN = f"{ADMIN}/login"
SESSION_COOKIE = "admin_session"
PRELOGIN_COOKIE = "admin_prelogin"
PRELOGIN_MAX_AGE = 3600
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = timedelta(seconds=60)
DEFAULT_DAYS = 90
MAX_DAYS = 3660
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ANNOUNCEMENTS = f"{ADMIN}/announcements"
ROLES_PAGE = f"{ADMIN}/roles"
MAX_TEXT = 2000
MAX_USER_ID = 128
RECENT = 30
AUTHOR_PREFIX = "dashboard:"
MAX_AUTHOR = 64  # announcements.author_pseudonym is a String(64)
PAST_GRACE = timedelta(minutes=1)
MAX_AHEAD = timedelta(days=366)
DISTRICTS: tuple[str, ...] = get_args(District)
IDENTITIES: tuple[str, ...] = get_args(Identity)
PUSH_CHANNELS = {"telegram": "Telegram", "wechat": "微信 WeChat"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def _shanghai() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except ZoneInfoNotFoundError:  # no tz database: China has kept UTC+8 without summer time since 1991
        return timezone(timedelta(hours=8), "Asia/Shanghai")


SHANGHAI = _shanghai()

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CHANNELS = {"telegram": "Telegram", "wechat": "微信 WeChat", "web": "网页 Web", "api": "API", "shell": "终端 Shell"}
KINDS = {
    "menu": "主菜单 menu",
    "plans": "计划列表 plans",
    "plan": "计划 plan",
    "measure": "措施 measure",
    "deeplink": "深度链接 deep link",
    "targets": "目标 targets",
    "help": "帮助 help",
    "question": "提问 question",
    "rejected": "答非所问 not what was asked",
    "vague": "笼统提问 vague question",
    "smalltalk": "闲聊 small talk",
    "match": "匹配 match",
    "profile": "画像 profile",
    "lang": "语言 language",
    "invalid_button": "无效按钮 invalid button",
    "unknown_command": "未知命令 unknown command",
}
STEPS = {"inquired": "咨询 inquired", "saw_measure_card": "看过措施 saw a measure", "matched": "做过匹配 matched"}
METRICS = (
    ("views", "浏览 views"),
    ("deeplinks", "深度链接 deep links"),
    ("question_hits", "提问命中 questions"),
    ("matches", "匹配 matches"),
)


# --- charts: SVG geometry computed here, drawn by the template ---------------------------------------------------


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    tip: str
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    css: str = ""
    anchor: str = "start"


@dataclass
class Chart:
    """An SVG chart: its size, bars (with data-* attributes for tests and tools) and text labels."""

    id: str
    title: str
    width: float
    height: float
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def _scale(value: float, top: float, length: float) -> float:
    return round(value / top * length, 1) if top else 0.0


def measure_chart(report: DemandReport) -> Chart:
    """Horizontal stacked bars: each measure's views, deep links, question hits and matches, largest first."""
    rows = sorted(report.measures, key=lambda m: (-m.total, m.measure))
    left, plot, row_h, top_y = 190.0, 440.0, 22.0, 30.0
    chart = Chart(
        "measure-chart", "各项措施的咨询 Inquiries per measure", left + plot + 50, top_y + row_h * len(rows) + 8
    )
    for i, (metric, name) in enumerate(METRICS):
        chart.rects.append(Rect(left + i * 120, 6, 12, 12, f"s-{metric}", name))
        chart.labels.append(Label(left + i * 120 + 16, 16, name, "legend"))
    top = max((m.total for m in rows), default=0)
    for i, m in enumerate(rows):
        y = top_y + i * row_h
        title = m.title or ""
        short = title if len(title) <= 9 else title[:8] + "…"
        chart.labels.append(Label(left - 6, y + 15, f"{m.measure} {short}", "axis", "end"))
        x = left
        for metric, name in METRICS:
            value = getattr(m, metric)
            width = _scale(value, top, plot)
            if value:
                data = {"measure": str(m.measure), "metric": metric, "value": str(value)}
                tip = f"措施 {m.measure} {title}: {name} {value}"
                chart.rects.append(Rect(x, y + 3, width, row_h - 6, f"s-{metric}", tip, data))
            x += width
        chart.labels.append(Label(x + 4, y + 15, str(m.total), "value"))
    return chart


def week_chart(report: DemandReport, since: date, until: date) -> Chart:
    """Vertical bars: inquiries per ISO week (named by its Monday), empty weeks included."""
    totals: dict[date, int] = defaultdict(int)
    for w in report.weeks:
        totals[w.week] += w.count
    first, last = since - timedelta(days=since.weekday()), until - timedelta(days=until.weekday())
    weeks = [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]
    step = max(8.0, min(48.0, 680.0 / max(len(weeks), 1)))
    left, plot_h, base = 10.0, 160.0, 190.0
    chart = Chart("week-chart", "每周咨询 Inquiries per week", max(360.0, left * 2 + step * len(weeks)), base + 30)
    top = max(totals.values(), default=0)
    every = max(1, round(len(weeks) / 14))
    for i, week in enumerate(weeks):
        value, x = totals.get(week, 0), left + i * step
        height = _scale(value, top, plot_h)
        tip = f"{week.isoformat()} 起一周 week of: {value}"
        data = {"week": week.isoformat(), "value": str(value)}
        chart.rects.append(Rect(x + step * 0.15, base - height, step * 0.7, height, "s-week", tip, data))
        if value:
            chart.labels.append(Label(x + step / 2, base - height - 4, str(value), "value", "middle"))
        if i % every == 0:
            chart.labels.append(Label(x + step / 2, base + 16, week.strftime("%m-%d"), "axis", "middle"))
    return chart


# --- the page's tables ----------------------------------------------------------------------------------------


def vocabulary(key: str) -> str:
    """A district or identity key as "中文 English (key)"; keys outside the vocabulary as they are."""
    if key not in LABELS:
        return "未知 unknown" if key == "unknown" else key
    return f"{label(key, 'zh')} {label(key, 'en')} ({key})"


def week_table(report: DemandReport) -> tuple[list[str], list[tuple[str, list[int], int]]]:
    """Weeks by kind, as to_table shows them: the kinds present, and per week the counts and the total."""
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    kinds = sorted({w.kind for w in report.weeks}, key=lambda k: (order.get(k, len(order)), k))
    weeks: dict[date, dict[str, int]] = defaultdict(dict)
    for w in report.weeks:
        weeks[w.week][w.kind] = w.count
    rows = [
        (week.isoformat(), [counts.get(k, 0) for k in kinds], sum(counts.values()))
        for week, counts in sorted(weeks.items())
    ]
    return kinds, rows


def totals(report: DemandReport) -> list[tuple[str, int]]:
    """The headline numbers, all from the report."""
    kinds: dict[str, int] = defaultdict(int)
    for w in report.weeks:
        kinds[w.kind] += w.count
    users = report.funnel[0].users if report.funnel else 0
    return [
        ("咨询总数 Inquiries", report.inquiries),
        ("咨询用户 Users", users),
        ("措施浏览 Measure views", sum(m.views for m in report.measures)),
        ("深度链接 Deep links", sum(m.deeplinks for m in report.measures)),
        ("提问 Questions", kinds["question"]),
        ("提问命中措施 Questions answered with a measure", sum(m.question_hits for m in report.measures)),
        ("答非所问 Answers that were not what was asked", kinds["rejected"]),
        ("判为题外 Questions held back as off-topic", sum(m.held_back for m in report.measures)),
        ("匹配请求 Match requests", kinds["match"]),
        ("匹配到的措施 Measures matched", sum(m.matches for m in report.measures)),
    ]


def page_context(report: DemandReport, since: date, until: date) -> dict[str, Any]:
    """Everything the dashboard template shows, from one report."""
    kinds, weeks = week_table(report)
    query = urlencode({"since": since.isoformat(), "until": until.isoformat()})
    return {
        "report": report,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "totals": totals(report),
        "measure_chart": measure_chart(report),
        "week_chart": week_chart(report, since, until),
        "week_kinds": [KINDS.get(k, k) for k in kinds],
        "week_rows": weeks,
        "channels": [(CHANNELS.get(c.key, c.key), c.count) for c in report.channels],
        "districts": [(vocabulary(c.key), c.count) for c in report.districts],
        "identities": [(vocabulary(c.key), c.count) for c in report.identities],
        "steps": [
            (STEPS.get(f.step, f.step), f.users, "" if f.share is None else f"{f.share:.1%}") for f in report.funnel
        ],
        "context_note": CONTEXT_NOTE,
        "csv_url": f"{ADMIN}/report.csv?{query}",
        "json_url": f"{ADMIN}/report.json?{query}",
    }


# --- periods ----------------------------------------------------------------------------------------------------


class PeriodError(ValueError):
    """A period in the query string that cannot be reported."""


def parse_period(query: Mapping[str, str], today: date) -> tuple[date, date]:
    """`since` and `until` (YYYY-MM-DD, both days included, UTC) from the query; by default the last 90 days."""
    until = _day(query.get("until"), "until") or today
    since = _day(query.get("since"), "since") or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise PeriodError("起始日期晚于结束日期 since is after until")
    if (until - since).days >= MAX_DAYS:
        raise PeriodError(f"时间段过长 the period may span at most {MAX_DAYS} days")
    return since, until


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        if not _DAY.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"日期格式应为 YYYY-MM-DD: {name}") from None


def report_period(since: date, until: date) -> Period:
    """The half-open interval [since 00:00, the day after until 00:00) in UTC."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
    return Period(start, end)


# --- announcement and role forms ----------------------------------------------------------------------------------


@dataclass
class AnnouncementForm:
    """The compose form's fields as typed (to show them again), and what they mean once checked."""

    text: str = ""
    districts: list[str] = field(default_factory=list)
    topic: str = ""
    identity: str = ""
    when: str = "now"
    send_at: str = ""
    request_key: str = ""  # made by the preview: the Confirm form stores one announcement however often sent
    errors: list[str] = field(default_factory=list)
    audience: Audience = field(default_factory=Audience)
    send_time: datetime | None = None  # UTC; None: now

    def hidden(self) -> list[tuple[str, str]]:
        """The fields again, for the preview's Confirm form."""
        districts = [("district", d) for d in self.districts]
        rest = [("topic", self.topic), ("identity", self.identity), ("when", self.when), ("send_at", self.send_at)]
        return [("text", self.text), *districts, *rest, ("request_key", self.request_key)]


def _clean_text(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def parse_announcement(form: Any, topics: Mapping[int, Any], now: datetime) -> AnnouncementForm:
    """The compose form checked: every field known, the text 1–2000 characters, the send time not past.
    `form` is the request's multidict (several `district` values); `now` is UTC."""
    values = AnnouncementForm(
        text=_clean_text(_field(form, "text")),
        districts=[d for d in form.getall("district", []) if isinstance(d, str)] if hasattr(form, "getall") else [],
        topic=_field(form, "topic").strip(),
        identity=_field(form, "identity").strip(),
        when=_field(form, "when").strip() or "now",
        send_at=_field(form, "send_at").strip(),
        request_key=_field(form, "request_key").strip(),
    )
    errors = values.errors
    if values.request_key and not _TOKEN.match(values.request_key):
        errors.append("表单已失效，请重新预览 The form is out of date: preview it again.")
    if not values.text:
        errors.append("请填写公告内容 The announcement text is empty.")
    elif len(values.text) > MAX_TEXT:
        errors.append(f"公告内容过长 The text is {len(values.text)} characters long: at most {MAX_TEXT}.")
    elif _CONTROL.search(values.text):
        errors.append("公告内容含有控制字符 The text contains control characters.")
    unknown = [d for d in values.districts if d not in DISTRICTS]
    if unknown:
        errors.append("未知的区市 Unknown district: " + ", ".join(d[:40] for d in unknown[:3]))
    topic = None
    if values.topic:
        if values.topic.isdigit() and len(values.topic) <= 3 and int(values.topic) in topics:
            topic = int(values.topic)
        else:
            errors.append(f"未知的主题 Unknown topic: {values.topic[:40]}")
    if values.identity and values.identity not in IDENTITIES:
        errors.append(f"未知的身份 Unknown identity: {values.identity[:40]}")
    if values.when == "at":
        values.send_time = _send_time(values.send_at, now, errors)
    elif values.when != "now":
        errors.append("发送时间无效 Choose to send now or at a time.")
    districts = sorted(set(values.districts), key=DISTRICTS.index) if not unknown else []
    values.audience = Audience(districts or None, topic, values.identity or None)
    return values


def _send_time(value: str, now: datetime, errors: list[str]) -> datetime | None:
    """A datetime-local value (Asia/Shanghai) as UTC; an error when missing, malformed, past or too far."""
    if not value:
        errors.append("请选择发送时间 Choose the send time (Beijing time).")
        return None
    try:
        if not _LOCAL_TIME.match(value):
            raise ValueError(value)
        local = datetime.fromisoformat(value).replace(tzinfo=SHANGHAI)
    except ValueError:
        errors.append("发送时间格式应为 YYYY-MM-DDTHH:MM The send time should look like 2026-03-01T09:00.")
        return None
    when = local.astimezone(UTC)
    if when < now - PAST_GRACE:
        errors.append("发送时间已过 The send time is in the past (Beijing time).")
        return None
    if when > now + MAX_AHEAD:
        errors.append("发送时间太远 The send time is more than a year ahead.")
        return None
    return when


@dataclass
class RoleForm:
    """The grant form's fields as typed, and the errors found in them."""

    channel: str = "telegram"
    user_id: str = ""
    role: str = "staff"
    districts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_role(form: Any) -> RoleForm:
    """The grant form checked: a push channel, a user id, a role, and for staff at least one known district."""
    values = RoleForm(
        channel=_field(form, "channel").strip(),
        user_id=_field(form, "user_id").strip(),
        role=_field(form, "role").strip(),
        districts=[d for d in form.getall("district", []) if isinstance(d, str)] if hasattr(form, "getall") else [],
    )
    errors = values.errors
    if values.channel not in PUSH_CHANNELS:
        errors.append(f"未知的渠道 Unknown channel: {values.channel[:40]}")
    if not values.user_id:
        errors.append("请填写用户 ID Enter the user's id on that channel.")
    elif (
        len(values.user_id) > MAX_USER_ID or _CONTROL.search(values.user_id) or any(c.isspace() for c in values.user_id)
    ):
        errors.append(f"用户 ID 无效 The user id must be at most {MAX_USER_ID} characters, without spaces.")
    if values.role not in ROLES:
        errors.append(f"未知的角色 Unknown role: {values.role[:40]}")
    unknown = [d for d in values.districts if d not in DISTRICTS]
    if unknown:
        errors.append("未知的区市 Unknown district: " + ", ".join(d[:40] for d in unknown[:3]))
    elif values.role == "staff" and not values.districts:
        errors.append("工作人员需要至少一个区市 Staff need at least one district.")
    values.districts = sorted(set(values.districts), key=DISTRICTS.index) if not unknown else []
    return values


def dashboard_author(username: str) -> str:
    """The author of an announcement sent from the dashboard: "dashboard:<username>", within the 64 characters of
    announcements.author_pseudonym (a longer username is cut and tagged with a hash of the whole, to stay distinct)."""
    author = f"{AUTHOR_PREFIX}{username}"
    if len(author) <= MAX_AUTHOR:
        return author
    tag = hashlib.sha256(username.encode()).hexdigest()[:8]
    return f"{author[: MAX_AUTHOR - len(tag) - 1]}~{tag}"


def progress_row(progress: Progress, meta: Mapping[int, tuple[str, datetime | None]]) -> dict[str, Any]:
    """One announcement of the list: its text, author, send time (Beijing), status and delivery counts."""
    c = progress.counts
    author, send_at = meta.get(progress.announcement_id, ("", None))
    if send_at is not None and send_at.tzinfo is None:  # SQLite gives naive UTC back
        send_at = send_at.replace(tzinfo=UTC)
    return {
        "id": progress.announcement_id,
        "text": progress.text,
        "author": author,
        "send_at": send_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if send_at else "",
        "status": progress.status,
        "sent": c.get("sent", 0),
        "failed": c.get("failed", 0),
        "blocked": c.get("blocked", 0),
        "deferred": c.get("deferred", 0),
        "pending": c.get("pending", 0) + c.get("sending", 0),
        "total": progress.total,
    }


# --- requests ---------------------------------------------------------------------------------------------------


def is_https(request: web.Request) -> bool:
    """Whether the client reached us over HTTPS: directly, or through a proxy that says so."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if forwarded == "https":
        return True
    return "proto=https" in request.headers.get("Forwarded", "").lower().replace('"', "").replace(" ", "")


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _is_admin_path(path: str) -> bool:
    return path == ADMIN or path.startswith(ADMIN + "/")


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """Strict headers on every /admin response, errors included."""
    if not _is_admin_path(request.path):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


class Dashboard:
    """The /admin routes and their state: the admin store, the login limiter and the templates."""

    def __init__(self, services: Services) -> None:
        self.db = services.db
        self.content = services.content
        self.announcements = services.announcements
        self.assistant = services.assistant
        self.admins = AdminStore(services.db)
        self.trusted_proxies = frozenset(filter(None, map(str.strip, services.settings.trusted_proxies.split(","))))
        self.always_secure = bool(getattr(services.settings, "admin_cookie_secure", False))
        self.login_key = hmac.new(services.settings.pseudonymisation_key(), b"admin-login-csrf", "sha256").digest()
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def add_routes(self, app: web.Application) -> None:
        """Register the /admin routes and the security-header middleware (before the app starts)."""
        app.router.add_get(ADMIN, self.dashboard)
        app.router.add_get(ADMIN + "/", self.slash)
        app.router.add_get(LOGIN, self.login_form)
        app.router.add_post(LOGIN, self.login)
        app.router.add_post(f"{ADMIN}/logout", self.logout)
        app.router.add_get(f"{ADMIN}/report.csv", self.report_csv)
        app.router.add_get(f"{ADMIN}/report.json", self.report_json)
        app.router.add_get(ANNOUNCEMENTS, self.announcements_list)
        app.router.add_post(f"{ANNOUNCEMENTS}/preview", self.announcements_preview)
        app.router.add_post(f"{ANNOUNCEMENTS}/send", self.announcements_send)
        app.router.add_get(ROLES_PAGE, self.roles_list)
        app.router.add_post(f"{ROLES_PAGE}/grant", self.roles_grant)
        app.router.add_post(f"{ROLES_PAGE}/revoke", self.roles_revoke)
        app.router.add_get(f"{ADMIN}/static/{{name}}", self.static)
        app.middlewares.append(security_headers)

    # --- helpers -----------------------------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        """A template rendered with autoescaping, as an HTML response."""
        html = self.templates.get_template(name).render(**context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def secure(self, request: web.Request) -> bool:
        """Whether cookies set in answer to `request` get the Secure flag."""
        return self.always_secure or is_https(request)

    def set_cookie(self, response: web.StreamResponse, request: web.Request, name: str, value: str, age: int) -> None:
        """Set an admin cookie: HttpOnly, SameSite=Strict, Path=/admin, Secure over HTTPS."""
        response.set_cookie(
            name, value, path=ADMIN, max_age=age, httponly=True, samesite="Strict", secure=self.secure(request)
        )

    def del_cookie(self, response: web.StreamResponse, request: web.Request, name: str) -> None:
        """Expire an admin cookie (same attributes as when it was set)."""
        response.del_cookie(name, path=ADMIN, httponly=True, samesite="Strict", secure=self.secure(request))

    def login_csrf(self, prelogin: str) -> str:
        """The login form's CSRF token for this pre-login cookie value."""
        return hmac.new(self.login_key, prelogin.encode(), hashlib.sha256).hexdigest()

    async def session(self, request: web.Request) -> AdminSession | None:
        """The live session of the request's cookie, if any."""
        token = request.cookies.get(SESSION_COOKIE, "")
        return await self.admins.get_session(token) if _TOKEN.match(token) else None

    def period(self, request: web.Request) -> tuple[date, date]:
        """The report's days from the query string (raises PeriodError)."""
        return parse_period(request.query, self.admins.clock().astimezone(UTC).date())

    @staticmethod
    def redirect(location: str, status: int = 302) -> web.Response:
        """A bare redirect (302, or 303 after a POST)."""
        return web.Response(status=status, headers={"Location": location})

    def forbidden(self) -> web.Response:
        """403 for a missing or wrong CSRF token."""
        message = "表单已失效，请重新登录 The form has expired or is not ours: open the login page again."
        return self.render("message.html", status=403, message=message)

    # --- login and logout --------------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        """The login form, with a CSRF token bound to a pre-login cookie."""
        if await self.session(request) is not None:
            return self.redirect(ADMIN)
        return self.login_page(request)

    def login_page(self, request: web.Request, status: int = 200, error: str = "", username: str = "") -> web.Response:
        """The login form, keeping (or starting) the pre-login cookie its token is bound to."""
        prelogin = request.cookies.get(PRELOGIN_COOKIE, "")
        if not _TOKEN.match(prelogin):
            prelogin = secrets.token_urlsafe(32)
        response = self.render(
            "login.html", status=status, csrf=self.login_csrf(prelogin), error=error, username=username
        )
        self.set_cookie(response, request, PRELOGIN_COOKIE, prelogin, PRELOGIN_MAX_AGE)
        return response

    async def login(self, request: web.Request) -> web.Response:
        """Check the CSRF token, then the rate limit, then the password; a session cookie on success."""
        form = await request.post()
        prelogin = request.cookies.get(PRELOGIN_COOKIE, "")
        if not _TOKEN.match(prelogin) or not hmac.compare_digest(_field(form, "csrf"), self.login_csrf(prelogin)):
            return self.forbidden()
        client = self.client_address(request)
        username, password = _field(form, "username"), _field(form, "password")
        retry = await self.admins.login_retry_after(client, LOGIN_ATTEMPTS, LOGIN_WINDOW)
        if retry:
            response = self.login_page(request, 429, "尝试次数过多，请稍后再试 Too many failed logins: wait a minute.")
            response.headers["Retry-After"] = str(retry)
            return response
        admin = await self.admins.verify(username, password) if len(password) <= MAX_PASSWORD else None
        if admin is None:
            await self.admins.login_failed(client, LOGIN_WINDOW)
            return self.login_page(request, 401, "用户名或密码错误 Wrong username or password.", username[:64])
        session = await self.admins.create_session(admin)
        response = self.redirect(ADMIN, 303)
        self.set_cookie(response, request, SESSION_COOKIE, session.token, int(self.admins.session_ttl.total_seconds()))
        self.del_cookie(response, request, PRELOGIN_COOKIE)
        return response

    def client_address(self, request: web.Request) -> str:
        """Whom failed logins are counted against: the peer, or, when the peer is a trusted reverse proxy,
        the nearest address in X-Forwarded-For that is not one (a client cannot forge past its proxy)."""
        peer = request.remote or "unknown"
        if peer not in self.trusted_proxies:
            return peer
        forwarded = [address.strip() for address in request.headers.get("X-Forwarded-For", "").split(",")]
        return next((a for a in reversed(forwarded) if a and a not in self.trusted_proxies), peer)

    async def logout(self, request: web.Request) -> web.Response:
        """End the session (the form must carry the session's CSRF token)."""
        session = await self.session(request)
        if session is None:
            return self.redirect(LOGIN)
        form = await request.post()
        if not hmac.compare_digest(_field(form, "csrf"), session.csrf):
            return self.forbidden()
        await self.admins.delete_session(session.token)
        response = self.redirect(LOGIN, 303)
        self.del_cookie(response, request, SESSION_COOKIE)
        return response

    # --- the report --------------------------------------------------------------------------------------------

    async def slash(self, _request: web.Request) -> web.Response:
        """/admin/ is /admin."""
        return self.redirect(ADMIN)

    async def dashboard(self, request: web.Request) -> web.Response:
        """The demand report for ?since=&until= (default: the last 90 days)."""
        session = await self.session(request)
        if session is None:
            return self.redirect(LOGIN)
        try:
            since, until = self.period(request)
        except PeriodError as exc:
            return self.render("message.html", status=400, message=str(exc), session=session)
        report = await demand_report(self.db, report_period(since, until), self.content.current)
        return self.render("dashboard.html", session=session, **page_context(report, since, until))

    async def download(self, request: web.Request, suffix: str) -> web.Response:
        """The same report as a CSV or JSON attachment; 401 without a session, 400 for a bad period."""
        if await self.session(request) is None:
            return web.Response(status=401, text="login required: /admin/login\n")
        try:
            since, until = self.period(request)
        except PeriodError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        report = await demand_report(self.db, report_period(since, until), self.content.current)
        name = f"demand-report_{since.isoformat()}_{until.isoformat()}.{suffix}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if suffix == "csv":  # with a byte order mark, so that Excel reads the Chinese as UTF-8
            return web.Response(text="\ufeff" + to_csv(report), content_type="text/csv", headers=headers)
        return web.Response(text=to_json(report), content_type="application/json", headers=headers)

    async def report_csv(self, request: web.Request) -> web.Response:
        """GET /admin/report.csv: storage.reports.to_csv of the period."""
        return await self.download(request, "csv")

    async def report_json(self, request: web.Request) -> web.Response:
        """GET /admin/report.json: storage.reports.to_json of the period."""
        return await self.download(request, "json")

    # --- announcements -----------------------------------------------------------------------------------------

    async def posted(self, request: web.Request) -> tuple[AdminSession, Any] | web.Response:
        """A POST's session and form, or the answer when there is no session (to the login) or a wrong CSRF token."""
        session = await self.session(request)
        if session is None:
            return self.redirect(LOGIN, 303)
        form = await request.post()
        if not hmac.compare_digest(_field(form, "csrf"), session.csrf):
            return self.forbidden()
        return session, form

    def topics(self) -> dict[int, str]:
        """The plans an announcement can be about, by number: "3 short name"."""
        return {n: f"{n} {plan.short_name.get('zh')}" for n, plan in sorted(self.content.current.plans.items())}

    async def recent_announcements(self) -> list[dict[str, Any]]:
        """The latest announcements of every author, newest first, with their delivery counts."""
        recent = await self.announcements.recent(None, RECENT)
        ids = [p.announcement_id for p in recent]
        meta: dict[int, tuple[str, datetime | None]] = {}
        if ids:
            async with self.db.session() as db_session:
                rows = await db_session.execute(
                    select(Announcement.id, Announcement.author_pseudonym, Announcement.send_at).where(
                        Announcement.id.in_(ids)
                    )
                )
                meta = {i: (author, send_at) for i, author, send_at in rows}
        return [progress_row(p, meta) for p in recent]

    async def announcements_page(
        self,
        request: web.Request,
        session: AdminSession,
        values: AnnouncementForm | None = None,
        status: int = 200,
    ) -> web.Response:
        """The list and the compose form (with the errors of `values`, if any)."""
        queued = request.query.get("queued", "")
        return self.render(
            "announcements.html",
            status=status,
            session=session,
            nav="announcements",
            announcements=await self.recent_announcements(),
            form=values or AnnouncementForm(),
            district_choices=[(d, vocabulary(d)) for d in DISTRICTS],
            topic_choices=list(self.topics().items()),
            identity_choices=[(i, vocabulary(i)) for i in IDENTITIES],
            max_text=MAX_TEXT,
            now_local=self.admins.clock().astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M"),
            queued=queued if queued.isdigit() and len(queued) < 19 else "",
        )

    async def announcements_list(self, request: web.Request) -> web.Response:
        """GET /admin/announcements: recent announcements with their progress, and the compose form."""
        session = await self.session(request)
        if session is None:
            return self.redirect(LOGIN)
        return await self.announcements_page(request, session)

    async def posted_announcement(self, request: web.Request) -> tuple[AdminSession, AnnouncementForm] | web.Response:
        """The signed-in, CSRF-checked and validated announcement form; or the response refusing it."""
        posted = await self.posted(request)
        if isinstance(posted, web.Response):
            return posted
        session, form = posted
        values = parse_announcement(form, self.topics(), self.admins.clock())
        if values.errors:
            return await self.announcements_page(request, session, values, 400)
        return session, values

    async def announcements_preview(self, request: web.Request) -> web.Response:
        """POST /admin/announcements/preview: the recipient count and the text, with a Confirm button."""
        posted = await self.posted_announcement(request)
        if isinstance(posted, web.Response):
            return posted
        session, values = posted
        values.request_key = secrets.token_urlsafe(24)
        recipients = await self.announcements.count_recipients(values.audience)
        audience = values.audience
        return self.render(
            "announcement_preview.html",
            session=session,
            nav="announcements",
            form=values,
            recipients=recipients,
            districts=[vocabulary(d) for d in audience.districts or []],
            topic=self.topics().get(audience.topic, "") if audience.topic is not None else "",
            identity=vocabulary(audience.identity) if audience.identity else "",
            send_at=values.send_time.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if values.send_time else "",
        )

    async def announcements_send(self, request: web.Request) -> web.Response:
        """POST /admin/announcements/send: store the announcement and its deliveries, wake the worker."""
        posted = await self.posted_announcement(request)
        if isinstance(posted, web.Response):
            return posted
        session, values = posted
        announcement_id, _recipients = await self.announcements.create(
            dashboard_author(session.username),
            "dashboard",
            None,
            values.text,
            values.audience,
            values.send_time,
            values.request_key or None,
        )
        self.assistant.on_announcement_queued()
        return self.redirect(f"{ANNOUNCEMENTS}?queued={announcement_id}", 303)

    # --- roles -------------------------------------------------------------------------------------------------

    async def roles_page(
        self, session: AdminSession, values: RoleForm | None = None, status: int = 200, message: str = ""
    ) -> web.Response:
        """The staff and admins, the grant form (with the errors of `values`) and a revoke button per row."""
        staff = sorted(await self.announcements.staff(), key=lambda r: (r[2] or "", r[1], r[0]))
        rows = [
            {
                "pseudonym": pseudonym,
                "channel": channel,
                "channel_label": CHANNELS.get(channel, channel),
                "role": role,
                "districts": ", ".join(vocabulary(d) for d in districts or []),
            }
            for pseudonym, channel, role, districts in staff
        ]
        return self.render(
            "roles.html",
            status=status,
            session=session,
            nav="roles",
            rows=rows,
            form=values or RoleForm(),
            message=message,
            channel_choices=list(PUSH_CHANNELS.items()),
            role_choices=[("staff", "工作人员 staff"), ("admin", "管理员 admin")],
            district_choices=[(d, vocabulary(d)) for d in DISTRICTS],
            max_user_id=MAX_USER_ID,
        )

    async def roles_list(self, request: web.Request) -> web.Response:
        """GET /admin/roles."""
        session = await self.session(request)
        if session is None:
            return self.redirect(LOGIN)
        return await self.roles_page(session)

    async def roles_grant(self, request: web.Request) -> web.Response:
        """POST /admin/roles/grant: the user id is pseudonymised at once; only the pseudonym is stored."""
        posted = await self.posted(request)
        if isinstance(posted, web.Response):
            return posted
        session, form = posted
        values = parse_role(form)
        if values.errors:
            return await self.roles_page(session, values, 400)
        pseudonym = self.assistant.pseudonymize(values.channel, values.user_id)
        await self.announcements.grant(pseudonym, values.channel, values.role, values.districts)
        return self.redirect(ROLES_PAGE, 303)

    async def roles_revoke(self, request: web.Request) -> web.Response:
        """POST /admin/roles/revoke: take the role of a listed pseudonym away."""
        posted = await self.posted(request)
        if isinstance(posted, web.Response):
            return posted
        session, form = posted
        pseudonym = _field(form, "pseudonym")
        listed = {row[0]: row[1] for row in await self.announcements.staff()}
        if pseudonym not in listed:
            return await self.roles_page(session, status=400, message="没有这个工作人员 No such staff member or admin.")
        await self.announcements.grant(pseudonym, listed[pseudonym], None)
        return self.redirect(ROLES_PAGE, 303)

    # --- static files ----------------------------------------------------------------------------------------

    async def static(self, request: web.Request) -> web.Response:
        """The dashboard's own script and style sheet (public: they hold no data)."""
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        body = (HERE / "static" / name).read_text(encoding="utf-8")
        return web.Response(text=body, content_type=STATIC_FILES[name])


DASHBOARD_KEY = web.AppKey("dashboard", Dashboard)


def add_dashboard(app: web.Application, services: Services) -> None:
    """Add the admin dashboard's routes under /admin to `app`."""
    dashboard = Dashboard(services)
    dashboard.add_routes(app)
    app[DASHBOARD_KEY] = dashboard
