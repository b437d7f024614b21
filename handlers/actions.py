"""Button payloads: a small grammar, parsed strictly so a forged payload is just 'unknown'.

Payloads stay well under Telegram's 64-byte callback_data limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from content.schema import LANGS
from handlers.followup import ANSWERS
from handlers.vocabulary import FIELDS

_PATTERN = re.compile(r"(?P<name>[a-z_]{1,16})(?::(?P<arg>[a-z0-9_]{1,24}))?")
_NUMBERED = {"plan", "m", "stp", "aut"}
_QUESTION_KEY = re.compile(r"[0-9a-f]{10}")  # storage.questions.question_key
_SIMPLE = {
    "home", "plans", "targets", "help", "forget", "forget_yes", "forget_no", "lang_menu",
    "profile", "pedit", "pclear", "match",
    "sub", "unsub", "sdist", "acancel", "asend", "asend_later",
}  # fmt: skip
PROFILE_SETTERS = {"pid": "identity", "pst": "stage", "psc": "sector", "pdi": "district", "pne": "needs"}


@dataclass(frozen=True)
class Action:
    name: str
    number: int | None = None
    arg: str | None = None


def parse_action(payload: str | None) -> Action | None:
    """The action a button payload names, or None when the payload is not one of ours."""
    if not payload or len(payload) > 64:
        return None
    found = _PATTERN.fullmatch(payload)
    if not found:
        return None
    name, arg = found["name"], found["arg"]
    if name in _SIMPLE and arg is None:
        return Action(name)
    if name in _NUMBERED and arg is not None and arg.isdigit() and len(arg) <= 3:
        return Action(name, number=int(arg))
    if name == "lang" and arg in LANGS:
        return Action(name, arg=arg)
    if name in PROFILE_SETTERS and arg in FIELDS[PROFILE_SETTERS[name]]:
        return Action(name, arg=arg)
    if name == "pstep" and arg in FIELDS:
        return Action(name, arg=arg)
    if (name == "sdi" and (arg in FIELDS["district"] or arg == "all")) or (name == "aud" and arg == "all"):
        return Action(name, arg=arg)
    if name == "aui" and arg in FIELDS["identity"]:
        return Action(name, arg=arg)
    if name == "fu" and arg in ANSWERS:
        return Action(name, arg=arg)
    if name == "miss" and arg is not None and _QUESTION_KEY.fullmatch(arg):
        return Action(name, arg=arg)
    return None


def plan_action(number: int) -> str:
    return f"plan:{number}"


def measure_action(number: int) -> str:
    return f"m:{number}"


def not_asked_action(key: str) -> str:
    """The "not what I asked" button of the answer to the question whose key is `key`."""
    return f"miss:{key}"


def lang_action(lang: str) -> str:
    return f"lang:{lang}"


def profile_step_action(field: str) -> str:
    return f"pstep:{field}"


def profile_set_action(field: str, value: str) -> str:
    setter = next(name for name, target in PROFILE_SETTERS.items() if target == field)
    return f"{setter}:{value}"
