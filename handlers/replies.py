"""What goes in and out of the core: channel-neutral messages and replies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TEXT_CHARS = 2000
# Said when the core itself failed (e.g. the database is away), so it cannot be looked up per language.
SORRY = (
    "抱歉，出了点问题，请稍后再试。/ Sorry, something went wrong. Please try again. / "
    "죄송해요, 잠시 후 다시 시도해 주세요."
)


@dataclass(frozen=True)
class Button:
    label: str
    action: str


@dataclass
class Reply:
    text: str
    buttons: list[list[Button]] = field(default_factory=list)

    def after(self, notice: str) -> Reply:
        """This reply with a notice put before its text."""
        return Reply(f"{notice}\n\n{self.text}", self.buttons)


@dataclass(frozen=True)
class Incoming:
    """A user's message or button press, as a channel hands it to the core."""

    channel: str
    user_id: str
    text: str = ""
    action: str | None = None
    language: str | None = None


def split_text(text: str, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """Split text into chunks of at most `limit` (measured by `size`), at paragraph or line breaks where possible."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if size(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while size(line) > limit:
            cut = _longest_prefix(line, limit, size)
            chunks.append(line[:cut])
            line = line[cut:]
        current = line
    if current or not chunks:
        chunks.append(current)
    return chunks


def _longest_prefix(line: str, limit: int, size: Callable[[str], int]) -> int:
    low, high = 1, len(line)
    while low < high:
        mid = (low + high + 1) // 2
        if size(line[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low
