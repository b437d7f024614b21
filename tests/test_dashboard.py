"""The admin dashboard: accounts and sessions, the /admin pages over HTTP on loopback, and the real thing in a
headless Chromium driven by Selenium. SQLite, and PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import func, select

from bot.app import Services, web_application
from bot.config import Settings
from bot.dashboard import DASHBOARD_KEY, Dashboard, add_dashboard, parse_period
from storage.admins import AdminError, AdminStore, admin_sessions, create_admin_command
from storage.db import Database
from storage.inquiry_log import InquiryRecord
from storage.reports import DemandReport, Period, demand_report, to_csv, to_json
from storage.users import Pseudonymizer
from tests.dashboard_helpers import chrome, chromium_or_skip, in_browser, sign_in

USERNAME, PASSWORD = "wang.admin", "correct horse battery staple"
# Still argon2id, with test-sized costs: the default profile takes ~0.3 s a hash (one test checks it is used).
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PSEUDONYMIZE = Pseudonymizer(b"dashboard-test-key-0123456789abcdef")
USERS = {"u1": ("telegram", "huancui"), "u2": ("web", None), "u3": ("wechat", "wendeng"), "u4": ("api", None)}
PSEUDONYMS = {user: PSEUDONYMIZE(channel, f"10000000{user[1]}") for user, (channel, _) in USERS.items()}
PERIOD = Period(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))
QUERY = "since=2026-01-05&until=2026-01-18"
NASTY = '<script>alert("x")</script>&'


def row(user: str, day: int, kind: str, **fields: Any) -> InquiryRecord:
    channel, district = USERS[user]
    when = datetime(2026, 1, day, 12, tzinfo=UTC)
    return InquiryRecord(channel, PSEUDONYMS[user], "zh", kind, district=district, created_at=when, **fields)


def hit(measure: int, rank: int) -> dict[str, Any]:
    return {"measure": measure, "targets": False, "rank": rank, "score": 5.0 - rank}


LOG = [
    row("u1", 5, "menu"),
    row("u1", 5, "measure", measure=7, plan=3),
    row("u1", 6, "measure", measure=7, plan=3),
    row("u2", 6, "measure", measure=7, plan=3),
    row("u2", 7, "deeplink", measure=7, plan=3, text="m7"),
    row("u1", 8, "measure", measure=14, plan=4),
    row("u2", 9, "question", text="创业担保贷款怎么申请", answered=True, results=[hit(7, 1), hit(10, 2)]),
    row("u2", 10, "rejected", measure=7, text="创业担保贷款怎么申请", answered=False, results=[hit(7, 1), hit(10, 2)]),
    row("u2", 12, "question", text="怎么办营业执照", answered=False, results=[]),
    row("u4", 13, "question", text="怎么办营业执照？", answered=False, results=[]),
    row("u4", 13, "question", text=NASTY, answered=False, results=[]),
    row("u4", 13, "question", text="驾校培训多少钱", answered=False, measure=19, results=[hit(19, 1) | {"held": True}]),
    row("u3", 14, "plan", plan=3),
    row(
        "u3",
        15,
        "match",
        answered=True,
        profile={"identity": ["college_student"], "district": "wendeng", "needs": ["loan"]},
        results=[{"measure": 7, "rank": 1, "score": 3.0}, {"measure": 14, "rank": 2, "score": 2.0}],
    ),
    row("u1", 4, "measure", measure=7, plan=3),  # before the period
    row("u1", 19, "measure", measure=7, plan=3),  # after it
]

# --- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture
async def app(services: Services) -> web.Application:
    """The app as served, plus the dashboard; one admin; the known log written."""
    application = web_application(services)
    if DASHBOARD_KEY not in application:  # until bot.app wires the dashboard in itself
        add_dashboard(application, services)
    admins = application[DASHBOARD_KEY].admins
    admins.hasher = FAST
    await admins.create_admin(USERNAME, PASSWORD)
    for record in LOG:
        services.inquiries.record(record)
    await services.inquiries.flush()
    return application


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """Just the migrated database, for the storage tests (no content to load)."""
    database = Database(settings.database_url, schema=settings.database_schema)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def dashboard(app: web.Application) -> Dashboard:
    return app[DASHBOARD_KEY]


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient]:
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()


@pytest.fixture
async def report(services: Services, app: web.Application) -> DemandReport:
    return await demand_report(services.db, PERIOD, services.content.current)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def login(client: TestClient, username: str = USERNAME, password: str = PASSWORD, **headers: str) -> Any:
    page = await client.get("/admin/login")
    assert page.status == 200
    form = {"csrf": csrf_of(await page.text()), "username": username, "password": password}
    return await client.post("/admin/login", data=form, allow_redirects=False, headers=headers)


def set_cookie_header(response: Any, name: str) -> str:
    headers = [h for h in response.headers.getall("Set-Cookie", []) if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers
    return headers[0]


class Tables(HTMLParser):
    """The body cells of every <table id=...> on a page, as text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id") or "", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# --- accounts and sessions --------------------------------------------------------------------------------------


async def test_admin_accounts_are_argon2id_and_refuse_short_passwords_and_taken_names(db: Database) -> None:
    message = await create_admin_command(db, " Li.Admin ", "twelve chars")  # the production hasher
    assert "li.admin" in message
    async with db.engine.connect() as conn:
        hashed = (await conn.exec_driver_sql("SELECT password_hash FROM admins")).scalar_one()
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "twelve chars" not in hashed
    store = AdminStore(db, hasher=FAST)
    with pytest.raises(AdminError, match="at least 12"):
        await store.create_admin("other", "elevenchars")
    with pytest.raises(AdminError, match="taken"):
        await store.create_admin("LI.ADMIN", "another good password")
    with pytest.raises(AdminError, match="taken"):
        await create_admin_command(db, "li.admin", "another good password")
    with pytest.raises(AdminError, match="username"):
        await store.create_admin("no spaces here", "another good password")
    admin = await store.verify("LI.admin ", "twelve chars")  # an old hash verifies with any parameters
    assert admin is not None and admin.username == "li.admin"
    assert await store.verify("li.admin", "twelve chars!") is None
    assert await store.verify("nobody", "twelve chars") is None  # checked against a dummy hash all the same
    assert store._dummy_hash is not None


async def test_sessions_expire_and_are_stored_by_hash(db: Database) -> None:
    now = datetime(2026, 3, 1, 9, tzinfo=UTC)
    store = AdminStore(db, hasher=FAST, clock=lambda: now)
    admin = await store.create_admin("chen", "a long enough password")
    session = await store.create_session(admin)
    assert session.expires_at - session.created_at == timedelta(hours=8)
    assert (await store.get_session(session.token)) == session
    async with db.engine.connect() as conn:
        stored = (await conn.execute(select(admin_sessions.c.token_hash))).scalars().all()
    assert session.token not in stored and len(stored) == 1
    store.clock = lambda: now + timedelta(hours=8)
    assert await store.get_session(session.token) is None
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(admin_sessions))).scalar_one() == 0
    assert await store.get_session("") is None


# --- HTTP -------------------------------------------------------------------------------------------------------


async def test_every_admin_page_but_login_needs_a_session(client: TestClient) -> None:
    assert (await client.get("/admin/", allow_redirects=False)).headers["Location"] == "/admin"
    for path in ("/admin", f"/admin?{QUERY}"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302, path
        assert response.headers["Location"] == "/admin/login"
    for path in ("/admin/report.csv", "/admin/report.json", f"/admin/report.csv?{QUERY}"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 401, path
        assert "营业执照" not in await response.text()
    client.session.cookie_jar.update_cookies({"admin_session": "x" * 43})
    assert (await client.get("/admin", allow_redirects=False)).status == 302
    page = await client.get("/admin/login")
    assert page.status == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in await page.text()  # the only script is /admin/static/dashboard.js
    assert (await client.get("/admin/static/dashboard.js")).headers["Content-Type"].startswith("text/javascript")
    assert (await client.get("/admin/static/../app.py")).status == 404


async def test_wrong_password_or_unknown_user_is_refused(client: TestClient) -> None:
    for username, password in ((USERNAME, "wrong password!!"), ("nobody", PASSWORD), (USERNAME, "")):
        response = await login(client, username, password)
        assert response.status == 401
        assert "Wrong username or password" in await response.text()
        assert not [h for h in response.headers.getall("Set-Cookie", []) if h.startswith("admin_session=")]
    assert (await client.get("/admin", allow_redirects=False)).status == 302


async def test_login_without_the_right_csrf_token_is_refused(client: TestClient) -> None:
    page = await client.get("/admin/login")
    token = csrf_of(await page.text())
    for form in ({"username": USERNAME, "password": PASSWORD}, {"csrf": "0" * 64, "username": USERNAME}):
        response = await client.post("/admin/login", data={"password": PASSWORD, **form}, allow_redirects=False)
        assert response.status == 403
    client.session.cookie_jar.clear()  # the token is bound to the pre-login cookie
    form = {"csrf": token, "username": USERNAME, "password": PASSWORD}
    assert (await client.post("/admin/login", data=form, allow_redirects=False)).status == 403
    client.session.cookie_jar.update_cookies({"admin_prelogin": "A" * 43})
    assert (await client.post("/admin/login", data=form, allow_redirects=False)).status == 403
    assert (await client.get("/admin", allow_redirects=False)).status == 302


async def test_login_sets_a_strict_cookie_and_logout_ends_the_session(client: TestClient) -> None:
    response = await login(client)
    assert response.status == 303
    assert response.headers["Location"] == "/admin"
    cookie = set_cookie_header(response, "admin_session")
    assert all(part in cookie for part in ("HttpOnly", "Path=/admin", "SameSite=Strict"))
    assert "Secure" not in cookie  # plain http on 127.0.0.1
    token = re.match(r"admin_session=([^;]+)", cookie).group(1)
    page = await client.get("/admin", allow_redirects=False)
    assert page.status == 200
    html = await page.text()
    assert USERNAME in html
    assert (await client.get("/admin/login", allow_redirects=False)).status == 302  # signed in already

    refused = await client.post("/admin/logout", data={"csrf": "wrong"}, allow_redirects=False)
    assert refused.status == 403
    assert (await client.post("/admin/logout", allow_redirects=False)).status == 403
    assert (await client.get("/admin", allow_redirects=False)).status == 200
    response = await client.post("/admin/logout", data={"csrf": csrf_of(html)}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/login"
    assert (await client.get("/admin", allow_redirects=False)).status == 302
    client.session.cookie_jar.update_cookies({"admin_session": token})  # the old cookie, replayed
    assert (await client.get("/admin", allow_redirects=False)).status == 302
    assert (await client.get("/admin/report.csv", allow_redirects=False)).status == 401

    behind_proxy = await login(client, **{"X-Forwarded-Proto": "https"})  # Secure as soon as HTTPS is in play
    assert behind_proxy.status == 303
    assert "Secure" in set_cookie_header(behind_proxy, "admin_session")
    page = await client.get("/admin/login", headers={"Forwarded": "for=192.0.2.1;proto=https"})
    assert "Secure" in set_cookie_header(page, "admin_prelogin")


async def test_an_expired_session_is_refused(client: TestClient, dashboard: Dashboard) -> None:
    assert (await login(client)).status == 303
    assert (await client.get("/admin", allow_redirects=False)).status == 200
    started = datetime.now(UTC)
    dashboard.admins.clock = lambda: started + timedelta(hours=8, seconds=1)
    assert (await client.get("/admin", allow_redirects=False)).status == 302
    assert (await client.get("/admin/report.json", allow_redirects=False)).status == 401


async def test_failed_logins_are_rate_limited_per_address(client: TestClient, dashboard: Dashboard) -> None:
    now = [datetime.now(UTC)]
    dashboard.admins.clock = lambda: now[0]
    for _ in range(5):
        assert (await login(client, password="not the password")).status == 401
    blocked = await login(client)  # even the right password waits
    assert blocked.status == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 61
    assert "Too many failed logins" in await blocked.text()
    assert await dashboard.admins.login_retry_after("10.0.0.9", 5, timedelta(seconds=60)) == 0, "another address"
    now[0] += timedelta(seconds=61)
    assert (await login(client)).status == 303


async def test_the_login_limit_holds_across_workers(services: Services, settings: Settings) -> None:
    """Failures at one worker count at every other: the limit lives in the shared database."""
    other_worker = await Services.start(settings)
    apps = []
    for worker in (services, other_worker):
        application = web_application(worker)
        if DASHBOARD_KEY not in application:
            add_dashboard(application, worker)
        application[DASHBOARD_KEY].admins.hasher = FAST
        apps.append(application)
    await apps[0][DASHBOARD_KEY].admins.create_admin(USERNAME, PASSWORD)
    clients = [TestClient(TestServer(application, host="127.0.0.1")) for application in apps]
    for test_client in clients:
        await test_client.start_server()
    try:
        for attempt in range(5):
            assert (await login(clients[attempt % 2], password="not the password")).status == 401
        assert (await login(clients[0])).status == 429
        assert (await login(clients[1])).status == 429
    finally:
        for test_client in clients:
            await test_client.close()
        await other_worker.close()


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    client: TestClient, dashboard: Dashboard
) -> None:
    dashboard.trusted_proxies = frozenset({"127.0.0.1"})
    for _ in range(5):
        response = await login(client, password="not the password", **{"X-Forwarded-For": "203.0.113.7"})
        assert response.status == 401
    assert (await login(client, **{"X-Forwarded-For": "203.0.113.7"})).status == 429
    forged = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # a client cannot hide behind a made-up address
    assert (await login(client, **forged)).status == 429
    assert (await login(client, **{"X-Forwarded-For": "203.0.113.8"})).status == 303, "another client behind it"


async def test_an_untrusted_peer_cannot_choose_its_address(client: TestClient) -> None:
    for n in range(5):
        response = await login(client, password="not the password", **{"X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status == 401
    assert (await login(client, **{"X-Forwarded-For": "203.0.113.99"})).status == 429


async def test_page_csv_and_json_show_the_numbers_of_demand_report(client: TestClient, report: DemandReport) -> None:
    seven = next(m for m in report.measures if m.measure == 7)
    assert (seven.views, seven.deeplinks, seven.question_hits, seven.matches, seven.total) == (3, 1, 1, 1, 6)
    assert seven.rejected == 1, "not in the total: the question was asked once"
    assert [(m.measure, m.held_back, m.total) for m in report.measures if m.held_back] == [(19, 1, 0)]
    assert (await login(client)).status == 303
    html = await (await client.get(f"/admin?{QUERY}")).text()
    tables = Tables(html).tables
    assert "<dt>判为题外 Questions held back as off-topic</dt><dd>1</dd>" in html

    numbers = ("views", "deeplinks", "question_hits", "matches", "total", "rejected", "held_back")
    expected = [
        [str(m.measure), m.title or "", str(m.plan or ""), *(str(getattr(m, n)) for n in numbers)]
        for m in report.measures
    ]
    assert tables["measures"] == expected
    assert len(expected) == 24
    assert tables["plans"] == [
        [str(p.plan), p.name or "", str(p.measure_rows), str(p.menu_views), str(p.total)] for p in report.plans
    ]
    assert [int(r[1]) for r in tables["channels"]] == [c.count for c in report.channels]
    assert [int(r[1]) for r in tables["districts"]] == [c.count for c in report.districts]
    assert ["环翠区 Huancui District (huancui)", "4"] in tables["districts"]
    assert [r[1:] for r in tables["unanswered"]] == [
        [q.text, str(q.count), " | ".join(q.examples)] for q in report.unanswered
    ]
    assert [(r[1], r[3]) for r in tables["most-viewed"]] == [(str(r.measure), str(r.count)) for r in report.most_viewed]
    assert [(r[1], r[3]) for r in tables["most-matched"]] == [
        (str(r.measure), str(r.count)) for r in report.most_matched
    ]
    assert [int(r[1]) for r in tables["funnel"]] == [f.users for f in report.funnel]
    assert [r[2] for r in tables["context"]] == [str(c.interest) for c in report.context]
    assert sum(int(r[-1]) for r in tables["weeks"]) == report.inquiries == 14
    assert re.search(rf"<dt>咨询总数 Inquiries</dt><dd>{report.inquiries}</dd>", html)
    assert 'data-measure="7" data-metric="views" data-value="3"' in html

    assert NASTY not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;" in html
    for pseudonym in PSEUDONYMS.values():
        assert pseudonym not in html

    response = await client.get(f"/admin/report.csv?{QUERY}")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    assert (await response.read()).decode("utf-8-sig") == to_csv(report)
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert ["inquiries", "14"] in [[r["key"], r["value"]] for r in rows if r["section"] == "period"]
    as_json = await (await client.get(f"/admin/report.json?{QUERY}")).text()
    assert json.loads(as_json) == json.loads(to_json(report))


async def test_the_period_defaults_to_90_days_and_is_checked(client: TestClient) -> None:
    assert (await login(client)).status == 303
    html = await (await client.get("/admin")).text()
    today = datetime.now(UTC).date()
    assert f'name="until" id="until" value="{today.isoformat()}"' in html
    assert f'name="since" id="since" value="{(today - timedelta(days=89)).isoformat()}"' in html
    for query in ("since=2026-01-10&until=2026-01-09", "since=2026-13-01", "until=20260101", "since=<b>"):
        response = await client.get(f"/admin?{query}")
        assert response.status == 400, query
        assert "<b>" not in await response.text()
    assert (await client.get("/admin/report.csv?since=x")).status == 400
    since, until = parse_period({"since": "2026-01-05", "until": "2026-01-18"}, today)
    assert (since.isoformat(), until.isoformat()) == ("2026-01-05", "2026-01-18")


# --- a real browser ---------------------------------------------------------------------------------------------


def browse(base: str, profile: Path) -> dict[str, Any]:
    """Sign in through the form, read the chart, fetch the CSV from the page; all in headless Chromium."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chrome(profile) as driver:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(20)
        driver.get(f"{base}/admin?{QUERY}")
        seen: dict[str, Any] = {"login_url": driver.current_url}
        sign_in(driver, USERNAME, PASSWORD)
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "measure-chart"))
        seen["after_login_url"] = driver.current_url
        driver.get(f"{base}/admin?{QUERY}")
        bars = driver.find_elements(By.CSS_SELECTOR, "#measure-chart rect[data-metric='views']")
        seen["views"] = [
            (b.get_attribute("data-measure"), b.get_attribute("data-value"), b.rect["width"]) for b in bars
        ]
        seen["weeks"] = [
            (b.get_attribute("data-week"), b.get_attribute("data-value"))
            for b in driver.find_elements(By.CSS_SELECTOR, "#week-chart rect[data-week]")
        ]
        seen["cookie"] = driver.execute_script("return document.cookie")
        seen["csv"] = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(document.getElementById('csv-link').href, {credentials: 'same-origin'})"
            ".then(r => r.text().then(text => done({status: r.status, type: r.headers.get('content-type'), text})))"
            ".catch(error => done({status: 0, text: String(error)}));"
        )
        driver.find_element(By.CSS_SELECTOR, "button[data-days='30']").click()  # dashboard.js ran: CSP allows it
        WebDriverWait(driver, 10).until(lambda d: "since=" in d.current_url and QUERY not in d.current_url)
        seen["preset_url"] = driver.current_url
        seen["console"] = [entry["message"] for entry in driver.get_log("browser")]
        return seen


async def test_in_a_real_headless_chromium(app: web.Application, report: DemandReport, tmp_path: Path) -> None:
    chromium_or_skip()
    seen = await in_browser(app, browse, tmp_path / "chromium")

    assert "/admin/login" in seen["login_url"]
    assert seen["after_login_url"].endswith("/admin")
    most_viewed = max(report.measures, key=lambda m: (m.views, -m.measure))
    views = {measure: (value, width) for measure, value, width in seen["views"]}
    assert views[str(most_viewed.measure)][0] == str(most_viewed.views) == "3"
    assert max(views.values(), key=lambda vw: vw[1]) == views["7"]
    assert views["7"][1] > 0
    assert ("2026-01-05", "8") in seen["weeks"] and ("2026-01-12", "6") in seen["weeks"]
    assert "admin_session" not in seen["cookie"]  # HttpOnly
    assert seen["csv"]["status"] == 200
    assert seen["csv"]["type"].startswith("text/csv")
    assert seen["csv"]["text"] == to_csv(report)  # the browser drops the byte order mark
    assert "since=" in seen["preset_url"]
    assert not [m for m in seen["console"] if "Content Security Policy" in m or "Refused" in m], seen["console"]
