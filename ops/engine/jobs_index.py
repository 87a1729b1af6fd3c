"""The job index: find a job by id, whether it is stored or kept in memory.

Jobs that changed state (tasks, triggers, writes, agent lifecycle) are stored
at ``j/<caller>/<jobId>`` and commit with their changes. Jobs of read-only
operations and of failed requests changed nothing: a stored record would make
every read a durable write, so they are kept in memory only (the newest
:data:`MEMORY_JOBS` per caller) and are gone after a restart.

A task, trigger or chat job is folded into the agent commit that accepted it until its
first change (:mod:`ops.domain.jobs`): its ref points at that commit; a task its run completed
on top of that commit stays folded, into the run's commit. :func:`resolve_job` is the one
reader of a job ref's head, every form; the accepting commit's event names the agent (format
2), so reading a folded job reads that commit (and, finished, the run's) and nothing else.

A seam: :class:`JobIndex` is what the engine needs; :class:`LocalJobIndex`
keeps the in-memory jobs of one process. Several processes sharing a store
replace it with one that says where an in-memory job lives.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, Protocol

import msgspec

from lattice.commits import Commit, read_commit
from lattice.errors import LatticeError
from lattice.nodes import ObjectCache, Tx

from lattice.store import RefUpdate

from ..domain import jobs as J
from ..domain.jobs import TERMINAL, normalize_job_id
from ..domain.refs import agent_ref, job_ref, split_ref

__all__ = ["JobIndex", "LocalJobIndex", "MEMORY_JOBS", "expire_jobs", "resolve_job"]

#: in-memory jobs kept per caller (the oldest are dropped)
MEMORY_JOBS = 10_000

Head = Callable[[str], tuple[bytes | None, Commit | None]]


def _holds(tx: Tx, head: Head, caller: str, agent_id: str, job_id: str, d: bytes, c: Commit) -> bool:
    """Whether agent ``agent_id`` accepted the folded job at commit ``d``: its head is ``d``, or
    still holds the job as work (a folded job is waiting: its agent holds it until it changes)."""
    hd, hc = head(agent_ref(caller, agent_id))
    if hd is None:
        return False
    if hd == d:
        return True
    try:
        return J.holds_work(tx, tx.load_root(hc.root), c.op, job_id)
    except (LatticeError, KeyError, TypeError):
        return False


def _store_head(store: Any, tx: Tx) -> Head:
    def head(name: str) -> tuple[bytes | None, Commit | None]:
        d = store.ref(name)
        return d, None if d is None else read_commit(tx, d)
    return head


def resolve_job(store: Any, tx: Tx, name: str, d: bytes, c: Commit, agent_id: str | None = None,
                head: Head | None = None) -> dict[str, Any] | None:
    """The job record at job ref ``name`` whose head is commit ``d`` (``c`` decoded): the stored
    record, or the one derived from the agent commit it is folded into (:func:`ops.domain.jobs.read_job`),
    named with the agent the commit's event names (no other read: the record is that commit's
    state, which the job keeps until its first change moves its ref).

    A request or trigger accepted by a commit written before format 2 names no agent: then
    ``agent_id``, when the reader knows it, checked (the agent's head is ``d`` or still holds
    the job as work); else the record has no ``agentId``. None when ``d`` is neither a job
    record nor an agent commit that accepted this job.

    Args:
        store: read for the agent's head (only that check). head: ``ref -> (digest, commit)`` as
            the reader sees heads (a unit's :meth:`Unit.head`); default: the store's.
    """
    _, caller, jid = split_ref(name)
    cache = getattr(tx, "_cache", None)
    key = (_RESOLVED, bytes(d), jid)
    hit = cache.get(key) if cache is not None else None
    if hit is not None:  # a copy: callers may edit what they get
        return _decode(hit)
    if J.is_job_record(tx.load_root(c.root)):
        rec = tx.materialize(tx.raw_root(c.root))
    else:
        rec = J.folded_job(tx, c, jid, None)
        if rec is not None and "agentId" not in rec and agent_id is not None:
            if _holds(tx, head or _store_head(store, tx), caller, agent_id, jid, d, c):
                return J.folded_job(tx, c, jid, agent_id)
            return rec
    if rec is not None and cache is not None:  # it depends on (d, jid) only: commits never change
        cache[key] = _encode(rec)
    return rec


#: the key of a resolved job record in a transaction's object cache: (_RESOLVED, commit, job id)
_RESOLVED = "job"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class JobIndex(Protocol):
    def get(self, caller: str, job_id: str, agent_id: str | None = None) -> dict[str, Any] | None:
        """The job record (``job_id`` in any case, with or without ``0x``), or None; ``agent_id``:
        the agent a task or trigger job belongs to, when the reader knows it (:func:`resolve_job`)."""
        ...

    def resolve(self, tx: Tx, name: str, d: bytes, c: Commit, agent_id: str | None = None,
                head: Head | None = None) -> dict[str, Any] | None:
        """The job record at job ref ``name``'s head ``d`` (:func:`resolve_job`)."""
        ...

    def remember(self, caller: str, job: dict[str, Any]) -> None:
        """Keep a job that is not stored."""
        ...

    def unstored(self, caller: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(jobId, job)`` of the caller's in-memory jobs, oldest first."""
        ...

    def forget(self, caller: str, job_id: str) -> bool:
        """Drop an in-memory job (``job_id`` canonical); whether there was one."""
        ...


class LocalJobIndex:
    """Stored jobs from the store, the others from this process's memory.

    Args:
        store: the store. cache: an object cache to read through (None: none).
        per_caller: in-memory jobs kept per caller.
    """

    def __init__(self, store: Any, cache: ObjectCache | None = None, per_caller: int = MEMORY_JOBS):
        self.store, self.cache, self.per_caller = store, cache, per_caller
        self._mem: dict[str, OrderedDict[str, dict[str, Any]]] = {}

    def get(self, caller: str, job_id: str, agent_id: str | None = None) -> dict[str, Any] | None:
        jid = normalize_job_id(job_id)
        if jid is None:
            return None
        name = job_ref(caller, jid)
        d = self.store.ref(name)
        while d is not None:
            tx = Tx(self.store, self.cache)
            rec = self.resolve(tx, name, d, read_commit(tx, d), agent_id)
            if rec is None or "agentId" in rec:
                return rec
            # folded before format 2 and its agent not confirmed: it may have changed between
            # reading its ref and its agent's (its record is then on its own chain); read again
            # until its ref stands still
            again = self.store.ref(name)
            if again == d:
                return rec
            d = again
        return self._mem.get(caller, {}).get(jid)

    def resolve(self, tx: Tx, name: str, d: bytes, c: Commit, agent_id: str | None = None,
                head: Head | None = None) -> dict[str, Any] | None:
        return resolve_job(self.store, tx, name, d, c, agent_id, head)

    def remember(self, caller: str, job: dict[str, Any]) -> None:
        mine = self._mem.get(caller)
        if mine is None:
            mine = self._mem[caller] = OrderedDict()
        mine[job["jobId"]] = job
        while len(mine) > self.per_caller:
            mine.popitem(last=False)

    def unstored(self, caller: str) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(list(self._mem.get(caller, {}).items()))

    def forget(self, caller: str, job_id: str) -> bool:
        return self._mem.get(caller, {}).pop(job_id, None) is not None


async def expire_jobs(engine: Any, before_ms: int) -> int:
    """Remove the stored jobs that finished before ``before_ms`` (Unix ms); return how many.

    A finished job is part of no agent's work, so its ref goes with nothing else; its
    objects are freed by the next collection unless something else shares them. Each
    removal is a compare-and-swap on the job's ref: a job that changed meanwhile stays.
    """
    tx = Tx(engine.store, engine.cache)
    old = []
    for name, d in engine.store.refs("j/"):
        c = read_commit(tx, d)
        rec = tx.load_root(c.root)
        if not J.is_job_record(rec):
            if c.op != "agent:run" or c.ts >= before_ms:
                continue  # folded into the commit that accepted it: waiting, never finished
            rec = J.read_job(tx, c, split_ref(name)[2])  # folded into the run that completed it
            if rec is None:
                continue
        if rec.get("status") in TERMINAL and rec.get("updated", before_ms) < before_ms:
            old.append((name, d))
    removed = 0
    for i in range(0, len(old), 256):
        batch = [RefUpdate(name, d, None) for name, d in old[i:i + 256]]
        if await engine.store.acommit({}, batch):  # all at once, or one by one when one of them moved
            removed += len(batch)
        else:
            for u in batch:
                removed += bool(await engine.store.acommit({}, [u]))
    return removed
