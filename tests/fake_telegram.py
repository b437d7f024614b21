"""A fake Telegram Bot API on 127.0.0.1: enough of the HTTP API for python-telegram-bot to poll and reply."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Call:
    method: str
    params: dict[str, Any]


class ApiRefusal(Exception):
    """An error answer of the Bot API, such as 403 (blocked) or 429 (too many requests)."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-TOKEN"
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None
    blocked_chats: set[int] = field(default_factory=set)
    busy_once_chats: set[int] = field(default_factory=set)
    failing_once_chats: set[int] = field(default_factory=set)
    max_per_second: float | None = None

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Condition()
        self._new_call = asyncio.Condition()
        self.refused = 0
        self._window: list[float] = []

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    # What the bot sees -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        if method == "getUpdates":
            return _ok(await self._get_updates(params))
        handler = getattr(self, f"_{method}", None)
        try:
            result = handler(params) if handler else True
        except ApiRefusal as refusal:
            body: dict[str, Any] = {"ok": False, "error_code": refusal.code, "description": refusal.description}
            if refusal.retry_after is not None:
                body["parameters"] = {"retry_after": refusal.retry_after}
            return web.json_response(body, status=refusal.code)
        async with self._new_call:
            self.calls.append(Call(method, params))
            self._new_call.notify_all()
        return _ok(result)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        async with self._new_update:
            while True:
                pending = [u for u in self.updates if u["update_id"] >= offset]
                remaining = deadline - time.monotonic()
                if pending or remaining <= 0:
                    return pending
                try:
                    await asyncio.wait_for(self._new_update.wait(), remaining)
                except TimeoutError:
                    return []

    def _getMe(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": 123456,
            "is_bot": True,
            "first_name": "创业威海",
            "username": "weihai_test_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked_chats:
            raise ApiRefusal(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.failing_once_chats:
            self.failing_once_chats.discard(chat_id)
            raise ApiRefusal(502, "Bad Gateway")
        if chat_id in self.busy_once_chats:
            self.busy_once_chats.discard(chat_id)
            raise ApiRefusal(429, "Too Many Requests: retry after 1", retry_after=1)
        if self.max_per_second is not None:
            now = time.monotonic()
            self._window = [t for t in self._window if t > now - 1.0]
            if len(self._window) >= self.max_per_second:
                self.refused += 1
                raise ApiRefusal(429, "Too Many Requests: retry after 1", retry_after=1)
            self._window.append(now)
        return self._message(params)

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params, message_id=int(params["message_id"]))

    def _message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message = {
            "message_id": message_id or next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": self._getMe({}),
            "text": params.get("text", ""),
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    # What a test does --------------------------------------------------------------------------

    async def push(self, update: dict[str, Any]) -> None:
        async with self._new_update:
            update["update_id"] = next(self._update_ids)
            self.updates.append(update)
            self._new_update.notify_all()

    async def say(self, user_id: int, text: str, language_code: str | None = "zh-hans") -> list[Call]:
        """Send a text message as a user; return the bot's answer calls."""
        user = {"id": user_id, "is_bot": False, "first_name": "Founder"}
        if language_code:
            user["language_code"] = language_code
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return await self._exchange(user_id, {"message": message})

    async def send_raw(self, user_id: int, message_fields: dict[str, Any]) -> list[Call]:
        """Send a message of any kind (photo, sticker...) as a user."""
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Founder"},
            **message_fields,
        }
        return await self._exchange(user_id, {"message": message})

    async def press(self, user_id: int, data: str, on_message: Call | None = None) -> list[Call]:
        """Press an inline button with callback `data` on a message the bot sent."""
        message_id = next(self._message_ids)
        text = ""
        if on_message is not None:
            message_id = int(on_message.params.get("message_id", message_id))
            text = on_message.params.get("text", "")
        query = {
            "id": str(next(self._message_ids)),
            "from": {"id": user_id, "is_bot": False, "first_name": "Founder", "language_code": "zh-hans"},
            "chat_instance": "1",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": self._getMe({}),
                "text": text or "menu",
            },
        }
        return await self._exchange(user_id, {"callback_query": query})

    async def _exchange(self, chat_id: int, update: dict[str, Any], timeout: float = 10) -> list[Call]:
        start = len(self.calls)
        await self.push(update)
        answered = await self.wait_for_answer(chat_id, start, timeout)
        await asyncio.sleep(0.05)  # let any further chunks of the same answer arrive
        return [c for c in self.calls[start:] if _to_chat(c, chat_id)] if answered else []

    async def wait_for_answer(self, chat_id: int, start: int, timeout: float = 10) -> bool:
        async def answered() -> None:
            async with self._new_call:
                await self._new_call.wait_for(lambda: any(_to_chat(c, chat_id) for c in self.calls[start:]))

        try:
            await asyncio.wait_for(answered(), timeout)
        except TimeoutError:
            return False
        return True


def _to_chat(call: Call, chat_id: int) -> bool:
    return call.method in ("sendMessage", "editMessageText") and str(call.params.get("chat_id")) == str(chat_id)


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        params = await request.json()
    elif request.method == "POST":
        params = dict(await request.post())
    else:
        params = dict(request.query)
    for key in ("reply_markup", "allowed_updates", "commands"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return {k: (v if not isinstance(v, bytes) else v.decode()) for k, v in params.items()}


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def buttons_of(call: Call) -> list[tuple[str, str]]:
    """(label, callback_data) of every inline button in a sent message."""
    markup = call.params.get("reply_markup") or {}
    return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


def sent_to(fake: FakeTelegram, chat_id: int) -> list[Call]:
    return [c for c in fake.calls if c.method == "sendMessage" and int(c.params["chat_id"]) == chat_id]
