"""Is MCP as fast as REST? ``covia:read`` called sequentially over both, in one run.

A server (``create_app`` over a ``MemoryStore``, in its own process, so client and
server do not share an event loop) holds ``w/bench`` (a small map). Each client
then calls ``covia:read`` of ``w/bench`` ``--calls`` times, one after the other,
on one kept-alive connection:

* ``REST aiohttp``: ``POST /api/v1/invoke`` with aiohttp, the floor;
* ``REST ops.client``: the same through :class:`ops.client.Client` (validates the
  input locally, decodes the job into the contract's output Struct);
* ``REST httpx2``: the same with httpx2, the HTTP client the ``mcp`` SDK uses;
* ``MCP raw aiohttp``: ``tools/call`` JSON-RPC POSTs to ``/mcp`` with aiohttp, no
  SDK: what the server's MCP layer costs;
* ``MCP official SDK (mode)``: ``Client.call_tool("covia_read", ...)`` of the official
  ``mcp`` SDK, in its ``legacy`` and ``auto`` modes, JSON replies (the server's
  default for a read); and ``legacy`` against a server answering with SSE.

Target: MCP from the official client within 1.5x of REST (calls/s ratio).
Each client runs ``--rounds`` times, interleaved with the others; its best round is kept.
Run: ``python bench/mcp_vs_rest.py`` (``--calls 500 --rounds 1`` for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

READ = {"path": "w/bench"}


def serve(port: int, mode: str) -> None:
    """The server process: the v1 app on 127.0.0.1:port, MCP replies in ``mode``."""
    import logging

    from aiohttp import web

    from lattice.memory import MemoryStore
    from ops.surfaces import mcp
    from ops.surfaces.app import create_app
    from ops.engine.runtime import Runtime

    logging.basicConfig(level=logging.WARNING)
    app = create_app(Runtime(MemoryStore()))
    app[mcp.RESPONSE_MODE] = mode
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(mode: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), mode], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the bench server did not start") from None
            time.sleep(0.05)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def timed(n: int, warmup: int, call) -> tuple[float, list[float]]:
    for _ in range(warmup):
        await call()
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        await call()
        lat.append((time.perf_counter() - s) * 1000)
    return n / (time.perf_counter() - t0), lat


async def rest_aiohttp(url: str, n: int, warmup: int):
    import aiohttp
    body = {"operation": "covia:read", "input": READ}
    async with aiohttp.ClientSession() as s:
        async def call():
            async with s.post(url + "/api/v1/invoke", json=body) as r:
                job = await r.json()
                assert job["status"] == "COMPLETE" and job["output"]["exists"], job
        return await timed(n, warmup, call)


async def rest_httpx2(url: str, n: int, warmup: int):
    import httpx2
    body = {"operation": "covia:read", "input": READ}
    async with httpx2.AsyncClient() as s:
        async def call():
            job = (await s.post(url + "/api/v1/invoke", json=body)).json()
            assert job["status"] == "COMPLETE" and job["output"]["exists"], job
        return await timed(n, warmup, call)


async def rest_client(url: str, n: int, warmup: int):
    from ops.surfaces.client import Client
    async with Client(url) as c:
        async def call():
            out = (await c.covia_read(**READ)).result()
            assert out.exists
        return await timed(n, warmup, call)


async def mcp_raw(url: str, n: int, warmup: int):
    import aiohttp
    h = {"Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/mcp", headers=h, json=init) as r:
            h = {**h, "Mcp-Session-Id": r.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25"}
        ids = iter(range(1, 1 << 30))

        async def call():
            msg = {"jsonrpc": "2.0", "id": next(ids), "method": "tools/call",
                   "params": {"name": "covia_read", "arguments": READ}}
            async with s.post(url + "/mcp", headers=h, json=msg) as r:
                res = (await r.json())["result"]
                assert not res["isError"] and res["structuredContent"]["output"]["exists"], res
        return await timed(n, warmup, call)


async def mcp_sdk(url: str, n: int, warmup: int, mode: str):
    from mcp.client.client import Client
    async with Client(url + "/mcp", mode=mode) as c:
        async def call():
            r = await c.call_tool("covia_read", READ)
            assert not r.is_error and r.structured_content["output"]["exists"], r
        return await timed(n, warmup, call)


async def prepare(url: str) -> None:
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/invoke", json={"operation": "covia:write", "input": {
                "path": "w/bench", "value": {"vendors": ["Acme", "Globex", "Initech"], "overdue": 3}}}) as r:
            assert (await r.json())["status"] == "COMPLETE"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="timed calls per client (default 3000)")
    ap.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept (default 3)")
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return

    print(f"# bench/mcp_vs_rest.py  python {platform.python_version()}  aiohttp {version('aiohttp')}  "
          f"mcp {version('mcp')}  httpx2 {version('httpx2')}  msgspec {version('msgspec')}")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}; "
          f"{args.calls} sequential covia:read calls per client after {args.warmup} warm-up calls, best of "
          f"{args.rounds} interleaved rounds; server in its own process on 127.0.0.1")
    rows = []
    for server_mode, runs in (("auto", [("REST aiohttp", rest_aiohttp), ("REST ops.client", rest_client),
                                        ("REST httpx2", rest_httpx2), ("MCP raw aiohttp", mcp_raw),
                                        ("MCP official SDK (legacy)", lambda u, n, w: mcp_sdk(u, n, w, "legacy")),
                                        ("MCP official SDK (auto)", lambda u, n, w: mcp_sdk(u, n, w, "auto"))]),
                              ("sse", [("MCP official SDK (legacy), SSE replies",
                                        lambda u, n, w: mcp_sdk(u, n, w, "legacy"))])):
        proc, url = start(server_mode)
        try:
            asyncio.run(prepare(url))
            best: dict[str, tuple] = {}
            for _ in range(args.rounds):
                for name, fn in runs:
                    rate, lat = asyncio.run(fn(url, args.calls, args.warmup))
                    if name not in best or rate > best[name][1]:
                        best[name] = (name, rate, pct(lat, 50), pct(lat, 99))
            rows += [best[name] for name, _ in runs]
        finally:
            proc.terminate()
            proc.wait(10)
    base = rows[0][1]
    print()
    rate_of = {r[0]: r[1] for r in rows}
    hx = rate_of["REST httpx2"]
    print("| client | calls/s | p50 ms | p99 ms | time/call vs REST aiohttp | vs REST httpx2 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rate, p50, p99 in rows:
        print(f"| {name} | {rate:,.0f} | {p50:.3f} | {p99:.3f} | {base / rate:.2f}x | {hx / rate:.2f}x |")
    sdk = rate_of["MCP official SDK (legacy)"]
    print()
    print(f"MCP from the official SDK (legacy) takes {base / sdk:.2f}x the time of REST over aiohttp and "
          f"{hx / sdk:.2f}x REST over httpx2; target <= 1.5x: {'met' if base / sdk <= 1.5 else 'NOT met'}. "
          f"Server side alone (raw JSON-RPC vs raw REST, both aiohttp): {base / rate_of['MCP raw aiohttp']:.2f}x.")


if __name__ == "__main__":
    main()
