"""Garbage collection on PostgreSQL beside writers in several processes: the concurrency stress of
tests/ops/test_stress.py run by three runtimes sharing one database (each with its own PostgresStore
behind the process cache of `lattice serve`, as three server processes), while a fourth store (as
`lattice gc --store` from another process) collects in a loop; garbage is made all the time
(replaced workspace values, forks removed). Then: every invariant of the stress test, every agent
replays identical, one more collection leaves nothing unreachable, fsck is clean.

Duration: ``LATTICE_STRESS_SECONDS`` (default 4); ``-s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from typing import Any

from lattice.fsck import fsck
from lattice.gc import GcReport, collect, mark
from lattice.postgres import PostgresStore
from ops.domain.check import make_check_head
from ops.engine.cached import CachedStore
from ops.engine.links import version_links
from ops.engine.pg import pg_seams
from ops.engine.runtime import Runtime
from tests.ops.helpers import check_work
from tests.scaleout.helpers import FAST, call, settle

CALLER = "local"


async def test_gc_in_a_loop_beside_three_runtimes_on_postgres(postgres_url: str) -> None:
    seconds = float(os.environ.get("LATTICE_STRESS_SECONDS", "4"))
    stores = [PostgresStore(postgres_url, pool_size=3) for _ in range(3)]
    runtimes = [Runtime(CachedStore(s), **pg_seams(postgres_url, FAST, poll=0.5)) for s in stores]
    for rt in runtimes:
        await rt.start()
    collector = PostgresStore(postgres_url, pool_size=2)
    rnd = random.Random(97)
    counts: dict[str, int] = {}

    async def op(name: str, **inp: Any) -> dict:
        counts[name] = counts.get(name, 0) + 1
        return await call(rnd.choice(runtimes), name, **inp)

    agents = [f"S{i}" for i in range(6)]
    for a in agents:
        assert (await op("agent:create", agentId=a, config={"model": {"provider": "echo"}}))["status"] == "COMPLETE"
    requests: dict[str, tuple[str, str]] = {}
    messages: dict[str, str] = {}
    writes: dict[str, str] = {}
    reports: list[GcReport] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    forks = 0

    def collect_in_a_loop() -> None:
        try:
            while not stop.is_set():
                reports.append(collect(collector, None, version_links))
                time.sleep(0.01)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    async def client(n: int) -> None:
        nonlocal forks
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            a = rnd.choice(agents)
            r = rnd.random()
            if r < 0.40:
                text = f"task {n}.{i}"
                job = await op("agent:request", agentId=a, input=text, wait=rnd.random() < 0.5)
                if job["status"] != "FAILED":
                    requests[job["jobId"]] = (a, text)
            elif r < 0.62:
                text = f"msg {n}.{i}"
                if (await op("agent:message", agentId=a, message=text))["status"] == "COMPLETE":
                    messages[text] = a
            elif r < 0.68:
                await op("agent:trigger", agentId=a, wait=False)
            elif r < 0.73:
                await op("agent:suspend", agentId=a)
            elif r < 0.83:
                await op("agent:resume", agentId=a)
            elif r < 0.88 and requests:
                jid = rnd.choice(list(requests))
                await op("agent:cancelTask", agentId=requests[jid][0], taskId=jid)
            elif r < 0.90 and forks < 6:
                forks += 1
                if (await op("agent:fork", sourceId=a, agentId=f"F{forks}"))["status"] == "COMPLETE":
                    agents.append(f"F{forks}")
            else:  # garbage: a replaced value, a removed fork
                path, value = f"w/c{n}/v{rnd.randrange(3)}", f"{n}.{i} " + "z" * rnd.randrange(0, 3000)
                if (await op("covia:write", path=path, value=value))["status"] == "COMPLETE":
                    writes[path] = value
                tmp = f"T{n}"
                if (await op("agent:fork", sourceId=a, agentId=tmp))["status"] == "COMPLETE":
                    await op("agent:delete", agentId=tmp, remove=True)
            await asyncio.sleep(0)

    t0 = time.monotonic()
    gc_thread = threading.Thread(target=collect_in_a_loop)
    gc_thread.start()
    try:
        await asyncio.gather(*(client(n) for n in range(12)))
    finally:
        stop.set()
        await asyncio.to_thread(gc_thread.join)
    assert not errors, errors
    rt = runtimes[0]
    await settle(rt, agents, 20)
    elapsed = time.monotonic() - t0

    async def value(path: str) -> Any:
        return (await call(rt, "covia:read", path=path, maxSize=1 << 30))["output"]["value"]
    await check_work(value, lambda jid: rt.get_job(CALLER, jid), requests, messages)
    for path, v in writes.items():  # every acknowledged write readable
        assert await value(path) == v, path
    for a in agents:  # nothing a version needs was freed: every agent replays identical
        replay = (await call(rt, "agent:replay", agentId=a))["output"]
        assert replay["identical"] is True, (a, replay)
    freed = sum(r.freed for r in reports)
    assert len(reports) >= 3 and freed > 0, reports[-3:]
    via = await runtimes[1].gc(retain_jobs_ms=0)  # the operator route's way: a runtime collects, jobs dropped
    assert via["jobsRemoved"] > 0 and via["freed"] > 0, via
    generations = {s.generation for s in stores}
    for r in runtimes:
        await r.close()
    for s in stores:
        s.close()
    final = collect(collector, None, version_links)
    live = mark(collector, [d for _, d in collector.refs("")], extra=version_links)
    assert {d for d, _ in collector.objects()} <= live, final  # nothing unreachable left
    report = fsck(collector, check_head=make_check_head(collector))
    assert report.ok, report.problems[:5]
    collector.close()
    print(f"\npg gc stress: {elapsed:.1f} s, {sum(counts.values())} operations {counts}, {len(agents)} agents, "
          f"{len(requests)} tasks, {len(messages)} messages, {len(reports)} collections freeing {freed} objects "
          f"(the runtimes' stores last saw generations {sorted(generations)}), {report.refs} refs checked")
