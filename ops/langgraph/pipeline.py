"""Pipelined commits: plan the next change of a namespace on top of commits not yet durable.

LangGraph stores a task's writes and the next checkpoint from two threads at
once (``put_writes`` of step N while ``put`` of step N+1). Made one after the
other, each waits for its own fsync. Here the second is planned on the store
*as it will be* once the first lands (:class:`OverlayStore`: the store plus
the objects and ref values of the commits in flight, :class:`Pending`) and
queued behind it, so the store's writer thread commits both in one
transaction, one fsync. Every call still returns only once its own commit is
durable.

The chain is safe because a change compare-and-swaps every ref whose value it
depends on (see :mod:`ops.langgraph.plans`), and an overlay value is such a
value: if a commit in flight loses its race, a commit planned on top of it
that depends on it finds a ref it expected missing and fails too; the saver
then drops the overlay and plans again on the store. A batch only ever holds
changes planned on top of each other: when the overlay is dropped, the batch
held for lingering writes is sent at once, never joined by a change planned
without it (:meth:`Lanes.landed`).

Lingering: ``put_writes`` comes first and LangGraph waits only for the
``put`` (the next step starts when the checkpoint is stored), so a
``put_writes`` may linger up to :data:`LINGER` seconds for the ``put`` of the
same namespace and go into the store in the same commit: one durable commit
instead of two on the step's critical path. A ``put_writes`` that lingered in
vain (the run ended, or LangGraph waits for those writes before its ``put``, as
it does for ``DeltaChannel`` writes) commits alone, and that namespace stops
lingering for the next 2, 4, ... 64 calls.

It rests on the store port's non-blocking commit, :meth:`lattice.store.Store.submit`
(:func:`submitter`): LMDB and PostgreSQL queue it for their writer thread; the memory
store commits at once (nothing to overlap, but lingering writes still share a commit).
A synchronous saver on a store with ``commit_now`` (LMDB) commits on its own thread
instead when nothing else of the namespace is in flight, the usual case: no hand-off
to the writer thread and back. It commits outside the namespace's lock, as a submitted
commit is in flight: writes arriving meanwhile are planned on its overlay and linger
for the next put as before. A batch of the namespace sent meanwhile waits for that commit
to end and is then queued (:meth:`Lanes.release`): queued at once, the writer thread could
land it first, its compare-and-swap would fail (it expected this commit's values), and its
change, planned again without the overlay, would land before the commit under it (a step's
writes would then rewrite a checkpoint that is no longer the leaf).

Known refs: a namespace's refs as the saver last read them from the store, with its own
commits applied as they land (:class:`KnownRefs`), stand in for reading them again when it
plans the next ``put`` or ``put_writes`` of that namespace (one read of the store fewer
per call: a round trip on PostgreSQL). Reading them earlier is what a race does anyway: a
change compare-and-swaps every ref whose value it depends on (the head always), so a plan
on refs another writer has changed since loses and is planned again on the store, and the
saver forgets what it knew. Refs another writer added that the change does not depend on
(a branch tip, writes parked for a checkpoint) stay as they are, as they would after a race;
readers add parked writes to their checkpoint. ``prune`` and ``delete_for_runs``, which
must see every ref, and readers (``get_tuple``, ``list``) read the store.

Garbage collection: each change carries the store's collection ``generation`` read
before it was planned, and a batch the oldest of its changes' (see :mod:`lattice.gc`):
a sweep between planning and committing refuses the commit, and the saver plans again.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from lattice.store import RefUpdate, read_refs, submit_by_commit

from .naming import namespace_refs

__all__ = ["LINGER", "Pending", "KnownRefs", "OverlayStore", "Batch", "Lanes", "Settled", "Signal", "submitter"]

#: Seconds a ``put_writes`` waits for the next ``put`` of its namespace to share its commit.
LINGER = 0.002


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


class KnownRefs:
    """Per namespace (its head ref, ``key``), the refs of the namespace in the store as this saver
    last read them, with the ref updates of its commits applied as they landed. Bounded LRU;
    thread-safe.

    Args:
        capacity: namespaces remembered.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, bytes] | None:
        """The known refs of ``key`` (not a copy: do not change it), or None."""
        with self._lock:
            refs = self._entries.get(key)
            if refs is not None:
                self._entries.move_to_end(key)
            return refs

    def put(self, key: str, refs: dict[str, bytes]) -> None:
        """Remember ``refs``, the namespace's refs just read from the store."""
        with self._lock:
            self._entries[key] = refs
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def landed(self, key: str, updates: Mapping[str, tuple[bytes | None, bytes | None]]) -> None:
        """A commit of ``key`` landed with ``updates`` (``name -> (expected, new)``): apply the ones
        of its namespace. A ref known at neither value (commits resolved out of order, or the refs
        were read after this one landed and another changed them) forgets the namespace."""
        names, prefixes = namespace_refs(key)
        pfx = tuple(prefixes)
        with self._lock:
            old = self._entries.get(key)
            if old is None:
                return
            refs = dict(old)  # readers may hold the old dict
            for name, (expected, new) in updates.items():
                if name in names or name.startswith(pfx):
                    cur = refs.get(name)
                    if cur != new and cur != expected:
                        del self._entries[key]
                        return
                    if new is None:
                        refs.pop(name, None)
                    else:
                        refs[name] = new
            self._entries[key] = refs

    def forget(self, key: str | None = None) -> None:
        """Forget ``key``'s refs (None: every namespace's)."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


class OverlayStore:
    """Read-only view of ``store`` with the :class:`Pending` commits applied.

    With ``known`` and ``key``, a read of exactly the refs of ``key``'s namespace
    (:func:`namespace_refs`) is answered from ``known`` when it has them, else read from the
    store and remembered there; ``used_known`` says whether an answer came from ``known``."""

    __slots__ = ("store", "pending", "known", "key", "used_known")

    def __init__(self, store: Any, pending: Pending, known: KnownRefs | None = None, key: str | None = None) -> None:
        self.store, self.pending = store, pending
        self.known, self.key = known, key
        self.used_known = False

    def get(self, d: bytes) -> bytes:
        data = self.pending.objects.get(bytes(d))
        return data if data is not None else self.store.get(d)

    def has(self, d: bytes) -> bool:
        return bytes(d) in self.pending.objects or self.store.has(d)

    def ref(self, name: str) -> bytes | None:
        refs = self.pending.refs
        return refs[name] if name in refs else self.store.ref(name)

    def read_refs(self, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, bytes]:
        """:func:`lattice.store.read_refs` of the store, with the pending ref values applied."""
        wanted, pfx = set(names), tuple(prefixes)
        out = None
        if self.known is not None and self.key is not None:
            ns_names, ns_prefixes = namespace_refs(self.key)
            if wanted == set(ns_names) and set(pfx) == set(ns_prefixes):
                base = self.known.get(self.key)
                if base is None:
                    base = read_refs(self.store, ns_names, ns_prefixes)
                    self.known.put(self.key, base)
                else:
                    self.used_known = True
                out = dict(base)
        if out is None:
            out = read_refs(self.store, names, prefixes)
        for name, d in self.pending.refs.items():
            if name in wanted or (pfx and name.startswith(pfx)):
                if d is None:
                    out.pop(name, None)
                else:
                    out[name] = d
        return out

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        merged = dict(self.store.refs(prefix))
        for name, d in self.pending.refs.items():
            if name.startswith(prefix):
                if d is None:
                    merged.pop(name, None)
                else:
                    merged[name] = d
        return iter(sorted(merged.items()))


_NOTHING_PENDING = Pending()  # never added to: a view with no commit in flight


def submitter(store: Any) -> Callable[..., Any]:
    """The store's non-blocking commit, :meth:`lattice.store.Store.submit`:
    ``submit(objects, updates, *, generation=None) -> concurrent.futures.Future[bool]``, applied
    in call order. A store without one gets :func:`lattice.store.submit_by_commit` (commits at once)."""
    fn = getattr(store, "submit", None)
    return fn if fn is not None else functools.partial(submit_by_commit, store)


class Settled:
    """The outcome of a commit made on the calling thread, read as a future's: ``result()``
    returns whether it landed, or raises the store's error."""

    __slots__ = ("ok", "error")

    def __init__(self, ok: bool = False, error: BaseException | None = None) -> None:
        self.ok, self.error = ok, error

    def result(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.ok


class Signal:
    """A one-shot event for threads (``set`` once, ``wait`` with a timeout), on one C-level lock
    instead of :class:`threading.Event`'s condition variable. A batch's event is set by one thread
    only, the one that sends it (``_go``, under the namespace's lock) or commits it (``commit``)."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it is set, waiting up to ``timeout`` seconds (None: for ever) until it is."""
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else timeout):
            self._lock.release()  # let every other waiter through too
            return True
        return self._set


class Batch:
    """Changes of one namespace going into the store as one commit: objects, and per ref the first
    expected value and the last new one (each change was planned on top of the ones before)."""

    __slots__ = ("objects", "updates", "fut", "done", "generation", "count", "claim")

    def __init__(self, done: Any) -> None:
        self.objects: dict[bytes, bytes] = {}
        self.updates: dict[str, tuple[bytes | None, bytes | None]] = {}
        self.fut: Any = None  # the store's future (or a Settled), once submitted
        self.done = done  # an event set when submitted (Signal or asyncio.Event)
        self.generation: int | None = None  # the oldest collection generation its changes were planned at
        self.count = 0  # changes in it
        self.claim = False  # to be committed by the thread that sent it (Lanes.take, Lanes.commit)

    def add(self, objects: Mapping[bytes, bytes], updates: list, generation: int | None = None) -> None:
        self.count += 1
        if generation is not None:
            self.generation = generation if self.generation is None else min(self.generation, generation)
        self.objects.update(objects)
        for u in updates:
            old = self.updates.get(u.name)
            self.updates[u.name] = (u.expected if old is None else old[0], u.new)

    def ref_updates(self) -> list[RefUpdate]:
        return [RefUpdate(n, e, v) for n, (e, v) in self.updates.items()]


class Lanes:
    """Per namespace: the commits in flight (:class:`Pending`), the batch held for lingering writes,
    and whether to linger. The caller holds the namespace's lock around every method.

    Args:
        submit: the store's non-blocking commit (see :func:`submitter`).
        event: makes the event a batch signals when submitted (:class:`Signal`, ``asyncio.Event``).
        commit_now: the store's commit on the calling thread (``LmdbStore.commit_now``), used
            when nothing else of the namespace is in flight; None: always ``submit``.
    """

    def __init__(self, submit: Callable, event: Callable[[], Any], commit_now: Callable | None = None) -> None:
        self.submit, self.event, self.commit_now = submit, event, commit_now
        self.known = KnownRefs()
        self.pending: dict[str, Pending] = {}
        self.held: dict[str, Batch] = {}
        self.skip: dict[str, list[int]] = {}  # key -> [calls left without lingering, level]
        self.inline: dict[str, list[Batch]] = {}  # key committing on a caller's thread -> batches sent meanwhile

    def view(self, store: Any, key: str | None, known: bool = True) -> Any:
        """The store to plan on: with the commits in flight (and held) for ``key`` applied, and
        ``key``'s refs as known (:class:`KnownRefs`) unless ``known`` is false."""
        if key is None:
            return store
        p = self.pending.get(key)
        return OverlayStore(store, _NOTHING_PENDING if p is None else p, self.known if known else None, key)

    def enqueue(self, key: str | None, objects: Mapping[bytes, bytes], updates: list,
                linger: bool, generation: int | None = None) -> tuple[Batch, Pending | None]:
        """Queue a planned change; return its batch (submitted unless it lingers) and its :class:`Pending`.

        ``generation``: the store's collection generation read before the change was planned."""
        p = None
        if key is not None:
            p = self.pending.setdefault(key, Pending())
            p.add(objects, updates)
        batch = self.held.get(key) if key is not None else None
        if batch is not None:  # writes are lingering: join them
            batch.add(objects, updates, generation)
            if not linger:
                del self.held[key]
                self._go(batch, key)
                self.skip.pop(key, None)
            return batch, p
        batch = Batch(self.event())
        batch.add(objects, updates, generation)
        if linger and key is not None and self._may_linger(key):
            self.held[key] = batch
        else:
            self._go(batch, key)
        return batch, p

    def expire(self, key: str, batch: Batch) -> None:
        """The linger time is over: commit the batch alone if nobody took it, and linger less."""
        if self.held.get(key) is batch:
            del self.held[key]
            self._go(batch, key)
            left, level = self.skip.get(key, [0, 0])
            level = min(level + 1, 6)
            self.skip[key] = [2 ** level, level]

    def landed(self, key: str | None, p: Pending | None, ok: bool, batch: Batch | None = None) -> None:
        """A change resolved: forget the overlay once none is left, or at once if it lost
        (what was planned on top of it and depends on it loses too). ``batch``: the change's
        batch, whose ref updates the known refs take if it landed; a lost change forgets them.

        Forgetting the overlay also submits the batch held for lingering writes: it was planned
        on that overlay, and a change planned without it must not join it (a batch keeps each
        ref's first expected value, so a later change would undo the earlier ones unchecked);
        it goes into the store after that batch, and its compare-and-swap sees what landed."""
        if key is not None:
            if not ok:
                self.known.forget(key)
            elif batch is not None:
                self.known.landed(key, batch.updates)
        if p is None:
            return
        p.count -= 1
        if (not ok or p.count <= 0) and self.pending.get(key) is p:
            del self.pending[key]
            held = self.held.pop(key, None)
            if held is not None:
                self._go(held, key, claim=False)  # the thread that sees this landing is not the batch's

    def _may_linger(self, key: str) -> bool:
        st = self.skip.get(key)
        if st is None or st[0] <= 0:
            return True
        st[0] -= 1
        return False

    def take(self, batch: Batch) -> bool:
        """Whether the calling thread, which just sent ``batch`` (``enqueue``, ``expire``), is to
        commit it itself with :meth:`commit`, after releasing the namespace's lock."""
        if batch.claim:
            batch.claim = False
            return True
        return False

    def release(self, key: str) -> None:
        """The commit on the calling thread of ``key``'s batch (:meth:`take`) is over, landed or not:
        queue the batches of ``key`` sent meanwhile, in the order they were sent. The thread that
        committed calls it, holding the namespace's lock, before :meth:`landed`."""
        for batch in self.inline.pop(key, ()):
            self._send(batch)

    def commit(self, batch: Batch) -> None:
        """Commit a batch :meth:`take` gave this thread, on this thread (without the lock); its
        ``fut`` then holds the outcome (a :class:`Settled`) and its event is set."""
        gen = batch.generation
        try:
            batch.fut = Settled(self.commit_now(batch.objects, batch.ref_updates(),
                                                **({} if gen is None else {"generation": gen})))
        except BaseException as e:  # noqa: BLE001 - raised by result(), as a future would
            batch.fut = Settled(error=e)
        batch.done.set()

    def _go(self, batch: Batch, key: str | None, claim: bool = True) -> None:
        """Send ``batch`` to the store. It is left to the sending thread (see :meth:`take`) when
        ``claim``, ``key`` has nothing else in flight and the store can commit on the caller's
        thread; it waits while a batch of ``key`` is being committed that way (:meth:`release`);
        else it is queued."""
        if key is not None and self.commit_now is not None:
            waiting = self.inline.get(key)
            if waiting is not None:
                waiting.append(batch)
                return
            p = self.pending.get(key)
            if claim and p is not None and p.count == batch.count:
                batch.claim = True
                self.inline[key] = []
                return
        self._send(batch)

    def _send(self, batch: Batch) -> None:
        gen = batch.generation
        try:
            batch.fut = self.submit(batch.objects, batch.ref_updates(), **({} if gen is None else {"generation": gen}))
        except BaseException as e:  # noqa: BLE001 - e.g. the store closed: every waiter of the batch gets it
            batch.fut = concurrent.futures.Future()
            batch.fut.set_exception(e)
        batch.done.set()
