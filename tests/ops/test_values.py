"""Any value the contracts accept works everywhere a value goes: as task input (through the
run loop, the model and the timeline), as state, in the workspace, through the I/O tools,
fork, diff and replay. Collections over 32 entries are lattice handles inside the store:
none may leak into a model request, a tool result or an answer.

``LATTICE_VALUE_EXAMPLES=500 pytest tests/ops/test_values.py`` runs more examples.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.memory import MemoryStore
from ops.domain.contracts import MAX_NESTING
from ops.domain.cycle import render_input
from ops.engine.runtime import Runtime
from tests.ops.helpers import answer, call, out, read, scripted

EXAMPLES = int(os.environ.get("LATTICE_VALUE_EXAMPLES", "25"))
I64 = st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)
SCALARS = st.none() | st.booleans() | I64 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=300)
NESTED = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=40) | st.dictionaries(st.text(max_size=12),
                                                                                             inner, max_size=40),
                      max_leaves=200)


def _deep(depth: int, leaf: Any) -> Any:
    v = leaf
    for i in range(depth):
        v = [v] if i % 2 else {"d": v}
    return v


BIG = st.integers(33, 3000).flatmap(lambda n: st.sampled_from([
    list(range(n)), {f"k{i:05d}": i for i in range(n)}, [{"i": i, "s": "x" * (i % 50)} for i in range(n)],
    {"rows": [[i, str(i)] for i in range(n)]}]))
#: the task input sits at depth 1 of the request's input object, whose nesting is bounded
DEEP = st.builds(_deep, st.integers(1, MAX_NESTING - 2), SCALARS)
VALUES = NESTED | BIG | DEEP

READ_RULE = {"when": "READ-THE-BIG-VALUE", "toolCalls": [{"name": "covia_read", "arguments": {"path": "w/big"}}]}
CONFIGS = {"echo": {"model": {"provider": "echo"}}, "scripted": scripted(READ_RULE, {"content": "ok"})}

run = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


def loop(coro) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


@pytest.mark.parametrize("model", sorted(CONFIGS))
@run
@given(value=VALUES)
def test_any_value_as_task_input(model: str, value: Any) -> None:
    async def go() -> None:
        rt = Runtime(MemoryStore())
        await rt.start()
        await out(rt, "agent:create", agentId="A", config=CONFIGS[model])
        job = await call(rt, "agent:request", agentId="A", input=value, wait=True)
        assert job["status"] == "COMPLETE", job
        assert answer(job) == (render_input(value) if model == "echo" else "ok")
        timeline = await read(rt, "g/A/timeline")
        assert timeline[-1]["tasks"] == [value]
        if value is not None:  # (a null task means "no simulated task")
            context = await out(rt, "agent:context", agentId="A", task=value)
            assert context["messages"][-1]["content"] == render_input(value)
        await out(rt, "agent:fork", sourceId="A", agentId="F")
        assert (await out(rt, "agent:diff", agentId="A", otherAgentId="F"))["changes"]  # timelines differ
        assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
        await rt.close()
    loop(go())


@run
@given(value=VALUES)
def test_any_value_as_state_workspace_and_tool_result(value: Any) -> None:
    async def go() -> None:
        rt = Runtime(MemoryStore())
        await rt.start()
        await out(rt, "agent:create", agentId="A", config=CONFIGS["scripted"], state={"v": value})
        assert await read(rt, "g/A/state/v") == value
        await out(rt, "agent:update", agentId="A", state={"w": value})
        assert await read(rt, "g/A/state/w") == value
        await out(rt, "covia:write", path="w/big", value=value)
        assert await read(rt, "w/big") == value
        job = await call(rt, "agent:request", agentId="A", input="READ-THE-BIG-VALUE", wait=True)
        assert job["status"] == "COMPLETE" and answer(job) == "ok", job
        tool = [m for m in await read(rt, "g/A/state/history") if m["role"] == "tool"][-1]
        assert tool["content"] == msgspec.json.encode(value, order="sorted").decode()[:16_384]
        assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
        await rt.close()
    loop(go())


async def test_a_run_that_fails_with_a_bug_logs_its_traceback_and_ids(monkeypatch, caplog) -> None:
    import ops.engine.runs as runs

    def broken(*a: Any, **k: Any) -> str:
        raise RuntimeError("a bug in a tool")
    monkeypatch.setattr(runs, "io_tool", broken)
    rt = Runtime(MemoryStore())
    await rt.start()
    await out(rt, "agent:create", agentId="Bugged", config=CONFIGS["scripted"])
    with caplog.at_level(logging.ERROR, logger="lattice.runtime"):
        job = await call(rt, "agent:request", agentId="Bugged", input="READ-THE-BIG-VALUE", wait=True)
    await rt.close()
    info = await read(rt, "g/Bugged")
    assert job["status"] == "PENDING" and info["status"] == "SUSPENDED"
    assert info["error"]["code"] == "internal_error"
    rec = next(r for r in caplog.records if "Bugged" in r.getMessage())
    assert rec.exc_info and "a bug in a tool" in caplog.text and "Traceback" in caplog.text
    assert "'local'" in rec.getMessage() and job["jobId"] in rec.getMessage()
