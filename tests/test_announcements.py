"""Announcements: roles, opt-in subscriptions, targeting, and durable delivery against a fake Bot API."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from telegram import Bot

from bot.app import Services
from bot.channels.telegram import TelegramSender
from bot.cli import main
from bot.config import Settings
from bot.delivery import DeliveryWorker, Outcome
from handlers.replies import Reply
from storage.announcements import Audience
from storage.models import Delivery, Inquiry, Subscription, utcnow
from tests.fake_telegram import FakeTelegram, buttons_of, sent_to

STAFF, FOUNDER = 9001, 9100


async def grant(services: Services, user: int, role: str = "staff", districts: tuple[str, ...] = ("huancui",)) -> None:
    pseudonym = services.assistant.pseudonymize("telegram", str(user))
    await services.announcements.grant(pseudonym, "telegram", role, districts)


async def subscribe(fake: FakeTelegram, user: int, district: str | None = "huancui") -> None:
    (reply,) = await fake.say(user, "/subscribe")
    assert "已订阅" in reply.params["text"]
    if district:
        await fake.press(user, "sdist", on_message=reply)
        (done,) = await fake.press(user, f"sdi:{district}", on_message=reply)
        assert "区市：" in done.params["text"]


def worker_for(services: Services, fake: FakeTelegram, **options: object) -> DeliveryWorker:
    bot = Bot(fake.token, base_url=fake.base_url)
    defaults = {"rate": 200.0, "concurrency": 4, "lease": 0.0, "idle_poll": 0.05}
    return DeliveryWorker(services.announcements, {"telegram": TelegramSender(bot)}, **(defaults | options))


async def drain(worker: DeliveryWorker, rounds: int = 200) -> None:
    """Run the worker until it finds nothing to do (retries are waited for)."""
    idle = 0
    for _ in range(rounds):
        if await worker.run_once():
            idle = 0
            continue
        idle += 1
        if idle > 30:
            return
        await asyncio.sleep(0.05)


async def test_a_founder_cannot_announce_and_the_attempt_is_logged(
    telegram_bot: FakeTelegram, services: Services
) -> None:
    (reply,) = await telegram_bot.say(FOUNDER, "/announce")
    assert "只有服务站工作人员" in reply.params["text"]
    await services.inquiries.flush()
    async with services.db.session() as session:
        kinds = list(await session.scalars(select(Inquiry.kind)))
    assert "announce_refused" in kinds


async def test_staff_compose_preview_and_send_only_to_opted_in_subscribers(
    telegram_bot: FakeTelegram, services: Services
) -> None:
    await grant(services, STAFF, districts=("huancui",))
    await subscribe(telegram_bot, 9201, "huancui")
    await subscribe(telegram_bot, 9202, "huancui")
    await subscribe(telegram_bot, 9203, "wendeng")  # another district: not this staff member's
    await telegram_bot.say(9204, "/start")  # never subscribed
    (ask,) = await telegram_bot.say(STAFF, "/announce")
    assert "请发送通知内容" in ask.params["text"]
    (audience,) = await telegram_bot.say(STAFF, "创业大赛报名开始了，详见 /m24")
    assert ("我负责区域的全部订阅者", "aud:all") in buttons_of(audience)
    (preview,) = await telegram_bot.press(STAFF, "aud:all", on_message=audience)
    assert "将有 2 位订阅者收到" in preview.params["text"]
    (queued,) = await telegram_bot.press(STAFF, "asend", on_message=preview)
    assert "已排队" in queued.params["text"]
    await drain(worker_for(services, telegram_bot))
    for chat in (9201, 9202):
        (message,) = sent_to(telegram_bot, chat)[-1:]
        assert "创业大赛报名开始了" in message.params["text"]
        assert ("查看第24条", "m:24") in buttons_of(message)
        assert ("停止接收通知", "unsub") in buttons_of(message)
    assert not [c for c in sent_to(telegram_bot, 9203) if "报名开始了" in c.params["text"]]
    assert not [c for c in sent_to(telegram_bot, 9204) if "报名开始了" in c.params["text"]]
    report = sent_to(telegram_bot, STAFF)[-1]
    assert "已发送 2" in report.params["text"]


async def test_each_subscriber_gets_the_announcement_and_each_author_the_report_in_their_language(
    telegram_bot: FakeTelegram, services: Services
) -> None:
    for chat, lang in ((9401, "ko"), (9402, "zh-hans"), (9403, "en")):
        await telegram_bot.say(chat, "/start", language_code=lang)
        pseudonym = services.assistant.pseudonymize("telegram", str(chat))
        await services.announcements.subscribe(pseudonym, "telegram", str(chat), None)
    author = services.assistant.pseudonymize("telegram", "9403")
    await services.announcements.create(author, "telegram", "9403", "创业大赛报名开始了 /m24", Audience())
    await drain(worker_for(services, telegram_bot))
    korean, chinese, english = (sent_to(telegram_bot, chat) for chat in (9401, 9402, 9403))
    assert korean[-1].params["text"].startswith("취업·창업 서비스 센터(就业创业服务站) 공지:")
    assert ("제24조 보기", "m:24") in buttons_of(korean[-1])
    assert chinese[-1].params["text"].startswith("就业创业服务站通知：")
    announcement, report = english[-2:]
    assert announcement.params["text"].startswith("Announcement from the employment and startup service station")
    assert report.params["text"].startswith("Announcement #") and "sent" in report.params["text"]


async def test_targeting_by_topic_and_identity(telegram_bot: FakeTelegram, services: Services) -> None:
    await grant(services, STAFF, role="admin", districts=())
    for user in (9301, 9302, 9303):
        await subscribe(telegram_bot, user, district=None)
    (menu,) = await telegram_bot.say(9301, "/subscribe")
    await telegram_bot.press(9301, "stp:3", on_message=menu)  # only the loans and investment plan
    await telegram_bot.say(9302, "/profile")
    await telegram_bot.press(9302, "pid:returnee")
    store = services.announcements
    assert await store.count_recipients(Audience(None, topic=3)) == 3
    assert await store.count_recipients(Audience(None, topic=5)) == 2, "9301 chose topic 3 only"
    assert await store.count_recipients(Audience(None, identity="returnee")) == 1
    assert await store.count_recipients(Audience(["wendeng"])) == 0


async def test_the_stop_button_unsubscribes_at_once(telegram_bot: FakeTelegram, services: Services) -> None:
    await subscribe(telegram_bot, 9401)
    (reply,) = await telegram_bot.press(9401, "unsub")
    assert "已退订" in reply.params["text"]
    assert await services.announcements.count_recipients(Audience(None)) == 0
    (again,) = await telegram_bot.say(9401, "/unsubscribe")
    assert "还没有订阅" in again.params["text"]


async def test_subscribing_needs_a_channel_that_can_push(web_client, services: Services) -> None:
    response = await web_client.post("/chat", json={"session": "web-user-123", "text": "/subscribe"})
    (reply,) = (await response.json())["replies"]
    assert "Telegram" in reply["text"]
    assert await services.announcements.count_recipients(Audience(None)) == 0


async def test_429_is_honoured_and_403_marks_the_user_inactive(fake_telegram: FakeTelegram, services: Services) -> None:
    store = services.announcements
    for chat in (1, 2, 3):
        await store.subscribe(f"p{chat}", "telegram", str(chat), "huancui")
    fake_telegram.busy_once_chats.add(2)
    fake_telegram.blocked_chats.add(3)
    announcement, recipients = await store.create("author", "telegram", None, "培训通知", Audience(None))
    assert recipients == 3
    await drain(worker_for(services, fake_telegram))
    progress = await store.progress(announcement)
    assert progress.counts["sent"] == 2
    assert progress.counts["blocked"] == 1
    assert progress.status == "done"
    assert len(sent_to(fake_telegram, 2)) == 1, "the 429 was retried once, not duplicated"
    async with services.db.session() as session:
        active = dict((await session.execute(select(Subscription.address, Subscription.active))).all())
    assert active == {"1": True, "2": True, "3": False}


class FlakySender:
    """Fails with a network error the first `failures` times, then succeeds; counts what arrived."""

    def __init__(self, failures: int = 0, signal_after: int = 0) -> None:
        self.failures = failures
        self.received: Counter[str] = Counter()
        self.signal_after = signal_after
        self.reached = asyncio.Event()

    async def send(self, address: str, reply: Reply) -> Outcome:
        if self.failures:
            self.failures -= 1
            return Outcome("error", error="connection reset")
        await asyncio.sleep(0.001)
        self.received[address] += 1
        if sum(self.received.values()) >= self.signal_after:
            self.reached.set()
        return Outcome("sent")


async def test_network_errors_are_retried_with_backoff(services: Services) -> None:
    store = services.announcements
    await store.subscribe("p1", "telegram", "1", None)
    announcement, _ = await store.create("author", "telegram", None, "通知", Audience(None))
    sender = FlakySender(failures=1)
    worker = DeliveryWorker(store, {"telegram": sender}, rate=1000, lease=0, idle_poll=0.01)
    await worker.run_once()
    assert (await store.progress(announcement)).counts["pending"] == 1
    async with services.db.session.begin() as session:  # skip the backoff wait
        await session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    await worker.run_once()
    assert sender.received == Counter({"1": 1})


async def test_an_interrupted_run_resumes_without_losing_anyone(services: Services) -> None:
    store = services.announcements
    for i in range(60):
        await store.subscribe(f"p{i}", "telegram", str(i), None)
    announcement, recipients = await store.create("author", "telegram", None, "通知", Audience(None))
    sender = FlakySender(signal_after=20)
    first = DeliveryWorker(store, {"telegram": sender}, rate=2000, concurrency=5, lease=0, idle_poll=0.01)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(sender.reached.wait(), timeout=30)
    task.cancel()  # the worker dies mid-way, with claims unfinished
    await asyncio.gather(task, return_exceptions=True)
    second = DeliveryWorker(store, {"telegram": sender}, rate=2000, concurrency=5, lease=0, idle_poll=0.01)
    while await second.run_once():
        pass
    assert set(sender.received) == {str(i) for i in range(60)}, "nobody skipped"
    duplicates = sum(n - 1 for n in sender.received.values())
    assert duplicates <= first.concurrency, "at most the in-flight window is sent twice"
    progress = await store.progress(announcement)
    assert progress.counts["sent"] == recipients


def test_roles_are_granted_from_the_command_line(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    if settings.database_schema:
        monkeypatch.setenv("DATABASE_SCHEMA", settings.database_schema)
    monkeypatch.setenv("PSEUDONYM_KEY", settings.pseudonym_key.get_secret_value())
    assert main(["staff", "grant", "--channel", "telegram", "--user", "777", "--districts", "huancui,rushan"]) == 0
    assert main(["staff", "list"]) == 0
    out = capsys.readouterr().out
    assert "huancui,rushan" in out and "777" not in out.split("is now")[-1].split("\n", 1)[1]
    with pytest.raises(SystemExit):
        main(["staff", "grant", "--channel", "telegram", "--user", "778", "--districts", "atlantis"])
