"""Change notification: wake whoever waits for a ref to move.

A seam: :class:`Notifier` is what the engine needs; :class:`LocalNotifier`
serves one process (an :class:`asyncio.Event` per watched ref). A backend
shared by several processes replaces it with one that also hears the other
processes' commits and wakes their watchers here
(:class:`ops.engine.pg.PgNotifier`: PostgreSQL LISTEN/NOTIFY), and tells the
:attr:`~LocalNotifier.remote` listeners (the scheduler) which refs other processes moved.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Callable, Protocol

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

    async def start(self) -> None:
        """Begin hearing other processes' commits (before the runtime recovers and serves)."""
        ...

    async def close(self) -> None:
        """Stop hearing them. Idempotent."""
        ...


class LocalNotifier:
    """Watchers of one process. Events are held weakly: only while somebody waits on them.

    Attributes:
        remote: ``ref -> None`` callables told of each ref another process moved
            (``None``: any ref may have moved, e.g. after a lost connection); never
            called by this class, whose commits are all local.
    """

    def __init__(self) -> None:
        self._events: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self.remote: list[Callable[[str | None], None]] = []

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

    def wake_all(self) -> None:
        """Wake every watcher (each re-reads what it guards: a spurious wake-up is harmless)."""
        events = list(self._events.values())
        self._events.clear()
        for ev in events:
            ev.set()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def changed(self, ref: str, timeout: float | None) -> bool:
        """Wait until ``ref`` moves or ``timeout`` seconds pass; whether it moved."""
        try:
            await asyncio.wait_for(self.watch(ref).wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
