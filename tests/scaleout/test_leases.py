"""Leases (ops/engine/leases.py) with several runtimes sharing one MemoryStore in this process.

The runtimes' notifiers are joined by a bus (tests/scaleout/helpers.py), as LISTEN/NOTIFY joins
processes; lease timing is short (FAST: a dead runtime's agents move within 0.42 s).
"""

from __future__ import annotations

import asyncio

import pytest

from lattice.errors import StoreError
from lattice.fsck import fsck
from lattice.memory import MemoryStore
from lattice.nodes import Tx
from lattice.commits import write_commit
from lattice.store import RefUpdate
from ops.domain.check import make_check_head
from ops.engine.leases import LeaseScheduler, LeaseTimes, beat_ref
from ops.engine.runtime import Runtime
from tests.ops.helpers import answer
from tests.scaleout.helpers import FAST, Bus, Gate, call, kill, lease_owner, shared_runtime, stall

ECHO = {"model": {"provider": "echo"}}
HANG = {"model": {"provider": "hang"}}


@pytest.fixture
async def pair():
    """Two started runtimes with the shared seams on one MemoryStore; closed after the test."""
    store, bus = MemoryStore(), Bus()
    rts = [shared_runtime(store, bus), shared_runtime(store, bus)]
    for rt in rts:
        await rt.start()
    yield store, bus, rts
    for rt in rts:
        await rt.close()


async def until(pred, timeout: float = 3.0) -> float:
    """Poll ``pred()`` until true; the seconds it took (fails after ``timeout``)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not pred():
        assert loop.time() - t0 < timeout, "condition not reached in time"
        await asyncio.sleep(0.005)
    return loop.time() - t0


def at_rest(store: MemoryStore) -> None:
    """No lease left, no agent RUNNING, fsck clean (no task recorded twice)."""
    assert [n for n, _ in store.refs("l/")] == []
    report = fsck(store, check_head=make_check_head(store))
    assert report.ok, report.problems


def test_timing_is_checked() -> None:
    assert LeaseTimes().bound == 7.0
    assert LeaseTimes.scaled(2).bound == pytest.approx(2.8)
    with pytest.raises(ValueError):
        LeaseTimes(lease=1, renew=1)


async def test_work_sent_to_either_runtime_completes_once(pair) -> None:
    store, _, (a, b) = pair
    for i in range(4):
        await call(a, "agent:create", agentId=f"A{i}", config=ECHO)
    jobs = await asyncio.gather(*(call((a, b)[n % 2], "agent:request", agentId=f"A{n % 4}", input=f"t{n}", wait=True)
                                  for n in range(40)))
    assert [answer(j) for j in jobs] == [f"t{n}" for n in range(40)]
    for i in range(4):
        info = (await call(b, "agent:info", agentId=f"A{i}"))["output"]
        assert info["status"] == "SLEEPING" and info["timelineLength"] >= 1
    assert not a.running() and not b.running()
    at_rest(store)


async def test_a_runtime_that_lost_its_lease_cannot_commit(pair) -> None:
    """A stalled runtime's agent is taken over; the run it had in flight is fenced off when it
    tries to commit, and the task is completed once, by the new holder."""
    store, bus, (a, b) = pair
    gate = Gate()
    a.adapter_factory = gate
    await call(a, "agent:create", agentId="X", config=ECHO)
    job = await call(a, "agent:request", agentId="X", input="once", wait=False)
    await until(lambda: gate.calls)  # a's run is in flight, waiting for its model
    assert lease_owner(store, "local", "X") == a.scheduler.owner
    stall(a)  # a stops renewing its heartbeat: b takes X over and re-runs the task
    await until(lambda: b.get_job("local", job["jobId"])["status"] == "COMPLETE", FAST.bound + 1)
    assert answer(b.get_job("local", job["jobId"])) == "once"
    done = await call(b, "agent:request", agentId="X", input="after", wait=True)
    assert done["status"] == "COMPLETE"
    gate.open()  # a's run answers now: its commit must be refused
    await until(lambda: not a.running())
    timeline = (await call(b, "covia:read", path="g/X/timeline"))["output"]["value"]
    assert [e["result"] for e in timeline] == ["once", "after"]
    at_rest(store)


async def test_a_dead_runtime_is_taken_over_within_the_bound(pair) -> None:
    store, _, (a, b) = pair
    await call(a, "agent:create", agentId="H", config=HANG)
    job = await call(a, "agent:request", agentId="H", input="x", wait=False)
    await until(lambda: a.running() == [("local", "H")])
    kill(a)
    took = await until(lambda: lease_owner(store, "local", "H") == b.scheduler.owner, FAST.bound + 1)
    assert took <= FAST.bound + 0.1, took
    assert b.running() == [("local", "H")]
    await until(lambda: store.ref(beat_ref(a.scheduler.owner)) is None)  # gone once no lease names it
    cancelled = await call(b, "agent:cancelTask", agentId="H", taskId=job["jobId"])
    assert cancelled["status"] == "COMPLETE"
    await until(lambda: not b.running())
    at_rest(store)


async def test_a_clean_stop_hands_the_agents_over_at_the_next_scan(pair) -> None:
    store, _, (a, b) = pair
    await call(a, "agent:create", agentId="H", config=HANG)
    await call(a, "agent:request", agentId="H", input="x", wait=False)
    await until(lambda: a.running() == [("local", "H")])
    await a.close()
    took = await until(lambda: lease_owner(store, "local", "H") == b.scheduler.owner)
    assert took <= FAST.scan + 0.1, took


async def test_cancel_and_remove_elsewhere_stop_the_run(pair) -> None:
    """A task cancelled, or its agent removed, through the other runtime: the holder's cycle stops
    and its lease is released (a hang model would never end the cycle by itself)."""
    store, _, (a, b) = pair
    for name in ("C", "D"):
        await call(a, "agent:create", agentId=name, config=HANG)
    job = await call(a, "agent:request", agentId="C", input="x", wait=False)
    await call(a, "agent:request", agentId="D", input="x", wait=False)
    await until(lambda: len(a.running()) == 2)
    out = await call(b, "agent:cancelTask", agentId="C", taskId=job["jobId"])
    assert out["status"] == "COMPLETE"
    assert (await call(b, "agent:delete", agentId="D", remove=True))["status"] == "COMPLETE"
    await until(lambda: not a.running())
    assert a.get_job("local", job["jobId"])["status"] == "CANCELLED"
    at_rest(store)


async def test_max_agents_holds_across_runtimes() -> None:
    from ops.engine.limits import Limits
    store, bus = MemoryStore(), Bus()
    rts = [shared_runtime(store, bus, limits=Limits(max_agents=5)) for _ in range(2)]
    for rt in rts:
        await rt.start()
    try:
        jobs = await asyncio.gather(*(call(rts[i % 2], "agent:create", agentId=f"M{i}", config=ECHO)
                                      for i in range(12)))
        assert sum(j["status"] == "COMPLETE" for j in jobs) == 5
        assert {j["error"]["code"] for j in jobs if j["status"] == "FAILED"} == {"limit_exceeded"}
        assert (await call(rts[1], "agent:delete", agentId="M0", remove=True))["status"] == "COMPLETE"
        assert (await call(rts[0], "agent:create", agentId="again", config=ECHO))["status"] == "COMPLETE"
        assert (await call(rts[0], "agent:create", agentId="over", config=ECHO))["status"] == "FAILED"
    finally:
        for rt in rts:
            await rt.close()


async def test_a_running_agent_without_lease_is_adopted() -> None:
    """A store written without leases (one process, or copied from LMDB) with an agent RUNNING:
    the first shared runtime to start adopts it and finishes its work."""
    store = MemoryStore()
    plain = Runtime(store)
    await plain.start()
    gate = Gate()
    plain.adapter_factory = gate
    await call(plain, "agent:create", agentId="O", config=ECHO)
    job = await call(plain, "agent:request", agentId="O", input="orphan", wait=False)
    await until(lambda: gate.calls)
    await plain.close()  # the run leaves no trace; O stays RUNNING, with no lease
    rt = shared_runtime(store, Bus())
    await rt.start()
    try:
        done = await call(rt, "agent:request", agentId="O", input="next", wait=True)
        assert done["status"] == "COMPLETE"
        await until(lambda: rt.get_job("local", job["jobId"])["status"] == "COMPLETE")
        assert answer(rt.get_job("local", job["jobId"])) == "orphan"
        await until(lambda: not rt.running())
        at_rest(store)
    finally:
        await rt.close()


@pytest.mark.parametrize("protocol", [99, 1], ids=["unknown", "format-2"])
async def test_a_live_process_of_another_protocol_is_refused(protocol: int) -> None:
    """Protocol 1 is format 2's engine: it cannot read format 3's vectors, nor tasks folded into
    their runs (its prune or removal would leave their refs keeping dropped versions alive)."""
    store, times = MemoryStore(), LeaseTimes(lease=0.2, renew=0.05, scan=0.05)
    tx = Tx(store)
    root = tx.put_root({"owner": "old", "protocol": protocol})
    beats = [write_commit(tx, parent=None, parent_commit=None, root=root, ts=i, op="process:beat", input=None,
                          caller="old")[0] for i in range(2)]
    store.commit(tx.objects, [RefUpdate("p/old", None, beats[0])])

    async def alive() -> None:
        i = 0
        while True:
            await asyncio.sleep(0.03)
            store.commit({}, [RefUpdate("p/old", beats[i % 2], beats[(i + 1) % 2])])
            i += 1
    beating = asyncio.ensure_future(alive())
    rt = shared_runtime(store, Bus(), times)
    with pytest.raises(StoreError, match=f"protocol {protocol};"):
        await rt.start()
    await rt.close()
    beating.cancel()
    rt = shared_runtime(store, Bus(), times)  # dead now: its heartbeat is deleted, the start goes on
    await rt.start()
    assert store.ref("p/old") is None and isinstance(rt.scheduler, LeaseScheduler)
    await rt.close()


def test_doctests() -> None:
    import doctest

    from ops.engine import leases, pg
    for module in (leases, pg):
        assert doctest.testmod(module).failed == 0, module.__name__
