"""Running at scale: health and metrics, per-user flood control, webhook mode, secrets out of logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bot.app import Services, web_application
from bot.channels import telegram
from bot.observability import redact_secrets_in_logs
from handlers.flood import FloodControl
from handlers.replies import Incoming
from storage.models import Delivery, utcnow
from tests.fake_telegram import FakeTelegram, sent_to

WEBHOOK_SECRET = "webhook-secret-0123456789"


async def test_health_reports_the_database(web_client: TestClient, services: Services) -> None:
    response = await web_client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["database"] == "up"
    working = services.db.engine
    services.db.engine = create_async_engine("sqlite+aiosqlite:////nonexistent-dir/none.db")
    try:
        response = await web_client.get("/healthz")
        assert response.status == 503
    finally:
        await services.db.engine.dispose()
        services.db.engine = working


async def test_metrics_count_updates_latency_and_errors(web_client: TestClient) -> None:
    await web_client.post("/chat", json={"session": "metrics-user", "text": "/start"})
    await web_client.post("/chat", json={"session": "metrics-user", "text": "贷款"})
    body = await (await web_client.get("/metrics")).text()
    assert 'assistant_updates_total{channel="web"} 2.0' in body
    assert 'assistant_reply_seconds_count{channel="web"} 2.0' in body
    assert "assistant_errors_total" in body


async def test_a_flooding_user_slows_only_themselves(services: Services) -> None:
    # The production limits, on a clock that stands still: how fast 40 messages are answered must not matter.
    services.assistant.flood = FloodControl(clock=lambda: 0.0)
    replies = [await services.assistant.handle(Incoming("web", "flooder", text="/m7")) for _ in range(40)]
    answered = [r for r in replies if r and r[0].text.startswith("强化金融服务")]
    assert len(answered) == services.assistant.flood.burst
    assert sum(1 for r in replies if r and "太快" in r[0].text) == 1, "told once, then ignored"
    assert [] in replies
    (calm,) = await services.assistant.handle(Incoming("web", "someone-else", text="/m7"))
    assert calm.text.startswith("强化金融服务")


def test_the_bucket_refills_over_time() -> None:
    now = [0.0]
    flood = FloodControl(rate=2.0, burst=3, clock=lambda: now[0])
    assert [flood.allow("u") for _ in range(5)] == ["reply", "reply", "reply", "warn", "drop"]
    now[0] = 0.5
    assert flood.allow("u") == "reply"
    assert flood.allow("u") == "warn"


@pytest.fixture
async def webhook_bot(services: Services, fake_telegram: FakeTelegram) -> AsyncIterator[TestClient]:
    application = telegram.build_application(services.assistant, fake_telegram.token, fake_telegram.base_url)
    services.settings = services.settings.model_copy(update={"telegram_webhook_secret": SecretStr(WEBHOOK_SECRET)})
    await telegram.start_webhook(application, "https://bot.example.test/telegram/webhook", WEBHOOK_SECRET)
    client = TestClient(TestServer(web_application(services, telegram_webhook=application), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()
    await telegram.stop(application)


def telegram_update(chat: int, text: str, update_id: int = 1) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "F", "language_code": "zh-hans"},
            "text": text,
        },
    }


async def test_webhook_mode_takes_updates_with_the_secret_only(
    webhook_bot: TestClient, fake_telegram: FakeTelegram
) -> None:
    (registered,) = [c for c in fake_telegram.calls if c.method == "setWebhook"]
    assert registered.params["secret_token"] == WEBHOOK_SECRET
    response = await webhook_bot.post("/telegram/webhook", json=telegram_update(31, "/m7"))
    assert response.status == 403
    wrong = {telegram.SECRET_HEADER: "nope"}
    assert (await webhook_bot.post("/telegram/webhook", json=telegram_update(31, "/m7"), headers=wrong)).status == 403
    headers = {telegram.SECRET_HEADER: WEBHOOK_SECRET}
    assert (await webhook_bot.post("/telegram/webhook", data=b"{", headers=headers)).status == 400
    response = await webhook_bot.post("/telegram/webhook", json=telegram_update(31, "/m7", 2), headers=headers)
    assert response.status == 200
    assert await fake_telegram.wait_for_answer(31, 0)
    assert sent_to(fake_telegram, 31)[0].params["text"].startswith("强化金融服务助力创业")


async def test_secrets_never_reach_the_logs(telegram_bot: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    redact_secrets_in_logs([telegram_bot.token])
    await telegram_bot.say(5150, "/start")
    logging.getLogger("bot").warning("calling %s/bot%s/getMe", telegram_bot.base_url, telegram_bot.token)
    assert telegram_bot.token not in caplog.text
    assert "[secret]" in caplog.text


async def test_while_the_database_is_away_users_get_a_polite_reply_and_it_recovers(
    web_client: TestClient, services: Services
) -> None:
    working = services.db.session
    broken = create_async_engine("sqlite+aiosqlite:////nonexistent-dir/none.db")
    services.db.session = async_sessionmaker(broken, expire_on_commit=False)
    try:
        response = await web_client.post("/chat", json={"session": "outage-user", "text": "/m7"})
        assert response.status == 503
        assert "请稍后再试" in (await response.json())["replies"][0]["text"]
    finally:
        services.db.session = working
        await broken.dispose()
    response = await web_client.post("/chat", json={"session": "outage-user", "text": "/m7"})
    assert response.status == 200
    body = await (await web_client.get("/metrics")).text()
    assert 'assistant_errors_total{channel="web"} 1.0' in body


async def test_bot_api_errors_are_retried_until_delivered(fake_telegram: FakeTelegram, services: Services) -> None:
    from telegram import Bot

    from bot.channels.telegram import TelegramSender
    from bot.delivery import DeliveryWorker
    from storage.announcements import Audience

    store = services.announcements
    await store.subscribe("p-5xx", "telegram", "77", None)
    announcement, _ = await store.create("author", "telegram", None, "通知", Audience(None))
    fake_telegram.failing_once_chats.add(77)
    sender = TelegramSender(Bot(fake_telegram.token, base_url=fake_telegram.base_url))
    worker = DeliveryWorker(store, {"telegram": sender}, rate=100, lease=0)
    await worker.run_once()
    assert (await store.progress(announcement)).counts["pending"] == 1, "a 502 is retried later, not lost"
    async with services.db.session.begin() as session:
        await session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    await worker.run_once()
    assert (await store.progress(announcement)).counts["sent"] == 1
    assert len(sent_to(fake_telegram, 77)) == 1


async def test_simultaneous_first_messages_of_a_new_user_all_get_answers(services: Services) -> None:
    import asyncio

    replies = await asyncio.gather(
        *(services.assistant.handle(Incoming("telegram", "brand-new-user", text="/m7")) for _ in range(8))
    )
    assert all(r[0].text.startswith("强化金融服务助力创业") for r in replies)


async def test_admins_reload_content_on_command(web_client: TestClient, services: Services) -> None:
    response = await web_client.post("/chat", json={"session": "plain-founder", "text": "/reload"})
    assert "只有管理员" in (await response.json())["replies"][0]["text"]
    await services.announcements.grant(services.assistant.pseudonymize("web", "the-admin-1"), "web", "admin")
    response = await web_client.post("/chat", json={"session": "the-admin-1", "text": "/reload"})
    text = (await response.json())["replies"][0]["text"]
    assert text == f"内容已重新加载（版本 {services.content.current.version}）。"
