"""Consistency checks of agent and job records, for ``lattice fsck``.

:func:`check_head` is given to :func:`lattice.fsck.fsck`: on top of the
lattice's own checks (every object present and intact, every chain whole), it
checks what the runtime promises of the records at each head:

* a job record has every field, a known status, and its own id; a job folded into an agent
  commit (:mod:`ops.domain.jobs`) points at the commit that accepted it (or the run that completed
  it), and that commit is still on its agent's chain (what drops versions gives such a job its
  record first: a ref left behind would keep versions the agent no longer has alive);
* an agent record has a known status; a ``RUNNING`` agent has work; every
  queued task's job exists and is ``PENDING``, except the oldest task of a
  ``RUNNING`` agent, which is ``STARTED``; no task is recorded by two runs of the
  timeline, nor recorded and still pending (two servers ran the same work). (A ``SLEEPING`` agent may hold work:
  ``agent:resume {autoWake: false}`` leaves it so until the next wake-up.)

Checked beside a running server, an agent that moves on while its jobs are
being read is skipped (its next state is checked by the next run of fsck).
"""

from __future__ import annotations

from typing import Any, Iterator

from lattice.commits import find, read_commit
from lattice.errors import NotFound
from lattice.nodes import Tx, map_keys, seq_iter

from . import agent as A
from .jobs import PENDING, STARTED, STATUSES, is_job_record, read_job
from .refs import agent_ref, job_ref

__all__ = ["make_check_head"]

_JOB_FIELDS = ("jobId", "operation", "status", "output", "error", "created", "updated")


def _timeline_problems(tx: Tx, rec: dict[str, Any]) -> list[str]:
    """A task recorded by two runs (two servers ran the same work), or recorded and still pending."""
    seen: dict[str, int] = {}
    out = []
    pending = set(map_keys(rec["tasks"]))
    for i, entry in enumerate(seq_iter(tx, rec["timeline"])):
        for tid in map_keys(entry.get("taskResults") or {}):
            if tid in seen:
                out.append(f"task {tid} is recorded twice in the timeline (entries {seen[tid]} and {i})")
            else:
                seen[tid] = i
                if tid in pending:
                    out.append(f"task {tid} is recorded in the timeline (entry {i}) and still pending")
    return out


def _off_chain(store: Any, caller: str, agent_id: str, commit: bytes, seq: int) -> str | None:
    """What is wrong when agent commit ``commit`` (version ``seq``), a folded job's head, is not on
    its agent's chain (O(log n) reads: :func:`lattice.commits.find`); None when it is."""
    head = store.ref(agent_ref(caller, agent_id))
    if head is None:
        return f"job ref points at a commit of agent {agent_id!r}, and there is no agent {agent_id!r}: " \
               "it keeps that agent's versions alive"
    try:
        on = find(store, head, seq)[0] == commit
    except NotFound:
        on = False
    return None if on else f"job ref points at a commit not on agent {agent_id!r}'s chain: it keeps versions " \
                           "the agent no longer has alive"


def make_check_head(store: Any):
    """A ``check_head(ref, root)`` for :func:`lattice.fsck.fsck` over ``store``."""

    def check_head(ref: str, root: Any) -> Iterator[str]:
        ns, caller, ident = (ref.split("/", 2) + ["", ""])[:3]
        tx = Tx(store)
        if ns == "j":
            top = tx.load_root(root)
            if isinstance(top, dict) and not is_job_record(top) and "tasks" in top:  # folded: see ops.domain.jobs
                head = store.ref(ref)
                hc = None if head is None else read_commit(tx, head)
                if hc is None or hc.root != root:
                    return  # moved on since the refs were listed
                job = read_job(tx, hc, ident)
                if job is None:
                    yield "job ref points at an agent commit that did not accept this job (nor complete it)"
                    return
                aid = job.get("agentId")  # None: accepted before format 2, the commit names no agent
                if aid is not None:
                    lost = _off_chain(store, caller, aid, head, hc.seq)
                    if lost is not None and store.ref(ref) == head:  # (a prune or removal moves the job too)
                        yield lost
                return
            rec = tx.materialize(tx.raw_root(root))
            if not isinstance(rec, dict):
                yield "job record is not a map"
                return
            missing = [f for f in _JOB_FIELDS if f not in rec]
            if missing:
                yield f"job record lacks {', '.join(missing)}"
            if rec.get("status") not in STATUSES:
                yield f"job status {rec.get('status')!r} is not one of {', '.join(STATUSES)}"
            if rec.get("jobId") != ident:
                yield f"job record says jobId {rec.get('jobId')!r}, its ref says {ident!r}"
        elif ns == "g":
            head = store.ref(ref)
            if head is None or read_commit(tx, head).root != root:
                return  # moved on since the refs were listed
            rec = A.opened(tx, tx.load_root(root))
            status = rec.get("status")
            if status not in A.AGENT_STATUSES:
                yield f"agent status {status!r} is not one of {', '.join(A.AGENT_STATUSES)}"
                return
            if status == A.RUNNING and not A.has_work(rec):
                yield "agent is RUNNING with no work"
            problems = []
            for i, tid in enumerate(map_keys(rec["tasks"])):
                d = store.ref(job_ref(caller, tid))
                if d is None:
                    problems.append(f"task {tid} has no job record")
                    continue
                job = read_job(tx, read_commit(tx, d), tid, ident) or {}
                want = STARTED if (i == 0 and status == A.RUNNING) else PENDING
                if job.get("status") != want:
                    problems.append(f"task {tid}: job is {job.get('status')}, expected {want}")
            problems += _timeline_problems(tx, rec)
            if problems and store.ref(ref) == head:  # jobs move only with their agent: still a real problem
                yield from problems
    return check_head
