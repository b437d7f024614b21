"""The assistant's screens: menus, measure cards and the city targets, as channel-neutral replies."""

from __future__ import annotations

from collections.abc import Sequence

from content.loader import Content
from content.schema import Measure
from handlers.actions import lang_action, measure_action, not_asked_action, plan_action
from handlers.i18n import LANGUAGE_NAMES, format_figure, gettext_for
from handlers.replies import Button, Reply
from handlers.search import TARGETS, Hit

DOCUMENT = "威政办字〔2025〕8号"


def nav_row(lang: str, back: str | None = None) -> list[Button]:
    _ = gettext_for(lang)
    row = [Button(_("« Back"), back)] if back else []
    row.append(Button(_("Main menu"), "home"))
    return row


def main_menu(lang: str, greeting: bool = False) -> Reply:
    _ = gettext_for(lang)
    text = _("What would you like to do? Pick a topic below, or just type your question.")
    if greeting:
        text = _(
            'Hello! I am the "Entrepreneurship Weihai" assistant. I explain the 24 measures of '
            "Weihai's startup action plan ({document}): loans, investment, workspaces, mentors, "
            "training, talent programmes, competitions and more.\n\n"
            "Pick a topic below, or type your question, for example: "
            '"I want a loan to open a shop".'
        ).format(document=DOCUMENT)
    buttons = [
        [Button(_("Find measures for me"), "match")],
        [Button(_("Browse the 7 plans"), "plans")],
        [Button(_("City targets to 2026"), "targets")],
        [Button(_("Help"), "help"), Button(_("Language"), "lang_menu")],
    ]
    return Reply(text, buttons)


def help_reply(lang: str) -> Reply:
    _ = gettext_for(lang)
    text = _(
        "How to use this assistant:\n"
        "• /start shows the main menu.\n"
        "• Browse the 7 plans and their 24 measures with the buttons.\n"
        "• /m7 opens measure 7 directly (any number from 1 to 24).\n"
        "• Type a question in your own words.\n"
        "• /profile tells me about you; /match shows the measures for you.\n"
        "• /targets shows the city's targets to 2026.\n"
        "• /lang changes the language.\n"
        "• /forget deletes what this assistant holds about you.\n\n"
        "The answers summarise the action plan {document}. They are guidance, not a decision: "
        "the department named on each measure decides."
    ).format(document=DOCUMENT)
    return Reply(text, [nav_row(lang)])


def plans_menu(content: Content, lang: str) -> Reply:
    _ = gettext_for(lang)
    buttons = [
        [Button(f"{plan.number}. {plan.short_name.get(lang)}", plan_action(plan.number))]
        for plan in content.plans.values()
    ]
    buttons.append(nav_row(lang))
    return Reply(_("The action plan has 7 plans. Which one interests you?"), buttons)


def plan_menu(content: Content, number: int, lang: str) -> Reply:
    _ = gettext_for(lang)
    plan = content.plans[number]
    lines = [plan.name.get(lang), "", plan.summary.get(lang), "", _("Its measures:")]
    buttons = []
    for measure in content.measures_of(number):
        button = measure_button(measure, lang)
        lines.append(button.label)
        buttons.append([button])
    buttons.append(nav_row(lang, back="plans"))
    return Reply("\n".join(lines), buttons)


def measure_card(content: Content, measure: Measure, lang: str, related: Sequence[Measure] = ()) -> Reply:
    _ = gettext_for(lang)
    plan = content.plans[measure.plan]
    lines = [
        measure.title.get(lang),
        _("Measure {number} · {plan}").format(number=measure.number, plan=plan.name.get(lang)),
        "",
        measure.summary.get(lang),
        "",
        _("Who it is for: {audience}").format(audience=measure.audience.get(lang)),
        "",
        _("What it offers:"),
        *(f"• {offer.get(lang)}" for offer in measure.offers),
    ]
    if measure.figures:
        lines += ["", _("Figures and targets:"), *(f"• {format_figure(f, lang)}" for f in measure.figures)]
    lines += ["", *department_lines(content, measure, lang), "", *where_to_ask(content, measure, lang)]
    lines += ["", *source_lines(measure.source.text, plan.name.get(lang), measure.number, lang)]
    buttons = [[measure_button(other, lang, _("Also: ")) for other in related]] if related else []
    return Reply("\n".join(lines), [*buttons, nav_row(lang, back=plan_action(measure.plan))])


def about_measure(content: Content, measure: Measure, lang: str) -> Reply:
    """A follow-up question on the measure just opened ("怎么申请", "要带什么材料"): whom to ask, and the card."""
    _ = gettext_for(lang)
    title = _("About measure {number} ({title}):").format(number=measure.number, title=measure.title.get(lang))
    lines = [title, "", *where_to_ask(content, measure, lang), "", *department_lines(content, measure, lang)]
    buttons = [[measure_button(measure, lang)], nav_row(lang, back=plan_action(measure.plan))]
    return Reply("\n".join(lines), buttons)


def measure_button(measure: Measure, lang: str, prefix: str = "") -> Button:
    _ = gettext_for(lang)
    label = _("{number}. {title}").format(number=measure.number, title=measure.title.get(lang))
    return Button(prefix + label, measure_action(measure.number))


def department_lines(content: Content, measure: Measure, lang: str) -> list[str]:
    _ = gettext_for(lang)
    depts = measure.departments
    sep = _(", ")
    lines = [_("Responsible departments:")]
    if depts.lead:
        lines.append(_("Lead: {names}").format(names=sep.join(content.department_names(depts.lead, lang))))
    if depts.support:
        lines.append(_("Supporting: {names}").format(names=sep.join(content.department_names(depts.support, lang))))
    if depts.shared:
        names = sep.join(content.department_names(depts.shared, lang))
        lines.append(_("Sharing the work: {names}").format(names=names))
    return lines


def where_to_ask(content: Content, measure: Measure, lang: str) -> list[str]:
    """Contacts filled in by admins; while there are none, the department to ask instead."""
    _ = gettext_for(lang)
    contacts = measure.contacts
    lines = [_("Where to ask:")]
    if contacts.is_empty():
        names = _(", ").join(content.department_names(measure.departments.responsible(), lang))
        lines.append(
            _(
                "No contact point has been published for this measure yet. Ask {departments}, "
                "or your nearest employment and startup service station (就业创业服务站)."
            ).format(departments=names)
        )
        return lines
    if contacts.where_to_apply:
        lines.append(_("Where to apply: {value}").format(value=contacts.where_to_apply.get(lang)))
    if contacts.address:
        lines.append(_("Address: {value}").format(value=contacts.address.get(lang)))
    if contacts.phone:
        lines.append(_("Phone: {value}").format(value=contacts.phone))
    if contacts.website:
        lines.append(_("Website: {value}").format(value=contacts.website))
    if contacts.note:
        lines.append(contacts.note.get(lang))
    return lines


def source_lines(official_text: str, part: str, number: int | None, lang: str) -> list[str]:
    _ = gettext_for(lang)
    if number is None:
        where = _('Source: "Entrepreneurship Weihai" action plan ({document}), preamble.')
    else:
        where = _('Source: "Entrepreneurship Weihai" action plan ({document}), {part}, measure {number}.')
    return [
        where.format(document=DOCUMENT, part=part, number=number),
        _("Official text: “{text}”").format(text=official_text),
    ]


def targets_card(content: Content, lang: str) -> Reply:
    _ = gettext_for(lang)
    targets = content.targets
    lines = [targets.title.get(lang), "", targets.intro.get(lang)]
    lines += [f"• {format_figure(figure, lang)}" for figure in targets.targets]
    lines += [f"• {commitment.text.get(lang)}" for commitment in targets.commitments]
    lines += ["", *source_lines(targets.source.text, "", None, lang)]
    return Reply("\n".join(lines), [nav_row(lang)])


def language_menu(lang: str) -> Reply:
    _ = gettext_for(lang)
    buttons = [[Button(name, lang_action(code)) for code, name in LANGUAGE_NAMES.items()], nav_row(lang)]
    return Reply(_("Choose your language:"), buttons)


def search_results(content: Content, hits: Sequence[Hit], lang: str) -> Reply:
    """Several measures (or the city's targets) may fit: each with the words of the question that point to it."""
    _ = gettext_for(lang)
    lines = [_("These measures may answer your question:"), ""]
    buttons = []
    for hit in hits:
        if hit.doc == TARGETS:
            button = Button(_("City targets to 2026"), "targets")
            lines.append(button.label)
        else:
            measure = content.measures[hit.doc]
            button = measure_button(measure, lang)
            lines.append(_("Measure {number}: {title}").format(number=measure.number, title=measure.title.get(lang)))
        if hit.matched:
            lines.append("   " + _("Matches: {words}").format(words=_(", ").join(hit.matched)))
        buttons.append([button])
    buttons.append(nav_row(lang))
    return Reply("\n".join(lines), buttons)


def with_not_asked_button(reply: Reply, key: str, lang: str) -> Reply:
    """An answer to a free-text question, with a way to say it missed: above the navigation row."""
    _ = gettext_for(lang)
    button = [Button(_("Not what I asked"), not_asked_action(key))]
    return Reply(reply.text, [*reply.buttons[:-1], button, *reply.buttons[-1:]])


def not_asked(content: Content, lang: str, noted: bool) -> Reply:
    """The reply to "not what I asked": honest help, and whether the question was noted for the admins."""
    _ = gettext_for(lang)
    reply = no_answer(content, lang)
    if not noted:
        return reply
    return reply.after(_("Thank you for telling me. I have noted your question, so that the content can be improved."))


def no_answer(content: Content, lang: str) -> Reply:
    _ = gettext_for(lang)
    (coordinator,) = content.department_names([content.coordinator], lang)
    text = _(
        "Sorry, I could not find a measure of the action plan for that. You can browse the plans, "
        "or ask your nearest employment and startup service station (就业创业服务站) or {department}, "
        "which coordinates the plan."
    ).format(department=coordinator)
    return Reply(text, [[Button(_("Browse the 7 plans"), "plans")], nav_row(lang)])


def tell_me_more(lang: str) -> Reply:
    """The reply to a question that names nothing specific ("我想创业", "怎么申请")."""
    _ = gettext_for(lang)
    text = _(
        "Tell me a little more about what you need, and I will find the measures for it: for example "
        '"a loan to open a small shop", "cheap office space" or "a mentor for my project". '
        "Or let me match the measures to your situation."
    )
    return Reply(text, main_menu(lang).buttons)


def small_talk(kind: str, lang: str) -> Reply:
    _ = gettext_for(lang)
    if kind == "identity":
        return main_menu(lang, greeting=True)
    texts = {
        "greeting": _("Hello! What would you like to know? Ask in your own words, or pick a topic."),
        "thanks": _("You are welcome! Anything else? Ask away, or pick a topic."),
        "goodbye": _("Goodbye, and good luck with your business!"),
    }
    return Reply(texts[kind], main_menu(lang).buttons)
