"""Shared helpers of the engine tests (imported as ``tests.ops.helpers``): invoke an
operation on a :class:`Runtime` in process, read a path, wait for a condition."""

from __future__ import annotations

import asyncio
from typing import Any

from ops.domain.contracts import decode_input, lookup
from ops.engine.runtime import Runtime

__all__ = ["CALLER", "call", "out", "read", "until", "scripted", "answer"]

#: the caller of every request when no tokens are configured
CALLER = "local"


async def call(rt: Runtime, op: str, caller: str = CALLER, **inp: Any) -> dict:
    """Invoke ``op`` with ``inp`` (validated by its contract) as ``caller``; the job."""
    c = lookup(op)
    return await rt.invoke(c, decode_input(c, inp), caller)


async def out(rt: Runtime, op: str, **inp: Any) -> Any:
    """Invoke ``op``, assert it completed, return its output."""
    job = await call(rt, op, **inp)
    assert job["status"] == "COMPLETE", job
    return job["output"]


def answer(job: dict) -> Any:
    """The agent's answer in a completed ``agent:request`` job: its output, or (an answer that is
    not a map is wrapped, :func:`ops.domain.answers.request_output`) the wrapper's ``output``."""
    o = job["output"]
    if isinstance(o, dict) and o.get("jobId") == job["jobId"] and o.get("status") == "COMPLETE" and "output" in o:
        return o["output"]
    return o


async def read(rt: Runtime, path: str) -> Any:
    """The value at ``path`` (None when absent)."""
    o = (await call(rt, "covia:read", path=path))["output"]
    return o["value"] if o["exists"] else None


async def until(pred, timeout: float = 5.0) -> None:
    """Poll the async predicate until true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


def scripted(*rules: dict) -> dict:
    """An agent config with a ``scripted`` model of ``rules``."""
    return {"model": {"provider": "scripted", "rules": list(rules)}}
