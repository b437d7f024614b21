"""The outcome follow-up: asked once, some days after a measure was opened; answers are logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bot.app import Services
from storage.models import Inquiry, User
from tests.test_local_chat import actions, chat

SESSION = "followup-user-1"


async def make_due(services: Services) -> None:
    """Move the planned question into the past, as if a week had gone by."""
    async with services.db.session.begin() as session:
        user = (await session.scalars(select(User))).one()
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        await session.execute(update(User).values(followup={**user.followup, "due": past}))


async def test_a_week_after_opening_a_measure_the_user_is_asked_once(
    web_client: TestClient, services: Services
) -> None:
    await chat(web_client, session=SESSION, text="/m7")
    replies = await chat(web_client, session=SESSION, text="/m8")
    assert len(replies) == 1, "not due yet"
    await make_due(services)
    replies = await chat(web_client, session=SESSION, text="/start")
    assert replies[-1]["text"].startswith("想问你一下：前几天你看过第7条")
    assert {"fu:helped", "fu:no_help", "fu:not_yet", "fu:off"} == set(actions(replies[-1]))
    (thanks,) = await chat(web_client, session=SESSION, action="fu:helped")
    assert thanks["text"].startswith("谢谢")
    assert len(await chat(web_client, session=SESSION, text="/m9")) == 1, "asked once only"
    (stale,) = await chat(web_client, session=SESSION, action="fu:no_help")
    assert "fu:helped" not in actions(stale), "a second answer is not recorded"
    await services.inquiries.flush()
    async with services.db.session() as session:
        outcomes = (await session.execute(select(Inquiry.measure, Inquiry.text).where(Inquiry.kind == "outcome"))).all()
    assert outcomes == [(7, "helped")]


async def test_declining_is_respected(web_client: TestClient, services: Services) -> None:
    await chat(web_client, session=SESSION, text="/m12")
    await make_due(services)
    replies = await chat(web_client, session=SESSION, text="/help")
    assert "fu:off" in actions(replies[-1])
    (reply,) = await chat(web_client, session=SESSION, action="fu:off")
    assert "不再问" in reply["text"]
    async with services.db.session() as session:
        assert (await session.scalars(select(User.followup))).one()["state"] == "off"
