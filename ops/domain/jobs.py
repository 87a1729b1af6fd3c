"""Jobs: ids, statuses and the job record.

A job id is 16 bytes, time-ordered: 6 bytes of Unix milliseconds then 10
random bytes, written ``0x`` + 32 lowercase hex digits, so ids sort by
creation time (the agent's ``tasks`` map therefore iterates FIFO).

The job record (stored at ``j/<caller>/<jobId>`` for jobs that changed state)::

    {jobId, operation, status, input, output, error, created, updated, agentId?, sessionId?}

*Folded jobs.* A job of :data:`FOLDED_OPS` (a task, trigger or chat: its state moves only in
the commits of its agent) stores no record when it is accepted: its ref points at the agent
commit that accepted it, whose event names the job, and :func:`folded_job` derives the record
from that commit. Its first change (``STARTED``/``PENDING``, finished, cancelled, failed)
stores a record on a chain of its own that starts there (no parent: a job chain never holds an
agent's versions alive), with one exception from format 3 on: a task (``agent:request``) that
its run completes, when the run commits on top of the very commit that accepted it (an idle
agent's request, the common case) and that commit names the agent (format 2 on), stores nothing
either. Its ref moves to the run's commit,
whose event names the task and whose timeline entry holds its output, and
:func:`finished_job` derives the record from that commit and its parent. What drops an agent's
versions (``agent:prune``, ``agent:delete {remove}``) first gives such jobs their own record.
:func:`read_job` reads every form.

Surfaces show it as the Covia venue does (:func:`public_job`): ``id``/``op`` beside
``jobId``/``operation``, ``error`` the message and ``errorCode`` the code.

Statuses: ``PENDING`` (accepted, waiting), ``STARTED`` (a run is working on it:
the oldest task of a ``RUNNING`` agent), then one terminal status:
``COMPLETE``, ``FAILED``, ``CANCELLED``. ``TIMEOUT`` is part of the contract
but reserved: no operation produces it yet (a ``wait`` that runs out returns
the job as it is, still ``PENDING``/``STARTED``, with HTTP 202).
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

import lattice.commits
from lattice.commits import Commit, read_commit
from lattice.nodes import Tx, map_get, map_keys, map_len, seq_get, seq_len
from lattice.paths import open_level

from .answers import request_output
from .errors import error_fields

__all__ = ["PENDING", "STARTED", "COMPLETE", "FAILED", "CANCELLED", "TIMEOUT", "STATUSES", "TERMINAL",
           "new_job_id", "JobIds", "normalize_job_id", "job_record", "public_job", "finish", "cancel", "head_task",
           "retarget", "work_job_ids", "trigger_output", "PUBLIC_FIELDS", "FOLDED_OPS", "is_job_record",
           "folded_job", "finished_job", "folds_finished", "run_task_id", "read_job", "holds_work", "job_time"]

PENDING, STARTED, COMPLETE, FAILED, CANCELLED, TIMEOUT = (
    "PENDING", "STARTED", "COMPLETE", "FAILED", "CANCELLED", "TIMEOUT")
STATUSES = (PENDING, STARTED, COMPLETE, FAILED, CANCELLED, TIMEOUT)
TERMINAL = frozenset((COMPLETE, FAILED, CANCELLED, TIMEOUT))

_ID = re.compile(r"(0x)?[0-9a-fA-F]{32}")


def new_job_id(ms: int, rand: bytes | None = None) -> str:
    """Return a new job id for time ``ms`` (Unix milliseconds).

    >>> new_job_id(1712930400000, bytes(10))
    '0x018ed29ba70000000000000000000000'
    """
    r = os.urandom(10) if rand is None else rand
    return "0x" + (ms & ((1 << 48) - 1)).to_bytes(6, "big").hex() + r.hex()


class JobIds:
    """Monotonic job ids: strictly increasing within a process even inside one millisecond.

    A later id in the same (or an earlier, if the clock stepped back) millisecond
    reuses the last timestamp and increments the random part, so agent tasks
    keyed by job id stay in arrival order.

    Args:
        rand: returns ``n`` random bytes (default :func:`os.urandom`; tests pass a
            deterministic source).
    """

    def __init__(self, rand: Callable[[int], bytes] | None = None) -> None:
        self._last = 0
        self._rand = rand

    def __call__(self, ms: int) -> str:
        value = int(new_job_id(ms, None if self._rand is None else self._rand(10)), 16)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return "0x" + value.to_bytes(16, "big").hex()


def normalize_job_id(text: str) -> str | None:
    """Return the canonical form (``0x`` + lowercase hex) of a job id, or None if malformed."""
    if not isinstance(text, str) or not _ID.fullmatch(text):
        return None
    return "0x" + text[-32:].lower()


def job_record(job_id: str, operation: str, ts: int, *, input: Any = None, status: str = PENDING,
               agent_id: str | None = None) -> dict[str, Any]:
    """A new job record."""
    rec = {"jobId": job_id, "operation": operation, "status": status, "input": input, "output": None,
           "error": None, "created": ts, "updated": ts}
    if agent_id is not None:
        rec["agentId"] = agent_id
    return rec


def finish(rec: dict[str, Any], status: str, ts: int, *, output: Any = None, error: dict | None = None) -> dict[str, Any]:
    """Return ``rec`` moved to ``status`` (a terminal record is returned unchanged)."""
    if rec["status"] in TERMINAL:
        return rec
    return {**rec, "status": status, "output": output, "error": error, "updated": ts}


#: the fields of a job on every surface: the Covia venue's record (``id``, ``op``, ``error`` the message,
#: ``errorCode``) beside the seed's names of the same values (``jobId``, ``operation``)
PUBLIC_FIELDS = ("id", "jobId", "op", "operation", "status", "input", "output", "error", "errorCode", "created",
                 "updated")


def _output(rec: dict[str, Any]) -> Any:
    """A job's output as shown: a completed ``agent:request``'s answer as the venue's request result."""
    if rec["operation"] != "agent:request" or rec["status"] != COMPLETE:
        return rec.get("output")
    agent_id = rec.get("agentId") or (rec.get("input") or {}).get("agentId")
    return request_output(rec["jobId"], agent_id, rec.get("output"), rec.get("sessionId"))


def public_job(rec: dict[str, Any]) -> dict[str, Any]:
    """The job as every surface shows it (REST, event streams, MCP): :data:`PUBLIC_FIELDS`, then
    extras where they apply: ``path`` and ``hint`` of a recorded error, ``agentId`` of a task or
    trigger job, and ``agent`` (``{agentId, status, error}``) on a task or trigger job that a wait
    returned unfinished because its agent cannot progress (suspended with an error, or terminated).

    The stored record (:func:`job_record`) is unchanged: ``jobId``, ``operation``, ``error``
    as ``{code, message, path?, hint?}``, and a completed request's answer as it is (the view wraps
    an answer that is not a map: :func:`ops.domain.answers.request_output`).

    >>> job = finish(job_record("0x01", "agent:info", 5, input={"agentId": "A"}), FAILED, 7,
    ...              error={"code": "not_found", "message": "no agent 'A'"})
    >>> v = public_job(job)
    >>> (v["id"], v["op"], v["status"], v["error"], v["errorCode"], v["input"], v["created"], v["updated"])
    ('0x01', 'agent:info', 'FAILED', "no agent 'A'", 'not_found', {'agentId': 'A'}, 5, 7)
    """
    err = error_fields(rec.get("error"))
    out = {"id": rec["jobId"], "jobId": rec["jobId"], "op": rec["operation"], "operation": rec["operation"],
           "status": rec["status"], "input": rec.get("input"), "output": _output(rec),
           "error": err.pop("error"), "errorCode": err.pop("errorCode"),
           "created": rec.get("created"), "updated": rec.get("updated"), **err}
    if rec.get("agentId") is not None:
        out["agentId"] = rec["agentId"]
    if "agent" in rec:
        out["agent"] = rec["agent"]
    return out


# -- the job state machine -------------------------------------------------------
#
# PENDING -> STARTED (the oldest task of a RUNNING agent) -> PENDING (the agent stopped:
# suspended, or its task queue reordered) ... -> COMPLETE | FAILED | CANCELLED. A terminal
# job never changes again. Task and trigger jobs move only in the commits of their agent.

def cancel(rec: dict[str, Any], ts: int, message: str) -> dict[str, Any] | None:
    """The job ``CANCELLED`` with ``{code: cancelled, message}``; None if it is already terminal."""
    if rec["status"] in TERMINAL:
        return None
    return finish(rec, CANCELLED, ts, error={"code": "cancelled", "message": message})


def head_task(agent: dict[str, Any]) -> tuple[str, str] | None:
    """``(task id, status its job must have)`` for the oldest task of a settled agent record:
    ``STARTED`` while the agent is ``RUNNING`` (a run works on it), else ``PENDING``; None without tasks."""
    if not map_len(agent["tasks"]):
        return None
    return map_keys(agent["tasks"])[0], STARTED if agent["status"] == "RUNNING" else PENDING


def retarget(rec: dict[str, Any], want: str, ts: int) -> dict[str, Any] | None:
    """The waiting job moved to ``want`` (``PENDING``/``STARTED``); None when nothing changes."""
    if rec["status"] not in (PENDING, STARTED) or rec["status"] == want:
        return None
    return {**rec, "status": want, "updated": ts}


def work_job_ids(agent: dict[str, Any]) -> list[str]:
    """The ids of every task and trigger job an agent record holds."""
    return map_keys(agent["tasks"]) + list(agent.get("triggers", []))


def trigger_output(agent_id: str, agent: dict[str, Any], result: Any, task_results: Any) -> dict[str, Any]:
    """The output of an ``agent:trigger`` job completed by a run: ``{agentId, status, result,
    taskResults: [{taskId, status, output}]}`` (the venue's list; the run's timeline entry keeps
    the seed's ``{<taskId>: {status, output}}`` map)."""
    listed = [{"taskId": tid, **r} for tid, r in (task_results or {}).items()]
    return {"agentId": agent_id, "status": agent["status"], "result": result, "taskResults": listed}


# -- folded jobs ---------------------------------------------------------------------
#
# A task, trigger or chat job is accepted by one agent commit whose event names it (``TaskQueued``'s
# ``taskId``, ``Triggered``'s ``triggerId``, ``ChatQueued``'s ``messageId``) and its agent (``agentId``:
# a chat's always, a request's or trigger's from format 2 on); until its first change its ref points
# at that commit and its record is derived from it (see the module doc).

#: the operations whose jobs are folded into the agent commit that accepts them, and the field of
#: that commit's event naming the job
FOLDED_OPS = {"agent:request": "taskId", "agent:trigger": "triggerId", "agent:chat": "messageId"}


def is_job_record(rec: Any) -> bool:
    """Whether a loaded root is a job record (an agent record has no ``jobId``)."""
    return isinstance(rec, dict) and "jobId" in rec


def job_time(job_id: str) -> int:
    """The Unix ms a job id was minted at (:func:`new_job_id`'s first 6 bytes).

    >>> job_time('0x018ed29ba70000000000000000000000')
    1712930400000
    """
    return int(job_id[2:14], 16)


def _event(tx: Tx, commit: Commit, job_id: str) -> dict[str, Any] | None:
    """The event of ``commit`` when it accepted job ``job_id``, else None."""
    field = FOLDED_OPS.get(commit.op)
    if field is None:
        return None
    ev = tx.materialize(commit.input)
    return ev if isinstance(ev, dict) and ev.get(field) == job_id else None


def holds_work(tx: Tx, agent: dict[str, Any], op: str, job_id: str) -> bool:
    """Whether the (loaded) agent record still holds job ``job_id`` of operation ``op`` as
    work: a task (``agent:request``) or a trigger (``agent:trigger``); chats name their agent."""
    if op == "agent:request":
        if not map_len(agent["tasks"]):
            return False
        try:
            map_get(tx, agent["tasks"], job_id)
        except KeyError:
            return False
        return True
    return op == "agent:trigger" and job_id in tx.plain(agent.get("triggers") or [])


def folded_job(tx: Tx, commit: Commit, job_id: str, agent_id: str | None) -> dict[str, Any] | None:
    """The record of a folded job (see the module doc) whose ref points at agent commit ``commit``;
    None when that commit did not accept ``job_id`` (nor, a run, complete it: :func:`finished_job`).

    The record is the one accepting the job wrote before jobs were folded, field by field:
    ``created`` the job id's time; ``status`` ``STARTED`` for the oldest task of an agent
    ``RUNNING`` at ``commit`` (then ``updated`` is the commit's time), else ``PENDING``. The
    ``input`` is rebuilt from the event: the request's ``agentId``, ``input``, ``sessionId`` (or
    ``session: {title?}`` for a session it opened), ``responseSchema``, ``strict``, ``outputPath``
    (canonical), a trigger's ``agentId``, ``sessionId``, a chat's ``agentId``, ``message``,
    ``sessionId``; how the caller waited (``wait``, ``timeout``) and a trigger's ``force`` are
    not recorded.

    Args:
        agent_id: the agent that accepted it, when the commit's event does not name it (a
            request's or trigger's commit written before format 2); the
            event's ``agentId`` wins. None and not named: the record has no ``agentId``.
    """
    if commit.op == "agent:run":
        return finished_job(tx, commit, job_id, agent_id)
    return _accepted_job(tx, commit, job_id, agent_id)


def _accepted_job(tx: Tx, commit: Commit, job_id: str, agent_id: str | None) -> dict[str, Any] | None:
    """:func:`folded_job` of the commit that accepted the job."""
    ev = _event(tx, commit, job_id)
    if ev is None:
        return None
    agent_id = ev["agentId"] if isinstance(ev.get("agentId"), str) else agent_id
    op, created = commit.op, job_time(job_id)
    status, updated = PENDING, created
    extra: dict[str, Any] = {}
    if op == "agent:request":
        inp: dict[str, Any] = {"agentId": agent_id, "input": ev.get("input")}
        if ev.get("minted"):
            inp["session"] = {"title": ev["title"]} if ev.get("title") else {}
        elif "sessionId" in ev:
            inp["sessionId"] = ev["sessionId"]
        inp.update({k: ev[k] for k in ("responseSchema", "strict", "outputPath") if k in ev})
        if "sessionId" in ev:
            extra["sessionId"] = ev["sessionId"]
        rec = tx.load_root(commit.root)
        if rec.get("status") == "RUNNING" and map_len(rec["tasks"]) and map_keys(rec["tasks"])[0] == job_id:
            status, updated = STARTED, commit.ts
    elif op == "agent:trigger":
        inp = {"agentId": agent_id}
        if "sessionId" in ev:
            inp["sessionId"] = ev["sessionId"]
    else:
        inp = {"agentId": agent_id, "message": ev.get("message"),
               "sessionId": None if ev.get("minted") else ev.get("sessionId")}
        extra["sessionId"] = ev.get("sessionId")
    out = job_record(job_id, op, created, input=inp, status=status, agent_id=agent_id)
    out["updated"] = updated
    if agent_id is None:
        out.pop("agentId", None)
    return {**out, **extra}


def folds_finished() -> bool:
    """Whether a task its run completes on top of the commit that accepted it stays folded (format
    3 on; read at each call from :data:`lattice.commits.FORMAT_VERSION`, so a store written under
    format 2's settings stores what format 2 did)."""
    return lattice.commits.FORMAT_VERSION >= 3


def run_task_id(tx: Tx, commit: Commit) -> str | None:
    """The task an ``agent:run`` commit consumed (its event's ``taskId``); None for another commit
    or a run without a task. Reads the event's top level only (not its model replies)."""
    if commit.op != "agent:run":
        return None
    ev = open_level(tx, commit.input)
    tid = ev.get("taskId") if isinstance(ev, dict) else None
    return tid if isinstance(tid, str) else None


def finished_job(tx: Tx, commit: Commit, job_id: str, agent_id: str | None) -> dict[str, Any] | None:
    """The record of a task job folded into the run commit that completed it (see the module doc):
    the record :func:`folded_job` derives from the run's parent, the commit that accepted the task,
    ``COMPLETE`` at the run commit's time with the output its timeline entry recorded for the task
    (``taskResults[job_id].output``). None when ``commit`` is not a run that completed ``job_id``
    on top of the commit that accepted it."""
    if run_task_id(tx, commit) != job_id or commit.parent is None:
        return None
    accepted = _accepted_job(tx, read_commit(tx, commit.parent), job_id, agent_id)
    if accepted is None:
        return None
    try:
        timeline = tx.load_root(commit.root)["timeline"]
        entry = seq_get(tx, timeline, seq_len(timeline) - 1) if seq_len(timeline) else {}
        results = tx.materialize(entry.get("taskResults") or {}) if isinstance(entry, dict) else None
    except (KeyError, TypeError, IndexError):  # not an agent record: fsck says so
        return None
    res = results.get(job_id) if isinstance(results, dict) else None
    if not isinstance(res, dict) or res.get("status") != COMPLETE:
        return None
    return finish(accepted, COMPLETE, commit.ts, output=res.get("output"))


def read_job(tx: Tx, commit: Commit, job_id: str, agent_id: str | None = None) -> dict[str, Any] | None:
    """The record of job ``job_id`` whose ref's head is ``commit``: its stored record, or one
    derived from the agent commit that accepted it (:func:`folded_job`) or the run commit that
    completed it (:func:`finished_job`); None when ``commit`` is none of these."""
    rec = tx.load_root(commit.root)
    if is_job_record(rec):
        return tx.materialize(tx.raw_root(commit.root))
    return folded_job(tx, commit, job_id, agent_id)
