"""Run-loop semantics: merge during LLM calls, failure and resume, cancel, recovery, secrets."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from ops import operations  # noqa: F401
from ops.contracts import decode_input, lookup
from ops.llm import LlmReply, make_adapter
from ops.runtime import Runtime

CALLER = "local"


async def call(rt: Runtime, op: str, **inp: Any) -> dict:
    c = lookup(op)
    return await rt.invoke(c, decode_input(c, inp), CALLER)


async def read(rt: Runtime, path: str) -> Any:
    out = (await call(rt, "covia:read", path=path))["output"]
    return out["value"] if out["exists"] else None


async def until(pred, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


class Gate:
    """An adapter factory whose echo replies wait until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls: list[list[dict]] = []

    def __call__(self, model: Any) -> Any:
        gate = self

        class _A:
            async def complete(self, request):
                gate.calls.append(request.messages)
                gate.entered.set()
                await gate.release.wait()
                return LlmReply(content=request.messages[-1]["content"])
        return _A()


@pytest.fixture
async def rt():
    r = Runtime(MemoryStore())
    await r.start()
    yield r
    await r.close()


async def test_work_arriving_during_llm_call_is_merged_not_lost(rt: Runtime) -> None:
    gate = Gate()
    rt.adapter_factory = gate
    await call(rt, "agent:create", agentId="A")
    first = await call(rt, "agent:request", agentId="A", input="one")
    await asyncio.wait_for(gate.entered.wait(), 2)
    # while the LLM call is in flight: another task and two messages arrive
    second = await call(rt, "agent:request", agentId="A", input="two")
    await call(rt, "agent:message", agentId="A", message="m1")
    await call(rt, "agent:message", agentId="A", message="m2")
    assert first["status"] == "STARTED" or rt.get_job(CALLER, first["jobId"])["status"] == "STARTED"
    assert rt.get_job(CALLER, second["jobId"])["status"] == "PENDING"
    gate.release.set()

    async def idle():
        return (await read(rt, "g/A/status")) == "SLEEPING"
    await until(idle)
    assert rt.get_job(CALLER, first["jobId"])["output"] == "one"
    assert rt.get_job(CALLER, second["jobId"])["output"] == "two"
    timeline = await read(rt, "g/A/timeline")
    # run 1: task one; run 2: task two plus both messages (consumed once, in order)
    assert [e["tasks"] for e in timeline] == [["one"], ["two"]]
    assert [m["message"] for m in timeline[1]["messages"]] == ["m1", "m2"]
    history = await read(rt, "g/A/state/history")
    users = [m["content"] for m in history if m["role"] == "user"]
    assert users == ["one", "[message from local] m1", "[message from local] m2", "two"]
    assert await read(rt, "g/A/inbox") == [] and await read(rt, "g/A/tasks") == {}


async def test_one_loop_per_agent(rt: Runtime) -> None:
    gate = Gate()
    rt.adapter_factory = gate
    await call(rt, "agent:create", agentId="A")
    for i in range(5):
        await call(rt, "agent:request", agentId="A", input=f"t{i}")
    await asyncio.wait_for(gate.entered.wait(), 2)
    await asyncio.sleep(0.05)
    assert len(gate.calls) == 1  # the other four wait for the first run
    gate.release.set()

    async def idle():
        return (await read(rt, "g/A/status")) == "SLEEPING"
    await until(idle)
    assert len(await read(rt, "g/A/timeline")) == 5


async def test_failure_suspends_preserves_work_and_resume_processes_it(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A", config={"model": {"provider": "error", "message": "boom"}})
    job = await call(rt, "agent:request", agentId="A", input="x", wait=True)
    assert job["status"] == "PENDING"  # returned early: the agent is suspended
    rec = await read(rt, "g/A")
    assert rec["status"] == "SUSPENDED"
    assert rec["error"] == {"code": "llm_error", "message": "boom"}
    assert list(rec["tasks"]) == [job["jobId"]] and rec["timeline"] == [] and rec["state"]["history"] == []
    await call(rt, "agent:message", agentId="A", message="kept")
    await asyncio.sleep(0.02)
    assert (await read(rt, "g/A/status")) == "SUSPENDED"  # no retry loop
    assert len(await read(rt, "g/A/inbox")) == 1
    await call(rt, "agent:update", agentId="A", config={"model": {"provider": "echo"}})
    out = await call(rt, "agent:resume", agentId="A")
    assert out["output"]["status"] == "RUNNING"

    async def done():
        return rt.get_job(CALLER, job["jobId"])["status"] == "COMPLETE"
    await until(done)
    rec = await read(rt, "g/A")
    assert rec["error"] is None and rec["inbox"] == [] and len(rec["timeline"]) == 1


async def test_resume_without_autowake_stays_sleeping(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A", config={"model": {"provider": "error"}})
    await call(rt, "agent:request", agentId="A", input="x", wait=True)
    out = await call(rt, "agent:resume", agentId="A", autoWake=False)
    assert out["output"]["status"] == "SLEEPING"
    assert (await read(rt, "g/A"))["error"] is None
    assert len(await read(rt, "g/A/tasks")) == 1


async def test_tool_loop_is_bounded(rt: Runtime) -> None:
    cfg = {"maxIterations": 3, "model": {"provider": "scripted", "rules": [
        {"toolCalls": [{"name": "covia_list", "arguments": {"path": "w/x"}}]}]}}
    await call(rt, "agent:create", agentId="A", config=cfg)
    await call(rt, "agent:request", agentId="A", input="go", wait=True)
    rec = await read(rt, "g/A")
    assert rec["status"] == "SUSPENDED" and rec["error"]["code"] == "tool_loop_limit"


async def test_tool_errors_go_back_to_the_model(rt: Runtime) -> None:
    cfg = {"model": {"provider": "scripted", "rules": [
        {"when": "error:", "toolCalls": [{"name": "complete_task", "arguments": {"output": "recovered"}}]},
        {"toolCalls": [{"name": "no_such_tool", "arguments": {}}]}]}}
    await call(rt, "agent:create", agentId="A", config=cfg)
    job = await call(rt, "agent:request", agentId="A", input="go", wait=True)
    assert job["status"] == "COMPLETE" and job["output"] == "recovered"
    history = await read(rt, "g/A/state/history")
    tool_msgs = [m for m in history if m["role"] == "tool"]
    assert tool_msgs[0]["content"].startswith("error: unknown tool 'no_such_tool'")


async def test_cancel_in_flight_task_stops_the_run(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A", config={"model": {"provider": "hang"}})
    job = await call(rt, "agent:request", agentId="A", input="x", wait=50)
    assert job["status"] == "STARTED"
    cancelled = await rt.cancel_job(CALLER, job["jobId"])
    assert cancelled["status"] == "CANCELLED"

    async def idle():
        return (await read(rt, "g/A/status")) == "SLEEPING"
    await until(idle)
    assert await read(rt, "g/A/timeline") == []


async def test_suspend_during_run_takes_effect_after_it(rt: Runtime) -> None:
    gate = Gate()
    rt.adapter_factory = gate
    await call(rt, "agent:create", agentId="A")
    j1 = await call(rt, "agent:request", agentId="A", input="one")
    await asyncio.wait_for(gate.entered.wait(), 2)
    j2 = await call(rt, "agent:request", agentId="A", input="two")
    await call(rt, "agent:suspend", agentId="A")
    gate.release.set()

    async def done():
        return rt.get_job(CALLER, j1["jobId"])["status"] == "COMPLETE"
    await until(done)
    rec = await read(rt, "g/A")
    assert rec["status"] == "SUSPENDED" and len(rec["timeline"]) == 1
    assert rt.get_job(CALLER, j2["jobId"])["status"] == "PENDING"


async def test_fork_is_o1_and_independent(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A")
    for i in range(40):  # history outgrows the inline size: a shared vector
        await call(rt, "agent:request", agentId="A", input=f"q{i}", wait=True)
    objects_before = len(rt.store)
    await call(rt, "agent:fork", sourceId="A", agentId="B", config={"systemPrompt": "other"})
    assert len(rt.store) - objects_before <= 8  # new root, commit, job: the history is shared
    assert await read(rt, "g/B/state/history") == await read(rt, "g/A/state/history")
    await call(rt, "agent:request", agentId="B", input="only-b", wait=True)
    assert len(await read(rt, "g/A/state/history")) == 80
    assert len(await read(rt, "g/B/state/history")) == 82
    assert (await read(rt, "g/B/state/config"))["systemPrompt"] == "other"


async def test_trigger_without_work_sends_the_signal(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A")
    job = await call(rt, "agent:trigger", agentId="A")
    assert job["status"] == "COMPLETE"
    assert job["output"]["result"].startswith("[trigger]")
    assert job["output"]["status"] == "SLEEPING"


async def test_recovery_after_restart_resumes_running_agents(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "db")
    rt = Runtime(store)
    await rt.start()
    await call(rt, "agent:create", agentId="A", config={"model": {"provider": "hang"}})
    job = await call(rt, "agent:request", agentId="A", input="survive", wait=20)
    assert job["status"] == "STARTED"
    await rt.close()  # like a crash: the in-flight run leaves nothing behind
    store.close()

    store = LmdbStore(tmp_path / "db")
    try:
        # switch the model so the recovered run can finish
        tx_rt = Runtime(store)
        rec = await read(tx_rt, "g/A")
        assert rec["status"] == "RUNNING" and tx_rt.get_job(CALLER, job["jobId"])["status"] == "STARTED"
        await call(tx_rt, "agent:update", agentId="A", config={"model": {"provider": "echo"}})
        assert await tx_rt.start() == 1

        async def done():
            return tx_rt.get_job(CALLER, job["jobId"])["status"] == "COMPLETE"
        await until(done)
        assert tx_rt.get_job(CALLER, job["jobId"])["output"] == "survive"
        assert (await read(tx_rt, "g/A/status")) == "SLEEPING"
        await tx_rt.close()
    finally:
        store.close()


async def test_every_version_stays_readable(rt: Runtime) -> None:
    from lattice.commits import log
    from lattice.nodes import Tx
    await call(rt, "agent:create", agentId="A")
    for i in range(3):
        await call(rt, "agent:request", agentId="A", input=f"q{i}", wait=True)
    chain = list(log(rt.store, rt.store.ref("g/local/A")))
    assert [c.seq for _, c in chain] == list(range(len(chain) - 1, -1, -1))
    lengths = []
    for _, c in chain:
        tx = Tx(rt.store)
        lengths.append(len(tx.materialize(tx.put_value(tx.load_root(c.root)))["timeline"]))
    assert lengths[0] == 3 and lengths[-1] == 0 and lengths == sorted(lengths, reverse=True)


# -- the OpenAI-compatible adapter through the run loop --------------------------------

SECRET = "sk-test-4f9d8e7c6b5a-never-store-me"


@pytest.fixture
async def fake_openai():
    """A local chat-completions server whose behaviour each test scripts."""
    state: dict[str, Any] = {"mode": "tool", "seen": []}

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state["seen"].append((request.headers.get("Authorization"), body))
        mode = state["mode"]
        if mode == "500":
            return web.json_response({"error": {"message": "upstream exploded"}}, status=500)
        if mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if mode == "slow":
            await asyncio.sleep(2)
        last = body["messages"][-1]
        if mode == "tool" and last["role"] == "user":
            return web.json_response({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "covia_write", "arguments": '{"path": "w/notes/x", "value": 42}'}}]}}]})
        if mode == "tool" and last["role"] == "tool":
            return web.json_response({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c2", "type": "function",
                 "function": {"name": "complete_task", "arguments": '{"output": {"done": true}}'}}]}}]})
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "plain"}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/v1"
    yield state
    await runner.cleanup()


def _openai_rt(store, env: dict[str, str]) -> Runtime:
    return Runtime(store, adapter_factory=lambda m: make_adapter(m, environ=env) if m.__class__.__name__ == "OpenAIModel"
                   else make_adapter(m))


async def test_openai_tool_call_round_trip_through_the_run_loop(fake_openai, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    store = LmdbStore(tmp_path / "db")
    rt = _openai_rt(store, {"LATTICE_TEST_KEY": SECRET})
    try:
        await rt.start()
        model = {"provider": "openai", "model": "m", "baseUrl": fake_openai["url"], "apiKeyEnv": "LATTICE_TEST_KEY"}
        await call(rt, "agent:create", agentId="A", config={"model": model})
        job = await call(rt, "agent:request", agentId="A", input="write it", wait=True)
        assert job["status"] == "COMPLETE" and job["output"] == {"done": True}
        assert await read(rt, "w/notes/x") == 42
        auth, body = fake_openai["seen"][1]
        assert auth == f"Bearer {SECRET}"
        assert body["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "written"}
        # failures suspend with a readable error
        for mode, code in (("500", "llm_error"), ("garbage", "llm_error")):
            fake_openai["mode"] = mode
            await call(rt, "agent:resume", agentId="A")
            await call(rt, "agent:request", agentId="A", input="again", wait=True)
            rec = await read(rt, "g/A")
            assert rec["status"] == "SUSPENDED" and rec["error"]["code"] == code, rec["error"]
            assert rec["error"]["message"]
            if mode == "500":
                assert "upstream exploded" in rec["error"]["message"]
        await call(rt, "agent:update", agentId="A", config={"model": {**model, "timeout": 0.2}})
        fake_openai["mode"] = "slow"
        await call(rt, "agent:resume", agentId="A")

        async def suspended():
            rec = await read(rt, "g/A")
            return rec["status"] == "SUSPENDED" and rec["error"]["code"] == "llm_timeout"
        await until(suspended)
        fake_openai["mode"] = "tool"
        await call(rt, "agent:update", agentId="A", config={"model": model})
        await call(rt, "agent:resume", agentId="A")

        async def drained():
            return (await read(rt, "g/A/status")) == "SLEEPING"
        await until(drained)
        await rt.close()
    finally:
        store.close()
    # the key is in no stored object
    blob = b"".join(p.read_bytes() for p in (tmp_path / "db").rglob("*") if p.is_file())
    assert SECRET.encode() not in blob
    assert caplog.records and SECRET not in caplog.text  # nor in any log line


async def test_missing_api_key_env_suspends_with_config_error(rt: Runtime) -> None:
    rt.adapter_factory = lambda m: make_adapter(m, environ={}) if m.__class__.__name__ == "OpenAIModel" else make_adapter(m)
    model = {"provider": "openai", "model": "m", "baseUrl": "http://127.0.0.1:9/v1", "apiKeyEnv": "NOPE_KEY"}
    await call(rt, "agent:create", agentId="A", config={"model": model})
    await call(rt, "agent:request", agentId="A", input="x", wait=True)
    err = (await read(rt, "g/A"))["error"]
    assert err["code"] == "llm_config" and "NOPE_KEY" in err["message"]

