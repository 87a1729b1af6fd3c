"""Leases: one run loop per agent across every process that shares a store.

Store-generic (any backend of the port); three kinds of refs, each pointing at a
parentless commit (so fsck, gc and ``lattice copy`` treat them like any other):

* ``p/<owner>``: a process's **heartbeat**. Its commits' root is the process record
  ``{owner, host, pid, started, protocol}``; the process moves the ref every
  ``renew`` seconds among :data:`BEATS` commits (input ``{beat: i}``), so that the
  others see it change, without a new object per renewal.
* ``l/<caller>/<agentId>``: the agent's **lease**. Its commit's root is the holder's
  process record, its input ``{agent, n}`` (the holder's n-th acquisition): every
  acquisition is a digest of its own, so a lease that was lost and taken again is
  never mistaken for the old one.
* ``q/<caller>``: the caller's agent count (:class:`ops.engine.limits.StoreQuotas`).

The rules, kept by every unit of work through a guard (:attr:`ops.engine.unit.Units.guards`):

1. **A RUNNING agent has a lease.** A unit that turns an agent ``RUNNING`` creates its
   lease (held by the committing process) in the same commit, or, when a lease is
   still there, compare-and-swaps it unchanged, so that a concurrent release fails.
2. **Only the holder releases**: in the last commit of its loop (the one that leaves
   the agent not ``RUNNING``), or when its loop ends otherwise, together with a no-op
   compare-and-swap on the agent's head at which the agent is not ``RUNNING``.
3. **Fencing.** Every unit committed by a loop carries a no-op compare-and-swap on the
   agent's lease (expected = new = the digest this process holds). A process whose
   lease was taken over can never commit for that agent again; it cancels its loop.
4. **Take-over.** Every ``scan`` seconds each process lists the leases, then the
   heartbeats. A heartbeat missing, or whose digest has not changed for ``lease``
   seconds *by the scanner's own monotonic clock* (no clock is compared across
   machines), marks its owner dead; the scanner takes each of the owner's leases by
   compare-and-swap and starts the loop, which re-runs the task that was in flight
   from the last committed state (a run that did not commit left nothing).

**Bound.** A process that dies is taken over within ``lease + 2 * scan`` seconds
(defaults: 5 + 2 x 1 = 7 s): its last renewal is seen within a scan, found stale
``lease`` seconds later, at the next scan. A process that stops cleanly deletes its
heartbeat, and its agents move at the others' next scan (about ``scan`` seconds). A
process stalled for longer than ``lease`` (or cut off from the database) loses its
agents to the others; fencing makes that safe, never a second commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import random
import socket
import time
import uuid
from typing import Any, Awaitable, Callable

import msgspec

from lattice.codec import Link
from lattice.commits import read_commit, write_commit
from lattice.errors import LatticeError, StoreError
from lattice.nodes import Tx
from lattice.store import RefUpdate

from ..domain import agent as A
from ..domain.refs import agent_ref
from .limits import StoreQuotas
from .notify import LocalNotifier
from .scheduler import Key, LocalScheduler
from .unit import Unit

__all__ = ["PROTOCOL", "BEATS", "LeaseTimes", "LeaseScheduler", "lease_ref", "beat_ref", "new_owner",
           "shared_seams"]

log = logging.getLogger("lattice.leases")

#: the engine's multi-process protocol (lease and heartbeat refs, and what every process must
#: read of what the others write); processes of different protocols refuse to share a store.
#: 2: format 3 (vectors of 8-link nodes, tasks folded into the run that completed them), which
#: a process of protocol 1 (format 2) misreads
PROTOCOL = 2
#: heartbeat commits a process cycles through
BEATS = 16

#: the agent whose loop the running task belongs to (set by the scheduler for its loops)
_LOOP: contextvars.ContextVar[Key | None] = contextvars.ContextVar("lattice_loop", default=None)


class LeaseTimes(msgspec.Struct, frozen=True):
    """Lease timing, seconds.

    Attributes:
        lease: a heartbeat unchanged this long marks its process dead (default 5).
        renew: between heartbeats (default 1.5; under ``lease``).
        scan: between scans for dead processes' leases (default 1; under ``lease``).
    """

    lease: float = 5.0
    renew: float = 1.5
    scan: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.renew < self.lease and 0 < self.scan < self.lease):
            raise ValueError(f"lease timing needs 0 < renew < lease and 0 < scan < lease, got {self}")

    @classmethod
    def scaled(cls, lease: float) -> LeaseTimes:
        """The default proportions for a ``lease`` of another length (renew 0.3x, scan 0.2x)."""
        return cls(lease, lease * 0.3, lease * 0.2)

    @property
    def bound(self) -> float:
        """Seconds within which a dead process's agents are taken over."""
        return self.lease + 2 * self.scan


def lease_ref(caller: str, agent_id: str) -> str:
    """The ref of an agent's lease."""
    return f"l/{caller}/{agent_id}"


def beat_ref(owner: str) -> str:
    """The ref of a process's heartbeat."""
    return f"p/{owner}"


def new_owner() -> str:
    """A process id unique across machines and restarts: ``<host>-<pid>-<random>``."""
    host = socket.gethostname().replace("/", "_") or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _status(tx: Tx, root: Link) -> Any:
    """An agent record's status, without opening the record."""
    raw = tx.raw_root(root)
    return raw["status"] if isinstance(raw, dict) else tx.load_root(root)["status"]


def _key(name: str) -> Key:
    _, caller, aid = name.split("/", 2)
    return caller, aid


class LeaseScheduler(LocalScheduler):
    """Runs an agent's loop in this process only while this process holds the agent's
    lease (see module doc).

    Args:
        engine: the engine (its store, units, notifier and clock are used).
        loop: ``(caller, agent id) -> coroutine`` running the agent's cycles.
        times: lease timing.
        owner: this process's id (default :func:`new_owner`).
    """

    def __init__(self, engine: Any, loop: Callable[[str, str], Awaitable[None]], times: LeaseTimes | None = None,
                 owner: str | None = None):
        super().__init__(loop)
        self.engine, self.store = engine, engine.store
        self.times = times or LeaseTimes()
        self.owner = owner or new_owner()
        self._held: dict[Key, bytes] = {}  # leases this process holds
        self._staged: dict[Key, bytes] = {}  # leases a unit of this process is committing
        self._suspect: set[Key] = set()  # agents whose lease a unit guessed and has not committed yet
        self._owners: dict[bytes, str | None] = {}  # lease digest -> its holder
        self._seen: dict[str, tuple[bytes, float]] = {}  # heartbeat ref -> (digest, when it was first seen)
        self._side: set[asyncio.Task] = set()
        self._adopting: set[Key] = set()
        self._tasks: list[asyncio.Task] = []
        self._acquired = 0
        self._last_scan: float | None = None
        tx = Tx(self.store)
        started = int(time.time() * 1000)
        self._process = {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "started": started,
                         "protocol": PROTOCOL}
        self._root: Link = tx.put_root(self._process)
        self._beats = [write_commit(tx, parent=None, parent_commit=None, root=self._root, ts=started,
                                    op="process:beat", input={"beat": i}, caller=self.owner)[0] for i in range(BEATS)]
        self._beat_objects = dict(tx.objects)
        self._beat_head: bytes | None = None
        self._beat_count = 0
        engine.units.guards.append(self._guard)
        engine.units.hooks.append(self._committed)  # before the runtime's wake-up hook, which calls ensure()
        engine.notifier.remote.append(self._remote)

    # -- what the engine asks ------------------------------------------------------
    def ensure(self, caller: str, agent_id: str) -> None:
        key = (caller, agent_id)
        if self._closed or key in self._loops:
            return
        if key in self._held:  # a context of its own: tasks inherit the loop mark of whoever calls ensure
            self._loops[key] = asyncio.get_running_loop().create_task(self._guarded(key), context=contextvars.Context())
        elif key not in self._adopting:  # held elsewhere, or a RUNNING agent without a lease (e.g. copied in)
            self._adopting.add(key)
            self._spawn(self._adopt(key))

    def begin(self, caller: str, agent_id: str, task_id: str | None, cycle: asyncio.Task) -> None:
        super().begin(caller, agent_id, task_id, cycle)
        key = (caller, agent_id)
        if key not in self._held:  # the lease went elsewhere since the loop's last commit: no cycle here
            cycle.cancel()
            task = self._loops.get(key)
            if task is not None:
                task.cancel()

    def held(self) -> list[Key]:
        """``(caller, agent id)`` of every lease this process holds."""
        return list(self._held)

    async def start(self) -> None:
        """Check that no live process speaks another protocol, write the first heartbeat, then
        renew and scan in the background.

        Raises:
            StoreError: a live process sharing the store runs another engine protocol.
        """
        await self._check_protocol()
        await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._every(self.times.renew, self._beat)),
                       loop.create_task(self._every(self.times.scan, self._scan))]

    async def close(self) -> None:
        """Cancel the loops, stop renewing, and delete the heartbeat: the other processes take
        this one's agents at their next scan."""
        self._closed = True
        for t in [*self._tasks, *self._side]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._side, return_exceptions=True)
        await super().close()
        if self._beat_head is not None:
            try:
                await self.store.acommit({}, [RefUpdate(beat_ref(self.owner), self._beat_head, None)])
            except LatticeError:
                log.warning("could not delete heartbeat %s; its agents move when it expires", self.owner)
            self._beat_head = None

    # -- the loop ------------------------------------------------------------------
    async def _guarded(self, key: Key) -> None:
        token = _LOOP.set(key)
        try:
            while not self._closed:
                await self._run(*key)
                d = self._held.get(key)
                if d is None or await self._release(key, d):
                    return  # released by its last commit, released now, or lost
        except asyncio.CancelledError:
            if self._closed:
                raise  # else the lease was lost: the loop ends, nothing of its cycle is committed
        except LatticeError as e:  # the store failed releasing: the next scan starts the loop again
            log.warning("loop of agent %s/%s ended on a store error (%s); it restarts at the next scan", *key, e)
        finally:
            _LOOP.reset(token)
            self._loops.pop(key, None)

    async def _release(self, key: Key, d: bytes) -> bool:
        """Release the lease of an agent whose loop ended; False when the agent is RUNNING
        again (its loop must go on)."""
        g, name = agent_ref(*key), lease_ref(*key)
        for _ in range(8):
            h = self.store.ref(g)
            if h is not None:
                tx = self.engine.tx()
                if _status(tx, read_commit(tx, h).root) == A.RUNNING:
                    return False
            if await self.store.acommit({}, [RefUpdate(name, d, None), RefUpdate(g, h, h)]):
                self._drop(key, d)
                self.engine.notifier.notify(name)
                return True
            if self.store.ref(name) != d:
                self._drop(key, d)  # taken over meanwhile
                return True
        return False  # the agent keeps moving: run the loop again, it releases at its end

    def _drop(self, key: Key, d: bytes | None) -> None:
        if d is not None and self._held.get(key) == d:
            del self._held[key]

    def _lost(self, key: Key, d: bytes | None) -> None:
        """This process no longer holds ``key``'s lease: stop its loop (nothing more commits)."""
        self._drop(key, d)
        task = self._loops.get(key)
        if task is not None and task is not asyncio.current_task() and key not in self._held:
            log.warning("lease of agent %s/%s lost; its loop stops here (another process runs it)", *key)
            task.cancel()

    # -- the guard and the hook (every unit of work) ----------------------------------
    def _stage(self, tx: Tx, key: Key, ts: int) -> bytes:
        """Buffer a new lease commit held by this process; return its digest."""
        self._acquired += 1
        if self._beat_head is None:
            tx.objects.update(self._beat_objects)  # not started yet: the process record too
        d, _ = write_commit(tx, parent=None, parent_commit=None, root=self._root, ts=ts, op="lease",
                            input={"agent": f"{key[0]}/{key[1]}", "n": self._acquired}, caller=self.owner)
        return d

    def _guard(self, u: Unit, ups: list[RefUpdate]) -> None:
        """Add the lease compare-and-swaps of rules 1-3 to ``u``. The lease is not read from the
        store on a unit's first attempt (the process's view is right but for a take-over or a
        release elsewhere, and then the compare-and-swap fails); after a failed attempt it is."""
        extra: dict[str, RefUpdate] = {}
        fence = _LOOP.get()
        if fence is not None:  # rule 3: a loop's unit commits only under its lease
            d, name = self._held.get(fence), lease_ref(*fence)
            if d is None or (fence in self._suspect and self.store.ref(name) != d):
                self._lost(fence, d)
                raise asyncio.CancelledError(f"lease of agent {fence[0]}/{fence[1]} lost")
            self._suspect.add(fence)
            extra[name] = RefUpdate(name, d, d)
        for up in ups:
            if not up.name.startswith("g/"):
                continue
            key = _key(up.name)
            w = u.writes.get(up.name)
            after = w is not None and w[0]["status"] == A.RUNNING
            name = lease_ref(*key)
            if key == fence:
                if not after:  # rule 2: the loop's last commit releases its lease
                    extra[name] = RefUpdate(name, extra[name].expected, None)
                continue
            if not after:
                continue
            c = u.heads[up.name][1]
            if c is not None and _status(u.tx, c.root) == A.RUNNING:
                continue  # it was RUNNING: its lease exists and cannot go while the head is unchanged
            cur = self.store.ref(name) if key in self._suspect else None  # rule 1 (None: a guess)
            self._suspect.add(key)
            if cur is None:
                cur = self._staged[key] = self._stage(u.tx, key, u.ts)
                extra[name] = RefUpdate(name, None, cur)
            else:
                extra[name] = RefUpdate(name, cur, cur)
        u.extra.extend(extra.values())

    def _committed(self, caller: str, u: Unit) -> None:
        for x in u.extra:
            if not x.name.startswith("l/"):
                continue
            key = _key(x.name)
            self._suspect.discard(key)
            if x.new is not None and x.expected is None and self._staged.get(key) == x.new:
                del self._staged[key]
                self._held[key] = x.new
            elif x.new is None:
                self._drop(key, x.expected)

    # -- other processes ------------------------------------------------------------
    def _remote(self, ref: str | None) -> None:
        """Another process moved ``ref`` (None: maybe anything): stop a cycle whose task was
        cancelled or whose agent was removed or replaced; stop a loop whose lease was taken."""
        if ref is None:
            for key in list(self._held):
                self._check_lease(key)
            for key in list(self._cycles):
                self._check_cycle(key)
        elif ref.startswith("l/"):
            key = _key(ref)
            if key in self._held:
                self._check_lease(key)
        elif ref.startswith("g/"):
            key = _key(ref)
            if key in self._cycles:
                self._check_cycle(key)

    def _check_lease(self, key: Key) -> None:
        d = self._held.get(key)
        cur = self.store.ref(lease_ref(*key))
        # absent: this process released it (only a holder deletes a lease; a take-over replaces
        # it), and the commit's hook has not run yet
        if d is not None and cur is not None and cur != d:
            self._lost(key, d)

    def _check_cycle(self, key: Key) -> None:
        cyc = self._cycles.get(key)
        if cyc is None:
            return
        task_id, _ = cyc
        snap = self.engine.snapshot(*key)
        if (snap is None or snap[1]["status"] == A.TERMINATED
                or (task_id is not None and not A.has_task(snap[1], task_id))):
            self.stop(key[0], key[1], task_id)

    async def _adopt(self, key: Key) -> None:
        """Take the lease of a RUNNING agent that has none (its loop then runs here)."""
        try:
            name, g = lease_ref(*key), agent_ref(*key)
            for _ in range(4):
                if self._closed or self.store.ref(name) is not None:
                    return  # held (by this process or another)
                h = self.store.ref(g)
                tx = self.engine.tx()
                if h is None or _status(tx, read_commit(tx, h).root) != A.RUNNING:
                    return
                d = self._stage(tx, key, self.engine.clock())
                if await self.store.acommit(tx.objects, [RefUpdate(name, None, d), RefUpdate(g, h, h)]):
                    self._held[key] = d
                    self.engine.notifier.notify(name)
                    break
        finally:
            self._adopting.discard(key)
        if key in self._held:
            self.ensure(*key)

    def _owner(self, d: bytes) -> str | None:
        if d not in self._owners:
            if len(self._owners) > 100_000:
                self._owners.clear()
            try:
                self._owners[d] = read_commit(self.store, d).caller
            except LatticeError:
                self._owners[d] = None
        return self._owners[d]

    async def _scan(self) -> None:
        """Take the leases of dead processes (rule 4); delete dead heartbeats no lease names."""
        now = asyncio.get_running_loop().time()
        if self._last_scan is not None and now - self._last_scan > self.times.lease / 2:
            self._seen.clear()  # this process was stalled: what it observed before proves nothing
        self._last_scan = now
        leases = list(self.store.refs("l/"))  # before the heartbeats: a holder's exists before its leases
        beats = dict(self.store.refs("p/"))
        for name, d in beats.items():
            s = self._seen.get(name)
            if s is None or s[0] != d:
                self._seen[name] = (d, now)
        for name in [n for n in self._seen if n not in beats]:
            del self._seen[name]

        def alive(owner: str | None) -> bool:
            s = self._seen.get(beat_ref(owner)) if owner is not None else None
            return owner == self.owner or (s is not None and now - s[1] < self.times.lease)

        holders: set[str | None] = set()
        takes = []
        for name, d in leases:
            owner = self._owner(d)
            holders.add(owner)
            key = _key(name)
            if owner == self.owner:
                if self._held.get(key) != d and self._staged.get(key) != d:
                    self._held[key] = d  # one of this process's leases it had lost track of
                if key not in self._loops:
                    self.ensure(*key)
            elif not alive(owner):
                takes.append((name, key, d, owner))
        random.shuffle(takes)
        await asyncio.gather(*(self._take(*t) for t in takes))
        for name, d in beats.items():
            owner = name[2:]
            if not alive(owner) and owner not in holders:
                await self.store.acommit({}, [RefUpdate(name, d, None)])
                self._seen.pop(name, None)

    async def _take(self, name: str, key: Key, d: bytes, owner: str | None) -> None:
        tx = self.engine.tx()
        nd = self._stage(tx, key, self.engine.clock())
        if await self.store.acommit(tx.objects, [RefUpdate(name, d, nd)]):
            log.info("took over agent %s/%s from process %s", key[0], key[1], owner)
            self._held[key] = nd
            self.engine.notifier.notify(name)
            self.ensure(*key)

    # -- heartbeat ------------------------------------------------------------------
    async def _beat(self) -> None:
        name = beat_ref(self.owner)
        new = self._beats[self._beat_count % BEATS]
        self._beat_count += 1
        # the beat commits every time (a few hundred bytes, stored once): the ones the ref does not
        # point at are garbage to a collection (lattice.gc), which may sweep them between two beats
        if await self.store.acommit(self._beat_objects, [RefUpdate(name, self._beat_head, new)]):
            self._beat_head = new
            return
        cur = self.store.ref(name)  # deleted by another process that found this one dead
        log.warning("heartbeat of process %s was taken as dead by another process; renewing it", self.owner)
        if await self.store.acommit(self._beat_objects, [RefUpdate(name, cur, new)]):
            self._beat_head = new
        for key in list(self._held):  # its agents may have moved meanwhile: stop those loops now
            self._check_lease(key)

    async def _every(self, seconds: float, fn: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds * random.uniform(0.85, 1.0))
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; trying again in %s s", getattr(fn, "__name__", fn), seconds)

    async def _check_protocol(self) -> None:
        others = {}
        for name, d in self.store.refs("p/"):
            try:
                tx = self.engine.tx()
                rec = tx.load_root(read_commit(tx, d).root)
            except LatticeError:
                continue
            if rec.get("protocol") != PROTOCOL:
                others[name] = (d, rec)
        if not others:
            return
        log.warning("%d process(es) of another engine protocol share this store; checking whether they are alive "
                    "(%.1f s)", len(others), self.times.lease + self.times.renew)
        loop = asyncio.get_running_loop()
        end = loop.time() + self.times.lease + self.times.renew
        alive = set()
        while loop.time() < end and len(alive) < len(others):  # a heartbeat that moves once is alive
            await asyncio.sleep(self.times.renew / 2)
            alive.update(name for name, (d, _) in others.items() if self.store.ref(name) not in (d, None))
        for name, (d, rec) in others.items():
            cur = self.store.ref(name)
            if name in alive:
                raise StoreError(f"process {rec.get('owner')!r} shares this store with engine protocol "
                                 f"{rec.get('protocol')}; this one speaks protocol {PROTOCOL}",
                                 hint="run the same agent-lattice version on every process sharing a database")
            if cur is not None:
                await self.store.acommit({}, [RefUpdate(name, cur, None)])  # a dead process's heartbeat

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._side.add(t)
        t.add_done_callback(self._side.discard)


def shared_seams(notifier: LocalNotifier | None = None, times: LeaseTimes | None = None,
                 owner: str | None = None) -> dict[str, Any]:
    """The :class:`~ops.engine.runtime.Runtime` options for a store shared by several processes:
    a lease scheduler, quotas counted in the store, and ``notifier`` (one that hears the other
    processes' commits, e.g. :class:`ops.engine.pg.PgNotifier`; default a local one).

    >>> sorted(shared_seams())
    ['notifier', 'quotas', 'scheduler']
    """
    owner = owner or getattr(notifier, "origin", None) or new_owner()
    return {"notifier": notifier or LocalNotifier(), "quotas": StoreQuotas,
            "scheduler": lambda engine, loop: LeaseScheduler(engine, loop, times, owner)}
