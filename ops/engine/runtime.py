"""The runtime: a small facade that wires the engine's parts and serves every operation.

The parts (each its own module): the unit of work (:mod:`.unit`), change
notification (:mod:`.notify`), the scheduler of run loops (:mod:`.scheduler`),
the job index (:mod:`.jobs_index`), limits (:mod:`.limits`), config resolution
(:mod:`.config`), the run loop and cycle driver (:mod:`.runs`, :mod:`.tools`) and
the operation handlers (:mod:`.handlers`). Notification, scheduling and the
job index are seams: a backend shared by several processes replaces their
in-process implementations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import msgspec

from lattice.errors import GcRunning, InvalidValue
from lattice.gc import collect
from lattice.nodes import ObjectCache

from ..domain import jobs as J
from ..domain.contracts import Contract
from ..domain.errors import OpError, Rejected
from ..domain.models import Connections
from ..domain.refs import agent_prefix
from ..llm import make_adapter
from .context import Engine
from .handlers import HANDLERS
from .handlers.agents import cancel_agent_job
from .identity import VenueIdentity
from .jobs_index import JobIndex, LocalJobIndex, expire_jobs
from .limits import Limits, Quotas
from .links import version_links
from .notify import LocalNotifier
from .runs import recover, run_loop
from .scheduler import LocalScheduler, Scheduler

__all__ = ["Runtime", "Limits"]

log = logging.getLogger("lattice.runtime")


class Runtime:
    """Serves every operation over one store; owns the run loops of its agents.

    Args:
        store: a :class:`lattice.store.Store` backend.
        clock: returns Unix milliseconds (default: wall clock).
        adapter_factory: ``ModelRef -> Adapter`` (default :func:`ops.llm.make_adapter`).
        limits: limits (default :class:`~ops.engine.limits.Limits`).
        job_ids: ``Unix ms -> new job id`` (default: monotonic random ids,
            :class:`ops.domain.jobs.JobIds`).
        jobs: the job index (default: :class:`~ops.engine.jobs_index.LocalJobIndex`).
        connections: the model connections the operator declared, and whether every
            model request must go to one (default: none declared, inline endpoints allowed).
        gc_every: seconds between garbage collections run beside the operations (None: never;
            :meth:`gc` collects on demand).
        retain_jobs_ms: with ``gc_every``, drop finished jobs older than this first (None: keep).
        notifier: change notification (default :class:`~ops.engine.notify.LocalNotifier`).
        scheduler: ``(engine, run loop) -> Scheduler`` (default: a
            :class:`~ops.engine.scheduler.LocalScheduler`, every loop in this process).
        quotas: ``(store, limits) -> Quotas`` (default :class:`~ops.engine.limits.Quotas`).
        identity: the venue's key and DID (default: a new key, kept nowhere; ``lattice serve``
            passes the store's, :mod:`ops.engine.identity`). Paths qualified by a caller's DID
            resolve against it (:func:`ops.domain.address.local_path`).
        name: the venue's name, in :meth:`status`.

    One process per store uses the defaults. Processes sharing a store (PostgreSQL) each
    pass :func:`ops.engine.pg.pg_seams` (or :func:`ops.engine.leases.shared_seams`).
    """

    def __init__(self, store: Any, *, clock: Callable[[], int] | None = None,
                 adapter_factory: Callable[[Any], Any] = make_adapter, limits: Limits | None = None,
                 job_ids: Callable[[int], str] | None = None, jobs: JobIndex | None = None,
                 connections: Connections | None = None, gc_every: float | None = None,
                 retain_jobs_ms: int | None = None, notifier: LocalNotifier | None = None,
                 scheduler: Callable[[Engine, Callable[[str, str], Any]], Scheduler] | None = None,
                 quotas: Callable[[Any, Limits], Quotas] = Quotas, identity: VenueIdentity | None = None,
                 name: str = "agent-lattice"):
        self.store = store
        self.identity, self.name = identity or VenueIdentity.generate(), name
        self.cache = ObjectCache()
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.limits = limits or Limits()
        self.notifier = notifier or LocalNotifier()
        self.engine = Engine(store, clock=self.clock, adapter_factory=adapter_factory, limits=self.limits,
                             job_ids=job_ids or J.JobIds(), notifier=self.notifier,
                             jobs=jobs or LocalJobIndex(store, self.cache), cache=self.cache,
                             connections=connections or Connections(), quotas=quotas(store, self.limits))
        loop = lambda caller, aid: run_loop(self.engine, caller, aid)  # noqa: E731
        self.scheduler = scheduler(self.engine, loop) if scheduler is not None else LocalScheduler(loop)
        self.engine.scheduler = self.scheduler
        self.engine.venue_did = self.identity.did
        self.engine.invoke = self.invoke  # a what-if replay forks and sends requests as operations
        self.engine.units.hooks.append(self._wake)
        self.started_at = self.clock()
        self.engine.venue_info = {"name": name, "did": self.identity.did, "version": _version(),
                                  "started": self.started_at, "protocols": ["rest", "mcp", "sse"]}
        self.gc_every, self.retain_jobs_ms = gc_every, retain_jobs_ms
        self._gc_task: asyncio.Task | None = None

    @property
    def adapter_factory(self) -> Callable[[Any], Any]:
        """``ModelRef -> Adapter`` used by the runs started from now on (settable)."""
        return self.engine.adapter_factory

    @adapter_factory.setter
    def adapter_factory(self, factory: Callable[[Any], Any]) -> None:
        self.engine.adapter_factory = factory

    def _wake(self, caller: str, u: Any) -> None:
        for name, w in u.writes.items():
            if w is not None and name.startswith("g/") and w[0]["status"] == "RUNNING":
                self.scheduler.ensure(caller, name.split("/", 2)[2])

    async def start(self) -> int:
        """Start hearing other processes' commits and the scheduler; recover: restart the run
        loop of every agent committed as ``RUNNING``; start the periodic garbage collection when
        ``gc_every`` is set. Returns how many loops were asked for."""
        await self.notifier.start()
        await self.scheduler.start()
        n = recover(self.engine)
        if self.gc_every is not None:
            self._gc_task = asyncio.get_running_loop().create_task(self._collect_periodically())
        return n

    async def _collect_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.gc_every)
            try:
                r = await self.gc(retain_jobs_ms=self.retain_jobs_ms)
                log.info("gc: freed %d objects (%d bytes), %d jobs dropped, %d live", r["freed"], r["freedBytes"],
                         r["jobsRemoved"], r["live"])
            except asyncio.CancelledError:
                raise
            except GcRunning as e:  # several servers on one database: one collects, the others skip a round
                log.info("gc skipped: %s", e.message)
            except Exception:
                log.exception("gc failed; the next one runs in %s s", self.gc_every)

    async def close(self) -> None:
        """Cancel every run loop (in-flight runs leave no trace; they re-run on restart) and the
        periodic collection."""
        if self._gc_task is not None:
            self._gc_task.cancel()
            await asyncio.gather(self._gc_task, return_exceptions=True)
        await self.scheduler.close()
        await self.notifier.close()

    async def invoke(self, contract: Contract, inp: Any, caller: str) -> dict[str, Any]:
        """Run one operation; return its job record.

        Raises:
            Rejected: the request is refused before a job exists (nothing changed).
        """
        ts = self.clock()
        job = J.job_record(self.engine.job_ids(ts), contract.key, ts, input=msgspec.to_builtins(inp))
        try:
            return await HANDLERS[contract.key](self.engine, caller, inp, job)
        except Rejected:
            raise
        except OpError as e:
            done = J.finish(job, J.FAILED, self.clock(), error=e.to_dict())
            self.engine.jobs.remember(caller, done)
            return done
        except InvalidValue as e:  # a value the lattice cannot hold (e.g. an int over 64 bits); nothing was written
            raise Rejected("invalid_input", e.message, path="$.input",
                           hint="integers must fit in 64 bits; map keys must be strings") from None

    def get_job(self, caller: str, job_id: str) -> dict[str, Any] | None:
        """The job record, or None. ``job_id`` may be in any case, with or without ``0x``."""
        return self.engine.jobs.get(caller, job_id)

    async def cancel_job(self, caller: str, job_id: str, reason: str | None = None) -> dict[str, Any] | None:
        """Cancel a job (a task: removed from its agent; a trigger: dropped), ``reason`` its error
        message (default ``cancelled by caller``). None if unknown."""
        job = self.get_job(caller, job_id)
        if job is None or job["status"] in J.TERMINAL or job.get("agentId") is None:
            return job
        await cancel_agent_job(self.engine, caller, job["agentId"], job["jobId"], required=False, reason=reason)
        return self.get_job(caller, job_id)

    def status(self, caller: str, *, shared: bool = False) -> dict[str, Any]:
        """Server and store summary; agent counts are the caller's own.

        ``{status: "ok", did, name, version, startedAt, uptimeMs, runningLoops, agents, store}``:
        ``did`` is the venue's DID (the Covia venue's status field), ``name`` its name.

        Args:
            shared: the server has several callers (tokens): whole-store figures (objects,
                refs, bytes, the data path) are left out, since equal values are stored once
                and a caller could learn from them whether another caller stored a value.
        """
        st: dict[str, Any] = {"backend": getattr(self.store, "backend", type(self.store).__name__)}
        stats = getattr(self.store, "stats", None)
        if stats and not shared:
            st.update(stats())
        return {"status": "ok", "did": self.identity.did, "name": self.name, "version": _version(),
                "startedAt": self.started_at,
                "uptimeMs": self.clock() - self.started_at,
                "runningLoops": sum(1 for c, _ in self.scheduler.running() if c == caller),
                "agents": sum(1 for _ in self.store.refs(agent_prefix(caller))), "store": st}

    def watch(self, ref: str) -> Any:
        """An :class:`asyncio.Event` set at the next commit that moves ``ref`` (see
        :meth:`ops.engine.notify.Notifier.watch`)."""
        return self.notifier.watch(ref)

    def watched(self) -> list[str]:
        """The refs somebody waits on now."""
        return self.notifier.watched()

    def subscribe(self, prefix: str) -> Any:
        """A :class:`~ops.engine.notify.Subscription` to the refs under ``prefix`` (close it when done)."""
        return self.notifier.subscribe(prefix)

    def running(self) -> list[tuple[str, str]]:
        """``(caller, agent id)`` of every run loop running in this process."""
        return self.scheduler.running()

    async def gc(self, *, retain_jobs_ms: int | None = None) -> dict[str, Any]:
        """Collect garbage beside the running operations (see :mod:`lattice.gc`): optionally drop
        finished jobs older than ``retain_jobs_ms``, then free every object no ref reaches.

        Returns:
            ``{refs, live, freed, freedBytes, jobsRemoved, markSeconds, sweepSeconds}``.

        Raises:
            OpError: ``not_supported`` when the store cannot collect.
        """
        if not hasattr(self.store, "gc_sweep"):
            raise OpError("not_supported", f"{type(self.store).__name__} has no garbage collector")
        removed = 0 if retain_jobs_ms is None else await expire_jobs(self.engine, self.clock() - retain_jobs_ms)
        report = await asyncio.to_thread(collect, self.store, None, version_links)
        self.cache.clear()  # drop decoded copies of what was freed
        return {"refs": report.refs, "live": report.live, "freed": report.freed, "freedBytes": report.freed_bytes,
                "jobsRemoved": removed, "markSeconds": round(report.mark_seconds, 3),
                "sweepSeconds": round(report.sweep_seconds, 3)}

    async def idle(self, caller: str, agent_id: str) -> str | None:
        """Wait until the agent is not ``RUNNING``; return its status (None if it is gone)."""
        return await self.engine.idle(caller, agent_id)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("agent-lattice")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"
