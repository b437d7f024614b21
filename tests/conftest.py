"""Fixtures: a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), the real
services, the real Telegram Application against a fake Bot API, and the web server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import Services, web_application
from bot.channels import telegram
from bot.config import PROJECT_ROOT, Settings
from tests.fake_telegram import FakeTelegram

CONTENT = PROJECT_ROOT / "content"
DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(params=DATABASES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """A fresh, empty database for each test: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", None
        return
    base = os.environ["TEST_DATABASE_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base)
    async with admin.begin() as conn:
        await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield base, schema
    async with admin.begin() as conn:
        await conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    await admin.dispose()


@pytest.fixture
def settings(database: tuple[str, str | None], tmp_path: Path) -> Settings:
    return Settings(
        database_url=database[0],
        database_schema=database[1],
        content_dir=CONTENT,
        content_watch=False,
        pseudonym_key="test-key-0123456789abcdef",
        pseudonym_key_file=tmp_path / "key",
        telegram_bot_token=None,
        flood_burst=10_000,  # the tests browse faster than any person; test_operations checks the limit
        _env_file=None,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    started = await Services.start(settings)
    yield started
    await started.close()


@pytest.fixture
async def web_client(services: Services) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(web_application(services), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def telegram_bot(services: Services, fake_telegram: FakeTelegram) -> AsyncIterator[FakeTelegram]:
    """The real python-telegram-bot Application, long-polling the fake Bot API."""
    application = telegram.build_application(services.assistant, fake_telegram.token, fake_telegram.base_url)
    await telegram.start_polling(application, poll_timeout=1)
    yield fake_telegram
    await telegram.stop(application)
