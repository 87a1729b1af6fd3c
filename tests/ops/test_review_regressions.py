"""Regressions found by review: each test reproduces a bug that was fixed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lattice.fsck import fsck
from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from ops.domain.check import make_check_head
from ops.llm import LlmReply
from ops.engine.runtime import Limits, Runtime
from tests.ops.helpers import CALLER, call, out, scripted


def runtime(store: Any = None, **kw: Any) -> Runtime:
    return Runtime(store or MemoryStore(), **kw)


async def test_messages_to_itself_and_twice_to_another_replay_identical() -> None:
    rt = runtime()
    await rt.start()
    await out(rt, "agent:create", agentId="B")
    await out(rt, "agent:suspend", agentId="B")
    await out(rt, "agent:create", agentId="A", config=scripted(
        {"when": "go", "toolCalls": [{"name": "agent_message", "arguments": {"agentId": "A", "message": "note to self"}},
                                     {"name": "agent_message", "arguments": {"agentId": "B", "message": "m1"}},
                                     {"name": "agent_message", "arguments": {"agentId": "B", "message": "m2"}}]},
        {"content": "ok"}))
    await out(rt, "agent:request", agentId="A", input="go", wait=True)
    await rt.idle(CALLER, "A")
    ops = [v["op"] for v in (await out(rt, "agent:history", agentId="A"))["versions"]]
    assert ops.count("agent:run") == 2 and "agent:message" not in ops  # the self-message is part of the run
    assert [m["message"] for m in (await out(rt, "covia:read", path="g/B/inbox"))["value"]] == ["m1", "m2"]
    for a in ("A", "B"):
        assert (await out(rt, "agent:replay", agentId=a))["identical"] is True, a
    await rt.close()


async def test_what_if_replay_touches_nothing_live() -> None:
    rt = runtime()
    await rt.start()
    await out(rt, "agent:create", agentId="Peer")
    await out(rt, "agent:suspend", agentId="Peer")
    await out(rt, "agent:create", agentId="A", config=scripted(
        {"when": "go", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/memo", "value": "from A"}},
                                     {"name": "agent_message", "arguments": {"agentId": "Peer", "message": "hi"}}]},
        {"content": "done"}))
    await out(rt, "agent:request", agentId="A", input="go", wait=True)
    await out(rt, "covia:write", path="w/memo", value="user edited")
    heads = {n: d for n, d in rt.store.refs("g/")}
    peer_inbox = (await out(rt, "covia:read", path="g/Peer/inbox"))["value"]
    r = await out(rt, "agent:replay", agentId="A", **{"from": 0}, into="A2")
    # the what-if's agent_message says truthfully that nothing was delivered, so the run's next request
    # differs from the recorded one and is called live: version 1 (the request) diverged
    assert r["diverged"] == [1]
    assert (await out(rt, "covia:read", path="w/memo"))["value"] == "user edited"
    assert (await out(rt, "covia:read", path="g/Peer/inbox"))["value"] == peer_inbox
    assert {n: d for n, d in rt.store.refs("g/") if not n.endswith("/A2")} == heads
    await rt.close()


class Gate:
    def __init__(self, replies: list[LlmReply]):
        self.replies, self.entered, self.release = replies, asyncio.Event(), asyncio.Event()

    def __call__(self, model: Any) -> Any:
        gate = self

        class _A:
            async def complete(self, request):
                gate.entered.set()
                await gate.release.wait()
                return gate.replies.pop(0)
        return _A()


async def test_replay_uses_the_version_a_run_started_from() -> None:
    from ops.llm import ToolCall
    gate = Gate([LlmReply(toolCalls=[ToolCall(id="c", name="covia_list", arguments={"path": "w"})]),
                 LlmReply(content="finished")])
    rt = runtime(adapter_factory=gate)
    await rt.start()
    await out(rt, "agent:create", agentId="A")
    await call(rt, "agent:request", agentId="A", input="x")
    await asyncio.wait_for(gate.entered.wait(), 2)
    await out(rt, "agent:update", agentId="A", config={"tools": ["complete_task"], "maxIterations": 1})  # mid-run
    gate.release.set()
    await rt.idle(CALLER, "A")
    assert len((await out(rt, "covia:read", path="g/A/timeline"))["value"]) == 1
    r = await out(rt, "agent:replay", agentId="A")
    assert r["identical"] is True, r
    await rt.close()


async def test_what_if_keeps_senders_and_skips_cancelled_tasks() -> None:
    rt = runtime()
    await rt.start()
    await out(rt, "agent:create", agentId="A", config=scripted(
        {"when": "ping", "toolCalls": [{"name": "agent_message", "arguments": {"agentId": "B", "message": "hello"}}]},
        {"content": "ok"}))
    await out(rt, "agent:create", agentId="B")
    await out(rt, "agent:request", agentId="A", input="ping", wait=True)
    await rt.idle(CALLER, "B")
    await out(rt, "agent:suspend", agentId="B")
    task = await call(rt, "agent:request", agentId="B", input="never run me")
    await out(rt, "agent:cancelTask", agentId="B", taskId=task["jobId"])
    await out(rt, "agent:resume", agentId="B")
    r = await out(rt, "agent:replay", agentId="B", **{"from": 0}, into="B2")
    assert r["diverged"] == []
    hist = (await out(rt, "covia:read", path="g/B2/state/history"))["value"]
    assert hist[0]["content"] == "[message from agent:A] hello"
    tl = (await out(rt, "covia:read", path="g/B2/timeline"))["value"]
    assert all(e["tasks"] != ["never run me"] for e in tl)
    await rt.close()


async def test_a_run_cannot_overfill_another_agents_inbox() -> None:
    rt = runtime(limits=Limits(max_queued=5))
    await rt.start()
    await out(rt, "agent:create", agentId="B")
    await out(rt, "agent:suspend", agentId="B")
    calls = [{"name": "agent_message", "arguments": {"agentId": "B", "message": f"m{i}"}} for i in range(50)]
    await out(rt, "agent:create", agentId="A", config=scripted({"when": "go", "toolCalls": calls}, {"content": "ok"}))
    await out(rt, "agent:request", agentId="A", input="go", wait=True)
    assert len((await out(rt, "covia:read", path="g/B/inbox"))["value"]) == 5
    await rt.close()


async def test_concurrent_creates_cannot_exceed_max_agents(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "db", durable=False)
    rt = runtime(store, limits=Limits(max_agents=3))
    await rt.start()
    jobs = await asyncio.gather(*(call(rt, "agent:create", agentId=f"C{i}") for i in range(20)))
    assert sum(j["status"] == "COMPLETE" for j in jobs) == 3
    assert all(j["error"]["code"] == "limit_exceeded" for j in jobs if j["status"] == "FAILED")
    assert len(list(store.refs("g/"))) == 3
    await rt.close()
    store.close()


async def test_fsck_beside_a_busy_runtime_and_after_resume_without_wake() -> None:
    store = MemoryStore()
    rt = runtime(store)
    await rt.start()
    for i in range(6):
        await out(rt, "agent:create", agentId=f"E{i}")
    await out(rt, "agent:suspend", agentId="E0")
    await call(rt, "agent:request", agentId="E0", input="later")
    await out(rt, "agent:resume", agentId="E0", autoWake=False)  # SLEEPING with work: allowed
    stop = asyncio.Event()

    async def load(a: str) -> None:
        while not stop.is_set():
            await call(rt, "agent:request", agentId=a, input="x", wait=True)
    loads = [asyncio.ensure_future(load(f"E{i}")) for i in range(1, 6)]
    reports = []
    for _ in range(5):
        reports.append(await asyncio.to_thread(fsck, store, check_head=make_check_head(store)))
    stop.set()
    await asyncio.gather(*loads)
    assert all(r.ok for r in reports), [r.problems[:3] for r in reports]
    await rt.close()


async def test_memory_jobs_are_kept_per_caller() -> None:
    from ops.engine.jobs_index import LocalJobIndex
    store = MemoryStore()
    rt = Runtime(store, jobs=LocalJobIndex(store, per_caller=10))
    await rt.start()
    mine = await call(rt, "agent:list", caller="alice")
    first_of_bob = await call(rt, "agent:list", caller="bob")
    for _ in range(30):
        await call(rt, "agent:list", caller="bob")
    assert rt.get_job("alice", mine["jobId"]) is not None  # bob's jobs never push out alice's
    assert rt.get_job("bob", mine["jobId"]) is None
    assert rt.get_job("bob", first_of_bob["jobId"]) is None  # bob keeps only his newest 10
    await rt.close()


async def test_diff_of_large_maps_is_in_path_order() -> None:
    rt = runtime()
    await rt.start()
    await out(rt, "agent:create", agentId="A", state={"m": {f"k{i:02d}": i for i in range(40)}})
    await out(rt, "agent:update", agentId="A", state={"m": {**{f"k{i:02d}": i for i in range(40)}, "k05": -1,
                                                            "k33": -1, "new": 1}})
    d = await out(rt, "agent:diff", agentId="A", **{"from": 0})
    paths = [c["path"] for c in d["changes"] if c["path"].startswith("state/m/")]
    assert paths == ["state/m/k05", "state/m/k33", "state/m/new"]
    await rt.close()
