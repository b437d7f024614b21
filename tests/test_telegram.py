"""Telegram through the real python-telegram-bot Application, long-polling a fake Bot API on 127.0.0.1."""

from __future__ import annotations

from content.loader import load_content
from tests.conftest import CONTENT
from tests.fake_telegram import FakeTelegram, buttons_of

CONTENT_NOW = load_content(CONTENT)
FOUNDER = 424242


async def test_start_sends_the_greeting_with_the_main_menu(telegram_bot: FakeTelegram) -> None:
    (call,) = await telegram_bot.say(FOUNDER, "/start")
    assert call.method == "sendMessage"
    assert "创业威海" in call.params["text"]
    assert ("浏览七大计划", "plans") in buttons_of(call)
    assert "parse_mode" not in call.params, "replies are plain text, so user text is never parsed as markup"


async def test_every_measure_is_reachable_by_menu_buttons(telegram_bot: FakeTelegram) -> None:
    (menu,) = await telegram_bot.say(FOUNDER, "/start")
    (plans,) = await telegram_bot.press(FOUNDER, "plans", on_message=menu)
    assert plans.method == "editMessageText", "menus replace the message they were opened from"
    reached = set()
    for _label, plan_data in [b for b in buttons_of(plans) if b[1].startswith("plan:")]:
        (plan,) = await telegram_bot.press(FOUNDER, plan_data, on_message=plans)
        assert ("« 返回", "plans") in buttons_of(plan)
        assert ("主菜单", "home") in buttons_of(plan)
        for _title, measure_data in [b for b in buttons_of(plan) if b[1].startswith("m:")]:
            (card,) = await telegram_bot.press(FOUNDER, measure_data, on_message=plan)
            number = int(measure_data[2:])
            assert card.params["text"].startswith(CONTENT_NOW.measures[number].title.zh)
            assert "威政办字〔2025〕8号" in card.params["text"]
            assert ("« 返回", plan_data) in buttons_of(card)
            reached.add(number)
    assert reached == set(range(1, 25))


async def test_deep_links_open_the_measure(telegram_bot: FakeTelegram) -> None:
    (card,) = await telegram_bot.say(FOUNDER, "/start m7")
    assert card.params["text"].startswith("强化金融服务助力创业")
    (card,) = await telegram_bot.say(FOUNDER, "/m24")
    assert card.params["text"].startswith("丰富多元创业赛事活动")
    assert "市人力资源社会保障局" in card.params["text"]


async def test_a_forged_callback_gets_a_polite_reply(telegram_bot: FakeTelegram) -> None:
    for data in ["m:0", "plan:99", "'; DROP TABLE users; --", "forget_yes:1"]:
        (reply,) = await telegram_bot.press(FOUNDER, data)
        assert "过期" in reply.params["text"]
    answered = [c for c in telegram_bot.calls if c.method == "answerCallbackQuery"]
    assert len(answered) == 4, "every button press is acknowledged"


async def test_non_text_messages_and_long_texts_get_polite_replies(telegram_bot: FakeTelegram) -> None:
    sticker = {
        "sticker": {
            "file_id": "s1",
            "file_unique_id": "u1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    }
    (reply,) = await telegram_bot.send_raw(FOUNDER, sticker)
    assert "文字" in reply.params["text"]
    (reply,) = await telegram_bot.say(FOUNDER, "<b>贷款</b>" * 1000)
    assert "太长" in reply.params["text"]


async def test_the_users_telegram_language_is_used_on_first_contact(telegram_bot: FakeTelegram) -> None:
    (reply,) = await telegram_bot.say(5001, "/start", language_code="en")
    assert "Entrepreneurship Weihai" in reply.params["text"]
    (reply,) = await telegram_bot.say(5002, "/start", language_code="fr")
    assert "创业威海" in reply.params["text"]


async def test_the_command_menu_is_published_in_each_language(telegram_bot: FakeTelegram) -> None:
    published = {
        c.params.get("language_code"): c.params["commands"] for c in telegram_bot.calls if c.method == "setMyCommands"
    }
    assert {"command": "match", "description": "为我匹配政策"} in published[None]
    assert {"command": "match", "description": "Find measures for me"} in published["en"]
    assert {"command": "forget", "description": "내 데이터 삭제"} in published["ko"]
