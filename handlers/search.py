"""Answering free-text questions: which measure (or the targets) a founder's message is about.

Texts are normalised (full-width to half-width, traditional to simplified Chinese, lower
case), segmented (jieba for Chinese, character bigrams for Chinese and Korean, words for
English), mapped through the admins' synonym groups, and ranked with BM25 over weighted
fields of each measure in every language. A known word typed with one wrong character of the
same pinyin (带款 for 贷款) is corrected, and pinyin bigrams catch the rest of such typos. A match
must explain enough of the message: its words are weighed by how specific they are to the plan
and how rare in everyday language (jieba's and wordfreq's frequencies; a Korean word by its
stem; stopwords-iso's function words and the admins' asking words, 申请 or apply, not at all; English
function words, open or into, do not score a match either),
so an off-topic message that happens to share a word with a measure is not answered with it.
Where sharing words is not enough to tell (a car loan is not a startup loan), the measure's
`not_about` words keep it out, and the plan-wide `not_about` words (创业板, a stock board) keep
every measure out. With 25 documents a hand-written BM25 is a few lines, and it can say which
words made a measure match, which ranking libraries do not.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import unicodedata
import zlib
from array import array
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

from content.loader import Content
from content.schema import LANGS, Measure

# Pinyin is used only to match homophone typos, reading each character on its own is enough; the
# phrase dictionary (for polyphones in context) would cost about 50 MB in every worker.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "true")

DICTIONARY = Path(__file__).resolve().parent / "data" / "jieba_top50k.txt"  # see data/README.md
TARGETS = 0  # the document id of the city targets; measures use their number
K1, B = 1.2, 0.6
PINYIN_WEIGHT = 0.35
PINYIN = "py:"  # the prefix of a pinyin bigram's key
BIGRAM_WEIGHT = 0.5
MIN_SCORE = 2.8
# The share of what a message says that a match must explain to be an answer, by the match's score: a weak
# match more than half, a strong one 30%, a very strong one (several of a measure's own words) a fifth, and
# one stronger still 15% (a long story around a measure's own term: "……想往专精特新走，第一步该干啥").
COVERAGE_NEEDED = ((20.0, 0.15), (15.0, 0.2), (7.5, 0.3), (0.0, 0.52))
CLAUSE_WORDS = 2  # a clause of a long message with this many meaningful words may be explained on its own
UBIQUITOUS_IDF = 0.3
# A word no measure uses weighs by how rare it is in everyday language (its information content,
# -ln of its frequency: jieba's dictionary for Chinese, wordfreq's lists for English and Korean):
# rare words (奶茶, divorce) say what the message is about, common ones (地方, low) barely. Below
# COMMON_INFO a word weighs UNKNOWN_FLOOR of the most specific word, from RARE_INFO on all of it;
# a word the frequency lists do not know weighs all.
COMMON_INFO, RARE_INFO, UNKNOWN_FLOOR = 7.0, 11.0, 0.2
QUANTITY_BOOST = 2.0  # "how many...?" asks about the plan's figures: the targets, or a measure's own figures
FIGURE_WORD_IDF = 2.0  # in at most three documents
QUANTITY_WORDS = ("多少", "几", "how many", "how much", "몇", "얼마")
# ...but how much one founder can get (能贷多少, 最多能拿几个, how much can I borrow; 奖金多少, the prize, the
# interest, the limit) is a measure's question.
_OWN_AMOUNT = re.compile(
    r"(?:能|可以|最多|最高|可|奖金|补贴|利息|利率|额度)[^\s,.!?，。！？]{0,3}(?:多少|几)|how much can"
    r"|how much (?:is|are) the (?:prize|award|subsid|interest|limit)"
    r"|(?:상금|보조금|이자|금리|한도).{0,4}얼마|얼마나.{0,6}수"
)
CONFIDENT_SCORE = 6.0
# A message whose specific words weigh less than this together, with no confident match, names too little to
# answer ("I want to start a business": start 0.7, business 0.3): the founder is asked what they need.
VAGUE_WEIGHT = 1.5
CONFIDENT_RATIO = 1.6
LIST_RATIO = 0.45
SMALL_TALK_PRIORITY = ("identity", "greeting", "thanks", "goodbye")
# A message whose log-odds of being about something else than the plan, by the admins' labelled messages,
# exceed these gets no measure: a match that explains most of the message needs more evidence against it
# (share of the message its best match explains at least, log-odds). Chosen on the 25 development sets,
# each measured with its own messages left out: a single 1.5 left 22 of 1,737 off-topic messages with a
# measure, a single 0.5 13 for 4 lost questions ("SYB培训还有吗"); this table 14 for none (a share of 0.7
# does the same; 0.8 holds back one more off-topic message and one question).
OFF_TOPIC_ODDS = ((0.75, 1.5), (0.0, 0.5))
NAIVE_BAYES_ALPHA = 0.5
OFF_TOPIC_BUCKETS = 1 << 19  # 2 MB of weights; fewer buckets, more features share one (measured: 2^18 lost a little)
FIELD_WEIGHTS = {"title": 3.0, "keywords": 3.0, "questions": 2.0, "text": 1.0}

_RUNS = re.compile(
    r"(?P<han>[\u3400-\u9fff]+)|(?P<hangul>[\uac00-\ud7a3]+)|(?P<latin>[a-z0-9](?:[a-z0-9+]|'(?=[a-z]))*)"
)
# Keywords of several English or Korean words (startup street, 창업 교육): Chinese keywords are words to jieba.
_PHRASE_SCRIPTS = re.compile(r"[a-z0-9' \uac00-\ud7a3-]+")
_AMERICAN = re.compile(r"iz(e|es|ed|ing|ation|ations)$")  # specialized -> specialised, as the content writes
# Opening a shop of some kind (开个早餐店, 开家烧烤馆): the kind is the founder's situation, the shop is the topic.
_OPENING_A_SHOP = re.compile(r"开(?:了|一)?[个家间]?[^开个家间去到在的了和跟发放展会]{1,4}?[店馆铺]")
SHOP = "开店"
_FILLER = re.compile(r"[\s\W_啊呀吧呢吗哦嗯哈啦嘛么~～]+")
# A number, with its unit (二十年, 十几年, 35岁, 10万): it tells the founder's situation, not what the message is
# about. A year of the plan (2026) is left alone: it points at the targets.
_NUMBER = re.compile(
    r"(?!20\d\d)[\d零一二三四五六七八九十百千万亿两半]+[几多来余]?[年岁个块元万人家天月次号周条名位批些套台辆间张份种样回趟遍多来余]*"
)
# Where a message's clauses part: punctuation, or a space between Chinese characters (the phone chat comma).
_CLAUSE_BREAKS = re.compile(r"[,.!?;，。！？；、\n]|(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ACCENTED = re.compile(r"[\u00c0-\u024f]")  # Latin-1 and Latin Extended letters; not Hangul, which NFKD splits
_CJK = re.compile(r"[\u3400-\u9fff]")
_ONLY_HAN = re.compile(r"[\u3400-\u9fff]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_HANGUL_WORDS = re.compile(r"[\uac00-\ud7a3]+")
_LATIN = re.compile(r"[A-Za-z]")

ZH_STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 呗 我 我们 俺 你 你们 您 他 她 它 是 在 有 和 与 或 就 都 也 还 要 想 能 会 可以 怎么 怎么样 "
    "怎么办 怎样 什么 啥 咋 咋样 咋整 哪里 哪儿 哪 哪有 在哪 在哪里 去哪 去哪里 上哪 如何 一下 一点 一个 个 这 那 这个 "
    "那个 这种 那种 这些 那些 这样 那样 这么 那么 请问 请 问 可 不 没有 没 对 给 让 把 被 么 嘛 如果 因为 所以 "
    "但是 然后 现在 已经 自己 一些 有没有 "
    "能不能 可不可以 是不是 能否 是否 可否 还会 还能 推荐 知道 告诉 帮忙 帮我 觉得 应该 需要 一般 算不算 不算 算 "
    "行不行 要不要 用不用 够不够 对不对 好不好 管不管 给不给 几条 几个 几家 几种 哪几个 哪几条 哪几种 "
    "学学 看看 问问 聊聊 试试 讲讲 想想 找找 查查 说说 谈谈 瞧瞧 唠唠 听听 了解了解 咨询咨询 打听打听".split()
)
BIGRAM_STOP_CHARS = frozenset("的了吗呢吧啊呀呗么嘛哦啦我你他她它俺您这那个是在有想要能会啥咋怎")
# Characters that stand alone in almost any sentence: a keyword is never mistyped as one of them.
_FUNCTION_CHARS = BIGRAM_STOP_CHARS | {word for word in ZH_STOPWORDS if len(word) == 1} | set("点些着过")
EN_STOPWORDS = frozenset(
    "a an the i im i'm me my we our you your is are am be been to of in on for at by with from and or "
    "do does did can could would should will how what where which who whom when why is there any some "
    "it this that these those get got have has need want like about please just if as so not no "
    "here near best tell know way much many really".split()
)
KO_STOPWORDS = frozenset(
    "있어요 있나요 있어 있는 있을까요 있습니까 어디 어디서 어디에 어떻게 해요 하나요 되나요 돼요 수 거 것 데 "
    "같은 좀 제가 저는 저 우리 뭐 무엇 언제 알려주세요 알려 주세요 싶어요 싶은데 하고 받고 받을 할 하면 "
    "있다 없나요 없어요 그 이 저희 그냥 혹시 정말 너무 하는데 있는데 인데 근데 그런데 했는데 "
    "받으려면 받으면 받아요 받나요 해야 하려면 되려면 주는 주나요 줄 주면 줘요 주시나요 주실".split()
)
KO_PARTICLES = tuple(
    "에서 으로 에게 까지 부터 이나 이랑 한테 처럼 보다 은 는 이 가 을 를 에 의 도 로 와 과 랑 만".split()
)
# Verb endings after a noun (실패하면, 소개받을 수): the noun is what the message is about. Longest first.
KO_ENDINGS = tuple(
    sorted(
        "하면 하고 해서 하는 하려면 하려고 할 한 했어요 했는데 하다 합니다 해요 하나요 해야 어요 아요 "
        "받을 받고 받는 받으려면 받으면 받다 받아요 받나요 되면 되는 된 되나요 돼요".split(),
        key=len,
        reverse=True,
    )
)


@cache
def _converter():  # -> opencc.OpenCC
    import opencc

    return opencc.OpenCC("t2s")


@cache
def _dictionary():  # -> jieba.Tokenizer
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer(dictionary=str(DICTIONARY))
    tokenizer.initialize()
    return tokenizer


def _jieba():  # -> jieba.Tokenizer
    """A segmenter of its own for one index: the content's keywords are added to it, and a reload must start
    from the plain dictionary (add_word also raises the dictionary's total, which every word weight uses)."""
    import jieba

    base = _dictionary()
    tokenizer = jieba.Tokenizer(dictionary=str(DICTIONARY))
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = dict(base.FREQ), base.total, True
    return tokenizer


@cache
def _function_words() -> frozenset[str]:
    """stopwords-iso's lists for the three languages: words that say nothing about what a message is about.

    Read from the package's data file: importing the package keeps all its 50-odd languages in memory."""
    import json
    from importlib.util import find_spec

    lists = json.loads((Path(find_spec("stopwordsiso").origin).parent / "stopwords-iso.json").read_text("utf-8"))
    return frozenset(word for lang in ("zh", "en", "ko") for word in lists[lang])


@cache
def _word_frequencies(lang: str) -> dict[str, float]:
    """wordfreq's 'small' list for `lang` (about 30,000 words, 4 MB): word -> share of all words."""
    from wordfreq import get_frequency_dict

    return get_frequency_dict(lang, wordlist="small")


# Front and back nasals, which many typists (and speakers in Shandong) do not tell apart: 专精特兴 for 专精特新.
_BACK_NASAL = re.compile(r"(?<=[ei])ng$")


@lru_cache(maxsize=8192)  # the content's own texts come back on every index rebuild
def _pinyin(text: str) -> tuple[str, ...]:
    from pypinyin import lazy_pinyin

    return tuple(_BACK_NASAL.sub("n", sound) for sound in lazy_pinyin(text))


def normalize(text: str) -> str:
    """Full-width to half-width, traditional to simplified, Latin letters without accents (café), lower case,
    single spaces."""
    text = _SURROGATES.sub("", unicodedata.normalize("NFKC", text))
    text = _ACCENTED.sub(_unaccented, text)
    if _CJK.search(text):
        text = _converter().convert(text)
    return " ".join(text.lower().split())


def _unaccented(letter: re.Match[str]) -> str:
    return unicodedata.normalize("NFKD", letter[0])[0]


def detect_lang(text: str) -> str | None:
    """The language a message is written in, when it is clear: Hangul, Chinese characters or Latin words."""
    if len(_HANGUL.findall(text)) >= 2:
        return "ko"
    if _CJK.search(text):
        return "zh"
    if len(_LATIN.findall(text)) >= 4:
        return "en"
    return None


def _phrase_key(phrase: str) -> str:
    return " ".join(_stem(word) for word in phrase.split())


def _stem(word: str) -> str:
    word = _AMERICAN.sub(r"is\1", word)
    if word.endswith(("ss", "us", "is")):
        return word
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


@dataclass(frozen=True)
class Term:
    """A token, how much it counts, and where it stands in the normalised text.

    Word terms (weight 1) say what the message is about; character bigrams and pinyin
    bigrams (lower weights) catch typos and words the segmenter does not know.
    """

    key: str
    weight: float
    start: int
    end: int

    @property
    def is_word(self) -> bool:
        return self.weight == 1.0


class Analyzer:
    """Turns text into weighted terms, the same way for measures and for questions."""

    def __init__(
        self, synonyms: dict[str, str], words: Iterable[str], bigrams: bool = True, pinyin: bool = True
    ) -> None:
        self.synonyms = synonyms
        self.bigrams = bigrams
        self.pinyin = pinyin
        self.tokenizer = _jieba()
        self.log_total = math.log(self.tokenizer.total)
        self.everyday = {lang: _word_frequencies(lang) for lang in ("en", "ko")}  # loaded now, not mid-reply
        sounds: dict[tuple[str, ...], set[str]] = defaultdict(set)
        words = set(words)
        # Korean nouns the content uses, kept whole where they end like a particle (웨이하이 is not 웨이하 + 이).
        self.korean = {part for word in words for part in _HANGUL_WORDS.findall(word)}
        for word in words:
            if _CJK.search(word):
                self.tokenizer.add_word(word, freq=2000)
            if len(word) > 1 and _ONLY_HAN.fullmatch(word):
                sounds[_pinyin(word)].add(word)
        self.homophones = {sound: found.pop() for sound, found in sounds.items() if len(found) == 1}
        # Four-character keywords by each of their three-character shapes (揭榜?帅 -> 揭榜挂帅), for a
        # character mistyped by its looks (挂师 for 挂帅) rather than its sound.
        shapes: dict[str, set[str]] = defaultdict(set)
        for word in words:
            if len(word) == 4 and _ONLY_HAN.fullmatch(word) and not _FUNCTION_CHARS.intersection(word):
                for i in range(4):
                    shapes[word[:i] + "?" + word[i + 1 :]].add(word)
        self.shapes = {shape: found.pop() for shape, found in shapes.items() if len(found) == 1}
        self.phrases = [w for w in words if " " in w and _PHRASE_SCRIPTS.fullmatch(w)]

    def analyze(self, text: str) -> tuple[str, list[Term]]:
        """The normalised text and its terms."""
        text = self._replace_phrases(normalize(text))
        terms: list[Term] = []
        for run in _RUNS.finditer(text):
            if run["han"]:
                terms += self._chinese(run["han"], run.start())
            elif run["hangul"]:
                terms += self._korean(run["hangul"], run.start())
            else:
                terms += self._latin(run["latin"], run.start())
        for phrase in self.phrases:
            # A keyword of several words is a term of its own: "startup streets" says more than its words.
            # (Tested as a substring first: one pattern of all the phrases would be several times slower.)
            if phrase in text:
                terms += [Term(_phrase_key(m[0]), 1.0, m.start(), m.end()) for m in _phrase(phrase).finditer(text)]
        return text, terms

    def _replace_phrases(self, text: str) -> str:
        """Multi-word synonyms ('thank you', '돈 빌리기') become their group's word before segmenting."""
        for phrase, canonical in self.synonyms.items():
            if " " in phrase and phrase in text:
                text = text.replace(phrase, canonical)
        return text

    def _canonical(self, word: str) -> str:
        return self.synonyms.get(word, word)

    def with_homophones_corrected(self, normalized: str) -> str:
        """The normalised text with its keywords typed by their sound corrected (孚化器 -> 孵化器)."""
        return _ONLY_HAN.sub(lambda run: self._correct_homophones(run[0], _pinyin(run[0])), normalized)

    def _chinese(self, run: str, offset: int) -> Iterator[Term]:
        sounds = _pinyin(run)
        run = self._correct_shapes(self._correct_homophones(run, sounds))
        for word, start, end in self.tokenizer.tokenize(run, mode="search", HMM=False):
            if word not in ZH_STOPWORDS and (len(word) > 1 or word in self.synonyms):
                yield Term(self._canonical(word), 1.0, offset + start, offset + end)
        for shop in _OPENING_A_SHOP.finditer(run):  # its words are parts of it, and say nothing more
            yield Term(self._canonical(SHOP), 1.0, offset + shop.start(), offset + shop.end())
        for i, (a, b) in enumerate(pairwise(run)):
            if a in BIGRAM_STOP_CHARS or b in BIGRAM_STOP_CHARS:
                continue
            if self.bigrams:
                yield Term(a + b, BIGRAM_WEIGHT, offset + i, offset + i + 2)
            if self.pinyin:
                yield Term(f"{PINYIN}{sounds[i]}|{sounds[i + 1]}", PINYIN_WEIGHT, offset + i, offset + i + 2)

    def _correct_homophones(self, run: str, sounds: tuple[str, ...]) -> str:
        """A known word typed with one wrong character of the same pinyin (带款 for 贷款, 孚化器 for
        孵化器, the commonest slip with a pinyin keyboard) becomes the word, unless what was typed is a
        word itself. Same length, so positions in the text stay valid."""
        chars = list(run)
        for size in (4, 3, 2):
            for i in range(len(chars) - size + 1):
                word = self.homophones.get(sounds[i : i + size])
                typed = "".join(chars[i : i + size])
                if word and sum(a != b for a, b in zip(word, typed, strict=True)) == 1 and not self.is_word(typed):
                    chars[i : i + size] = word
        return "".join(chars)

    def _correct_shapes(self, run: str) -> str:
        """A four-character keyword typed with one other character that the segmenter leaves on its own
        (揭榜挂师 -> 揭榜挂帅; not 创业大学, whose 学 is part of 大学, nor 的小企业, whose 的 is a function
        character and 小企业 a word)."""
        if len(run) < 4 or not self.shapes:
            return run
        alone: set[int] | None = None  # segmented only when a keyword's shape is found: most runs have none
        chars = list(run)
        for i in range(len(chars) - 3):
            for j in range(4):
                word = self.shapes.get("".join(chars[i : i + j]) + "?" + "".join(chars[i + j + 1 : i + 4]))
                if not word or word[j] == chars[i + j] or chars[i + j] in _FUNCTION_CHARS:
                    continue
                if alone is None:
                    alone = {at for typed, at, _end in self.tokenizer.tokenize(run, HMM=False) if len(typed) == 1}
                if i + j not in alone:
                    continue
                if j in (0, 3) and self.is_word("".join(chars[i + 1 : i + 4] if j == 0 else chars[i : i + 3])):
                    continue
                chars[i : i + 4] = word
        return "".join(chars)

    def unknown_words(self, text: str) -> bool:
        """Whether the text has Chinese the segmenter knows no word for (two characters or more in a row that
        it can only split into single characters: 低保): it may be about something, in words the assistant
        does not know."""
        for run in _ONLY_HAN.findall(text):
            alone = 0
            for word, _start, _end in self.tokenizer.tokenize(run, HMM=False):
                alone = alone + 1 if len(word) == 1 and word not in BIGRAM_STOP_CHARS else 0
                if alone >= 2:
                    return True
        return False

    def inside_words(self, text: str) -> set[int]:
        """The places in `text` that fall inside a Chinese word (between 早 and 餐 in 早餐店)."""
        inside: set[int] = set()
        for run in _RUNS.finditer(text):
            if run["han"]:
                for _word, start, end in self.tokenizer.tokenize(run[0], HMM=False):
                    inside.update(range(run.start() + start + 1, run.start() + end))
        return inside

    def is_word(self, text: str) -> bool:
        """Whether the segmenter's dictionary has `text` as a word (it also keeps prefixes, at frequency 0)."""
        return self.tokenizer.FREQ.get(text, 0) > 0

    def information(self, word: str) -> float | None:
        """How surprising a word is in everyday text (-ln of its frequency), if the frequency lists know it."""
        if _CJK.search(word):
            frequency = self.tokenizer.FREQ.get(word, 0)
            return self.log_total - math.log(frequency) if frequency > 0 else None
        if _HANGUL.search(word):
            # Korean glues endings to a stem (얼마예요, 금액이요): the longest known beginning is the word.
            # A one-syllable beginning counts only before a particle or ending (시에서): most syllables are
            # words on their own, so 거 says nothing about 거류증.
            shortest = 1 if word[1:] in KO_PARTICLES or word[1:] in KO_ENDINGS else 2
            known = (self.everyday["ko"].get(word[:end]) for end in range(len(word), min(shortest, len(word)) - 1, -1))
            share = next((share for share in known if share), None)
        else:
            share = self.everyday["en"].get(word)
        return -math.log(share) if share else None

    def _korean(self, run: str, offset: int) -> Iterator[Term]:
        word = run
        for suffix in KO_ENDINGS if run in self.korean else (*KO_ENDINGS, *KO_PARTICLES):
            # A one-syllable noun keeps its place before a longer particle (시에서 -> 시), not before 이/가 (나이).
            if len(word) - len(suffix) >= (2 if len(suffix) == 1 else 1) and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        if run in KO_STOPWORDS or word in KO_STOPWORDS:
            return
        yield Term(self._canonical(word), 1.0, offset, offset + len(run))
        if self.bigrams:
            for i, (a, b) in enumerate(pairwise(word)):
                yield Term(a + b, BIGRAM_WEIGHT, offset + i, offset + i + 2)

    def _latin(self, word: str, offset: int) -> Iterator[Term]:
        if word in EN_STOPWORDS:
            return
        word = word.removesuffix("'s")  # Shandong's -> shandong
        canonical = self._canonical(word)
        key = self._canonical(_stem(canonical)) if canonical == word else canonical
        yield Term(key, 1.0, offset, offset + len(word))


@dataclass
class Hit:
    doc: int
    score: float
    matched: list[str] = field(default_factory=list)
    coverage: float = 1.0


@dataclass(frozen=True)
class Reading:
    """An answer and what it was decided on: the words that say what the message is about (with their
    weight), the best matches, and how much the message is like those labelled not about the plan."""

    answer: Answer
    words: list[tuple[str, float]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    off_topic: float | None = None


@dataclass(frozen=True)
class Answer:
    kind: Literal["measure", "list", "targets", "smalltalk", "vague", "none"]
    hits: list[Hit] = field(default_factory=list)
    smalltalk: str | None = None
    lang: str | None = None
    asks: bool = False  # a vague message with an asking word ("怎么申请"): about whatever was just shown
    # The best match of a message answered "none" because it looks like those labelled not about the plan.
    held_back: Hit | None = None


class QuestionIndex:
    """BM25 over every measure (and the targets), in all three languages at once."""

    def __init__(self, content: Content, bigrams: bool = True, pinyin: bool = True) -> None:
        self.content = content
        synonyms = {}
        for group in content.synonyms.groups:
            canonical = normalize(group[0])
            for word in group:
                synonyms[normalize(word)] = canonical
        words = set(synonyms)
        for measure in content.measures.values():
            for lang in LANGS:
                words.update(normalize(k) for k in measure.search.keywords.get(lang))
        self.analyzer = Analyzer(synonyms, words, bigrams=bigrams, pinyin=pinyin)
        self.topic_words = words  # the admins' keywords and synonyms (each group's first word among them)
        self.smalltalk_kinds = {
            normalize(phrase): kind for kind in SMALL_TALK_PRIORITY for phrase in getattr(content.smalltalk, kind)
        }
        self.smalltalk = _any_phrase(self.smalltalk_kinds, plurals=False)
        filler = [normalize(word) for word in content.smalltalk.filler]
        self.smalltalk_filler = _any_phrase(filler) if filler else None
        self.docs: dict[int, Counter[str]] = {}
        for measure in content.measures.values():
            self.docs[measure.number] = self._document(self._fields_of(measure))
        self.docs[TARGETS] = self._document(self._target_fields())
        not_about = {
            measure.number: _any_phrase_or_none(p for lang in LANGS for p in measure.search.not_about.get(lang))
            for measure in content.measures.values()
        }
        self.not_about = {number: pattern for number, pattern in not_about.items() if pattern}
        self.not_about_plan = _any_phrase_or_none(content.synonyms.not_about)
        self.other_places = _any_phrase_or_none(content.synonyms.other_places)
        self.weihai_places = _any_phrase_or_none(content.synonyms.weihai_places)
        self.coming_from = _any_phrase_or_none(content.synonyms.coming_from)
        self.avg_length = sum(sum(d.values()) for d in self.docs.values()) / len(self.docs)
        frequency: Counter[str] = Counter()
        for doc in self.docs.values():
            frequency.update(doc.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self.max_idf = max(self.idf.values())
        self.lengths = {doc_id: sum(doc.values()) for doc_id, doc in self.docs.items()}
        self.function_words = _function_words() - words  # the admins' keywords and synonyms (VC, 借) say something
        # The specific words of a measure's own figures (青年人才 of "每年吸引青年人才不少于2万人"): "how many"
        # questions about them ask the measure, as questions about the city's figures ask the targets.
        self.figure_words = {
            measure.number: {
                t.key
                for figure in measure.figures
                for lang in LANGS
                for t in self.analyzer.analyze(figure.label.get(lang))[1]
                if t.is_word
                and len(t.key) > 1
                and t.key not in self.docs[TARGETS]
                and t.key not in self.function_words
                and self.idf.get(t.key, 0.0) >= FIGURE_WORD_IDF
            }
            for measure in content.measures.values()
        }
        self.asking = self._word_keys(content.synonyms.asking)
        self.situation = self._word_keys(content.synonyms.situation)
        about = [
            q for measure in content.measures.values() for lang in LANGS for q in measure.search.questions.get(lang)
        ]
        about += [q for lang in LANGS for q in content.targets.search.questions.get(lang)]
        self.off_topic = _off_topic_model(
            tuple(about + content.messages.about_the_plan), tuple(content.messages.not_about_the_plan)
        )

    def _word_keys(self, words: Iterable[str]) -> set[str]:
        return {t.key for word in words for t in self.analyzer.analyze(word)[1] if t.is_word}

    @staticmethod
    def _fields_of(measure: Measure) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = defaultdict(list)
        for lang in LANGS:
            fields["title"].append(measure.title.get(lang))
            fields["keywords"] += measure.search.keywords.get(lang)
            fields["questions"] += measure.search.questions.get(lang)
            fields["text"] += [measure.summary.get(lang), measure.audience.get(lang)]
            fields["text"] += [offer.get(lang) for offer in measure.offers]
        return fields

    def _target_fields(self) -> dict[str, list[str]]:
        targets = self.content.targets
        fields: dict[str, list[str]] = defaultdict(list)
        for lang in LANGS:
            fields["title"].append(targets.title.get(lang))
            fields["keywords"] += targets.search.keywords.get(lang)
            fields["questions"] += targets.search.questions.get(lang)
            fields["text"] += [figure.label.get(lang) for figure in targets.targets]
        return fields

    def _document(self, fields: dict[str, list[str]]) -> Counter[str]:
        doc: Counter[str] = Counter()
        for name, texts in fields.items():
            for text in texts:
                for term in self.analyzer.analyze(text)[1]:
                    doc[term.key] += FIELD_WEIGHTS[name] * term.weight
        return doc

    def search(self, text: str, limit: int = 5) -> list[Hit]:
        """Documents ranked by relevance to `text`, best first, with the words that matched and
        how much of the message they cover."""
        normalized, terms = self.analyzer.analyze(text)
        if self._not_about_the_plan(normalized):
            return []
        return self._search(normalized, terms, self._meaningful_words(normalized, terms), limit)

    def _search(
        self, normalized: str, terms: list[Term], meaningful: list[tuple[range, float]], limit: int = 5
    ) -> list[Hit]:
        query: dict[str, Term] = {}
        places: dict[str, set[int]] = defaultdict(set)  # every place a key stands, for a word said twice
        # The places where a pinyin bigram lies inside a word (it starts there and the word goes on after it).
        inside_words = {at for t in terms if t.is_word for at in range(t.start, t.end - 1)}
        for term in terms:
            if _LATIN.match(normalized[term.start]) and normalized[term.start : term.end] in self.function_words:
                continue
            if term.key in self.idf and (term.key not in query or query[term.key].weight < term.weight):
                query[term.key] = term
            # A pinyin bigram explains a typo inside a word, not a sound shared across two (li|zhao of 哪里招聘).
            if not term.key.startswith(PINYIN) or term.start in inside_words:
                places[term.key].update(range(term.start, term.end))
        # A long message tells a story before it asks ("厂子裁员了……听说有贴息的创业贷款，俺能贷吗"): a match
        # may explain the whole message or one of its clauses that says enough on its own.
        breaks = [0, *(b.start() for b in _CLAUSE_BREAKS.finditer(normalized)), len(normalized)]
        clauses = [
            words
            for start, end in pairwise(breaks)
            if len(words := [(s, w) for s, w in meaningful if start <= s.start and s.stop <= end]) >= CLAUSE_WORDS
        ]
        parts = [meaningful, *clauses]
        hits = []
        places_explained: dict[int, set[int]] = {}
        excluded = {doc_id for doc_id, words in self.not_about.items() if words.search(normalized)}
        quantity = _asks_quantity(normalized)
        for doc_id, doc in self.docs.items():
            score = 0.0
            gains: Counter[str] = Counter()
            covered: set[int] = set()
            norm = K1 * (1 - B + B * self.lengths[doc_id] / self.avg_length)
            for key, term in query.items():
                tf = doc.get(key, 0.0)
                if not tf:
                    continue
                gain = term.weight * self.idf[key] * tf * (K1 + 1) / (tf + norm)
                score += gain
                gains[normalized[term.start : term.end]] += gain
                if self.idf[key] >= UBIQUITOUS_IDF:
                    covered.update(places[key])
            if quantity and (doc_id == TARGETS or not self.figure_words.get(doc_id, set()).isdisjoint(query)):
                score *= QUANTITY_BOOST
            if score > 0:
                matched = [w for w, _ in gains.most_common() if len(w) > 1][:3]
                hits.append(Hit(doc_id, score, matched))
                places_explained[doc_id] = covered
        hits.sort(key=lambda h: (-h.score, h.doc))
        measures = [hit for hit in hits if hit.doc != TARGETS]
        if measures and any(hit.doc in excluded and hit.score >= LIST_RATIO * measures[0].score for hit in measures):
            # The words the message shares with one of its best measures mean something else here (a car
            # loan, a thesis advisor), and so they do in the other measures and the targets that use them.
            return []
        best = [hit for hit in hits if hit.doc not in excluded][:limit]
        for hit in best:
            hit.coverage = max(_coverage(words, places_explained[hit.doc]) for words in parts)
        return best

    def _meaningful_words(self, text: str, terms: list[Term]) -> list[tuple[range, float]]:
        """The words of the message that say something specific, weighted by how specific: by their IDF
        among the measures (a word no measure uses counts as the rarest) and by how rare they are in
        everyday language, whichever says less. Words found in nearly every measure are left out, and so
        are the parts of a longer word (研究 in 研究所), which the segmenter also gives."""
        spans = [range(t.start, t.end) for t in terms if t.is_word]
        words = []
        for term in terms:
            idf = self.idf.get(term.key, self.max_idf)
            span = range(term.start, term.end)
            part = any(s != span and s.start <= span.start and span.stop <= s.stop for s in spans)
            typed = text[term.start : term.end]
            said = term.is_word and not part and typed not in self.function_words
            said = said and term.key not in self.asking and term.key not in self.situation
            said = said and not _NUMBER.fullmatch(typed) and typed not in self.smalltalk_kinds  # 二十年, 你好
            if said and idf >= UBIQUITOUS_IDF and term.key not in QUANTITY_WORDS:
                words.append((span, min(idf, self._everyday_weight(term.key))))
        return words

    def _everyday_weight(self, word: str) -> float:
        if " " in word:  # a keyword of several words is as everyday as its most specific word (집 앞: not very)
            return max(self._everyday_weight(part) for part in word.split())
        information = self.analyzer.information(word)
        if information is None:
            return self.max_idf
        share = (information - COMMON_INFO) / (RARE_INFO - COMMON_INFO)
        return self.max_idf * min(1.0, max(UNKNOWN_FLOOR, share))

    def small_talk(self, text: str) -> str | None:
        """'greeting', 'thanks', 'goodbye' or 'identity' when the message is only small talk: its phrases,
        filler that may come with them (好嘞, ok) and function words ("你是机器人还是真人")."""
        kinds: set[str] = set()
        text = normalize(text)
        inside: set[int] | None = None  # segmented only when a phrase is found: most messages have none
        rest, position = "", 0
        while found := self.smalltalk.search(text, position):
            inside = self.analyzer.inside_words(text) if inside is None else inside
            if found.start() in inside or found.end() in inside:  # 早 in 早餐店 is no greeting
                rest += text[position : found.start() + 1]
                position = found.start() + 1
                continue
            kinds.add(self.smalltalk_kinds[found[0]])
            rest += text[position : found.start()] + " "
            position = found.end()
        rest += text[position:]
        if not kinds:
            return None
        rest = self.smalltalk_filler.sub(" ", rest) if self.smalltalk_filler else rest
        rest_text, terms = self.analyzer.analyze(rest)
        if self.analyzer.unknown_words(rest_text):  # 梅西和C罗谁更厉害: names the dictionary does not know
            return None
        if any(t.is_word and rest_text[t.start : t.end] not in self.function_words for t in terms):
            return None
        return next(kind for kind in SMALL_TALK_PRIORITY if kind in kinds)

    def answer(self, text: str) -> Answer:
        """What to reply to a free-text message."""
        return self.read(text).answer

    def read(self, text: str) -> Reading:
        """The answer to a free-text message, with what it was decided on."""
        lang = detect_lang(text)
        talk = self.small_talk(text)
        if talk:
            return Reading(Answer("smalltalk", smalltalk=talk, lang=lang))
        normalized, terms = self.analyzer.analyze(text)
        meaningful = self._meaningful_words(normalized, terms)
        words = [(normalized[span.start : span.stop], weight) for span, weight in meaningful]
        asks = any(t.is_word and t.key in self.asking for t in terms)
        if not meaningful and not self.analyzer.unknown_words(normalized):  # 我想创业, 怎么申请, help me
            return Reading(Answer("vague", lang=lang, asks=asks))
        elsewhere = self._not_about_the_plan(normalized) is not None  # 创业板, 烟台的创业补贴: no measure
        hits = [] if elsewhere else [h for h in self._search(normalized, terms, meaningful) if h.score >= MIN_SCORE]
        top = next((h for h in hits if _answerable(h)), None)
        if not elsewhere and self._says_little(normalized, terms, meaningful, top):  # 有什么政策
            return Reading(Answer("vague", lang=lang, asks=asks), words, hits)
        if top is None:
            return Reading(Answer("none", lang=lang), words, hits)
        odds = self.off_topic.log_odds(text, read_as=self.analyzer.with_homophones_corrected(normalize(text)))
        return Reading(
            Answer("none", lang=lang, held_back=top) if odds > _veto_odds(top) else self._choose(text, top, hits, lang),
            words,
            hits,
            odds,
        )

    def _says_little(
        self, normalized: str, terms: list[Term], meaningful: list[tuple[range, float]], top: Hit | None
    ) -> bool:
        """Whether a message names too little to be answered or to count as content missing: its words weigh
        little and none is a keyword or synonym of the content ("funding" names a topic), no match is
        confident, and it has no words the assistant does not know ("I want to start a business")."""
        if sum(weight for _span, weight in meaningful) >= VAGUE_WEIGHT:
            return False
        spans = {(span.start, span.stop) for span, _weight in meaningful}
        if any(t.is_word and (t.start, t.end) in spans and t.key in self.topic_words for t in terms):
            return False
        if top is not None and top.score >= CONFIDENT_SCORE:
            return False
        return not self.analyzer.unknown_words(normalized)

    def _not_about_the_plan(self, normalized: str) -> str | None:
        """What shows that a message is about something the plan does not cover: a plan-wide not_about word,
        or another place it asks about (烟台的创业补贴; not "从上海回来", nor "烟台和威海哪个好")."""
        if self.not_about_plan and (found := self.not_about_plan.search(normalized)):
            return found[0]
        if not self.other_places or not (place := self.other_places.search(normalized)):
            return None
        if any(words and words.search(normalized) for words in (self.weihai_places, self.coming_from)):
            return None
        return place[0]

    def explain(self, text: str) -> list[str]:
        """How a message is read and answered, for admins improving the content (`content explain`)."""
        reading = self.read(text)
        normalized = normalize(text)
        titles = {n: m.title.zh for n, m in self.content.measures.items()} | {TARGETS: self.content.targets.title.zh}
        lines = [f"message: {text}"]
        if reading.answer.kind == "smalltalk":
            return [*lines, f"answer: small talk ({reading.answer.smalltalk})"]
        lines.append(
            "words that say what it is about (weight): "
            + (", ".join(f"{w} ({weight:.1f})" for w, weight in reading.words) or "none")
        )
        plan_wide = self.not_about_plan.search(normalized) if self.not_about_plan else None
        if plan_wide:
            lines.append(f"plan-wide not_about word (synonyms.yaml): {plan_wide[0]}: no measure")
        elif place := self._not_about_the_plan(normalized):
            lines.append(f"another place (other_places in synonyms.yaml): {place}: no measure")
        kept_out = [f"{n} ({found[0]})" for n, words in self.not_about.items() if (found := words.search(normalized))]
        if kept_out:
            lines.append("measures' own not_about words found: " + ", ".join(kept_out))
        for hit in reading.hits[:3]:
            where = "targets" if hit.doc == TARGETS else f"measure {hit.doc}"
            lines.append(
                f"match: {where} {titles[hit.doc]}: score {hit.score:.1f}, explains {hit.coverage:.0%} of the message"
                f" ({', '.join(hit.matched)})" + ("" if _answerable(hit) else ": too little to answer")
            )
        if reading.off_topic in (math.inf, -math.inf):
            label = "not_about_the_plan" if reading.off_topic > 0 else "about_the_plan"
            lines.append(f"labelled in messages/{label}.txt" + (": held back" if reading.off_topic > 0 else ""))
        elif reading.off_topic is not None:
            top = next(h for h in reading.hits if _answerable(h))
            limit = _veto_odds(top)
            lines.append(
                f"like the messages not about the plan (messages/*.txt): log-odds {reading.off_topic:.2f}, "
                + (f"above {limit}: held back" if reading.off_topic > limit else f"not above {limit}")
                + f" (for a best match that explains {top.coverage:.0%})"
            )
        shown = ", ".join(str(h.doc) for h in reading.answer.hits)
        return [*lines, f"answer: {reading.answer.kind}" + (f" ({shown})" if shown else "")]

    def _choose(self, text: str, top: Hit, hits: list[Hit], lang: str | None) -> Answer:
        """One measure's card, the targets, or a list, around the best answerable match."""
        others = [h for h in hits if h is not top]
        # The targets' lead must not come from the quantity boost alone: "how much can I borrow" is about
        # the loan measure as much as about the city's loan target, so both are offered.
        lead = top.score / QUANTITY_BOOST if top.doc == TARGETS and _asks_quantity(text) else top.score
        shown = [top, *(h for h in others if h.score >= LIST_RATIO * lead and h.coverage > 0)][:3]
        confident = top.score >= CONFIDENT_SCORE and (not others or lead >= CONFIDENT_RATIO * others[0].score)
        if confident or len(shown) == 1:
            if top.doc == TARGETS:
                return Answer("targets", [top], lang=lang)
            return Answer("measure", [h for h in shown if h.doc != TARGETS], lang=lang)
        return Answer("list", shown, lang=lang)


class OffTopicModel:
    """How much more a message looks like the messages labelled not about the plan than like those about it:
    naive Bayes over what a message says (`_message_features`), as log-odds. The words a message shares with
    a measure cannot tell a driving school's "培训" from the plan's training; the words around them can, once
    admins have labelled such messages. Hand-written: it is a few lines, where scikit-learn would bring NumPy
    and SciPy into every worker.
    """

    def __init__(self, about: Iterable[str], not_about: Iterable[str]) -> None:
        # Counted in the tables that end up as the weights (float32 counts are exact up to 2^24), so that
        # training needs one more table, not two.
        self.weights = array("f", [0.0]) * OFF_TOPIC_BUCKETS
        self.known = bytearray(OFF_TOPIC_BUCKETS)
        on_counts = array("I", [0]) * OFF_TOPIC_BUCKETS
        sizes: Counter[bool] = Counter()
        keys: dict[bool, set[int]] = {False: set(), True: set()}
        for off, messages, counts in ((False, about, on_counts), (True, not_about, self.weights)):
            for message in messages:
                plain = normalize(message)
                for bucket in _buckets(plain):
                    counts[bucket] += 1
                sizes[off] += 1
                keys[off].add(_message_key(plain))
        self.prior = math.log((sizes[True] + 1) / (sizes[False] + 1))
        self.labelled_about = array("Q", sorted(keys[False] - keys[True]))
        self.labelled_not_about = array("Q", sorted(keys[True]))
        for bucket, on in enumerate(on_counts):
            off = self.weights[bucket]
            if on or off:
                self.known[bucket] = 1
                self.weights[bucket] = math.log(
                    (off + NAIVE_BAYES_ALPHA) / (sizes[True] + 2 * NAIVE_BAYES_ALPHA)
                ) - math.log((on + NAIVE_BAYES_ALPHA) / (sizes[False] + 2 * NAIVE_BAYES_ALPHA))

    def log_odds(self, text: str, read_as: str | None = None) -> float:
        """Above 0, the message is more like those not about the plan. The evidence is divided by the root of
        the number of known features, so a long story is not judged by its length. A message labelled
        itself (but for punctuation, spaces and case) is what its label says. `read_as` is the message
        normalised with the keywords typed by their sound corrected: its features are judged, so that a typo
        (孚化器) is not taken for a word the plan does not use. (Not those typed by their looks: a guess from
        three characters of four, 砸伤 read as 受伤, would judge a message on a word it does not say.)"""
        plain = normalize(text)
        key = _message_key(plain)
        if _holds(self.labelled_not_about, key):
            return math.inf
        if _holds(self.labelled_about, key):
            return -math.inf
        known = [self.weights[b] for b in _buckets(read_as or plain) if self.known[b]]
        return self.prior + (sum(known) / math.sqrt(len(known)) if known else 0.0)


def _message_key(normalized: str) -> int:
    """A labelled message as a 64-bit digest of what it says (but for punctuation and spaces): the lookup
    holds 8 bytes a message instead of its text."""
    return int.from_bytes(hashlib.blake2b(_FILLER.sub("", normalized).encode(), digest_size=8).digest(), "big")


def _holds(sorted_keys: array, key: int) -> bool:
    at = bisect_left(sorted_keys, key)
    return at < len(sorted_keys) and sorted_keys[at] == key


@lru_cache(maxsize=2)  # every worker and every test builds the index from the same messages
def _off_topic_model(about: tuple[str, ...], not_about: tuple[str, ...]) -> OffTopicModel:
    return OffTopicModel(about, not_about)


def _buckets(normalized: str) -> set[int]:
    """Where the off-topic model keeps what it learnt of each of a message's features: a fixed-size table
    indexed by a stable hash (the feature strings themselves would cost several times the memory)."""
    return {zlib.crc32(feature.encode()) % OFF_TOPIC_BUCKETS for feature in _message_features(normalized)}


def _message_features(normalized: str) -> set[str]:
    """What the off-topic model reads in a message: Chinese character pairs and triples, Korean syllable pairs,
    and the Korean and English words, alone and next to each other."""
    features: set[str] = set()
    words = []
    for run in _RUNS.finditer(normalized):
        word = run[0]
        if not run["latin"]:
            features.update(a + b for a, b in pairwise(word))
        if run["han"]:
            features.update(word[i : i + 3] for i in range(len(word) - 2))
        else:
            words.append(_stem(word))
    features.update(words)
    features.update(f"{a} {b}" for a, b in pairwise(words))
    return features


@lru_cache(maxsize=4096)
def _phrase(phrase: str) -> re.Pattern[str]:
    """One keyword's pattern, compiled when a message first contains it (compiling them all would double the
    time an index takes to build)."""
    return _any_phrase([phrase])


def _any_phrase_or_none(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """`_any_phrase` of the phrases as the search reads them, or None when there are none."""
    normalized = [normalize(p) for p in phrases]
    return _any_phrase(normalized) if normalized else None


def _any_phrase(phrases: Iterable[str], plurals: bool = True) -> re.Pattern[str]:
    """Finds any of the phrases, longest first; Latin ones as whole words (car and, with `plurals`, cars:
    not card; AI in AI예요), the others anywhere."""
    plural = "s?" if plurals else ""
    return re.compile(
        "|".join(
            rf"(?<![a-z0-9]){re.escape(p)}{plural}(?![a-z0-9])" if _LATIN.match(p) else re.escape(p)
            for p in sorted(phrases, key=len, reverse=True)
        )
    )


def _coverage(words: list[tuple[range, float]], covered: set[int]) -> float:
    """The share of the words' weight that the covered places explain; a word counts by the share of
    it that matched (身份 in 身份证 explains two thirds of it). Nothing is explained where nothing
    specific was said."""
    total = sum(weight for _span, weight in words)
    found = sum(weight * len(covered.intersection(span)) / len(span) for span, weight in words)
    return found / total if total else 0.0


def _veto_odds(top: Hit) -> float:
    """The log-odds of being off-topic above which the best match is held back."""
    return next(odds for share, odds in OFF_TOPIC_ODDS if top.coverage >= share)


def _asks_quantity(text: str) -> bool:
    text = text.lower()
    return any(word in text for word in QUANTITY_WORDS) and not _OWN_AMOUNT.search(text)


def _answerable(hit: Hit) -> bool:
    """Whether the best match explains enough of the message to be an answer, not a coincidence."""
    return any(hit.score >= score and hit.coverage >= share for score, share in COVERAGE_NEEDED)
