"""The engine's parts wired together, and the steps every handler shares.

:class:`Engine` holds the store, the clock, the unit runner
(:class:`~ops.engine.unit.Units`), the seams (:class:`~ops.engine.notify.Notifier`,
:class:`~ops.engine.scheduler.Scheduler`, :class:`~ops.engine.jobs_index.JobIndex`),
the quotas and the model adapters. Handlers (:mod:`ops.engine.handlers`) are
functions of an engine, a caller, the decoded input and the new job record:
they read, decide and apply a domain transition (:mod:`ops.domain.decide`,
:func:`ops.domain.events.apply`), and commit.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable

from lattice.commits import Commit, read_commit
from lattice.digest import from_hex
from lattice.errors import InvalidValue, NotFound
from lattice.history import resolve
from lattice.nodes import ObjectCache, Tx
from lattice.paths import Missing, read_path

from ..domain import agent as A
from ..domain import decide
from ..domain import jobs as J
from ..domain import sessions as S
from ..domain.cycle import Outcome
from ..domain.errors import OpError, Rejected
from ..domain.events import Context, Event, apply, encode
from ..domain.models import Connections, OpenAIModel
from ..domain.refs import agent_ref, job_ref
from .jobs_index import JobIndex
from .limits import Limits, Quotas
from .notify import LocalNotifier
from .scheduler import Scheduler
from .unit import Unit, Units

__all__ = ["Engine", "Sandbox"]


class Sandbox:
    """A what-if agent's model answers: recorded replies by request digest, and a count of live calls.
    A sandboxed agent's runs have no effect outside itself (no workspace writes, no messages out)."""

    def __init__(self, recorded: dict[bytes, dict[str, Any]]):
        self.recorded, self.live = recorded, 0


class Engine:
    """The shell's state and shared steps (see module doc). Built by :class:`ops.engine.runtime.Runtime`."""

    def __init__(self, store: Any, *, clock: Callable[[], int], adapter_factory: Callable[[Any], Any],
                 limits: Limits, job_ids: Callable[[int], str], notifier: LocalNotifier, jobs: JobIndex,
                 cache: ObjectCache, connections: Connections, quotas: Quotas | None = None):
        self.store, self.clock, self.adapter_factory, self.limits = store, clock, adapter_factory, limits
        self.connections = connections
        self.job_ids, self.notifier, self.jobs, self.cache = job_ids, notifier, jobs, cache
        self.quotas = quotas or Quotas(store, limits)
        self.units = Units(store, cache, clock, notifier.notify, getattr(jobs, "resolve", None))
        self.units.hooks.append(self.quotas.on_commit)
        if hasattr(self.quotas, "guard"):
            self.units.guards.append(self.quotas.guard)
        self.scheduler: Scheduler = None  # type: ignore[assignment]  # set by the runtime (it needs the run loop)
        self.sandboxes: dict[tuple[str, str], Sandbox] = {}
        #: the venue's DID (set by the runtime): a caller's DID-qualified paths resolve against it
        self.venue_did: str | None = None
        #: the ``v/info`` globals a runtime sets: name, did, version, started (ms), protocols
        self.venue_info: dict[str, Any] = {}

    def adapter(self, model: Any) -> Any:
        """The adapter for a run's model ref, its endpoint resolved through the declared
        connections (:meth:`ops.domain.models.Connections.resolve`).

        Raises:
            LlmError: ``llm_config`` (an endpoint the server does not serve, a bad key variable).
        """
        if isinstance(model, OpenAIModel):
            model = self.connections.resolve(model)
        return self.adapter_factory(model)

    # -- reading ----------------------------------------------------------------
    def tx(self) -> Tx:
        """A fresh read/stage transaction over the store (shared object cache)."""
        return Tx(self.store, self.cache)

    def snapshot(self, caller: str, agent_id: str) -> tuple[Tx, dict[str, Any], bytes] | None:
        """``(tx, opened record, head commit digest)`` of an agent, or None."""
        d = self.store.ref(agent_ref(caller, agent_id))
        if d is None:
            return None
        tx = self.tx()
        return tx, A.opened(tx, tx.load_root(read_commit(tx, d).root)), d

    def opened_at(self, tx: Tx, commit_id: str) -> dict[str, Any]:
        """The opened agent record of the version with commit id ``commit_id`` (hex)."""
        return A.opened(tx, tx.load_root(read_commit(tx, from_hex(commit_id)).root))

    def head_commit(self, tx: Tx, caller: str, agent_id: str, path: str = "$.input.agentId") -> tuple[bytes, Commit]:
        """``(digest, commit)`` of the agent's head; ``not_found`` without one."""
        head = self.store.ref(agent_ref(caller, agent_id))
        if head is None:
            raise OpError("not_found", f"no agent {agent_id!r}", path=path, hint="agent:list shows your agents")
        return head, read_commit(tx, head)

    def at_version(self, tx: Tx, caller: str, agent_id: str, at: Any, path: str = "$.input.at",
                   agent_path: str = "$.input.agentId") -> tuple[bytes, Commit]:
        """The agent's commit named by ``at`` (a seq or a commit id).

        Raises:
            OpError: ``not_found`` (no such agent, or no such version of it).
            Rejected: ``invalid_input`` (``at`` is not a version).
        """
        head, _ = self.head_commit(tx, caller, agent_id, agent_path)
        try:
            return resolve(tx, head, at)
        except NotFound as e:
            raise OpError("not_found", f"agent {agent_id!r}: {e.message}", path=path,
                          hint="agent:history lists the agent's versions") from None
        except InvalidValue as e:
            raise Rejected("invalid_input", e.message, path=path) from None

    def raw_root(self, tx: Tx, ref: str) -> Any:
        """The raw root value at ``ref``'s head (for ``j/``, the job record: stored, folded into
        its agent's commit, or in memory), or ``Missing``."""
        if ref.startswith("j/"):
            _, caller, jid = ref.split("/", 2)
            job = self.jobs.get(caller, jid)
            return Missing if job is None else job
        d = self.store.ref(ref)
        if d is None:
            return Missing
        return tx.raw_root(read_commit(tx, d).root)

    def read_value(self, ref: str, segs: list[str]) -> Any:
        """The materialized value at ``segs`` below ``ref``'s head (``Missing`` if absent)."""
        tx = self.tx()
        raw = self.raw_root(tx, ref)
        if raw is Missing:
            return Missing
        v = read_path(tx, raw, segs)
        return Missing if v is Missing else tx.materialize(v)

    # -- writing ----------------------------------------------------------------
    def sync_jobs(self, u: Unit, caller: str, rec: dict[str, Any], agent_id: str | None = None) -> None:
        """Keep the job state machine in step with a settled agent record (of ``agent_id``): the
        oldest task's job is ``STARTED`` while the agent is ``RUNNING``, else ``PENDING`` (a job
        this unit folds into the agent's commit has that status by construction)."""
        head = J.head_task(rec)
        if head is not None:
            name = job_ref(caller, head[0])
            jr = u.read(name, agent_id)
            moved = None if jr is None else J.retarget(jr, head[1], u.ts)
            if moved is not None:
                u.write(name, moved, "job:status")

    def commit_event(self, u: Unit, caller: str, agent_id: str, rec: dict[str, Any] | None, event: Event,
                     load: Callable[[str], dict[str, Any]] | None = None,
                     outcome: Outcome | None = None) -> dict[str, Any]:
        """Apply ``event`` to ``rec`` (the agent's current record), stage the new record with the
        event as its commit's record, and keep its jobs in step; return the new record."""
        ctx = Context(ts=u.ts, caller=u.caller, agent_id=agent_id, load=load or (lambda h: self.opened_at(u.tx, h)))
        new = apply(u.tx, rec, event, ctx, outcome)
        self.sync_jobs(u, caller, new, agent_id)
        op, inp = encode(event)
        u.write(agent_ref(caller, agent_id), new, op, inp)
        return new

    def cancel_jobs(self, u: Unit, caller: str, rec: dict[str, Any], message: str,
                    agent_id: str | None = None) -> None:
        """Cancel every waiting task, trigger and chat job of an agent record (of ``agent_id``)."""
        for tid in J.work_job_ids(rec) + S.chat_ids(u.tx, rec):
            name = job_ref(caller, tid)
            jr = u.read(name, agent_id)
            done = None if jr is None else J.cancel(jr, u.ts, message)
            if done is not None:
                u.write(name, done, "job:cancel")

    def keep_finished_jobs(self, u: Unit, caller: str, chain: Iterable[tuple[bytes, Commit]],
                           agent_id: str) -> None:
        """Give every finished job folded into a run commit of ``chain`` (``(digest, commit)``
        pairs of agent ``agent_id``'s versions about to be dropped or rewritten) its own record,
        on a chain of its own: no job ref keeps those versions alive (:mod:`ops.domain.jobs`)."""
        for d, c in chain:
            tid = J.run_task_id(u.tx, c)
            if tid is None:
                continue
            name = job_ref(caller, tid)
            if u.head(name)[0] == d and name not in u.writes:
                jr = u.read(name, agent_id)
                if jr is not None:
                    u.write(name, jr, jr["operation"])

    async def sync(self, caller: str, job: dict[str, Any], fn: Callable[[Unit], Any]) -> dict[str, Any]:
        """Run a synchronous operation: its ``COMPLETE`` job commits with its changes (if any);
        a job that changed nothing is kept in memory (:class:`~ops.engine.jobs_index.JobIndex`).
        A job-free read (``jobId`` None, :func:`ops.engine.reads.job_free`) is kept nowhere and may not write."""
        def unit(u: Unit) -> dict[str, Any]:
            output = fn(u)
            done = J.finish(job, J.COMPLETE, u.ts, output=output)
            if u.writes:
                if job["jobId"] is None:
                    raise RuntimeError(f"{job['operation']} wrote in a job-free read")
                u.write(job_ref(caller, job["jobId"]), done, job["operation"])
            return done
        done = await self.units.run(caller, unit)
        if done["jobId"] is not None and self.store.ref(job_ref(caller, done["jobId"])) is None:
            self.jobs.remember(caller, done)
        return done

    def agent(self, u: Unit, caller: str, agent_id: str, path: str = "$.input.agentId") -> dict[str, Any]:
        """The agent's record in unit ``u``; ``not_found`` if it does not exist."""
        return decide.exists(u.read(agent_ref(caller, agent_id)), agent_id, path)

    # -- waiting ------------------------------------------------------------------
    async def idle(self, caller: str, agent_id: str) -> str | None:
        """Wait until the agent is not ``RUNNING``; return its status (None if it is gone)."""
        name = agent_ref(caller, agent_id)
        while True:
            ev = self.notifier.watch(name)
            snap = self.snapshot(caller, agent_id)
            if snap is None or snap[1]["status"] != A.RUNNING:
                return None if snap is None else snap[1]["status"]
            await ev.wait()

    async def wait(self, caller: str, job: dict[str, Any], wait: Any) -> dict[str, Any]:
        """Wait per ``wait`` (True: until done; False: not; a number: milliseconds) for a task or
        trigger job; return it as it is then. A suspended or terminated agent ends the wait:
        the job then carries ``agent: {agentId, status, error}`` (not stored) saying why it is
        not done."""
        if wait is False or job.get("agentId") is None:
            return job
        timeout = None if wait is True else float(wait) / 1000.0
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        name = agent_ref(caller, job["agentId"])
        while True:
            cur = self.jobs.get(caller, job["jobId"], job["agentId"]) or job
            if cur["status"] in J.TERMINAL:
                return cur
            ev = self.notifier.watch(name)
            head = self.store.ref(name)
            if head is None:
                return cur
            if not self.scheduler.works_on(caller, job["agentId"], job["jobId"]):
                tx = self.tx()  # only the status (and error) are needed: no opening of the record
                rec = tx.load_root(read_commit(tx, head).root)
                if rec["status"] in (A.SUSPENDED, A.TERMINATED):  # no progress possible until agent:resume
                    return {**cur, "agent": {"agentId": job["agentId"], "status": rec["status"],
                                             "error": tx.plain(rec["error"])}}
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return cur
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except asyncio.TimeoutError:
                pass
