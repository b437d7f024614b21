"""The local web chat: a page and a JSON endpoint over the same core, for trying the assistant without a token."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from handlers.core import Assistant
from handlers.replies import SORRY, Incoming

log = logging.getLogger(__name__)

CHANNEL = "web"
STATIC = Path(__file__).resolve().parent.parent / "static"
ASSISTANT_KEY = web.AppKey("assistant", Assistant)
_SESSION = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_BODY_BYTES = 64 * 1024


def add_web_chat(app: web.Application, assistant: Assistant) -> None:
    app[ASSISTANT_KEY] = assistant
    app.router.add_get("/", chat_page)
    app.router.add_post("/chat", chat_message)


async def chat_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "chat.html")


async def chat_message(request: web.Request) -> web.Response:
    """POST {"session": id, "text": "..."} or {"session": id, "action": "..."}; answers {"replies": [...]}."""
    try:
        body = await request.json()
    except (ValueError, RecursionError, LookupError):  # bad JSON, nesting too deep, unknown charset
        return _bad_request("the body must be JSON")
    if not isinstance(body, dict):
        return _bad_request("the body must be a JSON object")
    session, text, action, lang = (body.get(k) for k in ("session", "text", "action", "lang"))
    if not isinstance(session, str) or not _SESSION.fullmatch(session):
        return _bad_request("session must be 8 to 64 letters, digits, '-' or '_'")
    if not isinstance(text, str | None) or not isinstance(action, str | None) or not isinstance(lang, str | None):
        return _bad_request("text, action and lang must be strings")
    incoming = Incoming(CHANNEL, session, text=text or "", action=action, language=lang)
    try:
        replies = await request.app[ASSISTANT_KEY].handle(incoming)
    except Exception:
        log.exception("the local chat could not answer")
        return web.json_response({"replies": [{"text": SORRY, "buttons": []}]}, status=503)
    return web.json_response({"replies": [asdict(reply) for reply in replies]})


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)
