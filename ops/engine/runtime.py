"""The shell: load a head, run a pure transition, call the LLM, commit with compare-and-swap.

Refs (one commit chain each, in the caller's namespace)::

    g/<caller>/<agentId>   the agent record (see ops.agent)
    j/<caller>/<jobId>     a job record (jobs that changed state; see ops.jobs)
    w/<caller>             the caller's workspace (a map)

Every change goes through :meth:`Runtime._transact`: a *unit* reads heads,
stages new records, and commits them all at once, each ref moved by
compare-and-swap. On a lost race the unit is re-run on the new heads, so work
that arrived meanwhile (a task added during an LLM call) is merged, never lost
or duplicated.

Recovery after a restart (:meth:`Runtime.start`): the scheduling rule (work
wakes a ``SLEEPING`` agent to ``RUNNING``, a ``RUNNING`` agent without work
sleeps; the oldest task of a ``RUNNING`` agent is the only ``STARTED`` job) is
kept atomically by every commit, so the store holds no half-done run.
Each agent found ``RUNNING`` gets its run loop back and re-runs the task that
was in flight from the last committed state; an interrupted run left no
timeline or history entry. So no agent stays ``RUNNING`` and no job
``STARTED`` without a live run. Jobs of read-only operations and failed
requests are kept in memory only (they changed nothing) and are gone after a
restart.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import time
import weakref
from collections import OrderedDict
from typing import Any, Callable

import msgspec

from lattice.codec import encode
from lattice.commits import Commit, read_commit, write_commit
from lattice.digest import digest, from_hex
from lattice.errors import InvalidPath, InvalidValue, LatticeError, NotFound
from lattice.history import diff, resolve, versions
from lattice.nodes import HMap, ObjectCache, Tx, Vec, map_keys, map_len, seq_len
from lattice.paths import Missing, delete_path, kind_of, open_level, parse_path, read_path, write_path
from lattice.store import RefUpdate

from ..domain import agent as A
from ..domain import operations as O
from ..domain.contracts import REGISTRY, Contract, validation_error
from ..domain.errors import OpError, Rejected
from ..domain.jobs import CANCELLED, COMPLETE, FAILED, PENDING, STARTED, TERMINAL, JobIds, finish, job_record, normalize_job_id
from ..domain.models import PROVIDERS, LlmError, LlmReply, LlmRequest
from ..llm import make_adapter
from ..domain.events import ReplayError, recorded_replies, rederive

__all__ = ["Runtime", "Limits", "agent_ref", "job_ref", "ws_ref", "templates"]

log = logging.getLogger("lattice.runtime")

_MEMORY_JOBS = 10_000
_MAX_RETRIES = 64
_TOOL_TEXT_MAX = 16_384


def agent_ref(caller: str, agent_id: str) -> str:
    return f"g/{caller}/{agent_id}"


def job_ref(caller: str, job_id: str) -> str:
    return f"j/{caller}/{job_id}"


def ws_ref(caller: str) -> str:
    return f"w/{caller}"


def templates() -> dict[str, dict[str, Any]]:
    """The shipped config templates (``ops/templates/<name>.json``)."""
    out = {}
    for f in importlib.resources.files("ops").joinpath("templates").iterdir():
        if f.name.endswith(".json"):
            out[f.name[:-5]] = json.loads(f.read_text())
    return out


class _Unit:
    """One optimistic transaction over several refs (see module doc)."""

    __slots__ = ("store", "tx", "ts", "caller", "heads", "writes")

    def __init__(self, store: Any, ts: int, caller: str, cache: ObjectCache | None = None):
        self.store, self.tx, self.ts, self.caller = store, Tx(store, cache), ts, caller
        self.heads: dict[str, tuple[bytes | None, Commit | None]] = {}
        self.writes: dict[str, tuple[Any, str, Any] | None] = {}

    def head(self, name: str) -> tuple[bytes | None, Commit | None]:
        h = self.heads.get(name)
        if h is None:
            d = self.store.ref(name)
            h = (d, read_commit(self.tx, d) if d is not None else None)
            self.heads[name] = h
        return h

    def read(self, name: str) -> Any:
        """The record at ``name`` as staged in this unit, else at its head; None if absent."""
        if name in self.writes:
            w = self.writes[name]
            return None if w is None else w[0]
        _, c = self.head(name)
        if c is None:
            return None
        rec = self.tx.load_root(c.root)
        return A.opened(self.tx, rec) if name.startswith("g/") else rec

    def write(self, name: str, record: Any, op: str, input: Any = None) -> None:
        """Stage ``record`` at ``name``; the commit records the event (op, input) of the
        *first* write to ``name`` in this unit (later writes are part of that event)."""
        self.head(name)
        prev = self.writes.get(name)
        if prev is not None:
            op, input = prev[1], prev[2]
        self.writes[name] = (record, op, input)

    def remove(self, name: str) -> None:
        self.head(name)
        self.writes[name] = None

    def updates(self) -> list[RefUpdate]:
        ups = []
        for name, w in self.writes.items():
            d, c = self.heads[name]
            if w is None:
                if d is not None:
                    ups.append(RefUpdate(name, d, None))
                continue
            record, op, input = w
            root = self.tx.put_root(record)
            if c is not None and c.root == root:
                continue
            cd, _ = write_commit(self.tx, parent=d, parent_commit=c, root=root, ts=self.ts,
                                 op=op, input=input, caller=self.caller)
            ups.append(RefUpdate(name, d, cd))
        return ups


class _Outcome(msgspec.Struct):
    """What a run produced, committed by ``Runtime._complete``; ``llm`` and ``tools``
    are recorded in the run's commit so that a replay can re-run it exactly."""

    new_history: list[dict[str, Any]]
    result: Any
    task_status: str
    task_output: Any
    task_error: dict[str, Any] | None
    llm: list[dict[str, Any]]  # [{request: digest of the canonical request, reply}]
    tools: list[str]  # results of the I/O tool calls, in order
    ws_edits: list[tuple[list[str], Any]]  # covia_write calls, in order
    outbox: list[tuple[str, str]]  # agent_message calls: (agentId, message)


class _ReplayLlm:
    """LLM answers for a what-if replay: recorded replies by request digest, and a count of live calls."""

    def __init__(self, recorded: dict[bytes, dict[str, Any]]):
        self.recorded, self.live = recorded, 0


def request_digest(request: dict[str, Any]) -> bytes:
    """The digest of an LLM request ``{model, messages, tools}`` in canonical form."""
    return digest(encode(request))


class Limits(msgspec.Struct, frozen=True):
    """Per-caller limits; exceeding one fails the operation with ``limit_exceeded``.

    Attributes:
        max_agents: agent records a caller may hold (terminated ones count until
            removed with ``agent:delete remove: true``).
        max_queued: work an agent may have waiting: tasks + inbox messages + triggers.
    """

    max_agents: int = 10_000
    max_queued: int = 1_000


class Runtime:
    """Serves every operation over one store; owns the run loops of its agents.

    Args:
        store: a :class:`lattice.store.Store` backend.
        clock: returns Unix milliseconds (default: wall clock).
        adapter_factory: ``ModelRef -> Adapter`` (default :func:`ops.llm.make_adapter`).
        limits: per-caller limits (default :class:`Limits`).
    """

    def __init__(self, store: Any, *, clock: Callable[[], int] | None = None,
                 adapter_factory: Callable[[Any], Any] = make_adapter, limits: Limits | None = None):
        self.store = store
        self.limits = limits or Limits()
        self._agent_counts: dict[str, int] = {}
        self._create_locks: dict[str, asyncio.Lock] = {}
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.adapter_factory = adapter_factory
        self.cache = ObjectCache()
        self._job_ids = JobIds()
        self.started_at = self.clock()
        self._loops: dict[tuple[str, str], asyncio.Task] = {}
        self._cycles: dict[tuple[str, str], tuple[str | None, asyncio.Task]] = {}
        self._events: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self._mem_jobs: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._replay_llm: dict[tuple[str, str], _ReplayLlm] = {}
        self._closed = False

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> int:
        """Recover: restart the run loop of every agent committed as RUNNING. Returns how many."""
        n = 0
        for name, d in self.store.refs("g/"):
            _, caller, aid = name.split("/", 2)
            tx = Tx(self.store, self.cache)
            rec = tx.load_root(read_commit(tx, d).root)
            if rec["status"] == A.RUNNING:
                self._ensure_loop(caller, aid)
                n += 1
        if n:
            log.info("recovery: resumed %d agent run loop(s)", n)
        return n

    async def close(self) -> None:
        """Cancel every run loop (in-flight runs leave no trace; they re-run on restart)."""
        self._closed = True
        tasks = list(self._loops.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- invoke --------------------------------------------------------------
    async def invoke(self, contract: Contract, inp: Any, caller: str) -> dict[str, Any]:
        """Run one operation; return its job record.

        Raises:
            Rejected: the request is refused before a job exists (nothing changed).
        """
        ts = self.clock()
        job = job_record(self._job_ids(ts), contract.key, ts, input=msgspec.to_builtins(inp))
        handler = getattr(self, contract.handler)
        try:
            return await handler(caller, inp, job)
        except Rejected:
            raise
        except OpError as e:
            done = finish(job, FAILED, self.clock(), error=e.to_dict())
            self._remember(caller, done)
            return done
        except InvalidValue as e:  # a value the lattice cannot hold (e.g. an int over 64 bits); nothing was written
            raise Rejected("invalid_input", e.message, path="$.input",
                           hint="integers must fit in 64 bits; map keys must be strings") from None

    def get_job(self, caller: str, job_id: str) -> dict[str, Any] | None:
        """The job record, or None. ``job_id`` may be in any case, with or without ``0x``."""
        jid = normalize_job_id(job_id)
        if jid is None:
            return None
        d = self.store.ref(job_ref(caller, jid))
        if d is not None:
            tx = Tx(self.store, self.cache)
            return tx.materialize(tx.raw_root(read_commit(tx, d).root))
        return self._mem_jobs.get(caller, {}).get(jid)

    async def cancel_job(self, caller: str, job_id: str) -> dict[str, Any] | None:
        """Cancel a job (a task: removed from its agent; a trigger: dropped). None if unknown."""
        job = self.get_job(caller, job_id)
        if job is None or job["status"] in TERMINAL:
            return job
        aid = job.get("agentId")
        if aid is None:
            return job
        await self._cancel_agent_job(caller, aid, job["jobId"], required=False)
        return self.get_job(caller, job_id)

    def status(self, caller: str) -> dict[str, Any]:
        """Server and store summary; agent counts are the caller's own."""
        st = {"backend": type(self.store).__name__}
        stats = getattr(self.store, "stats", None)
        if stats:
            st.update(stats())
        return {"status": "ok", "version": _version(), "startedAt": self.started_at,
                "uptimeMs": self.clock() - self.started_at,
                "runningLoops": sum(1 for c, _ in self._loops if c == caller),
                "agents": sum(1 for _ in self.store.refs(f"g/{caller}/")), "store": st}

    # -- plumbing ------------------------------------------------------------
    async def _transact(self, caller: str, fn: Callable[[_Unit], Any]) -> Any:
        """Run ``fn`` in a unit and commit it, re-running it on lost races.

        Shielded: a caller that goes away (a client disconnecting cancels its
        request) never interrupts a commit between the store and the wake-ups
        that follow it.
        """
        return await asyncio.shield(self._transact_now(caller, fn))

    async def _transact_now(self, caller: str, fn: Callable[[_Unit], Any]) -> Any:
        for attempt in range(_MAX_RETRIES):
            u = _Unit(self.store, self.clock(), caller, self.cache)
            result = fn(u)
            ups = u.updates()
            if not ups:
                return result
            if await self.store.acommit(u.tx.objects, ups):
                self._after_commit(caller, u)
                return result
            await asyncio.sleep(0 if attempt < 4 else 0.001 * attempt)
        raise OpError("conflict", f"gave up after {_MAX_RETRIES} lost compare-and-swap races",
                      hint="retry the request")

    def _after_commit(self, caller: str, u: _Unit) -> None:
        for name, w in u.writes.items():
            self._notify(name)
            if name.startswith("g/") and caller in self._agent_counts:
                existed = u.heads[name][0] is not None
                self._agent_counts[caller] += (w is not None and not existed) - (w is None and existed)
            if name.startswith("g/") and w is not None and w[0]["status"] == A.RUNNING:
                self._ensure_loop(caller, name.split("/", 2)[2])

    def watch(self, ref: str) -> asyncio.Event:
        """An event set at the next commit that moves ``ref`` (e.g. ``agent_ref(caller, id)``).

        Take the event *before* reading the state it guards, then await it: a
        commit in between sets it, so no change is missed. One event serves
        every watcher of a ref until it fires; watch again afterwards.
        """
        ev = self._events.get(ref)
        if ev is None:
            ev = self._events[ref] = asyncio.Event()
        return ev

    def _notify(self, key: str) -> None:
        ev = self._events.pop(key, None)  # held weakly: only while somebody waits on it
        if ev is not None:
            ev.set()

    async def _changed(self, key: str, timeout: float | None) -> bool:
        ev = self.watch(key)
        try:
            await asyncio.wait_for(ev.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _remember(self, caller: str, job: dict[str, Any]) -> None:
        """Keep a job that is not stored (it changed nothing); each caller keeps its own newest ones."""
        mine = self._mem_jobs.get(caller)
        if mine is None:
            mine = self._mem_jobs[caller] = OrderedDict()
        mine[job["jobId"]] = job
        while len(mine) > _MEMORY_JOBS:
            mine.popitem(last=False)

    async def _sync(self, caller: str, job: dict[str, Any], fn: Callable[[_Unit], Any]) -> dict[str, Any]:
        """Run a synchronous operation: its COMPLETE job commits with its changes (if any)."""
        def unit(u: _Unit) -> dict[str, Any]:
            output = fn(u)
            done = finish(job, COMPLETE, u.ts, output=output)
            if u.writes:
                u.write(job_ref(caller, job["jobId"]), done, job["operation"])
            return done
        done = await self._transact(caller, unit)
        if self.store.ref(job_ref(caller, done["jobId"])) is None:
            self._remember(caller, done)
        return done

    def _check_room_for_agent(self, caller: str) -> None:
        """Raise ``limit_exceeded`` when the caller holds ``limits.max_agents`` agents."""
        n = self._agent_counts.get(caller)
        if n is None:
            n = self._agent_counts[caller] = sum(1 for _ in self.store.refs(f"g/{caller}/"))
        if n >= self.limits.max_agents:
            raise OpError("limit_exceeded", f"you hold {n} agents, the limit is {self.limits.max_agents}",
                          hint="remove agents you no longer need with agent:delete {remove: true}")

    def _check_room_for_work(self, rec: dict[str, Any], aid: str, staged: int = 0) -> None:
        """Raise ``limit_exceeded`` when the agent already has ``limits.max_queued`` pieces of work waiting
        (``staged``: messages a run has queued for it but not committed yet)."""
        n = map_len(rec["tasks"]) + seq_len(rec["inbox"]) + len(rec["triggers"]) + staged
        if n >= self.limits.max_queued:
            raise OpError("limit_exceeded", f"agent {aid!r} has {n} tasks, messages and triggers waiting, "
                                            f"the limit is {self.limits.max_queued}",
                          hint="wait for it to catch up (agent:info shows taskCount), or resume it if suspended")

    def _agent(self, u: _Unit, caller: str, aid: str, path: str = "$.input.agentId") -> dict[str, Any]:
        rec = u.read(agent_ref(caller, aid))
        if rec is None:
            raise OpError("not_found", f"no agent {aid!r}", path=path, hint="agent:list shows your agents")
        return rec

    def _at_version(self, tx: Tx, caller: str, aid: str, at: Any, path: str = "$.input.at",
                    agent_path: str = "$.input.agentId") -> tuple[bytes, Commit]:
        """The agent's commit named by ``at`` (a seq or a commit id).

        Raises:
            OpError: ``not_found`` (no such agent, or no such version of it).
            Rejected: ``invalid_input`` (``at`` is not a version).
        """
        head = self.store.ref(agent_ref(caller, aid))
        if head is None:
            raise OpError("not_found", f"no agent {aid!r}", path=agent_path, hint="agent:list shows your agents")
        try:
            return resolve(tx, head, at)
        except NotFound as e:
            raise OpError("not_found", f"agent {aid!r}: {e.message}", path=path,
                          hint="agent:history lists the agent's versions") from None
        except InvalidValue as e:
            raise Rejected("invalid_input", e.message, path=path) from None

    def _settle(self, u: _Unit, caller: str, aid: str, rec: dict[str, Any]) -> dict[str, Any]:
        """Apply :func:`agent.settle` and make the oldest task's job STARTED iff the agent is RUNNING."""
        rec = A.settle(rec)
        if map_len(rec["tasks"]):
            first = map_keys(rec["tasks"])[0]
            want = STARTED if rec["status"] == A.RUNNING else PENDING
            name = job_ref(caller, first)
            jr = u.read(name)
            if jr is not None and jr["status"] in (PENDING, STARTED) and jr["status"] != want:
                u.write(name, {**jr, "status": want, "updated": u.ts}, "job:status")
        return rec

    def _ensure_loop(self, caller: str, aid: str) -> None:
        key = (caller, aid)
        if key not in self._loops and not self._closed:
            self._loops[key] = asyncio.get_running_loop().create_task(self._loop(caller, aid))

    async def _wait(self, caller: str, job: dict[str, Any], wait: Any) -> dict[str, Any]:
        """Wait per ``wait`` (True: until done; False: not; number: ms) for a task/trigger job."""
        if wait is False:
            return job
        timeout = None if wait is True else float(wait) / 1000.0
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        aname = agent_ref(caller, job["agentId"])
        while True:
            cur = self.get_job(caller, job["jobId"]) or job
            if cur["status"] in TERMINAL:
                return cur
            d = self.store.ref(aname)
            if d is None:
                return cur
            tx = Tx(self.store, self.cache)
            cyc = self._cycles.get((caller, job["agentId"]))
            in_flight = cyc is not None and cyc[0] == job["jobId"]
            if not in_flight and tx.load_root(read_commit(tx, d).root)["status"] in (A.SUSPENDED, A.TERMINATED):
                return cur  # no progress possible until agent:resume
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return cur
            await self._changed(aname, remaining)

    # -- config --------------------------------------------------------------
    def _resolve_config(self, caller: str, config: Any, path: str = "$.input.config") -> dict[str, Any] | None:
        if config is None:
            return None
        if isinstance(config, str):
            if config.startswith("w/"):
                try:
                    _, segs = parse_path(config)
                except InvalidPath as e:
                    raise Rejected("invalid_path", e.message, path=path) from None
                value = self._read_value(caller, ws_ref(caller), segs)
                if value is Missing:
                    raise OpError("not_found", f"no config at {config}", path=path)
                if not isinstance(value, dict):
                    raise OpError("invalid_config", f"{config} holds a {type(value).__name__}, expected a config map",
                                  path=path)
                where, cfg = config, value
            else:
                tpl = templates()
                if config not in tpl:
                    raise OpError("not_found", f"no config template {config!r}", path=path,
                                  hint=f"templates: {', '.join(sorted(tpl))}; or pass an inline map or a w/ path")
                where, cfg = f"template {config}", tpl[config]
            try:
                A.check_config(cfg)
            except msgspec.ValidationError as e:
                raise OpError("invalid_config", f"{where}: {e}", path=path) from None
            return cfg
        try:
            A.check_config(config)
        except msgspec.ValidationError as e:
            rej = validation_error(e, path)
            if rej.path and rej.path.endswith(".model.provider"):
                rej.hint = f"providers: {', '.join(PROVIDERS)}"
            raise rej from None
        return config

    # -- agent lifecycle operations -------------------------------------------
    @staticmethod
    def _check_state(state: Any) -> None:
        if isinstance(state, dict) and "history" in state:
            try:
                A.check_history(state["history"])
            except msgspec.ValidationError as e:
                raise validation_error(e, "$.input.state.history") from None

    def _creating(self, caller: str) -> asyncio.Lock:
        """Creations of a caller's agents run one at a time, so ``limits.max_agents`` cannot be raced."""
        lock = self._create_locks.get(caller)
        if lock is None:
            lock = self._create_locks[caller] = asyncio.Lock()
        return lock

    async def op_agent_create(self, caller: str, inp: O.CreateInput, job: dict) -> dict:
        async with self._creating(caller):
            return await self._create(caller, inp, job)

    async def _create(self, caller: str, inp: O.CreateInput, job: dict) -> dict:
        self._check_state(inp.state)
        config = self._resolve_config(caller, inp.config) or {}
        name = agent_ref(caller, inp.agentId)

        def fn(u: _Unit) -> dict:
            old = u.read(name)
            if old is not None and not inp.overwrite:
                return {"agentId": inp.agentId, "status": old["status"], "created": False, "updated": False}
            if old is None:
                self._check_room_for_agent(caller)
            if old is not None:
                self._cancel_all(u, caller, old)
            rec = A.new_agent(config, inp.state, u.ts)
            u.write(name, rec, "agent:create", {**msgspec.to_builtins(inp), "config": config})
            return {"agentId": inp.agentId, "status": rec["status"], "created": old is None, "updated": old is not None}
        done = await self._sync(caller, job, fn)
        if inp.overwrite and done["status"] == COMPLETE and done["output"]["updated"]:
            self._stop_run(caller, inp.agentId)  # the replaced agent's in-flight run must not block the new one
        return done

    def _stop_run(self, caller: str, aid: str, task_id: str | None = None) -> None:
        """Cancel the in-flight run of an agent (only if it works on ``task_id``, when given)."""
        cyc = self._cycles.get((caller, aid))
        if cyc is not None and (task_id is None or cyc[0] == task_id):
            cyc[1].cancel()

    async def op_agent_update(self, caller: str, inp: O.UpdateInput, job: dict) -> dict:
        self._check_state(inp.state)
        if inp.config is not None:
            self._resolve_config(caller, inp.config)

        def fn(u: _Unit) -> dict:
            rec = self._agent(u, caller, inp.agentId)
            if rec["status"] == A.TERMINATED:
                raise OpError("illegal_state", f"agent {inp.agentId!r} is TERMINATED")
            if inp.config is not None:
                try:
                    A.check_config({**rec["state"]["config"], **inp.config})
                except msgspec.ValidationError as e:
                    raise OpError("invalid_config", f"merged config: {e}", path="$.input.config") from None
            rec = A.update(rec, inp.config, inp.state, u.ts)
            u.write(agent_ref(caller, inp.agentId), rec, "agent:update", msgspec.to_builtins(inp))
            return {"agentId": inp.agentId, "status": rec["status"]}
        return await self._sync(caller, job, fn)

    async def op_agent_fork(self, caller: str, inp: O.ForkInput, job: dict) -> dict:
        async with self._creating(caller):
            return await self._fork(caller, inp, job)

    async def _fork(self, caller: str, inp: O.ForkInput, job: dict) -> dict:
        override = self._resolve_config(caller, inp.config)

        def fn(u: _Unit) -> dict:
            if inp.at is None:
                src = self._agent(u, caller, inp.sourceId, "$.input.sourceId")
                source = u.head(agent_ref(caller, inp.sourceId))[0]
            else:
                source, c = self._at_version(u.tx, caller, inp.sourceId, inp.at, agent_path="$.input.sourceId")
                src = A.opened(u.tx, u.tx.load_root(c.root))
            name = agent_ref(caller, inp.agentId)
            if u.read(name) is not None:
                raise OpError("conflict", f"agent {inp.agentId!r} already exists", path="$.input.agentId",
                              hint="choose another agentId or agent:delete it with remove: true")
            self._check_room_for_agent(caller)
            rec = A.fork(src, override, inp.includeTimeline, u.ts)
            if override:
                try:
                    A.check_config(rec["state"]["config"])
                except msgspec.ValidationError as e:
                    raise OpError("invalid_config", f"merged config: {e}", path="$.input.config") from None
            u.write(name, rec, "agent:fork", {**msgspec.to_builtins(inp), "config": override, "source": source.hex()})
            return {"agentId": inp.agentId, "status": rec["status"], "forkedFrom": inp.sourceId}
        return await self._sync(caller, job, fn)

    async def op_agent_suspend(self, caller: str, inp: O.AgentInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            rec = self._agent(u, caller, inp.agentId)
            if rec["status"] == A.TERMINATED:
                raise OpError("illegal_state", f"agent {inp.agentId!r} is TERMINATED")
            if rec["status"] != A.SUSPENDED:
                rec = self._settle(u, caller, inp.agentId, A.suspend(rec, u.ts))
                u.write(agent_ref(caller, inp.agentId), rec, "agent:suspend", msgspec.to_builtins(inp))
            return {"agentId": inp.agentId, "status": rec["status"]}
        return await self._sync(caller, job, fn)

    async def op_agent_resume(self, caller: str, inp: O.ResumeInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            rec = self._agent(u, caller, inp.agentId)
            if rec["status"] == A.TERMINATED:
                raise OpError("illegal_state", f"agent {inp.agentId!r} is TERMINATED", hint="fork it to continue")
            if rec["status"] == A.RUNNING or (rec["status"] == A.SLEEPING and rec["error"] is None
                                               and not (inp.autoWake and A.has_work(rec))):
                return {"agentId": inp.agentId, "status": rec["status"]}
            rec = A.resume(rec, u.ts, inp.autoWake)
            rec = self._settle(u, caller, inp.agentId, rec) if inp.autoWake else rec
            u.write(agent_ref(caller, inp.agentId), rec, "agent:resume", msgspec.to_builtins(inp))
            return {"agentId": inp.agentId, "status": rec["status"]}
        return await self._sync(caller, job, fn)

    def _cancel_all(self, u: _Unit, caller: str, rec: dict) -> None:
        """Cancel every pending task and trigger job of an agent record."""
        for tid in map_keys(rec["tasks"]) + list(rec.get("triggers", [])):
            name = job_ref(caller, tid)
            jr = u.read(name)
            if jr is not None and jr["status"] not in TERMINAL:
                u.write(name, finish(jr, CANCELLED, u.ts, error={"code": "cancelled", "message": "agent terminated"}),
                        "job:cancel")

    async def op_agent_delete(self, caller: str, inp: O.DeleteInput, job: dict) -> dict:
        name = agent_ref(caller, inp.agentId)

        def fn(u: _Unit) -> dict:
            rec = self._agent(u, caller, inp.agentId)
            self._cancel_all(u, caller, rec)
            if inp.remove:
                u.remove(name)
                return {"agentId": inp.agentId, "removed": True}
            rec = A.terminate(rec, u.ts)
            u.write(name, rec, "agent:delete", msgspec.to_builtins(inp))
            return {"agentId": inp.agentId, "status": rec["status"]}
        out = await self._sync(caller, job, fn)
        if out["status"] == COMPLETE:
            self._stop_run(caller, inp.agentId)  # a terminated agent's run is abandoned, not recorded
        return out

    async def _cancel_agent_job(self, caller: str, aid: str, task_id: str, required: bool,
                                job: dict | None = None) -> bool:
        """Cancel a task or trigger job of an agent; with ``job`` (an agent:cancelTask job),
        that job commits COMPLETE with the change."""
        name = agent_ref(caller, aid)

        def fn(u: _Unit) -> bool:
            rec = self._agent(u, caller, aid)
            jname = job_ref(caller, task_id)
            in_tasks = task_id in map_keys(rec["tasks"]) if map_len(rec["tasks"]) else False
            in_triggers = task_id in rec.get("triggers", [])
            if not in_tasks and not in_triggers:
                if required:
                    raise OpError("not_found", f"agent {aid!r} has no pending task {task_id}", path="$.input.taskId")
                return False
            if in_tasks:
                rec = A.cancel_task(u.tx, rec, task_id, u.ts)
            if in_triggers:
                rec = A.cancel_trigger(rec, task_id, u.ts)
            jr = u.read(jname)
            if jr is not None:
                u.write(jname, finish(jr, CANCELLED, u.ts, error={"code": "cancelled", "message": "cancelled by caller"}),
                        "job:cancel")
            rec = self._settle(u, caller, aid, rec)
            u.write(name, rec, "agent:cancelTask", {"agentId": aid, "taskId": task_id})
            if job is not None:
                u.write(job_ref(caller, job["jobId"]), finish(job, COMPLETE, u.ts, output={
                    "agentId": aid, "taskId": task_id, "cancelled": True}), job["operation"])
            return True
        done = await self._transact(caller, fn)
        if done:
            self._stop_run(caller, aid, task_id)  # the run working on it stops; nothing of it is recorded
        return done

    async def op_agent_cancel_task(self, caller: str, inp: O.CancelTaskInput, job: dict) -> dict:
        tid = normalize_job_id(inp.taskId)
        if tid is None:
            raise Rejected("invalid_input", f"taskId {inp.taskId!r} is not a job id (0x + 32 hex digits)",
                           path="$.input.taskId")
        await self._cancel_agent_job(caller, inp.agentId, tid, required=True, job=job)
        return self.get_job(caller, job["jobId"])

    # -- inspection -------------------------------------------------------------
    def _snapshot(self, caller: str, aid: str) -> tuple[Tx, dict, bytes] | None:
        """``(tx, opened record, head commit digest)`` of an agent, or None."""
        d = self.store.ref(agent_ref(caller, aid))
        if d is None:
            return None
        tx = Tx(self.store, self.cache)
        return tx, A.opened(tx, tx.load_root(read_commit(tx, d).root)), d

    async def op_agent_info(self, caller: str, inp: O.InfoInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            if inp.at is None:
                rec = self._agent(u, caller, inp.agentId)
            else:
                rec = A.opened(u.tx, u.tx.load_root(self._at_version(u.tx, caller, inp.agentId, inp.at)[1].root))
            return {"agentId": inp.agentId, "status": rec["status"], "config": u.tx.materialize(rec["state"]["config"]),
                    "taskCount": map_len(rec["tasks"]), "timelineLength": seq_len(rec["timeline"]),
                    "error": rec["error"]}
        return await self._sync(caller, job, fn)

    async def op_agent_list(self, caller: str, inp: O.ListInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            agents = []
            prefix = f"g/{caller}/"
            for name, _ in self.store.refs(prefix):
                rec = u.read(name)
                if rec["status"] == A.TERMINATED and not inp.includeTerminated:
                    continue
                agents.append({"agentId": name[len(prefix):], "status": rec["status"],
                               "taskCount": map_len(rec["tasks"]), "error": rec["error"]})
            return {"agents": agents}
        return await self._sync(caller, job, fn)

    async def op_agent_context(self, caller: str, inp: O.ContextInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            rec = self._agent(u, caller, inp.agentId)
            work = A.pick_work(u.tx, rec)
            if inp.task is not None:
                work = A.Work("(simulated)", {"input": inp.task}, work.messages, work.triggers)
            try:
                cfg, prefix, new, tools = A.build_context(u.tx, rec, work)
            except msgspec.ValidationError as e:
                raise OpError("invalid_config", f"agent config: {e}") from None
            enc = msgspec.json.encode
            hist = [m for m in prefix if m["role"] != "system"]
            entries = [{"name": "systemPrompt", "bytes": len(cfg.systemPrompt.encode())},
                       {"name": "history", "bytes": len(enc(hist))},
                       {"name": "input", "bytes": len(enc(new))},
                       {"name": "tools", "bytes": len(enc(tools))}]
            return {"model": msgspec.to_builtins(cfg.model), "messages": prefix + new, "tools": tools,
                    "entries": entries}
        return await self._sync(caller, job, fn)

    # -- work --------------------------------------------------------------------
    async def op_agent_request(self, caller: str, inp: O.RequestInput, job: dict) -> dict:
        jid = job["jobId"]
        job = {**job, "agentId": inp.agentId}

        def fn(u: _Unit) -> None:
            rec = self._agent(u, caller, inp.agentId)
            if rec["status"] == A.TERMINATED:
                raise OpError("illegal_state", f"agent {inp.agentId!r} is TERMINATED", hint="fork it or create it again")
            self._check_room_for_work(rec, inp.agentId)
            rec = A.enqueue_task(u.tx, rec, jid, inp.input, caller, u.ts)
            u.write(job_ref(caller, jid), job, "agent:request")
            rec = self._settle(u, caller, inp.agentId, rec)
            u.write(agent_ref(caller, inp.agentId), rec, "agent:request", {"taskId": jid, "input": inp.input})
        await self._transact(caller, fn)
        return await self._wait(caller, self.get_job(caller, jid), inp.wait)

    async def op_agent_trigger(self, caller: str, inp: O.TriggerInput, job: dict) -> dict:
        jid = job["jobId"]
        job = {**job, "agentId": inp.agentId}

        def fn(u: _Unit) -> None:
            rec = self._agent(u, caller, inp.agentId)
            if rec["status"] == A.TERMINATED:
                raise OpError("illegal_state", f"agent {inp.agentId!r} is TERMINATED")
            self._check_room_for_work(rec, inp.agentId)
            rec = A.add_trigger(rec, jid, u.ts)
            u.write(job_ref(caller, jid), job, "agent:trigger")
            rec = self._settle(u, caller, inp.agentId, rec)
            u.write(agent_ref(caller, inp.agentId), rec, "agent:trigger", {"triggerId": jid})
        await self._transact(caller, fn)
        return await self._wait(caller, self.get_job(caller, jid), inp.wait)

    async def op_agent_message(self, caller: str, inp: O.MessageInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            rec = self._agent(u, caller, inp.agentId)
            if rec["status"] == A.TERMINATED:
                raise OpError("illegal_state", f"agent {inp.agentId!r} is TERMINATED")
            self._check_room_for_work(rec, inp.agentId)
            rec = self._settle(u, caller, inp.agentId, A.add_message(u.tx, rec, inp.message, caller, u.ts))
            u.write(agent_ref(caller, inp.agentId), rec, "agent:message", msgspec.to_builtins(inp))
            return {"agentId": inp.agentId, "delivered": True}
        return await self._sync(caller, job, fn)

    # -- versions ------------------------------------------------------------------
    async def op_agent_history(self, caller: str, inp: O.HistoryInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            head = self.store.ref(agent_ref(caller, inp.agentId))
            if head is None:
                raise OpError("not_found", f"no agent {inp.agentId!r}", path="$.input.agentId")
            return {"agentId": inp.agentId, "versions": [
                {"seq": c.seq, "id": d.hex(), "op": c.op, "ts": c.ts, "caller": c.caller}
                for d, c in versions(u.tx, head, inp.limit, inp.before)]}
        return await self._sync(caller, job, fn)

    async def op_agent_diff(self, caller: str, inp: O.DiffInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            tx = u.tx
            if inp.otherAgentId is None:
                if inp.from_ is None:
                    raise Rejected("invalid_input", "`from` is required to compare two versions of one agent",
                                   path="$.input.from", hint="give `from` (a seq or id), or `otherAgentId`")
                _, a = self._at_version(tx, caller, inp.agentId, inp.from_, "$.input.from")
                _, b = self._head_commit(tx, caller, inp.agentId) if inp.to is None else \
                    self._at_version(tx, caller, inp.agentId, inp.to, "$.input.to")
                if a.seq > b.seq:
                    raise OpError("invalid_range", f"`from` (version {a.seq}) is after `to` (version {b.seq})",
                                  path="$.input.from", hint="swap them, or omit `to` to compare with the head")
            else:
                a = self._head_commit(tx, caller, inp.agentId)[1] if inp.from_ is None else \
                    self._at_version(tx, caller, inp.agentId, inp.from_, "$.input.from")[1]
                b = self._head_commit(tx, caller, inp.otherAgentId, "$.input.otherAgentId")[1] if inp.to is None else \
                    self._at_version(tx, caller, inp.otherAgentId, inp.to, "$.input.to", "$.input.otherAgentId")[1]
            changes, truncated = diff(tx, tx.raw_root(a.root), tx.raw_root(b.root), limit=inp.limit)
            return {"changes": changes, "truncated": truncated}
        return await self._sync(caller, job, fn)

    def _range(self, tx: Tx, caller: str, aid: str, frm: Any, to: Any) -> list[tuple[bytes, Commit]]:
        """The agent's commits ``frm..to`` (defaults: first, head), oldest first."""
        head, head_c = self._head_commit(tx, caller, aid)
        lo = 0 if frm is None else self._at_version(tx, caller, aid, frm, "$.input.from")[1].seq
        d, c = (head, head_c) if to is None else self._at_version(tx, caller, aid, to, "$.input.to")
        if lo > c.seq:
            raise OpError("invalid_range", f"`from` (version {lo}) is after `to` (version {c.seq})",
                          path="$.input.from", hint="swap them, or omit `to` to replay up to the head")
        out = [(d, c)]
        while c.seq > lo:
            d = c.parent
            c = read_commit(tx, d)
            out.append((d, c))
        out.reverse()
        return out

    async def op_agent_replay(self, caller: str, inp: O.ReplayInput, job: dict) -> dict:
        if inp.into is not None:
            return await self._what_if(caller, inp, job)
        tx = Tx(self.store, self.cache)
        commits = self._range(tx, caller, inp.agentId, inp.from_, inp.to)

        def source(commit_id: str) -> dict:
            return A.opened(tx, tx.load_root(read_commit(tx, from_hex(commit_id)).root))
        out: dict[str, Any] = {"agentId": inp.agentId, "replayed": 0, "identical": True, "divergence": None}
        for i, (d, c) in enumerate(commits):
            if i % 256 == 255:
                await asyncio.sleep(0)  # a long replay must not stall the server
            rtx = Tx(self.store, self.cache)
            parent = None if c.parent is None else A.opened(rtx, rtx.load_root(read_commit(rtx, c.parent).root))
            try:
                got = rtx.put_root(rederive(rtx, parent, c, inp.agentId, source))
            except (ReplayError, A.CycleError, LatticeError, msgspec.ValidationError, KeyError, TypeError) as e:
                out.update(identical=False, divergence={"seq": c.seq, "path": "", "expected": c.root.data.hex(),
                                                        "got": f"cannot replay {c.op}: {e}"})
                break
            out["replayed"] += 1
            if got != c.root:
                (first, *_), _ = diff(rtx, rtx.raw_root(c.root), rtx.raw_root(got), limit=1, value_max=1024)
                out.update(identical=False, divergence={
                    "seq": c.seq, "path": first["path"],
                    "expected": first.get("before", first.get("beforeSize")),
                    "got": first.get("after", first.get("afterSize"))})
                break
        done = finish(job, COMPLETE, self.clock(), output=out)
        self._remember(caller, done)
        return done

    async def _what_if(self, caller: str, inp: O.ReplayInput, job: dict) -> dict:
        """Fork the agent at ``from`` into ``into`` (config merged) and re-apply the recorded
        tasks, messages and triggers after ``from`` in order, each run to its end; the model
        is called live except where a request is byte-identical to a recorded one."""
        if inp.from_ is None:
            raise Rejected("invalid_input", "`from` is required with `into`", path="$.input.from",
                           hint="the new agent is forked at `from`")
        tx = Tx(self.store, self.cache)
        commits = self._range(tx, caller, inp.agentId, inp.from_, None)
        start, later = commits[0][1], commits[1:]
        fork = await self.invoke(REGISTRY["agent:fork"], O.ForkInput(
            sourceId=inp.agentId, agentId=inp.into, config=inp.config, at=start.seq), caller)
        if fork["status"] != COMPLETE:
            e = fork["error"]
            raise OpError(e["code"], e["message"], path="$.input.into" if e["code"] == "conflict" else e.get("path"),
                          hint=e.get("hint"))
        replay = _ReplayLlm(recorded_replies(tx, [c for _, c in later]))
        inputs = [(c, tx.materialize(c.input)) for _, c in later]
        cancelled = {i["taskId"] for c, i in inputs if c.op == "agent:cancelTask"}  # never completed in the source
        self._replay_llm[(caller, inp.into)] = replay
        replayed, diverged = 0, []
        try:
            for c, i in inputs:
                live = replay.live
                if c.op == "agent:request" and i["taskId"] not in cancelled:
                    await self.invoke(REGISTRY["agent:request"], O.RequestInput(
                        agentId=inp.into, input=i["input"], wait=True), caller)
                elif c.op == "agent:message":
                    await self._message(caller, inp.into, i["messages"] if "messages" in i else [i["message"]],
                                        i.get("from", c.caller))
                elif c.op == "agent:trigger" and i["triggerId"] not in cancelled:
                    await self.invoke(REGISTRY["agent:trigger"], O.TriggerInput(agentId=inp.into, wait=True), caller)
                else:
                    continue
                status = await self._idle(caller, inp.into)
                replayed += 1
                if replay.live > live:
                    diverged.append(c.seq)
                if status != A.SLEEPING:
                    break  # suspended (its error is on the agent) or gone: stop here
        finally:
            self._replay_llm.pop((caller, inp.into), None)
        done = finish(job, COMPLETE, self.clock(), output={"agentId": inp.into, "replayed": replayed,
                                                           "diverged": diverged})
        self._remember(caller, done)
        return done

    async def _message(self, caller: str, aid: str, texts: list[str], sender: str) -> None:
        """Deliver messages from ``sender`` to an agent's inbox (as a what-if replays them)."""
        def fn(u: _Unit) -> None:
            rec = self._agent(u, caller, aid)
            for text in texts:
                rec = self._settle(u, caller, aid, A.add_message(u.tx, rec, text, sender, u.ts))
            u.write(agent_ref(caller, aid), rec, "agent:message", {"agentId": aid, "messages": texts, "from": sender})
        await self._transact(caller, fn)

    async def _idle(self, caller: str, aid: str) -> str | None:
        """Wait until the agent is not RUNNING; return its status (None if it is gone)."""
        name = agent_ref(caller, aid)
        while True:
            ev = self.watch(name)
            snap = self._snapshot(caller, aid)
            if snap is None or snap[1]["status"] != A.RUNNING:
                return None if snap is None else snap[1]["status"]
            await ev.wait()

    def _head_commit(self, tx: Tx, caller: str, aid: str, path: str = "$.input.agentId") -> tuple[bytes, Commit]:
        head = self.store.ref(agent_ref(caller, aid))
        if head is None:
            raise OpError("not_found", f"no agent {aid!r}", path=path, hint="agent:list shows your agents")
        return head, read_commit(tx, head)

    # -- the run loop -----------------------------------------------------------
    async def _loop(self, caller: str, aid: str) -> None:
        """Run cycles while the agent is RUNNING. Every way a cycle can end is committed:
        success (:meth:`_complete`), failure (:meth:`_fail`, which suspends), or cancellation
        (nothing recorded). An unexpected error suspends the agent rather than leaving it RUNNING."""
        key = (caller, aid)
        try:
            while True:
                snap = self._snapshot(caller, aid)
                if snap is None or snap[1]["status"] != A.RUNNING:
                    return
                tx, rec, base = snap
                work = A.pick_work(tx, rec)
                start = self.clock()
                cycle = asyncio.get_running_loop().create_task(self._cycle(caller, aid, tx, rec, work))
                self._cycles[key] = (work.task_id, cycle)
                try:
                    await asyncio.wait({cycle})
                except asyncio.CancelledError:
                    cycle.cancel()
                    raise
                finally:
                    self._cycles.pop(key, None)
                if cycle.cancelled():
                    continue  # its task was cancelled or the agent replaced: nothing recorded
                try:
                    exc = cycle.exception()
                    if exc is None:
                        await self._complete(caller, aid, base, work, cycle.result(), start)
                    else:
                        await self._fail(caller, aid, base, exc)
                except (LatticeError, OpError) as e:  # the run's result cannot be stored (or merged)
                    await self._fail(caller, aid, base, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug: say so, and do not leave the agent RUNNING
            log.exception("run loop of %s/%s crashed", caller, aid)
            try:
                await self._fail(caller, aid, None, e)
            except Exception:
                log.exception("could not suspend %s/%s after the crash", caller, aid)
        finally:
            self._loops.pop(key, None)

    def _current(self, u: _Unit, caller: str, aid: str, base: bytes | None) -> dict | None:
        """The agent's head if it is still the incarnation a run started on at version ``base``:
        the head descends from ``base`` with no re-creation since, and is not terminated."""
        name = agent_ref(caller, aid)
        rec = u.read(name)
        if rec is None or rec["status"] == A.TERMINATED:
            return None
        if base is not None:
            d, c = u.head(name)
            base_seq = read_commit(u.tx, base).seq
            while d is not None and c.seq > base_seq:
                if c.op == "agent:create":
                    return None  # overwritten since the run started
                d = c.parent
                c = read_commit(u.tx, d) if d is not None else None
            if d != base:
                return None  # removed and created again: another chain
        return rec

    async def _fail(self, caller: str, aid: str, base: bytes | None, exc: BaseException) -> None:
        if isinstance(exc, (LlmError, A.CycleError)):
            error = {"code": exc.code, "message": exc.message}
        elif isinstance(exc, msgspec.ValidationError):
            error = {"code": "invalid_config", "message": f"agent config: {exc}"}
        elif isinstance(exc, (OpError, LatticeError)):
            error = {"code": exc.code, "message": exc.message}
        else:
            log.error("run of %s/%s failed with %s", caller, aid, type(exc).__name__)
            error = {"code": "internal_error", "message": f"the run failed ({type(exc).__name__}); see the server log"}

        def fn(u: _Unit) -> None:
            rec = self._current(u, caller, aid, base)
            if rec is None:
                return
            rec = self._settle(u, caller, aid, A.fail_cycle(rec, error, u.ts))
            u.write(agent_ref(caller, aid), rec, "agent:run", {"error": error})
        await self._transact(caller, fn)

    async def _complete(self, caller: str, aid: str, base: bytes | None, work: A.Work, out: _Outcome,
                        start: int) -> None:
        """Commit a successful run in one unit: the agent's record, its jobs, and the run's
        side effects (workspace writes, messages to agents), so a run that fails or is
        cancelled before this point has no effect at all, and none is ever applied twice."""
        def fn(u: _Unit) -> None:
            rec = self._current(u, caller, aid, base)
            if rec is None:
                return  # replaced or terminated meanwhile: the run is abandoned
            rec, entry, task_status = A.finish_run(
                u.tx, rec, work, new_history=out.new_history, result=out.result, task_status=out.task_status,
                task_output=out.task_output, start=start, ts=u.ts)
            if work.task_id is not None and task_status != CANCELLED:
                name = job_ref(caller, work.task_id)
                jr = u.read(name)
                if jr is not None and jr["status"] not in TERMINAL:
                    u.write(name, finish(jr, task_status, u.ts, output=out.task_output, error=out.task_error),
                            "job:finish")
            rec = self._settle(u, caller, aid, rec)
            u.write(agent_ref(caller, aid), rec, "agent:run", run_input(work, out, start, base))
            sandboxed = (caller, aid) in self._replay_llm  # a what-if agent: no effect outside itself
            if out.ws_edits and not sandboxed:
                ws = u.read(ws_ref(caller))
                for segs, value in out.ws_edits:
                    ws = write_path(u.tx, {} if ws is None else ws, segs, value)
                u.write(ws_ref(caller), ws, "agent:run", {"agentId": aid, "paths": ["/".join(["w", *p]) for p, _ in out.ws_edits]})
            sender = f"agent:{aid}"
            for target in dict.fromkeys(t for t, _ in out.outbox):  # each target once, in order of first message
                if sandboxed and target != aid:
                    continue
                texts = [m for t, m in out.outbox if t == target]
                trec = u.read(agent_ref(caller, target))
                if trec is None or trec["status"] == A.TERMINATED:
                    continue  # gone since the tool call checked it
                for text in texts:
                    trec = self._settle(u, caller, target, A.add_message(u.tx, trec, text, sender, u.ts))
                # to itself, the messages are part of this run's event (recorded in its outbox)
                u.write(agent_ref(caller, target), trec, "agent:message",
                        {"agentId": target, "messages": texts, "from": sender})
            rec = u.read(agent_ref(caller, aid))  # a message to itself was merged above
            for tid in work.triggers:
                name = job_ref(caller, tid)
                jr = u.read(name)
                if jr is not None and jr["status"] not in TERMINAL:
                    u.write(name, finish(jr, COMPLETE, u.ts, output={
                        "agentId": aid, "status": rec["status"], "result": out.result,
                        "taskResults": entry["taskResults"]}), "job:finish")
        await self._transact(caller, fn)

    async def _cycle(self, caller: str, aid: str, tx: Tx, rec: dict, work: A.Work) -> _Outcome:
        cycle = A.Cycle(tx, rec, work)
        adapter = self.adapter_factory(cycle.cfg.model)
        out = _Outcome(cycle.new, None, COMPLETE, None, None, [], [], [], [])
        replay = self._replay_llm.get((caller, aid))
        while (request := cycle.request()) is not None:
            key = request_digest(request)
            try:
                if replay is not None and key in replay.recorded:
                    reply = msgspec.convert(replay.recorded[key], LlmReply)  # byte-identical request: reuse
                else:
                    if replay is not None:
                        replay.live += 1
                    reply = await adapter.complete(LlmRequest(**request))
            except (LlmError, asyncio.CancelledError):
                raise
            except Exception as e:  # an adapter bug: never let its text (which could hold a credential) out
                log.error("LLM adapter for %s/%s raised %s", caller, aid, type(e).__name__)
                raise LlmError(f"the {request['model'].get('provider')} adapter failed ({type(e).__name__})") from None
            out.llm.append({"request": key, "reply": msgspec.to_builtins(reply)})
            for call in cycle.reply(reply.content, reply.toolCalls):
                text = cycle.pure(call)
                if text is None:
                    text = self._io_tool(caller, call, out)
                    out.tools.append(text)
                cycle.tool_result(call, text)
        out.result, out.task_status = cycle.result, cycle.task_status
        out.task_output, out.task_error = cycle.task_output, cycle.task_error
        return out

    def _io_tool(self, caller: str, call: Any, out: _Outcome) -> str:
        """Run one I/O tool for a run; return its result text. Source of ``call``: the model (untrusted).

        Side effects are staged in ``out`` and committed with the run (see :meth:`_complete`);
        reads see the run's own staged writes.
        """
        name, args = call.name, call.arguments
        if name == "agent_message":
            target = args["agentId"]
            snap = self._snapshot(caller, target)
            if snap is None:
                return f"error: no agent {target!r}"
            try:
                self._check_room_for_work(snap[1], target, sum(1 for t, _ in out.outbox if t == target))
            except OpError as e:
                return f"error: {e.message}"
            out.outbox.append((target, args["message"]))
            return f"delivered to {target} when this run completes"
        path = args["path"]
        try:
            ns, segs = parse_path(path)
            if ns != "w":
                return "error: tools may only use the owner's workspace (paths under w/)"
            tx = Tx(self.store, self.cache)
            ws = self._raw_root(tx, ws_ref(caller))
            for p, value in out.ws_edits:  # read your own writes
                ws = write_path(tx, {} if ws is Missing else ws, p, value)
            if name == "covia_write":
                if not segs:
                    return "error: write below w/, e.g. w/notes"
                value = args.get("value")
                write_path(tx, {} if ws is Missing else ws, segs, value)  # fails now if it cannot apply
                out.ws_edits.append((segs, value))
                return "written"
            v = Missing if ws is Missing else read_path(tx, ws, segs)
            if name == "covia_read":
                text = "null (nothing at that path)" if v is Missing else msgspec.json.encode(tx.materialize(v)).decode()
            else:
                text = msgspec.json.encode(_describe(tx, v, 0, 1000)).decode()
            return text[:_TOOL_TEXT_MAX]
        except LatticeError as e:
            return f"error: {e.message}"

    # -- lattice operations -------------------------------------------------------
    def _target(self, caller: str, path: str) -> tuple[str, str | None, list[str]]:
        """Map a caller's path to ``(namespace, ref name or None for a bare namespace, segments)``."""
        try:
            ns, segs = parse_path(path)
        except InvalidPath as e:
            raise Rejected("invalid_path", e.message, path="$.input.path", hint=e.hint) from None
        if ns == "w":
            return ns, ws_ref(caller), segs
        if not segs:
            return ns, None, []
        ident = segs[0]
        if ns == "j":
            ident = normalize_job_id(ident) or ident
        return ns, f"{ns}/{caller}/{ident}", segs[1:]

    def _read_value(self, caller: str, ref: str, segs: list[str]) -> Any:
        """Materialized value at ``segs`` below ref's head root (Missing if absent)."""
        tx = Tx(self.store, self.cache)
        raw = self._raw_root(tx, ref)
        if raw is Missing:
            return Missing
        v = read_path(tx, raw, segs)
        return Missing if v is Missing else tx.materialize(v)

    def _raw_root(self, tx: Tx, ref: str) -> Any:
        d = self.store.ref(ref)
        if d is None:
            if ref.startswith("j/"):
                _, caller, jid = ref.split("/", 2)
                job = self._mem_jobs.get(caller, {}).get(jid)
                return Missing if job is None else job
            return Missing
        return tx.raw_root(read_commit(tx, d).root)

    def _at(self, tx: Tx, caller: str, path: str, at: Any = None) -> Any:
        ns, ref, segs = self._target(caller, path)
        if at is not None:
            if ns != "g" or ref is None:
                raise Rejected("invalid_input", "`at` reads a version of an agent: the path must be g/<agentId>/...",
                               path="$.input.at")
            aid = ref.split("/", 2)[2]
            _, c = self._at_version(tx, caller, aid, at, agent_path="$.input.path")
            return read_path(tx, tx.raw_root(c.root), segs)
        if ref is None:  # bare g or j: a virtual map of the caller's refs
            prefix = f"{ns}/{caller}/"
            raw: Any = {}
            for name, d in self.store.refs(prefix):
                raw[name[len(prefix):]] = read_commit(tx, d).root
            if ns == "j":
                for jid, job in self._mem_jobs.get(caller, {}).items():
                    raw.setdefault(jid, job)
            return raw
        raw = self._raw_root(tx, ref)
        if raw is Missing:
            return Missing
        return read_path(tx, raw, segs)

    async def op_covia_read(self, caller: str, inp: O.ReadInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            v = self._at(u.tx, caller, inp.path, inp.at)
            if v is Missing:
                return {"exists": False, "value": None}
            size = u.tx.json_size(v)  # without building the value: a huge read costs no memory
            if size > inp.maxSize:
                return {"exists": True, "value": None, "truncated": True, "size": size}
            return {"exists": True, "value": u.tx.materialize(v)}
        return await self._sync(caller, job, fn)

    async def op_covia_list(self, caller: str, inp: O.ListPathInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            return _describe(u.tx, self._at(u.tx, caller, inp.path, inp.at), inp.offset, inp.limit)
        return await self._sync(caller, job, fn)

    async def op_covia_slice(self, caller: str, inp: O.SliceInput, job: dict) -> dict:
        def fn(u: _Unit) -> dict:
            tx = u.tx
            v = self._at(tx, caller, inp.path, inp.at)
            if v is Missing:
                return {"exists": False}
            v = open_level(tx, v)
            t = type(v)
            end = inp.offset + inp.limit
            if t is list:
                return {"exists": True, "type": "list", "count": len(v), "offset": inp.offset,
                        "values": [tx.materialize(x) for x in v[inp.offset:end]]}
            if t is Vec:
                return {"exists": True, "type": "list", "count": v.count, "offset": inp.offset,
                        "values": [tx.materialize(x) for x in v.iter_raw(inp.offset, end)]}
            if t is dict or t is HMap:
                keys = map_keys(v)[inp.offset:end]  # only the slice's values are loaded
                return {"exists": True, "type": "map", "count": map_len(v), "offset": inp.offset,
                        "values": [{"key": k, "value": tx.materialize(v[k] if t is dict else v.get_raw(k))}
                                   for k in keys]}
            return {"exists": True, "type": kind_of(v)}
        return await self._sync(caller, job, fn)

    def _write_target(self, caller: str, path: str) -> list[str]:
        ns, _, segs = self._target(caller, path)
        if ns != "w":
            raise OpError("forbidden", f"{path} is framework-managed: g/ and j/ are read-only", path="$.input.path",
                          hint="write under w/, e.g. w/notes; change agents with agent:* operations")
        if not segs:
            raise Rejected("invalid_path", "a write needs a path below w/, e.g. w/notes", path="$.input.path")
        return segs

    async def _ws_edit(self, caller: str, op: str, segs: list[str], input: Any, edit: Callable[[Tx, Any], Any],
                       job: dict | None = None, output: Any = None) -> dict | None:
        def fn(u: _Unit) -> Any:
            name = ws_ref(caller)
            cur = u.read(name)
            try:
                new = edit(u.tx, {} if cur is None else cur)
            except InvalidPath as e:
                raise OpError("invalid_path", e.message, path="$.input.path") from None
            u.write(name, {} if new is Missing else new, op, input)
            return output
        if job is None:
            return await self._transact(caller, fn)
        return await self._sync(caller, job, fn)

    async def op_covia_write(self, caller: str, inp: O.WriteInput, job: dict) -> dict:
        segs = self._write_target(caller, inp.path)
        return await self._ws_edit(caller, "covia:write", segs, msgspec.to_builtins(inp),
                                   lambda tx, ws: write_path(tx, ws, segs, inp.value), job, {"written": True})

    async def op_covia_append(self, caller: str, inp: O.WriteInput, job: dict) -> dict:
        segs = self._write_target(caller, inp.path)
        return await self._ws_edit(caller, "covia:append", segs, msgspec.to_builtins(inp),
                                   lambda tx, ws: write_path(tx, ws, segs, inp.value, append=True), job,
                                   {"appended": True})

    async def op_covia_delete(self, caller: str, inp: O.PathInput, job: dict) -> dict:
        segs = self._write_target(caller, inp.path)

        def edit(tx: Tx, ws: Any) -> Any:
            new, found = delete_path(tx, ws, segs)
            if not found:
                raise OpError("not_found", f"nothing at {inp.path}", path="$.input.path")
            return new
        return await self._ws_edit(caller, "covia:delete", segs, msgspec.to_builtins(inp), edit, job, {"deleted": True})


def run_input(work: A.Work, out: _Outcome, start: int, base: bytes | None) -> dict[str, Any]:
    """The input recorded in a run's commit: all a replay needs besides the parent state and ts.

    ``base`` is the version the run started from (its context and config came from
    there; an ``agent:update`` may have landed before the run's result)."""
    return {"taskId": work.task_id, "task": work.task["input"] if work.task is not None else None,
            "messages": len(work.messages), "triggers": work.triggers, "start": start,
            "base": base.hex() if base is not None else None,
            "llm": out.llm, "tools": out.tools, "outbox": [list(m) for m in out.outbox]}


def _describe(tx: Tx, v: Any, offset: int, limit: int) -> dict:
    """The ``covia:list`` answer for a stored value (or Missing)."""
    if v is Missing:
        return {"exists": False}
    v = open_level(tx, v)
    t = type(v)
    if t is dict or t is HMap:
        keys = map_keys(v)
        return {"exists": True, "type": "map", "count": len(keys), "keys": keys[offset:offset + limit],
                "offset": offset}
    if t is list or t is Vec:
        return {"exists": True, "type": "list", "count": seq_len(v)}
    return {"exists": True, "type": kind_of(v)}


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("agent-lattice")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"

