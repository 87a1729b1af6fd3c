"""Concurrency stress: many clients, many agents, mixed operations; then every invariant is checked.

Duration: ``LATTICE_STRESS_SECONDS`` (default 4); ``-s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from lattice.fsck import fsck
from lattice.lmdb import LmdbStore
from lattice.sqlite import SqliteStore
from ops.domain.check import make_check_head
from ops.domain.contracts import decode_input, lookup
from ops.engine.runtime import Runtime
from tests.ops.helpers import check_work

CALLER = "local"


@pytest.mark.parametrize("backend", ["lmdb", "sqlite"])
@pytest.mark.parametrize("collect", [False, True], ids=["plain", "with-gc-loop"])
async def test_stress_invariants(tmp_path: Path, collect: bool, backend: str) -> None:
    """16 clients, mixed operations; with ``collect``, garbage is made all the time (workspace
    values replaced, forks removed) and collected in a loop beside them (lattice.gc)."""
    seconds = float(os.environ.get("LATTICE_STRESS_SECONDS", "4"))
    store = LmdbStore(tmp_path / "db", durable=False) if backend == "lmdb" else \
        SqliteStore(tmp_path / "db.sqlite", durable=False)
    rt = Runtime(store)
    await rt.start()
    rnd = random.Random(1234)
    counts: dict[str, int] = {}

    async def call(op: str, **inp: Any) -> dict:
        counts[op] = counts.get(op, 0) + 1
        c = lookup(op)
        return await rt.invoke(c, decode_input(c, inp), CALLER)

    agents = [f"S{i}" for i in range(8)]
    for a in agents:
        await call("agent:create", agentId=a, config={"model": {"provider": "echo"}})
    requests: dict[str, tuple[str, str]] = {}  # jobId -> (agent, text)
    messages: dict[str, str] = {}  # text -> agent
    forks = 0
    writes: dict[str, str] = {}  # workspace path -> the last value acknowledged
    collections: list[dict] = []
    done = asyncio.Event()

    async def collector() -> None:
        while not done.is_set():
            collections.append(await rt.gc())
            await asyncio.sleep(0.01)

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
                job = await call("agent:request", agentId=a, input=text, wait=rnd.random() < 0.5)
                if job["status"] != "FAILED":
                    requests[job["jobId"]] = (a, text)
            elif r < 0.70:
                text = f"msg {n}.{i}"
                job = await call("agent:message", agentId=a, message=text)
                if job["status"] == "COMPLETE":
                    messages[text] = a
            elif r < 0.76:
                await call("agent:trigger", agentId=a, wait=False)
            elif r < 0.82:
                await call("agent:suspend", agentId=a)
            elif r < 0.92:
                await call("agent:resume", agentId=a)
            elif r < 0.97 and requests:
                jid = rnd.choice(list(requests))
                await call("agent:cancelTask", agentId=requests[jid][0], taskId=jid)
            elif forks < 8:
                forks += 1
                new = f"F{forks}"
                job = await call("agent:fork", sourceId=a, agentId=new, includeTimeline=rnd.random() < 0.5)
                if job["status"] == "COMPLETE":
                    agents.append(new)
            if collect and rnd.random() < 0.3:  # garbage: a replaced value, a removed fork of a fork
                path, value = f"w/c{n}/v{rnd.randrange(4)}", f"{n}.{i} " + "z" * rnd.randrange(0, 600)
                if (await call("covia:write", path=path, value=value))["status"] == "COMPLETE":
                    writes[path] = value
                tmp = f"T{n}"
                if (await call("agent:fork", sourceId=a, agentId=tmp))["status"] == "COMPLETE":
                    await call("agent:delete", agentId=tmp, remove=True)
            await asyncio.sleep(0)

    t0 = time.monotonic()
    gc_task = asyncio.create_task(collector()) if collect else None
    await asyncio.gather(*(client(n) for n in range(16)))
    done.set()
    if gc_task is not None:
        await gc_task
    for a in agents:
        await call("agent:resume", agentId=a)
    for a in agents:
        await rt.idle(CALLER, a)
    elapsed = time.monotonic() - t0

    async def value(path: str) -> Any:
        return (await call("covia:read", path=path, maxSize=1 << 30))["output"]["value"]
    checks = await check_work(value, lambda jid: rt.get_job(CALLER, jid), requests, messages)
    # every acknowledged workspace write is readable
    for path, value in writes.items():
        assert (await call("covia:read", path=path))["output"]["value"] == value
        checks += 1
    if collect:  # the collections freed garbage, and one more frees the rest: then nothing unreachable is left
        assert len(collections) >= 3 and sum(c["freed"] for c in collections) > 0, collections[-3:]
        final = await rt.gc()
        assert final["live"] == sum(1 for _ in store.objects()), final
    # every job and task state agrees with its agent's record; every object intact
    report = fsck(store, check_head=make_check_head(store))
    assert report.ok, report.problems[:5]
    checks += report.refs
    await rt.close()
    store.close()
    total = sum(counts.values())
    print(f"\nstress: {elapsed:.1f} s, {total} operations {counts}, {len(agents)} agents, "
          f"{len(requests)} tasks, {len(messages)} messages, {checks} invariant checks, "
          f"{len(collections)} collections freeing {sum(c['freed'] for c in collections)} objects")
