"""The content being served, swapped atomically when the files change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from content.loader import Content, ContentError, ContentInvalid, load_content

log = logging.getLogger(__name__)


class ContentStore:
    """Holds the last good content. A broken edit is refused and the old content keeps serving."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._content: Content | None = None
        self.last_errors: list[ContentError] = []
        self._listeners: list[Callable[[Content], None]] = []

    @property
    def current(self) -> Content:
        if self._content is None:
            raise RuntimeError("content has not been loaded")
        return self._content

    def on_change(self, listener: Callable[[Content], None]) -> None:
        """Call `listener` with every newly loaded content (e.g. to rebuild an index)."""
        self._listeners.append(listener)
        if self._content is not None:
            listener(self._content)

    def load(self) -> Content:
        """Load the folder; raises ContentInvalid at start when there is nothing good to serve."""
        content = load_content(self.folder)
        self._install(content)
        return content

    async def reload(self) -> list[ContentError]:
        """Reload from disk; returns the errors that kept the new files from going live."""
        try:
            content = await asyncio.to_thread(load_content, self.folder)
        except ContentInvalid as exc:
            self.last_errors = exc.errors
            for error in exc.errors:
                log.error("content not reloaded: %s", error)
            return exc.errors
        if self._content is None or content.version != self._content.version:
            self._install(content)
            log.info("content reloaded (version %s)", content.version)
        self.last_errors = []
        return []

    async def watch(self, debounce_ms: int = 300) -> None:
        """Reload whenever a file under the folder changes. Runs until cancelled."""
        from watchfiles import awatch

        async for _changes in awatch(self.folder, debounce=debounce_ms, recursive=True):
            await self.reload()

    def _install(self, content: Content) -> None:
        for listener in self._listeners:
            listener(content)
        self._content = content
