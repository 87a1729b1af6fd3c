"""Garbage collection through the engine: nothing reachable is ever freed, what was removed is.

A property test runs random histories (requests, forks at versions, removals, overwrites,
workspace edits) with collections at random points; after each: fsck is clean, every
agent and the workspace read the same as before, every agent replays identical, and
nothing unreachable is left. Plus retention of finished jobs, the operator route and the
CLI (offline, and asking a running server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.errors import GcRunning
from lattice.fsck import fsck
from lattice.gc import collect
from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from ops.domain.check import make_check_head
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out, read, scripted
from tests.serve import BIN, free_port, serve

ENV = {k: v for k, v in os.environ.items() if k != "LATTICE_URL"}

EXAMPLES = int(os.environ.get("LATTICE_GC_EXAMPLES", "20"))
AGENTS = ["A", "B", "C", "D"]
TOOLS = scripted({"when": "note", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/memo", "value": "n"}}]},
                 {"content": "ok"})
STEP = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(AGENTS), st.integers(0, 3)),
    st.tuples(st.just("fork"), st.sampled_from(AGENTS), st.integers(0, 20)),
    st.tuples(st.just("remove"), st.sampled_from(AGENTS), st.just(0)),
    st.tuples(st.just("overwrite"), st.sampled_from(AGENTS), st.just(0)),
    st.tuples(st.just("write"), st.sampled_from(["w/a", "w/b/c", "w/big"]), st.integers(0, 3)),
    st.tuples(st.just("wdelete"), st.sampled_from(["w/a", "w/b"]), st.just(0)),
    st.tuples(st.just("gc"), st.just(""), st.just(0)),
)


async def snapshot(rt: Runtime) -> dict[str, Any]:
    """Every ref's value, read through the API."""
    out_: dict[str, Any] = {"w": await read(rt, "w")}
    for name, _ in rt.store.refs("g/"):
        aid = name.split("/", 2)[2]
        out_[name] = await read(rt, f"g/{aid}")
    return out_


async def check(rt: Runtime, before: dict[str, Any]) -> None:
    report = fsck(rt.store, check_head=make_check_head(rt.store))
    assert report.ok, report.problems[:5]
    assert await snapshot(rt) == before
    for name, _ in rt.store.refs("g/"):
        r = await out(rt, "agent:replay", agentId=name.split("/", 2)[2])
        assert r["identical"] is True, (name, r)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_collection_never_frees_what_is_reachable(steps: list[tuple[str, str, int]]) -> None:
    async def go() -> None:
        rt = Runtime(MemoryStore())
        await rt.start()
        for a in AGENTS:
            await out(rt, "agent:create", agentId=a, config=TOOLS)
        n = 0
        done = 0
        for op, who, k in steps:
            n += 1
            if op == "request":
                j = await call(rt, "agent:request", agentId=who, input=f"note {n} " + "t" * (k * 200), wait=True)
                done += j["status"] == "COMPLETE"
            elif op == "fork":
                await call(rt, "agent:fork", sourceId=who, agentId=f"{who}{n}", at=k)
            elif op == "remove":
                await call(rt, "agent:delete", agentId=who, remove=True)
            elif op == "overwrite":
                await call(rt, "agent:create", agentId=who, config=TOOLS, overwrite=True, state={"n": n})
            elif op == "write":
                await call(rt, "covia:write", path=who, value={"n": n, "text": "v" * (k * 300)})
            elif op == "wdelete":
                await call(rt, "covia:delete", path=who)
            else:
                for a in list(rt.running()):
                    await rt.idle(*a)
                before = await snapshot(rt)
                await rt.gc()
                await check(rt, before)
        for a in list(rt.running()):
            await rt.idle(*a)
        before = await snapshot(rt)
        report = await rt.gc()
        await check(rt, before)
        assert report["live"] == sum(1 for _ in rt.store.objects())  # nothing unreachable left
        assert done or not any(op == "request" for op, _, _ in steps) or any(op in ("remove",) for op, _, _ in steps)
        await rt.close()
    asyncio.new_event_loop().run_until_complete(go())


async def test_a_removed_source_frees_only_what_its_fork_does_not_need(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="S", config=TOOLS)
    for i in range(5):
        await out(rt, "agent:request", agentId="S", input=f"turn {i} " + "x" * 400, wait=True)
    await out(rt, "agent:fork", sourceId="S", agentId="F", at=4)
    for i in range(5):
        await out(rt, "agent:request", agentId="S", input=f"later {i} " + "y" * 400, wait=True)
    history = await read(rt, "g/F/state/history")
    await out(rt, "agent:delete", agentId="S", remove=True)
    report = await rt.gc(retain_jobs_ms=0)  # also drop the finished jobs, which hold the task inputs
    assert report["freed"] > 0 and report["jobsRemoved"] > 0
    assert await read(rt, "g/F/state/history") == history
    assert (await out(rt, "agent:replay", agentId="F"))["identical"] is True  # its source version was kept
    assert all("later" not in json.dumps(v) for v in (await snapshot(rt)).values())


async def test_retention_drops_only_finished_jobs_older_than_the_age() -> None:
    now = [1_000_000]
    rt = Runtime(MemoryStore(), clock=lambda: now[0])
    await rt.start()
    await out(rt, "agent:create", agentId="A")
    await out(rt, "agent:suspend", agentId="A")
    old = await call(rt, "covia:write", path="w/x", value=1)
    waiting = await call(rt, "agent:request", agentId="A", input="waits")  # PENDING: never dropped
    now[0] += 10_000
    recent = await call(rt, "covia:write", path="w/y", value=2)
    report = await rt.gc(retain_jobs_ms=5_000)
    assert report["jobsRemoved"] == 3  # create, suspend, the old write: finished before now - 5 s
    assert rt.get_job("local", old["jobId"]) is None
    assert rt.get_job("local", recent["jobId"])["status"] == "COMPLETE"
    assert rt.get_job("local", waiting["jobId"])["status"] == "PENDING"
    await rt.close()


def test_lattice_gc_offline_and_beside_a_server(tmp_path: Path) -> None:
    data = tmp_path / "db"

    async def populate() -> None:
        store = LmdbStore(data)
        rt = Runtime(store)
        await rt.start()
        await out(rt, "agent:create", agentId="A")
        await out(rt, "agent:request", agentId="A", input="z" * 2000, wait=True)
        await out(rt, "agent:delete", agentId="A", remove=True)
        await rt.close()
        store.close()
    asyncio.run(populate())
    offline = subprocess.run([str(BIN / "lattice"), "gc", "--data", str(data), "--retain-jobs", "0s"],
                             capture_output=True, text=True, env=ENV)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith("freed ") and "finished jobs dropped" in offline.stdout
    assert int(offline.stdout.split()[1].replace(",", "")) > 0
    port = free_port()
    server = serve(port, "--data", str(data))
    try:
        url = f"http://127.0.0.1:{port}"
        beside = subprocess.run([str(BIN / "lattice"), "gc", "--url", url], capture_output=True, text=True,
                                env=ENV)
        assert beside.returncode == 0 and beside.stdout.startswith("freed 0 objects"), beside.stdout + beside.stderr
        locked = subprocess.run([str(BIN / "lattice"), "compact", "--data", str(data)], capture_output=True,
                                text=True, env=ENV)
        assert locked.returncode != 0 and "stop the server first" in locked.stderr
    finally:
        server.terminate()
        server.wait(10)
    compacted = subprocess.run([str(BIN / "lattice"), "compact", "--data", str(data)], capture_output=True,
                               text=True, env=ENV)
    assert compacted.returncode == 0 and " -> " in compacted.stdout, compacted.stderr
    fsck_ = subprocess.run([str(BIN / "lattice"), "fsck", "--data", str(data)], capture_output=True, text=True)
    assert fsck_.returncode == 0, fsck_.stdout + fsck_.stderr


async def test_the_operator_route_is_for_admins_only() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from ops.surfaces.app import create_app
    from ops.surfaces.auth import Tokens
    tokens = Tokens({"alice-token-0123456789": "alice", "root-token-0123456789a": "root"})
    app = create_app(Runtime(MemoryStore()), tokens=tokens, admins=frozenset({"root"}))
    async with TestClient(TestServer(app)) as c:
        r = await c.post("/api/v1/admin/gc", json={}, headers={"Authorization": "Bearer alice-token-0123456789"})
        assert r.status == 403 and (await r.json())["errorCode"] == "forbidden"
        r = await c.post("/api/v1/admin/gc", json={"retainJobs": 0},
                         headers={"Authorization": "Bearer root-token-0123456789a"})
        assert r.status == 200 and {"freed", "freedBytes", "live", "jobsRemoved"} <= set(await r.json())
        r = await c.post("/api/v1/admin/gc", json={"retainJobs": -1},
                         headers={"Authorization": "Bearer root-token-0123456789a"})
        assert r.status == 400


def test_collect_on_a_store_without_a_collector_is_refused() -> None:
    class NoGc(MemoryStore):
        gc_sweep = None  # type: ignore[assignment]
    assert not callable(NoGc().gc_sweep)
    with pytest.raises(TypeError):
        collect(NoGc())


class _Busy(MemoryStore):
    """A store on which another process is always collecting (as several servers on one database see it)."""

    def gc_begin(self, extra=None):
        raise GcRunning("another garbage collection is running on the test store")


async def test_periodic_gc_skips_a_round_when_another_collection_runs(caplog):
    caplog.set_level(logging.INFO, logger="lattice.runtime")
    r = Runtime(_Busy(), gc_every=0.01)
    await r.start()
    try:
        await asyncio.sleep(0.1)
    finally:
        await r.close()
    skipped = [rec for rec in caplog.records if "gc skipped" in rec.getMessage()]
    assert skipped and all(rec.levelno == logging.INFO for rec in skipped)
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
