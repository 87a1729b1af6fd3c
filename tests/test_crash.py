"""Crash safety: a real server under load, killed with SIGKILL at random moments, loses nothing it acknowledged.

The number of kills is ``LATTICE_CRASH_KILLS`` (default 6, enough for CI);
``LATTICE_CRASH_KILLS=50 pytest tests/test_crash.py -s`` prints the figures. It runs on LMDB (``--data``),
SQLite (``--store sqlite:FILE``) and PostgreSQL (``--store``, a database of the server tests/pg.py starts).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.pg import postgres_server, postgres_url  # noqa: F401  (pytest fixtures)
from tests.serve import BIN, free_port, serve

AGENTS = [f"A{i}" for i in range(4)]


def start(store: list[str], port: int) -> subprocess.Popen:
    return serve(port, *store, "--log-level", "warning")


async def invoke(s: aiohttp.ClientSession, url: str, op: str, **inp: Any) -> dict:
    async with s.post(f"{url}/api/v1/invoke", json={"operation": op, "input": inp}) as r:
        body = await r.json()
        assert r.status in (200, 202), body
        return body


async def load(url: str, stop: asyncio.Event, acked_jobs: dict, acked_writes: dict, rnd: random.Random) -> None:
    """Clients sending waited requests and workspace writes until the server dies."""
    async def client(n: int) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    if n % 2 == 0:
                        text = f"c{n}-{i}-{rnd.random():.6f}"
                        job = await invoke(s, url, "agent:request", agentId=rnd.choice(AGENTS), input=text, wait=True)
                        if job["status"] == "COMPLETE":
                            assert job["output"]["output"] == text  # a text answer, wrapped
                            acked_jobs[job["jobId"]] = job["output"]
                    else:
                        key, value = f"k{n}-{i}-{rnd.randrange(10**9)}", {"n": i, "text": "v" * rnd.randrange(400)}
                        job = await invoke(s, url, "covia:write", path=f"w/crash/{key}", value=value)
                        if job["status"] == "COMPLETE":
                            acked_writes[key] = value
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                    return  # the server died: whatever was not acknowledged may be lost
    await asyncio.gather(*(client(n) for n in range(8)))


async def scenario(store: list[str], kills: int, seed: int) -> dict:
    """``store``: the serve options naming the store (``--data DIR`` or ``--store URL``)."""
    rnd = random.Random(seed)
    acked_jobs: dict[str, Any] = {}
    acked_writes: dict[str, Any] = {}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(store, port)
    async with aiohttp.ClientSession() as s:
        for a in AGENTS:
            await invoke(s, url, "agent:create", agentId=a, config={"model": {"provider": "echo"}})
    for _ in range(kills):
        stop = asyncio.Event()
        task = asyncio.ensure_future(load(url, stop, acked_jobs, acked_writes, rnd))
        await asyncio.sleep(rnd.uniform(0.2, 1.0))
        proc.kill()  # SIGKILL, mid-flight
        proc.wait()
        stop.set()
        await task
        proc = start(store, port)
    # let recovery finish the runs that were in flight, then check everything acknowledged
    async with aiohttp.ClientSession() as s:
        deadline = time.monotonic() + 30
        while True:
            agents = (await invoke(s, url, "agent:list"))["output"]["agents"]
            if all(a["status"] == "SLEEPING" for a in agents):
                break
            assert time.monotonic() < deadline, agents
            await asyncio.sleep(0.05)
        for jid, output in acked_jobs.items():
            async with s.get(f"{url}/api/v1/jobs/{jid}") as r:
                job = await r.json()
            assert job["status"] == "COMPLETE" and job["output"] == output, job
        for key, value in acked_writes.items():
            got = (await invoke(s, url, "covia:read", path=f"w/crash/{key}"))["output"]
            assert got["exists"] is True and got["value"] == value, key
        jobs = (await invoke(s, url, "covia:read", path="j", maxSize=1 << 30))["output"]["value"]
        stuck = [j for j in jobs.values() if j["status"] in ("STARTED", "PENDING")]
        assert not stuck, stuck[:3]
    proc.terminate()
    proc.wait(timeout=10)
    fsck = subprocess.run([str(BIN / "lattice"), "fsck", *store, "--quiet"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    return {"kills": kills, "jobs": len(acked_jobs), "writes": len(acked_writes), "fsck": fsck.stderr.strip()}


@pytest.mark.parametrize("backend", ["lmdb", "sqlite", "postgresql"])
def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path, backend: str, request) -> None:
    kills = int(os.environ.get("LATTICE_CRASH_KILLS", "6"))
    store = ["--data", str(tmp_path / "data")] if backend == "lmdb" else \
        ["--store", f"sqlite:{tmp_path / 'lattice.db'}"] if backend == "sqlite" else \
        ["--store", request.getfixturevalue("postgres_url")]
    figures = asyncio.run(scenario(store, kills, seed=kills))
    print(f"\ncrash test: {figures}")
    assert figures["jobs"] > 0 and figures["writes"] > 0


async def folded_scenario(store: list[str]) -> None:
    """A pending task's job (folded into its agent's commit) and a started one survive SIGKILL as they
    were, then finish and cancel as any job."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(store, port)
    async with aiohttp.ClientSession() as s:
        await invoke(s, url, "agent:create", agentId="S", config={"model": {"provider": "echo"}})
        await invoke(s, url, "agent:suspend", agentId="S")
        waiting = await invoke(s, url, "agent:request", agentId="S", input="after the crash")
        await invoke(s, url, "agent:create", agentId="H", config={"model": {"provider": "hang"}})
        started = await invoke(s, url, "agent:request", agentId="H", input="in flight")
        assert (waiting["status"], started["status"]) == ("PENDING", "STARTED")
    proc.kill()
    proc.wait()
    proc = start(store, port)
    try:
        async with aiohttp.ClientSession() as s:
            for job in (waiting, started):
                async with s.get(f"{url}/api/v1/jobs/{job['jobId']}") as r:
                    assert await r.json() == job  # as it was acknowledged
            await invoke(s, url, "agent:resume", agentId="S")
            async with s.put(f"{url}/api/v1/jobs/{started['jobId']}/cancel") as r:
                assert (await r.json())["status"] == "CANCELLED"
            deadline = time.monotonic() + 10
            while True:
                async with s.get(f"{url}/api/v1/jobs/{waiting['jobId']}") as r:
                    job = await r.json()
                if job["status"] == "COMPLETE":
                    break
                assert time.monotonic() < deadline, job
                await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    fsck = subprocess.run([str(BIN / "lattice"), "fsck", *store, "--quiet"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_sigkill_keeps_folded_jobs(tmp_path: Path) -> None:
    asyncio.run(folded_scenario(["--data", str(tmp_path / "data")]))
