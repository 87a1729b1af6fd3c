"""Pipelined commits: plan the next change of a namespace on top of commits not yet durable.

LangGraph stores a task's writes and the next checkpoint from two threads at
once (``put_writes`` of step N while ``put`` of step N+1). Made one after the
other, each waits for its own fsync. Here the second is planned on the store
*as it will be* once the first lands (:class:`OverlayStore`: the store plus
the objects and ref values of the commits in flight, :class:`Pending`) and
queued behind it, so the store's writer thread commits both in one
transaction, one fsync. Every call still returns only once its own commit is
durable.

The chain is safe because every change to a namespace compare-and-swaps its
head ref: if a commit in flight loses its race, each commit planned on top of
it finds the head it expected missing and fails too; the saver then drops the
overlay and plans again on the store.

This needs a store that queues a commit without waiting for it
(:func:`submitter`); otherwise the saver commits one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["Pending", "OverlayStore", "submitter"]


class Pending:
    """The commits of one namespace submitted and not yet confirmed: their objects and the ref values
    they set (``None``: deleted), and how many are in flight."""

    __slots__ = ("objects", "refs", "count")

    def __init__(self) -> None:
        self.objects: dict[bytes, bytes] = {}
        self.refs: dict[str, bytes | None] = {}
        self.count = 0

    def add(self, objects: Mapping[bytes, bytes], updates: list) -> None:
        """Record a commit just submitted."""
        self.objects.update(objects)
        for u in updates:
            self.refs[u.name] = u.new
        self.count += 1


class OverlayStore:
    """Read-only view of ``store`` with the :class:`Pending` commits applied."""

    __slots__ = ("store", "pending")

    def __init__(self, store: Any, pending: Pending) -> None:
        self.store, self.pending = store, pending

    def get(self, d: bytes) -> bytes:
        data = self.pending.objects.get(bytes(d))
        return data if data is not None else self.store.get(d)

    def has(self, d: bytes) -> bool:
        return bytes(d) in self.pending.objects or self.store.has(d)

    def ref(self, name: str) -> bytes | None:
        refs = self.pending.refs
        return refs[name] if name in refs else self.store.ref(name)

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        merged = dict(self.store.refs(prefix))
        for name, d in self.pending.refs.items():
            if name.startswith(prefix):
                if d is None:
                    merged.pop(name, None)
                else:
                    merged[name] = d
        return iter(sorted(merged.items()))


def submitter(store: Any) -> Callable[[Mapping[bytes, bytes], list], Any] | None:
    """The store's non-blocking commit: ``submit(objects, updates) -> concurrent.futures.Future[bool]``
    that queues the commit in call order, or None if it has none.

    A store may offer ``submit``; :class:`~lattice.lmdb.LmdbStore` has it as ``_submit``
    (the queue behind ``commit``/``acommit``) until the port publishes it.
    """
    fn = getattr(store, "submit", None)
    if fn is None:
        from lattice.lmdb import LmdbStore

        if isinstance(store, LmdbStore):
            fn = store._submit
    return fn
