"""The outcome follow-up: some days after a founder opened a measure or got a match, ask once
whether they applied and whether it helped. Asked with their next message, so no chat id is kept
for it; "don't ask again" is respected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from content.loader import Content
from handlers.i18n import gettext_for
from handlers.replies import Button, Reply

ASK_AFTER = timedelta(days=7)
ANSWERS = ("helped", "no_help", "not_yet", "off")


def schedule(followup: dict[str, Any] | None, measure: int, now: datetime) -> dict[str, Any] | None:
    """The follow-up to store after a user saw `measure`; None when there is nothing to change
    (one question per user: already planned, asked, answered or declined)."""
    if followup is not None:
        return None
    return {"measure": measure, "due": (now + ASK_AFTER).isoformat(), "state": "pending"}


def due(followup: dict[str, Any] | None, now: datetime) -> int | None:
    """The measure to ask about now, if the follow-up is due."""
    if not followup or followup.get("state") != "pending":
        return None
    when = datetime.fromisoformat(followup["due"])
    return int(followup["measure"]) if (when if when.tzinfo else when.replace(tzinfo=UTC)) <= now else None


def question(content: Content, measure: int, lang: str) -> Reply:
    _ = gettext_for(lang)
    title = content.measures[measure].title.get(lang) if measure in content.measures else ""
    text = _(
        "A quick question: some days ago you looked at measure {number} ({title}). Did you apply, and did it help?"
    ).format(number=measure, title=title)
    buttons = [
        [Button(_("Applied, it helped"), "fu:helped"), Button(_("Applied, it did not help"), "fu:no_help")],
        [Button(_("Not yet"), "fu:not_yet"), Button(_("Don't ask me again"), "fu:off")],
    ]
    return Reply(text, buttons)


def thanks(answer: str, lang: str) -> Reply:
    _ = gettext_for(lang)
    if answer == "off":
        return Reply(_("All right, I will not ask again."), [])
    return Reply(_("Thank you! Your answer helps the city improve these measures."), [])
