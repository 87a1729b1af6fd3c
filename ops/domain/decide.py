"""Commands: decide, from an agent's current record and a request, which event happens.

Each function here is pure: it takes the record (opened, or None when the
agent does not exist) and the request's values, and returns the event to
:func:`ops.domain.events.apply` and commit, None when the request changes
nothing, or raises :class:`~ops.domain.errors.OpError` with a stable code.
The engine's handlers read the record, call one of these, apply and commit.

Source of every request value: the caller (untrusted; already validated
against the operation's input schema).
"""

from __future__ import annotations

from typing import Any

import msgspec

from lattice.nodes import Tx, seq_plain

from . import agent as A
from . import sessions as S
from .errors import OpError
from .events import (ChatQueued, Created, Forked, Messaged, Resumed, SessionCompacted, SessionDeleted, SessionForked,
                     SessionRenamed, Suspended, TaskCancelled, TaskCompleted, TaskFailed, TaskQueued, Terminated,
                     Triggered, Updated, records_agent)
from .jobs import TERMINAL

__all__ = ["exists", "not_terminated", "room_for_work", "create", "fork", "update", "suspend", "resume", "delete",
           "cancel_task", "finish_task", "request", "trigger", "message", "session_of", "chat", "rename_session",
           "delete_session", "compact_session", "fork_session"]


def exists(rec: dict[str, Any] | None, agent_id: str, path: str = "$.input.agentId") -> dict[str, Any]:
    """``rec``, or ``not_found`` when the agent does not exist."""
    if rec is None:
        raise OpError("not_found", f"no agent {agent_id!r}", path=path, hint="agent:list shows your agents")
    return rec


def not_terminated(rec: dict[str, Any] | None, agent_id: str, hint: str | None = None) -> dict[str, Any]:
    """``rec``, or ``not_found`` (no agent) / ``illegal_state`` (``TERMINATED``)."""
    rec = exists(rec, agent_id)
    if rec["status"] == A.TERMINATED:
        raise OpError("illegal_state", f"agent {agent_id!r} is TERMINATED", hint=hint)
    return rec


def room_for_work(rec: dict[str, Any], agent_id: str, max_queued: int, staged: int = 0, tx: Tx | None = None) -> None:
    """Raise ``limit_exceeded`` when the agent already has ``max_queued`` pieces of work waiting
    (``staged``: messages a run has queued for it but not committed yet; ``tx`` reads sessions)."""
    n = A.queued(rec, tx) + staged
    if n >= max_queued:
        raise OpError("limit_exceeded", f"agent {agent_id!r} has {n} tasks, messages and triggers waiting, "
                                        f"the limit is {max_queued}",
                      hint="wait for it to catch up (agent:info shows taskCount), or resume it if suspended")


def _merged_config(config: dict[str, Any]) -> None:
    try:
        A.check_config(config)
    except msgspec.ValidationError as e:
        raise OpError("invalid_config", f"merged config: {e}", path="$.input.config") from None


def create(old: dict[str, Any] | None, agent_id: str, config: dict[str, Any], state: Any,
           overwrite: bool) -> Created | None:
    """A new incarnation; None when the agent exists and ``overwrite`` is not set."""
    if old is not None and not overwrite:
        return None
    return Created(agentId=agent_id, config=config, state=state, overwrite=overwrite)


def fork(src: dict[str, Any], target: dict[str, Any] | None, source_id: str, agent_id: str, source: str,
         config: dict[str, Any] | None, include_timeline: bool, at: Any, tx: Tx | None = None,
         session_id: str | None = None, overwrite: bool = False) -> Forked:
    """A fork of ``src`` (the source version, commit id ``source``) named ``agent_id``; with
    ``session_id``, the fork gets only that session of the source (``tx`` reads it); with
    ``overwrite``, it may replace a ``TERMINATED`` agent of that name (its chain goes on).

    Raises:
        OpError: ``conflict`` (``agent_id`` exists, and is not a ``TERMINATED`` agent ``overwrite``
            may replace), ``invalid_config`` (the merged config), ``not_found`` (the source
            version has no session ``session_id``).
    """
    if target is not None and not (overwrite and target["status"] == A.TERMINATED):
        if overwrite:
            raise OpError("conflict", f"agent {agent_id!r} is {target['status']}: overwrite replaces only a "
                                      f"TERMINATED agent", path="$.input.agentId",
                          hint="agent:delete it first, or choose another agentId")
        raise OpError("conflict", f"agent {agent_id!r} already exists", path="$.input.agentId",
                      hint="choose another agentId, agent:delete it with remove: true, or (once TERMINATED) "
                           "fork with overwrite: true")
    if config:
        _merged_config({**src["state"]["config"], **config})
    if session_id is not None:
        session_of(tx, src, source_id, session_id)
        return Forked(sourceId=source_id, agentId=agent_id, source=source, config=config,
                      includeTimeline=include_timeline, at=at, sessionId=session_id)
    return Forked(sourceId=source_id, agentId=agent_id, source=source, config=config,
                  includeTimeline=include_timeline, at=at)


def update(rec: dict[str, Any] | None, agent_id: str, config: dict[str, Any] | None, state: Any) -> Updated:
    """Merge ``config`` and ``state``; ``illegal_state`` on a terminated agent, ``invalid_config``
    when the merged config is invalid."""
    rec = not_terminated(rec, agent_id)
    if config is not None:
        _merged_config({**rec["state"]["config"], **config})
    return Updated(agentId=agent_id, config=config, state=state)


def suspend(rec: dict[str, Any] | None, agent_id: str) -> Suspended | None:
    """Suspend; None when already ``SUSPENDED``."""
    rec = not_terminated(rec, agent_id)
    return None if rec["status"] == A.SUSPENDED else Suspended(agentId=agent_id)


def resume(rec: dict[str, Any] | None, agent_id: str, auto_wake: bool) -> Resumed | None:
    """Resume; None when there is nothing to do (running, or asleep with no error and nothing to wake for)."""
    rec = not_terminated(rec, agent_id, hint="fork it to continue")
    if rec["status"] == A.RUNNING or (rec["status"] == A.SLEEPING and rec["error"] is None
                                       and not (auto_wake and A.has_work(rec))):
        return None
    return Resumed(agentId=agent_id, autoWake=auto_wake)


def delete(rec: dict[str, Any] | None, agent_id: str) -> Terminated:
    """Terminate (the caller removes the ref instead when asked to)."""
    exists(rec, agent_id)
    return Terminated(agentId=agent_id, remove=False)


def cancel_task(rec: dict[str, Any] | None, agent_id: str, task_id: str, required: bool, tx: Tx | None = None,
                session_id: str | None = None, reason: str | None = None) -> TaskCancelled | None:
    """Drop a pending task or trigger, or with ``session_id`` a chat waiting on that session (``tx``
    reads it); None (or ``not_found`` when ``required``) if the agent has none such. ``reason``:
    the caller's, recorded with the event when given."""
    rec = exists(rec, agent_id)
    if session_id is not None:
        session = S.get(tx, rec, session_id)
        if session is not None and any(e["id"] == task_id for e in seq_plain(tx, session["pending"])):
            return TaskCancelled(agentId=agent_id, taskId=task_id, sessionId=session_id,
                                 **({} if reason is None else {"reason": reason}))
    if not A.has_task(rec, task_id) and task_id not in rec["triggers"]:
        if required:
            raise OpError("not_found", f"agent {agent_id!r} has no pending task {task_id}", path="$.input.taskId")
        return None
    if reason is None:
        return TaskCancelled(agentId=agent_id, taskId=task_id)
    return TaskCancelled(agentId=agent_id, taskId=task_id, reason=reason)


def finish_task(rec: dict[str, Any] | None, agent_id: str, task_id: str, job: dict[str, Any] | None, *,
                result: Any = None, error: str | None = None) -> TaskCompleted | TaskFailed:
    """Finish a pending task from outside a run: with ``result`` (``agent:completeTask``) or with
    ``error`` (``agent:failTask``). ``job``: the task's job record (None if unknown).

    Raises:
        OpError: ``not_found`` (no agent; no such task of this agent), ``illegal_state`` (the
            task is already finished: its job is terminal).
    """
    rec = exists(rec, agent_id)
    if not A.has_task(rec, task_id):
        if job is not None and job.get("agentId") == agent_id and job["status"] in TERMINAL:
            raise OpError("illegal_state", f"task {task_id} of agent {agent_id!r} is already {job['status']}",
                          path="$.input.taskId", hint="a finished task cannot be finished again")
        raise OpError("not_found", f"agent {agent_id!r} has no pending task {task_id}", path="$.input.taskId",
                      hint=f"covia:list g/{agent_id}/tasks shows its pending tasks")
    if error is not None:
        return TaskFailed(agentId=agent_id, taskId=task_id, error=error)
    return TaskCompleted(agentId=agent_id, taskId=task_id, result=result)


def request(rec: dict[str, Any] | None, agent_id: str, task_id: str, input: Any, max_queued: int,
            tx: Tx | None = None, session_id: str | None = None, new_session: str | None = None,
            options: dict[str, Any] | None = None) -> TaskQueued:
    """Queue a task under its job id: bound to the known session ``session_id``, or to a new
    session of that id titled ``new_session`` (a str) when given, else to none. ``options``: the
    request's ``responseSchema``, ``strict``, ``outputPath`` (only those given).

    Raises:
        OpError: ``not_found`` (no agent; an unknown ``session_id``), ``illegal_state``
            (terminated), ``limit_exceeded``.
    """
    rec = not_terminated(rec, agent_id, hint="fork it or create it again")
    room_for_work(rec, agent_id, max_queued, tx=tx)
    opts = {**(options or {}), **({"agentId": agent_id} if records_agent() else {})}
    if session_id is None:
        return TaskQueued(taskId=task_id, input=input, **opts)
    if new_session is not None:
        return TaskQueued(taskId=task_id, input=input, sessionId=session_id, minted=True, title=new_session, **opts)
    session_of(tx, rec, agent_id, session_id)
    return TaskQueued(taskId=task_id, input=input, sessionId=session_id, **opts)


def trigger(rec: dict[str, Any] | None, agent_id: str, trigger_id: str, max_queued: int, tx: Tx | None = None,
            session_id: str | None = None, force: bool = True) -> Triggered | None:
    """Ask for a run even without work; a ``session_id`` must name a known session (the trigger
    echoes it; it creates none). With ``force`` false, None when the agent has no work (nothing
    to run for). Raises ``not_found`` for an unknown session."""
    rec = not_terminated(rec, agent_id)
    if session_id is not None:
        session_of(tx, rec, agent_id, session_id)
    if not force and not A.has_work(rec):
        return None
    room_for_work(rec, agent_id, max_queued, tx=tx)
    return Triggered(triggerId=trigger_id, **({"agentId": agent_id} if records_agent() else {}))


def message(rec: dict[str, Any] | None, agent_id: str, text: Any, max_queued: int, tx: Tx | None = None,
            session_id: str | None = None, message_id: str | None = None) -> Messaged:
    """Deliver a message (any JSON value) to the inbox (the sender is the commit's caller), or with
    ``session_id`` to that known session's pending, under ``message_id`` (its job id).
    Raises ``not_found`` for an unknown session."""
    rec = not_terminated(rec, agent_id)
    if session_id is not None:
        session_of(tx, rec, agent_id, session_id)
    room_for_work(rec, agent_id, max_queued, tx=tx)
    if session_id is not None:
        return Messaged(agentId=agent_id, message=text, sessionId=session_id, messageId=message_id)
    return Messaged(agentId=agent_id, message=text)


# -- sessions -------------------------------------------------------------------------

def session_of(tx: Tx, rec: dict[str, Any], agent_id: str, sid: str, path: str = "$.input.sessionId") -> dict[str, Any]:
    """The opened session ``sid`` of the agent record, or ``not_found``."""
    session = S.get(tx, rec, sid)
    if session is None:
        raise OpError("not_found", f"agent {agent_id!r} has no session {sid}", path=path,
                      hint="omit sessionId to start a new session; agent:sessions lists the agent's sessions")
    return session


def chat(tx: Tx, rec: dict[str, Any] | None, agent_id: str, session_id: str | None, new_id: str, message_id: str,
         message: Any, max_queued: int) -> ChatQueued:
    """A chat message for the agent's next turn on the known session ``session_id``, or on a new
    session ``new_id`` when ``session_id`` is None.

    Raises:
        OpError: ``not_found`` (no agent, an unknown session), ``illegal_state`` (terminated),
            ``limit_exceeded``.
    """
    rec = not_terminated(rec, agent_id, hint="fork it to continue its sessions")
    if session_id is not None:
        session_of(tx, rec, agent_id, session_id)
    room_for_work(rec, agent_id, max_queued, tx=tx)
    return ChatQueued(agentId=agent_id, sessionId=session_id or new_id, messageId=message_id, message=message,
                      minted=session_id is None)


def rename_session(tx: Tx, rec: dict[str, Any] | None, agent_id: str, sid: str, title: str) -> SessionRenamed | None:
    """Retitle a session; None when the title is already that."""
    rec = not_terminated(rec, agent_id)
    session = session_of(tx, rec, agent_id, sid)
    return None if session["meta"].get("title") == title else SessionRenamed(agentId=agent_id, sessionId=sid,
                                                                               title=title)


def delete_session(tx: Tx, rec: dict[str, Any] | None, agent_id: str, sid: str) -> SessionDeleted:
    """Remove a session from the live record (``not_found`` when there is none)."""
    rec = not_terminated(rec, agent_id)
    session_of(tx, rec, agent_id, sid)
    return SessionDeleted(agentId=agent_id, sessionId=sid)


def compact_session(tx: Tx, rec: dict[str, Any] | None, agent_id: str, sid: str, summary: str, keep_turns: int,
                    before: str, before_seq: int) -> SessionCompacted | None:
    """Replace the session's turns older than its last ``keep_turns`` with ``summary``; None when
    it has no such turn. ``before``/``before_seq``: the current version (it keeps them)."""
    rec = not_terminated(rec, agent_id)
    meta = session_of(tx, rec, agent_id, sid)["meta"]
    if S.live_turns(meta) <= keep_turns:
        return None
    return SessionCompacted(agentId=agent_id, sessionId=sid, summary=summary, keepTurns=keep_turns, before=before,
                            beforeSeq=before_seq)


def fork_session(tx: Tx, src: dict[str, Any], rec: dict[str, Any] | None, agent_id: str, sid: str, new_id: str,
                 source: str, at: Any, title: str | None) -> SessionForked:
    """Copy session ``sid`` of ``src`` (the agent at version ``source``) into a new session
    ``new_id`` of the agent (``rec``, its head), titled ``title`` (default: the source's title).
    ``not_found`` when that version has no such session."""
    rec = not_terminated(rec, agent_id)
    session = session_of(tx, src, agent_id, sid)
    title = session["meta"].get("title", "") if title is None else title
    return SessionForked(agentId=agent_id, sessionId=sid, newSessionId=new_id, source=source, at=at, title=title)
