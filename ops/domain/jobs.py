"""Jobs: ids, statuses and the job record.

A job id is 16 bytes, time-ordered: 6 bytes of Unix milliseconds then 10
random bytes, written ``0x`` + 32 lowercase hex digits, so ids sort by
creation time (the agent's ``tasks`` map therefore iterates FIFO).

The job record (stored at ``j/<jobId>`` for jobs that changed state)::

    {jobId, operation, status, input, output, error, created, updated, agentId?}

Statuses: ``PENDING`` (accepted, waiting), ``STARTED`` (a run is working on it:
the oldest task of a ``RUNNING`` agent), then one terminal status:
``COMPLETE``, ``FAILED``, ``CANCELLED``. ``TIMEOUT`` is part of the contract
but reserved: no operation produces it yet (a ``wait`` that runs out returns
the job as it is, still ``PENDING``/``STARTED``, with HTTP 202).
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["PENDING", "STARTED", "COMPLETE", "FAILED", "CANCELLED", "TIMEOUT", "STATUSES", "TERMINAL",
           "new_job_id", "JobIds", "normalize_job_id", "job_record", "public_job", "finish"]

PENDING, STARTED, COMPLETE, FAILED, CANCELLED, TIMEOUT = (
    "PENDING", "STARTED", "COMPLETE", "FAILED", "CANCELLED", "TIMEOUT")
STATUSES = (PENDING, STARTED, COMPLETE, FAILED, CANCELLED, TIMEOUT)
TERMINAL = frozenset((COMPLETE, FAILED, CANCELLED, TIMEOUT))

_ID = re.compile(r"^(0x)?[0-9a-fA-F]{32}$")


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
    """

    def __init__(self) -> None:
        self._last = 0

    def __call__(self, ms: int) -> str:
        value = int(new_job_id(ms), 16)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return "0x" + value.to_bytes(16, "big").hex()


def normalize_job_id(text: str) -> str | None:
    """Return the canonical form (``0x`` + lowercase hex) of a job id, or None if malformed."""
    if not isinstance(text, str) or not _ID.match(text):
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


def public_job(rec: dict[str, Any]) -> dict[str, Any]:
    """The job as the HTTP contract shows it."""
    return {k: rec.get(k) for k in ("jobId", "operation", "status", "output", "error", "created", "updated")}
