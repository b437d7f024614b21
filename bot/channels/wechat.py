"""WeChat Official Account (微信公众号): the callback endpoint and the customer-service API, over the core.

WeChat has no inline buttons, so a reply's buttons become a numbered list ("回复 1 …") and the
user's next digit presses the button; "0" is always the main menu. Replies are passive reply
XML within WeChat's 5-second deadline and at most 2048 bytes: longer texts end with
"回复 N 查看更多". WeChat retries a request it got no answer to; a retry (same MsgId, or sender,
time and event) gets the same reply without being processed again.

What a user's digits mean is kept in the database (users.menu), so any worker can take the
next message. The retry cache is per process: behind a load balancer, a retry that reaches
another worker while the first is still busy is answered there again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.wechat_protocol import (
    IncomingMessage,
    WeChatCrypto,
    WeChatProtocolError,
    check_msg_signature,
    check_signature,
    encrypted_reply,
    is_fresh,
    parse_encrypted_envelope,
    parse_message,
    split_utf8,
    text_reply,
)
from bot.delivery import Outcome
from handlers.core import Assistant
from handlers.i18n import gettext_for
from handlers.replies import Incoming, Reply

log = logging.getLogger(__name__)

CHANNEL = "wechat"
REPLY_LIMIT = 2048
FOOTER_RESERVE = 80
MAX_BODY = 64 * 1024
RETRY_TTL = 60.0
_DIGITS = re.compile(r"^\s*(\d{1,3})\s*$")


@dataclass
class Menu:
    """What a user's digits mean right now: the numbered buttons and any further pages."""

    actions: dict[int, str] = field(default_factory=dict)
    more: list[str] = field(default_factory=list)
    lang: str = "zh"

    def stored(self) -> dict[str, Any] | None:
        if not self.actions:
            return None
        return {"actions": {str(n): action for n, action in self.actions.items()}, "more": self.more, "lang": self.lang}

    @classmethod
    def from_stored(cls, stored: Any) -> Menu | None:
        """The stored menu; anything malformed (an old or hand-edited row) is no menu, not a crash."""
        try:
            actions = {int(n): str(action) for n, action in stored["actions"].items()}
            return cls(actions, [str(page) for page in stored.get("more", [])], str(stored.get("lang", "zh")))
        except (TypeError, KeyError, ValueError, AttributeError):
            return None


@dataclass(frozen=True)
class WeChatConfig:
    token: str
    appid: str
    encoding_aes_keys: list[str]
    app_secret: str | None = None
    api_base_url: str = "https://api.weixin.qq.com"


class WeChatChannel:
    """The /wechat endpoint: verifies, decrypts, deduplicates, maps to the core and renders replies."""

    def __init__(self, assistant: Assistant, config: WeChatConfig) -> None:
        self.assistant = assistant
        self.config = config
        keys = config.encoding_aes_keys
        self.crypto = WeChatCrypto(config.token, keys, config.appid) if keys else None
        self.replies: OrderedDict[str, tuple[float, asyncio.Future[str]]] = OrderedDict()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/wechat", self.verify_url)
        app.router.add_post("/wechat", self.receive)

    # HTTP ---------------------------------------------------------------------------------------

    def _signed(self, request: web.Request) -> bool:
        q = request.query
        return check_signature(self.config.token, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))

    def _refuse(self, request: web.Request, reason: str) -> web.Response:
        log.warning("refused a WeChat request from %s: %s", request.remote, reason)
        return web.Response(status=403, text="forbidden")

    async def verify_url(self, request: web.Request) -> web.Response:
        """WeChat's server check when the URL is configured: echo `echostr` if the signature holds."""
        if not self._signed(request) or not is_fresh(request.query.get("timestamp", ""), time.time()):
            return self._refuse(request, "bad signature on URL verification")
        return web.Response(text=request.query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        if not self._signed(request):
            return self._refuse(request, "bad signature")
        query = request.query
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not is_fresh(timestamp, time.time()):
            return self._refuse(request, "stale timestamp")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="too large")
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.Response(status=413, text="too large")
        safe_mode = query.get("encrypt_type") == "aes"
        try:
            if safe_mode:
                if self.crypto is None:
                    return self._refuse(request, "safe mode without WECHAT_ENCODING_AES_KEY")
                envelope = parse_encrypted_envelope(body)
                signature = query.get("msg_signature", "")
                if not check_msg_signature(self.config.token, signature, timestamp, nonce, envelope):
                    return self._refuse(request, "bad msg_signature")
                body = self.crypto.decrypt(envelope).encode()
            message = parse_message(body)
        except WeChatProtocolError as exc:
            log.warning("refused a malformed WeChat request: %s", exc.reason)
            return web.Response(status=400, text="bad request")
        xml = await self._reply_once(message)
        if not xml:
            return web.Response(text="success")
        if safe_mode and self.crypto is not None:
            xml = encrypted_reply(self.crypto, xml, secrets.token_hex(8), str(int(time.time())))
        return web.Response(text=xml, content_type="application/xml")

    async def _reply_once(self, message: IncomingMessage) -> str:
        """The reply XML; a retry of the same message waits for, and gets, the first one's reply."""
        now = time.monotonic()
        while self.replies and next(iter(self.replies.values()))[0] < now - RETRY_TTL:
            self.replies.popitem(last=False)
        key = f"{message.from_user}:{message.dedup_key}"
        cached = self.replies.get(key)
        if cached is not None:
            return await asyncio.shield(cached[1])
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.replies[key] = (now, future)
        try:
            text = await self.handle(message)
            xml = text_reply(message.from_user, message.to_user, text, int(time.time())) if text else ""
        except Exception as exc:
            future.set_exception(exc)
            self.replies.pop(key, None)
            raise
        future.set_result(xml)
        return xml

    # Conversation -------------------------------------------------------------------------------

    async def handle(self, message: IncomingMessage) -> str:
        """The reply text for one message or event ('' for none)."""
        user = message.from_user
        incoming = await self._incoming(message)
        if incoming is None:
            return ""
        if isinstance(incoming, str):
            return incoming
        replies = await self.assistant.handle(incoming)
        return await self.render(user, replies)

    async def _incoming(self, message: IncomingMessage) -> Incoming | str | None:
        """The core's view of a WeChat message; a string is a page to show as it is."""
        user = message.from_user
        if message.msg_type == "event":
            if message.event in ("subscribe", "scan"):
                key = (message.event_key or "").strip()
                return Incoming(CHANNEL, user, text=f"/start {key}" if key else "/start")
            if message.event == "click" and message.event_key:
                return Incoming(CHANNEL, user, action=message.event_key)
            if message.event == "unsubscribe":
                asyncio.get_running_loop().create_task(self._unfollowed(user))
            return None
        if message.msg_type != "text":
            return Incoming(CHANNEL, user, text="")
        digits = _DIGITS.match(message.content)
        if digits:
            number = int(digits[1])
            if number == 0:
                return Incoming(CHANNEL, user, action="home")
            menu = Menu.from_stored(await self.assistant.users.menu(self._pseudonym(user)))
            if menu is not None and number in menu.actions:
                action = menu.actions[number]
                if action == "__more__":
                    return await self._next_page(user, menu)
                return Incoming(CHANNEL, user, action=action)
        return Incoming(CHANNEL, user, text=message.content)

    async def _unfollowed(self, user: str) -> None:
        """Unfollowing the account ends the subscription to announcements."""
        try:
            await self.assistant.handle(Incoming(CHANNEL, user, action="unsub"))
        except Exception:
            log.exception("could not unsubscribe a user who unfollowed")

    async def render(self, user: str, replies: list[Reply]) -> str:
        """Replies as one text: their texts, then the buttons numbered; remember what the numbers mean."""
        lang = self._lang_hint(replies)
        _ = gettext_for(lang)
        menu = Menu(lang=lang)
        lines = [reply.text for reply in replies]
        options = []
        for reply in replies:
            for row in reply.buttons:
                for button in row:
                    if button.action == "home":
                        continue
                    menu.actions[len(menu.actions) + 1] = button.action
                    options.append(_("Reply {number}: {label}").format(number=len(menu.actions), label=button.label))
        options.append(_("Reply 0: main menu"))
        text = "\n\n".join(lines) + "\n\n" + "\n".join(options)
        pages = split_utf8(text, REPLY_LIMIT - FOOTER_RESERVE)
        if len(pages) > 1:
            more = len(menu.actions) + 1
            menu.actions[more] = "__more__"
            menu.more = pages[1:]
            text = pages[0] + "\n" + _("(Reply {number} for more)").format(number=more)
        await self._remember(user, menu)
        return text

    async def _next_page(self, user: str, menu: Menu) -> str:
        _ = gettext_for(menu.lang)
        page = menu.more.pop(0)
        more = next(n for n, a in menu.actions.items() if a == "__more__")
        if not menu.more:
            del menu.actions[more]
        await self._remember(user, menu)
        return page + "\n" + _("(Reply {number} for more)").format(number=more) if menu.more else page

    async def _remember(self, user: str, menu: Menu) -> None:
        """Store what the digits mean; if that fails the reply still goes out, and a digit is read as text."""
        try:
            await self.assistant.users.set_menu(self._pseudonym(user), menu.stored())
        except Exception:
            log.exception("could not store a WeChat menu")

    def _pseudonym(self, user: str) -> str:
        return self.assistant.pseudonymize(CHANNEL, user)

    @staticmethod
    def _lang_hint(replies: list[Reply]) -> str:
        text = " ".join(r.text for r in replies)
        if re.search(r"[\uac00-\ud7a3]", text):
            return "ko"
        return "zh" if re.search(r"[\u4e00-\u9fff]", text[:200]) else "en"


class WeChatSender:
    """Pushes announcements through the customer-service message API (客服消息), with its access token.

    WeChat allows these only within 48 hours of the user's last message (errcode 45015); such a
    delivery is deferred and shown at the user's next message instead.
    """

    def __init__(self, config: WeChatConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self, refresh: bool = False) -> str:
        async with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._token_expires:
                params = {
                    "grant_type": "client_credential",
                    "appid": self.config.appid,
                    "secret": self.config.app_secret or "",
                }
                async with self.session.get(f"{self.config.api_base_url}/cgi-bin/token", params=params) as response:
                    data: dict[str, Any] = await response.json(content_type=None)
                if "access_token" not in data:
                    raise RuntimeError(f"WeChat refused the access token: {data.get('errcode')} {data.get('errmsg')}")
                self._token = data["access_token"]
                self._token_expires = time.monotonic() + max(60, int(data.get("expires_in", 7200)) - 300)
            return self._token

    async def send(self, address: str, reply: Reply) -> Outcome:
        text = reply.text + "".join(
            f"\n{button.label}" for row in reply.buttons for button in row if button.action == "unsub"
        )
        body = {"touser": address, "msgtype": "text", "text": {"content": split_utf8(text, REPLY_LIMIT)[0]}}
        for attempt in range(2):
            try:
                token = await self.access_token(refresh=attempt > 0)
                async with self.session.post(
                    f"{self.config.api_base_url}/cgi-bin/message/custom/send",
                    params={"access_token": token},
                    json=body,
                ) as response:
                    data = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as exc:
                return Outcome("error", error=str(exc))
            code = int(data.get("errcode", 0))
            if code == 0:
                return Outcome("sent")
            if code in (40001, 40014, 42001) and attempt == 0:
                continue  # the token expired or was invalidated: refresh once
            if code == 45015:
                return Outcome("deferred", error="outside the 48-hour window")
            if code in (43004, 43019):
                return Outcome("blocked", error=data.get("errmsg"))
            if code in (45009, 45047, -1):
                return Outcome("retry_after", retry_after=60.0, error=data.get("errmsg"))
            return Outcome("failed", error=f"{code} {data.get('errmsg')}")
        return Outcome("error", error="access token refused twice")


def custom_menu() -> dict[str, Any]:
    """The account's custom menu (自定义菜单): at most 3 buttons of at most 5 sub-buttons; CLICK keys
    are the core's button payloads."""

    def click(name: str, key: str) -> dict[str, str]:
        return {"type": "click", "name": name, "key": key}

    return {
        "button": [
            {
                "name": "政策浏览",
                "sub_button": [
                    click("七大计划", "plans"),
                    click("全市目标", "targets"),
                    click("使用帮助", "help"),
                ],
            },
            {"name": "为我匹配", "sub_button": [click("匹配政策", "match"), click("我的资料", "profile")]},
            {
                "name": "通知订阅",
                "sub_button": [
                    click("订阅通知", "sub"),
                    click("退订通知", "unsub"),
                    click("语言 Language", "lang_menu"),
                ],
            },
        ]
    }


async def install_menu(config: WeChatConfig, session: aiohttp.ClientSession) -> dict[str, Any]:
    """Create the custom menu on the account; returns WeChat's answer."""
    token = await WeChatSender(config, session).access_token()
    async with session.post(
        f"{config.api_base_url}/cgi-bin/menu/create",
        params={"access_token": token},
        data=json.dumps(custom_menu(), ensure_ascii=False).encode(),
    ) as response:
        return await response.json(content_type=None)
