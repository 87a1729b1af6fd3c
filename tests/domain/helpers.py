"""Shared builders of the domain tests: agent records in every status, built with the transitions.

Every record here is made by :func:`ops.domain.agent.new_agent` and the
transition functions of :mod:`ops.domain.agent` (never written by hand), over a
:class:`lattice.nodes.Tx` on a :class:`lattice.memory.MemoryStore`, then stored
and opened again (:func:`reopen`) the way the engine reads a head, so large
collections arrive as lazy handles.

A builder is ``(tx) -> record``; tables name them so ids read well.
"""

from __future__ import annotations

from typing import Any, Callable

import msgspec

from lattice.codec import encode
from lattice.digest import digest
from lattice.memory import MemoryStore
from lattice.nodes import Tx
from ops.domain import agent as A
from ops.domain import sessions as SS
from ops.domain.cycle import Cycle, Outcome
from ops.domain.events import Context
from ops.domain.jobs import new_job_id
from ops.domain.models import LlmReply, ToolCall

__all__ = ["T0", "TS", "CALLER", "AID", "new_tx", "reopen", "tid", "ctx", "Builder", "BUILDERS", "missing",
           "sleeping", "running", "running_trigger", "running_message", "suspended", "suspended_with_work",
           "failed", "asleep_with_work", "terminated", "terminated_with_inbox", "with_tasks", "busy", "big", "call", "say", "drive", "SID", "chat_entry",
           "in_session", "chatting", "session_suspended"]

T0 = 1_712_930_400_000  # record creation time (Unix ms)
TS = T0 + 60_000  # the time of the event or command under test
CALLER = "alice"
AID = "A"
Builder = Callable[[Tx], "dict[str, Any] | None"]


def new_tx() -> Tx:
    """A transaction over a fresh in-memory store."""
    return Tx(MemoryStore())


def reopen(tx: Tx, rec: dict[str, Any]) -> dict[str, Any]:
    """``rec`` stored as a root and opened again, as the engine reads an agent's head."""
    return A.opened(tx, tx.load_root(tx.put_root(rec)))


def tid(n: int) -> str:
    """The deterministic job id number ``n`` (ids sort by ``n``)."""
    return new_job_id(T0 + n, bytes(10))


def ctx(ts: int = TS, caller: str = CALLER, agent_id: str = AID,
        load: Callable[[str], dict[str, Any]] | None = None) -> Context:
    """An event context; ``load`` fails loudly unless given."""
    def no_load(h: str) -> dict[str, Any]:
        raise AssertionError(f"unexpected load of {h!r}")
    return Context(ts=ts, caller=caller, agent_id=agent_id, load=load or no_load)


def _base(config: dict[str, Any] | None = None) -> dict[str, Any]:
    return A.new_agent(config if config is not None else {}, {"note": "hi"}, T0)


def missing(tx: Tx) -> None:
    """No agent."""
    return None


def sleeping(tx: Tx) -> dict[str, Any]:
    """``SLEEPING``, no work, no error."""
    return reopen(tx, _base())


def running(tx: Tx) -> dict[str, Any]:
    """``RUNNING`` with one task (``tid(1)``)."""
    return reopen(tx, A.settle(A.enqueue_task(tx, _base(), tid(1), {"q": 1}, CALLER, T0 + 1)))


def running_trigger(tx: Tx) -> dict[str, Any]:
    """``RUNNING`` with one trigger (``tid(2)``) and nothing else."""
    return reopen(tx, A.settle(A.add_trigger(_base(), tid(2), T0 + 2)))


def running_message(tx: Tx) -> dict[str, Any]:
    """``RUNNING`` with one inbox message and nothing else."""
    return reopen(tx, A.settle(A.add_message(tx, _base(), "ping", "bob", T0 + 3)))


def suspended(tx: Tx) -> dict[str, Any]:
    """``SUSPENDED`` by the caller: no work, no error."""
    return reopen(tx, A.suspend(_base(), T0 + 1))


def suspended_with_work(tx: Tx) -> dict[str, Any]:
    """``SUSPENDED`` with a task (``tid(1)``), a trigger (``tid(2)``) and a message."""
    rec = A.suspend(_base(), T0 + 1)
    rec = A.enqueue_task(tx, rec, tid(1), "do it", CALLER, T0 + 2)
    rec = A.add_trigger(rec, tid(2), T0 + 3)
    rec = A.add_message(tx, rec, "ping", "bob", T0 + 4)
    return reopen(tx, A.settle(rec))


def failed(tx: Tx) -> dict[str, Any]:
    """``SUSPENDED`` by a failed run of task ``tid(1)``: error recorded, the task kept."""
    rec = A.settle(A.enqueue_task(tx, _base(), tid(1), "do it", CALLER, T0 + 1))
    return reopen(tx, A.settle(A.fail_cycle(rec, {"code": "llm_error", "message": "boom"}, T0 + 2)))


def asleep_with_work(tx: Tx) -> dict[str, Any]:
    """``SLEEPING`` with a task: resumed with ``autoWake: false`` (the one way to sleep with work)."""
    rec = A.suspend(_base(), T0 + 1)
    rec = A.settle(A.enqueue_task(tx, rec, tid(1), "later", CALLER, T0 + 2))
    return reopen(tx, A.resume(rec, T0 + 3, auto_wake=False))


def terminated(tx: Tx) -> dict[str, Any]:
    """``TERMINATED`` (it had a task and a trigger, both dropped)."""
    rec = A.settle(A.add_trigger(A.enqueue_task(tx, _base(), tid(1), "x", CALLER, T0 + 1), tid(2), T0 + 2))
    return reopen(tx, A.terminate(rec, T0 + 3))


def terminated_with_inbox(tx: Tx) -> dict[str, Any]:
    """``TERMINATED`` with a message still in its inbox (terminate keeps the inbox)."""
    rec = A.settle(A.add_message(tx, _base(), "late", "bob", T0 + 1))
    return reopen(tx, A.terminate(rec, T0 + 2))


def with_tasks(n: int, status: str = A.RUNNING) -> Builder:
    """A builder of an agent holding ``n`` tasks ``tid(1..n)`` (queued newest first) in ``status``.

    ``TERMINATED`` drops the tasks (as :func:`ops.domain.agent.terminate` does).
    """
    def build(tx: Tx) -> dict[str, Any]:
        rec = _base()
        if status in (A.SUSPENDED, A.SLEEPING):
            rec = A.suspend(rec, T0)
        for i in range(n, 0, -1):  # arrival order differs from id order: the map sorts by id
            rec = A.settle(A.enqueue_task(tx, rec, tid(i), {"n": i}, CALLER, T0 + i))
        if status == A.SLEEPING:
            rec = A.resume(rec, T0 + n + 1, auto_wake=False)
        elif status == A.TERMINATED:
            rec = A.terminate(rec, T0 + n + 1)
        rec = reopen(tx, rec)
        assert rec["status"] == (A.SLEEPING if status == A.RUNNING and n == 0 else status)
        return rec
    build.__name__ = f"{status.lower()}_{n}_tasks"
    return build


def busy(tasks: int = 0, messages: int = 0, triggers: int = 0, status: str = A.RUNNING) -> Builder:
    """A builder of an agent with that many tasks, messages and triggers waiting."""
    def build(tx: Tx) -> dict[str, Any]:
        rec = A.suspend(_base(), T0) if status == A.SUSPENDED else _base()
        for i in range(tasks):
            rec = A.enqueue_task(tx, rec, tid(i + 1), i, CALLER, T0 + i)
        for i in range(messages):
            rec = A.add_message(tx, rec, f"m{i}", "bob", T0 + i)
        for i in range(triggers):
            rec = A.add_trigger(rec, tid(1000 + i), T0 + i)
        return reopen(tx, A.settle(rec))
    build.__name__ = f"busy_{tasks}t_{messages}m_{triggers}g_{status.lower()}"
    return build


#: more than 32 tasks and messages: stored as a HAMT and a vector, opened as lazy handles
big = busy(tasks=40, messages=40, status=A.SUSPENDED)

#: one builder per status (and the interesting variants of each), by name
BUILDERS: dict[str, Builder] = {f.__name__: f for f in (
    missing, sleeping, asleep_with_work, running, running_trigger, running_message, suspended,
    suspended_with_work, failed, terminated, terminated_with_inbox)}


# -- sessions ----------------------------------------------------------------------------------

#: the session of the session builders (session ids have the shape of job ids)
SID = tid(100)


def chat_entry(n: int, message: Any = "hi", op: str = "agent:chat", caller: str = CALLER) -> dict[str, Any]:
    """Pending entry number ``n`` (its id is ``tid(n)``)."""
    return {"id": tid(n), "op": op, "message": message, "caller": caller, "ts": T0 + n}


def _one_turn(tx: Tx) -> dict[str, Any]:
    rec = SS.open_session(tx, _base(), SID, CALLER, T0 + 1)
    rec = A.settle(SS.enqueue(tx, rec, SID, chat_entry(101, "hello"), T0 + 2))
    turn = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    work = A.Work(None, None, [], [], session=SID, pending=[chat_entry(101, "hello")])
    entry = A.timeline_entry(start=T0 + 3, end=T0 + 4, op="op", work=work, result="hi there", task_status=None,
                             task_output=None)
    return A.complete_cycle(tx, rec, work, new_history=turn, entry=entry, ts=T0 + 4)


def in_session(tx: Tx) -> dict[str, Any]:
    """``SLEEPING`` with session ``SID``: one turn (two messages, one timeline entry), nothing pending."""
    return reopen(tx, _one_turn(tx))


def chatting(tx: Tx) -> dict[str, Any]:
    """``RUNNING`` with session ``SID`` (one turn) and a chat ``tid(102)`` pending on it."""
    return reopen(tx, A.settle(SS.enqueue(tx, _one_turn(tx), SID, chat_entry(102, "again"), T0 + 5)))


def session_suspended(tx: Tx) -> dict[str, Any]:
    """``SUSPENDED`` with session ``SID`` (one turn), a chat ``tid(102)`` and a message ``tid(103)`` pending."""
    rec = A.suspend(_one_turn(tx), T0 + 5)
    rec = SS.enqueue(tx, rec, SID, chat_entry(102, "again"), T0 + 6)
    return reopen(tx, A.settle(SS.enqueue(tx, rec, SID, chat_entry(103, "fyi", "agent:message"), T0 + 7)))


# -- driving a Cycle by hand, as the engine does live ------------------------------------------

def call(name: str, id: str = "c1", invalid: str | None = None, **arguments: Any) -> ToolCall:
    """A tool call the model asks for."""
    return ToolCall(id=id, name=name, arguments=arguments, invalid=invalid)


def say(content: str | None = None, *calls: ToolCall) -> LlmReply:
    """A model reply: text and/or tool calls."""
    return LlmReply(content=content, toolCalls=list(calls))


def drive(cycle: Cycle, replies: list[LlmReply], io: Callable[[ToolCall], str] = lambda c: "ok") -> Outcome:
    """Run ``cycle`` to its end with scripted ``replies``; ``io`` answers the I/O tools.

    Records the exchanges as the live engine does: ``llm`` gets ``{request: digest
    of the canonical request, reply}``, ``tools`` the I/O results, ``outbox`` the
    ``agent_message`` calls. Raises ``StopIteration`` when the script runs out.
    """
    out = Outcome(cycle.new, llm=[], tools=[], ws_edits=[], outbox=[])
    script = iter(replies)
    while (request := cycle.request()) is not None:
        reply = next(script)
        out.llm.append({"request": digest(encode(request)), "reply": msgspec.to_builtins(reply)})
        for c in cycle.reply(reply.content, reply.toolCalls):
            text = cycle.pure(c)
            if text is None:
                if c.name == "agent_message":
                    out.outbox.append((c.arguments["agentId"], c.arguments["message"]))
                text = io(c)
                out.tools.append(text)
            cycle.tool_result(c, text)
    return out.finish(cycle)
