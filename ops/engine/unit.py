"""The unit of work: read heads, stage records, commit them all at once with compare-and-swap.

Every change goes through :meth:`Units.run`: a *unit* (:class:`Unit`) reads
heads, stages new records, and commits them together, each ref moved by
compare-and-swap. On a lost race the unit's function is run again on the new
heads, so work that arrived meanwhile (a task added during an LLM call) is
merged, never lost or duplicated. After a commit every moved ref is announced
(:class:`~ops.engine.notify.Notifier`) and the commit hooks run.

*Guards* (:attr:`Units.guards`) see each unit just before it commits and may add
compare-and-swaps on refs the unit's function did not write (:attr:`Unit.extra`):
a process sharing the store with others uses them to fence its agents' runs by
their leases and to count agents across processes (:mod:`ops.engine.leases`,
:class:`ops.engine.limits.StoreQuotas`). A guard may also refuse the unit by raising.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from lattice.commits import Commit, read_commit, write_commit
from lattice.nodes import ObjectCache, Tx
from lattice.store import RefUpdate

from ..domain import agent as A
from ..domain import jobs as J
from ..domain.errors import OpError

__all__ = ["Unit", "Units", "MAX_RETRIES"]

#: lost compare-and-swap races a unit is re-run after, before it fails with ``conflict``
MAX_RETRIES = 64


class Unit:
    """One optimistic transaction over several refs.

    Attributes:
        store: the store. tx: stages objects (and reads through the cache).
        ts: the unit's time, Unix ms (every commit of the unit carries it).
        caller: recorded in every commit. heads: ``ref -> (digest, commit)`` as read.
        writes: ``ref -> (record, op, input)`` staged, or None for a removal.
        follows: ``ref -> ref`` whose commit in this unit it is moved to (:meth:`follow`).
        extra: compare-and-swaps the guards add to the commit (refs outside ``writes``).
        resolve: reads a job's record at its head (:func:`ops.engine.jobs_index.resolve_job`'s
            signature); set by :class:`Units`.
    """

    __slots__ = ("store", "tx", "ts", "caller", "heads", "writes", "actual", "points", "follows", "extra",
                 "resolve")

    def __init__(self, store: Any, ts: int, caller: str, cache: ObjectCache | None = None,
                 resolve: Callable[..., Any] | None = None):
        self.store, self.tx, self.ts, self.caller = store, Tx(store, cache), ts, caller
        self.heads: dict[str, tuple[bytes | None, Commit | None]] = {}
        self.writes: dict[str, tuple[Any, str, Any] | None] = {}
        self.actual: dict[str, bytes | None] = {}  # refs adopted onto another chain: their real head
        self.points: dict[str, bytes] = {}  # refs moved to a commit made outside a write (a squashed chain)
        self.follows: dict[str, str] = {}  # refs moved to the commit another ref's write makes here
        self.extra: list[RefUpdate] = []
        self.resolve = resolve

    def head(self, name: str) -> tuple[bytes | None, Commit | None]:
        """``(digest, commit)`` of ``name``'s head as this unit sees it (read once)."""
        h = self.heads.get(name)
        if h is None:
            d = self.store.ref(name)
            h = (d, read_commit(self.tx, d) if d is not None else None)
            self.heads[name] = h
        return h

    def read(self, name: str, agent_id: str | None = None) -> Any:
        """The record at ``name`` as staged in this unit, else at its head; None if absent.
        Agent records (``g/``) come opened (:func:`ops.domain.agent.opened`). A job (``j/``)
        folded into an agent commit comes derived from it (:func:`ops.domain.jobs.folded_job`;
        the commit names its agent; ``agent_id``, the agent it belongs to when known, serves a
        commit written before format 2, checked against that agent's head);
        one this unit points at the commit it makes (:meth:`follow`) is None: its state is its
        agent's."""
        if name in self.writes:
            w = self.writes[name]
            return None if w is None else w[0]
        if name in self.follows:
            return None
        d, c = self.head(name)
        if c is None:
            return None
        if name.startswith("j/"):
            if self.resolve is None:
                return J.read_job(self.tx, c, name.split("/", 2)[2], agent_id)
            return self.resolve(self.tx, name, d, c, agent_id, self.head)
        rec = self.tx.load_root(c.root)
        return A.opened(self.tx, rec) if name.startswith("g/") else rec

    def write(self, name: str, record: Any, op: str, input: Any = None) -> None:
        """Stage ``record`` at ``name``; the commit records the event (op, input) of the
        *first* write to ``name`` in this unit (later writes are part of that event)."""
        self.head(name)
        self.follows.pop(name, None)
        prev = self.writes.get(name)
        if prev is not None:
            op, input = prev[1], prev[2]
        self.writes[name] = (record, op, input)

    def adopt(self, name: str, head: bytes) -> None:
        """Put ref ``name`` (absent now) on the chain ending at commit ``head`` (staged in this
        unit or stored): a later :meth:`write` to it commits on top of that chain.

        Raises:
            NotFound, InvalidValue: ``head`` is not a commit this unit can read.
        """
        d, _ = self.head(name)
        self.actual[name] = d
        self.heads[name] = (head, read_commit(self.tx, head))

    def follow(self, name: str, source: str) -> None:
        """Move ref ``name`` to the commit this unit's write to ref ``source`` makes (a task's job
        to the agent commit that accepts it: :mod:`ops.domain.jobs`, folded jobs); compare-and-swap
        against the head this unit read. A later :meth:`write` to ``name`` replaces this.

        Raises (at commit, from :meth:`updates`): RuntimeError when the unit commits no write to
        ``source``."""
        self.head(name)
        self.writes.pop(name, None)
        self.follows[name] = source

    def point(self, name: str, commit: bytes) -> None:
        """Move ref ``name`` to ``commit`` (buffered in this unit's tx), e.g. the head of a
        rewritten chain; compare-and-swap against the head this unit read."""
        self.head(name)
        self.points[name] = commit

    def remove(self, name: str) -> None:
        """Stage the removal of ``name``."""
        self.head(name)
        self.writes[name] = None

    def updates(self) -> list[RefUpdate]:
        """The ref updates to commit (a record equal to its head's is not committed again, except on
        a ref :meth:`adopt` put on a chain: the write is what makes it exist). A
        job ref whose head is the agent commit it was folded into gets a chain of its own: its
        first record's commit has no parent (the job's ref expects that agent commit)."""
        ups = [RefUpdate(name, self.heads[name][0], d) for name, d in self.points.items()]
        made: dict[str, bytes] = {}
        for name, w in self.writes.items():
            d, c = self.heads[name]
            if w is None:
                if d is not None:
                    ups.append(RefUpdate(name, d, None))
                continue
            record, op, input = w
            root = self.tx.put_root(record)
            if c is not None and c.root == root and name not in self.actual:
                continue  # (an adopted ref is not there yet: its write lands, whatever the record)
            parent, parent_commit = d, c
            if c is not None and name.startswith("j/") and not J.is_job_record(self.tx.load_root(c.root)):
                parent, parent_commit = None, None  # a folded job's first record: never on its agent's chain
            cd, _ = write_commit(self.tx, parent=parent, parent_commit=parent_commit, root=root, ts=self.ts,
                                 op=op, input=input, caller=self.caller)
            made[name] = cd
            ups.append(RefUpdate(name, self.actual.get(name, d), cd))
        for name, source in self.follows.items():
            cd = made.get(source)
            if cd is None:
                raise RuntimeError(f"ref {name} follows {source}, which this unit commits nothing to")
            ups.append(RefUpdate(name, self.heads[name][0], cd))
        return ups


class Units:
    """Runs units against a store: the CAS retry loop and the after-commit announcements.

    Args:
        store: the store. cache: the shared object cache. clock: Unix ms.
        notify: called with each ref a commit moved.
        resolve: reads a job at its head in a unit (:attr:`Unit.resolve`; None: no agent lookup).

    Attributes:
        guards: ``(unit, its ref updates) -> None``, called before each commit attempt; may
            append to ``unit.extra`` (and stage objects in ``unit.tx``) or raise to refuse it.
        hooks: ``(caller, unit) -> None``, called after each commit, in order.
    """

    def __init__(self, store: Any, cache: ObjectCache, clock: Callable[[], int], notify: Callable[[str], None],
                 resolve: Callable[..., Any] | None = None):
        self.store, self.cache, self.clock, self._notify = store, cache, clock, notify
        self.resolve = resolve
        self.guards: list[Callable[[Unit, list[RefUpdate]], None]] = []
        self.hooks: list[Callable[[str, Unit], None]] = []

    async def run(self, caller: str, fn: Callable[[Unit], Any]) -> Any:
        """Run ``fn`` in a unit and commit it, re-running it on lost races; return its result.

        Shielded: a caller that goes away (a client disconnecting cancels its
        request) never interrupts a commit between the store and the wake-ups
        that follow it.

        Raises:
            OpError: ``conflict`` after :data:`MAX_RETRIES` lost races; whatever ``fn`` raises.
        """
        return await asyncio.shield(self._run(caller, fn))

    async def _run(self, caller: str, fn: Callable[[Unit], Any]) -> Any:
        for attempt in range(MAX_RETRIES):
            # the store's collection generation before any read: a sweep in between refuses the
            # commit like a lost race, and the unit reads again (see lattice.gc)
            gen = getattr(self.store, "generation", None)
            u = Unit(self.store, self.clock(), caller, self.cache, self.resolve)
            result = fn(u)
            ups = u.updates()
            if not ups:
                return result
            for guard in self.guards:
                guard(u, ups)
            if await self.store.acommit(u.tx.objects, ups + u.extra, **({} if gen is None else {"generation": gen})):
                for hook in self.hooks:
                    hook(caller, u)
                for name in [*u.writes, *u.points, *u.follows]:
                    self._notify(name)
                for x in u.extra:
                    if x.expected != x.new:
                        self._notify(x.name)
                return result
            await asyncio.sleep(0 if attempt < 4 else 0.001 * attempt)
        raise OpError("conflict", f"gave up after {MAX_RETRIES} lost compare-and-swap races", hint="retry the request")
