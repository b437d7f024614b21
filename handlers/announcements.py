"""Screens for subscriptions and for staff composing announcements, and the announcement itself."""

from __future__ import annotations

import re

from content.loader import Content
from handlers.actions import measure_action
from handlers.cards import nav_row
from handlers.i18n import gettext_for
from handlers.replies import Button, Reply
from handlers.vocabulary import FIELDS, label
from storage.announcements import Progress

MEASURE_LINK = re.compile(r"/m(\d{1,2})\b")


def announcement_reply(text: str, announcement_id: int, lang: str = "zh") -> Reply:
    """An announcement as subscribers get it: the text, a button for each measure it links, and Stop."""
    _ = gettext_for(lang)
    buttons = [
        [Button(_("Open measure {number}").format(number=n), measure_action(int(n)))]
        for n in dict.fromkeys(MEASURE_LINK.findall(text))
        if 1 <= int(n) <= 24
    ]
    buttons.append([Button(_("Stop announcements"), "unsub")])
    header = _("Announcement from the employment and startup service station (就业创业服务站):")
    return Reply(f"{header}\n\n{text}", buttons)


def subscription_reply(content: Content, topics: list[int], district: str | None, lang: str) -> Reply:
    _ = gettext_for(lang)
    sep = _(", ")
    chosen = sep.join(content.plans[t].short_name.get(lang) for t in sorted(topics)) or _("all topics")
    where = label(district, lang) if district else _("all of Weihai")
    text = _(
        "You are subscribed to announcements from the service stations.\n"
        "Topics: {topics}\nDistrict: {district}\n\n"
        "Tap topics to choose only some (none chosen means all). /unsubscribe or the Stop button "
        "under any announcement stops them at once."
    ).format(topics=chosen, district=where)
    buttons = [
        [
            Button(("✓ " if plan.number in topics else "") + plan.short_name.get(lang), f"stp:{plan.number}")
            for plan in list(content.plans.values())[i : i + 2]
        ]
        for i in range(0, len(content.plans), 2)
    ]
    buttons.append([Button(_("Choose district"), "sdist")])
    buttons.append([Button(_("Stop announcements"), "unsub"), *nav_row(lang)])
    return Reply(text, buttons)


def district_menu(lang: str) -> Reply:
    _ = gettext_for(lang)
    options = [Button(label(d, lang), f"sdi:{d}") for d in FIELDS["district"]]
    buttons = [options[i : i + 2] for i in range(0, len(options), 2)]
    buttons.append([Button(_("All of Weihai"), "sdi:all")])
    return Reply(_("Announcements from which district?"), buttons)


def audience_menu(content: Content, text: str, lang: str) -> Reply:
    _ = gettext_for(lang)
    buttons = [[Button(_("All my subscribers"), "aud:all")]]
    plans = [
        Button(_("Topic: {plan}").format(plan=p.short_name.get(lang)), f"aut:{p.number}")
        for p in content.plans.values()
    ]
    buttons += [plans[i : i + 2] for i in range(0, len(plans), 2)]
    people = [Button(label(i, lang), f"aui:{i}") for i in FIELDS["identity"] if i != "other"]
    buttons += [people[i : i + 2] for i in range(0, len(people), 2)]
    buttons.append([Button(_("Cancel"), "acancel")])
    return Reply(_("Who should get this announcement?\n\n{text}").format(text=text), buttons)


def preview(text: str, audience: str, recipients: int, lang: str) -> Reply:
    _ = gettext_for(lang)
    body = _(
        "Preview. {recipients} subscriber(s) will receive it ({audience}):\n\n{text}\n\n"
        "Send it now, tomorrow at 09:00, or cancel?"
    ).format(recipients=recipients, audience=audience, text=text)
    buttons = [
        [Button(_("Send now"), "asend"), Button(_("Tomorrow 09:00"), "asend_later")],
        [Button(_("Cancel"), "acancel")],
    ]
    return Reply(body, buttons)


def delivery_report(progress: Progress, lang: str) -> Reply:
    _ = gettext_for(lang)
    c = progress.counts
    text = _(
        "Announcement #{id} ({status}): {sent} sent, {failed} failed, {blocked} blocked the bot, "
        "{deferred} waiting for the user's next message, {pending} still to send, of {total}."
    ).format(
        id=progress.announcement_id,
        status=progress.status,
        deferred=c["deferred"],
        sent=c["sent"],
        failed=c["failed"],
        blocked=c["blocked"],
        pending=c["pending"] + c["sending"],
        total=progress.total,
    )
    return Reply(text, [])
