"""agent:prune squashes old versions into one base version; later versions keep their seq and state."""

from __future__ import annotations

import pytest

from lattice.fsck import fsck
from ops.domain.check import make_check_head
from ops.domain.errors import Rejected
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out, read, scripted

TOOLS = scripted({"when": "note", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/memo", "value": "n"}}]},
                 {"content": "ok"})


async def grow(rt: Runtime, aid: str, n: int, text: str = "turn") -> None:
    for i in range(n):
        await out(rt, "agent:request", agentId=aid, input=f"{text} {i} " + "x" * 400, wait=True)


async def roots(rt: Runtime, aid: str) -> dict[int, str]:
    """seq -> the state digest (root) of each version, read through covia:read at that version."""
    vs = (await out(rt, "agent:history", agentId=aid, limit=10_000))["versions"]
    from lattice.commits import read_commit
    from lattice.digest import from_hex
    return {v["seq"]: read_commit(rt.store, from_hex(v["id"])).root.data.hex() for v in vs}


async def test_prune_keeps_later_versions_and_frees_the_rest(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=TOOLS)
    await grow(rt, "A", 10)
    before = await roots(rt, "A")
    late = await read(rt, "g/A/state/history")
    r = await out(rt, "agent:prune", agentId="A", keepLast=5)
    top = max(before)
    assert r == {"agentId": "A", "squashed": top - 4, "base": top - 5, "head": top}
    after = await roots(rt, "A")
    assert set(after) == set(range(top - 5, top + 1))  # the base and the kept versions
    assert all(after[s] == before[s] for s in after)  # same state digests
    vs = (await out(rt, "agent:history", agentId="A", limit=100))["versions"]
    assert vs[-1]["op"] == "agent:prune" and vs[-1]["caller"] == "local"  # who pruned, and when (ts)
    assert await read(rt, "g/A/state/history") == late
    job = await call(rt, "covia:read", path="g/A", at=1)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found" and "pruned" in job["error"]["message"]
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    await out(rt, "agent:fork", sourceId="A", agentId="F", at=top - 5)  # the base is a version like any other
    gc = await rt.gc(retain_jobs_ms=0)
    assert gc["freed"] > 0
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok
    await grow(rt, "A", 2, "after")  # it goes on
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    assert (await out(rt, "agent:replay", agentId="F"))["identical"] is True


async def test_prune_below_a_fork_point_is_refused(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    await grow(rt, "A", 8)
    await out(rt, "agent:fork", sourceId="A", agentId="F", at=4)
    head = rt.store.ref("g/local/A")
    job = await call(rt, "agent:prune", agentId="A", before=10)
    assert job["status"] == "FAILED" and job["error"]["code"] == "conflict" and "'F'" in job["error"]["message"]
    assert rt.store.ref("g/local/A") == head
    await out(rt, "agent:prune", agentId="A", before=5)  # at the fork point: allowed, the fork's version stays
    assert (await out(rt, "agent:replay", agentId="F"))["identical"] is True


async def test_prune_a_forks_source_and_the_fork_itself(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    await grow(rt, "A", 4)
    await out(rt, "agent:fork", sourceId="A", agentId="F")
    await grow(rt, "F", 6, "fork")
    await out(rt, "agent:prune", agentId="F", keepLast=2)  # the fork's own chain
    await out(rt, "agent:delete", agentId="A", remove=True)
    await rt.gc(retain_jobs_ms=0)
    assert (await out(rt, "agent:replay", agentId="F"))["identical"] is True
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok


async def test_prune_with_pending_work_and_while_running(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    await grow(rt, "A", 5)
    await out(rt, "agent:suspend", agentId="A")
    task = await call(rt, "agent:request", agentId="A", input="waits")
    await out(rt, "agent:prune", agentId="A", keepLast=2)  # a pending task needs no version
    await out(rt, "agent:resume", agentId="A")
    await rt.idle("local", "A")
    assert rt.get_job("local", task["jobId"])["status"] == "COMPLETE"
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True

    from tests.ops.test_runtime import Gate
    gate = Gate()
    rt.adapter_factory = gate
    await call(rt, "agent:request", agentId="A", input="in flight")
    await gate.entered.wait()
    job = await call(rt, "agent:prune", agentId="A", keepLast=2)
    assert job["status"] == "FAILED" and job["error"]["code"] == "conflict" and "RUNNING" in job["error"]["message"]
    gate.release.set()


@pytest.mark.parametrize("inp, code", [({}, "invalid_input"), ({"before": 3, "keepLast": 2}, "invalid_input"),
                                       ({"before": 1}, "invalid_range"), ({"keepLast": 100}, "invalid_range"),
                                       ({"before": 99}, "invalid_range")])
async def test_bad_prune_points(rt: Runtime, inp: dict, code: str) -> None:
    await out(rt, "agent:create", agentId="A")
    await grow(rt, "A", 3)
    head = rt.store.ref("g/local/A")
    try:
        job = await call(rt, "agent:prune", agentId="A", **inp)
        assert job["status"] == "FAILED" and job["error"]["code"] == code, job
    except Rejected as e:
        assert e.code == code
    assert rt.store.ref("g/local/A") == head
