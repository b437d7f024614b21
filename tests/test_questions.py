"""Free-text questions: ranking of clear cases, fallbacks, small talk, languages and logging."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bot.app import Services
from bot.cli import main
from content.loader import load_content
from content.store import ContentStore
from handlers.actions import not_asked_action
from handlers.core import TOPIC_TTL
from handlers.search import TARGETS, QuestionIndex, normalize
from storage.models import Inquiry
from storage.questions import question_key
from storage.reports import Period, demand_report
from tests.conftest import CONTENT
from tests.fake_telegram import FakeTelegram
from tests.test_local_chat import actions, chat


@pytest.fixture(scope="module")
def index() -> QuestionIndex:
    """The question index over the shipped content, built once for the tests that only read it."""
    return QuestionIndex(load_content(CONTENT))


@pytest.mark.parametrize(
    ("question", "measure"),
    [
        ("科研人员能离岗创业吗", 12),
        ("回老家创业有什么扶持政策", 13),
        ("創業失敗了有沒有救助", 10),
        ("ＡＩ项目种子期想找天使投资", 8),
        ("送外卖的能交工伤保险吗", 6),
        ("创业担保贷款利息有补贴吗", 7),  # the plan says nothing of interest: the card says whom to ask
        ("Can researchers take leave to start a company?", 12),
        ("창업 멘토링 받고 싶어요", 20),
    ],
)
async def test_a_clear_question_opens_its_measure_card(web_client: TestClient, question: str, measure: int) -> None:
    (reply,) = await chat(web_client, text=question)
    assert f"m:{measure}" not in actions(reply), "the card itself is shown, not a button to it"
    assert f"plan:{_plan_of(measure)}" in actions(reply), "a card's back button leads to its plan"
    assert any(marker in reply["text"] for marker in (f"第{measure}条", f"Measure {measure} ·", f"제{measure}조"))


def _plan_of(measure: int) -> int:
    return load_content(CONTENT).measures[measure].plan


async def test_questions_are_answered_in_the_language_they_are_written_in(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="How do I get a guaranteed startup loan?")
    assert reply["text"].startswith("These measures may answer your question:\n\nMeasure 7: Stronger financial")
    (reply,) = await chat(web_client, text="창업 담보대출 받을 수 있나요?")
    assert reply["text"].startswith("금융 서비스 강화로 창업 지원")


async def test_an_ambiguous_question_lists_the_best_measures_with_why(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="我想带款开个小店")
    assert reply["text"].startswith("以下措施可能与你的问题有关")
    assert "m:7" in actions(reply)
    assert "相关词：" in reply["text"]


async def test_a_targets_question_answers_with_the_final_figures(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="到2026年全市要扶持多少人创业？")
    assert "扶持创业：1.9万人以上" in reply["text"]


async def test_how_much_about_a_measure_offers_the_measure_and_the_targets(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="創業貸款能貸多少")
    assert reply["text"].startswith("以下措施可能与你的问题有关")
    assert {"targets", "m:7"} <= set(actions(reply))
    (card,) = await chat(web_client, action="targets")
    assert "新发放创业担保贷款：6亿元以上" in card["text"]


@pytest.mark.parametrize(
    ("typed", "measure"),
    [("威海哪有孚化器", 18), ("专精特心企业怎么培育", 21)],
)
async def test_a_word_typed_with_a_wrong_character_of_the_same_pinyin_is_understood(
    web_client: TestClient, typed: str, measure: int
) -> None:
    (reply,) = await chat(web_client, text=typed)
    assert f"第{measure}条" in reply["text"] or f"m:{measure}" in actions(reply)


def test_a_back_nasal_typed_for_a_front_one_is_corrected(index: QuestionIndex) -> None:
    """Many typists in Shandong do not tell in from ing: 专精特兴 is 专精特新."""
    _text, terms = index.analyzer.analyze("专精特兴咋申请")
    assert "专精特新" in [term.key for term in terms if term.is_word]


def test_accented_latin_letters_are_read_as_plain_ones(index: QuestionIndex) -> None:
    assert [t.key for t in index.analyzer.analyze("Café")[1]] == [t.key for t in index.analyzer.analyze("cafe")[1]]
    assert index.analyzer.analyze("Café 创业")[0] == "cafe 创业"


def test_a_korean_particle_does_not_hide_its_noun(index: QuestionIndex) -> None:
    answer = index.answer("창업 교육이나 강좌를 들을 수 있는 곳 있나요?")
    assert answer.hits[0].doc == 19  # 교육이나: 교육 and the particle 이나


def test_a_korean_noun_that_ends_like_a_particle_stays_whole(index: QuestionIndex) -> None:
    """웨이하이 ends in 이, which is also a particle: with or without a particle after it, it is one word."""
    keys = [
        [t.key for t in index.analyzer.analyze(text)[1] if t.is_word]
        for text in ("웨이하이", "웨이하이는", "웨이하이에서")
    ]
    assert keys == [["웨이하이"]] * 3


def test_a_keyword_of_several_words_is_a_term_of_its_own(index: QuestionIndex) -> None:
    """ "startup streets" is measure 17's, though "streets" alone is an everyday word."""
    question = "Does Weihai have designated startup streets where young entrepreneurs gather?"
    keys = [t.key for t in index.analyzer.analyze(question)[1]]
    assert "startup street" in keys
    answer = index.answer(question)
    assert answer.kind == "measure" and answer.hits[0].doc == 17


def test_english_function_words_do_not_rank_the_measures(index: QuestionIndex) -> None:
    """'open' is in measure 2's text, but says nothing here: the competition decides."""
    answer = index.answer("When does the Weihai entrepreneurship competition open for applications?")
    assert answer.hits[0].doc == 24


def test_homophone_correction_leaves_real_words_alone(index: QuestionIndex) -> None:
    assert index.analyzer.analyze("我想带款开店")[0] == "我想带款开店", "the typed text is kept for display"
    assert "贷款" in [t.key for t in index.analyzer.analyze("我想带款开店")[1]]
    assert "贷款" not in [t.key for t in index.analyzer.analyze("带宽不够")[1]], "带宽 is a word: not 贷款"


def test_a_character_mistyped_by_its_looks_in_a_four_character_keyword_is_understood(index: QuestionIndex) -> None:
    assert index.answer("揭榜挂师是啥 跟我们创业的有关系吗").hits[0].doc == 2  # 师 for 帅: alike, not homophones


@pytest.mark.parametrize(
    ("text", "not_read_as"),
    [
        ("我们是做渔具的小企业", "中小企业"),  # 的 is a function character, and 小企业 a word
        ("想学点创业的本事", "学生创业"),  # 点 is a function character
        ("园区招小企业和创业团队吗", "中小企业"),  # 小企业 is a word
    ],
)
def test_a_function_character_or_a_word_is_not_taken_for_a_mistyped_keyword(
    text: str, not_read_as: str, index: QuestionIndex
) -> None:
    assert not_read_as not in [t.key for t in index.analyzer.analyze(text)[1]]


async def test_common_words_do_not_make_a_question_look_off_topic(web_client: TestClient) -> None:
    """'introduce' and 'low interest' are everyday words: the specific word (mentor, loan) decides."""
    (reply,) = await chat(web_client, text="창업 멘토 소개받을 수 있나요?")
    assert "제20조" in reply["text"] or "m:20" in actions(reply)
    (reply,) = await chat(web_client, text="How can my SME become a 'little giant' specialized enterprise?")
    assert "Measure 21" in reply["text"] or "m:21" in actions(reply)


async def test_off_topic_gets_an_honest_no_and_whom_to_ask(web_client: TestClient, services: Services) -> None:
    (reply,) = await chat(web_client, text="明天威海天气怎么样")
    assert "没有找到" in reply["text"]
    assert "就业创业服务站" in reply["text"]
    assert "市人力资源社会保障局" in reply["text"]
    assert "plans" in actions(reply)
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry).where(Inquiry.kind == "question"))).one()
    assert (logged.text, logged.answered, logged.results) == ("明天威海天气怎么样", False, [])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("你好", "你好！"),
        ("谢谢！", "不客气"),
        ("拜拜~", "再见"),
        ("好嘞，拜拜", "再见"),
        ("好的 明白了", "不客气"),
        ("哈哈哈哈", "你好！"),
    ],
)
async def test_small_talk_gets_a_short_friendly_reply(web_client: TestClient, message: str, expected: str) -> None:
    (reply,) = await chat(web_client, text=message)
    assert reply["text"].startswith(expected)
    assert not [a for a in actions(reply) if a.startswith("m:")]


def test_a_filler_word_alone_is_not_small_talk(index: QuestionIndex) -> None:
    assert index.small_talk("好的 谢谢") == "thanks"
    assert index.small_talk("好的") is None
    assert index.small_talk("好的 我想贷款") is None


def test_a_list_offers_only_measures_that_explain_something_of_the_message(index: QuestionIndex) -> None:
    """Measure 12 scores well on this story but explains none of what it says: it is no option to offer."""
    message = "俺搞了个智能渔具的专利，想找钱把它做出来，谁投这种刚起步的"
    assert any(hit.doc == 12 and hit.coverage == 0 for hit in index.search(message))
    answer = index.answer(message)
    assert answer.kind == "list"
    assert all(hit.coverage > 0 for hit in answer.hits), [(h.doc, h.coverage) for h in answer.hits]


def test_a_word_said_twice_is_explained_both_times(index: QuestionIndex) -> None:
    assert index.search("I need a mentor, a real startup mentor")[0].coverage > 0.8
    assert index.answer("I need a mentor, a real startup mentor").hits[0].doc == 20


def test_a_sound_shared_across_two_words_explains_neither(index: QuestionIndex) -> None:
    """哪里招(聘) sounds like 哪里找, which a measure says; it explains nothing of 招聘."""
    assert all(hit.coverage < 0.5 for hit in index.search("威海哪里招聘多 想找个工作"))


def test_numbers_tell_the_founders_situation_not_the_topic(index: QuestionIndex) -> None:
    plain = index.search("想当创业导师")[0]
    with_numbers = index.search("三十五岁了 干了二十年 想当创业导师")[0]
    assert (with_numbers.doc, with_numbers.coverage) == (plain.doc, plain.coverage) == (20, 1.0)


async def test_a_long_story_is_answered_by_the_clause_that_asks(web_client: TestClient) -> None:
    story = "前几年在工厂上班，后来厂子关了，在家待了大半年，媳妇天天念叨让我出去干点啥，"
    story += "听说有创业担保贷款，俺这种情况能申请吗"
    (reply,) = await chat(web_client, text=story)
    assert "m:7" in actions(reply) or "第7条" in reply["text"]
    (reply,) = await chat(web_client, text="今天下雨了，我在家看电视，孩子在写作业，老婆在做饭，晚上吃什么好呢")
    assert "没有找到" in reply["text"]


def test_a_long_story_around_a_measures_own_term_is_answered(index: QuestionIndex) -> None:
    story = "我们公司做精密轴承十年了，客户都说技术不错，想往专精特新走，第一步该干啥"
    assert index.answer(story).hits[0].doc == 21


def test_spaces_part_the_clauses_of_a_chinese_message(index: QuestionIndex) -> None:
    """On a phone a space is the comma; a greeting says nothing about the topic."""
    story = "你好 俺是荣成的 在大连打了好几年工 今年想回来和媳妇开个小吃店 门面租好了 "
    story += "听说证照要跑好几个部门 能不能一次办完"
    answer = index.answer(story)
    assert (answer.kind, answer.hits[0].doc) == ("measure", 1)


def test_a_message_one_of_its_best_measures_is_not_about_gets_no_measure(index: QuestionIndex) -> None:
    """Hatching chicks shares 孵化 with the incubators (which say they are not about it) and with measure 16;
    a thesis advisor shares 导师 with the mentors and with the training measure."""
    assert index.answer("孵化小鸡的孵化器温度调多少度").kind == "none"
    assert index.answer("考研想报哈工大威海，哪个导师比较好").kind == "none", "a thesis advisor, not a mentor"
    assert index.answer("孵化器怎么入驻").hits[0].doc == 18


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("你是机器人还是真人？", "identity"),
        ("你是真人还是机器人", "identity"),  # 是机器人 starts inside 还是: 机器人 is the phrase
        ("你是人还是机器", "identity"),  # 机器, a word of the industry measure, alone with function words
        ("are you a human or a bot?", "identity"),
        ("로봇이에요?", "identity"),
        ("혹시 AI예요?", "identity"),  # a Latin word glued to a Korean ending
        ("안녕히 계세요", "goodbye"),
        ("thanks a lot!", "thanks"),
    ],
)
def test_small_talk_may_come_with_function_words(message: str, kind: str, index: QuestionIndex) -> None:
    assert index.small_talk(message) == kind


@pytest.mark.parametrize(
    "message",
    [
        *("this loan", "机器人创业能贷款吗", "human resources training", "客服电话多少"),
        *("想在文登开个早餐店", "梅西和C罗谁更厉害", "想买几台机器开个加工厂"),
    ],
)
def test_a_question_that_shares_a_word_with_small_talk_is_a_question(message: str, index: QuestionIndex) -> None:
    assert index.small_talk(message) is None  # 早 in 早餐店 is part of a word; 梅西 is a name jieba does not know


@pytest.mark.parametrize(
    ("question", "first"),
    [
        ("创业担保贷款咋申请 能贷多少", 7),  # what one founder can get: the measure, not the city's loan target
        ("How much can I borrow with a startup guarantee loan?", 7),
        ("创业大赛奖金多少", 24),  # the prize one founder wins: the competitions measure
        ("到2026年扶持多少人创业", TARGETS),
        ("威海一年要引多少青年人才", 11),  # a figure of measure 11's own (2万 a year), not a city target
        ("How many young talents does Weihai aim to attract each year?", 11),
        ("创业担保贷款每年要发放多少", TARGETS),
    ],
)
def test_how_many_asks_whoever_states_the_figure_and_how_much_can_i_get_asks_a_measure(
    question: str, first: int, index: QuestionIndex
) -> None:
    assert index.answer(question).hits[0].doc == first


@pytest.mark.parametrize(
    ("question", "measure"),
    [
        ("开个早餐店能贷款吗", 7),
        ("想开个烧烤店，能借点钱吗", 7),
        ("我想开个奶茶店，能贷款吗", 7),
        ("开个早餐店要办什么手续", 1),
    ],
)
def test_the_kind_of_shop_a_founder_opens_is_their_situation_not_the_topic(
    question: str, measure: int, index: QuestionIndex
) -> None:
    """早餐, 烧烤 say what the founder sells, not what they ask; opening a shop is what the plan knows."""
    assert measure in [hit.doc for hit in index.answer(question).hits][:2]


def test_asking_words_neither_explain_a_match_nor_count_against_it(tmp_path: Path) -> None:
    """ "申请条件" says how the founder asks, not what about: the match is judged by the other words."""
    folder, store = searchable_copy(tmp_path)
    index = store.snapshot.views["search"]
    question = "威海英才工程申报要啥条件"
    assert index.answer(question).kind == "measure"
    synonyms = folder / "synonyms.yaml"
    text = synonyms.read_text(encoding="utf-8")
    synonyms.write_text(text[: text.index("asking:")] + "asking: []\n", encoding="utf-8")
    store.load()
    without = store.snapshot.views["search"].search(question)[0]
    assert without.coverage < index.search(question)[0].coverage


def test_a_founders_situation_that_no_measure_is_about_is_not_the_topic(tmp_path: Path) -> None:
    """下岗 says what happened to the founder, not what they ask: the loan question is answered."""
    folder, store = searchable_copy(tmp_path)
    question = "厂子倒了 下岗了 想开个洗车店 能贷点款不"
    answer = store.snapshot.views["search"].answer(question)
    assert answer.kind in ("measure", "list") and answer.hits[0].doc == 7
    synonyms = folder / "synonyms.yaml"
    text = synonyms.read_text(encoding="utf-8")
    start = text.index("situation:")
    synonyms.write_text(text[:start] + "situation: []" + text[text.index("\n", start) :], encoding="utf-8")
    store.load()
    assert store.snapshot.views["search"].answer(question).kind == "none"


async def test_a_question_and_its_ranked_results_are_logged(web_client: TestClient, services: Services) -> None:
    await chat(web_client, text="我想带款开个小店")
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry).where(Inquiry.kind == "question"))).one()
    assert logged.answered is True
    assert [r["rank"] for r in logged.results] == list(range(1, len(logged.results) + 1))
    assert 7 in [r["measure"] for r in logged.results]


@pytest.mark.parametrize(
    "message",
    [
        "我想创业",
        "怎么申请？",
        "5",
        "help me",
        "창업",
        "I want to start a business",
        "창업 도움이 필요해요",
        "有什么政策",
    ],
)
def test_a_message_that_names_nothing_specific_is_asked_for_more(message: str, index: QuestionIndex) -> None:
    assert index.answer(message).kind == "vague"


def test_an_everyday_word_that_is_a_keyword_still_names_a_topic(index: QuestionIndex) -> None:
    """ "funding" weighs little in everyday English, but it is one of the content's words: measures are offered."""
    answer = index.answer("Is there any funding?")
    assert answer.kind in ("list", "measure") and answer.hits[0].doc in (8, 9)


def test_a_message_whose_topic_the_assistant_does_not_know_is_not_answered(index: QuestionIndex) -> None:
    """低保 is in no dictionary the assistant has: 申请条件 alone must not pick a measure for it."""
    assert index.answer("低保申请条件是啥").kind == "none"


async def test_a_vague_question_gets_examples_and_the_menu_and_is_not_counted_unanswered(
    web_client: TestClient, services: Services
) -> None:
    (reply,) = await chat(web_client, text="我想创业")
    assert "具体" in reply["text"] and "没有找到" not in reply["text"]
    assert {"match", "plans"} <= set(actions(reply))
    (reply,) = await chat(web_client, session="english-speaker", text="help me")
    assert reply["text"].startswith("Tell me a little more")
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry.kind).where(Inquiry.text == "我想创业"))).all()
    assert logged == ["vague"]
    now = datetime.now(UTC)
    report = await demand_report(services.db, Period(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert report.unanswered == []


async def test_a_vague_question_right_after_a_card_is_about_its_measure(
    web_client: TestClient, services: Services
) -> None:
    (card,) = await chat(web_client, text="送外卖的能交工伤保险吗")
    assert "第6条" in card["text"]
    await chat(web_client, text="谢谢")  # an aside keeps the topic
    (reply,) = await chat(web_client, text="那怎么申请？")
    assert reply["text"].startswith("关于第6条") and "去哪里问" in reply["text"]
    assert {"m:6", "plan:2"} <= set(actions(reply)) and "不是我要问的" in actions(reply).values()
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry).where(Inquiry.text == "那怎么申请？"))).one()
    assert (logged.kind, logged.answered, logged.results[0]["measure"]) == ("question", True, 6)
    (reply,) = await chat(web_client, text="要带什么材料")  # a follow-up on the follow-up
    assert reply["text"].startswith("关于第6条")
    (miss,) = [action for action, label in actions(reply).items() if label == "不是我要问的"]
    (other,) = await chat(web_client, text="我想创业")  # asks nothing of the card
    assert "具体" in other["text"]
    await chat(web_client, action=miss)  # "not what I asked" ends it
    (reply,) = await chat(web_client, text="要带什么材料")
    assert "具体" in reply["text"]

    await chat(web_client, text="我想贷款开个小店")  # a list: the conversation moved on
    (reply,) = await chat(web_client, text="那怎么申请？")
    assert "具体" in reply["text"]
    await chat(web_client, action="m:7")
    await chat(web_client, action="plans")  # so did browsing
    (reply,) = await chat(web_client, text="那怎么申请？")
    assert "具体" in reply["text"]


async def test_a_topic_is_forgotten_after_a_while(web_client: TestClient, services: Services) -> None:
    await chat(web_client, action="m:7")
    await services.inquiries.flush()
    async with services.db.session.begin() as session:
        await session.execute(update(Inquiry).values(created_at=datetime.now(UTC) - TOPIC_TTL - timedelta(minutes=1)))
    (reply,) = await chat(web_client, text="怎么申请")
    assert "具体" in reply["text"]


async def test_an_answer_that_missed_reaches_the_admins_as_an_unanswered_question(
    web_client: TestClient, services: Services
) -> None:
    (answer,) = await chat(web_client, text="送外卖的能交工伤保险吗")
    (miss,) = [action for action, label in actions(answer).items() if label == "不是我要问的"]

    for _ in range(2):  # a second press notes nothing more
        (reply,) = await chat(web_client, action=miss)
        assert "已经记下" in reply["text"] and "就业创业服务站" in reply["text"]
        assert "plans" in actions(reply)

    await services.inquiries.flush()
    async with services.db.session() as session:
        (rejected,) = (await session.scalars(select(Inquiry).where(Inquiry.kind == "rejected"))).all()
    assert (rejected.text, rejected.answered, rejected.measure) == ("送外卖的能交工伤保险吗", False, 6)
    now = datetime.now(UTC)
    report = await demand_report(services.db, Period(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert [q.text for q in report.unanswered] == ["送外卖的能交工伤保险吗"]
    assert {m.measure: m.rejected for m in report.measures if m.rejected} == {6: 1}


async def test_a_question_held_back_as_off_topic_is_logged_with_the_measure_it_was_held_from(
    web_client: TestClient, services: Services
) -> None:
    """Admins see which measures the labelled messages hold questions back from, to catch a wrong hold."""
    question = "How do I open a bank account as a foreigner here?"  # in not_about_the_plan.txt; it matches 1
    (reply,) = await chat(web_client, text=question)
    assert "could not find a measure" in reply["text"] and not [a for a in actions(reply) if a.startswith("m:")]

    await services.inquiries.flush()
    async with services.db.session() as session:
        (logged,) = (await session.scalars(select(Inquiry).where(Inquiry.kind == "question"))).all()
    assert (logged.answered, logged.measure, logged.hit) == (False, 1, None)
    assert logged.results[0]["measure"] == 1 and logged.results[0]["held"] is True
    now = datetime.now(UTC)
    report = await demand_report(services.db, Period(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert [q.text for q in report.unanswered] == [question]
    assert {m.measure: m.held_back for m in report.measures if m.held_back} == {1: 1}
    assert not any(m.question_hits or m.rejected for m in report.measures)


class _FixedOdds:
    """An off-topic model that finds every message equally doubtful."""

    def __init__(self, odds: float) -> None:
        self.odds = odds

    def log_odds(self, text: str, read_as: str | None = None) -> float:
        return self.odds


def test_the_off_topic_model_reads_a_keyword_typed_by_its_sound_as_the_keyword(index: QuestionIndex) -> None:
    typed = "请问威海哪有孚化器"
    read_as = index.analyzer.with_homophones_corrected(normalize(typed))
    assert read_as == "请问威海哪有孵化器"
    assert index.off_topic.log_odds(typed, read_as=read_as) < index.off_topic.log_odds(typed) - 0.2
    assert index.read(typed).off_topic == index.off_topic.log_odds(typed, read_as=read_as)


def test_a_match_that_explains_all_of_a_message_takes_more_doubt_to_hold_back() -> None:
    index = QuestionIndex(load_content(CONTENT))
    index.off_topic = _FixedOdds(1.0)
    explained = index.read("科研人员能离岗创业吗")  # every word of it is measure 12's
    assert explained.answer.hits[0].doc == 12 and explained.hits[0].coverage >= 0.75
    partly = index.read("小区门口梧桐树的毛飘得到处都是，过敏，谁管修剪")  # 小区 is measure 1's, the rest is not
    assert partly.answer.kind == "none" and partly.answer.held_back is not None
    assert partly.answer.held_back.doc == 1 and partly.answer.held_back.coverage < 0.75
    index.off_topic = _FixedOdds(0.0)
    assert index.read("小区门口梧桐树的毛飘得到处都是，过敏，谁管修剪").answer.hits[0].doc == 1


async def test_not_what_i_asked_refers_only_to_the_users_own_questions(
    web_client: TestClient, services: Services
) -> None:
    (answer,) = await chat(web_client, text="送外卖的能交工伤保险吗")
    (miss,) = [action for action, label in actions(answer).items() if label == "不是我要问的"]
    (reply,) = await chat(web_client, session="someone-else", action=miss)
    assert "没有找到" in reply["text"] and "已经记下" not in reply["text"]
    (reply,) = await chat(web_client, action="miss:0123456789")
    assert "没有找到" in reply["text"] and "已经记下" not in reply["text"]
    await chat(web_client, text="明天威海天气怎么样")
    (reply,) = await chat(web_client, action=not_asked_action(question_key("明天威海天气怎么样")))
    assert "已经记下" not in reply["text"], "a question without an answer is in the report already"
    (reply,) = await chat(web_client, action="miss:not-a-key")
    assert "过期" in reply["text"]
    await services.inquiries.flush()
    async with services.db.session() as session:
        assert (await session.scalars(select(Inquiry).where(Inquiry.kind == "rejected"))).all() == []


async def test_not_what_i_asked_answers_in_the_language_of_the_question(web_client: TestClient) -> None:
    (answer,) = await chat(web_client, text="How do I get a guaranteed startup loan?")
    (miss,) = [action for action, label in actions(answer).items() if label == "Not what I asked"]
    (reply,) = await chat(web_client, action=miss)
    assert reply["text"].startswith("Thank you for telling me.")


async def test_questions_work_on_telegram(telegram_bot: FakeTelegram) -> None:
    (reply,) = await telegram_bot.say(777, "大学生创业能参加什么比赛")
    assert "丰富多元创业赛事活动" in reply.params["text"]


def searchable_copy(tmp_path: Path) -> tuple[Path, ContentStore]:
    """A copy of the content an admin can edit, loaded with its question index."""
    folder = tmp_path / "content"
    shutil.copytree(CONTENT, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    store = ContentStore(folder)
    store.add_view("search", QuestionIndex)
    store.load()
    return folder, store


async def test_a_reload_forgets_the_words_of_the_old_content(tmp_path: Path) -> None:
    """Each index has its own dictionary: a keyword an admin took out is no longer a word, and the word
    weights of the new index are those of a fresh start, however many reloads came before."""
    folder, store = searchable_copy(tmp_path)
    path = folder / "measures" / "05.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  keywords:\n    zh: [", "  keywords:\n    zh: [海参养殖, ", 1), encoding="utf-8")
    assert await store.reload() == []
    assert store.snapshot.views["search"].analyzer.is_word("海参养殖")
    path.write_text(text, encoding="utf-8")
    assert await store.reload() == []
    reloaded = store.snapshot.views["search"].analyzer
    assert not reloaded.is_word("海参养殖")
    fresh = QuestionIndex(load_content(folder)).analyzer
    assert reloaded.information("地方") == fresh.information("地方")


async def test_admins_teach_the_assistant_what_the_plan_does_not_answer(tmp_path: Path) -> None:
    """A few labelled messages about nail-art courses keep alike questions from the training measure, and
    a founder's question with the same words about the plan still gets its measure. (How many it takes
    depends on everything else labelled.)"""
    folder, store = searchable_copy(tmp_path)
    assert store.snapshot.views["search"].answer("学美甲去哪报培训班").kind == "measure"
    with (folder / "messages" / "not_about_the_plan.txt").open("a", encoding="utf-8") as labelled:
        labelled.write("美甲培训班学费多少\n想学美甲，哪有靠谱的美甲班\n美甲美睫培训去哪学\n学美甲要报多久的班\n")
    assert await store.reload() == []
    search = store.snapshot.views["search"]
    assert search.answer("学美甲去哪报培训班").kind == "none"
    assert search.answer("美甲培训哪里好").kind == "none"
    assert search.answer("开美甲店能贷款吗").hits[0].doc == 7
    assert search.answer("创业培训班在哪报名").hits[0].doc == 19

    with (folder / "messages" / "about_the_plan.txt").open("a", encoding="utf-8") as labelled:
        labelled.write("学美甲 去哪报培训班！\n")  # the admin's own label decides for that message
    assert await store.reload() == []
    assert store.snapshot.views["search"].answer("学美甲去哪报培训班").hits[0].doc == 19


def test_admins_see_how_a_question_was_read(capsys: pytest.CaptureFixture[str]) -> None:
    messages = ["创业板开户需要什么条件", "创业担保贷款怎么申请", "How do I open a bank account as a foreigner here?"]
    messages.append("烟台大学生创业有啥补贴")
    assert main(["content", "explain", "--path", str(CONTENT), *messages]) == 0
    stock, loan, bank, elsewhere = capsys.readouterr().out.strip().split("\n\n")
    assert "plan-wide not_about word (synonyms.yaml): 创业板" in stock
    assert "another place (other_places in synonyms.yaml): 烟台: no measure" in elsewhere
    assert stock.endswith("answer: none")
    assert "match: measure 7 强化金融服务助力创业" in loan
    assert "创业担保贷款 (" in loan
    assert "labelled in messages/not_about_the_plan.txt: held back" in bank
    assert "match: measure 1" in bank


async def test_the_index_is_rebuilt_when_content_reloads(tmp_path: Path) -> None:
    folder, store = searchable_copy(tmp_path)
    assert store.snapshot.views["search"].answer("海参养殖").kind == "none"
    path = folder / "measures" / "05.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  keywords:\n    zh: [", "  keywords:\n    zh: [海参养殖, ", 1), encoding="utf-8")
    assert await store.reload() == []
    answer = store.snapshot.views["search"].answer("海参养殖")
    assert answer.kind == "measure"
    assert answer.hits[0].doc == 5


PERSONAL_LOANS = [
    "买车贷款 哪家银行利息低",
    "公积金贷款买房 最多能贷多少",  # the targets' loan figure is no answer either
    "Which bank has the cheapest mortgage?",
    "집 살 때 은행 대출 받을 수 있어요?",
]


@pytest.mark.parametrize(
    ("message", "measure"),
    [
        ("烟台大学生创业有啥补贴", None),  # another city's policy: this plan does not set it
        ("What's the startup subsidy in Qingdao for college graduates?", None),
        ("济南的创业担保贷款 在哪申请", None),
        ("刚从上海回来想在老家开个民宿，创业担保贷款怎么申请？", 7),  # where the founder comes from
        ("在青岛和威海之间选，威海的创业担保贷款怎么申请", 7),  # Weihai is named too
    ],
)
def test_a_question_about_another_city_gets_no_measure(message: str, measure: int | None, index: QuestionIndex) -> None:
    answer = index.answer(message)
    if measure is None:
        assert answer.kind == "none" and not answer.hits
    else:
        assert measure in [hit.doc for hit in answer.hits]


@pytest.mark.parametrize("message", PERSONAL_LOANS)
async def test_a_personal_loan_is_not_answered_with_the_startup_loan(
    web_client: TestClient, services: Services, message: str
) -> None:
    (reply,) = await chat(web_client, text=message)
    assert not [a for a in actions(reply) if a.startswith("m:")]
    assert "m:7" not in reply["text"] and "第7条" not in reply["text"]
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry).where(Inquiry.kind == "question"))).one()
    assert logged.answered is False


async def test_a_startup_loan_question_still_finds_the_loan_measure(web_client: TestClient) -> None:
    (reply,) = await chat(web_client, text="开店缺钱 能贷款吗 哪家银行")
    assert "第7条" in reply["text"] or "m:7" in actions(reply)


async def test_admins_mark_what_a_measure_is_not_about_in_its_file(tmp_path: Path) -> None:
    folder, store = searchable_copy(tmp_path)
    assert [h.doc for h in store.snapshot.views["search"].answer("创业大赛的奖杯怎么做").hits][:1] == [24]
    path = folder / "measures" / "24.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  not_about:\n    zh: [", "  not_about:\n    zh: [奖杯, ", 1))
    assert await store.reload() == []
    assert 24 not in [h.doc for h in store.snapshot.views["search"].answer("创业大赛的奖杯怎么做").hits]


async def test_a_word_of_another_field_keeps_every_measure_out(
    web_client: TestClient, services: Services, tmp_path: Path
) -> None:
    """创业板 is a stock board: a message about it gets an honest no, logged as unanswered."""
    (reply,) = await chat(web_client, text="创业板开户需要什么条件")
    assert "没有找到" in reply["text"]
    assert not [a for a in actions(reply) if a.startswith("m:")]
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry).where(Inquiry.kind == "question"))).one()
    assert logged.answered is False

    folder, store = searchable_copy(tmp_path)
    path = folder / "synonyms.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("创业板, ", ""), encoding="utf-8")
    for labelled in (folder / "messages").glob("*.txt"):
        labelled.write_text("", encoding="utf-8")
    assert await store.reload() == []
    assert store.snapshot.views["search"].answer("创业板开户需要什么条件").hits, "the admins' word did it"


@pytest.mark.parametrize(
    ("question", "measure"),
    [
        ("전정특신(专精特新) 기업 인증 받으면 뭐가 좋아요?", 21),  # 좋아요, 받으면: known stems with endings
        ("俺们几家做渔具的小厂 想一块申报省级特色产业集群", 5),  # 俺们, 几家, 一块 say nothing about the topic
        ("How do I find a VC in Weihai?", 9),  # stopwords-iso lists "vc": the content's keywords win
        ("창업에 실패하면 지원해 주는 제도가 있나요?", 10),  # 주는 ("that gives") helps a verb, names nothing
        ("厂里裁员我下岗了 想学学怎么开个店 有培训没", 19),  # 学学: "learn a little", a verb said twice
    ],
)
def test_endings_and_function_words_do_not_hide_what_a_question_is_about(
    question: str, measure: int, index: QuestionIndex
) -> None:
    answer = index.answer(question)
    assert answer.kind in ("measure", "list")
    assert answer.hits[0].doc == measure
