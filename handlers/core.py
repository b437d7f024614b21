"""The conversation core: one place that turns what a user sends into replies, for every channel."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from content.loader import Content
from content.schema import Profile
from content.store import ContentStore
from handlers import cards, profile_cards
from handlers.actions import PROFILE_SETTERS, Action, parse_action
from handlers.i18n import DEFAULT_LANG, gettext_for, normalize_lang
from handlers.matching import MatchResult, check_examples, match_profile
from handlers.replies import MAX_TEXT_CHARS, Button, Incoming, Reply
from handlers.search import TARGETS, Answer, QuestionIndex
from handlers.vocabulary import MULTIPLE
from storage.inquiry_log import InquiryLog, InquiryRecord
from storage.users import Pseudonymizer, UserStore

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_COMMAND = re.compile(r"^/(?P<name>[A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(?P<arg>.*))?$", re.S)
_MEASURE_COMMAND = re.compile(r"^m(\d{1,3})$")


def printable(text: str) -> str:
    """The text without control characters (PostgreSQL refuses NUL; none of them means anything here)."""
    return _CONTROL.sub("", text)


@dataclass
class Turn:
    """One message being answered: who sent it, in which language, against which content."""

    channel: str
    pseudonym: str
    lang: str
    content: Content
    search: QuestionIndex
    inquiries: InquiryLog
    profile: Profile | None = None

    def log(self, kind: str, text: str | None = None, **fields: Any) -> None:
        if text is not None:
            fields["text"] = printable(text)
        district = self.profile.district if self.profile else None
        self.inquiries.record(
            InquiryRecord(
                channel=self.channel,
                user_pseudonym=self.pseudonym,
                lang=self.lang,
                kind=kind,
                district=district,
                **fields,
            )
        )


Handler = Callable[[Turn, Action], Awaitable[list[Reply]]]


class Assistant:
    def __init__(
        self,
        content: ContentStore,
        users: UserStore,
        inquiries: InquiryLog,
        pseudonymize: Pseudonymizer,
        default_lang: str = DEFAULT_LANG,
    ) -> None:
        self.content = content
        self.users = users
        self.inquiries = inquiries
        self.pseudonymize = pseudonymize
        self.default_lang = default_lang
        content.add_view("search", QuestionIndex)
        if check_examples not in content.validators:
            content.validators.append(check_examples)
        self._actions: dict[str, Handler] = {
            "home": self._home,
            "plans": self._plans,
            "plan": self._plan,
            "m": self._measure,
            "targets": self._targets,
            "help": self._help,
            "lang_menu": self._language_menu,
            "lang": self._set_language,
            "forget": self._forget_ask,
            "forget_yes": self._forget_confirmed,
            "forget_no": self._forget_cancelled,
            "profile": self._profile,
            "pedit": self._profile_edit,
            "pclear": self._profile_clear,
            "pstep": self._profile_step,
            "match": self._match,
            **{setter: self._profile_set for setter in PROFILE_SETTERS},
        }
        self._commands: dict[str, str] = {
            "start": "home",
            "menu": "home",
            "plans": "plans",
            "targets": "targets",
            "help": "help",
            "lang": "lang_menu",
            "language": "lang_menu",
            "forget": "forget",
            "profile": "profile",
            "match": "match",
        }

    async def handle(self, incoming: Incoming) -> list[Reply]:
        """All replies to one incoming message or button press."""
        pseudonym = self.pseudonymize(incoming.channel, incoming.user_id)
        hinted = normalize_lang(incoming.language) or self.default_lang
        user = await self.users.seen(pseudonym, incoming.channel, hinted)
        snapshot = self.content.snapshot
        turn = Turn(
            incoming.channel,
            pseudonym,
            user.lang,
            snapshot.content,
            snapshot.views["search"],
            self.inquiries,
            profile=user.profile,
        )
        if incoming.action is not None:
            return await self._on_button(turn, incoming.action)
        text = printable(incoming.text).strip()
        if text.startswith("/"):
            return await self._on_command(turn, text)
        return await self._on_text(turn, text)

    async def _on_button(self, turn: Turn, payload: str) -> list[Reply]:
        action = parse_action(payload)
        if action is None or not self._exists(turn.content, action):
            turn.log("invalid_button", answered=False)
            _ = gettext_for(turn.lang)
            return [cards.main_menu(turn.lang).after(_("Sorry, that button is out of date."))]
        return await self._actions[action.name](turn, action)

    async def _on_command(self, turn: Turn, text: str) -> list[Reply]:
        found = _COMMAND.match(text)
        name = found["name"].lower() if found else ""
        arg = (found["arg"] or "").strip() if found else ""
        if name == "start" and arg:
            return await self._deep_link(turn, arg)
        measure = _MEASURE_COMMAND.match(name)
        if measure:
            return await self._measure(turn, Action("m", number=int(measure[1])))
        if name == "lang" and normalize_lang(arg):
            return await self._set_language(turn, Action("lang", arg=normalize_lang(arg)))
        if name in self._commands:
            return await self._actions[self._commands[name]](turn, Action(self._commands[name]))
        turn.log("unknown_command", text=text[:200], answered=False)
        _ = gettext_for(turn.lang)
        return [cards.help_reply(turn.lang).after(_("Sorry, I do not know that command."))]

    async def _on_text(self, turn: Turn, text: str) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if not text:
            text = _("I can only read text. Please type your question, or use the menu.")
            return [Reply(text, [cards.nav_row(turn.lang)])]
        if len(text) > MAX_TEXT_CHARS:
            turn.log("question", text=text[:MAX_TEXT_CHARS], answered=False)
            return [
                Reply(
                    _("That message is too long for me. Please ask in a sentence or two."),
                    [cards.nav_row(turn.lang)],
                )
            ]
        return await self.answer_question(turn, text)

    async def answer_question(self, turn: Turn, text: str) -> list[Reply]:
        """Free text: small talk, the measure(s) it is about, the targets, or an honest 'not found'."""
        answer = turn.search.answer(text)
        lang = answer.lang or turn.lang
        if answer.kind == "smalltalk":
            turn.log("smalltalk", text=text, answered=True)
            return [cards.small_talk(answer.smalltalk or "greeting", lang)]
        turn.log("question", text=text, answered=answer.kind != "none", results=_results(answer))
        if answer.kind == "none":
            return [cards.no_answer(turn.content, lang)]
        if answer.kind == "targets":
            return [cards.targets_card(turn.content, lang)]
        measures = [turn.content.measures[hit.doc] for hit in answer.hits]
        if answer.kind == "measure":
            return [cards.measure_card(turn.content, measures[0], lang, related=measures[1:])]
        return [cards.search_results(turn.content, answer.hits, lang)]

    async def _deep_link(self, turn: Turn, payload: str) -> list[Reply]:
        found = re.fullmatch(r"m(\d{1,3})", payload.strip().lower())
        number = int(found[1]) if found else None
        if number in turn.content.measures:
            turn.log("deeplink", measure=number, plan=turn.content.measures[number].plan, text=payload[:64])
            return [cards.measure_card(turn.content, turn.content.measures[number], turn.lang)]
        turn.log("deeplink", text=payload[:64], answered=False)
        return await self._home(turn, Action("home"))

    @staticmethod
    def _exists(content: Content, action: Action) -> bool:
        if action.name == "plan":
            return action.number in content.plans
        if action.name == "m":
            return action.number in content.measures
        return True

    async def _home(self, turn: Turn, _action: Action) -> list[Reply]:
        turn.log("menu")
        return [cards.main_menu(turn.lang, greeting=True)]

    async def _plans(self, turn: Turn, _action: Action) -> list[Reply]:
        turn.log("plans")
        return [cards.plans_menu(turn.content, turn.lang)]

    async def _plan(self, turn: Turn, action: Action) -> list[Reply]:
        turn.log("plan", plan=action.number)
        return [cards.plan_menu(turn.content, action.number, turn.lang)]

    async def _measure(self, turn: Turn, action: Action) -> list[Reply]:
        measure = turn.content.measures.get(action.number)
        if measure is None:
            turn.log("measure", text=f"m{action.number}", answered=False)
            _ = gettext_for(turn.lang)
            text = _("There is no measure {number}. The plan has measures 1 to 24.").format(number=action.number)
            return [Reply(text, [[Button(_("Browse the 7 plans"), "plans")], cards.nav_row(turn.lang)])]
        turn.log("measure", measure=measure.number, plan=measure.plan)
        return [cards.measure_card(turn.content, measure, turn.lang)]

    async def _targets(self, turn: Turn, _action: Action) -> list[Reply]:
        turn.log("targets")
        return [cards.targets_card(turn.content, turn.lang)]

    async def _help(self, turn: Turn, _action: Action) -> list[Reply]:
        turn.log("help")
        return [cards.help_reply(turn.lang)]

    async def _language_menu(self, turn: Turn, _action: Action) -> list[Reply]:
        return [cards.language_menu(turn.lang)]

    async def _set_language(self, turn: Turn, action: Action) -> list[Reply]:
        await self.users.set_lang(turn.pseudonym, action.arg)
        turn.lang = action.arg
        turn.log("lang", text=action.arg)
        return [cards.main_menu(turn.lang)]

    async def _profile(self, turn: Turn, _action: Action) -> list[Reply]:
        turn.log("profile")
        return [profile_cards.profile_summary(turn.profile, turn.lang)]

    async def _profile_edit(self, turn: Turn, _action: Action) -> list[Reply]:
        return [profile_cards.profile_step(turn.profile or Profile(), "identity", turn.lang)]

    async def _profile_clear(self, turn: Turn, _action: Action) -> list[Reply]:
        await self.users.set_profile(turn.pseudonym, None)
        return [profile_cards.profile_summary(None, turn.lang)]

    async def _profile_step(self, turn: Turn, action: Action) -> list[Reply]:
        return [profile_cards.profile_step(turn.profile or Profile(), action.arg, turn.lang)]

    async def _profile_set(self, turn: Turn, action: Action) -> list[Reply]:
        """A tap on a profile answer: toggles a multiple choice, or sets a single one and moves on."""
        field = PROFILE_SETTERS[action.name]
        profile = turn.profile or Profile()
        if field in MULTIPLE:
            chosen = list(getattr(profile, field))
            chosen = [v for v in chosen if v != action.arg] if action.arg in chosen else [*chosen, action.arg]
            profile = profile.model_copy(update={field: chosen})
            step = field
        else:
            profile = profile.model_copy(update={field: action.arg})
            step = profile_cards.next_step(field) or field
        await self.users.set_profile(turn.pseudonym, profile)
        turn.profile = profile
        return [profile_cards.profile_step(profile, step, turn.lang)]

    async def _match(self, turn: Turn, _action: Action) -> list[Reply]:
        if turn.profile is None or turn.profile == Profile():
            return [profile_cards.profile_summary(None, turn.lang)]
        result = match_profile(turn.content, turn.profile, turn.lang)
        turn.log(
            "match",
            answered=bool(result.results),
            profile=turn.profile.model_dump(mode="json"),
            results=match_results(result),
        )
        return [profile_cards.match_reply(turn.content, result, turn.lang)]

    async def _forget_ask(self, turn: Turn, _action: Action) -> list[Reply]:
        _ = gettext_for(turn.lang)
        text = _(
            "This deletes everything this assistant holds about you: your settings and the log of "
            "what you asked. It cannot be undone. Delete?"
        )
        buttons = [[Button(_("Yes, delete my data"), "forget_yes"), Button(_("No, keep it"), "forget_no")]]
        return [Reply(text, buttons)]

    async def _forget_confirmed(self, turn: Turn, _action: Action) -> list[Reply]:
        await self.inquiries.flush()
        await self.users.forget(turn.pseudonym)
        _ = gettext_for(turn.lang)
        return [Reply(_("Done: everything this assistant held about you has been deleted."), [])]

    async def _forget_cancelled(self, turn: Turn, _action: Action) -> list[Reply]:
        _ = gettext_for(turn.lang)
        return [Reply(_("Nothing was deleted."), [cards.nav_row(turn.lang)])]


def _results(answer: Answer) -> list[dict[str, Any]]:
    """The ranked results of a question, as logged."""
    return [
        {
            "measure": None if hit.doc == TARGETS else hit.doc,
            "targets": hit.doc == TARGETS,
            "rank": rank,
            "score": round(hit.score, 2),
        }
        for rank, hit in enumerate(answer.hits, 1)
    ]


def match_results(result: MatchResult) -> list[dict[str, Any]]:
    """The ranked results of a match, as logged."""
    applicable = [
        {"measure": m.measure.number, "rank": rank, "score": m.score} for rank, m in enumerate(result.results, 1)
    ]
    near = [{"measure": m.measure.number, "near_miss": True, "score": m.score} for m in result.near_misses]
    return applicable + near
