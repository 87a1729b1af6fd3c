"""The store port: a tiny, synchronous, bytes-only interface.

Everything else in :mod:`lattice` (trees, paths, commits, history) is built on
these methods as plain functions. A backend stores two things:

* **objects**: immutable byte strings keyed by their 32-byte blake3 digest;
* **refs**: mutable names (``str``) pointing at a digest, moved only by
  compare-and-swap inside :meth:`Store.commit`.

Backends: :class:`lattice.memory.MemoryStore`, :class:`lattice.lmdb.LmdbStore`,
:class:`lattice.sqlite.SqliteStore`, :class:`lattice.postgres.PostgresStore`. Every backend runs the contract suite
:class:`lattice.testing.StoreContract`.
"""

from __future__ import annotations

import concurrent.futures
import queue
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

from .digest import DIGEST_SIZE, digest
from .errors import CorruptObject, InvalidValue

__all__ = ["RefUpdate", "Store", "check_object", "check_ref_updates", "drain", "read_refs", "submit_by_commit"]


class RefUpdate(NamedTuple):
    """One compare-and-swap on a ref.

    Attributes:
        name: the ref name (non-empty str).
        expected: the digest the ref must hold now, or ``None`` if it must not exist.
        new: the digest to set, or ``None`` to delete the ref.
    """

    name: str
    expected: bytes | None
    new: bytes | None


@runtime_checkable
class Store(Protocol):
    """The port every backend implements.

    All methods are synchronous and thread-safe. ``acommit`` is the same as
    ``commit`` for use on an event loop: a backend whose commit blocks on I/O
    (LMDB's fsync) runs it on its writer thread and groups concurrent commits
    into one transaction.
    """

    def get(self, d: bytes) -> bytes:
        """Return the object stored under digest ``d``.

        Raises:
            NotFound: no object has that digest.
            CorruptObject: the stored bytes do not hash to ``d``.
        """

    def has(self, d: bytes) -> bool:
        """Return whether an object with digest ``d`` is stored."""

    def ref(self, name: str) -> bytes | None:
        """Return the digest ``name`` points at, or ``None``."""

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """Yield ``(name, digest)`` for every ref starting with ``prefix``, in name order."""

    def commit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate]) -> bool:
        """Store ``objects`` and apply every ref update atomically.

        Args:
            objects: ``{digest: bytes}``; each digest must be blake3 of its bytes.
            updates: compare-and-swaps, all applied or none.

        Returns:
            ``True`` when every update's ``expected`` matched and all were
            applied with the objects; ``False`` (and nothing written) otherwise.

        Raises:
            InvalidValue: a digest does not match its bytes, or a ref name is empty.
            StoreError: the backend failed.
        """

    async def acommit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate]) -> bool:
        """:meth:`commit` for an event loop (never blocks the loop on I/O)."""

    def submit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate]
               ) -> concurrent.futures.Future[bool]:
        """Queue :meth:`commit` without waiting for it; the future resolves to its result.

        Commits submitted one after the other from one thread are applied in that order
        (a backend with a writer thread may apply them in one transaction), so a caller
        may submit a change planned on top of one still in flight: if the first loses its
        compare-and-swap, the second finds the head it expected missing and loses too.
        Takes ``generation=`` like :meth:`commit` on a backend that collects garbage.

        Raises:
            InvalidValue: as :meth:`commit`, at once (nothing queued).
            StoreError: the store is closed, at once; a backend failure is the future's
                exception (a backend without a writer thread, whose commit runs inside
                ``submit``, may raise it at once: :func:`submit_by_commit`).
        """

    # Garbage collection (:mod:`lattice.gc`). Backends that support it (all four) also have:
    #
    # * ``generation: int``: bumped by every sweep. ``commit``/``acommit``/``submit`` take a
    #   keyword ``generation=``: when given and not the current one (a sweep happened since
    #   the writer read), the commit is refused (``False``, nothing written). A backend
    #   shared by several processes (PostgreSQL) may hold an older value than the database
    #   until its next commit: a commit with it is refused once, and the value catches up.
    # * ``objects() -> Iterator[(digest, size)]``: every stored object.
    # * ``gc_begin()``: turn the write barrier on (:class:`lattice.gc.Barrier`).
    # * ``gc_sweep(live) -> (objects freed, bytes freed)``: atomically with commits, add
    #   to ``live`` what the barrier protected and the current heads reach, delete every
    #   other object, turn the barrier off, bump ``generation``. ``live=None``: only turn
    #   the barrier off.
    #
    # A backend may also have ``read_refs(names, prefixes) -> {name: digest}``: the refs named
    # and those starting with a prefix, read as one snapshot (all four do; see :func:`read_refs`).
    #
    # A backend with a writer thread may also have ``commit_now(objects, updates, *, generation)
    # -> bool``: ``commit`` in a write transaction of the calling thread, which may land before
    # commits submitted earlier and not yet applied (LMDB, SQLite; the sync LangGraph saver uses it when
    # nothing of the namespace is in flight, see :mod:`ops.langgraph.pipeline`).
    #
    # A backend whose reads cross a network may also have ``get_many(digests) -> {digest:
    # bytes}`` (those stored and whole): the collector's mark and bundle export then read a
    # layer of objects per call (PostgreSQL; SQLite reads them in one snapshot).

    def close(self) -> None:
        """Release the backend's resources. Idempotent; other calls after it are errors."""


def submit_by_commit(store: Any, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate], *,
                     generation: int | None = None) -> concurrent.futures.Future[bool]:
    """:meth:`Store.submit` for a backend without a writer thread: run ``store.commit`` now and
    return a future that is already resolved to its result.

    Raises:
        InvalidValue, StoreError: whatever ``store.commit`` raises (at once).
    """
    kw = {} if generation is None else {"generation": generation}
    ok = store.commit(objects, updates, **kw)
    fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
    fut.set_result(ok)
    return fut


def drain(q: queue.SimpleQueue, first: Any, stop: object, full: Callable[[list], bool]) -> tuple[list, bool]:
    """A writer thread's next group (group commit): ``first`` and what is queued behind it now, taken
    until ``full(group)`` or the queue is empty; ``(group, whether stop came next)`` (``stop`` is not in
    the group, and nothing after it is taken)."""
    group = [first]
    while not full(group):
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is stop:
            return group, True
        group.append(item)
    return group, False


def read_refs(store: Any, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, bytes]:
    """``{name: digest}`` of the refs in ``names`` and of those starting with one of ``prefixes``
    (absent refs are left out).

    One consistent snapshot when the backend has ``read_refs`` (all four do: one read
    transaction, one statement); otherwise each is read in turn, ``names`` first in the order
    given, so a caller that reads a version ref first still sees every later change after it.

    Raises:
        StoreError: the backend failed.
    """
    fn = getattr(store, "read_refs", None)
    if fn is not None:
        return fn(names, prefixes)
    out = {}
    for name in names:
        d = store.ref(name)
        if d is not None:
            out[name] = d
    for prefix in prefixes:
        out.update(store.refs(prefix))
    return out


def check_object(d: bytes, data: bytes) -> bytes:
    """Return ``data`` if it hashes to ``d``.

    Raises:
        CorruptObject: the digest of ``data`` differs from ``d``.
    """
    if digest(data) != d:
        raise CorruptObject(f"object {d.hex()} does not match its digest ({len(data)} bytes)")
    return data


def check_ref_updates(objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate]) -> list[RefUpdate]:
    """Validate a commit's arguments before any backend writes; return the updates as a list.

    Raises:
        InvalidValue: a digest is not 32 bytes or does not match its object,
            a ref name is empty or appears twice.
    """
    for d, data in objects.items():
        if len(d) != DIGEST_SIZE or digest(data) != d:
            raise InvalidValue(f"object keyed {bytes(d).hex()} is not the blake3 digest of its bytes")
    ups = [RefUpdate(*u) for u in updates]
    seen = set()
    for u in ups:
        if not isinstance(u.name, str) or not u.name:
            raise InvalidValue(f"ref name must be a non-empty str, got {u.name!r}")
        if u.name in seen:
            raise InvalidValue(f"ref {u.name!r} updated twice in one commit")
        seen.add(u.name)
        for dd in (u.expected, u.new):
            if dd is not None and len(dd) != DIGEST_SIZE:
                raise InvalidValue(f"ref {u.name!r}: digest must be {DIGEST_SIZE} bytes")
    return ups

