"""Handlers of the version operations: ``agent:history``, ``agent:version``, ``agent:diff`` and ``agent:replay``.

``agent:history`` and ``agent:diff`` also take a LangGraph thread (``threadId``, and
``ns`` its checkpoint namespace) instead of an agent: its checkpoints are the commits of
its head ref (:mod:`ops.langgraph`), listed and compared like an agent's versions.

A verified replay re-derives every version of an agent from its parent through
:func:`ops.domain.events.decode` and :func:`ops.domain.events.apply`, the same
transition the live handlers commit with, and compares root digests. A
what-if replay (``into``) forks the agent at ``from`` and re-applies the later
inputs to the fork, reusing recorded model replies for byte-identical requests.
``agent:version`` shows one commit's event and, for a run, its model exchanges: a
run records each request by its digest only, so the requests are rebuilt by
driving the run's :class:`~ops.domain.cycle.Cycle` from its base version with the
recorded replies (as a replay does), and each is checked against its digest.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from msgspec import UNSET

from lattice.commits import Commit, read_commit
from lattice.errors import InvalidValue, LatticeError, NotFound
from lattice.history import diff as tree_diff
from lattice.history import resolve, versions
from lattice.nodes import Tx

from ...domain import agent as A
from ...domain import operations as O
from ...domain import session_ops as SO
from ...domain.contracts import REGISTRY
from ...domain.cycle import Cycle, CycleError, ReplayError
from ...domain.errors import OpError, Rejected
from ...domain.events import Context, RunCompleted, UnknownEvent, apply, decode, names_of, run_work
from ...domain.jobs import COMPLETE, finish
from ...domain.models import LlmReply
from ...langgraph.naming import head_ref
from ..context import Engine, Sandbox
from ..runs import request_digest
from .agents import deliver

__all__ = ["HANDLERS", "recorded_replies", "run_requests"]

_json = msgspec.json.Encoder()


def _subject(inp: O.HistoryInput | O.DiffInput) -> None:
    """Exactly one of ``agentId`` and ``threadId``; ``ns`` only with ``threadId``.

    Raises:
        Rejected: ``invalid_input``.
    """
    if (inp.agentId is UNSET) == (inp.threadId is UNSET):
        both = inp.agentId is not UNSET
        raise Rejected("invalid_input", "give either `agentId` or `threadId`" + (", not both" if both else ""),
                       path="$.input.threadId" if both else "$.input.agentId",
                       hint="`agentId` names an agent, `threadId` a LangGraph thread (covia:list t lists them)")
    if inp.ns is not UNSET and inp.threadId is UNSET:
        raise Rejected("invalid_input", "`ns` is a checkpoint namespace of a LangGraph thread: it needs `threadId`",
                       path="$.input.ns")


def _thread_head(engine: Engine, tx: Tx, caller: str, inp: O.HistoryInput | O.DiffInput) -> tuple[bytes, Commit]:
    """``(digest, commit)`` of the newest checkpoint of the thread's namespace (its head ref, see
    :mod:`ops.langgraph.naming`); ``not_found`` without one, ``invalid_input`` for a name too long."""
    ns = "" if inp.ns is UNSET else inp.ns
    try:
        name = head_ref(caller, inp.threadId, ns)
    except ValueError as e:
        raise Rejected("invalid_input", str(e), path="$.input.threadId") from None
    head = engine.store.ref(name)
    if head is None:
        where = f" (checkpoint namespace {ns!r})" if ns else ""
        raise OpError("not_found", f"no thread {inp.threadId!r}{where}", path="$.input.threadId",
                      hint="covia:list t lists your LangGraph threads")
    return head, read_commit(tx, head)


def _thread_at(tx: Tx, inp: O.DiffInput, head: bytes, at: Any, path: str) -> Commit:
    """The thread's checkpoint commit named by ``at`` (its depth ``seq``, or a commit id)."""
    try:
        return resolve(tx, head, at)[1]
    except NotFound as e:
        raise OpError("not_found", f"thread {inp.threadId!r}: {e.message}", path=path,
                      hint="agent:history with `threadId` lists the thread's checkpoints") from None
    except InvalidValue as e:
        raise Rejected("invalid_input", e.message, path=path) from None


async def history(engine: Engine, caller: str, inp: O.HistoryInput, job: dict) -> dict:
    """``{agentId, versions}``, or ``{threadId, ns, versions}`` for a LangGraph thread (each version
    with its ``checkpointId``); ``versions`` newest first."""
    _subject(inp)

    def fn(u: Any) -> dict:
        if inp.agentId is not UNSET:
            head, _ = engine.head_commit(u.tx, caller, inp.agentId)
            return {"agentId": inp.agentId, "versions": [
                {"seq": c.seq, "id": d.hex(), "op": c.op, "ts": c.ts, "caller": c.caller}
                for d, c in versions(u.tx, head, inp.limit, inp.before)]}
        head, _ = _thread_head(engine, u.tx, caller, inp)
        entries = []
        for d, c in versions(u.tx, head, inp.limit, inp.before):
            recorded = u.tx.materialize(c.input)
            cid = recorded.get("id") if isinstance(recorded, dict) else None
            entries.append({"seq": c.seq, "id": d.hex(), "op": c.op, "ts": c.ts, "caller": c.caller,
                            "checkpointId": cid if isinstance(cid, str) else None})
        return {"threadId": inp.threadId, "ns": "" if inp.ns is UNSET else inp.ns, "versions": entries}
    return await engine.sync(caller, job, fn)


def _hexed(value: Any) -> Any:
    """``value`` with every digest (bytes) as hex, for JSON."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _hexed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hexed(v) for v in value]
    return value


def run_requests(engine: Engine, tx: Tx, c: Commit, event: RunCompleted) -> list[dict[str, Any] | None]:
    """The LLM requests of a completed run (commit ``c``), rebuilt in call order: its cycle
    driven from its base version with the recorded replies and tool results. Where that stops
    short (the base is gone, the record does not fit), the rest are None."""
    out: list[dict[str, Any] | None] = []
    try:
        parent = None if c.parent is None else A.opened(tx, tx.load_root(read_commit(tx, c.parent).root))
        base = engine.opened_at(tx, event.base) if event.base else parent
        cycle = Cycle(tx, base, run_work(tx, base, event))
        results = iter(event.tools)
        while len(out) < len(event.llm) and (request := cycle.request()) is not None:
            out.append(request)
            reply = msgspec.convert(event.llm[len(out) - 1]["reply"], LlmReply)
            for call in cycle.reply(reply.content, reply.toolCalls):
                text = cycle.pure(call)
                cycle.tool_result(call, next(results) if text is None else text)
    except (StopIteration, CycleError, LatticeError, msgspec.ValidationError, KeyError, TypeError, ValueError):
        pass
    return out + [None] * (len(event.llm) - len(out))


async def version(engine: Engine, caller: str, inp: O.VersionInput, job: dict) -> dict:
    def fn(u: Any) -> dict:
        tx = u.tx
        d, c = engine.at_version(tx, caller, inp.agentId, inp.at)
        recorded = tx.materialize(c.input)
        shown = _hexed(recorded)
        size = len(_json.encode(shown))
        out = {"agentId": inp.agentId, "seq": c.seq, "id": d.hex(), "op": c.op, "ts": c.ts, "caller": c.caller,
               "parent": None if c.parent is None else c.parent.hex(), "input": shown if size <= inp.maxSize else None,
               "inputSize": size, "exchanges": None, "truncated": size > inp.maxSize}
        try:
            event = decode(c.op, recorded) if c.op == "agent:run" else None
        except UnknownEvent:
            event = None
        if isinstance(event, RunCompleted):
            room = inp.maxSize
            out["exchanges"] = exchanges = []
            for ex, request in zip(event.llm, run_requests(engine, tx, c, event)):
                verified = request is not None and request_digest(request) == ex["request"]
                n = 0 if request is None else len(_json.encode(request))
                if n > room:
                    request, out["truncated"] = None, True
                room -= n if request is not None else 0
                exchanges.append({"digest": _hexed(ex["request"]), "request": request, "reply": ex["reply"],
                                  "verified": verified})
        return out
    return await engine.sync(caller, job, fn)


async def diff(engine: Engine, caller: str, inp: O.DiffInput, job: dict) -> dict:
    _subject(inp)

    def fn(u: Any) -> dict:
        tx = u.tx
        if inp.threadId is not UNSET:
            if inp.otherAgentId is not None:
                raise Rejected("invalid_input", "`otherAgentId` compares two agents: it cannot be combined with "
                                                "`threadId`", path="$.input.otherAgentId")
            if inp.from_ is None:
                raise Rejected("invalid_input", "`from` is required to compare two checkpoints of a thread",
                               path="$.input.from", hint="give `from` (a seq or id from agent:history)")
            head, head_c = _thread_head(engine, tx, caller, inp)
            a = _thread_at(tx, inp, head, inp.from_, "$.input.from")
            b = head_c if inp.to is None else _thread_at(tx, inp, head, inp.to, "$.input.to")
            if a.seq > b.seq:
                raise OpError("invalid_range", f"`from` (checkpoint {a.seq}) is after `to` (checkpoint {b.seq})",
                              path="$.input.from", hint="swap them, or omit `to` to compare with the newest")
        elif inp.otherAgentId is None:
            if inp.from_ is None:
                raise Rejected("invalid_input", "`from` is required to compare two versions of one agent",
                               path="$.input.from", hint="give `from` (a seq or id), or `otherAgentId`")
            _, a = engine.at_version(tx, caller, inp.agentId, inp.from_, "$.input.from")
            _, b = engine.head_commit(tx, caller, inp.agentId) if inp.to is None else \
                engine.at_version(tx, caller, inp.agentId, inp.to, "$.input.to")
            if a.seq > b.seq:
                raise OpError("invalid_range", f"`from` (version {a.seq}) is after `to` (version {b.seq})",
                              path="$.input.from", hint="swap them, or omit `to` to compare with the head")
        else:
            if inp.from_ is not None or inp.to is not None:
                field = "from" if inp.from_ is not None else "to"
                raise Rejected("invalid_input", f"`{field}` cannot be combined with `otherAgentId`: two agents are "
                                                "compared at their heads", path=f"$.input.{field}",
                               hint="drop it, or fork the other agent at that version and compare with the fork")
            a = engine.head_commit(tx, caller, inp.agentId)[1]
            b = engine.head_commit(tx, caller, inp.otherAgentId, "$.input.otherAgentId")[1]
        changes, truncated = tree_diff(tx, tx.raw_root(a.root), tx.raw_root(b.root), limit=inp.limit)
        return {"changes": changes, "truncated": truncated}
    return await engine.sync(caller, job, fn)


def _range(engine: Engine, tx: Tx, caller: str, aid: str, frm: Any, to: Any) -> list[tuple[bytes, Commit]]:
    """The agent's commits ``frm..to`` (defaults: first, head), oldest first."""
    head, head_c = engine.head_commit(tx, caller, aid)
    lo = 0 if frm is None else engine.at_version(tx, caller, aid, frm, "$.input.from")[1].seq
    d, c = (head, head_c) if to is None else engine.at_version(tx, caller, aid, to, "$.input.to")
    if lo > c.seq:
        raise OpError("invalid_range", f"`from` (version {lo}) is after `to` (version {c.seq})",
                      path="$.input.from", hint="swap them, or omit `to` to replay up to the head")
    out = [(d, c)]
    while c.seq > lo and c.parent is not None:  # a pruned chain starts at its base
        d = c.parent
        c = read_commit(tx, d)
        out.append((d, c))
    out.reverse()
    return out


def recorded_replies(tx: Tx, commits: list[Commit]) -> dict[bytes, dict[str, Any]]:
    """``{request digest: reply}`` of every LLM exchange recorded in ``commits``."""
    out: dict[bytes, dict[str, Any]] = {}
    for c in commits:
        if c.op == "agent:run":
            for ex in tx.materialize(c.input).get("llm", []):
                out.setdefault(ex["request"], ex["reply"])
    return out


def _rederive(engine: Engine, tx: Tx, name: str, c: Commit, inp: Any) -> dict[str, Any]:
    """The record after commit ``c`` (its input ``inp`` materialized), re-derived from its parent
    through the one ``apply``; ``name`` is the agent's id when the event happened. ``tx`` writes
    in ``c``'s stored format, so a version written before an upgrade re-derives as it was
    (:attr:`lattice.nodes.Tx.format`)."""
    tx.format = c.format
    parent = None if c.parent is None else A.opened(tx, tx.load_root(read_commit(tx, c.parent).root))
    ctx = Context(ts=c.ts, caller=c.caller, agent_id=name, load=lambda h: engine.opened_at(tx, h))
    return apply(tx, parent, decode(c.op, inp), ctx)


def _name_before(tx: Tx, first: Commit, default: str) -> str:
    """The agent's id in effect before commit ``first``: set by its chain's creation or its
    last import (an agent imported under a new id keeps its old id in older events)."""
    d = first.parent
    while d is not None:
        c = read_commit(tx, d)
        if c.op in ("agent:create", "agent:fork", "agent:import", "agent:prune"):
            return names_of(c.op, tx.materialize(c.input)) or default
        d = c.parent
    return default


async def replay(engine: Engine, caller: str, inp: O.ReplayInput, job: dict) -> dict:
    if inp.into is not None:
        return await what_if(engine, caller, inp, job)
    tx = engine.tx()
    commits = _range(engine, tx, caller, inp.agentId, inp.from_, inp.to)
    out: dict[str, Any] = {"agentId": inp.agentId, "replayed": 0, "identical": True, "divergence": None}
    name = _name_before(tx, commits[0][1], inp.agentId)
    for i, (_, c) in enumerate(commits):
        if i % 256 == 255:
            await asyncio.sleep(0)  # a long replay must not stall the server
        rtx = engine.tx()
        if c.op == "agent:prune":  # the base of a pruned chain: a state taken as given
            name = names_of(c.op, rtx.materialize(c.input)) or name
            out["replayed"] += 1
            continue
        try:
            recorded = rtx.materialize(c.input)
            name = names_of(c.op, recorded) or name
            got = rtx.put_root(_rederive(engine, rtx, name, c, recorded))
        except (ReplayError, UnknownEvent, CycleError, LatticeError, msgspec.ValidationError, KeyError,
                TypeError) as e:
            out.update(identical=False, divergence={"seq": c.seq, "path": "", "expected": c.root.data.hex(),
                                                    "got": f"cannot replay {c.op}: {e}"})
            break
        out["replayed"] += 1
        if got != c.root:
            (first, *_), _ = tree_diff(rtx, rtx.raw_root(c.root), rtx.raw_root(got), limit=1, value_max=1024)
            out.update(identical=False, divergence={
                "seq": c.seq, "path": first["path"], "expected": first.get("before", first.get("beforeSize")),
                "got": first.get("after", first.get("afterSize"))})
            break
    done = finish(job, COMPLETE, engine.clock(), output=out)
    engine.jobs.remember(caller, done)
    return done


async def what_if(engine: Engine, caller: str, inp: O.ReplayInput, job: dict) -> dict:
    """Fork the agent at ``from`` into ``into`` (config merged) and re-apply the recorded
    tasks, messages, chats and triggers after ``from`` in order, each run to its end; the model
    is called live except where a request is byte-identical to a recorded one. A session the
    source opened after ``from`` is opened anew on ``into`` (a new id) and its later inputs go
    there; the caller's edits of sessions (rename, delete, compact, fork) are not re-applied."""
    if inp.from_ is None:
        raise Rejected("invalid_input", "`from` is required with `into`", path="$.input.from",
                       hint="the new agent is forked at `from`")
    tx = engine.tx()
    commits = _range(engine, tx, caller, inp.agentId, inp.from_, None)
    start, later = commits[0][1], commits[1:]
    fork = await engine.invoke(REGISTRY["agent:fork"], O.ForkInput(
        sourceId=inp.agentId, agentId=inp.into, config=inp.config, at=start.seq), caller)
    if fork["status"] != COMPLETE:
        e = fork["error"]
        raise OpError(e["code"], e["message"], path="$.input.into" if e["code"] == "conflict" else e.get("path"),
                      hint=e.get("hint"))
    sandbox = Sandbox(recorded_replies(tx, [c for _, c in later]))
    inputs = [(c, tx.materialize(c.input)) for _, c in later]
    cancelled = {i["taskId"] for c, i in inputs  # never completed by a run in the source
                 if c.op in ("agent:cancelTask", "agent:completeTask", "agent:failTask")}
    engine.sandboxes[(caller, inp.into)] = sandbox
    replayed, diverged = 0, []
    sids: dict[str, str] = {}  # a session the source opened after `from` -> the one opened on `into`

    def session(i: dict[str, Any], key: str) -> dict[str, Any]:
        """The session inputs re-applying ``i`` needs (``key``: the field of a new session)."""
        sid = i.get("sessionId")
        if sid is None:
            return {}
        return {key: {"title": i.get("title", "")} if key == "session" else None} if i.get("minted") \
            else {"sessionId": sids.get(sid, sid)}

    def opened(i: dict[str, Any], done: dict[str, Any]) -> None:
        if i.get("minted") and done.get("sessionId"):
            sids[i["sessionId"]] = done["sessionId"]
    try:
        for c, i in inputs:
            live = sandbox.live
            if c.op == "agent:request" and i["taskId"] not in cancelled:
                opened(i, await engine.invoke(REGISTRY["agent:request"], O.RequestInput(
                    agentId=inp.into, input=i["input"], wait=True, **session(i, "session"),
                    **{k: i[k] for k in ("responseSchema", "strict") if k in i}), caller))
            elif c.op == "agent:chat":
                opened(i, await engine.invoke(REGISTRY["agent:chat"], SO.ChatInput(
                    agentId=inp.into, message=i.get("message"), wait=True, **session(i, "sessionId")), caller))
            elif c.op == "agent:message" and "sessionId" in i:
                await engine.invoke(REGISTRY["agent:message"], O.MessageInput(
                    agentId=inp.into, message=i["message"], sessionId=sids.get(i["sessionId"], i["sessionId"])),
                    caller)
            elif c.op == "agent:message":
                await deliver(engine, caller, inp.into, i["messages"] if "messages" in i else [i["message"]],
                              i.get("from", c.caller))
            elif c.op == "agent:trigger" and i["triggerId"] not in cancelled:
                await engine.invoke(REGISTRY["agent:trigger"], O.TriggerInput(agentId=inp.into, wait=True), caller)
            else:
                continue
            status = await engine.idle(caller, inp.into)
            replayed += 1
            if sandbox.live > live:
                diverged.append(c.seq)
            if status != A.SLEEPING:
                break  # suspended (its error is on the agent) or gone: stop here
    finally:
        engine.sandboxes.pop((caller, inp.into), None)
    done = finish(job, COMPLETE, engine.clock(), output={"agentId": inp.into, "replayed": replayed,
                                                         "diverged": diverged})
    engine.jobs.remember(caller, done)
    return done


HANDLERS = {"agent:history": history, "agent:version": version, "agent:diff": diff, "agent:replay": replay}
