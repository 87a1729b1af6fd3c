"""The job index: find a job by id, whether it is stored or kept in memory.

Jobs that changed state (tasks, triggers, writes, agent lifecycle) are stored
at ``j/<caller>/<jobId>`` and commit with their changes. Jobs of read-only
operations and of failed requests changed nothing: a stored record would make
every read a durable write, so they are kept in memory only (the newest
:data:`MEMORY_JOBS` per caller) and are gone after a restart.

A seam: :class:`JobIndex` is what the engine needs; :class:`LocalJobIndex`
keeps the in-memory jobs of one process. Several processes sharing a store
replace it with one that says where an in-memory job lives.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Protocol

from lattice.commits import read_commit
from lattice.nodes import ObjectCache, Tx

from lattice.store import RefUpdate

from ..domain.jobs import TERMINAL, normalize_job_id
from ..domain.refs import job_ref

__all__ = ["JobIndex", "LocalJobIndex", "MEMORY_JOBS", "expire_jobs"]

#: in-memory jobs kept per caller (the oldest are dropped)
MEMORY_JOBS = 10_000


class JobIndex(Protocol):
    def get(self, caller: str, job_id: str) -> dict[str, Any] | None:
        """The job record (``job_id`` in any case, with or without ``0x``), or None."""
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

    def get(self, caller: str, job_id: str) -> dict[str, Any] | None:
        jid = normalize_job_id(job_id)
        if jid is None:
            return None
        d = self.store.ref(job_ref(caller, jid))
        if d is not None:
            tx = Tx(self.store, self.cache)
            return tx.materialize(tx.raw_root(read_commit(tx, d).root))
        return self._mem.get(caller, {}).get(jid)

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
        rec = tx.load_root(read_commit(tx, d).root)
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
