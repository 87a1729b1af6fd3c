"""Replay: re-derive an agent's versions from their recorded events.

Every commit on an agent's chain records its event: the operation, its
input (with the ids it minted and the config it resolved), the caller and the
time. A run's commit also records each LLM exchange (the request's digest and
the reply) and each I/O tool result. :func:`rederive` recomputes a version
from its parent version and that record through the same pure transitions
the server ran (:mod:`ops.agent`), without calling a model; the caller checks
that the recomputed root digest equals the recorded one.
"""

from __future__ import annotations

from typing import Any, Callable

import msgspec

from lattice.commits import Commit
from lattice.nodes import Tx, map_keys, seq_iter

from . import agent as A
from .models import LlmReply

__all__ = ["ReplayError", "rederive", "recorded_replies"]


class ReplayError(Exception):
    """A recorded event that cannot be re-run (an unknown op, or fewer recorded replies than the run asks for)."""


def rederive(tx: Tx, parent: dict[str, Any] | None, commit: Commit, agent_id: str,
             source: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The agent record after ``commit``'s event, recomputed from ``parent``.

    Args:
        tx: reads (and buffers) objects. parent: the opened record of the
            parent version (None for a first commit).
        commit: the recorded event. agent_id: the agent's id (for messages it
            sent itself). source: loads the opened record of a version by
            commit id (hex): a fork's source, a run's starting version.

    Raises:
        ReplayError: the event cannot be re-run.
    """
    inp = tx.materialize(commit.input)
    ts, caller = commit.ts, commit.caller
    match commit.op:
        case "agent:create":
            return A.new_agent(inp.get("config") or {}, inp.get("state"), ts)
        case "agent:fork":
            return A.fork(source(inp["source"]), inp.get("config"), inp.get("includeTimeline", False), ts)
        case "agent:update":
            return A.update(parent, inp.get("config"), inp.get("state"), ts)
        case "agent:suspend":
            return A.settle(A.suspend(parent, ts))
        case "agent:resume":
            auto = inp.get("autoWake", True)
            return A.resume(parent, ts, auto)
        case "agent:delete":
            return A.terminate(parent, ts)
        case "agent:cancelTask":
            rec, tid = parent, inp["taskId"]
            if tid in map_keys(rec["tasks"]):
                rec = A.cancel_task(tx, rec, tid, ts)
            if tid in rec["triggers"]:
                rec = A.cancel_trigger(rec, tid, ts)
            return A.settle(rec)
        case "agent:request":
            return A.settle(A.enqueue_task(tx, parent, inp["taskId"], inp["input"], caller, ts))
        case "agent:trigger":
            return A.settle(A.add_trigger(parent, inp["triggerId"], ts))
        case "agent:message":
            rec, sender = parent, inp.get("from", caller)
            for text in inp["messages"] if "messages" in inp else [inp["message"]]:
                rec = A.add_message(tx, rec, text, sender, ts)
            return A.settle(rec)
        case "agent:run" if "error" in inp:
            return A.settle(A.fail_cycle(parent, inp["error"], ts))
        case "agent:run":
            base = source(inp["base"]) if inp.get("base") else parent  # the version the run started from
            return _rerun(tx, parent, base, inp, ts, agent_id)
        case op:
            raise ReplayError(f"no replay for event {op!r}")


def _rerun(tx: Tx, parent: dict[str, Any], base: dict[str, Any], inp: dict[str, Any], ts: int,
           agent_id: str) -> dict[str, Any]:
    task_id = inp["taskId"]
    work = A.Work(task_id, {"input": inp["task"]} if task_id is not None else None,
                  list(seq_iter(tx, base["inbox"], 0, inp["messages"])), list(inp["triggers"]))
    cycle = A.Cycle(tx, base, work)
    replies, tools = iter(inp["llm"]), iter(inp["tools"])
    while cycle.request() is not None:
        try:
            reply = msgspec.convert(next(replies)["reply"], LlmReply)
        except StopIteration:
            raise ReplayError(f"the run asks for LLM call {cycle.calls}, but only {len(inp['llm'])} were recorded") \
                from None
        for call in cycle.reply(reply.content, reply.toolCalls):
            text = cycle.pure(call)
            if text is None:
                try:
                    text = next(tools)
                except StopIteration:
                    raise ReplayError(f"tool call {call.name!r} has no recorded result") from None
            cycle.tool_result(call, text)
    rec, _, _ = A.finish_run(tx, parent, work, new_history=cycle.new, result=cycle.result,
                             task_status=cycle.task_status, task_output=cycle.task_output,
                             start=inp["start"], ts=ts)
    rec = A.settle(rec)
    for target, text in inp.get("outbox", []):
        if target == agent_id:  # a message to itself lands in the same commit
            rec = A.settle(A.add_message(tx, rec, text, f"agent:{agent_id}", ts))
    return rec


def recorded_replies(tx: Tx, commits: list[Commit]) -> dict[bytes, dict[str, Any]]:
    """``{request digest: reply}`` of every LLM exchange recorded in ``commits``."""
    out: dict[bytes, dict[str, Any]] = {}
    for c in commits:
        if c.op == "agent:run":
            for ex in tx.materialize(c.input).get("llm", []):
                out.setdefault(ex["request"], ex["reply"])
    return out
