"""Tests of :mod:`ops.domain.jobs`: the job state machine, job ids and the agent's job views.

The state machine: ``PENDING <-> STARTED`` while waiting, then one terminal
status (``COMPLETE``, ``FAILED``, ``CANCELLED``; ``TIMEOUT`` reserved) that
never changes again. Tables run every status through ``finish``, ``cancel``
and ``retarget``; ``head_task`` and ``work_job_ids`` read agent records built
with the transitions (``tests/domain/helpers.py``).
"""

from __future__ import annotations

import itertools

import pytest

from ops.domain import agent as A
from ops.domain import jobs as J
from tests.domain.helpers import (AID, T0, TS, big, busy, new_tx, running, suspended_with_work, terminated, tid,
                                  with_tasks)

JOB = J.new_job_id(T0, bytes(10))
WAITING = (J.PENDING, J.STARTED)


def job(status: str) -> dict:
    """A job record in ``status`` (moved there from PENDING the way the engine does)."""
    rec = J.job_record(JOB, "agent:request", T0, input={"q": 1}, agent_id=AID)
    if status == J.STARTED:
        rec = J.retarget(rec, J.STARTED, T0 + 1)
    elif status != J.PENDING:
        rec = J.finish(rec, status, T0 + 1, output="old", error=None)
    assert rec["status"] == status
    return rec


def test_statuses() -> None:
    assert J.STATUSES == ("PENDING", "STARTED", "COMPLETE", "FAILED", "CANCELLED", "TIMEOUT")
    assert J.TERMINAL == set(J.STATUSES) - set(WAITING)


def test_job_record_and_public_view() -> None:
    rec = J.job_record(JOB, "agent:request", T0, input=[1], agent_id=AID)
    assert rec == {"jobId": JOB, "operation": "agent:request", "status": J.PENDING, "input": [1], "output": None,
                   "error": None, "created": T0, "updated": T0, "agentId": AID}
    assert "agentId" not in J.job_record(JOB, "covia:read", T0)
    assert J.public_job(rec) == {"id": JOB, "jobId": JOB, "op": "agent:request", "operation": "agent:request",
                                 "status": J.PENDING, "input": [1], "output": None, "error": None, "errorCode": None,
                                 "created": T0, "updated": T0, "agentId": AID}
    failed = J.finish(rec, J.FAILED, T0 + 1, error={"code": "not_found", "message": "no agent", "hint": "h"})
    view = J.public_job(failed)
    assert (view["error"], view["errorCode"], view["hint"], view["updated"]) == ("no agent", "not_found", "h", T0 + 1)
    assert "path" not in view and failed["error"] == {"code": "not_found", "message": "no agent", "hint": "h"}


# -- finish / cancel / retarget --------------------------------------------------------------

FINISH = [pytest.param(start, to, id=f"{start}->{to}")
          for start, to in itertools.product(J.STATUSES, (J.COMPLETE, J.FAILED, J.CANCELLED))]


@pytest.mark.parametrize("start, to", FINISH)
def test_finish(start: str, to: str) -> None:
    rec = job(start)
    error = {"code": "x", "message": "m"} if to != J.COMPLETE else None
    out = J.finish(rec, to, TS, output={"answer": 42}, error=error)
    if start in J.TERMINAL:
        assert out is rec and out["status"] == start and out["output"] == "old"  # never changes again
    else:
        assert out == {**rec, "status": to, "output": {"answer": 42}, "error": error, "updated": TS}
        assert rec["status"] == start  # the input record is not changed


@pytest.mark.parametrize("start", J.STATUSES)
def test_cancel(start: str) -> None:
    rec = job(start)
    out = J.cancel(rec, TS, "cancelled by caller")
    if start in J.TERMINAL:
        assert out is None
    else:
        assert out == {**rec, "status": J.CANCELLED, "output": None, "updated": TS,
                       "error": {"code": "cancelled", "message": "cancelled by caller"}}


RETARGET = [pytest.param(start, want, id=f"{start}->{want}") for start, want in itertools.product(J.STATUSES, WAITING)]


@pytest.mark.parametrize("start, want", RETARGET)
def test_retarget(start: str, want: str) -> None:
    rec = job(start)
    out = J.retarget(rec, want, TS)
    if start in J.TERMINAL or start == want:
        assert out is None
    else:
        assert out == {**rec, "status": want, "updated": TS}


# -- head_task and work_job_ids over agent records ------------------------------------------------

HEAD = [pytest.param(status, n, id=f"{status}-{n}") for status in A.AGENT_STATUSES for n in (0, 1, 3)]


@pytest.mark.parametrize("status, n", HEAD)
def test_head_task(status: str, n: int) -> None:
    tx = new_tx()
    rec = with_tasks(n, status)(tx)
    got = J.head_task(rec)
    if n == 0 or status == A.TERMINATED:  # terminate drops the tasks
        assert got is None
    else:  # the oldest id (tasks were queued newest first): STARTED only while a run works on it
        assert got == (tid(1), J.STARTED if status == A.RUNNING else J.PENDING)


def test_head_task_of_a_large_task_map() -> None:
    tx = new_tx()
    rec = big(tx)
    assert type(rec["tasks"]).__name__ == "HMap"
    assert J.head_task(rec) == (tid(1), J.PENDING)
    assert J.head_task(A.resume(rec, TS)) == (tid(1), J.STARTED)


@pytest.mark.parametrize("build, expected", [
    pytest.param(busy(), [], id="none"),
    pytest.param(running, [tid(1)], id="one-task"),
    pytest.param(suspended_with_work, [tid(1), tid(2)], id="task-and-trigger"),
    pytest.param(busy(tasks=3, messages=2, triggers=2), [tid(1), tid(2), tid(3), tid(1000), tid(1001)],
                 id="tasks-then-triggers-no-messages"),
    pytest.param(terminated, [], id="terminated"),
])
def test_work_job_ids(build, expected) -> None:
    tx = new_tx()
    assert J.work_job_ids(build(tx)) == expected


def test_work_job_ids_of_a_large_task_map() -> None:
    tx = new_tx()
    rec = A.add_trigger(big(tx), tid(2000), TS)
    assert J.work_job_ids(rec) == [tid(i) for i in range(1, 41)] + [tid(2000)]


def test_trigger_output() -> None:
    tx = new_tx()
    out = J.trigger_output(AID, running(tx), "r", {tid(1): {"status": "COMPLETE", "output": 1}})
    assert out == {"agentId": AID, "status": A.RUNNING, "result": "r",
                   "taskResults": [{"taskId": tid(1), "status": "COMPLETE", "output": 1}]}  # the venue's list
    assert J.trigger_output(AID, running(tx), None, None)["taskResults"] == []


# -- job ids ------------------------------------------------------------------------------

def test_new_job_id_layout() -> None:
    assert J.new_job_id(1712930400000, bytes(10)) == "0x018ed29ba70000000000000000000000"
    assert J.new_job_id(1, b"\xff" * 10) == "0x000000000001" + "ff" * 10
    assert J.new_job_id(2**48 + 5, bytes(10)) == J.new_job_id(5, bytes(10))  # 48 bits of ms
    a, b = J.new_job_id(T0), J.new_job_id(T0)
    assert a != b and a[:14] == b[:14] and len(a) == 34  # random tail, same time prefix


def _counter():
    n = itertools.count()
    return lambda k: next(n).to_bytes(k, "big")


@pytest.mark.parametrize("clock, rand", [
    pytest.param([T0] * 50, lambda k: bytes(k), id="one-ms-zero-random"),
    pytest.param([T0] * 50, lambda k: b"\xff" * k, id="one-ms-max-random"),
    pytest.param([T0] * 50, None, id="one-ms-os-random"),
    pytest.param([T0, T0 + 5, T0 - 1000, T0 - 1000, T0 + 1, T0 + 6, T0 + 6], lambda k: bytes(k), id="clock-steps-back"),
    pytest.param([T0 + i for i in range(20)], _counter(), id="clock-advances"),
])
def test_job_ids_are_strictly_increasing(clock, rand) -> None:
    ids = J.JobIds(rand)
    out = [ids(ms) for ms in clock]
    assert out == sorted(out) and len(set(out)) == len(out)
    assert all(J.normalize_job_id(i) == i for i in out)  # canonical form
    assert [int(a, 16) < int(b, 16) for a, b in zip(out, out[1:])] == [True] * (len(out) - 1)


def test_job_ids_keep_the_last_time_while_the_clock_is_behind() -> None:
    ids = J.JobIds(lambda k: bytes(k))
    first = ids(T0 + 5)
    behind = ids(T0)
    assert behind == "0x" + format(int(first, 16) + 1, "032x")
    assert behind[2:14] == first[2:14]  # still stamped T0 + 5
    later = ids(T0 + 6)
    assert later == J.new_job_id(T0 + 6, bytes(10))  # the clock caught up: its own time again


NORMALIZE = [
    ("0x" + "ab" * 16, "0x" + "ab" * 16),
    ("ab" * 16, "0x" + "ab" * 16),
    ("0x" + "AB" * 16, "0x" + "ab" * 16),
    ("0x" + "aB" * 16, "0x" + "ab" * 16),
    ("0123456789abcdefABCDEF0123456789", "0x0123456789abcdefabcdef0123456789"),
    ("0X" + "ab" * 16, None),
    ("0x" + "a" * 31, None),
    ("0x" + "a" * 33, None),
    ("a" * 31, None),
    ("a" * 34, None),
    ("0x" + "g" * 32, None),
    ("0x" + "a" * 30 + " a", None),
    (" 0x" + "a" * 32, None),
    ("0x" + "a" * 32 + " ", None),
    ("0x0x" + "a" * 30, None),
    ("", None),
    ("0x", None),
    (None, None),
    (12, None),
    (b"0x" + b"a" * 32, None),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=repr(t)[:24]) for t, e in NORMALIZE] + [
    pytest.param("0x" + "a" * 32 + "\n", None, id="trailing-newline"),
])
def test_normalize_job_id(text, expected) -> None:
    assert J.normalize_job_id(text) == expected
    if expected is not None:
        assert J.normalize_job_id(expected) == expected  # idempotent
