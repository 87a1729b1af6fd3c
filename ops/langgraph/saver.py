"""LangGraph checkpointers on the lattice: :class:`LatticeSaver` and :class:`AsyncLatticeSaver`.

Open one like LangGraph's own savers::

    with LatticeSaver.from_conn_string("/var/lib/app/lg") as saver:      # an LMDB directory
        graph = builder.compile(checkpointer=saver)
    async with AsyncLatticeSaver.from_conn_string("postgresql://app@db/lattice") as saver:
        ...                                                               # or ":memory:"

How a thread is laid out (refs, commits, roots) is described in
:mod:`ops.langgraph` (the package docstring).

Writers: every change to a namespace of a thread is one atomic store commit
that moves its refs by compare-and-swap (the leaf it moves on; for a new
branch or a rewrite, the namespace's version ref too: see :mod:`ops.langgraph.plans`). In one process, writers of the same
namespace take turns on a lock to plan, and plan on top of the commits still in
flight and on the refs the saver last read or wrote, and may share one commit
(:mod:`ops.langgraph.pipeline`). A
lost race (another process, or a sync and an async caller at once) re-reads
the refs and applies the change again on what it finds, after a jittered
backoff, as LangGraph's savers accept every put: a put whose parent is no
longer a leaf becomes a branch, never a lost checkpoint. After
:data:`MAX_RETRIES` lost races in a row the call fails with :class:`ConflictError`.

Garbage collection (``lattice gc``) may run beside the saver, in this process or
another: every commit carries the store's collection ``generation`` read before
planning, so a sweep in between refuses it like a lost race (see :mod:`lattice.gc`).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple, get_checkpoint_id,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from lattice.errors import CorruptObject, InvalidValue, NotFound
from lattice.memory import MemoryStore
from lattice.nodes import ObjectCache, Tx

from .naming import caller_prefix, head_ref
from .pipeline import LINGER, Lanes, Signal, submitter
from .plans import Plan, View, conf_of
from .records import Records
from .tree import CommitReader
from .values import LeafCache, ListMemo, ValueCodec

__all__ = ["LatticeSaver", "AsyncLatticeSaver", "ConflictError", "open_store", "MAX_RETRIES"]

#: lost compare-and-swap races in a row a change is re-applied after, before :class:`ConflictError`
MAX_RETRIES = 64
_STRIPES = 64
_FILTER_OVER = 64  # a commit with more new objects than this drops those the store already has


def _backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th lost race: jittered, doubling from 0.1 ms up to 25 ms,
    so writers that keep colliding spread out instead of starving one another."""
    return random.uniform(0, min(0.0001 * (2 ** attempt), 0.025))


class ConflictError(RuntimeError):
    """A change lost :data:`MAX_RETRIES` compare-and-swap races in a row (``code``: ``conflict``)."""

    code = "conflict"


def open_store(spec: str) -> Any:
    """The store a connection string names (the one place that maps a spec to a backend).

    Args:
        spec: ``":memory:"`` (a :class:`~lattice.memory.MemoryStore`), a
            ``postgresql://user:password@host:port/dbname`` (or ``postgres://``) URL (a
            :class:`~lattice.postgres.PostgresStore`: any number of processes may share the
            database; its tables are created on first use), ``sqlite:<file>`` (a durable
            :class:`~lattice.sqlite.SqliteStore`, created if missing), or an LMDB directory, as a
            path or ``lmdb://<path>`` (a durable :class:`~lattice.lmdb.LmdbStore`, created if missing).

    Raises:
        ValueError: an empty spec, ``sqlite:`` without a file, or a URL of another scheme.
        StoreError: the SQLite file or LMDB environment could not be opened (or is open already in this
            process); the PostgreSQL server could not be reached or its schema is newer.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"expected ':memory:', a postgresql:// URL, sqlite:<file> or an LMDB directory, got {spec!r}")
    if spec == ":memory:":
        return MemoryStore()
    if spec[:7].lower() == "sqlite:":
        from lattice.sqlite import SqliteStore, sqlite_path

        try:
            path = sqlite_path(spec)
        except InvalidValue as e:
            raise ValueError(e.message) from None
        return SqliteStore(path)
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else None
    if scheme in ("postgres", "postgresql"):
        from lattice.postgres import PostgresStore

        return PostgresStore(scheme + spec[len(scheme):], application_name="agent-lattice-langgraph")
    if scheme not in (None, "lmdb"):
        raise ValueError(f"store URL scheme {scheme!r} is not supported: use ':memory:', postgresql://, sqlite:<file> "
                         "or a directory")
    from lattice.lmdb import LmdbStore

    return LmdbStore(spec[len("lmdb://"):] if spec.startswith("lmdb://") else spec)


def _plan(lanes: Lanes, make_view: Callable, store: Any, key: str | None, planner: Callable[[View], Plan],
          known: bool) -> tuple[Plan, View]:
    """Plan a change of namespace ``key`` on the store as ``lanes`` sees it (on its known refs if
    ``known``). A plan on known refs that reads an object the store no longer has (the thread was
    deleted elsewhere and collected) is made again on refs read afresh."""
    overlay = lanes.view(store, key, known)
    view = make_view(overlay)
    try:
        return planner(view), view
    except (NotFound, CorruptObject):
        if not getattr(overlay, "used_known", False):
            raise
    lanes.known.forget(key)
    view = make_view(lanes.view(store, key, known))
    return planner(view), view


class LatticeSaver(BaseCheckpointSaver[int]):
    """A LangGraph checkpointer whose threads are refs and whose checkpoints are commits.

    Thread-safe. Channel versions are integers. The ``a*`` methods run the
    synchronous ones inline (on an event loop, prefer :class:`AsyncLatticeSaver`).

    Args:
        store: a lattice store (:class:`~lattice.memory.MemoryStore`,
            :class:`~lattice.lmdb.LmdbStore`, :class:`~lattice.postgres.PostgresStore`);
            the caller closes it (``from_conn_string`` does).
        caller: owner of the threads: their refs are ``t/<caller>/...`` (default ``"local"``).
        serde: LangGraph serializer for values outside plain data and core
            messages (default: LangGraph's ``JsonPlusSerializer``).
        linger: seconds a ``put_writes`` may wait for the next ``put`` of its
            namespace to share one durable commit (default 0.002; 0: never wait).
            See :mod:`ops.langgraph.pipeline`.

    Raises:
        ValueError: ``caller`` is empty or holds ``/``.
    """

    def __init__(self, store: Any, *, caller: str = "local", serde: Any = None, linger: float = LINGER) -> None:
        caller_prefix(caller)  # validates
        self.linger = linger
        self._memo = ListMemo()
        self._leaves = LeafCache()
        super().__init__(serde=serde or JsonPlusSerializer())
        self.store = store
        self.caller = caller
        self._cache = ObjectCache()
        self._rd = CommitReader()
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        # sync callers: commit on the calling thread when the store can (see ops.langgraph.pipeline)
        self._lanes = Lanes(submitter(store), Signal, getattr(store, "commit_now", None))

    # The codec follows the serde (``with_allowlist`` sets a new one on a copy).
    @property
    def serde(self) -> Any:  # type: ignore[override]
        return self._serde

    @serde.setter
    def serde(self, value: Any) -> None:
        self._serde = value
        self._records = Records(ValueCodec(value, self._leaves), self._memo)

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str, *, caller: str = "local", serde: Any = None,
                         linger: float = LINGER) -> Iterator["LatticeSaver"]:
        """A saver on the store ``conn_string`` names (see :func:`open_store`), closed on exit.

        Raises:
            ValueError, StoreError: as :func:`open_store`.
        """
        store = open_store(conn_string)
        try:
            yield cls(store, caller=caller, serde=serde, linger=linger)
        finally:
            store.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} caller={self.caller!r} store={self.store!r}>"

    # ------------------------------------------------------------------ driving
    def _view(self, store: Any = None) -> View:
        store = self.store if store is None else store
        return View(store, self.caller, self._rd, self._records, Tx(store, self._cache))

    def _objects(self, tx: Tx) -> dict:
        objs = tx.objects
        if len(objs) > _FILTER_OVER:
            has = self.store.has
            objs = {d: b for d, b in objs.items() if not has(d)}
        return objs

    def _done(self, plan: Plan) -> Any:
        for link, held in plan.remember:
            self._memo.put(bytes(link.data), held)
        return plan.result

    def _run(self, key: str | None, planner: Callable[[View], Plan], linger: bool = False,
             known: bool = True) -> Any:
        """Plan and commit; on a lost race plan again. ``key`` (the namespace's head ref) picks the lock
        and the commits in flight to plan on top of; ``linger``: may wait for the next put (writes);
        ``known``: may plan on the namespace's known refs (false: a change that must see every ref of
        the namespace, e.g. parked writes another writer added: prune, delete_for_runs)."""
        lock = self._locks[hash(key) % _STRIPES]
        lanes = self._lanes
        for attempt in range(MAX_RETRIES):
            with lock:
                gen = getattr(self.store, "generation", None)  # before any read (see lattice.gc)
                plan, view = _plan(lanes, self._view, self.store, key, planner, known)
                if not plan.updates:
                    return self._done(plan)
                objs = self._objects(view.tx)
                batch, p = lanes.enqueue(key, objs, plan.updates, linger and self.linger > 0, gen)
                mine = lanes.take(batch)
            if mine:
                lanes.commit(batch)
            elif not batch.done.wait(self.linger):
                with lock:
                    lanes.expire(key, batch)
                    mine = lanes.take(batch)
                if mine:
                    lanes.commit(batch)
                batch.done.wait()  # sent: by the thread that took it, or queued
            ok = False
            try:
                ok = batch.fut.result()
            finally:
                with lock:
                    if mine:
                        lanes.release(key)
                    lanes.landed(key, p, ok, batch)
            if ok:
                return self._done(plan)
            time.sleep(_backoff(attempt))
        raise ConflictError(f"gave up after {MAX_RETRIES} lost compare-and-swap races on {key or 'a thread'}")

    def _key(self, config: RunnableConfig) -> str:
        conf = conf_of(config)
        return head_ref(self.caller, conf["thread_id"], conf.get("checkpoint_ns", ""))

    # ------------------------------------------------------------------ reading
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (``checkpoint_id``), else the namespace's latest; None if absent.

        Raises:
            ValueError: ``config`` has no ``configurable.thread_id``.
        """
        conf = conf_of(config)
        tid, ns, cid = conf["thread_id"], conf.get("checkpoint_ns", ""), get_checkpoint_id(config)
        view = self._view()
        forest = view.forest(tid, ns)
        hit = view.locate(forest, cid) if cid else view.latest(forest)
        return None if hit is None else view.tuple(tid, ns, hit[1], config if cid else None, forest)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        """Checkpoints, greatest id first within each namespace.

        Args:
            config: a thread (``thread_id``; ``checkpoint_ns`` narrows to one
                namespace, ``checkpoint_id`` to one checkpoint), or None for every
                thread of the caller.
            filter: metadata keys and the values they must equal.
            before: only checkpoints with an id below this config's ``checkpoint_id``.
            limit: most checkpoints yielded.

        Raises:
            ValueError: ``config`` has no ``configurable.thread_id``.
        """
        return self._view().checkpoints(config, filter, before, limit)

    # ------------------------------------------------------------------ writing
    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Store a checkpoint as a commit whose parent is the commit of ``config``'s ``checkpoint_id``.

        Returns:
            The config of the stored checkpoint (thread, namespace, id).

        Raises:
            ValueError: no ``thread_id``, or ids too long for a ref name.
            ConflictError: too many lost races.
        """
        return self._run(self._key(config), lambda v: v.plan_put(config, checkpoint, metadata, new_versions))

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Store pending writes with the checkpoint ``config`` names (parked until it is stored).

        Raises:
            ValueError: no ``thread_id``. KeyError: no ``checkpoint_id``.
            ConflictError: too many lost races.
        """
        self._run(self._key(config), lambda v: v.plan_writes(config, writes, task_id, task_path), linger=True)

    def delete_thread(self, thread_id: str) -> None:
        """Remove every ref of the thread (all namespaces). Objects stay until a garbage collection."""
        self._run(None, lambda v: v.plan_delete(thread_id))
        self._forget()

    def _forget(self) -> None:
        """Forget the known refs of every namespace (a change made across namespaces)."""
        self._lanes.known.forget()

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Make ``target_thread_id`` a copy of ``source_thread_id``: new refs to the same commits.

        Writes no object: O(1) in the history length (one ref per namespace and branch tip).

        Raises:
            ValueError: the target thread has checkpoints.
        """
        self._run(None, lambda v: v.plan_copy(source_thread_id, target_thread_id))
        self._forget()

    def _prune_targets(self, thread_ids: Sequence[str], strategy: str) -> list[tuple[Any, str | None]]:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: expected 'keep_latest' or 'delete'")
        if strategy == "delete":
            return [(tid, None) for tid in thread_ids]
        view = self._view()
        return [x for tid in thread_ids for x in view.namespaces({"configurable": {"thread_id": tid}})]

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``"keep_latest"`` keeps the latest checkpoint of each namespace (with its
        writes; with ``DeltaChannel``, the ancestors back to its snapshot), ``"delete"`` removes all.

        Raises:
            ValueError: an unknown strategy.
        """
        for tid, ns in self._prune_targets(thread_ids, strategy):
            if ns is None:
                self.delete_thread(tid)
            else:
                self._run(head_ref(self.caller, tid, ns), lambda v, t=tid, n=ns: v.plan_keep_latest(t, n),
                          known=False)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints (with their writes) whose metadata ``run_id`` is in ``run_ids``, in every
        thread of the caller; their children move to their parents. O(checkpoints of the caller)."""
        ids = set(run_ids)
        for tid, ns in (self._view().namespaces(None) if ids else ()):
            self._run(head_ref(self.caller, tid, ns), lambda v, t=tid, n=ns: v.plan_drop_runs(t, n, ids),
                      known=False)

    def get_next_version(self, current: int | None, channel: None = None) -> int:  # noqa: ARG002
        """The next channel version: 1, 2, 3... (a string version ``"N.xxx"`` counts as N)."""
        if current is None:
            return 1
        if isinstance(current, str):
            return int(current.split(".")[0]) + 1
        return int(current) + 1

    # ------------------------------------------------------------------ async, run inline
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        for t in self.list(config, filter=filter, before=before, limit=limit):
            yield t

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


class AsyncLatticeSaver(LatticeSaver):
    """:class:`LatticeSaver` for an event loop: writes await the store's writer thread.

    Reads run inline: an LMDB read takes microseconds; on PostgreSQL each object not in
    the saver's cache is a round trip that holds the loop (a fraction of a millisecond on
    a local server). Use one instance on one event loop at a time; the synchronous
    methods work too (from other threads).
    """

    def __init__(self, store: Any, *, caller: str = "local", serde: Any = None, linger: float = LINGER) -> None:
        super().__init__(store, caller=caller, serde=serde, linger=linger)
        self._alocks = [asyncio.Lock() for _ in range(_STRIPES)]
        self._alanes = Lanes(submitter(store), asyncio.Event)  # callers on the loop

    @classmethod
    @asynccontextmanager
    async def from_conn_string(cls, conn_string: str, *, caller: str = "local", serde: Any = None,
                               linger: float = LINGER) -> AsyncIterator["AsyncLatticeSaver"]:
        """An async context manager: a saver on the store ``conn_string`` names, closed on exit.

        Raises:
            ValueError, StoreError: as :func:`open_store`.
        """
        store = open_store(conn_string)
        try:
            yield cls(store, caller=caller, serde=serde, linger=linger)
        finally:
            store.close()

    async def _arun(self, key: str | None, planner: Callable[[View], Plan], linger: bool = False,
                    known: bool = True) -> Any:
        lock = self._alocks[hash(key) % _STRIPES]
        lanes = self._alanes
        for attempt in range(MAX_RETRIES):
            async with lock:
                gen = getattr(self.store, "generation", None)  # before any read (see lattice.gc)
                plan, view = _plan(lanes, self._view, self.store, key, planner, known)
                if not plan.updates:
                    return self._done(plan)
                objs = self._objects(view.tx)
                batch, p = lanes.enqueue(key, objs, plan.updates, linger and self.linger > 0, gen)
            if not batch.done.is_set():
                try:
                    await asyncio.wait_for(batch.done.wait(), self.linger)
                except asyncio.TimeoutError:
                    lanes.expire(key, batch)  # on the loop: no other coroutine runs in between
            ok = False
            try:
                ok = await asyncio.wrap_future(batch.fut)
            finally:
                lanes.landed(key, p, ok, batch)
            if ok:
                return self._done(plan)
            await asyncio.sleep(_backoff(attempt))
        raise ConflictError(f"gave up after {MAX_RETRIES} lost compare-and-swap races on {key or 'a thread'}")

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await self._arun(self._key(config), lambda v: v.plan_put(config, checkpoint, metadata, new_versions))

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await self._arun(self._key(config), lambda v: v.plan_writes(config, writes, task_id, task_path), linger=True)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(None, lambda v: v.plan_delete(thread_id))
        self._forget()

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._arun(None, lambda v: v.plan_copy(source_thread_id, target_thread_id))
        self._forget()

    def _forget(self) -> None:
        super()._forget()
        self._alanes.known.forget()

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for tid, ns in self._prune_targets(thread_ids, strategy):
            if ns is None:
                await self.adelete_thread(tid)
            else:
                await self._arun(head_ref(self.caller, tid, ns), lambda v, t=tid, n=ns: v.plan_keep_latest(t, n),
                                 known=False)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        ids = set(run_ids)
        for tid, ns in (self._view().namespaces(None) if ids else ()):
            await self._arun(head_ref(self.caller, tid, ns), lambda v, t=tid, n=ns: v.plan_drop_runs(t, n, ids),
                             known=False)
