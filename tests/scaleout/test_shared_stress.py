"""Concurrency stress across runtimes sharing one store: mixed operations sent to any of three
runtimes, one runtime killed (as SIGKILL would: nothing released) and replaced every ~0.4 s;
then every invariant of tests/ops/test_stress.py holds.

On a MemoryStore (runtimes joined by a bus, tests/scaleout/helpers.py) and on PostgreSQL (one
PostgresStore and PgNotifier per runtime, LISTEN/NOTIFY between them). Duration:
``LATTICE_SHARED_STRESS_SECONDS`` (default 3); ``-s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any, Callable

import pytest

from lattice.fsck import fsck
from lattice.memory import MemoryStore
from lattice.postgres import PostgresStore
from ops.domain.check import make_check_head
from ops.engine.pg import pg_seams
from ops.engine.runtime import Runtime
from tests.ops.helpers import check_work
from tests.scaleout.helpers import FAST, Bus, call, kill, settle, shared_runtime

CALLER = "local"


class Cluster:
    """Runtimes sharing one store: ``live`` ones, and the means to kill one and start another."""

    def __init__(self, make: Callable[[], Runtime], reader: Any):
        self.make, self.reader = make, reader
        self.live: list[Runtime] = []
        self.dead: list[Runtime] = []

    async def add(self) -> None:
        rt = self.make()
        await rt.start()
        self.live.append(rt)

    async def kill_one(self, rnd: random.Random) -> None:
        rt = self.live.pop(rnd.randrange(len(self.live)))
        kill(rt)
        self.dead.append(rt)
        await self.add()

    async def close(self) -> None:
        for rt in self.live:
            await rt.close()


@pytest.fixture(params=["memory", "postgres"])
async def cluster(request):
    if request.param == "memory":
        store, bus = MemoryStore(), Bus()
        c = Cluster(lambda: shared_runtime(store, bus), store)
        stores: list[Any] = []
    else:
        url = request.getfixturevalue("postgres_url")
        stores = []

        def make() -> Runtime:
            s = PostgresStore(url, pool_size=3)
            stores.append(s)
            return Runtime(s, **pg_seams(url, FAST, poll=0.5))
        c = Cluster(make, None)
    for _ in range(3):
        await c.add()
    c.reader = c.reader or c.live[0].store
    yield c
    await c.close()
    await asyncio.sleep(0.05)
    for s in stores:
        s.close()


async def test_stress_across_runtimes(cluster: Cluster) -> None:
    seconds = float(os.environ.get("LATTICE_SHARED_STRESS_SECONDS", "3"))
    rnd = random.Random(4321)
    counts: dict[str, int] = {}
    kills = 0

    async def op(name: str, **inp: Any) -> dict | None:
        """Through a random live runtime; None when it was killed before answering (not acknowledged)."""
        counts[name] = counts.get(name, 0) + 1
        rt = rnd.choice(cluster.live)
        try:
            job = await asyncio.wait_for(call(rt, name, **inp), 3.0)
        except asyncio.TimeoutError:
            return None
        return None if rt in cluster.dead else job

    agents = [f"S{i}" for i in range(6)]
    for a in agents:
        assert (await op("agent:create", agentId=a, config={"model": {"provider": "echo"}}))["status"] == "COMPLETE"
    requests: dict[str, tuple[str, str]] = {}
    messages: dict[str, str] = {}
    writes: dict[str, str] = {}
    forks = 0

    async def client(n: int) -> None:
        nonlocal forks
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            a = rnd.choice(agents)
            r = rnd.random()
            if r < 0.45:
                text = f"task {n}.{i}"
                job = await op("agent:request", agentId=a, input=text, wait=rnd.random() < 0.5)
                if job is not None and job["status"] != "FAILED":
                    requests[job["jobId"]] = (a, text)
            elif r < 0.65:
                text = f"msg {n}.{i}"
                job = await op("agent:message", agentId=a, message=text)
                if job is not None and job["status"] == "COMPLETE":
                    messages[text] = a
            elif r < 0.72:
                path, value = f"w/s{n}/v{rnd.randrange(4)}", f"{n}.{i}"
                job = await op("covia:write", path=path, value=value)
                if job is not None and job["status"] == "COMPLETE":
                    writes[path] = value
            elif r < 0.78:
                await op("agent:trigger", agentId=a, wait=False)
            elif r < 0.83:
                await op("agent:suspend", agentId=a)
            elif r < 0.92:
                await op("agent:resume", agentId=a)
            elif r < 0.97 and requests:
                jid = rnd.choice(list(requests))
                await op("agent:cancelTask", agentId=requests[jid][0], taskId=jid)
            elif forks < 6:
                forks += 1
                job = await op("agent:fork", sourceId=a, agentId=f"F{forks}")
                if job is not None and job["status"] == "COMPLETE":
                    agents.append(f"F{forks}")
            await asyncio.sleep(0)

    async def killer() -> None:
        nonlocal kills
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(rnd.uniform(0.2, 0.6))
            await cluster.kill_one(rnd)
            kills += 1

    t0 = time.monotonic()
    await asyncio.gather(killer(), *(client(n) for n in range(12)))
    rt = cluster.live[0]
    await settle(rt, agents, FAST.bound + 10)
    elapsed = time.monotonic() - t0

    async def value(path: str) -> Any:
        return (await call(rt, "covia:read", path=path, maxSize=1 << 30))["output"]["value"]
    await check_work(value, lambda jid: rt.get_job(CALLER, jid), requests, messages)
    for path, v in writes.items():
        got = await value(path)
        assert got is not None and got.split(".")[0] == v.split(".")[0], (path, got, v)
    store = cluster.reader
    assert [n for n, _ in store.refs("l/")] == []  # no lease held at rest
    report = fsck(store, check_head=make_check_head(store))
    assert report.ok, report.problems[:5]
    print(f"\nshared stress: {elapsed:.1f} s, {kills} runtimes killed, {sum(counts.values())} operations, "
          f"{len(requests)} tasks, {len(messages)} messages, {len(writes)} writes, {report.refs} refs checked")
    assert kills >= 3 and requests and messages
