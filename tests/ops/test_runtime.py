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
from ops.llm import LlmReply, make_adapter
from ops.engine.runtime import Runtime
from tests.ops.helpers import CALLER, answer, call, read, until


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
    assert answer(rt.get_job(CALLER, first["jobId"])) == "one"
    assert answer(rt.get_job(CALLER, second["jobId"])) == "two"
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
    assert job["status"] == "COMPLETE" and answer(job) == "recovered"
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
        assert answer(tx_rt.get_job(CALLER, job["jobId"])) == "survive"
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
    rt = _openai_rt(store, {"LATTICE_TEST_API_KEY": SECRET})
    try:
        await rt.start()
        model = {"provider": "openai", "model": "m", "baseUrl": fake_openai["url"], "apiKeyEnv": "LATTICE_TEST_API_KEY"}
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
    model = {"provider": "openai", "model": "m", "baseUrl": "http://127.0.0.1:9/v1", "apiKeyEnv": "NOPE_API_KEY"}
    await call(rt, "agent:create", agentId="A", config={"model": model})
    await call(rt, "agent:request", agentId="A", input="x", wait=True)
    err = (await read(rt, "g/A"))["error"]
    assert err["code"] == "llm_config" and "NOPE_API_KEY" in err["message"]


async def test_api_key_env_must_name_an_api_key_variable(rt: Runtime) -> None:
    from ops.domain.errors import Rejected
    model = {"provider": "openai", "model": "m", "baseUrl": "http://127.0.0.1:9/v1", "apiKeyEnv": "AWS_SECRET_ACCESS_KEY"}
    with pytest.raises(Rejected) as e:
        await call(rt, "agent:create", agentId="A", config={"model": model})
    assert e.value.path == "$.input.config.model.apiKeyEnv" and "_API_KEY" in e.value.message
    assert list(rt.store.refs("")) == []


# -- regressions from review ---------------------------------------------------------------

async def test_large_state_config_and_triggers_stay_usable(rt: Runtime) -> None:
    """Fields with more than 32 entries are stored as HMap/Vec; every operation must still work."""
    state = {f"k{i}": i for i in range(40)}
    config = {"model": {"provider": "echo"}, "metadata": {f"x{i}": i for i in range(40)}}
    await call(rt, "agent:create", agentId="A", config=config, state=state)
    info = await call(rt, "agent:info", agentId="A")
    assert info["status"] == "COMPLETE" and info["output"]["config"]["metadata"]["x39"] == 39
    assert (await call(rt, "agent:update", agentId="A", state={"k0": "new"},
                       config={"metadata": {**config["metadata"], "x0": "y"}}))["status"] == "COMPLETE"
    assert (await call(rt, "agent:fork", sourceId="A", agentId="B", config={"description": "z"}))["status"] == "COMPLETE"
    assert (await read(rt, "g/B/state/k0")) == "new" and (await read(rt, "g/B/state/config/description")) == "z"
    assert (await read(rt, "g/B/state/config/metadata/x0")) == "y"
    job = await call(rt, "agent:request", agentId="A", input="hi", wait=True)
    assert job["status"] == "COMPLETE" and answer(job) == "hi"
    await call(rt, "agent:suspend", agentId="A")
    triggers = [await call(rt, "agent:trigger", agentId="A", wait=False) for _ in range(40)]
    assert len(await read(rt, "g/A/triggers")) == 40
    await call(rt, "agent:resume", agentId="A")

    async def done():
        return all(rt.get_job(CALLER, t["jobId"])["status"] == "COMPLETE" for t in triggers)
    await until(done)
    assert (await read(rt, "g/A/status")) == "SLEEPING"
    assert (await call(rt, "agent:delete", agentId="A", remove=True))["status"] == "COMPLETE"


async def test_unstorable_result_suspends_instead_of_wedging(rt: Runtime) -> None:
    from ops.llm import ToolCall

    class Huge:  # msgspec.json decodes ints of any size, so a real endpoint can send this
        async def complete(self, request):
            return LlmReply(toolCalls=[ToolCall(id="c", name="complete_task", arguments={"output": 2 ** 70})])
    rt.adapter_factory = lambda m: Huge()
    await call(rt, "agent:create", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="x", wait=2000)
    rec = await read(rt, "g/A")
    assert rec["status"] == "SUSPENDED" and rec["error"]["code"] == "invalid_value", rec["error"]
    assert rt.get_job(CALLER, job["jobId"])["status"] == "PENDING"
    assert not rt.running()


async def test_tool_side_effects_apply_once_and_only_with_the_run(rt: Runtime) -> None:
    # first LLM call writes and messages; the second call fails (no rule matches the tool reply)
    cfg = {"model": {"provider": "scripted", "rules": [
        {"when": "go", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/log/a", "value": 1}},
                                     {"name": "agent_message", "arguments": {"agentId": "B", "message": "hi"}}]}]}}
    await call(rt, "agent:create", agentId="B", config={"model": {"provider": "hang"}})
    await call(rt, "agent:suspend", agentId="B")
    await call(rt, "agent:create", agentId="A", config=cfg)
    await call(rt, "agent:request", agentId="A", input="go", wait=True)
    assert (await read(rt, "g/A/status")) == "SUSPENDED"
    assert await read(rt, "w/log") is None and await read(rt, "g/B/inbox") == []  # nothing leaked
    fixed = {"model": {"provider": "scripted", "rules": [
        cfg["model"]["rules"][0],
        {"when": "delivered", "toolCalls": [{"name": "complete_task", "arguments": {"output": "ok"}}]}]}}
    await call(rt, "agent:update", agentId="A", config=fixed)
    await call(rt, "agent:resume", agentId="A")

    async def idle():
        return (await read(rt, "g/A/status")) == "SLEEPING"
    await until(idle)
    assert await read(rt, "w/log") == {"a": 1}
    assert [m["message"] for m in await read(rt, "g/B/inbox")] == ["hi"]  # exactly once
    assert (await read(rt, "g/B/inbox"))[0]["caller"] == "agent:A"


async def test_tool_reads_see_the_runs_own_writes(rt: Runtime) -> None:
    cfg = {"model": {"provider": "scripted", "rules": [
        {"when": "start", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/n", "value": 7}}]},
        {"when": "written", "toolCalls": [{"name": "covia_read", "arguments": {"path": "w/n"}}]},
        {"when": "7", "toolCalls": [{"name": "complete_task", "arguments": {"output": "saw 7"}}]}]}}
    await call(rt, "agent:create", agentId="A", config=cfg)
    job = await call(rt, "agent:request", agentId="A", input="start", wait=True)
    assert answer(job) == "saw 7" and await read(rt, "w/n") == 7


async def test_stale_run_is_not_merged_into_a_recreated_agent(rt: Runtime) -> None:
    from ops.domain.agent import Work
    from ops.domain.cycle import Outcome
    from ops.engine.runs import complete, fail
    await call(rt, "agent:create", agentId="A")
    old_base = rt.store.ref("g/local/A")  # the version an old run started from
    await call(rt, "agent:create", agentId="A", overwrite=True, state={"fresh": True})  # same ms is fine
    out = Outcome([{"role": "user", "content": "old"}], "old", "COMPLETE", "old", None, [], [], [(["x"], 1)], [])
    base_rec = (await read(rt, "g/A"))
    await complete(rt.engine, CALLER, "A", old_base, base_rec, Work(None, None, [], []), out, 0)
    await fail(rt.engine, CALLER, "A", old_base, RuntimeError("old"))
    await call(rt, "agent:delete", agentId="A", remove=True)
    await call(rt, "agent:create", agentId="A", state={"fresh": True})  # a new chain
    await complete(rt.engine, CALLER, "A", old_base, base_rec, Work(None, None, [], []), out, 0)
    rec = await read(rt, "g/A")
    assert rec["state"]["history"] == [] and rec["timeline"] == [] and rec["status"] == "SLEEPING"
    assert await read(rt, "w/x") is None


async def test_resume_autowake_starts_pending_work_of_a_sleeping_agent(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A")
    await call(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="later")
    await call(rt, "agent:resume", agentId="A", autoWake=False)
    assert (await read(rt, "g/A/status")) == "SLEEPING"
    out = await call(rt, "agent:resume", agentId="A")
    assert out["output"]["status"] == "RUNNING"

    async def done():
        return rt.get_job(CALLER, job["jobId"])["status"] == "COMPLETE"
    await until(done)


async def test_adapter_exception_text_never_escapes(rt: Runtime) -> None:
    class Boom:
        async def complete(self, request):
            raise ValueError("header value contains sk-secret-value")
    rt.adapter_factory = lambda m: Boom()
    await call(rt, "agent:create", agentId="A")
    await call(rt, "agent:request", agentId="A", input="x", wait=True)
    err = (await read(rt, "g/A"))["error"]
    assert err["code"] == "llm_error" and "ValueError" in err["message"] and "sk-secret" not in err["message"]


@pytest.mark.parametrize("history, path", [
    ([1, 2], "$.input.state.history[0]"),
    ([{"role": "robot", "content": "x"}], "$.input.state.history[0].role"),
    ([{"role": "user", "content": 5}], "$.input.state.history[0].content"),
])
async def test_history_is_validated(rt: Runtime, history, path) -> None:
    from ops.domain.errors import Rejected
    with pytest.raises(Rejected) as e:
        await call(rt, "agent:create", agentId="A", state={"history": history})
    assert e.value.code == "invalid_input" and e.value.path == path
    await call(rt, "agent:create", agentId="B")
    with pytest.raises(Rejected):
        await call(rt, "agent:update", agentId="B", state={"history": history})


async def test_cancel_task_job_is_persisted(rt: Runtime) -> None:
    await call(rt, "agent:create", agentId="A")
    await call(rt, "agent:suspend", agentId="A")
    task = await call(rt, "agent:request", agentId="A", input="x")
    job = await call(rt, "agent:cancelTask", agentId="A", taskId=task["jobId"])
    assert job["output"] == {"agentId": "A", "taskId": task["jobId"], "cancelled": True}
    assert (await read(rt, f"j/{job['jobId']}"))["status"] == "COMPLETE"
    assert rt.get_job(CALLER, task["jobId"])["status"] == "CANCELLED"


async def test_wait_follows_an_in_flight_run_through_a_suspend(rt: Runtime) -> None:
    gate = Gate()
    rt.adapter_factory = gate
    await call(rt, "agent:create", agentId="A")
    waiting = asyncio.ensure_future(call(rt, "agent:request", agentId="A", input="x", wait=True))
    await asyncio.wait_for(gate.entered.wait(), 2)
    await call(rt, "agent:suspend", agentId="A")
    await asyncio.sleep(0.02)
    assert not waiting.done()  # the in-flight run still completes
    gate.release.set()
    job = await asyncio.wait_for(waiting, 2)
    assert job["status"] == "COMPLETE" and answer(job) == "x"


async def test_limits_fail_with_a_stable_code_and_change_nothing() -> None:
    from ops.engine.runtime import Limits
    rt = Runtime(MemoryStore(), limits=Limits(max_agents=2, max_queued=3))
    await rt.start()
    try:
        await call(rt, "agent:create", agentId="A")
        await call(rt, "agent:create", agentId="B")
        before = (list(rt.store.refs("")), len(rt.store))
        for job in (await call(rt, "agent:create", agentId="C"), await call(rt, "agent:fork", sourceId="A", agentId="C")):
            assert job["status"] == "FAILED" and job["error"]["code"] == "limit_exceeded" and job["error"]["hint"]
        assert (list(rt.store.refs("")), len(rt.store)) == before
        assert (await call(rt, "agent:create", agentId="A", overwrite=True))["status"] == "COMPLETE"  # not a new one
        await call(rt, "agent:delete", agentId="B", remove=True)
        assert (await call(rt, "agent:create", agentId="C"))["status"] == "COMPLETE"  # room again
        await call(rt, "agent:suspend", agentId="A")
        await call(rt, "agent:request", agentId="A", input="1")
        await call(rt, "agent:message", agentId="A", message="2")
        await call(rt, "agent:trigger", agentId="A", wait=False)
        before = (list(rt.store.refs("")), len(rt.store))
        for op, inp in (("agent:request", {"input": "4"}), ("agent:message", {"message": "4"}),
                        ("agent:trigger", {"wait": False})):
            job = await call(rt, op, agentId="A", **inp)
            assert job["status"] == "FAILED" and job["error"]["code"] == "limit_exceeded", job
        assert (list(rt.store.refs("")), len(rt.store)) == before
    finally:
        await rt.close()
