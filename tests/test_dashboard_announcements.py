"""The dashboard's announcement and role pages: compose, preview, send and progress; granting and revoking staff and
admin roles. Reuses the app, the client and the login of tests/test_dashboard.py, and the browser of
tests/dashboard_helpers.py. SQLite, and PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import html as html_lib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import Services
from bot.dashboard import Dashboard, dashboard_author
from content.schema import Profile
from storage.announcements import Audience
from storage.models import Announcement, Delivery, User
from storage.users import UserStore
from tests.dashboard_helpers import chrome, chromium_or_skip, in_browser, sign_in
from tests.test_dashboard import (  # noqa: F401  (app, client and dashboard are fixtures)
    NASTY,
    PASSWORD,
    USERNAME,
    Tables,
    app,
    client,
    csrf_of,
    dashboard,
    login,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
RAW_ID = "123456789"
FORMS = ("/admin/announcements/preview", "/admin/announcements/send", "/admin/roles/grant", "/admin/roles/revoke")


# --- helpers ----------------------------------------------------------------------------------------------------


async def subscribers(services: Services) -> None:
    """Four subscriptions: two in Huancui (one of them a returnee, one only for plan 5), one in Wendeng only for
    plan 3, and an inactive one in Rongcheng."""
    store = services.announcements
    await store.subscribe("sub-a", "telegram", "1001", "huancui")
    await store.subscribe("sub-b", "telegram", "1002", "wendeng")
    await store.update_subscription("sub-b", topics=[3])
    await store.subscribe("sub-c", "wechat", "openid-c", "huancui")
    await store.update_subscription("sub-c", topics=[5])
    await store.subscribe("sub-d", "telegram", "1004", "rongcheng")
    await store.update_subscription("sub-d", active=False)
    users = UserStore(services.db)
    await users.seen("sub-a", "telegram", "zh")
    await users.set_profile("sub-a", Profile(identity=["returnee"], district="huancui"))


async def signed_in(client: TestClient) -> str:  # noqa: F811
    """Sign in; the session's CSRF token."""
    assert (await login(client)).status == 303
    page = await client.get("/admin/announcements")
    assert page.status == 200
    return csrf_of(await page.text())


def hidden_fields(page: str, form_id: str) -> list[tuple[str, str]]:
    """The hidden inputs of one form of the page, in order (repeated names kept)."""
    form = re.search(rf'<form[^>]*id="{form_id}".*?</form>', page, re.S)
    assert form, f"no form {form_id}"
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(0))
    return [(name, html_lib.unescape(value)) for name, value in found]


def compose(csrf: str, text: str = "创业补贴申请开始了 /m7", **fields: Any) -> list[tuple[str, str]]:
    """The compose form as a browser sends it; `district` may be a list."""
    data = [("csrf", csrf), ("text", text)]
    districts = fields.pop("district", [])
    data += [("district", d) for d in ([districts] if isinstance(districts, str) else districts)]
    data += [(name, str(value)) for name, value in {"topic": "", "identity": "", "when": "now", **fields}.items()]
    return data


async def preview(client: TestClient, data: list[tuple[str, str]]) -> tuple[int, str]:  # noqa: F811
    response = await client.post("/admin/announcements/preview", data=data, allow_redirects=False)
    return response.status, await response.text()


def recipients_of(page: str) -> int:
    found = re.search(r'<dd id="recipients">(\d+)</dd>', page)
    assert found, page
    return int(found.group(1))


async def announcements(services: Services) -> list[Announcement]:
    async with services.db.session() as session:
        return list(await session.scalars(select(Announcement).order_by(Announcement.id)))


async def deliveries(services: Services, announcement_id: int) -> list[Delivery]:
    async with services.db.session() as session:
        query = select(Delivery).where(Delivery.announcement_id == announcement_id).order_by(Delivery.id)
        return list(await session.scalars(query))


def local(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")


# --- access -----------------------------------------------------------------------------------------------------


async def test_the_new_pages_and_forms_need_a_session(client: TestClient, services: Services) -> None:  # noqa: F811
    for path in ("/admin/announcements", "/admin/roles"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302, path
        assert response.headers["Location"] == "/admin/login"
        assert response.headers["X-Frame-Options"] == "DENY"
    await subscribers(services)
    grant = {"channel": "telegram", "user_id": RAW_ID, "role": "admin"}
    for path in FORMS:
        data = {"csrf": "x" * 43, "text": "hello", "when": "now", "pseudonym": "sub-a", **grant}
        response = await client.post(path, data=data, allow_redirects=False)
        assert response.status in (302, 303), path
        assert response.headers["Location"] == "/admin/login"
    assert await announcements(services) == []
    assert await services.announcements.staff() == []


async def test_every_form_checks_the_csrf_token(client: TestClient, services: Services) -> None:  # noqa: F811
    csrf = await signed_in(client)
    await subscribers(services)
    await services.announcements.grant("sub-a", "telegram", "admin")
    grant = {"channel": "telegram", "user_id": RAW_ID, "role": "admin"}
    for path in FORMS:
        for token in ({}, {"csrf": "wrong"}, {"csrf": csrf[:-1]}):
            data = {**token, "text": "hello", "when": "now", "pseudonym": "sub-a", **grant}
            response = await client.post(path, data=data, allow_redirects=False)
            assert response.status == 403, (path, token)
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert await announcements(services) == []
    assert await services.announcements.staff() == [("sub-a", "telegram", "admin", None)]


async def test_navigation_links_to_the_new_pages(client: TestClient) -> None:  # noqa: F811
    await signed_in(client)
    for path in ("/admin", "/admin/announcements", "/admin/roles"):
        response = await client.get(path)
        page = await response.text()
        assert response.status == 200, path
        assert 'href="/admin/announcements"' in page and 'href="/admin/roles"' in page, path
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script>" not in page and " style=" not in page


# --- announcements ----------------------------------------------------------------------------------------------


async def test_preview_counts_the_recipients_of_the_audience(client: TestClient, services: Services) -> None:  # noqa: F811
    csrf = await signed_in(client)
    await subscribers(services)
    cases = [
        ({}, 3),  # everyone active: a, b, c
        ({"district": "huancui"}, 2),
        ({"district": ["huancui", "wendeng"]}, 3),
        ({"district": "rongcheng"}, 0),  # inactive
        ({"topic": 3}, 2),  # a (all topics) and b
        ({"topic": 5, "district": "huancui"}, 2),
        ({"topic": 5, "district": "wendeng"}, 0),
        ({"identity": "returnee"}, 1),
        ({"identity": "farmer"}, 0),
    ]
    for fields, expected in cases:
        status, page = await preview(client, compose(csrf, **fields))
        assert status == 200, (fields, page)
        assert recipients_of(page) == expected, fields
        districts = fields.get("district")
        audience = Audience(
            ([districts] if isinstance(districts, str) else districts) if districts else None,
            fields.get("topic"),
            fields.get("identity"),
        )
        assert await services.announcements.count_recipients(audience) == expected
    assert await announcements(services) == []  # a preview sends nothing

    status, page = await preview(client, compose(csrf, NASTY + "\n第二行 /m7"))
    assert status == 200
    assert NASTY not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;" in page
    assert ("text", NASTY + "\n第二行 /m7") in hidden_fields(page, "confirm")


async def test_confirm_sends_to_each_recipient_and_the_list_shows_progress(
    client: TestClient,  # noqa: F811
    services: Services,
) -> None:
    woken: list[bool] = []
    services.assistant.on_announcement_queued = lambda: woken.append(True)
    csrf = await signed_in(client)
    await subscribers(services)
    status, page = await preview(client, compose(csrf, NASTY, district="huancui"))
    assert status == 200 and recipients_of(page) == 2
    confirm = hidden_fields(page, "confirm")
    assert ("csrf", csrf) in confirm and ("district", "huancui") in confirm
    response = await client.post("/admin/announcements/send", data=confirm, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/announcements")
    assert woken == [True]

    [announcement] = await announcements(services)
    assert announcement.author_pseudonym == f"dashboard:{USERNAME}"
    assert (announcement.author_channel, announcement.author_address) == ("dashboard", None)
    assert announcement.text == NASTY
    assert announcement.audience == {"districts": ["huancui"], "topic": None, "identity": None}
    rows = await deliveries(services, announcement.id)
    assert len(rows) == 2 and {d.status for d in rows} == {"pending"}
    assert len({d.subscription_id for d in rows}) == 2

    claimed = await services.announcements.claim("test-worker", 1, timedelta(minutes=1))
    await services.announcements.finish(claimed[0], "sent")
    listing = await client.get(response.headers["Location"])
    page = await listing.text()
    assert listing.status == 200
    assert f"#{announcement.id}" in page
    assert NASTY not in page and "&lt;script&gt;" in page
    [row] = [r for r in Tables(page).tables["announcements"] if r[0] == str(announcement.id)]
    # id, text, author, send time, status, sent, failed, blocked, deferred, pending, total
    assert row[2] == f"dashboard:{USERNAME}"
    assert row[4] == "sending"
    assert row[5:] == ["1", "0", "0", "0", "1", "2"]


async def test_a_confirm_sent_twice_stores_one_announcement(client: TestClient, services: Services) -> None:  # noqa: F811
    """A double click, a browser's resend or two tabs: the preview's key makes Confirm count once."""
    csrf = await signed_in(client)
    await subscribers(services)
    status, page = await preview(client, compose(csrf, "只发一次"))
    assert status == 200
    confirm, recipients = hidden_fields(page, "confirm"), recipients_of(page)
    send = "/admin/announcements/send"
    first, second = await asyncio.gather(
        client.post(send, data=confirm, allow_redirects=False), client.post(send, data=confirm, allow_redirects=False)
    )
    again = await client.post(send, data=confirm, allow_redirects=False)
    assert first.status == second.status == again.status == 303
    assert first.headers["Location"] == second.headers["Location"] == again.headers["Location"]
    [announcement] = await announcements(services)
    assert len(await deliveries(services, announcement.id)) == recipients > 0, "each subscriber once"
    _, page = await preview(client, compose(csrf, "只发一次"))
    await client.post(send, data=hidden_fields(page, "confirm"), allow_redirects=False)
    assert len(await announcements(services)) == 2, "a new preview is a new announcement"


async def test_a_long_admin_username_still_fits_the_author_column(
    client: TestClient,  # noqa: F811
    services: Services,
    dashboard: Dashboard,  # noqa: F811
) -> None:
    long_name = "l" * 64  # the longest username an admin account may have
    await dashboard.admins.create_admin(long_name, PASSWORD)
    assert (await login(client, long_name)).status == 303
    csrf = csrf_of(await (await client.get("/admin/announcements")).text())
    await subscribers(services)
    status, page = await preview(client, compose(csrf))
    assert status == 200
    response = await client.post("/admin/announcements/send", data=hidden_fields(page, "confirm"))
    assert response.status == 200
    [announcement] = await announcements(services)
    assert announcement.author_pseudonym.startswith("dashboard:llll") and len(announcement.author_pseudonym) == 64
    assert dashboard_author(long_name) == announcement.author_pseudonym != dashboard_author(long_name[:-1] + "m")
    assert dashboard_author(USERNAME) == f"dashboard:{USERNAME}"


async def test_a_scheduled_announcement_is_stored_in_utc(client: TestClient, services: Services) -> None:  # noqa: F811
    csrf = await signed_in(client)
    await subscribers(services)
    at = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    field = at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    status, page = await preview(client, compose(csrf, when="at", send_at=field, topic=3))
    assert status == 200 and recipients_of(page) == 2
    assert at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") in page
    response = await client.post("/admin/announcements/send", data=hidden_fields(page, "confirm"))
    assert response.status == 200  # followed to the list
    [announcement] = await announcements(services)
    send_at = announcement.send_at if announcement.send_at.tzinfo else announcement.send_at.replace(tzinfo=UTC)
    assert send_at == at
    assert announcement.audience["topic"] == 3
    assert await services.announcements.claim("test-worker", 10, timedelta(minutes=1)) == []  # not due yet
    # a minute late is still fine (the form was filled in a moment ago)
    status, page = await preview(
        client, compose(csrf, when="at", send_at=local(datetime.now(UTC) - timedelta(seconds=30)))
    )
    assert status == 200, page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": ""}, "The announcement text is empty"),
        ({"text": "  \r\n "}, "The announcement text is empty"),
        ({"text": "长" * 2001}, "at most 2000"),
        ({"text": "bad\x00byte"}, "control characters"),
        ({"district": ["huancui", "atlantis"]}, "Unknown district: atlantis"),
        ({"topic": "9"}, "Unknown topic: 9"),
        ({"topic": "three"}, "Unknown topic: three"),
        ({"identity": "wizard"}, "Unknown identity: wizard"),
        ({"identity": "<b>x</b>"}, "Unknown identity: &lt;b&gt;x&lt;/b&gt;"),
        ({"when": "later"}, "Choose to send now or at a time"),
        ({"when": "at"}, "Choose the send time"),
        ({"when": "at", "send_at": "tomorrow"}, "The send time should look like"),
        ({"when": "at", "send_at": "2026-02-30T09:00"}, "The send time should look like"),
        ({"when": "at", "send_at": "past"}, "The send time is in the past"),
        ({"when": "at", "send_at": "far"}, "more than a year ahead"),
    ],
)
async def test_invalid_announcements_are_refused_with_a_message(
    client: TestClient,  # noqa: F811
    services: Services,
    fields: dict[str, Any],
    message: str,
) -> None:
    csrf = await signed_in(client)
    await subscribers(services)
    now = datetime.now(UTC)
    moments = {"past": local(now - timedelta(minutes=2)), "far": local(now + timedelta(days=400))}
    fields = {**fields, **({"send_at": moments[fields["send_at"]]} if fields.get("send_at") in moments else {})}
    text = fields.pop("text", "正文 text")
    for path in ("/admin/announcements/preview", "/admin/announcements/send"):
        response = await client.post(path, data=compose(csrf, text, **fields), allow_redirects=False)
        page = await response.text()
        assert response.status == 400, (path, fields)
        assert message in page, (path, page)
        assert 'id="compose"' in page  # the form again, to correct
        assert "<b>x</b>" not in page
    assert await announcements(services) == []


# --- roles ------------------------------------------------------------------------------------------------------


async def test_granting_and_revoking_roles_stores_only_pseudonyms(client: TestClient, services: Services) -> None:  # noqa: F811
    csrf = await signed_in(client)
    store = services.announcements
    form = [("csrf", csrf), ("channel", "telegram"), ("user_id", RAW_ID), ("role", "staff")]
    form += [("district", "wendeng"), ("district", "huancui")]
    response = await client.post("/admin/roles/grant", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin/roles"
    staff_pseudonym = services.assistant.pseudonymize("telegram", RAW_ID)
    assert staff_pseudonym != RAW_ID
    assert await store.staff() == [(staff_pseudonym, "telegram", "staff", ["huancui", "wendeng"])]

    form = [("csrf", csrf), ("channel", "wechat"), ("user_id", "oWeChatOpenId_42"), ("role", "admin")]
    assert (await client.post("/admin/roles/grant", data=form, allow_redirects=False)).status == 303
    admin_pseudonym = services.assistant.pseudonymize("wechat", "oWeChatOpenId_42")
    staff = await store.staff()
    assert sorted(staff) == sorted(
        [(staff_pseudonym, "telegram", "staff", ["huancui", "wendeng"]), (admin_pseudonym, "wechat", "admin", None)]
    )
    async with services.db.session() as session:
        stored = [tuple(r) for r in await session.execute(select(User.pseudonym, User.channel, User.districts))]
    assert RAW_ID not in repr(stored) and "oWeChatOpenId_42" not in repr(stored)

    page = await (await client.get("/admin/roles")).text()
    table = Tables(page).tables["roles"]
    assert [r[0] for r in table if r[0] in (staff_pseudonym, admin_pseudonym)] != []
    assert {r[0] for r in table} == {staff_pseudonym, admin_pseudonym}
    assert RAW_ID not in page

    # granting again changes the role
    form = [("csrf", csrf), ("channel", "telegram"), ("user_id", RAW_ID), ("role", "admin")]
    assert (await client.post("/admin/roles/grant", data=form, allow_redirects=False)).status == 303
    assert (staff_pseudonym, "telegram", "admin", None) in await store.staff()

    data = {"csrf": csrf, "pseudonym": staff_pseudonym}
    response = await client.post("/admin/roles/revoke", data=data, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin/roles"
    assert await store.staff() == [(admin_pseudonym, "wechat", "admin", None)]

    unknown = await client.post("/admin/roles/revoke", data={"csrf": csrf, "pseudonym": "nobody"})
    assert unknown.status == 400
    assert "No such staff member" in await unknown.text()
    async with services.db.session() as session:
        assert await session.scalar(select(User).where(User.pseudonym == "nobody")) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"channel": "sms"}, "Unknown channel: sms"),
        ({"channel": "web"}, "Unknown channel: web"),
        ({"user_id": ""}, "Enter the user"),
        ({"user_id": "1 2"}, "without spaces"),
        ({"user_id": "9" * 129}, "at most 128"),
        ({"role": "root"}, "Unknown role: root"),
        ({"district": []}, "Staff need at least one district"),
        ({"district": ["huancui", "<i>atlantis</i>"]}, "Unknown district: &lt;i&gt;atlantis&lt;/i&gt;"),
    ],
)
async def test_invalid_grants_are_refused_with_a_message(
    client: TestClient,  # noqa: F811
    services: Services,
    fields: dict[str, Any],
    message: str,
) -> None:
    csrf = await signed_in(client)
    values = {"channel": "telegram", "user_id": RAW_ID, "role": "staff", "district": ["huancui"], **fields}
    form = [("csrf", csrf)] + [(k, v) for k, v in values.items() if k != "district"]
    form += [("district", d) for d in values["district"]]
    response = await client.post("/admin/roles/grant", data=form, allow_redirects=False)
    page = await response.text()
    assert response.status == 400, fields
    assert message in page
    assert 'id="grant"' in page and "<i>" not in page
    assert await services.announcements.staff() == []


# --- a real browser ---------------------------------------------------------------------------------------------


def compose_in_browser(base: str, profile: Path) -> dict[str, Any]:
    """Sign in, compose a two-line announcement for Huancui, preview it, confirm it; grant a role; in Chromium."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chrome(profile) as driver:
        driver.set_page_load_timeout(20)
        driver.get(f"{base}/admin/announcements")
        sign_in(driver, USERNAME, PASSWORD)
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "admin-nav"))
        driver.find_element(By.ID, "nav-announcements").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "compose"))
        driver.find_element(By.ID, "text").send_keys("第一行 line one\n第二行 /m7")
        driver.find_element(By.CSS_SELECTOR, "#districts input[value='huancui']").click()
        driver.find_element(By.ID, "preview").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "recipients"))
        seen: dict[str, Any] = {"recipients": driver.find_element(By.ID, "recipients").text}
        driver.find_element(By.ID, "send").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "queued"))
        seen["list"] = driver.find_element(By.ID, "announcements").text
        driver.find_element(By.ID, "nav-roles").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "grant"))
        driver.find_element(By.ID, "user_id").send_keys(RAW_ID)
        driver.find_element(By.CSS_SELECTOR, "#districts input[value='wendeng']").click()
        driver.find_element(By.ID, "grant-role").click()
        WebDriverWait(driver, 10).until(lambda d: "revoke" in d.page_source and d.current_url.endswith("/admin/roles"))
        seen["roles"] = driver.find_element(By.ID, "roles").text
        seen["console"] = [entry["message"] for entry in driver.get_log("browser")]
        return seen


async def test_compose_and_grant_in_a_real_headless_chromium(
    app: web.Application,  # noqa: F811
    services: Services,
    tmp_path: Path,
) -> None:
    chromium_or_skip()
    await subscribers(services)
    seen = await in_browser(app, compose_in_browser, tmp_path / "chromium")

    assert seen["recipients"] == "2"
    [announcement] = await announcements(services)
    assert announcement.text == "第一行 line one\n第二行 /m7"  # the line break survived the Confirm form
    assert announcement.audience["districts"] == ["huancui"]
    assert len(await deliveries(services, announcement.id)) == 2
    assert "第一行 line one" in seen["list"]
    pseudonym = services.assistant.pseudonymize("telegram", RAW_ID)
    assert await services.announcements.staff() == [(pseudonym, "telegram", "staff", ["wendeng"])]
    assert pseudonym in seen["roles"] and RAW_ID not in seen["roles"]
    assert not [m for m in seen["console"] if "Content Security Policy" in m or "Refused" in m], seen["console"]
