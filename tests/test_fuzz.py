"""Fuzzing every way in: thousands of arbitrary messages and button payloads through the core, a few hundred
arbitrary updates through the real Telegram Application, and malformed requests to the web chat.

How hypothesis meets asyncio here (pytest-asyncio 1.x, function-scoped async fixtures): pytest-asyncio can run
an `async def` test under `@given`, one loop run per example, but the examples would then share the `services`
fixture behind hypothesis' back (the function_scoped_fixture health check), and nothing could run once after
all of them on the same database (the inquiry-log flush and consistency checks). So each test is an ordinary
async test that defines a *synchronous* `@given` function and runs it in a worker thread with
`asyncio.to_thread`; every example hands its coroutines to the test's loop with
`asyncio.run_coroutine_threadsafe` and waits for them. The loop stays free to run the database drivers, the
inquiry log writer, the aiohttp servers and python-telegram-bot meanwhile; hypothesis keeps shrinking,
`st.data()` draws between awaits, its failure database and the falsifying example in the report. The
inner functions take no fixtures, so that health check does not apply. (Never call the blocking `run` helper
on the loop's own thread: it would wait for itself.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from telegram import Bot, Update

from bot.app import Services
from bot.channels.web import MAX_BODY_BYTES
from content.loader import Content, load_content
from content.schema import LANGS
from handlers import announcements
from handlers.actions import PROFILE_SETTERS, parse_action
from handlers.core import printable
from handlers.replies import Incoming, Reply
from handlers.vocabulary import FIELDS
from storage.models import Announcement, Inquiry, User
from tests.conftest import CONTENT
from tests.fake_telegram import Call, FakeTelegram, buttons_of

T = TypeVar("T")
CONTENT_NOW = load_content(CONTENT)

TEXT_EXAMPLES = 1500
PAYLOAD_EXAMPLES = 1000
CONVERSATION_EXAMPLES = 150
TELEGRAM_UPDATES = 300
WEB_EXAMPLES = 300

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def examples(count: int, **options: Any) -> settings:
    return settings(FUZZ, max_examples=count, **options)


# Staff and admin accounts in the pool of users, so the announcement screens get fuzzed too.
STAFF = ("telegram", "9001")
ADMIN = ("wechat", "oADMIN-openid-0000000000001")
PUSH_CHANNELS = ("telegram", "wechat")
OTHER_CHANNELS = ("web", "shell", "api")

# Inputs -------------------------------------------------------------------------------------------------------

NASTY_TEXTS = [
    "", " ", "\x00", "a\x00b", "\x00/start", "\x00" * 3000, "/", "/ ", "//", "/@", "/start", "/start m999",
    "/start m7", "/start M7", "/start m0", "/start m-1", "/start m7 m8", "/start@otherbot", "/start@otherbot m7",
    "/start@weihai_test_bot", "/m0", "/m7", "/m24", "/m25", "/m999", "/m1000", "/M7", "/m07", "/m7@otherbot",
    "/lang", "/lang xx", "/lang en", "/lang zh-hans", "/lang ko_KR", "/language", "/announce", "/announcements",
    "/subscribe", "/unsubscribe", "/stop", "/forget", "/profile", "/match", "/help", "/menu", "/targets",
    "/plans", "/frobnicate", "/" + "a" * 33, "/start " + "m7" * 1000, "/\x00start", "/start\x00",
    "'; DROP TABLE users; --", "1' OR '1'='1", "Robert'); DROP TABLE inquiries;--", "%s %d {0} {text}",
    "<b>x</b>", "<script>alert(1)</script>", "*_`[", "[link](http://example.com)", "_*bold*_", "&lt;&amp;",
    "\u202egnp.exe", "\u202e\u202d\u2066\u2069", "e\u0301\u0301\u0301\u0301", "Z\u0334\u0321\u031b\u035aalgo",
    "\U0001f600" * 10, "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f1e8\U0001f1f3",
    "\ufeff", "\u200b" * 50, "\r\n\r\n", "\t", "\x1b[31mred", "\x7f", "\x85\u2028\u2029", "\ud7ff",
    "\U0010ffff", "\uffff\ufffe", "贷款", "我想开个奶茶店", "대출", "loan", "I want a loan to open a shop",
    "你好", "谢谢", "再见", "你是谁", "貸款", "ｌｏａｎ", "第七条", "7", "24", "m7", "创业" * 1000, "贷" * 2000,
    "贷" * 2001, "x" * 100_000, " " * 5000 + "贷款", "贷款\n" * 700,
]  # fmt: skip

KNOWN_COMMANDS = [
    "start", "menu", "plans", "targets", "help", "lang", "language", "forget", "profile", "match", "subscribe",
    "unsubscribe", "stop", "announce", "announcements", "m0", "m1", "m7", "m24", "m25", "m999", "m1000",
    "START", "M7", "Start",
]  # fmt: skip

ACTION_NAMES = [
    "home", "plans", "plan", "m", "targets", "help", "forget", "forget_yes", "forget_no", "lang_menu", "lang",
    "profile", "pedit", "pclear", "pstep", "match", *PROFILE_SETTERS, "sub", "unsub", "stp", "sdist", "sdi",
    "aud", "aut", "aui", "asend", "asend_later", "acancel",
]  # fmt: skip
SIMPLE_ACTIONS = [
    "home", "plans", "targets", "help", "forget", "forget_yes", "forget_no", "lang_menu", "profile", "pedit",
    "pclear", "match", "sub", "unsub", "sdist", "acancel", "asend", "asend_later",
]  # fmt: skip
VALID_PAYLOADS = [
    *SIMPLE_ACTIONS,
    *(f"plan:{n}" for n in range(1, 8)),
    *(f"m:{n}" for n in range(1, 25)),
    *(f"lang:{code}" for code in LANGS),
    *(f"{setter}:{value}" for setter, field in PROFILE_SETTERS.items() for value in FIELDS[field]),
    *(f"pstep:{field}" for field in FIELDS),
    *(f"sdi:{d}" for d in (*FIELDS["district"], "all")),
    *(f"stp:{n}" for n in range(1, 8)),
    *(f"aut:{n}" for n in range(1, 8)),
    "aud:all",
    *(f"aui:{i}" for i in FIELDS["identity"]),
]
FORGED_PAYLOADS = [
    "m:25", "m:0", "m:-1", "m:007", "m:1000", "m:99999", "plan:0", "plan:8", "plan:99", "pid:astronaut",
    "pst:idea", "psc:huancui", "pdi:beijing", "pne:money", "lang:xx", "lang:fr", "lang:ZH", "lang:zh-hans",
    "stp:99", "stp:0", "aut:3", "aut:99", "aud:some", "aui:astronaut", "sdi:everywhere", "pstep:nope",
    "forget_yes:1", "home:1", "m:1:2", "M:7", "m 7", " m:7", "m:7 ", "m:", ":7", "m::7", "plan:٣", "m:²",
    "'; DROP TABLE users; --", "<b>x</b>", "*_`[", "", " ", "\x00", "m:7\x00", "m:" + "9" * 70, "a" * 65,
    "home" * 20, "plan:" + "1" * 60, "\U0001f600" * 20, "/start", "null", "None", "undefined", "{}", "[]",
]  # fmt: skip
LANGUAGE_CODES = [
    None, "", " ", "zh", "en", "ko", "zh-hans", "zh-Hant", "zh_CN", "en-US", "EN", " en ", "ko-KR", "fr", "xx",
    "-", "_", "zh-", "-en", "\x00", "en\x00", "\u202een", "e" * 100,
]  # fmt: skip

# Characters a hostile or unlucky client sends: controls (NUL included), bidi overrides, zero-widths,
# combining marks, emoji parts, noncharacters, and lone surrogates (JSON's "\ud800" reaches the web chat).
ODD_CHARS = st.sampled_from(
    [chr(c) for c in range(0x20)]
    + ["\x7f", "\x85", "\xa0", "\u0301", "\u0334", "\u200b", "\u200d", "\u200e", "\u202a", "\u202e", "\u2066"]
    + ["\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "\U0001f600", "\U0001f3fb", "\U000e0001", "\U0010ffff"]
    + ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"]
    + list("/@:_*`[]()<>&;'\"\\%{}#")
    + ["贷", "款", "创", "业", "대", "출"]
)
WORDS = st.sampled_from(
    ["贷款", "创业", "开店", "奶茶店", "补贴", "担保", "孵化", "大学生", "退役军人", "返乡", "你好", "谢谢",
     "loan", "startup", "subsidy", "hello", "thanks", "대출", "창업", "m7", "7", "第7条", "DROP", "TABLE", "<b>"]
)  # fmt: skip


@st.composite
def huge_texts(draw: st.DrawFn) -> str:
    unit = draw(st.text(min_size=1, max_size=8) | WORDS)
    size = draw(st.sampled_from([1999, 2000, 2001, 4096, 4097, 10_000, 65_536, 100_000]) | st.integers(0, 100_000))
    return (unit * (size // len(unit) + 1))[:size]


@st.composite
def commands(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(KNOWN_COMMANDS) | st.from_regex(r"[A-Za-z0-9_]{0,40}", fullmatch=True) | st.text())
    bot = draw(st.sampled_from(["", "", "@otherbot", "@weihai_test_bot", "@", "@@", "@ x"]) | st.text(max_size=5))
    sep = draw(st.sampled_from([" ", " ", "", "\n", "\t", "  ", "\x00 "]))
    arg = draw(
        st.sampled_from(["", "m7", "m24", "m999", "m0", "M7", " m7 ", "m-1", "en", "xx", "zh-hans", "m7 m8"])
        | st.text(max_size=50)
    )
    return f"/{name}{bot}{sep}{arg}"


TEXTS = st.one_of(
    st.sampled_from(NASTY_TEXTS),
    st.text(max_size=300),
    st.text(st.characters(exclude_categories=()), max_size=100),  # every code point, surrogates included
    st.text(ODD_CHARS, max_size=60),
    commands(),
    st.lists(WORDS | ODD_CHARS | st.text(max_size=6), max_size=12).map(" ".join),
    huge_texts(),
)
NEAR_VALID_PAYLOADS = st.builds(
    "{}{}{}".format,
    st.sampled_from([*ACTION_NAMES, "M", "Plan", "plan ", "lang_", "x", "_", "a" * 17]),
    st.sampled_from([":", ":", "", "::", ": ", "="]),
    st.one_of(
        st.integers(-5, 10_000).map(str),
        st.sampled_from([v for values in FIELDS.values() for v in values] + [*FIELDS, *LANGS, "all", "xx", "0"]),
        st.from_regex(r"[a-z0-9_]{0,30}", fullmatch=True),
        st.text(max_size=8),
    ),
)
PAYLOADS = st.one_of(
    st.sampled_from(FORGED_PAYLOADS),
    st.sampled_from(VALID_PAYLOADS),
    NEAR_VALID_PAYLOADS,
    st.text(max_size=80),
    st.text(min_size=60, max_size=200),
    st.from_regex(r"[a-z_]{1,20}(:[a-z0-9_]{1,30})?", fullmatch=True),
)
LANGUAGES = st.sampled_from(LANGUAGE_CODES) | st.text(max_size=20)
# Channels hand the core their own user ids: Telegram's are numbers, WeChat's openids are short tokens, the
# web's are checked session ids; the core only hashes them. Arbitrary ones are fuzzed where no raw id is kept.
USER_IDS = st.one_of(
    st.tuples(st.sampled_from(PUSH_CHANNELS), st.sampled_from(["1", "2", "424242"])),
    st.tuples(st.sampled_from(PUSH_CHANNELS), st.integers(-(2**63), 2**63).map(str)),
    st.tuples(st.just("wechat"), st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
    st.tuples(st.sampled_from(OTHER_CHANNELS), st.text(max_size=64)),
    st.just(STAFF),
    st.just(ADMIN),
)


# Helpers ------------------------------------------------------------------------------------------------------


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine on the test's loop from hypothesis' worker thread, and wait for its result."""

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    return run


def short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def check_payload(payload: str, content: Content, where: str) -> None:
    """A payload the bot emits fits Telegram's callback_data and is one the bot itself accepts as current."""
    size = len(payload.encode())
    assert 0 < size <= 64, f"button payload {payload!r} is {size} bytes, Telegram allows 1 to 64 ({where})"
    action = parse_action(payload)
    assert action is not None, f"the bot emitted button payload {payload!r} that it refuses itself ({where})"
    if action.name == "plan":
        assert action.number in content.plans, f"the bot emitted a button to missing plan {payload!r} ({where})"
    if action.name == "m":
        assert action.number in content.measures, f"the bot emitted a button to missing measure {payload!r} ({where})"


def check_replies(incoming: Incoming, replies: list[Reply], content: Content) -> list[str]:
    """The invariants every answer keeps; returns the payloads of its buttons."""
    where = f"answering {short(incoming)}"
    assert isinstance(replies, list), f"handle() returned {type(replies).__name__}, not a list ({where})"
    assert replies, f"no reply at all ({where})"
    payloads = []
    for reply in replies:
        assert isinstance(reply, Reply), f"a reply is a {type(reply).__name__} ({where})"
        assert isinstance(reply.text, str), f"a reply's text is {type(reply.text).__name__} ({where})"
        assert reply.text.strip(), f"a reply with empty text ({where})"
        assert "\x00" not in reply.text, f"a raw NUL in the reply text {short(reply.text)} ({where})"
        for row in reply.buttons:
            for button in row:
                assert button.label.strip(), f"a button without a label: {button!r} ({where})"
                check_payload(button.action, content, where)
                payloads.append(button.action)
    return payloads


def scaled(count: int, services: Services) -> int:
    """Full counts on SQLite; half on PostgreSQL, whose run is there to re-check what that database accepts
    (NUL, lengths, encodings, JSON) and keeps the two runs together near a minute."""
    return count if services.db.is_sqlite else count // 2


def without_flood_control(services: Services) -> None:
    """The fuzz sends thousands of messages a second from a few users, which flood control (handlers/flood.py)
    rightly answers with one warning and then silence; give it a burst no fuzz reaches."""
    flood = getattr(services.assistant, "flood", None)
    if flood is not None:
        flood.burst = 10**9


async def grant_roles(services: Services) -> None:
    without_flood_control(services)
    staff = services.assistant.pseudonymize(*STAFF)
    admin = services.assistant.pseudonymize(*ADMIN)
    await services.announcements.grant(staff, STAFF[0], "staff", ["huancui", "wendeng"])
    await services.announcements.grant(admin, ADMIN[0], "admin")


async def check_database(services: Services, staff: set[str] | None = None) -> None:
    """After the fuzz the inquiry log flushes, and only staff ever queued an announcement."""
    await asyncio.wait_for(services.inquiries.flush(), 30)
    assert services.inquiries.pending == 0
    staff = (staff or set()) | {services.assistant.pseudonymize(*STAFF), services.assistant.pseudonymize(*ADMIN)}
    async with services.db.session() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        inquiries = await session.scalar(select(func.count()).select_from(Inquiry))
        authors = set((await session.scalars(select(Announcement.author_pseudonym))).all())
    assert users and inquiries, "the fuzz left users and inquiries behind"
    assert authors <= staff, "someone who is not staff queued an announcement"


# 1. The core --------------------------------------------------------------------------------------------------


async def test_the_core_answers_thousands_of_arbitrary_messages(services: Services) -> None:
    await grant_roles(services)
    run = on_loop(asyncio.get_running_loop())
    content = services.content.snapshot.content

    def handle(incoming: Incoming) -> None:
        check_replies(incoming, run(services.assistant.handle(incoming)), content)

    def nasty() -> None:
        for text in NASTY_TEXTS:
            for channel, user_id in (("web", "nasty-texts-1"), STAFF):
                handle(Incoming(channel, user_id, text=text))

    @examples(scaled(TEXT_EXAMPLES, services))
    @given(user=USER_IDS, text=TEXTS, language=LANGUAGES)
    def fuzz(user: tuple[str, str], text: str, language: str | None) -> None:
        handle(Incoming(user[0], user[1], text=text, language=language))

    await asyncio.to_thread(nasty)
    await asyncio.to_thread(fuzz)
    await check_database(services)


async def test_the_core_refuses_arbitrary_and_forged_button_payloads_politely(services: Services) -> None:
    await grant_roles(services)
    run = on_loop(asyncio.get_running_loop())
    content = services.content.snapshot.content

    def press(incoming: Incoming) -> None:
        check_replies(incoming, run(services.assistant.handle(incoming)), content)

    def nasty() -> None:
        for payload in FORGED_PAYLOADS + VALID_PAYLOADS:
            for channel, user_id in (("telegram", "777"), STAFF):
                press(Incoming(channel, user_id, action=payload))

    @examples(scaled(PAYLOAD_EXAMPLES, services))
    @given(user=USER_IDS, payload=PAYLOADS, text=st.sampled_from(["", "x"]) | TEXTS, language=LANGUAGES)
    def fuzz(user: tuple[str, str], payload: str, text: str, language: str | None) -> None:
        press(Incoming(user[0], user[1], text=text, action=payload, language=language))

    await asyncio.to_thread(nasty)
    await asyncio.to_thread(fuzz)
    await check_database(services)


CONVERSATION_COMMANDS = st.sampled_from(
    ["/start", "/subscribe", "/unsubscribe", "/announce", "/announcements", "/profile", "/match", "/forget", "/m7",
     "/lang en", "/lang ko", "/help", "/start m12"]
) | commands()  # fmt: skip


# How conversations may begin, to get deep fast (None: a fuzzed text); random steps follow.
JOURNEYS: list[list[tuple[str, str | None]]] = [
    [],
    [("text", "/announce"), ("text", None)],
    [("text", "/announce"), ("text", None), ("action", "aud:all")],
    [("text", "/announce"), ("text", "开业补贴 /m7 /m99"), ("action", "aut:2")],
    [("text", "/subscribe")],
    [("text", "/subscribe"), ("action", "sdist")],
    [("text", "/profile"), ("action", "pedit")],
    [("action", "match")],
]


async def test_arbitrary_conversations_keep_every_invariant(services: Services) -> None:
    """Conversations of a fresh user (sometimes staff): text, forged payloads, and taps on the buttons the
    bot just sent, so the deep screens (profile, subscriptions, announcement preview and send) get fuzzed."""
    without_flood_control(services)
    run = on_loop(asyncio.get_running_loop())
    content = services.content.snapshot.content
    users = itertools.count(1)
    staff: set[str] = set()

    @examples(scaled(CONVERSATION_EXAMPLES, services))
    @given(
        data=st.data(),
        channel=st.sampled_from([*PUSH_CHANNELS, *OTHER_CHANNELS]),
        role=st.sampled_from([None, "staff", "admin"]),
    )
    def fuzz(data: st.DataObject, channel: str, role: str | None) -> None:
        user_id = f"conversation-{next(users)}"
        if role:
            pseudonym = services.assistant.pseudonymize(channel, user_id)
            staff.add(pseudonym)
            run(services.announcements.grant(pseudonym, channel, role, ["huancui"] if role == "staff" else []))
        language = data.draw(LANGUAGES, label="language")

        def say(text: str | None = None, action: str | None = None) -> list[str]:
            incoming = Incoming(channel, user_id, text=text or "", action=action, language=language)
            return check_replies(incoming, run(services.assistant.handle(incoming)), content) or ["home"]

        offered = ["home"]
        for kind, value in data.draw(st.sampled_from(JOURNEYS), label="journey"):
            offered = say(**{kind: value if value is not None else data.draw(TEXTS, label="journey text")})
        for _ in range(data.draw(st.integers(1, 15), label="steps")):
            step = data.draw(st.sampled_from(["tap", "tap", "tap", "command", "text", "payload"]), label="kind")
            if step == "tap":
                offered = say(action=data.draw(st.sampled_from(offered), label="tap"))
            elif step == "payload":
                offered = say(action=data.draw(PAYLOADS, label="payload"))
            else:
                offered = say(text=data.draw(CONVERSATION_COMMANDS if step == "command" else TEXTS, label=step))

    await asyncio.to_thread(fuzz)
    await check_database(services, staff)


@examples(300)
@given(text=TEXTS | st.lists(st.integers(-5, 1000).map("/m{}".format) | WORDS).map(" ".join))
def test_an_announcement_links_only_measures_that_exist(text: str) -> None:
    """A staff member's text becomes the announcement subscribers get, with a button per measure it links."""
    reply = announcements.announcement_reply(printable(text), 1)
    for row in reply.buttons:
        for button in row:
            check_payload(button.action, CONTENT_NOW, f"announcing {short(text)}")


async def test_lone_surrogates_in_text_do_not_crash_the_core(services: Services) -> None:
    """JSON lets a web client send a lone surrogate ("\\ud800"); the core answers it like any text and the
    inquiry log still flushes. Also in the fuzz above; spelled out here as a regression test."""
    without_flood_control(services)
    crashes = []
    for text in ["\ud800 贷款", "贷款\udfff", "创业\ud83d", "\ud800", "/start m7\udc00", "/m7\ud800"]:
        incoming = Incoming("web", "surrogate-user", text=text)
        try:
            replies = await services.assistant.handle(incoming)
        except UnicodeError as exc:
            crashes.append(f"{text!r}: {exc!r}")
            continue
        check_replies(incoming, replies, services.content.snapshot.content)
    assert not crashes, (
        "BUG: Assistant.handle() crashed on lone surrogates: printable() (handlers/core.py) must drop them before "
        f"search.normalize() (handlers/search.py) hands the text to OpenCC: {crashes}"
    )
    await check_database(services)


# 3. Telegram --------------------------------------------------------------------------------------------------

_MESSAGE_KINDS: dict[str, dict[str, Any]] = {
    "sticker": {
        "sticker": {"file_id": "s1", "file_unique_id": "u1", "width": 512, "height": 512, "is_animated": False,
                    "is_video": False, "type": "regular"},
    },
    "photo": {"photo": [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}]},
    "photo_with_command_caption": {
        "photo": [{"file_id": "p2", "file_unique_id": "pu2", "width": 90, "height": 90}], "caption": "/start",
    },
    "location": {"location": {"latitude": 37.51, "longitude": 122.12}},
    "contact": {"contact": {"phone_number": "+86 631 0000000", "first_name": "张"}},
    "voice": {"voice": {"file_id": "v1", "file_unique_id": "vu1", "duration": 3}},
    "document": {"document": {"file_id": "d1", "file_unique_id": "du1", "file_name": "plan.pdf"}},
    "dice": {"dice": {"emoji": "🎲", "value": 6}},
    "venue": {"venue": {"location": {"latitude": 37.5, "longitude": 122.1}, "title": "站", "address": "威海"}},
    "audio": {"audio": {"file_id": "a1", "file_unique_id": "au1", "duration": 60}},
    "video_note": {"video_note": {"file_id": "n1", "file_unique_id": "nu1", "length": 240, "duration": 5}},
}  # fmt: skip
ERROR_TEXT = "Sorry, something went wrong"


def _user(user_id: int, language: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Founder"}
    if language is not None:
        user["language_code"] = language
    return user


def _chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private", "first_name": "Founder"}


@st.composite
def telegram_updates(draw: st.DrawFn, user_id: int) -> tuple[dict[str, Any], bool, str | None]:
    """(update, whether it deserves a reply in the user's chat, the callback query id to acknowledge)."""
    kind = draw(
        st.sampled_from(["text"] * 4 + ["callback"] * 3 + ["other"] * 2 + ["edited", "channel", "member", "inline"])
    )
    now = int(time.time())
    user = _user(user_id, draw(LANGUAGES))
    base = {"message_id": draw(st.integers(1, 2**31 - 1)), "date": now, "chat": _chat(user_id), "from": user}
    text = draw(TEXTS.filter(bool).map(lambda t: t[:5000]))  # the Bot API delivers non-empty texts only
    if kind == "text":
        message = {**base, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return {"message": message}, True, None
    if kind == "callback":
        query_id = f"q{user_id}"
        query: dict[str, Any] = {"id": query_id, "from": user, "chat_instance": "1", "message": {**base, "text": "x"}}
        data = draw(PAYLOADS | st.none())
        if data is None:
            query["game_short_name"] = "game"
        else:
            query["data"] = data
        return {"callback_query": query}, True, query_id
    if kind == "other":
        return {"message": {**base, **draw(st.sampled_from(list(_MESSAGE_KINDS.values())))}}, True, None
    if kind == "edited":
        return {"edited_message": {**base, "edit_date": now, "text": text}}, False, None
    if kind == "channel":
        chat = {"id": -1_000_000_000_000 - user_id, "type": "channel", "title": "channel"}
        return {"channel_post": {"message_id": 1, "date": now, "chat": chat, "text": text}}, False, None
    if kind == "member":
        bot = {"id": 123456, "is_bot": True, "first_name": "bot"}
        update = {
            "chat": _chat(user_id),
            "from": user,
            "date": now,
            "old_chat_member": {"user": bot, "status": "member"},
            "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
        }
        return {"my_chat_member": update}, False, None
    return {"inline_query": {"id": f"i{user_id}", "from": user, "query": text[:256], "offset": ""}}, False, None


def _answered(fake: FakeTelegram, chat_id: int, query_id: str | None) -> bool:
    replied = any(
        c.method in ("sendMessage", "editMessageText") and str(c.params.get("chat_id")) == str(chat_id)
        for c in fake.calls
    )
    acknowledged = query_id is None or any(
        c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id for c in fake.calls
    )
    return replied and acknowledged


def check_telegram_call(call: Call, content: Content) -> None:
    if call.method not in ("sendMessage", "editMessageText"):
        return
    where = f"{call.method} {short(call.params)}"
    assert "parse_mode" not in call.params, f"a reply was sent with parse_mode, so user text could be markup: {where}"
    text = call.params.get("text", "")
    assert text.strip(), f"an empty message: {where}"
    assert len(text) <= 4096, f"a message over Telegram's 4096 characters: {where}"
    assert ERROR_TEXT not in text, f"the bot hit an error and apologised: {where}"
    for _label, data in buttons_of(call):
        check_payload(data, content, where)


async def test_the_telegram_bot_survives_hundreds_of_arbitrary_updates(
    telegram_bot: FakeTelegram, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    run = on_loop(asyncio.get_running_loop())
    content = services.content.snapshot.content
    users = itertools.count(600_000)
    parser = Bot(telegram_bot.token)
    expected: list[tuple[int, str | None, dict[str, Any]]] = []

    @examples(TELEGRAM_UPDATES, database=None)
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        user_id = next(users)
        update, deserves_reply, query_id = data.draw(telegram_updates(user_id))
        # The fuzz is of what Telegram can send: an update the library cannot parse would stall polling.
        assert Update.de_json({**update, "update_id": 1}, parser) is not None
        run(telegram_bot.push(update))
        if deserves_reply:
            expected.append((user_id, query_id, update))

    await asyncio.to_thread(fuzz)
    assert len(expected) > TELEGRAM_UPDATES // 2, "most fuzzed updates are messages and button presses"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if all(_answered(telegram_bot, chat, query) for chat, query, _update in expected):
            break
        await asyncio.sleep(0.1)
    missing = [update for chat, query, update in expected if not _answered(telegram_bot, chat, query)]
    assert not missing, f"{len(missing)} of {len(expected)} updates got no answer, e.g. {short(missing[:3], 1500)}"

    (greeting,) = await telegram_bot.say(999_999_001, "/start")
    assert "创业威海" in greeting.params["text"], "the bot still answers /start after the fuzz"
    for call in telegram_bot.calls:
        check_telegram_call(call, content)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"errors were logged while handling updates: {[r.getMessage() for r in errors][:5]}"
    await check_database(services)


# 4. The web chat ----------------------------------------------------------------------------------------------

SESSIONS = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELD_VALUES = st.none() | TEXTS.map(lambda t: t[:20_000]) | st.sampled_from(FORGED_PAYLOADS) | JSON_VALUES
CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream",
     "application/x-www-form-urlencoded", "application/json; charset=latin-1", "application/json; charset=ascii",
     "application/json; charset=utf-16"]
)  # fmt: skip


def to_json(value: Any, ascii_only: bool) -> bytes:
    """JSON as a client sends it: escaped to ASCII, or raw UTF-8 (where there is no lone surrogate)."""
    try:
        return json.dumps(value, ensure_ascii=ascii_only).encode()
    except UnicodeEncodeError:
        return json.dumps(value).encode()


@st.composite
def chat_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A request body and the status it must get: 200, 400, or None for 'either' (charset games)."""
    shape = draw(st.sampled_from(["valid", "valid", "object", "object", "object", "json", "bytes", "oversized"]))
    if shape == "valid":
        optional = {"text": st.none() | TEXTS.map(lambda t: t[:20_000]), "action": st.none() | PAYLOADS}
        fields = draw(st.fixed_dictionaries({"session": SESSIONS}, optional={**optional, "lang": LANGUAGES}))
        body = to_json(fields, ascii_only=draw(st.booleans()))
        return body, 413 if len(body) > MAX_BODY_BYTES else 200
    if shape == "bytes":
        body = draw(st.binary(max_size=300))
        try:
            parsed = json.loads(body)
        except ValueError:
            return body, 400
        return body, None if isinstance(parsed, dict) else 400
    if shape == "json":
        value = draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
        return json.dumps(value).encode(), 400
    if shape == "oversized":
        size = draw(st.integers(MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES))
        return (b'{"session": "oversized-1", "text": "' + b"x" * size + b'"}')[:size], 413
    fields = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "session": SESSIONS | FIELD_VALUES,
                "text": FIELD_VALUES,
                "action": FIELD_VALUES,
                "lang": st.sampled_from(LANGUAGE_CODES) | FIELD_VALUES,
                draw(st.text(max_size=10)): JSON_VALUES,
            },
        )
    )
    session = fields.get("session")
    if isinstance(session, str) and session.endswith("\n"):
        return json.dumps(fields).encode(), None  # a known bug, see test_bad_session_ids_are_refused_with_400
    valid = (
        isinstance(session, str)
        and re.fullmatch(r"[A-Za-z0-9_-]{8,64}", session) is not None
        and all(isinstance(fields.get(k), str | None) for k in ("text", "action", "lang"))
    )
    body = to_json(fields, ascii_only=draw(st.booleans()))
    if len(body) > MAX_BODY_BYTES:
        return body, 413
    return body, 200 if valid else 400


async def test_the_web_chat_answers_malformed_requests_with_400_or_413_never_500(
    web_client: TestClient, services: Services
) -> None:
    without_flood_control(services)
    run = on_loop(asyncio.get_running_loop())
    content = services.content.snapshot.content

    async def post(body: bytes, content_type: str | None) -> tuple[int, Any]:
        headers = {"Content-Type": content_type} if content_type else {}
        async with web_client.post("/chat", data=body, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if response.content_type == "application/json" else text

    @examples(WEB_EXAMPLES)
    @given(request=chat_bodies(), content_type=CONTENT_TYPES)
    def fuzz(request: tuple[bytes, int | None], content_type: str | None) -> None:
        body, expected = request
        if content_type and "charset" in content_type and "utf-8" not in content_type and expected == 200:
            expected = None  # the body was encoded as UTF-8; another declared charset may make it unreadable
        status, answer = run(post(body, content_type))
        where = f"POST /chat {short(body)} as {content_type}: {status} {short(answer)}"
        assert status < 500, f"server error: {where}"
        assert status in (200, 400, 413), where
        if expected is not None:
            assert status == expected, f"expected {expected}: {where}"
        if status == 400:
            assert "error" in answer, where
        if status == 200:
            assert answer["replies"], where
            for reply in answer["replies"]:
                assert reply["text"].strip() and "\x00" not in reply["text"], where
                for row in reply["buttons"]:
                    for button in row:
                        check_payload(button["action"], content, where)

    await asyncio.to_thread(fuzz)
    for size, status in ((MAX_BODY_BYTES, 200), (MAX_BODY_BYTES + 1, 413)):
        prefix, suffix = b'{"session": "boundary-1", "text": "', b'"}'
        body = prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix
        assert (await post(body, "application/json"))[0] == status, f"a body of {size} bytes"
    await check_database(services)


HOSTILE_BODIES = [
    (b"[" * 50_000, "application/json"),
    (b'{"a":' * 12_000, "application/json"),
    (b'{"session": "good-session-1", "text": "x"}', "application/json; charset=bogus"),
    (b'{"session": "good-session-1", "text": "x"}', "text/plain; charset=no-such-codec"),
    (b'{"session": "good-session-1", "text": "\\ud800 \\u8d37\\u6b3e"}', None),
    (b'{"session": "good-session-1", "action": "\\udfff", "lang": "\\ud800"}', None),
]
BAD_SESSIONS = ["good-session\n", "good-session\n\n", "\ngood-session", "good session", "short", "x" * 65, "séssion-1"]


async def test_hostile_bodies_do_not_cause_a_server_error(web_client: TestClient) -> None:
    errors = []
    for body, content_type in HOSTILE_BODIES:
        headers = {"Content-Type": content_type} if content_type else {}
        async with web_client.post("/chat", data=body, headers=headers) as response:
            if response.status >= 500:
                errors.append(f"{short(body, 60)} as {content_type} -> {response.status}")
    assert not errors, (
        "BUG: server errors from POST /chat. bot/channels/web.py chat_message catches only ValueError around "
        "request.json(): json.loads raises RecursionError on deep nesting, and aiohttp's request.text() raises "
        f"LookupError on an unknown charset: {errors}"
    )


async def test_bad_session_ids_are_refused_with_400(web_client: TestClient) -> None:
    accepted = []
    for session in BAD_SESSIONS:
        async with web_client.post("/chat", json={"session": session, "text": "/start"}) as response:
            if response.status != 400:
                accepted.append(f"{session!r} -> {response.status}")
    assert not accepted, (
        "BUG: bad session ids were accepted. bot/channels/web.py _SESSION ends in `$`, which also matches before "
        f"a final newline: use _SESSION.fullmatch() (or \\Z): {accepted}"
    )
