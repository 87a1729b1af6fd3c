"""Typed agent events and the one :func:`apply` that turns an event into the next record.

Every commit on an agent's chain records one event: its ``op`` and its
``input`` (with the ids it minted and the config it resolved), plus the
caller and the time. The live handlers build an event, :func:`apply` it to the
agent's current record and commit ``(op, input)``; ``agent:replay`` decodes
the same event from the commit (:func:`decode`) and applies it to the parent
version. There is no second mapping from events to transitions.

The recorded shapes are part of the store's identity (a commit's digest
covers them), so each event's fields are exactly the keys it has always
recorded; :func:`encode` and :func:`decode` round-trip them byte for byte
(``tests/ops/test_golden.py`` pins the digests of a fixed history).

Two events share ``op == "agent:run"``: :class:`RunFailed` (``{error}``) and
:class:`RunCompleted` (the run's work, its LLM exchanges and tool results).

Format 2 (:data:`lattice.codec.FORMAT_VERSION`) added ``agentId`` to the events that accept a
job folded into the agent's commit (:class:`TaskQueued`, :class:`Triggered`; :class:`ChatQueued`
always named it), so the job's reader knows its agent (:mod:`ops.domain.jobs`). Events recorded
without it decode and apply as before (:func:`records_agent`).

Sessions (:mod:`ops.domain.sessions`) added fields to some events: each is UNSET (not
recorded) unless a session is involved, so every event without one records what it did
before sessions existed.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Union

import msgspec
from msgspec import UNSET, Struct, UnsetType

import lattice.commits
from lattice.nodes import Tx, map_get, seq_plain

from . import agent as A
from . import sessions as S
from .answers import TASK_OPTIONS
from .cycle import Outcome, rerun

__all__ = ["Created", "Forked", "Updated", "Suspended", "Resumed", "Terminated", "TaskCancelled", "TaskQueued",
           "TaskCompleted", "TaskFailed", "Triggered", "Messaged", "Imported", "RunFailed", "RunCompleted",
           "ChatQueued", "SessionRenamed", "SessionDeleted", "SessionCompacted", "SessionForked", "Event",
           "EVENT_TYPES", "Context", "decode",
           "encode", "apply", "run_work", "UnknownEvent", "needed_versions", "names_of", "records_agent",
           "omits_parent_base"]


class _Ev(Struct, frozen=True, kw_only=True):
    op: ClassVar[str]


class Created(_Ev):
    """``agent:create``: a new incarnation with the resolved config (overwrite replaces the old one)."""

    op: ClassVar[str] = "agent:create"
    agentId: str
    config: Any = None
    state: Any = None
    overwrite: bool = False


class Forked(_Ev):
    """``agent:fork``: a new agent from ``source`` (the source version's commit id, hex)."""

    op: ClassVar[str] = "agent:fork"
    sourceId: str
    agentId: str
    source: str
    config: Any = None
    includeTimeline: bool = False
    at: Any = None
    sessionId: str | UnsetType = UNSET  # only this session of the source is copied


class Updated(_Ev):
    """``agent:update``: config and/or state merged."""

    op: ClassVar[str] = "agent:update"
    agentId: str
    config: Any = None
    state: Any = None


class Suspended(_Ev):
    op: ClassVar[str] = "agent:suspend"
    agentId: str


class Resumed(_Ev):
    op: ClassVar[str] = "agent:resume"
    agentId: str
    autoWake: bool = True


class Terminated(_Ev):
    """``agent:delete`` without ``remove`` (a removal deletes the ref: no event on the chain)."""

    op: ClassVar[str] = "agent:delete"
    agentId: str
    remove: bool = False


class TaskCancelled(_Ev):
    """``agent:cancelTask``: a pending task or trigger dropped; with ``sessionId``, a chat
    waiting on that session (its message leaves the session's pending). ``reason``: the
    caller's, when given."""

    op: ClassVar[str] = "agent:cancelTask"
    agentId: str
    taskId: str
    sessionId: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class TaskQueued(_Ev):
    """``agent:request``: a task queued under its job id (the caller is the commit's); bound to
    session ``sessionId`` when given (``minted``: the request opened it, titled ``title``); with
    the request's options when given: ``responseSchema``, ``strict``, ``outputPath``. ``agentId``:
    the agent that accepted it (format 2, :func:`records_agent`; UNSET in commits written before)."""

    op: ClassVar[str] = "agent:request"
    taskId: str
    agentId: str | UnsetType = UNSET
    input: Any = None
    sessionId: str | UnsetType = UNSET
    minted: bool | UnsetType = UNSET
    title: str | UnsetType = UNSET
    responseSchema: dict[str, Any] | UnsetType = UNSET
    strict: bool | UnsetType = UNSET
    outputPath: str | UnsetType = UNSET

    def options(self) -> dict[str, Any]:
        """The options the task record keeps (only those given)."""
        return {k: getattr(self, k) for k in TASK_OPTIONS if getattr(self, k) is not UNSET}


class TaskCompleted(_Ev):
    """``agent:completeTask``: a pending task finished by a caller with ``result`` (no run)."""

    op: ClassVar[str] = "agent:completeTask"
    agentId: str
    taskId: str
    result: Any = None


class TaskFailed(_Ev):
    """``agent:failTask``: a pending task failed by a caller with ``error`` (no run)."""

    op: ClassVar[str] = "agent:failTask"
    agentId: str
    taskId: str
    error: str


class Triggered(_Ev):
    """``agent:trigger``: a run asked for under the trigger's job id; ``agentId``: the agent that
    accepted it (format 2, :func:`records_agent`; UNSET in commits written before)."""

    op: ClassVar[str] = "agent:trigger"
    triggerId: str
    agentId: str | UnsetType = UNSET


class Messaged(_Ev):
    """``agent:message``: ``{agentId, message}`` from the caller, or ``{agentId, messages, from}``
    (messages a run sent, or a what-if replay re-delivers); with ``sessionId`` and
    ``messageId`` (its job id), the message goes to that session's pending, not the inbox."""

    op: ClassVar[str] = "agent:message"
    agentId: str
    message: Any = UNSET
    messages: list[Any] | UnsetType = UNSET
    sender: str | UnsetType = msgspec.field(default=UNSET, name="from")
    sessionId: str | UnsetType = UNSET
    messageId: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        if (self.message is UNSET) == (self.messages is UNSET):
            raise ValueError("an agent:message event has `message` or `messages`, not both nor neither")
        if (self.sessionId is UNSET) != (self.messageId is UNSET) or \
                (self.sessionId is not UNSET and self.message is UNSET):
            raise ValueError("a session's agent:message event has `sessionId`, `messageId` and `message`")

    def texts(self) -> list[Any]:
        return list(self.messages) if self.messages is not UNSET else [self.message]


class Imported(_Ev):
    """``agent:import``: the chain was loaded from a bundle under a new id (``fromAgentId`` is
    the id it had); the state is unchanged, the record's ``updated`` moves."""

    op: ClassVar[str] = "agent:import"
    agentId: str
    fromAgentId: str
    bundle: str = ""


class RunFailed(_Ev):
    """``agent:run`` that failed: the error is recorded and the agent suspended. A failed turn
    on session ``sessionId`` drops its chats ``dropped`` (their jobs fail with the error)."""

    op: ClassVar[str] = "agent:run"
    error: dict[str, Any]
    sessionId: str | UnsetType = UNSET
    dropped: list[str] | UnsetType = UNSET


class RunCompleted(_Ev):
    """``agent:run`` that succeeded: all a re-run needs besides the parent version and the time.

    Attributes:
        taskId / task: the task consumed (None: a run for messages or triggers).
        messages: how many inbox messages (from the start of the inbox of ``base``).
        triggers: the trigger job ids consumed.
        start: when the run started (Unix ms).
        base: commit id (hex) of the version the run started from (its context and
            config came from there; events may have landed before its result). None: the
            run's own parent (from format 3 on, :func:`omits_parent_base`, a run whose commit
            goes on top of the version it started from records no base).
        llm: ``[{request: digest, reply}]``. tools: I/O tool results.
        outbox: ``[[agentId, message]]`` sent with ``agent_message``.
        sessionId / pending: a turn on a session: how many of its pending messages (from
            the start of its pending at ``base``) the run took.
    """

    op: ClassVar[str] = "agent:run"
    taskId: str | None = None
    task: Any = None
    messages: int = 0
    triggers: list[str] = []
    start: int = 0
    base: str | None = None
    llm: list[dict[str, Any]] = []
    tools: list[str] = []
    outbox: list[list[str]] = []
    sessionId: str | UnsetType = UNSET
    pending: int | UnsetType = UNSET


class ChatQueued(_Ev):
    """``agent:chat``: a message (any JSON) for the agent's next turn on session ``sessionId``,
    under its job id ``messageId``; ``minted``: the chat opened the session."""

    op: ClassVar[str] = "agent:chat"
    agentId: str
    sessionId: str
    messageId: str
    message: Any = None
    minted: bool = False


class SessionRenamed(_Ev):
    op: ClassVar[str] = "agent:renameSession"
    agentId: str
    sessionId: str
    title: str


class SessionDeleted(_Ev):
    """``agent:deleteSession``: the session leaves the live record (its pending chats' jobs are
    cancelled); earlier versions keep it."""

    op: ClassVar[str] = "agent:deleteSession"
    agentId: str
    sessionId: str


class SessionCompacted(_Ev):
    """``agent:compactSession``: turns older than the last ``keepTurns`` replaced by ``summary``;
    ``before`` (commit id, hex) and ``beforeSeq`` name the version that still holds them."""

    op: ClassVar[str] = "agent:compactSession"
    agentId: str
    sessionId: str
    summary: str
    keepTurns: int = 0
    before: str = ""
    beforeSeq: int = 0


class SessionForked(_Ev):
    """``agent:forkSession``: session ``sessionId`` as it was at version ``source`` (commit id,
    hex; ``at`` as asked) copied into a new session ``newSessionId`` of the same agent."""

    op: ClassVar[str] = "agent:forkSession"
    agentId: str
    sessionId: str
    newSessionId: str
    source: str
    at: Any = None
    title: str = ""


Event = Union[Created, Forked, Updated, Suspended, Resumed, Terminated, TaskCancelled, TaskQueued, TaskCompleted,
              TaskFailed, Triggered, Messaged, Imported, RunFailed, RunCompleted, ChatQueued, SessionRenamed,
              SessionDeleted, SessionCompacted, SessionForked]
#: every event type, each with its own ``op`` except the two ``agent:run`` outcomes
EVENT_TYPES: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]
_BY_OP = {t.op: t for t in EVENT_TYPES if t is not RunFailed and t is not RunCompleted}


def records_agent() -> bool:
    """Whether the events that accept a request or a trigger record their agent's id: from format
    2 on (read at each call from :data:`lattice.commits.FORMAT_VERSION`, the version commits are
    written in, so a store written under format 1's settings records what format 1 did)."""
    return lattice.commits.FORMAT_VERSION >= 2


def omits_parent_base() -> bool:
    """Whether a run whose commit goes on top of the version it started from records no ``base``
    (it is the commit's parent): from format 3 on (read at each call, as :func:`records_agent`)."""
    return lattice.commits.FORMAT_VERSION >= 3


def names_of(op: str, input: Any) -> str | None:
    """The id an agent has from this event on, when the event sets it (creation, fork, import)."""
    if op in (Created.op, Forked.op, Imported.op, "agent:prune") and isinstance(input, dict) \
            and isinstance(input.get("agentId"), str):
        return input["agentId"]
    return None


def needed_versions(op: str, input: dict[str, Any]) -> list[str]:
    """The commit ids (hex) of other versions an event needs to be replayed: a fork's (or a
    session fork's) source version. (A run's ``base`` is an ancestor on its own chain.)
    ``input``: the recorded input."""
    if op in (Forked.op, SessionForked.op) and isinstance(input, dict) and isinstance(input.get("source"), str):
        return [input["source"]]
    return []


class UnknownEvent(Exception):
    """A commit whose ``op`` is not an agent event (or whose input does not fit it)."""


def decode(op: str, input: Any) -> Event:
    """The typed event of a commit ``(op, input)``.

    Raises:
        UnknownEvent: ``op`` is not an agent event, or ``input`` does not have its shape.
    """
    if op == "agent:run":
        t: type = RunFailed if isinstance(input, dict) and "error" in input else RunCompleted
    else:
        t = _BY_OP.get(op)  # type: ignore[assignment]
        if t is None:
            raise UnknownEvent(f"no agent event {op!r}")
    try:
        return msgspec.convert(input, t)
    except msgspec.ValidationError as e:
        raise UnknownEvent(f"{op}: {e}") from None


def encode(event: Event) -> tuple[str, dict[str, Any]]:
    """``(op, input)`` as a commit records ``event`` (digests are kept as bytes)."""
    return event.op, msgspec.to_builtins(event, builtin_types=(bytes,))


class Context(msgspec.Struct, frozen=True):
    """What an event's transition needs besides the record: the commit's time and caller,
    the agent's own id, and a loader of other versions.

    Attributes:
        ts: the commit's time, Unix ms. caller: the commit's caller.
        agent_id: the agent the chain belongs to (messages a run sent itself).
        load: ``commit id (hex) -> opened agent record``: a fork's source, a run's base.
    """

    ts: int
    caller: str
    agent_id: str
    load: Callable[[str], dict[str, Any]]


def run_work(tx: Tx, base: dict[str, Any], event: RunCompleted) -> A.Work:
    """The :class:`~ops.domain.agent.Work` a recorded run consumed, rebuilt from its base record
    (the task's request options, such as its ``responseSchema``, come from the base's task)."""
    task = None
    if event.taskId is not None:
        task = {"input": event.task}
        try:
            queued = tx.plain(map_get(tx, base["tasks"], event.taskId))
        except KeyError:
            queued = {}
        task.update({k: queued[k] for k in TASK_OPTIONS if isinstance(queued, dict) and k in queued})
    if event.sessionId is not UNSET:
        pending = seq_plain(tx, S.get(tx, base, event.sessionId)["pending"], 0, event.pending or 0)
        return A.Work(event.taskId, task, [], list(event.triggers), session=event.sessionId, pending=pending)
    return A.Work(event.taskId, task, seq_plain(tx, base["inbox"], 0, event.messages),
                  list(event.triggers))


def apply(tx: Tx, rec: dict[str, Any] | None, event: Event, ctx: Context,
          outcome: Outcome | None = None) -> dict[str, Any]:
    """The agent record after ``event``, from the record before it (None for a first event).

    Args:
        tx: reads and buffers objects. rec: the opened record before the event.
        event: the event. ctx: its time, caller, agent and version loader.
        outcome: for :class:`RunCompleted`, the outcome a live run computed;
            when None (a replay) it is recomputed from the event's record by
            :func:`ops.domain.cycle.rerun`. The live engine checks in its tests
            that both are equal.

    Raises:
        ReplayError, CycleError: a recorded run cannot be re-run.
        KeyError: the event does not fit the record (a replay reports it as a divergence).
    """
    ts = ctx.ts
    match event:
        case Created(config=config, state=state):
            return A.new_agent(config or {}, state, ts)
        case Forked(source=source, config=config, includeTimeline=include, sessionId=sid):
            return A.fork(ctx.load(source), config, include, ts, tx, None if sid is UNSET else sid)
        case Updated(config=config, state=state):
            return A.update(rec, config, state, ts)
        case Suspended():
            return A.settle(A.suspend(rec, ts))
        case Resumed(autoWake=auto):
            return A.resume(rec, ts, auto)
        case Terminated():
            return A.terminate(rec, ts, tx)
        case TaskCancelled(taskId=tid):
            if event.sessionId is not UNSET:
                return A.settle(S.drop_pending(tx, rec, event.sessionId, [tid], ts))
            if A.has_task(rec, tid):
                rec = A.cancel_task(tx, rec, tid, ts)
            if tid in rec["triggers"]:
                rec = A.cancel_trigger(rec, tid, ts)
            return A.settle(rec)
        case TaskQueued(taskId=tid, input=input, sessionId=sid):
            if sid is UNSET:
                return A.settle(A.enqueue_task(tx, rec, tid, input, ctx.caller, ts, options=event.options()))
            if event.minted is True:
                rec = S.open_session(tx, rec, sid, ctx.caller, ts, event.title or "")
            return A.settle(A.enqueue_task(tx, rec, tid, input, ctx.caller, ts, sid, options=event.options()))
        case TaskCompleted(taskId=tid):
            return A.settle(A.cancel_task(tx, rec, tid, ts))
        case TaskFailed(taskId=tid):
            return A.settle(A.cancel_task(tx, rec, tid, ts))
        case Triggered(triggerId=tid):
            return A.settle(A.add_trigger(rec, tid, ts))
        case Imported():
            return {**rec, "updated": ts}
        case Messaged():
            if event.sessionId is not UNSET:  # to a session's pending, not the inbox
                entry = {"id": event.messageId, "op": event.op, "message": event.message, "caller": ctx.caller,
                         "ts": ts}
                return A.settle(S.enqueue(tx, rec, event.sessionId, entry, ts))
            sender = ctx.caller if event.sender is UNSET else event.sender
            for text in event.texts():
                rec = A.add_message(tx, rec, text, sender, ts)
            return A.settle(rec)
        case RunFailed(error=error, sessionId=sid):
            rec = A.fail_cycle(rec, error, ts)
            if sid is not UNSET:
                rec = S.drop_pending(tx, rec, sid, list(event.dropped or []), ts)
            return A.settle(rec)
        case RunCompleted():
            base = ctx.load(event.base) if event.base else rec
            work = run_work(tx, base, event)
            out = outcome if outcome is not None else rerun(tx, base, work, event.llm, event.tools)
            rec, _, _ = A.finish_run(tx, rec, work, new_history=out.new_history, result=out.result,
                                     task_status=out.task_status, task_output=out.task_output, start=event.start,
                                     ts=ts)
            rec = A.settle(rec)
            me = f"agent:{ctx.agent_id}"
            for target, text in event.outbox:
                if target == ctx.agent_id:  # a message to itself lands in the same commit
                    rec = A.settle(A.add_message(tx, rec, text, me, ts))
            return rec
        case ChatQueued(sessionId=sid):
            if event.minted:
                rec = S.open_session(tx, rec, sid, ctx.caller, ts)
            entry = {"id": event.messageId, "op": event.op, "message": event.message, "caller": ctx.caller, "ts": ts}
            return A.settle(S.enqueue(tx, rec, sid, entry, ts))
        case SessionRenamed(sessionId=sid, title=title):
            return S.rename(tx, rec, sid, title, ts)
        case SessionDeleted(sessionId=sid):
            return A.settle(S.delete(tx, rec, sid, ts))
        case SessionCompacted(sessionId=sid):
            return S.compact(tx, rec, sid, event.summary, event.keepTurns, event.before, event.beforeSeq, ts)
        case SessionForked(sessionId=sid, source=source):
            session = S.get(tx, ctx.load(source), sid)
            if session is None:
                raise KeyError(sid)
            return S.copy_session(tx, rec, session, event.newSessionId, ctx.caller, event.title, ts)
    raise UnknownEvent(f"no transition for {type(event).__name__}")  # pragma: no cover - the union is closed
