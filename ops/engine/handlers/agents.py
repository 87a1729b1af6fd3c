"""Handlers of the agent lifecycle, work and inspection operations (``agent:*``)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from lattice.commits import find, log, read_commit
from lattice.digest import from_hex
from lattice.errors import NotFound
from lattice.nodes import Tx, map_len, seq_len, seq_plain

from ...domain import agent as A
from ...domain import decide
from ...domain import jobs as J
from ...domain import operations as O
from ...domain import sessions as S
from ...domain.answers import schema_problem
from ...domain.cycle import build_context
from ...domain.errors import OpError, Rejected, error_fields
from ...domain.events import Messaged
from ...domain.refs import agent_prefix, agent_ref, job_ref, split_ref, ws_ref
from ..config import check_state, resolve_config, resolve_definition
from ..context import Engine
from ..unit import Unit
from .lattice import target

__all__ = ["HANDLERS", "cancel_agent_job", "deliver", "fork_origin", "session_id", "summary", "output_segments"]


def session_id(value: Any) -> str | None:
    """A session id from an input (already checked against its pattern), canonical; None when
    not given (null or absent)."""
    return S.normalize_id(value) if isinstance(value, str) else None


def _config(engine: Engine, caller: str, config: Any) -> dict[str, Any] | None:
    return resolve_config(config, lambda segs: engine.read_value(ws_ref(caller), segs), engine.connections)


def _definition(engine: Engine, caller: str, inp: O.CreateInput, config: dict[str, Any]) -> dict[str, Any]:
    """The config of ``agent:create`` with a ``definition``: the definition's config, the given
    ``config`` merged on top, and ``definition`` recording where it came from."""
    base = resolve_definition(inp.definition, lambda segs: engine.read_value(ws_ref(caller), segs),
                              engine.connections)
    merged = {**base, **config, "definition": inp.definition}
    try:
        A.check_config(merged)
    except msgspec.ValidationError as e:
        raise OpError("invalid_config", f"config merged onto the definition: {e}", path="$.input.config") from None
    return merged


async def create(engine: Engine, caller: str, inp: O.CreateInput, job: dict) -> dict:
    check_state(inp.state)
    config = _config(engine, caller, inp.config) or {}
    if inp.definition is not UNSET:
        config = _definition(engine, caller, inp, config)
    name = agent_ref(caller, inp.agentId)

    def fn(u: Unit) -> dict:
        old = u.read(name)
        event = decide.create(old, inp.agentId, config, inp.state, inp.overwrite)
        if event is None:
            return {"agentId": inp.agentId, "status": old["status"], "created": False, "updated": False}
        if old is None:
            engine.quotas.room_for_agent(caller)
        else:
            engine.cancel_jobs(u, caller, old, "agent terminated", inp.agentId)
        rec = engine.commit_event(u, caller, inp.agentId, old, event)
        return {"agentId": inp.agentId, "status": rec["status"], "created": old is None, "updated": old is not None}

    async with engine.quotas.creating(caller):
        done = await engine.sync(caller, job, fn)
    if inp.overwrite and done["status"] == J.COMPLETE and done["output"]["updated"]:
        engine.scheduler.stop(caller, inp.agentId)  # the replaced agent's in-flight run must not block the new one
    return done


async def update(engine: Engine, caller: str, inp: O.UpdateInput, job: dict) -> dict:
    check_state(inp.state)
    if inp.config is not None:
        _config(engine, caller, inp.config)

    def fn(u: Unit) -> dict:
        rec = u.read(agent_ref(caller, inp.agentId))
        rec = engine.commit_event(u, caller, inp.agentId, rec, decide.update(rec, inp.agentId, inp.config, inp.state))
        return {"agentId": inp.agentId, "status": rec["status"]}
    return await engine.sync(caller, job, fn)


async def fork(engine: Engine, caller: str, inp: O.ForkInput, job: dict) -> dict:
    override = _config(engine, caller, inp.config)
    sid = session_id(inp.sessionId)

    def fn(u: Unit) -> dict:
        if inp.at is None:
            src = engine.agent(u, caller, inp.sourceId, "$.input.sourceId")
            source = u.head(agent_ref(caller, inp.sourceId))[0]
        else:
            source, c = engine.at_version(u.tx, caller, inp.sourceId, inp.at, agent_path="$.input.sourceId")
            src = A.opened(u.tx, u.tx.load_root(c.root))
        old = u.read(agent_ref(caller, inp.agentId))
        event = decide.fork(src, old, inp.sourceId, inp.agentId, source.hex(), override, inp.includeTimeline,
                            inp.at, u.tx, sid, overwrite=inp.overwrite is True)
        if old is None:
            engine.quotas.room_for_agent(caller)
        rec = engine.commit_event(u, caller, inp.agentId, old, event, load=lambda h: src)  # on a TERMINATED one's chain
        out = {"agentId": inp.agentId, "status": rec["status"], "created": True, "forkedFrom": inp.sourceId}
        if sid is not None:
            out["sessionId"] = sid
        return out

    async with engine.quotas.creating(caller):
        return await engine.sync(caller, job, fn)


async def suspend(engine: Engine, caller: str, inp: O.AgentInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.suspend(rec, inp.agentId)
        if event is not None:
            rec = engine.commit_event(u, caller, inp.agentId, rec, event)
        return {"agentId": inp.agentId, "status": rec["status"]}
    return await engine.sync(caller, job, fn)


async def resume(engine: Engine, caller: str, inp: O.ResumeInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.resume(rec, inp.agentId, inp.autoWake)
        if event is not None:
            rec = engine.commit_event(u, caller, inp.agentId, rec, event)
        return {"agentId": inp.agentId, "status": rec["status"]}
    return await engine.sync(caller, job, fn)


async def delete(engine: Engine, caller: str, inp: O.DeleteInput, job: dict) -> dict:
    name = agent_ref(caller, inp.agentId)

    def fn(u: Unit) -> dict:
        rec = u.read(name)
        event = decide.delete(rec, inp.agentId)
        engine.cancel_jobs(u, caller, rec, "agent terminated", inp.agentId)
        if inp.remove:
            engine.keep_finished_jobs(u, caller, log(u.tx, u.head(name)[0]), inp.agentId)
            u.remove(name)
            return {"agentId": inp.agentId, "status": A.TERMINATED, "removed": True}
        rec = engine.commit_event(u, caller, inp.agentId, rec, event)
        return {"agentId": inp.agentId, "status": rec["status"]}
    out = await engine.sync(caller, job, fn)
    if out["status"] == J.COMPLETE:
        engine.scheduler.stop(caller, inp.agentId)  # a terminated agent's run is abandoned, not recorded
    return out


async def cancel_agent_job(engine: Engine, caller: str, aid: str, task_id: str, required: bool,
                           job: dict | None = None, reason: str | None = None) -> bool:
    """Cancel a task, trigger or chat job of an agent; whether it was waiting. With ``job`` (an
    ``agent:cancelTask`` job), that job commits ``COMPLETE`` with the change. ``reason``: the
    cancelled job's error message (default ``cancelled by caller``), recorded with the event.

    Raises:
        OpError: ``not_found`` (no agent; no such task when ``required``).
    """
    def fn(u: Unit) -> bool:
        rec = u.read(agent_ref(caller, aid))
        jr = u.read(job_ref(caller, task_id), aid)
        chat = jr.get("sessionId") if jr is not None and jr.get("operation") == "agent:chat" else None
        event = decide.cancel_task(rec, aid, task_id, required, u.tx, chat, reason)
        if event is None:
            return False
        done = None if jr is None else J.cancel(jr, u.ts, reason or "cancelled by caller")
        if done is not None:
            u.write(job_ref(caller, task_id), done, "job:cancel")
        engine.commit_event(u, caller, aid, rec, event)
        if job is not None:
            u.write(job_ref(caller, job["jobId"]), J.finish(job, J.COMPLETE, u.ts, output={
                "agentId": aid, "taskId": task_id, "cancelled": True}), job["operation"])
        return True
    cancelled = await engine.units.run(caller, fn)
    if cancelled:
        engine.scheduler.stop(caller, aid, task_id)  # the run working on it stops; nothing of it is recorded
    return cancelled


async def cancel_task(engine: Engine, caller: str, inp: O.CancelTaskInput, job: dict) -> dict:
    tid = J.normalize_job_id(inp.taskId)
    if tid is None:
        raise Rejected("invalid_input", f"taskId {inp.taskId!r} is not a job id (0x + 32 hex digits)",
                       path="$.input.taskId")
    await cancel_agent_job(engine, caller, inp.agentId, tid, required=True, job=job,
                           reason=None if inp.reason is UNSET else inp.reason)
    return engine.jobs.get(caller, job["jobId"])


async def info(engine: Engine, caller: str, inp: O.InfoInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        if inp.at is None:
            rec = engine.agent(u, caller, inp.agentId)
        else:
            rec = A.opened(u.tx, u.tx.load_root(engine.at_version(u.tx, caller, inp.agentId, inp.at)[1].root))
        n = map_len(rec["tasks"])
        out = {"agentId": inp.agentId, "status": rec["status"], "config": u.tx.materialize(rec["state"]["config"]),
               "taskCount": n, "tasks": n, "timelineLength": seq_len(rec["timeline"]),
               **error_fields(rec["error"])}
        origin = fork_origin(u.tx, engine.store.ref(agent_ref(caller, inp.agentId)))
        if origin is not None:  # only a fork has one
            out["forkedFrom"] = origin
        return out
    return await engine.sync(caller, job, fn)


def fork_origin(tx: Tx, head: bytes) -> dict[str, Any] | None:
    """``{agentId, id, seq}`` of the version the agent whose head commit is ``head`` was forked
    from (None: created, or its creation was pruned). O(log n) reads."""
    try:
        _, first = find(tx, head, 0)
    except NotFound:
        return None
    if first.op != "agent:fork":
        return None
    inp = tx.materialize(first.input)
    try:
        source = read_commit(tx, from_hex(inp["source"]))
    except (NotFound, KeyError, ValueError):
        return None
    return {"agentId": inp.get("sourceId"), "id": inp["source"], "seq": source.seq}


def summary(tx: Tx, name: str, head: bytes, forks: bool = False) -> dict[str, Any]:
    """The ``agent:list`` entry of the agent at ref ``name`` whose head commit is ``head``:
    ``{agentId, status, taskCount, tasks, error, errorCode, updated}`` (``tasks``: the venue's name of
    ``taskCount``; ``error``: the last error's message, ``errorCode`` its code; ``updated``: its last
    change, Unix ms);
    with ``forks``, also ``headSeq`` (its head's seq) and, for a fork, ``forkedFrom``
    (:func:`fork_origin`). O(1) reads, O(log n) with ``forks``."""
    c = read_commit(tx, head)
    rec = A.opened(tx, tx.load_root(c.root))
    n = map_len(rec["tasks"])
    out = {"agentId": split_ref(name)[2], "status": rec["status"], "taskCount": n, "tasks": n,
           **error_fields(rec["error"]), "updated": rec["updated"]}
    if forks:
        out["headSeq"] = c.seq
        origin = fork_origin(tx, head)
        if origin is not None:
            out["forkedFrom"] = origin
    return out


async def list_agents(engine: Engine, caller: str, inp: O.ListInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        agents = []
        for name, head in engine.store.refs(agent_prefix(caller)):
            entry = summary(u.tx, name, head, inp.includeForks)
            if entry["status"] == A.TERMINATED and not inp.includeTerminated:
                continue
            agents.append(entry)
        return {"agents": agents}
    return await engine.sync(caller, job, fn)


async def context(engine: Engine, caller: str, inp: O.ContextInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        rec = engine.agent(u, caller, inp.agentId)
        work = A.pick_work(u.tx, rec)
        sid = session_id(inp.sessionId)
        if sid is not None:  # the next turn on that session (``task``: as a chat message sent now)
            pending = seq_plain(u.tx, decide.session_of(u.tx, rec, inp.agentId, sid)["pending"])
            if inp.task is not None:
                pending.append({"id": "(simulated)", "op": "agent:chat", "message": inp.task, "caller": caller,
                                "ts": u.ts})
            work = A.Work(None, None, [], [], session=sid, pending=pending)
        elif inp.task is not None:
            work = A.Work("(simulated)", {"input": inp.task}, work.messages, work.triggers)
        try:
            cfg, prefix, new, tools = build_context(u.tx, rec, work)
        except msgspec.ValidationError as e:
            raise OpError("invalid_config", f"agent config: {e}") from None
        enc = msgspec.json.encode
        hist = [m for m in prefix if m["role"] != "system"]
        entries = [{"name": "systemPrompt", "bytes": len(cfg.systemPrompt.encode())},
                   {"name": "history", "bytes": len(enc(hist))},
                   {"name": "input", "bytes": len(enc(new))},
                   {"name": "tools", "bytes": len(enc(tools))}]
        return {"model": msgspec.to_builtins(cfg.model), "messages": prefix + new, "tools": tools, "entries": entries}
    return await engine.sync(caller, job, fn)


def output_segments(engine: Engine, caller: str, path: str, where: str = "$.input.outputPath") -> list[str]:
    """The segments below ``w/`` of an ``outputPath``.

    Raises:
        Rejected: ``invalid_path`` (malformed, or ``w/`` itself). OpError: ``forbidden`` (not under ``w/``).
    """
    try:
        ns, _, segs = target(caller, path, engine.venue_did)
    except Rejected as e:
        raise Rejected(e.code, e.message, path=where, hint=e.hint) from None
    if ns != "w":
        raise OpError("forbidden", f"outputPath {path}: an answer can be written only to the workspace", path=where,
                      hint="use a path under w/, e.g. w/results/latest")
    if not segs:
        raise Rejected("invalid_path", "outputPath needs a path below w/, e.g. w/results/latest", path=where)
    return segs


def _request_options(engine: Engine, caller: str, inp: O.RequestInput) -> tuple[Any, dict[str, Any]]:
    """``(wait, task options)`` of an ``agent:request``: ``timeout`` (ms; 0: at once) or ``wait``
    (default: answer at once), and the options its task keeps.

    Raises:
        Rejected: ``invalid_input`` (``wait`` and ``timeout`` both; ``strict`` without a schema),
            ``invalid_path``. OpError: ``invalid_input`` (a ``responseSchema`` that is not a JSON
            Schema: a FAILED job, as what makes one valid is more than the input's schema says),
            ``forbidden`` (``outputPath`` not under ``w/``).
    """
    if inp.wait is not UNSET and inp.timeout is not UNSET:
        raise Rejected("invalid_input", "give `wait` or `timeout`, not both - at `$.input.timeout`",
                       path="$.input.timeout", hint="timeout: milliseconds to wait (0: answer at once)")
    wait = (inp.timeout or False) if inp.timeout is not UNSET else (False if inp.wait is UNSET else inp.wait)
    options: dict[str, Any] = {}
    if inp.responseSchema is not UNSET:
        problem = schema_problem(inp.responseSchema)
        if problem is not None:
            raise OpError("invalid_input", problem, path="$.input.responseSchema",
                          hint="a JSON Schema (2020-12 unless its $schema says), with local $refs only")
        options["responseSchema"] = inp.responseSchema
    if inp.strict is True:
        if inp.responseSchema is UNSET:
            raise Rejected("invalid_input", "`strict` checks the answer against `responseSchema`: give one",
                           path="$.input.strict")
        options["strict"] = True
    if inp.outputPath is not UNSET:  # kept canonical: the run re-reads it as a plain w/ path
        options["outputPath"] = "/".join(["w", *output_segments(engine, caller, inp.outputPath)])
    return wait, options


async def request(engine: Engine, caller: str, inp: O.RequestInput, job: dict) -> dict:
    """Queue the task (the job is the task) and wait for its answer per ``timeout`` or ``wait``;
    an unfinished job comes back as it is (its public view carries the venue's snapshot fields
    ``{id, status, agentId}``: :func:`ops.domain.jobs.public_job`)."""
    wait, options = _request_options(engine, caller, inp)
    jid = job["jobId"]
    job = {**job, "agentId": inp.agentId}
    sid, title = session_id(inp.sessionId), None
    if isinstance(inp.session, dict):
        title = _new_session_title(inp.session, sid)
        sid = engine.job_ids(engine.clock())
    if sid is not None:
        job["sessionId"] = sid  # the job record says which session its task belongs to

    def fn(u: Unit) -> None:
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.request(rec, inp.agentId, jid, inp.input, engine.limits.max_queued, u.tx, sid, title,
                               options)
        engine.commit_event(u, caller, inp.agentId, rec, event)
        u.follow(job_ref(caller, jid), agent_ref(caller, inp.agentId))  # the job is folded into that commit
    await engine.units.run(caller, fn)
    return await engine.wait(caller, engine.jobs.get(caller, jid, inp.agentId), wait)


def _new_session_title(spec: dict[str, Any], sid: str | None) -> str:
    """The title of the session ``agent:request``'s ``session`` opens (``{title?: string}``).

    Raises:
        Rejected: ``invalid_input`` (also given ``sessionId``; another key; a title not a string).
    """
    if sid is not None:
        raise Rejected("invalid_input", "give `sessionId` (a known session) or `session` (a new one), not both",
                       path="$.input.session")
    for k in spec:
        if k != "title":
            raise Rejected("invalid_input", f"unknown field `{k}` - at `$.input.session.{k}`",
                           path=f"$.input.session.{k}", hint="a new session takes only a `title`")
    title = spec.get("title", "")
    if not isinstance(title, str):
        raise Rejected("invalid_input", f"Expected `str`, got `{type(title).__name__}` - at `$.input.session.title`",
                       path="$.input.session.title")
    return title


async def trigger(engine: Engine, caller: str, inp: O.TriggerInput, job: dict) -> dict:
    jid = job["jobId"]
    job = {**job, "agentId": inp.agentId}

    def fn(u: Unit) -> dict | None:
        rec = u.read(agent_ref(caller, inp.agentId))
        sid = session_id(inp.sessionId)
        event = decide.trigger(rec, inp.agentId, jid, engine.limits.max_queued, u.tx, sid, inp.force is not False)
        if event is None:  # force: false and nothing to do
            idle = {"agentId": inp.agentId, "status": rec["status"], "result": None, "taskResults": []}
            return idle if sid is None else {**idle, "sessionId": sid}
        engine.commit_event(u, caller, inp.agentId, rec, event)
        if sid is None:
            u.follow(job_ref(caller, jid), agent_ref(caller, inp.agentId))  # the job is folded into that commit
        else:  # the session it echoes is not in the agent's commit: the job keeps its record
            u.write(job_ref(caller, jid), job, "agent:trigger")
        return None
    idle = await engine.units.run(caller, fn)
    if idle is not None:
        done = J.finish(job, J.COMPLETE, engine.clock(), output=idle)
        engine.jobs.remember(caller, done)
        return done
    return await engine.wait(caller, engine.jobs.get(caller, jid, inp.agentId), inp.wait)


async def message(engine: Engine, caller: str, inp: O.MessageInput, job: dict) -> dict:
    if inp.message is None:
        raise Rejected("invalid_input", "`message` is null: give the notification (any JSON value)",
                       path="$.input.message")
    sid = session_id(inp.sessionId)

    def fn(u: Unit) -> dict:
        rec = u.read(agent_ref(caller, inp.agentId))
        engine.commit_event(u, caller, inp.agentId, rec, decide.message(
            rec, inp.agentId, inp.message, engine.limits.max_queued, u.tx, sid, job["jobId"]))
        return {"agentId": inp.agentId, "delivered": True} if sid is None else \
            {"agentId": inp.agentId, "delivered": True, "sessionId": sid}
    return await engine.sync(caller, job, fn)


async def deliver(engine: Engine, caller: str, aid: str, texts: list[Any], sender: str) -> None:
    """Deliver messages from ``sender`` to an agent's inbox (as a what-if replays them)."""
    def fn(u: Unit) -> None:
        rec = engine.agent(u, caller, aid)
        engine.commit_event(u, caller, aid, rec, Messaged(agentId=aid, messages=texts, sender=sender))
    await engine.units.run(caller, fn)


HANDLERS = {"agent:create": create, "agent:update": update, "agent:fork": fork, "agent:suspend": suspend,
            "agent:resume": resume, "agent:delete": delete, "agent:cancelTask": cancel_task, "agent:info": info,
            "agent:list": list_agents, "agent:context": context, "agent:request": request, "agent:trigger": trigger,
            "agent:message": message}
