"""A client that disconnects during a waited request leaves no handler behind, and its task stays accepted."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from lattice.memory import MemoryStore
from ops.engine.runtime import Runtime
from ops.surfaces.app import create_app
from tests.serve import free_port


async def test_disconnect_stops_the_wait_not_the_commit() -> None:
    rt = Runtime(MemoryStore())
    runner = web.AppRunner(create_app(rt), handler_cancellation=True)  # as lattice serve runs it
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/api/v1/invoke"
    try:
        async with aiohttp.ClientSession() as s:
            await s.post(url, json={"operation": "agent:create",
                                    "input": {"agentId": "H", "config": {"model": {"provider": "hang"}}}})
            baseline = len(asyncio.all_tasks())
            for _ in range(5):
                try:
                    await s.post(url, json={"operation": "agent:request", "input": {"agentId": "H", "input": "x",
                                                                                     "wait": True}},
                                 timeout=aiohttp.ClientTimeout(total=0.2))
                except asyncio.TimeoutError:
                    pass
            await asyncio.sleep(0.2)
            assert len(asyncio.all_tasks()) <= baseline + 1  # no waiting handlers left (the agent's loop may start)
            async with s.post(url, json={"operation": "agent:info", "input": {"agentId": "H"}}) as r:
                info = (await r.json())["output"]
            assert info["taskCount"] == 5 and info["status"] == "RUNNING"  # every request was accepted
            assert all(k.startswith("g/") for k in rt.watched())
    finally:
        await runner.cleanup()
