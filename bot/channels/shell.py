"""Chat with the assistant in the terminal: type a message, or a button's number to press it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from handlers.core import Assistant
from handlers.replies import Button, Incoming, Reply

CHANNEL = "shell"


def render(replies: list[Reply]) -> tuple[str, list[Button]]:
    """The replies as terminal text, with their buttons numbered from 1."""
    lines: list[str] = []
    buttons: list[Button] = []
    for reply in replies:
        lines.append(reply.text)
        for row in reply.buttons:
            for button in row:
                buttons.append(button)
                lines.append(f"  [{len(buttons)}] {button.label}")
        lines.append("")
    return "\n".join(lines), buttons


async def run_shell(
    assistant: Assistant, read: Callable[[str], str] = input, write: Callable[[str], None] = print
) -> None:
    user_id = secrets.token_hex(8)
    text, buttons = render(await assistant.handle(Incoming(CHANNEL, user_id, text="/start")))
    write(text)
    while True:
        try:
            line = (await asyncio.to_thread(read, "> ")).strip()
        except (EOFError, KeyboardInterrupt):
            return
        if line in ("/quit", "/exit"):
            return
        if line.isdigit() and 1 <= int(line) <= len(buttons):
            incoming = Incoming(CHANNEL, user_id, action=buttons[int(line) - 1].action)
        else:
            incoming = Incoming(CHANNEL, user_id, text=line)
        text, buttons = render(await assistant.handle(incoming))
        write(text)
