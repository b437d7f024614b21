"""The conversation core: one place that turns what a user sends into replies, for every channel."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from content.loader import Content
from content.schema import Measure, Profile
from content.store import ContentStore
from handlers import announcements, cards, followup, profile_cards
from handlers.actions import PROFILE_SETTERS, Action, parse_action
from handlers.flood import FloodControl
from handlers.i18n import DEFAULT_LANG, gettext_for, normalize_lang
from handlers.matching import MatchResult, check_examples, match_profile
from handlers.replies import MAX_TEXT_CHARS, Button, Incoming, Reply
from handlers.search import TARGETS, Answer, QuestionIndex, detect_lang
from handlers.vocabulary import MULTIPLE, label
from storage.announcements import AnnouncementStore, Audience
from storage.inquiry_log import InquiryLog, InquiryRecord
from storage.questions import question_key
from storage.users import Pseudonymizer, UserRecord, UserStore

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_COMMAND = re.compile(r"^/(?P<name>[A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(?P<arg>.*))?$", re.S)
_MEASURE_COMMAND = re.compile(r"^m(\d{1,3})$")
# How long after opening a measure's card a question that names nothing ("怎么申请") is taken to be about it.
TOPIC_TTL = timedelta(minutes=30)


def printable(text: str) -> str:
    """The text without control characters and lone surrogates (PostgreSQL refuses NUL, UTF-8 cannot
    encode a lone surrogate; none of them means anything here)."""
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
    user: UserRecord
    address: str

    @property
    def profile(self) -> Profile | None:
        return self.user.profile

    @profile.setter
    def profile(self, profile: Profile | None) -> None:
        self.user = replace(self.user, profile=profile)

    @property
    def is_staff(self) -> bool:
        return self.user.role in ("staff", "admin")

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
        announcements: AnnouncementStore | None = None,
        push_channels: frozenset[str] = frozenset({"telegram", "wechat"}),
        deferring_channels: frozenset[str] = frozenset({"wechat"}),
    ) -> None:
        self.deferring_channels = deferring_channels
        self.flood = FloodControl()
        self.on_handled: Callable[[str, float, bool], None] = lambda channel, seconds, failed: None
        self.on_flood: Callable[[], None] = lambda: None
        self.announcements = announcements
        self.push_channels = push_channels
        self.on_announcement_queued: Callable[[], None] = lambda: None
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
            "sub": self._subscribe,
            "stp": self._subscription_topic,
            "sdist": self._subscription_districts,
            "sdi": self._subscription_district,
            "unsub": self._unsubscribe,
            "aud": self._announce_audience,
            "aut": self._announce_audience,
            "aui": self._announce_audience,
            "asend": self._announce_send,
            "asend_later": self._announce_send,
            "acancel": self._announce_cancel,
            "fu": self._followup_answer,
            "miss": self._not_asked,
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
            "subscribe": "sub",
            "unsubscribe": "unsub",
            "stop": "unsub",
        }

    async def handle(self, incoming: Incoming) -> list[Reply]:
        """All replies to one incoming message or button press."""
        started = time.perf_counter()
        failed = True
        try:
            replies = await self._handle(incoming)
            failed = False
            return replies
        finally:
            self.on_handled(incoming.channel, time.perf_counter() - started, failed)

    async def _handle(self, incoming: Incoming) -> list[Reply]:
        pseudonym = self.pseudonymize(incoming.channel, incoming.user_id)
        hinted = normalize_lang(incoming.language) or self.default_lang
        verdict = self.flood.allow(pseudonym)
        if verdict != "reply":
            self.on_flood()
            _ = gettext_for(hinted)
            slow_down = Reply(_("You are sending messages very fast. Please wait a moment."), [])
            return [slow_down] if verdict == "warn" else []
        user = await self.users.seen(pseudonym, incoming.channel, hinted)
        snapshot = self.content.snapshot
        turn = Turn(
            incoming.channel,
            pseudonym,
            user.lang,
            snapshot.content,
            snapshot.views["search"],
            self.inquiries,
            user=user,
            address=incoming.user_id,
        )
        waiting = await self._deferred_announcements(turn)
        if incoming.action is not None:
            replies = await self._on_button(turn, incoming.action)
        else:
            text = printable(incoming.text).strip()
            replies = await (self._on_command(turn, text) if text.startswith("/") else self._on_text(turn, text))
        return waiting + replies + await self._followup_question(turn)

    async def _followup_question(self, turn: Turn) -> list[Reply]:
        """Ask once whether the user applied for the measure they looked at some days ago."""
        measure = followup.due(turn.user.followup, datetime.now(UTC))
        if measure is None:
            return []
        await self.users.set_followup(turn.pseudonym, {**turn.user.followup, "state": "asked"})
        return [followup.question(turn.content, measure, turn.lang)]

    async def _plan_followup(self, turn: Turn, measure: int) -> None:
        planned = followup.schedule(turn.user.followup, measure, datetime.now(UTC))
        if planned is not None:
            await self.users.set_followup(turn.pseudonym, planned)
            turn.user = replace(turn.user, followup=planned)

    @staticmethod
    async def _topic(turn: Turn) -> Measure | None:
        """The measure whose card the user saw last, in the last TOPIC_TTL, if it is still in the content (read
        from the inquiry log, which has every card shown: no hot-path write keeps it)."""
        number = await turn.inquiries.topic(turn.pseudonym, datetime.now(UTC) - TOPIC_TTL)
        return turn.content.measures.get(number) if number is not None else None

    async def _followup_answer(self, turn: Turn, action: Action) -> list[Reply]:
        state = turn.user.followup or {}
        if state.get("state") not in ("asked", "pending"):
            return [cards.main_menu(turn.lang)]
        await self.users.set_followup(turn.pseudonym, {**state, "state": "off" if action.arg == "off" else "done"})
        turn.log("outcome", measure=state.get("measure"), text=action.arg, answered=True)
        return [followup.thanks(action.arg, turn.lang)]

    async def _deferred_announcements(self, turn: Turn) -> list[Reply]:
        """Announcements the channel could not push (outside its window), shown with this reply."""
        if self.announcements is None or turn.channel not in self.deferring_channels:
            return []
        texts = await self.announcements.take_deferred(turn.pseudonym)
        return [announcements.announcement_reply(text, 0, turn.lang) for text in texts]

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
        if name == "announce":
            return await self._announce(turn)
        if name == "announcements":
            return await self._announcements(turn)
        if name == "reload":
            return await self._reload(turn)
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
        if turn.is_staff and (turn.user.draft or {}).get("step") == "text":
            return await self._announce_text(turn, text)
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
        # A vague message that asks how ("怎么申请") is about the measure just opened; else it asks for more.
        topic = await self._topic(turn) if answer.kind == "vague" and answer.asks else None
        if answer.kind == "vague" and topic is None:
            turn.log("vague", text=text, answered=False)
            return [cards.tell_me_more(lang)]
        if topic is not None:
            result = {"measure": topic.number, "targets": False, "rank": 1, "score": None, "topic": True}
            turn.log("question", text=text, answered=True, results=[result])
            reply = cards.about_measure(turn.content, topic, lang)
        else:
            held = answer.held_back
            turn.log(
                "question",
                text=text,
                answered=answer.kind != "none",
                results=_results(answer),
                measure=held.doc if held is not None and held.doc != TARGETS else None,
            )
            if answer.kind == "none":
                return [cards.no_answer(turn.content, lang)]
            reply = await self._answer_card(turn, answer, lang)
        return [cards.with_not_asked_button(reply, question_key(text), lang)]

    async def _answer_card(self, turn: Turn, answer: Answer, lang: str) -> Reply:
        """The city targets, one measure's card (with the related ones), or the measures that may fit."""
        if answer.kind == "targets":
            return cards.targets_card(turn.content, lang)
        if answer.kind == "measure":
            measures = [turn.content.measures[hit.doc] for hit in answer.hits]
            await self._plan_followup(turn, measures[0].number)
            return cards.measure_card(turn.content, measures[0], lang, related=measures[1:])
        return cards.search_results(turn.content, answer.hits, lang)

    async def _not_asked(self, turn: Turn, action: Action) -> list[Reply]:
        """The user says the answer to their question was not what they asked: it goes to the admins as an
        unanswered question (once), and the user gets the help for a question without an answer."""
        asked = await turn.inquiries.asked(turn.pseudonym, action.arg or "")
        if asked is None:
            return [cards.not_asked(turn.content, turn.lang, noted=False)]
        if not asked.rejected:
            turn.log("rejected", text=asked.text, answered=False, measure=asked.first_measure, results=asked.results)
        # In the language the question was answered in, as the button was.
        return [cards.not_asked(turn.content, detect_lang(asked.text) or turn.lang, noted=True)]

    async def _deep_link(self, turn: Turn, payload: str) -> list[Reply]:
        found = re.fullmatch(r"m(\d{1,3})", payload.strip().lower())
        number = int(found[1]) if found else None
        if number in turn.content.measures:
            turn.log("deeplink", measure=number, plan=turn.content.measures[number].plan, text=payload[:64])
            await self._plan_followup(turn, number)
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
        await self._plan_followup(turn, measure.number)
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
        if result.results:
            await self._plan_followup(turn, result.results[0].measure.number)
        return [profile_cards.match_reply(turn.content, result, turn.lang)]

    # Subscriptions ---------------------------------------------------------------------------

    def _store(self) -> AnnouncementStore:
        if self.announcements is None:
            raise RuntimeError("announcements are not configured")
        return self.announcements

    async def _subscribe(self, turn: Turn, _action: Action) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if turn.channel not in self.push_channels or self.announcements is None or len(turn.address) > 128:
            return [
                Reply(_("Announcements are sent on Telegram and WeChat: subscribe there."), [cards.nav_row(turn.lang)])
            ]
        existing = await self._store().subscription(turn.pseudonym)
        district = existing.district if existing else (turn.profile.district if turn.profile else None)
        sub = await self._store().subscribe(turn.pseudonym, turn.channel, turn.address, district)
        turn.log("subscribe")
        return [announcements.subscription_reply(turn.content, sub.topics, sub.district, turn.lang)]

    async def _subscription_topic(self, turn: Turn, action: Action) -> list[Reply]:
        sub = await self._store().subscription(turn.pseudonym)
        if sub is None or action.number not in turn.content.plans:
            return await self._subscribe(turn, action)
        topics = [t for t in sub.topics if t != action.number]
        if action.number not in sub.topics:
            topics.append(action.number)
        sub = await self._store().update_subscription(turn.pseudonym, topics=sorted(topics))
        return [announcements.subscription_reply(turn.content, sub.topics, sub.district, turn.lang)]

    async def _subscription_districts(self, turn: Turn, _action: Action) -> list[Reply]:
        return [announcements.district_menu(turn.lang)]

    async def _subscription_district(self, turn: Turn, action: Action) -> list[Reply]:
        if await self._store().subscription(turn.pseudonym) is None:
            return await self._subscribe(turn, action)
        district = None if action.arg == "all" else action.arg
        sub = await self._store().update_subscription(turn.pseudonym, district=district)
        return [announcements.subscription_reply(turn.content, sub.topics, sub.district, turn.lang)]

    async def _unsubscribe(self, turn: Turn, _action: Action) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if self.announcements is not None and await self._store().unsubscribe(turn.pseudonym):
            turn.log("unsubscribe")
            return [
                Reply(
                    _("Done: you will get no more announcements. /subscribe starts them again."),
                    [cards.nav_row(turn.lang)],
                )
            ]
        return [Reply(_("You are not subscribed to announcements."), [cards.nav_row(turn.lang)])]

    # Announcements (staff) ---------------------------------------------------------------------

    async def _announce(self, turn: Turn) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if not turn.is_staff or self.announcements is None:
            turn.log("announce_refused", answered=False)
            return [Reply(_("Only service-station staff can send announcements."), [cards.nav_row(turn.lang)])]
        await self._store().save_draft(turn.pseudonym, {"step": "text"})
        text = _("Send me the text of the announcement. Write /m7 to link measure 7 (any number).")
        return [Reply(text, [[Button(_("Cancel"), "acancel")]])]

    async def _announce_text(self, turn: Turn, text: str) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if len(text) > MAX_TEXT_CHARS:
            return [
                Reply(
                    _("That message is too long for me. Please ask in a sentence or two."),
                    [[Button(_("Cancel"), "acancel")]],
                )
            ]
        await self._store().save_draft(turn.pseudonym, {"step": "audience", "text": text})
        return [announcements.audience_menu(turn.content, text, turn.lang)]

    def _audience(self, turn: Turn, action: Action) -> tuple[Audience, str]:
        _ = gettext_for(turn.lang)
        districts = None if turn.user.role == "admin" else list(turn.user.districts or [])
        where = _("all districts") if districts is None else _(", ").join(label(d, turn.lang) for d in districts)
        if action.name == "aut":
            topic = turn.content.plans[action.number].short_name.get(turn.lang)
            return Audience(districts, topic=action.number), _("{where}; topic: {topic}").format(
                where=where, topic=topic
            )
        if action.name == "aui":
            who = label(action.arg, turn.lang)
            return Audience(districts, identity=action.arg), _("{where}; {who}").format(where=where, who=who)
        return Audience(districts), where

    async def _announce_audience(self, turn: Turn, action: Action) -> list[Reply]:
        draft = turn.user.draft or {}
        if (
            not turn.is_staff
            or not draft.get("text")
            or (action.name == "aut" and action.number not in turn.content.plans)
        ):
            return await self._announce(turn)
        audience, described = self._audience(turn, action)
        recipients = await self._store().count_recipients(audience)
        await self._store().save_draft(
            turn.pseudonym, {**draft, "step": "confirm", "audience": audience.as_json(), "described": described}
        )
        return [announcements.preview(draft["text"], described, recipients, turn.lang)]

    async def _announce_send(self, turn: Turn, action: Action) -> list[Reply]:
        _ = gettext_for(turn.lang)
        draft = turn.user.draft or {}
        if not turn.is_staff or draft.get("step") != "confirm":
            return await self._announce(turn)
        send_at = _tomorrow_morning() if action.name == "asend_later" else None
        announcement_id, recipients = await self._store().create(
            turn.pseudonym, turn.channel, turn.address, draft["text"], Audience(**draft["audience"]), send_at
        )
        await self._store().save_draft(turn.pseudonym, None)
        turn.log("announce", text=draft["text"][:200])
        self.on_announcement_queued()
        when = _("tomorrow at 09:00") if send_at else _("now")
        text = _(
            "Announcement #{id} is queued for {recipients} subscriber(s), sending {when}. "
            "/announcements shows its progress."
        ).format(id=announcement_id, recipients=recipients, when=when)
        return [Reply(text, [cards.nav_row(turn.lang)])]

    async def _announce_cancel(self, turn: Turn, _action: Action) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if turn.is_staff:
            await self._store().save_draft(turn.pseudonym, None)
        return [Reply(_("Cancelled: nothing was sent."), [cards.nav_row(turn.lang)])]

    async def _announcements(self, turn: Turn) -> list[Reply]:
        _ = gettext_for(turn.lang)
        if not turn.is_staff or self.announcements is None:
            turn.log("announce_refused", answered=False)
            return [Reply(_("Only service-station staff can send announcements."), [cards.nav_row(turn.lang)])]
        author = None if turn.user.role == "admin" else turn.pseudonym
        reports = [announcements.delivery_report(p, turn.lang).text for p in await self._store().recent(author)]
        return [Reply("\n".join(reports) or _("No announcements yet."), [cards.nav_row(turn.lang)])]

    async def _reload(self, turn: Turn) -> list[Reply]:
        """Admins reload the content files at once (the watcher does it by itself on a change)."""
        _ = gettext_for(turn.lang)
        if turn.user.role != "admin":
            turn.log("reload_refused", answered=False)
            return [Reply(_("Only admins can reload the content."), [cards.nav_row(turn.lang)])]
        errors = await self.content.reload()
        if errors:
            lines = [_("The content has problems; the last good version keeps serving:")]
            lines += [str(error) for error in errors[:20]]
            return [Reply("\n".join(lines), [])]
        version = self.content.current.version
        return [Reply(_("Content reloaded (version {version}).").format(version=version), [])]

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
    """The ranked results of a question, as logged; the first marked `card` when its card was shown. A question
    held back as not about the plan logs the match it was held back from, marked `held`."""
    hits = answer.hits if answer.held_back is None else [answer.held_back]
    results = [
        {
            "measure": None if hit.doc == TARGETS else hit.doc,
            "targets": hit.doc == TARGETS,
            "rank": rank,
            "score": round(hit.score, 2),
        }
        for rank, hit in enumerate(hits, 1)
    ]
    if answer.kind == "measure" and results:
        results[0]["card"] = True
    if answer.held_back is not None:
        results[0]["held"] = True
    return results


def match_results(result: MatchResult) -> list[dict[str, Any]]:
    """The ranked results of a match, as logged."""
    applicable = [
        {"measure": m.measure.number, "rank": rank, "score": m.score} for rank, m in enumerate(result.results, 1)
    ]
    near = [{"measure": m.measure.number, "near_miss": True, "score": m.score} for m in result.near_misses]
    return applicable + near


def _tomorrow_morning() -> datetime:
    """09:00 tomorrow in Weihai."""
    weihai = ZoneInfo("Asia/Shanghai")
    tomorrow = datetime.now(weihai).date() + timedelta(days=1)
    return datetime.combine(tomorrow, clock(9, 0), tzinfo=weihai)
