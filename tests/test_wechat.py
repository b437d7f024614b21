"""WeChat Official Account over real HTTP on loopback: signed and encrypted callbacks, numbered menus,
QR scenes, retries, hostile XML, and announcements through the customer-service API."""

from __future__ import annotations

import hashlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import Services, web_application
from bot.channels.wechat import WeChatConfig, WeChatSender, custom_menu
from bot.channels.wechat_protocol import WeChatCrypto
from bot.config import Settings
from bot.delivery import DeliveryWorker
from handlers.replies import Reply
from storage.announcements import Audience
from storage.models import Inquiry

TOKEN = "weihai-test-token"
APPID = "wx5823bf96d3bd56c7"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
OLD_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT, FOUNDER = "gh_account", "o_founder_openid"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "wechat_token": TOKEN,
            "wechat_appid": APPID,
            "wechat_encoding_aes_key": KEY,
            "wechat_previous_encoding_aes_key": OLD_KEY,
        }
    )


@pytest.fixture
def fix_secrets(settings: Settings) -> None:
    from pydantic import SecretStr

    for name in ("wechat_token", "wechat_encoding_aes_key", "wechat_previous_encoding_aes_key"):
        object.__setattr__(settings, name, SecretStr(getattr(settings, name)))


@pytest.fixture
async def wechat(fix_secrets: None, services: Services) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(web_application(services), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


def signed(timestamp: str | None = None, nonce: str = "nonce1") -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": FOUNDER}


def text_message(content: str, msg_id: int, user: str = FOUNDER) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def event(name: str, key: str = "", user: str = FOUNDER, create_time: int | None = None) -> bytes:
    return (
        f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{user}</FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType>event</MsgType>"
        f"<Event>{name}</Event><EventKey>{key}</EventKey></xml>"
    ).encode()


def content_of(xml: str, user: str = FOUNDER) -> str:
    root = ET.fromstring(xml)
    assert root.findtext("ToUserName") == user
    assert root.findtext("FromUserName") == ACCOUNT
    return root.findtext("Content") or ""


class Chat:
    """A founder typing into the official account; remembers the message ids."""

    def __init__(self, client: TestClient, user: str = FOUNDER) -> None:
        self.client, self.user, self.msg_id = client, user, 1000

    async def say(self, text: str) -> str:
        self.msg_id += 1
        response = await self.client.post("/wechat", params=signed(), data=text_message(text, self.msg_id, self.user))
        assert response.status == 200
        body = await response.text()
        assert len(body.encode()) < 2048 + 300, "the XML stays within WeChat's reply size"
        reply = content_of(body, self.user)
        assert len(reply.encode()) <= 2048
        return reply

    async def choose(self, reply: str, label: str) -> str:
        """Type the number that the reply shows for `label`."""
        for line in reply.splitlines():
            if line.startswith("回复 ") and line.endswith(label):
                return await self.say(line.removeprefix("回复 ").split("：")[0])
        raise AssertionError(f"no option {label!r} in:\n{reply}")


async def test_url_verification(wechat: TestClient) -> None:
    response = await wechat.get("/wechat", params={**signed(), "echostr": "hello-echo"})
    assert await response.text() == "hello-echo"
    forged = {**signed(), "signature": "0" * 40, "echostr": "x"}
    assert (await wechat.get("/wechat", params=forged)).status == 403


async def test_bad_signatures_and_stale_requests_are_refused(wechat: TestClient, services: Services) -> None:
    body = text_message("/start", 1)
    assert (await wechat.post("/wechat", params={**signed(), "signature": "f" * 40}, data=body)).status == 403
    stale = signed(timestamp=str(int(time.time()) - 3600))
    assert (await wechat.post("/wechat", params=stale, data=body)).status == 403
    await services.inquiries.flush()
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Inquiry)) == 0, "nothing reached the core"


async def test_hostile_and_malformed_xml_is_refused(wechat: TestClient) -> None:
    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml>&b;</xml>'
    external = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'
    for body in (laughs, external, b"<xml><unclosed>", b"not xml at all", b""):
        response = await wechat.post("/wechat", params=signed(), data=body)
        assert response.status == 400
    response = await wechat.post("/wechat", params=signed(), data=b"<xml>" + b"a" * 70_000 + b"</xml>")
    assert response.status == 413


async def test_a_full_conversation_through_numbered_menus(wechat: TestClient) -> None:
    chat = Chat(wechat)
    menu = await chat.say("/start")
    assert "创业威海" in menu and "回复 0：返回主菜单" in menu
    plans = await chat.choose(menu, "浏览七大计划")
    plan = await chat.choose(plans, "3. 护航计划")
    card = await chat.choose(plan, "7. 强化金融服务助力创业")
    assert card.startswith("强化金融服务助力创业")
    pages = [card]
    while "查看更多）" in pages[-1]:
        number = pages[-1].rsplit("回复 ", 1)[1].split(" ")[0]
        pages.append(await chat.say(number))
    whole = "".join(pages)
    assert "威政办字〔2025〕8号" in whole and "人民银行威海市分行" in whole
    home = await chat.say("0")
    assert "为我匹配政策" in home


async def test_profile_and_match_through_numbered_menus(wechat: TestClient) -> None:
    chat = Chat(wechat, user="o_researcher")
    intro = await chat.say("/profile")
    step = await chat.choose(intro, "开始")
    step = await chat.choose(step, "高校或科研院所的科研人员")
    assert "✓ 高校或科研院所的科研人员" in step
    step = await chat.choose(step, "下一步 »")
    step = await chat.choose(step, "有想法")
    step = await chat.choose(step, "科技")
    step = await chat.choose(step, "文登区")
    result = await chat.choose(step, "完成：看看适合我的措施")
    assert "1. 第12条：支持科技人才创新创业" in result


async def test_qr_scene_keys_open_a_measure_like_a_deep_link(wechat: TestClient) -> None:
    response = await wechat.post("/wechat", params=signed(), data=event("subscribe", "qrscene_m7"))
    assert content_of(await response.text()).startswith("强化金融服务助力创业")
    response = await wechat.post("/wechat", params=signed(), data=event("SCAN", "m12"))
    assert content_of(await response.text()).startswith("支持科技人才创新创业")
    response = await wechat.post("/wechat", params=signed(), data=event("CLICK", "targets"))
    assert "1.9万人以上" in content_of(await response.text())


async def test_a_retried_request_is_processed_once_and_gets_the_same_reply(
    wechat: TestClient, services: Services
) -> None:
    body = text_message("科研人员能离岗创业吗", 424242)
    first = await (await wechat.post("/wechat", params=signed(), data=body)).text()
    second = await (await wechat.post("/wechat", params=signed(nonce="other"), data=body)).text()
    assert content_of(first) == content_of(second)
    subscribe = event("subscribe", create_time=1_700_000_000)
    await wechat.post("/wechat", params=signed(), data=subscribe)
    await wechat.post("/wechat", params=signed(), data=subscribe)
    await services.inquiries.flush()
    async with services.db.session() as session:
        kinds = list(await session.scalars(select(Inquiry.kind)))
    assert kinds.count("question") == 1
    assert kinds.count("menu") == 1


async def test_safe_mode_round_trip_and_key_rotation(wechat: TestClient) -> None:
    for key in (KEY, OLD_KEY):
        sender = WeChatCrypto(TOKEN, [key], APPID)
        timestamp, nonce = str(int(time.time())), "n2"
        encrypted, signature = sender.encrypt(
            text_message("/m7", 7700 if key == KEY else 7701).decode(), nonce, timestamp
        )
        envelope = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        params = {**signed(timestamp, nonce), "encrypt_type": "aes", "msg_signature": signature}
        response = await wechat.post("/wechat", params=params, data=envelope.encode())
        assert response.status == 200
        reply = ET.fromstring(await response.text())
        inner = WeChatCrypto(TOKEN, [KEY], APPID).decrypt(reply.findtext("Encrypt"))
        assert content_of(inner).startswith("强化金融服务助力创业"), "replies are encrypted with the current key"
    params = {**signed(), "encrypt_type": "aes", "msg_signature": "0" * 40}
    assert (await wechat.post("/wechat", params=params, data=envelope.encode())).status == 403


def test_the_custom_menu_fits_wechats_limits() -> None:
    menu = custom_menu()["button"]
    assert len(menu) <= 3
    assert all(len(button["sub_button"]) <= 5 for button in menu)
    assert all(len(button["name"].encode()) <= 16 for button in menu)


class FakeWeChatApi:
    """The customer-service message API on loopback, answering a scripted errcode per OpenID."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.codes: dict[str, list[int]] = {}
        self.tokens = 0

    async def token(self, request: web.Request) -> web.Response:
        self.tokens += 1
        return web.json_response({"access_token": f"token-{self.tokens}", "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        codes = self.codes.get(body["touser"], [])
        code = codes.pop(0) if codes else 0
        if code == 0:
            self.sent.append(body)
        return web.json_response({"errcode": code, "errmsg": "ok" if code == 0 else "scripted"})


async def test_announcements_reach_wechat_users_or_wait_for_their_next_message(
    wechat: TestClient, services: Services, tmp_path: Path
) -> None:
    api = FakeWeChatApi()
    app = web.Application()
    app.router.add_get("/cgi-bin/token", api.token)
    app.router.add_post("/cgi-bin/message/custom/send", api.send)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    import aiohttp

    config = WeChatConfig(TOKEN, APPID, [KEY], "secret", f"http://127.0.0.1:{server.port}")
    async with aiohttp.ClientSession() as session:
        store = services.announcements
        chat_a, chat_b = Chat(wechat, "o_a"), Chat(wechat, "o_b")
        for chat in (chat_a, chat_b):
            assert "已订阅" in await chat.say("/subscribe")
        api.codes = {"o_a": [42001], "o_b": [45015]}  # a's token expired once; b is outside the 48 h window
        announcement, _ = await store.create("author", "wechat", None, "下周三创业培训开课", Audience(None))
        worker = DeliveryWorker(store, {"wechat": WeChatSender(config, session)}, rate=100, lease=0)
        while await worker.run_once():
            pass
        assert [m["touser"] for m in api.sent] == ["o_a"]
        assert api.tokens == 2, "the expired token was refreshed once"
        progress = await store.progress(announcement)
        assert (progress.counts["sent"], progress.counts["deferred"]) == (1, 1)
        later = await chat_b.say("你好")
        assert later.startswith("就业创业服务站通知：\n\n下周三创业培训开课")
        assert "停止接收通知" in later
        assert (await store.progress(announcement)).counts["sent"] == 2
    await server.close()


async def test_a_sender_survives_a_dead_api(services: Services) -> None:
    import aiohttp

    config = WeChatConfig(TOKEN, APPID, [KEY], "secret", "http://127.0.0.1:9")
    async with aiohttp.ClientSession() as session:
        outcome = await WeChatSender(config, session).send("o_x", Reply("x"))
    assert outcome.status == "error"


async def test_a_long_reply_pages_in_its_language(fix_secrets: None, services: Services) -> None:
    from bot.channels.wechat import WeChatChannel
    from bot.channels.wechat_protocol import IncomingMessage

    channel = WeChatChannel(services.assistant, WeChatConfig(TOKEN, APPID, [KEY]))
    await channel.handle(IncomingMessage(ACCOUNT, "o_ko", 0, "text", content="안녕하세요", msg_id="0"))
    first = await channel.render("o_ko", [Reply("창업 지원 안내입니다.\n" * 600)])
    assert "번을 답장하면 더 보기" in first
    number = first.rsplit("(", 1)[1].split("번", 1)[0]
    message = IncomingMessage(ACCOUNT, "o_ko", 0, "text", content=number, msg_id="1")
    second = await channel._incoming(message)
    assert isinstance(second, str)
    assert "번을 답장하면 더 보기" in second, "the further pages keep the reply's language"
    assert "查看更多" not in second


async def test_any_worker_understands_the_numbers_another_worker_showed(
    fix_secrets: None, services: Services, settings: Settings
) -> None:
    """Two workers behind a load balancer: the menu shown by one is answered by the other."""
    second_worker = await Services.start(settings)
    first = TestClient(TestServer(web_application(services), host="127.0.0.1"))
    second = TestClient(TestServer(web_application(second_worker), host="127.0.0.1"))
    await first.start_server()
    await second.start_server()
    try:
        on_first, on_second = Chat(first, user="o_roaming"), Chat(second, user="o_roaming")
        on_second.msg_id = 5000  # one user's messages have distinct ids, whichever worker takes them
        menu = await on_first.say("/start")
        plans = await on_second.choose(menu, "浏览七大计划")
        assert "3. 护航计划" in plans
        plan = await on_first.choose(plans, "3. 护航计划")
        assert "7. 强化金融服务助力创业" in plan
    finally:
        await first.close()
        await second.close()
        await second_worker.close()


async def test_forget_deletes_the_menu_with_the_user(wechat: TestClient, services: Services) -> None:
    chat = Chat(wechat, user="o_forgetful")
    await chat.say("/start")
    pseudonym = services.assistant.pseudonymize("wechat", "o_forgetful")
    assert await services.assistant.users.menu(pseudonym) is not None
    await services.assistant.users.forget(pseudonym)
    assert await services.assistant.users.menu(pseudonym) is None
    reply = await chat.say("1")
    assert "具体说说" in reply and "简单介绍一下你自己" not in reply, "a digit with no menu is read as a question"
