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

from . import agent as A
from .errors import OpError
from .jobs import TERMINAL
from .events import (Created, Forked, Messaged, Resumed, Suspended, TaskCancelled, TaskCompleted, TaskFailed,
                     TaskQueued, Terminated, Triggered, Updated)

__all__ = ["exists", "not_terminated", "room_for_work", "create", "fork", "update", "suspend", "resume", "delete",
           "cancel_task", "finish_task", "request", "trigger", "message"]


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


def room_for_work(rec: dict[str, Any], agent_id: str, max_queued: int, staged: int = 0) -> None:
    """Raise ``limit_exceeded`` when the agent already has ``max_queued`` pieces of work waiting
    (``staged``: messages a run has queued for it but not committed yet)."""
    n = A.queued(rec) + staged
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
         config: dict[str, Any] | None, include_timeline: bool, at: Any, overwrite: bool = False) -> Forked:
    """A fork of ``src`` (the source version, commit id ``source``) named ``agent_id``; with
    ``overwrite``, it may replace a ``TERMINATED`` agent of that name (its chain goes on).

    Raises:
        OpError: ``conflict`` (``agent_id`` exists, and is not a ``TERMINATED`` agent ``overwrite``
            may replace), ``invalid_config`` (the merged config).
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


def cancel_task(rec: dict[str, Any] | None, agent_id: str, task_id: str, required: bool,
                reason: str | None = None) -> TaskCancelled | None:
    """Drop a pending task or trigger; None (or ``not_found`` when ``required``) if the agent has none such."""
    rec = exists(rec, agent_id)
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
            options: dict[str, Any] | None = None) -> TaskQueued:
    """Queue a task under its job id (``options``: ``responseSchema``, ``strict``, ``outputPath``,
    only those given)."""
    rec = not_terminated(rec, agent_id, hint="fork it or create it again")
    room_for_work(rec, agent_id, max_queued)
    return TaskQueued(taskId=task_id, input=input, **(options or {}))


def trigger(rec: dict[str, Any] | None, agent_id: str, trigger_id: str, max_queued: int,
            force: bool = True) -> Triggered | None:
    """Ask for a run even without work; with ``force`` false, None when the agent has no work
    (nothing to run for)."""
    rec = not_terminated(rec, agent_id)
    if not force and not A.has_work(rec):
        return None
    room_for_work(rec, agent_id, max_queued)
    return Triggered(triggerId=trigger_id)


def message(rec: dict[str, Any] | None, agent_id: str, text: Any, max_queued: int) -> Messaged:
    """Deliver a message (any JSON value) to the inbox (the sender is the commit's caller)."""
    rec = not_terminated(rec, agent_id)
    room_for_work(rec, agent_id, max_queued)
    return Messaged(agentId=agent_id, message=text)
