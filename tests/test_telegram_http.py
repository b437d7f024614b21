"""The Bot API transport on aiohttp: what python-telegram-bot sends arrives, and failures become its errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.channels.telegram_http import AiohttpRequest
from tests.fake_telegram import FakeTelegram, sent_to

TOKEN = "123456:TEST-TOKEN"


def _message(chat_id: int, **extra: object) -> dict:
    return {"message_id": 1, "date": int(time.time()), "chat": {"id": chat_id, "type": "private"}, **extra}


class RecordingApi:
    """A Bot API on loopback that keeps what it was sent and can be told to stall."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict]] = []
        self.stall = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "getMe":
            return web.json_response({"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "bot"}})
        if self.stall:
            await asyncio.sleep(self.stall)
        form = await request.post() if request.content_type == "multipart/form-data" else {}
        params = await request.json() if request.content_type == "application/json" else {}
        fields = {
            name: (value.filename, value.file.read()) if isinstance(value, web.FileField) else value
            for name, value in form.items()
        }
        self.received.append((request.match_info["method"], request.content_type, params or fields))
        chat_id = int((params or fields).get("chat_id", 1))
        document = {"file_id": "f1", "file_unique_id": "u1", "file_name": "report.csv"}
        return web.json_response({"ok": True, "result": _message(chat_id, document=document)})


@pytest.fixture
async def api() -> AsyncIterator[tuple[RecordingApi, str]]:
    recording = RecordingApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", recording.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield recording, f"http://127.0.0.1:{server.port}/bot"
    await server.close()


async def test_plain_calls_go_as_json_and_replies_are_parsed(fake_telegram: FakeTelegram) -> None:
    async with Bot(TOKEN, base_url=fake_telegram.base_url, request=AiohttpRequest()) as bot:
        message = await bot.send_message(42, "你好 <b>", reply_markup=None)
    assert message.chat.id == 42
    assert [call.params["text"] for call in sent_to(fake_telegram, 42)] == ["你好 <b>"]


async def test_files_go_as_multipart_form_data(api: tuple[RecordingApi, str]) -> None:
    recording, base_url = api
    async with Bot(TOKEN, base_url=base_url, request=AiohttpRequest()) as bot:
        await bot.send_document(7, document=b"a,b\n1,2\n", filename="report.csv", caption="报表")
    method, content_type, fields = recording.received[-1]
    assert (method, content_type) == ("sendDocument", "multipart/form-data")
    assert fields["caption"] == "报表"
    assert fields["chat_id"] == "7"
    assert ("report.csv", b"a,b\n1,2\n") in fields.values()


async def test_a_slow_api_raises_timed_out(api: tuple[RecordingApi, str]) -> None:
    recording, base_url = api
    async with Bot(TOKEN, base_url=base_url, request=AiohttpRequest(read_timeout=0.2)) as bot:
        recording.stall = 1.0
        with pytest.raises(TimedOut):
            await bot.send_message(1, "hello")


async def test_a_full_pool_raises_timed_out_without_sending(api: tuple[RecordingApi, str]) -> None:
    recording, base_url = api
    request = AiohttpRequest(connection_pool_size=1, read_timeout=5.0, connect_timeout=0.1, pool_timeout=0.1)
    async with Bot(TOKEN, base_url=base_url, request=request) as bot:
        recording.stall = 0.5
        first = asyncio.create_task(bot.send_message(1, "first"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimedOut, match="no free pooled connection"):
            await bot.send_message(2, "second")
        await first
    assert [params["text"] for _method, _type, params in recording.received] == ["first"]


async def test_an_unreachable_api_raises_network_error(unused_tcp_port: int) -> None:
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{unused_tcp_port}/bot", request=AiohttpRequest())
    request = bot.request
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await bot.send_message(1, "hello")
        assert not isinstance(raised.value, TimedOut)
    finally:
        await request.shutdown()


async def test_a_request_before_initialize_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:1/bot/getMe", "POST")
