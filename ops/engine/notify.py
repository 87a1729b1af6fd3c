"""Change notification: wake whoever waits for a ref to move.

A seam: :class:`Notifier` is what the engine needs; :class:`LocalNotifier`
serves one process (an :class:`asyncio.Event` per watched ref). A backend
shared by several processes replaces it with one that also hears the other
processes' commits (e.g. PostgreSQL LISTEN/NOTIFY) and calls :meth:`notify`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

__all__ = ["Notifier", "LocalNotifier"]


class Notifier(Protocol):
    """Announces commits to waiters."""

    def watch(self, ref: str) -> asyncio.Event:
        """An event set at the next commit that moves ``ref``.

        Take the event *before* reading the state it guards, then await it: a
        commit in between sets it, so no change is missed. One event serves
        every watcher of a ref until it fires; watch again afterwards.
        """
        ...

    def notify(self, ref: str) -> None:
        """Wake every watcher of ``ref`` (called after each commit that moved it)."""
        ...

    def watched(self) -> list[str]:
        """The refs somebody waits on now."""
        ...


class LocalNotifier:
    """Watchers of one process. Events are held weakly: only while somebody waits on them."""

    def __init__(self) -> None:
        self._events: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()

    def watch(self, ref: str) -> asyncio.Event:
        ev = self._events.get(ref)
        if ev is None:
            ev = self._events[ref] = asyncio.Event()
        return ev

    def notify(self, ref: str) -> None:
        ev = self._events.pop(ref, None)
        if ev is not None:
            ev.set()

    def watched(self) -> list[str]:
        return list(self._events.keys())

    async def changed(self, ref: str, timeout: float | None) -> bool:
        """Wait until ``ref`` moves or ``timeout`` seconds pass; whether it moved."""
        try:
            await asyncio.wait_for(self.watch(ref).wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
