"""The local web chat over real HTTP on loopback: menus, every measure card, deep links, bad input."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import Services
from content.loader import load_content
from storage.models import Inquiry, User
from tests.conftest import CONTENT

CONTENT_NOW = load_content(CONTENT)
SESSION = "founder-session-1"


async def chat(client: TestClient, session: str = SESSION, **message: Any) -> list[dict[str, Any]]:
    response = await client.post("/chat", json={"session": session, **message})
    assert response.status == 200, await response.text()
    return (await response.json())["replies"]


def actions(reply: dict[str, Any]) -> dict[str, str]:
    return {b["action"]: b["label"] for row in reply["buttons"] for b in row}


async def test_the_page_is_served(web_client: TestClient) -> None:
    response = await web_client.get("/")
    assert response.status == 200
    assert "创业威海" in await response.text()


async def test_start_greets_and_shows_the_main_menu(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="/start")
    assert "创业威海" in reply["text"]
    assert "威政办字〔2025〕8号" in reply["text"]
    assert {"plans", "targets", "help"} <= set(actions(reply))


async def test_every_measure_card_is_reachable_through_the_menus(web_client: TestClient) -> None:
    (plans,) = await chat(web_client, action="plans")
    plan_actions = [a for a in actions(plans) if a.startswith("plan:")]
    assert len(plan_actions) == 7
    seen = set()
    for plan_action in plan_actions:
        (plan,) = await chat(web_client, action=plan_action)
        assert {"plans", "home"} <= set(actions(plan)), "a plan has back and home buttons"
        for measure_action in (a for a in actions(plan) if a.startswith("m:")):
            (card,) = await chat(web_client, action=measure_action)
            number = int(measure_action[2:])
            measure = CONTENT_NOW.measures[number]
            assert card["text"].startswith(measure.title.zh)
            assert f"第{number}条" in card["text"]
            assert CONTENT_NOW.department_names(measure.departments.responsible(), "zh")[0] in card["text"]
            assert "威政办字〔2025〕8号" in card["text"]
            assert measure.source.text in card["text"]
            assert set(actions(card)) == {plan_action, "home"}
            seen.add(number)
    assert seen == set(range(1, 25))


async def test_a_card_shows_its_figures_in_the_plans_own_terms(web_client: TestClient) -> None:
    (card,) = await chat(web_client, text="/m12")
    assert "3年内" in card["text"]
    assert "不超过3年" in card["text"]
    (card,) = await chat(web_client, text="/m17")
    assert "20个" in card["text"]
    assert "2—3个" in card["text"]


async def test_deep_links_open_a_measure(web_client: TestClient) -> None:
    (card,) = await chat(web_client, text="/start m7")
    assert card["text"].startswith("强化金融服务助力创业")
    (card,) = await chat(web_client, text="/m7")
    assert card["text"].startswith("强化金融服务助力创业")
    (reply,) = await chat(web_client, text="/m99")
    assert "没有第99条措施" in reply["text"]
    (reply,) = await chat(web_client, text="/start nonsense")
    assert "plans" in actions(reply)


async def test_an_empty_contact_names_the_lead_department(web_client: TestClient) -> None:
    (card,) = await chat(web_client, text="/m12")
    assert "尚未公布" in card["text"]
    assert "请咨询市人力资源社会保障局" in card["text"]


async def test_targets_use_the_final_figures(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, action="targets")
    assert "扶持创业：1.9万人以上" in reply["text"]
    assert "带动就业：5万人以上" in reply["text"]
    assert "新发放创业担保贷款：6亿元以上" in reply["text"]
    assert "1.6万" not in reply["text"]


async def test_english_users_get_english_screens(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, session="english-user-1", text="/targets", lang="en-US")
    assert "Founders supported: at least 19,000 people (by 2026)" in reply["text"]
    assert "New guaranteed startup loans issued: at least 600 million yuan" in reply["text"]


async def test_language_can_be_changed_and_is_remembered(web_client: TestClient) -> None:
    await chat(web_client, text="/start")
    (reply,) = await chat(web_client, action="lang:en")
    assert "Browse the 7 plans" in actions(reply).values()
    (card,) = await chat(web_client, text="/m12")
    assert card["text"].startswith("Support researchers")
    assert "Weihai Human Resources and Social Security Bureau (市人力资源社会保障局)" in card["text"]


async def test_forged_and_stale_buttons_get_a_polite_reply(web_client: TestClient) -> None:
    for payload in ["m:25", "plan:9", "m:-1", "drop table users", "m:1:2", "x" * 500, "", "lang:fr"]:
        (reply,) = await chat(web_client, action=payload)
        assert "过期" in reply["text"], payload
        assert "plans" in actions(reply)


async def test_unknown_commands_huge_and_odd_messages_get_polite_replies(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="/frobnicate")
    assert "不认识这个命令" in reply["text"]
    (reply,) = await chat(web_client, text="创业" * 5000)
    assert "太长" in reply["text"]
    (reply,) = await chat(web_client, text="   ")
    assert "文字" in reply["text"]
    (reply,) = await chat(web_client, text="<script>alert(1)</script>\u202e\x00")
    assert reply["text"]


async def test_malformed_requests_are_refused_with_400(web_client: TestClient) -> None:
    for body in [b"not json", b"[1, 2]", b'{"session": "x"}', b'{"session": "good-session", "text": 5}']:
        response = await web_client.post("/chat", data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400
        assert "error" in await response.json()
    response = await web_client.post("/chat", data=b"x" * (200 * 1024))
    assert response.status == 413


async def test_the_inquiry_log_is_pseudonymous(web_client: TestClient, services: Services) -> None:
    await chat(web_client, text="/start")
    await chat(web_client, text="/m7")
    await chat(web_client, text="/start m12")
    await chat(web_client, text="我想开个奶茶店")
    await services.inquiries.flush()
    async with services.db.session() as session:
        rows = (await session.scalars(select(Inquiry).order_by(Inquiry.id))).all()
    assert [(r.kind, r.measure) for r in rows] == [("menu", None), ("measure", 7), ("deeplink", 12), ("question", None)]
    assert rows[3].text == "我想开个奶茶店"
    assert all(r.user_pseudonym == rows[0].user_pseudonym != SESSION for r in rows)
    assert SESSION not in rows[0].user_pseudonym


async def test_forget_deletes_the_users_data_after_confirmation(web_client: TestClient, services: Services) -> None:
    await chat(web_client, text="/m7")
    await chat(web_client, session="someone-else-1", text="/m8")
    (ask,) = await chat(web_client, text="/forget")
    assert {"forget_yes", "forget_no"} == set(actions(ask))
    (kept,) = await chat(web_client, action="forget_no")
    assert "没有删除" in kept["text"]
    (done,) = await chat(web_client, action="forget_yes")
    assert "已删除" in done["text"]
    await services.inquiries.flush()
    async with services.db.session() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        measures = (await session.scalars(select(Inquiry.measure))).all()
    assert users == 1
    assert measures == [8]
