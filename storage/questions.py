"""Near-duplicate questions: the comparable form of a question, and the groups of questions alike.

Two forms are alike when their character bigram sets have a Jaccard similarity of at least 3/5. A
`QuestionGrouper` takes forms one at a time: each joins the earliest founded group whose founding form it is
alike to, or founds a group. The inquiry log groups the unanswered questions this way as they are logged
(the founding forms are kept in the question_groups table), so that a report only adds up groups.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable

# Kept as a fraction: |A ∩ B| / |A ∪ B| ≥ 3/5 is, in integers, 8·|A ∩ B| ≥ 3·(|A| + |B|).
SIMILAR_NUM, SIMILAR_DEN = 3, 5

_SPLIT = re.compile(r"[\W_]+")
_LONG_NUMBER = re.compile(r"\d{7,}")
_PARTICLES = "啊呀吗呢吧哦啦嘛呗"
_FOLDS = (("怎么样", "怎么"), ("怎样", "怎么"), ("如何", "怎么"), ("咋", "怎么"))


def normalise(text: str) -> str:
    """The comparable form of a question: NFKC, lower case, no punctuation or white space.

    Also drops a clause's trailing modal particles (啊, 吗, 呢...) and folds 怎样/如何/咋 into 怎么,
    so that "怎样办营业执照啊" and "怎么办营业执照？" compare equal: bigram Jaccard alone gives them 0.44.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(piece.rstrip(_PARTICLES) for piece in _SPLIT.split(text))
    for variant, common in _FOLDS:
        text = text.replace(variant, common)
    return text.removeprefix("请问")


def wording(text: str) -> str:
    """How a question is shown in a report: long digit runs (phone numbers, ids someone typed) masked, stripped."""
    return _LONG_NUMBER.sub("#", text).strip()


def question_form(text: str) -> str:
    """The form a question is grouped by."""
    return normalise(wording(text))


def form_digest(form: str) -> str:
    """A fixed-size key for a form (forms can be longer than an index entry may be on PostgreSQL)."""
    return hashlib.blake2b(form.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def question_key(text: str) -> str:
    """A short key for a question as logged, for a button that refers back to it (a button payload is small)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()


def bigrams(text: str) -> frozenset[str]:
    """The character bigrams of a normalised text (a one-character text is its own gram)."""
    return frozenset(text[i : i + 2] for i in range(len(text) - 1)) if len(text) > 1 else frozenset(text)


class QuestionGrouper:
    """Founding forms, in founding order, each with its group's key, and how to find a form's group.

    Every founder's bigrams are indexed: a form's overlap with each founder is counted from the index (in C,
    by Counter), so no two sets are compared. Memory per group: its form and an index entry per bigram."""

    def __init__(self, founders: Iterable[tuple[int, str]] = ()) -> None:
        self.keys: list[int] = []
        self.forms: list[str] = []
        self._sizes: list[int] = []
        self._exact: dict[str, int] = {}  # form -> position, for founders
        self._index: dict[str, list[int]] = defaultdict(list)  # gram -> positions of the founders with it
        for key, form in founders:
            self.add(key, form)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int, form: str) -> None:
        """`form` founds the group `key` (founders are added in founding order)."""
        position = len(self.keys)
        grams = bigrams(form)
        self.keys.append(key)
        self.forms.append(form)
        self._sizes.append(len(grams))
        self._exact.setdefault(form, position)
        for gram in grams:
            self._index[gram].append(position)

    def place(self, forms: Iterable[str]) -> dict[str, int]:
        """Each form's group, as a position in founding order: the earliest founder it is alike to, or a group it
        founds (appended with key 0, to be set once the group is stored)."""
        positions = {}
        for form in forms:
            position = self.locate(form)
            if position is None:
                position = len(self.keys)
                self.add(0, form)
            positions[form] = position
        return positions

    def find(self, form: str) -> int | None:
        """The key of the earliest founded group whose founding form `form` is alike to (or is), if any."""
        position = self.locate(form)
        return None if position is None else self.keys[position]

    def locate(self, form: str) -> int | None:
        """The position (in founding order) of the earliest founder `form` is alike to (or is), if any."""
        position = self._exact.get(form)
        if position is not None:
            return position
        mine = bigrams(form)
        size = len(mine)
        if not size:
            return None
        shared: Counter[int] = Counter()
        for gram in mine:
            postings = self._index.get(gram)
            if postings:
                shared.update(postings)
        num, total, sizes = SIMILAR_NUM, SIMILAR_NUM + SIMILAR_DEN, self._sizes
        # Alike needs 8·shared ≥ 3·(size + theirs), hence shared ≥ 3/5·size at least.
        least = -(-num * size // SIMILAR_DEN)
        alike = [p for p, n in shared.items() if n >= least and n * total >= num * (size + sizes[p])]
        return min(alike) if alike else None
