"""Handlers that act on one task from outside its run (``agent:completeTask``, ``agent:failTask``)
and the dry run of an agent's next run (``agent:step``)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from lattice.paths import parse_path, write_path

from ...domain import agent as A
from ...domain import decide
from ...domain import jobs as J
from ...domain import operations as O
from ...domain.answers import check_answer
from ...domain.cycle import Cycle, CycleError, Outcome
from ...domain.errors import OpError, Rejected
from ...domain.models import LlmReply, ToolCall
from ...domain.refs import agent_ref, job_ref, ws_ref
from ..context import Engine
from ..runs import answer_edit
from ..tools import io_tool
from ..unit import Unit

__all__ = ["HANDLERS"]


def _scope(inp: O.CompleteTaskInput | O.FailTaskInput) -> tuple[str, str]:
    """``(agentId, canonical taskId)`` of the task the caller names.

    Raises:
        OpError: ``no_task_in_scope`` (a FAILED job, as the venue's): neither given (the
            venue's tool call form, which has a run's task in scope), or one of the two missing.
        Rejected: ``invalid_input``: a ``taskId`` that is not a job id.
    """
    if inp.agentId is UNSET and inp.taskId is UNSET:
        raise OpError("no_task_in_scope", "no task in scope: name it with `agentId` and `taskId`",
                      path="$.input.taskId",
                      hint="inside a run, the model finishes its own task with the complete_task or fail_task tool")
    if inp.agentId is UNSET:
        raise OpError("no_task_in_scope", "`taskId` names a task of an agent: give `agentId` too",
                      path="$.input.agentId")
    if inp.taskId is UNSET:
        raise OpError("no_task_in_scope", "give the `taskId` of the agent's task to finish", path="$.input.taskId",
                      hint="covia:list g/<agentId>/tasks lists its pending tasks")
    tid = J.normalize_job_id(inp.taskId)
    if tid is None:
        raise Rejected("invalid_input", f"taskId {inp.taskId!r} is not a job id (0x + 32 hex digits)",
                       path="$.input.taskId")
    return inp.agentId, tid


async def _finish(engine: Engine, caller: str, job: dict, aid: str, tid: str, *, result: Any = None,
                  error: str | None = None) -> dict:
    """Finish task ``tid`` of agent ``aid`` in one unit: the task leaves the agent (an
    ``agent:completeTask``/``agent:failTask`` event), its job becomes ``COMPLETE`` (output shaped
    as a run's, written to its ``outputPath``) or ``FAILED`` (``task_failed``), and this job
    ``COMPLETE`` with ``{agentId, taskId, status}``. A run working on the task is stopped."""
    def fn(u: Unit) -> None:
        rec = u.read(agent_ref(caller, aid))
        task_job = u.read(job_ref(caller, tid), aid)
        event = decide.finish_task(rec, aid, tid, task_job, result=result, error=error)
        task = A.task_of(u.tx, rec, tid) or {}
        edits: list[tuple[list[str], Any]] = []
        if error is not None:
            status, output, err = J.FAILED, None, {"code": "task_failed", "message": error}
        else:
            answer = result
            if task.get("responseSchema") is not None:
                answer, mismatch = check_answer(task["responseSchema"], result)
                if mismatch is not None and task.get("strict"):
                    raise OpError("schema_mismatch", mismatch["message"],
                                  path="$.input.result" + mismatch["answerPath"][1:],
                                  hint=f"the task asks for a strict responseSchema (failing at {mismatch['schemaPath']})")
            event = msgspec.structs.replace(event, result=answer)
            status, output, err = J.COMPLETE, answer, None
            if task.get("outputPath"):
                err = answer_edit(u, caller, edits, parse_path(task["outputPath"])[1], answer, task["outputPath"])
                if err is not None:
                    status, output = J.FAILED, None
        engine.commit_event(u, caller, aid, rec, event)
        if task_job is not None:
            u.write(job_ref(caller, tid), J.finish(task_job, status, u.ts, output=output, error=err), "job:finish")
        if edits:
            ws = u.read(ws_ref(caller))
            for segs, value in edits:
                ws = write_path(u.tx, {} if ws is None else ws, segs, value)
            u.write(ws_ref(caller), ws, job["operation"], {"agentId": aid, "paths": ["/".join(["w", *p]) for p, _ in edits]})
        u.write(job_ref(caller, job["jobId"]), J.finish(job, J.COMPLETE, u.ts, output={
            "agentId": aid, "taskId": tid, "status": status}), job["operation"])
    await engine.units.run(caller, fn)
    engine.scheduler.stop(caller, aid, tid)  # a run working on it stops; nothing of it is recorded
    return engine.jobs.get(caller, job["jobId"])


async def complete_task(engine: Engine, caller: str, inp: O.CompleteTaskInput, job: dict) -> dict:
    aid, tid = _scope(inp)
    return await _finish(engine, caller, job, aid, tid, result=inp.result)


async def fail_task(engine: Engine, caller: str, inp: O.FailTaskInput, job: dict) -> dict:
    aid, tid = _scope(inp)
    return await _finish(engine, caller, job, aid, tid, error=inp.error)


def _reply(reply: O.StepReply, n: int) -> LlmReply:
    calls = [ToolCall(id=c.id if c.id is not UNSET else f"step{n}-{i}", name=c.name, arguments=c.arguments)
             for i, c in enumerate(reply.toolCalls)]
    return LlmReply(content=reply.content, toolCalls=calls)


def dry_run(engine: Engine, caller: str, aid: str, tx: Any, rec: dict[str, Any], work: A.Work,
            replies: list[O.StepReply]) -> dict[str, Any]:
    """Drive :class:`~ops.domain.cycle.Cycle` over ``work`` with ``replies`` (in the order the run
    asks), I/O tools against the store as a run would see it (writes and messages staged, never
    committed); stop when the run is over or the replies are spent.

    Raises:
        OpError: ``invalid_config`` (the agent's config), ``tool_loop_limit``.
    """
    try:
        cycle = Cycle(tx, rec, work)
    except msgspec.ValidationError as e:
        raise OpError("invalid_config", f"agent config: {e}") from None
    out = Outcome(cycle.new, llm=[], tools=[], ws_edits=[], outbox=[])
    calls: list[dict[str, Any]] = []
    used, pending = 0, None
    while True:
        try:
            request = cycle.request()
        except CycleError as e:
            raise OpError(e.code, e.message, path=f"$.input.replies[{used}]") from None
        if request is None:
            break
        if used == len(replies):
            pending = request
            break
        reply = _reply(replies[used], used)
        used += 1
        for call in cycle.reply(reply.content, reply.toolCalls):
            text = cycle.pure(call)
            io = text is None
            if io:
                text = io_tool(engine, caller, call, out, aid)
                out.tools.append(text)
            cycle.tool_result(call, text)
            calls.append({"id": call.id, "name": call.name, "arguments": call.arguments, "result": text, "io": io})
    out.finish(cycle)
    task_results = None
    if cycle.finished and work.task_id is not None:
        task_results = {work.task_id: {"status": out.task_status, "output": out.task_output}}
    return {"taskId": work.task_id, "messages": len(work.messages), "triggers": len(work.triggers),
            "finished": cycle.finished, "repliesUsed": used, "calls": calls, "newMessages": out.new_history,
            "result": out.result, "taskResults": task_results, "taskError": out.task_error,
            "wsEdits": [{"path": "/".join(["w", *p]), "value": v} for p, v in out.ws_edits],
            "outbox": [{"agentId": t, "message": m} for t, m in out.outbox], "next": pending}


async def step(engine: Engine, caller: str, inp: O.StepInput, job: dict) -> dict:
    """A dry run of the agent's next run at its head (or version ``at``): nothing is committed,
    not even this job (it is kept in memory)."""
    def fn(u: Unit) -> dict:
        if inp.at is None:
            rec = engine.agent(u, caller, inp.agentId)
            d, c = u.head(agent_ref(caller, inp.agentId))
        else:
            d, c = engine.at_version(u.tx, caller, inp.agentId, inp.at)
            rec = A.opened(u.tx, u.tx.load_root(c.root))
        work = A.pick_work(u.tx, rec)
        if inp.task is not UNSET:
            work = A.Work("(simulated)", {"input": inp.task}, work.messages, work.triggers)
        return {"agentId": inp.agentId, "seq": c.seq, "id": d.hex(),
                **dry_run(engine, caller, inp.agentId, u.tx, rec, work, inp.replies)}
    return await engine.sync(caller, job, fn)


HANDLERS = {"agent:completeTask": complete_task, "agent:failTask": fail_task, "agent:step": step}
