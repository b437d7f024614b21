"""Screens of the profile conversation and of the match results."""

from __future__ import annotations

from content.loader import Content
from content.schema import Profile
from handlers.actions import measure_action, profile_set_action, profile_step_action
from handlers.cards import nav_row
from handlers.i18n import gettext_for
from handlers.matching import MatchResult
from handlers.replies import Button, Reply
from handlers.vocabulary import FIELDS, MULTIPLE, field_name, label

STEPS = ("identity", "stage", "sector", "district", "needs")


def profile_summary(profile: Profile | None, lang: str) -> Reply:
    _ = gettext_for(lang)
    if profile is None or profile == Profile():
        text = _(
            "Tell me a little about yourself (a few taps, every question can be skipped) and I will "
            "show which of the 24 measures are for you, and why."
        )
        return Reply(text, [[Button(_("Start"), "pedit")], nav_row(lang)])
    lines = [_("Your profile:")]
    for step in STEPS:
        lines.append(f"• {field_name(step, lang)}: {_values(profile, step, lang)}")
    buttons = [
        [Button(_("Find measures for me"), "match")],
        [Button(_("Edit profile"), "pedit"), Button(_("Clear profile"), "pclear")],
        nav_row(lang),
    ]
    return Reply("\n".join(lines), buttons)


def _values(profile: Profile, step: str, lang: str) -> str:
    _ = gettext_for(lang)
    value = getattr(profile, step)
    values = value if isinstance(value, list) else [value] if value else []
    return _(", ").join(label(v, lang) for v in values) or _("not given")


def profile_step(profile: Profile, step: str, lang: str) -> Reply:
    """One question of the guided profile: buttons for its values, a tick on those chosen."""
    _ = gettext_for(lang)
    questions = {
        "identity": _("Who are you? Choose all that fit, then press Next."),
        "stage": _("How far along are you?"),
        "sector": _("Which sector is your business in?"),
        "district": _("Where in Weihai are you?"),
        "needs": _("What do you need? Choose all that fit, then press Done."),
    }
    number = STEPS.index(step) + 1
    text = _("Question {number} of {total}: {question}").format(
        number=number, total=len(STEPS), question=questions[step]
    )
    chosen = getattr(profile, step)
    chosen = set(chosen) if isinstance(chosen, list) else {chosen}
    options = [
        Button(("✓ " if value in chosen else "") + label(value, lang), profile_set_action(step, value))
        for value in FIELDS[step]
    ]
    buttons = [options[i : i + 2] for i in range(0, len(options), 2)]
    following = STEPS[number] if number < len(STEPS) else None
    if following is None:
        buttons.append([Button(_("Done: show my measures"), "match")])
    elif step in MULTIPLE:
        buttons.append([Button(_("Next »"), profile_step_action(following))])
    else:
        buttons.append([Button(_("Skip »"), profile_step_action(following))])
    buttons.append(nav_row(lang))
    return Reply(text, buttons)


def next_step(step: str) -> str | None:
    index = STEPS.index(step) + 1
    return STEPS[index] if index < len(STEPS) else None


def match_reply(content: Content, result: MatchResult, lang: str) -> Reply:
    _ = gettext_for(lang)
    sep = _(", ")
    if not result.results:
        lines = [_("No measure clearly applies to the profile you gave. Add what you need, or browse the plans.")]
    else:
        lines = [_("These measures apply to you, best first:"), ""]
    buttons = []
    for rank, match in enumerate(result.results, 1):
        measure = match.measure
        lines.append(
            _("{rank}. Measure {number}: {title}").format(
                rank=rank, number=measure.number, title=measure.title.get(lang)
            )
        )
        lines += [f"   • {reason}" for reason in match.reasons]
        who = sep.join(content.department_names(measure.departments.responsible(), lang))
        lines.append("   " + _("Decided by: {departments}").format(departments=who))
        buttons.append([Button(f"{measure.number}. {measure.title.get(lang)}", measure_action(measure.number))])
    if result.near_misses:
        lines += ["", _("Nearly, but not yet:")]
        for match in result.near_misses:
            lines.append(
                _("Measure {number}: {title}").format(number=match.measure.number, title=match.measure.title.get(lang))
            )
            lines += [f"   • {reason}" for reason in match.reasons]
    lines += [
        "",
        _("This is guidance, not a decision: the department named on each measure decides whether it applies to you."),
    ]
    buttons.append([Button(_("Edit profile"), "pedit")])
    buttons.append(nav_row(lang))
    return Reply("\n".join(lines), buttons)
