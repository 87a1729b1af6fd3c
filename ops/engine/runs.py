"""The run loop: while an agent is ``RUNNING``, run a cycle and commit how it ended.

A cycle (:func:`drive`) takes the agent's head, picks its work (the oldest
task, every message, every trigger), drives :class:`ops.domain.cycle.Cycle`
with the model's replies and the I/O tools' results, and returns an
:class:`~ops.domain.cycle.Outcome`. Every way a cycle can end is committed:

* success (:func:`complete`): one unit with the agent's ``agent:run`` event,
  its jobs, and the run's side effects (workspace writes, messages to other
  agents), so a run that fails or is cancelled before it has no effect at all,
  and none is ever applied twice;
* failure (:func:`fail`): the error recorded, the agent ``SUSPENDED``, its work kept (a
  failed turn on a session fails its chats' jobs with the error and drops their messages:
  the caller has its answer; fire-and-forget messages and tasks stay);
* cancellation (its task cancelled, the agent replaced or terminated): nothing.

Recovery after a restart: the scheduling rule (work wakes a ``SLEEPING``
agent to ``RUNNING``, a ``RUNNING`` agent without work sleeps; the oldest task
of a ``RUNNING`` agent is the only ``STARTED`` job) is kept atomically by
every commit, so the store holds no half-done run. :func:`recover` restarts
the loop of each agent found ``RUNNING``, which re-runs the task that was in
flight from the last committed state (an interrupted run left no trace).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from lattice.commits import read_commit
from lattice.errors import LatticeError
from lattice.digest import digest
from lattice.codec import encode as canonical
from lattice.nodes import seq_iter, seq_len
from lattice.paths import parse_path, write_path

from ..domain import agent as A
from ..domain import jobs as J
from ..domain import sessions as S
from ..domain.cycle import Cycle, CycleError, Outcome
from ..domain.errors import OpError
from ..domain.events import Messaged, RunCompleted, RunFailed, omits_parent_base
from ..domain.models import LlmError, LlmReply, LlmRequest
from ..domain.refs import agent_ref, job_ref, split_ref, ws_ref
from .context import Engine
from .tools import io_tool
from .unit import Unit

__all__ = ["run_loop", "drive", "complete", "fail", "recover", "request_digest", "answer_edit"]

log = logging.getLogger("lattice.runtime")


def request_digest(request: dict[str, Any]) -> bytes:
    """The digest of an LLM request ``{model, messages, tools}`` in canonical form."""
    return digest(canonical(request))


def recover(engine: Engine) -> int:
    """Restart the run loop of every agent committed as ``RUNNING``; return how many."""
    n = 0
    for name, d in engine.store.refs("g/"):
        _, caller, aid = split_ref(name)
        tx = engine.tx()
        if tx.load_root(read_commit(tx, d).root)["status"] == A.RUNNING:
            engine.scheduler.ensure(caller, aid)
            n += 1
    if n:
        log.info("recovery: resumed %d agent run loop(s)", n)
    return n


async def run_loop(engine: Engine, caller: str, aid: str) -> None:
    """Run cycles while the agent is ``RUNNING`` (see module doc). An unexpected error
    suspends the agent rather than leaving it ``RUNNING``."""
    sched = engine.scheduler
    try:
        while True:
            snap = engine.snapshot(caller, aid)
            if snap is None or snap[1]["status"] != A.RUNNING:
                return
            tx, rec, base = snap
            work = A.pick_work(tx, rec)
            start = engine.clock()
            cycle = asyncio.get_running_loop().create_task(drive(engine, caller, aid, tx, rec, work))
            sched.begin(caller, aid, work.task_id, cycle)
            try:
                await asyncio.wait({cycle})
            except asyncio.CancelledError:
                cycle.cancel()
                raise
            finally:
                sched.end(caller, aid)
            if cycle.cancelled():
                continue  # its task was cancelled or the agent replaced: nothing recorded
            try:
                exc = cycle.exception()
                if exc is None:
                    await complete(engine, caller, aid, base, rec, work, cycle.result(), start)
                else:
                    await fail(engine, caller, aid, base, exc, work.task_id, work)
            except (LatticeError, OpError) as e:  # the run's result cannot be stored (or merged)
                await fail(engine, caller, aid, base, e, work.task_id, work)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug: say so, and do not leave the agent RUNNING
        log.exception("run loop of agent %r (caller %r) crashed", aid, caller)
        try:
            await fail(engine, caller, aid, None, e)
        except Exception:
            log.exception("could not suspend %s/%s after the crash", caller, aid)


async def drive(engine: Engine, caller: str, aid: str, tx: Any, rec: dict[str, Any], work: A.Work) -> Outcome:
    """Run one cycle live: model calls through the agent's adapter (or a what-if sandbox's
    recorded replies), I/O tools against the store; return the outcome (nothing committed).

    Raises:
        LlmError: the model call failed (never with a credential in its text).
        CycleError: ``tool_loop_limit``. msgspec.ValidationError: the config is invalid.
    """
    cycle = Cycle(tx, rec, work)
    adapter = engine.adapter(cycle.cfg.model)
    out = Outcome(cycle.new, llm=[], tools=[], ws_edits=[], outbox=[])
    sandbox = engine.sandboxes.get((caller, aid))
    while (request := cycle.request()) is not None:
        key = request_digest(request)
        try:
            if sandbox is not None and key in sandbox.recorded:
                reply = msgspec.convert(sandbox.recorded[key], LlmReply)  # byte-identical request: reuse
            else:
                if sandbox is not None:
                    sandbox.live += 1
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
                text = io_tool(engine, caller, call, out, aid, sandbox is not None)
                out.tools.append(text)
            cycle.tool_result(call, text)
    return out.finish(cycle)


def _current(u: Unit, caller: str, aid: str, base: bytes | None) -> dict[str, Any] | None:
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


def _error_of(caller: str, aid: str, task_id: str | None, exc: BaseException) -> dict[str, Any]:
    """The error a failed run records. A bug (anything but the documented failures) is an
    ``internal_error`` whose traceback is logged with the caller, agent and task ids."""
    if isinstance(exc, (LlmError, CycleError, OpError, LatticeError)):
        return {"code": exc.code, "message": exc.message}
    if isinstance(exc, msgspec.ValidationError):
        return {"code": "invalid_config", "message": f"agent config: {exc}"}
    log.error("run of agent %r (caller %r, task %s) failed with %s", aid, caller, task_id or "-",
              type(exc).__name__, exc_info=exc)
    return {"code": "internal_error", "message": f"the run failed ({type(exc).__name__}); see the server log"}


async def fail(engine: Engine, caller: str, aid: str, base: bytes | None, exc: BaseException,
               task_id: str | None = None, work: A.Work | None = None) -> None:
    """Commit a failed run: ``RunFailed`` (error recorded, agent suspended, work kept). A turn
    on a session (``work``) also fails the jobs of the chats it took, and drops their messages."""
    error = _error_of(caller, aid, task_id, exc)
    event = RunFailed(error=error)
    if work is not None and work.session is not None:
        chats = [e["id"] for e in work.pending if e.get("op") == "agent:chat"]
        event = RunFailed(error=error, sessionId=work.session, dropped=chats)

    def fn(u: Unit) -> None:
        rec = _current(u, caller, aid, base)
        if rec is not None:
            engine.commit_event(u, caller, aid, rec, event)
            for jid in event.dropped or ():
                jr = u.read(job_ref(caller, jid), aid)
                if jr is not None and jr["status"] not in J.TERMINAL:
                    u.write(job_ref(caller, jid), J.finish(jr, J.FAILED, u.ts, error=error), "job:finish")
    await engine.units.run(caller, fn)


def run_event(work: A.Work, out: Outcome, start: int, base: bytes | None) -> RunCompleted:
    """The event a successful run records: all a replay needs besides the parent version and time."""
    event = RunCompleted(taskId=work.task_id, task=work.task["input"] if work.task is not None else None,
                         messages=len(work.messages), triggers=work.triggers, start=start,
                         base=base.hex() if base is not None else None, llm=out.llm, tools=out.tools,
                         outbox=[list(m) for m in out.outbox])
    if work.session is not None:
        event = msgspec.structs.replace(event, sessionId=work.session, pending=len(work.pending))
    return event


async def complete(engine: Engine, caller: str, aid: str, base: bytes | None, base_rec: dict[str, Any],
                   work: A.Work, out: Outcome, start: int) -> None:
    """Commit a successful run in one unit (see module doc)."""
    event = run_event(work, out, start, base)
    sandboxed = (caller, aid) in engine.sandboxes  # a what-if agent: no effect outside itself

    def fn(u: Unit) -> None:
        cur = _current(u, caller, aid, base)
        if cur is None:
            return  # replaced or terminated meanwhile: the run is abandoned
        cancelled = work.task_id is not None and not A.has_task(cur, work.task_id)
        base_head, base_commit = u.head(agent_ref(caller, aid))  # the parent of the run's commit
        ev = event
        if base is not None and base_head == base and omits_parent_base():
            ev = msgspec.structs.replace(event, base=None)  # the parent: nothing landed since the run started
        rec = engine.commit_event(u, caller, aid, cur, ev, load=lambda h: base_rec, outcome=out)
        edits = [] if sandboxed else list(out.ws_edits)
        if work.task_id is not None and not cancelled:
            name = job_ref(caller, work.task_id)
            jr = u.read(name, aid)
            if jr is not None and jr["status"] not in J.TERMINAL:
                status, output, error = out.task_status, out.task_output, out.task_error
                if status == J.COMPLETE:
                    path = work.task.get("outputPath") if work.task else None
                    if path and not sandboxed:
                        error = answer_edit(u, caller, edits, parse_path(path)[1], out.task_output, path)
                        if error is not None:
                            status, output = J.FAILED, None
                if status == J.COMPLETE and J.folds_finished() and u.head(name)[0] == base_head \
                        and J.folded_job(u.tx, base_commit, work.task_id, None) == jr:
                    # accepted by the commit this run's commit goes on top of: the job stays folded,
                    # its record derived from that commit (ops.domain.jobs.finished_job). Only when
                    # that commit alone gives its record, agent included: one written before format 2
                    # names no agent, and a reader that does not know it would get the job without it
                    u.follow(name, agent_ref(caller, aid))
                else:
                    u.write(name, J.finish(jr, status, u.ts, output=output, error=error), "job:finish")
        if edits:
            ws = u.read(ws_ref(caller))
            for segs, value in edits:
                ws = write_path(u.tx, {} if ws is None else ws, segs, value)
            u.write(ws_ref(caller), ws, "agent:run", {"agentId": aid, "paths": ["/".join(["w", *p]) for p, _ in edits]})
        _deliver(engine, u, caller, aid, out.outbox, sandboxed)
        _answer_chats(u, caller, aid, work, out.result)
        if work.triggers:
            entry = next(seq_iter(u.tx, rec["timeline"], seq_len(rec["timeline"]) - 1))
            for tid in work.triggers:
                jr = u.read(job_ref(caller, tid), aid)
                if jr is not None and jr["status"] not in J.TERMINAL:
                    output = J.trigger_output(aid, rec, entry["result"], entry["taskResults"])
                    sid = S.normalize_id((jr.get("input") or {}).get("sessionId"))
                    if sid is not None:
                        output["sessionId"] = sid  # echoed, as the venue does
                    u.write(job_ref(caller, tid), J.finish(jr, J.COMPLETE, u.ts, output=output), "job:finish")
    await engine.units.run(caller, fn)


def answer_edit(u: Unit, caller: str, edits: list[tuple[list[str], Any]], segs: list[str], answer: Any,
                 path: str) -> dict[str, Any] | None:
    """Add the write of a task's answer to its ``outputPath`` after the run's own ``edits``; the
    error (``invalid_path``) that fails the task's job when it cannot be written there, else None."""
    ws = u.read(ws_ref(caller))
    try:
        for p, value in [*edits, (segs, answer)]:
            ws = write_path(u.tx, {} if ws is None else ws, p, value, where=("w",))
    except LatticeError as e:
        return {"code": "invalid_path", "message": f"the answer cannot be written to outputPath {path}: {e.message}",
                "path": "$.input.outputPath"}
    edits.append((segs, answer))
    return None


def _answer_chats(u: Unit, caller: str, aid: str, work: A.Work, response: Any) -> None:
    """Complete the jobs of the chats a turn on a session took: each gets the reply and the ids
    of every message the turn answered (chats sent together are answered together)."""
    answered = [e["id"] for e in work.pending]
    for e in work.pending:
        if e.get("op") != "agent:chat":
            continue
        jr = u.read(job_ref(caller, e["id"]), aid)
        if jr is not None and jr["status"] not in J.TERMINAL:  # a deleted session cancelled it
            u.write(job_ref(caller, e["id"]), J.finish(jr, J.COMPLETE, u.ts, output={
                "agentId": aid, "sessionId": work.session, "response": response, "answered": answered}), "job:finish")


def _deliver(engine: Engine, u: Unit, caller: str, aid: str, outbox: list[tuple[str, str]], sandboxed: bool) -> None:
    """Stage the messages a run sent to other agents (to itself, they are part of its own event)."""
    sender = f"agent:{aid}"
    for target in dict.fromkeys(t for t, _ in outbox):  # each target once, in order of first message
        if target == aid or sandboxed:
            continue
        trec = u.read(agent_ref(caller, target))
        if trec is None or trec["status"] == A.TERMINATED:
            continue  # gone since the tool call checked it
        texts = [m for t, m in outbox if t == target]
        engine.commit_event(u, caller, target, trec, Messaged(agentId=target, messages=texts, sender=sender))
