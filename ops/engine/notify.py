"""Change notification: wake whoever waits for a ref to move.

A seam: :class:`Notifier` is what the engine needs; :class:`LocalNotifier`
serves one process (an :class:`asyncio.Event` per watched ref). A backend
shared by several processes replaces it with one that also hears the other
processes' commits and wakes their watchers here
(:class:`ops.engine.pg.PgNotifier`: PostgreSQL LISTEN/NOTIFY), and tells the
:attr:`~LocalNotifier.remote` listeners (the scheduler) which refs other processes moved.

Besides one ref, a watcher can follow every ref under a prefix (``g/<caller>/``: all
of a caller's agents) with :meth:`LocalNotifier.subscribe`: a :class:`Subscription`
collects the names of the refs moved since it was last read, or says that any of
them may have moved (after :meth:`LocalNotifier.wake_all`, which a shared backend
calls when it may have missed another process's commits).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Callable, Protocol

__all__ = ["Notifier", "LocalNotifier", "Subscription"]


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

    def subscribe(self, prefix: str) -> "Subscription":
        """Follow every ref whose name starts with ``prefix`` (see :class:`Subscription`)."""
        ...

    async def start(self) -> None:
        """Begin hearing other processes' commits (before the runtime recovers and serves)."""
        ...

    async def close(self) -> None:
        """Stop hearing them. Idempotent."""
        ...


class Subscription:
    """The refs under a prefix moved since the last :meth:`take`: what a stream of many refs needs.

    Take it *before* reading the state it guards (as :meth:`Notifier.watch`), then
    loop: await :attr:`changed`, :meth:`take` the names, read those refs. Close it
    when done (or use it as a context manager); an unclosed one is dropped with its
    last reference.

    Args:
        prefix: a ref name prefix that ends with ``/`` (``g/alice/``), or a whole ref name.
        limit: moved names kept between takes; past it, :meth:`take` answers None.

    Attributes:
        changed: set when something moved since the last :meth:`take`.
    """

    def __init__(self, owner: "LocalNotifier", prefix: str, limit: int = 10_000):
        self.prefix, self.limit, self._owner = prefix, limit, owner
        self.changed = asyncio.Event()
        self._moved: dict[str, None] | None = {}

    def moved(self, ref: str | None) -> None:
        """Note that ``ref`` moved (None: any ref under the prefix may have)."""
        if ref is None or self._moved is None or len(self._moved) >= self.limit:
            self._moved = None
        else:
            self._moved[ref] = None
        self.changed.set()

    def take(self) -> list[str] | None:
        """The refs moved since the last take, in order of first move (None: any may have, read
        them all); clears :attr:`changed`."""
        out, self._moved = self._moved, {}
        self.changed.clear()
        return None if out is None else list(out)

    def close(self) -> None:
        """Stop following. Idempotent."""
        self._owner._unsubscribe(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prefixes(ref: str) -> list[str]:
    """The prefixes a subscription to ``ref`` can have: each ending at a ``/``, and the name.

    >>> _prefixes("g/alice/Bob")
    ['g/', 'g/alice/', 'g/alice/Bob']
    """
    out = [ref[:i + 1] for i, ch in enumerate(ref) if ch == "/"]
    out.append(ref)
    return out


class LocalNotifier:
    """Watchers of one process. Events are held weakly: only while somebody waits on them.

    Attributes:
        remote: ``ref -> None`` callables told of each ref another process moved
            (``None``: any ref may have moved, e.g. after a lost connection); never
            called by this class, whose commits are all local.
    """

    def __init__(self) -> None:
        self._events: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self._subs: dict[str, weakref.WeakSet[Subscription]] = {}
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
        if self._subs:
            for prefix in _prefixes(ref):
                for sub in list(self._subs.get(prefix, ())):
                    sub.moved(ref)

    def watched(self) -> list[str]:
        return list(self._events.keys())

    def subscribe(self, prefix: str) -> Subscription:
        """A :class:`Subscription` to the refs under ``prefix`` (a prefix ending with ``/``, or one name).

        Raises:
            ValueError: ``prefix`` is empty.
        """
        if not prefix:
            raise ValueError("subscribe to a non-empty prefix")
        sub = Subscription(self, prefix)
        self._subs.setdefault(prefix, weakref.WeakSet()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.prefix)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.prefix]

    def subscriptions(self) -> int:
        """How many subscriptions are open (for the tests: a closed stream leaves none)."""
        return sum(len(s) for s in self._subs.values())

    def wake_all(self) -> None:
        """Wake every watcher (each re-reads what it guards: a spurious wake-up is harmless), and
        tell every subscription that any of its refs may have moved."""
        events = list(self._events.values())
        self._events.clear()
        for ev in events:
            ev.set()
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.moved(None)

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
