"""Shared helpers of the engine tests (imported as ``tests.ops.helpers``): invoke an
operation on a :class:`Runtime` in process, read a path, wait for a condition."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ops.domain.contracts import decode_input, lookup
from ops.engine.runtime import Runtime

__all__ = ["CALLER", "call", "out", "read", "until", "scripted", "answer", "check_work"]

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


async def check_work(value: Callable[[str], Awaitable[Any]], job_of: Callable[[str], dict],
                     requests: dict[str, tuple[str, str]], messages: dict[str, str], caller: str = CALLER) -> int:
    """The stress tests' invariants on settled agents (echo model); the number of checks made.

    Each task (``requests``: job id -> (agent, text)) completed exactly once with its own answer, or was
    cancelled and never completed; each delivered message (``messages``: text -> agent) is once in its agent's
    history and once in its timeline. ``value(path)`` reads a lattice path, ``job_of(id)`` gets a job.
    """
    agents = set(messages.values()) | {a for a, _ in requests.values()}
    timelines = {a: await value(f"g/{a}/timeline") for a in agents}
    histories = {a: await value(f"g/{a}/state/history") for a in agents}
    for jid, (a, text) in requests.items():
        job = job_of(jid)
        completions = [e for e in timelines[a] if e["taskResults"].get(jid, {}).get("status") == "COMPLETE"]
        if job["status"] == "COMPLETE":
            assert answer(job) == text and len(completions) == 1, (job, completions)
            assert completions[0]["taskResults"][jid]["output"] == text, completions
        else:
            assert job["status"] == "CANCELLED" and not completions, (job, completions)
    for text, a in messages.items():
        in_history = sum(1 for m in histories[a]
                         if m["role"] == "user" and m.get("content") == f"[message from {caller}] {text}")
        in_timeline = sum(1 for e in timelines[a] for m in e["messages"] if m["message"] == text)
        assert in_history == 1 and in_timeline == 1, (text, a, in_history, in_timeline)
    return len(requests) + len(messages)
