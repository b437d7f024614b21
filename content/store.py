"""The content being served, swapped atomically when the files change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from content.loader import Content, ContentError, ContentInvalid, Validator, load_checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One version of the content with everything derived from it (such as the search index)."""

    content: Content
    views: dict[str, Any] = field(default_factory=dict)


class ContentStore:
    """Holds the last good content. A broken edit is refused and the old content keeps serving.

    Views (e.g. a search index) are built from each new content in the loading thread and
    swapped in with it, so a reader never sees new content with an old index.
    """

    def __init__(self, folder: Path, validators: list[Validator] | None = None) -> None:
        self.folder = Path(folder)
        self.validators = validators or []
        self._snapshot: Snapshot | None = None
        self._views: dict[str, Callable[[Content], Any]] = {}
        self.last_errors: list[ContentError] = []

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            raise RuntimeError("content has not been loaded")
        return self._snapshot

    @property
    def current(self) -> Content:
        return self.snapshot.content

    def add_view(self, name: str, build: Callable[[Content], Any]) -> None:
        """Build `name` with `build(content)` for every content served from now on."""
        self._views[name] = build
        if self._snapshot is not None:
            views = {**self._snapshot.views, name: build(self._snapshot.content)}
            self._snapshot = Snapshot(self._snapshot.content, views)

    def load(self) -> Content:
        """Load the folder; raises ContentInvalid at start when there is nothing good to serve."""
        self._snapshot = self._build(load_checked(self.folder, self.validators))
        return self._snapshot.content

    async def reload(self) -> list[ContentError]:
        """Reload from disk; returns the errors that kept the new files from going live."""
        try:
            content = await asyncio.to_thread(load_checked, self.folder, self.validators)
        except ContentInvalid as exc:
            self.last_errors = exc.errors
            for error in exc.errors:
                log.error("content not reloaded: %s", error)
            return exc.errors
        self.last_errors = []
        if self._snapshot is not None and content.version == self._snapshot.content.version:
            return []
        self._snapshot = await asyncio.to_thread(self._build, content)
        log.info("content reloaded (version %s)", content.version)
        return []

    async def watch(self, debounce_ms: int = 300) -> None:
        """Reload whenever a file under the folder changes. Runs until cancelled."""
        from watchfiles import awatch

        async for _changes in awatch(self.folder, debounce=debounce_ms, recursive=True):
            await self.reload()

    def _build(self, content: Content) -> Snapshot:
        return Snapshot(content, {name: build(content) for name, build in self._views.items()})
