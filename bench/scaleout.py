"""Several server processes on one PostgreSQL: throughput, step latency, disk per step, and
LangGraph's PostgresSaver on the same database and workload.

In one run, on one PostgreSQL server started for the run on this machine (durable: ``fsync``
and ``synchronous_commit`` on, PostgreSQL's defaults) and one durable LMDB directory:

* **throughput**: steps/s of ``agent:request`` (``wait: true``, ``echo`` model, a 400-character
  message) from ``--clients`` concurrent HTTP clients on ``--agents`` agents (client *i* drives
  agent *i*), with 1, 2 and 4 ``lattice serve --store postgresql://...`` processes on one
  database (client *i* talks to process *i mod P*: ``--routing sticky``; ``random``: any), and
  1 ``lattice serve --data DIR`` (LMDB); with the CPU each part used (servers, PostgreSQL,
  the client load generator, the whole machine) over the measured window;
* **step latency** at 1 client, p50/p99, PostgreSQL (1 process) and LMDB;
* **disk per step**: ``used_bytes`` of the status route over those steps
  (``pg_total_relation_size`` of the lattice's tables; LMDB pages in use);
* **vs LangGraph's PostgresSaver** (``langgraph-checkpoint-postgres``, the bench extra) on
  the same database: one conversation each, turn by turn, alternating; a turn is a
  400-character human message and a reply (the text reversed) from a deterministic fake
  model, ours through the runtime in process (``PostgresStore`` behind the same seams as
  ``lattice serve``), LangGraph's a one-node ``StateGraph`` with ``add_messages``
  (``durability="sync"``); step latency and bytes (``pg_total_relation_size`` of each side's
  tables) at N = 10, 100 and 1,000 turns.

Run: ``pip install -e '.[bench]'`` then ``python bench/scaleout.py`` (about 5 minutes);
``--quick`` (under 2 minutes: shorter windows, N = 10 and 100). ``--pg URL`` uses a running
server (superuser URL) instead of starting one. Prints the tables, the ratios against the
issue's targets, the library versions and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench/machine.py

import aiohttp  # noqa: E402
import psycopg  # noqa: E402

from machine import cpu_model, ver  # noqa: E402
from tests.pg import create_database, start_postgres  # noqa: E402
from tests.serve import free_port, serve  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------- measuring
def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_pids(port: int) -> list[int]:
    """The postmaster listening on ``port`` and its children."""
    procs: dict[int, tuple[int, str]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(p.name)] = (ppid, cmd)
    master = [pid for pid, (_, cmd) in procs.items() if "postgres" in cmd and f"-p {port}" in cmd
              and "pg_ctl" not in cmd]
    return master + [pid for pid, (ppid, _) in procs.items() if ppid in master]


def machine_busy() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of the whole machine since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(v[:8]) / TICK
    return total - (v[3] + v[4]) / TICK, total


class CpuMeter:
    """CPU used over a window, in % of one core: servers, PostgreSQL, this process, the machine."""

    def __init__(self, servers: list[int], pg_port: int | None):
        self.servers, self.pg_port = servers, pg_port

    def _sample(self) -> tuple:
        pg = postgres_pids(self.pg_port) if self.pg_port else []
        return (time.monotonic(), sum(proc_cpu(p) for p in self.servers), sum(proc_cpu(p) for p in pg),
                proc_cpu(os.getpid()), *machine_busy())

    def start(self) -> None:
        self.t0 = self._sample()

    def stop(self) -> dict[str, float]:
        t1 = self._sample()
        wall = t1[0] - self.t0[0]
        d = [b - a for a, b in zip(self.t0, t1)]
        return {"servers": 100 * d[1] / wall, "postgres": 100 * d[2] / wall, "client": 100 * d[3] / wall,
                "machine": 100 * d[4] / wall, "cores": round(d[5] / wall)}


def text_of(rng: random.Random, n: int = 400) -> str:
    return "".join(rng.choices(string.ascii_letters + " ", k=n))


# ----------------------------------------------------------------- servers
class Servers:
    """``procs`` `lattice serve` processes on one store (a PostgreSQL URL or an LMDB directory)."""

    def __init__(self, store: str, procs: int):
        self.store = store
        where = ["--store", store] if "://" in store else ["--data", store]
        self.ports = [free_port() for _ in range(procs)]
        self.procs = [serve(p, *where, "--log-level", "warning", "--max-queued", "100000",
                            output=subprocess.DEVNULL, timeout=60) for p in self.ports]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


async def invoke(s: aiohttp.ClientSession, url: str, op: str, **inp: Any) -> dict:
    async with s.post(f"{url}/api/v1/invoke", json={"operation": op, "input": inp}) as r:
        body = await r.json()
    if body.get("status") != "COMPLETE":
        raise RuntimeError(f"{op} did not complete: {body}")
    return body


async def used_bytes(s: aiohttp.ClientSession, url: str) -> int:
    async with s.get(f"{url}/api/v1/status") as r:
        return (await r.json())["store"]["used_bytes"]


class Config:
    """One configuration of the throughput runs: its servers and agents, and what its windows measured."""

    def __init__(self, backend: str, store: str, procs: int, pg_port: int | None):
        self.backend, self.procs, self.pg_port = backend, procs, pg_port
        self.servers = Servers(store, procs)
        self.names: list[str] = []
        self.lat: list[float] = []
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}

    async def prepare(self, s: aiohttp.ClientSession, agents: int) -> None:
        self.names = [f"T-{i}" for i in range(agents)]
        urls = self.servers.urls
        await asyncio.gather(*(invoke(s, urls[i % len(urls)], "agent:create", agentId=n,
                                      config={"model": {"provider": "echo"}}) for i, n in enumerate(self.names)))

    async def window(self, s: aiohttp.ClientSession, clients: int, warmup: float, seconds: float, routing: str,
                     text: str, rng: random.Random) -> None:
        """Load it from ``clients`` clients for ``warmup + seconds``; count the steps of the last ``seconds``."""
        loop = asyncio.get_running_loop()
        begin = loop.time() + warmup
        end = begin + seconds
        urls = self.servers.urls
        meter = CpuMeter(self.servers.pids(), self.pg_port)

        async def client(i: int) -> None:
            agent = self.names[i % len(self.names)]
            while (now := loop.time()) < end:
                url = urls[i % len(urls)] if routing == "sticky" else rng.choice(urls)
                await invoke(s, url, "agent:request", agentId=agent, input=text, wait=True)
                if now >= begin:
                    self.lat.append((loop.time() - now) * 1000)

        async def measure() -> dict[str, float]:
            await asyncio.sleep(begin - loop.time())
            meter.start()
            await asyncio.sleep(end - loop.time())
            return meter.stop()
        cpu, *_ = await asyncio.gather(measure(), *(client(i) for i in range(clients)))
        for k, v in cpu.items():  # time-weighted over the windows
            self.cpu[k] = (self.cpu.get(k, 0.0) * self.seconds + v * seconds) / (self.seconds + seconds)
        self.seconds += seconds

    def result(self) -> dict[str, Any]:
        return {"steps": len(self.lat) / self.seconds, "p50": pct(self.lat, 50), "p99": pct(self.lat, 99),
                "cpu": self.cpu}


async def throughput(configs: list[Config], clients: int, agents: int, warmup: float, seconds: float, rounds: int,
                     routing: str, rng: random.Random) -> None:
    """Every configuration's servers run at once (idle ones cost a heartbeat); the configurations
    take turns, ``rounds`` windows each in rotating order, so that the machine's other load falls
    on all of them alike."""
    text = text_of(rng)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as s:
        for c in configs:
            await c.prepare(s, agents)
        for r in range(rounds):
            for c in configs[r % len(configs):] + configs[:r % len(configs)]:
                await c.window(s, clients, warmup, seconds / rounds, routing, text, rng)
                print(f"  round {r + 1}/{rounds}: {c.backend} x{c.procs}", file=sys.stderr)


async def latency(stores: dict[str, str], steps: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Step latency at 1 client (one agent per store, sequential, the stores alternating step by
    step) and bytes on disk per step."""
    servers = {name: Servers(store, 1) for name, store in stores.items()}
    out: dict[str, dict[str, Any]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
            lat: dict[str, list[float]] = {name: [] for name in stores}
            before = {}
            for name, sv in servers.items():
                await invoke(s, sv.urls[0], "agent:create", agentId="L", config={"model": {"provider": "echo"}})
                for _ in range(20):
                    await invoke(s, sv.urls[0], "agent:request", agentId="L", input=text_of(rng), wait=True)
                before[name] = await used_bytes(s, sv.urls[0])
            names = list(stores)
            for i in range(steps):
                text = text_of(rng)
                for name in names[i % 2:] + names[:i % 2]:
                    t = time.perf_counter()
                    await invoke(s, servers[name].urls[0], "agent:request", agentId="L", input=text, wait=True)
                    lat[name].append((time.perf_counter() - t) * 1000)
            for name, sv in servers.items():
                after = await used_bytes(s, sv.urls[0])
                out[name] = {"p50": pct(lat[name], 50), "p99": pct(lat[name], 99),
                             "disk": (after - before[name]) / steps}
    finally:
        for sv in servers.values():
            sv.stop()
    return out


async def store_ceiling(url: str, writers: int, seconds: float, rng: random.Random) -> dict[str, float]:
    """What one PostgreSQL takes from one PostgresStore (one writer thread, group commit): commits/s
    of step-sized commits (6 new objects, 4.4 KB, 2 ref compare-and-swaps, as a step's two commits
    average) from ``writers`` concurrent committers; WAL bytes per commit; and the round trip of one
    ref read, the engine's most frequent blocking call."""
    from lattice.digest import digest
    from lattice.postgres import PostgresStore
    from lattice.store import RefUpdate
    store = PostgresStore(url)
    sizes = [1500, 900, 700, 600, 400, 300]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            lsn0 = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            done = 0

            async def writer(w: int) -> None:
                nonlocal done
                heads: list[bytes | None] = [None, None]
                while loop.time() < end:
                    objs = {}
                    for n in sizes:
                        data = rng.randbytes(n)
                        objs[digest(data)] = data
                    new = list(objs)[:2]
                    assert await store.acommit(objs, [RefUpdate(f"g/b/{w}", heads[0], new[0]),
                                                      RefUpdate(f"j/b/{w}", heads[1], new[1])])
                    heads = new
                    done += 1
            t0 = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(writers)))
            took = time.perf_counter() - t0
            wal = conn.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (lsn0,)).fetchone()[0]
        reads = []
        for _ in range(500):
            t = time.perf_counter()
            store.ref("g/b/0")
            reads.append((time.perf_counter() - t) * 1000)
    finally:
        store.close()
    return {"commits": done / took, "wal_per_commit": float(wal) / done, "mb_s": float(wal) / took / 1e6,
            "read_p50": pct(reads, 50), "read_p99": pct(reads, 99)}


# ----------------------------------------------------------------- vs LangGraph's PostgresSaver
def relations_size(url: str, tables: list[str]) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(conn.execute("SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)", (t,)).fetchone()[0]
                   for t in tables)


LATTICE_TABLES = ["lattice_objects", "lattice_refs"]
LG_TABLES = ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]


async def vs_langgraph(url: str, ns: list[int], rng: random.Random) -> list[dict[str, Any]]:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from typing_extensions import Annotated, TypedDict

    from lattice.postgres import PostgresStore
    from ops.domain.contracts import decode_input, lookup
    from ops.domain.models import EchoModel, LlmReply
    from ops.engine.cached import CachedStore
    from ops.engine.pg import pg_seams
    from ops.engine.runtime import Runtime
    from ops.llm import make_adapter

    class Reverse:
        async def complete(self, request: Any) -> Any:
            last = next(m["content"] for m in reversed(request.messages) if m["role"] == "user")
            return LlmReply(content=last[::-1])

    rt = Runtime(CachedStore(PostgresStore(url)), **pg_seams(url),
                 adapter_factory=lambda m: Reverse() if isinstance(m, EchoModel) else make_adapter(m))
    await rt.start()

    async def ours(op: str, **inp: Any) -> dict:
        c = lookup(op)
        job = await rt.invoke(c, decode_input(c, inp), "bench")
        assert job["status"] == "COMPLETE", job
        return job

    State = TypedDict("State", {"messages": Annotated[list, add_messages]})  # noqa: N806 (no string annotations)

    def fake_llm(state: dict) -> dict:
        last = state["messages"][-1]
        return {"messages": [AIMessage(content=last.content[::-1], id=f"ai-{last.id}")]}

    rows = []
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        g = StateGraph(State)
        g.add_node("llm", fake_llm)
        g.add_edge(START, "llm")
        g.add_edge("llm", END)
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "t"}}
        await ours("agent:create", agentId="A", config={"model": {"provider": "echo"}})
        base = {"ours": relations_size(url, LATTICE_TABLES), "lg": relations_size(url, LG_TABLES)}
        lat: dict[str, list[float]] = {"ours": [], "lg": []}
        prev = dict(base)
        prev_n = 0
        for turn in range(1, max(ns) + 1):
            text = text_of(rng)
            order = ["ours", "lg"] if turn % 2 else ["lg", "ours"]
            for side in order:
                t = time.perf_counter()
                if side == "ours":
                    job = await ours("agent:request", agentId="A", input=text, wait=True)
                    assert job["output"] == text[::-1]  # as stored (the surfaces wrap a text answer)
                else:
                    out = graph.invoke({"messages": [HumanMessage(content=text, id=f"h{turn}")]}, cfg,
                                       durability="sync")
                    assert out["messages"][-1].content == text[::-1]
                lat[side].append((time.perf_counter() - t) * 1000)
            if turn in ns:
                window = max(10, turn // 10)
                size = {"ours": relations_size(url, LATTICE_TABLES), "lg": relations_size(url, LG_TABLES)}
                rows.append({"n": turn, "window": window,
                             **{f"{k}_p50": pct(v[-window:], 50) for k, v in lat.items()},
                             **{f"{k}_p99": pct(v[-window:], 99) for k, v in lat.items()},
                             **{f"{k}_disk": size[k] - base[k] for k in size},
                             **{f"{k}_per_turn": (size[k] - prev[k]) / (turn - prev_n) for k in size}})
                prev, prev_n = size, turn
    await rt.close()
    rt.store.close()
    return rows


# ----------------------------------------------------------------- report
def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short windows, N = 10 and 100 (under 2 minutes)")
    ap.add_argument("--pg", default=None, help="superuser URL of a running PostgreSQL (default: start one)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--agents", type=int, default=64)
    ap.add_argument("--procs", default="1,2,4", help="server process counts on PostgreSQL")
    ap.add_argument("--seconds", type=float, default=None, help="seconds measured per configuration (all rounds)")
    ap.add_argument("--rounds", type=int, default=None, help="windows per configuration, taken in turns")
    ap.add_argument("--routing", choices=["sticky", "random"], default="sticky")
    ap.add_argument("--steps", type=int, default=None, help="steps of the 1-client latency runs")
    ap.add_argument("--ns", default=None, help="turn counts of the LangGraph comparison")
    ap.add_argument("--skip-langgraph", action="store_true")
    args = ap.parse_args()
    seconds = args.seconds or (6.0 if args.quick else 20.0)
    warmup = 1.0 if args.quick else 2.0
    rounds = args.rounds or (2 if args.quick else 4)
    steps = args.steps or (150 if args.quick else 500)
    ns = [int(x) for x in (args.ns or ("10,100" if args.quick else "10,100,1000")).split(",")]
    procs = [int(x) for x in args.procs.split(",")]
    rng = random.Random(7)
    t_start = time.monotonic()
    load0 = os.getloadavg()

    stop = None
    if args.pg is None:
        server, stop = start_postgres(durable=True)
    else:
        server = args.pg
    pg_port = int(server.rsplit(":", 1)[1].split("/")[0])
    tmp = Path(tempfile.mkdtemp(prefix="lattice-scaleout-"))
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
            settings = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in ("fsync", "synchronous_commit")}
        configs = [Config("PostgreSQL", create_database(server), p, pg_port) for p in procs]
        configs.append(Config("LMDB", str(tmp / "lmdb-throughput"), 1, None))
        try:
            await throughput(configs, args.clients, args.agents, warmup, seconds, rounds, args.routing, rng)
        finally:
            for c in configs:
                c.servers.stop()
        runs = [(c.backend, c.procs, c.result()) for c in configs]
        lat = await latency({"pg": create_database(server), "lmdb": str(tmp / "lmdb-latency")}, steps, rng)
        lat_pg, lat_lmdb = lat["pg"], lat["lmdb"]
        print("  latency done", file=sys.stderr)
        ceiling = await store_ceiling(create_database(server), args.clients, 3.0 if args.quick else 8.0, rng)
        lg_rows = [] if args.skip_langgraph else await vs_langgraph(create_database(server), ns, rng)
    finally:
        if stop is not None:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)

    took = time.monotonic() - t_start
    print(f"# bench/scaleout.py  python {platform.python_version()}  PostgreSQL {pg_version} "
          f"(fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']})  psycopg {ver('psycopg')}"
          f"  psycopg-pool {ver('psycopg-pool')}  aiohttp {ver('aiohttp')}  lmdb {ver('lmdb')}  msgspec "
          f"{ver('msgspec')}  langgraph {ver('langgraph')}  langgraph-checkpoint-postgres "
          f"{ver('langgraph-checkpoint-postgres')}")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores ({cpu_model()}), {platform.platform()}; "
          f"load average at start {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, at end "
          + "/".join(f"{x:.2f}" for x in os.getloadavg()) + f"; run took {took:.0f} s")
    print(f"# workload: agent:request wait:true, echo model, 400-char message; {args.clients} clients on "
          f"{args.agents} agents, routing {args.routing}; {rounds} windows of {seconds / rounds:.1f} s per configuration "
          f"(after {warmup:.0f} s of load each), configurations in turns; one PostgreSQL database per configuration; "
          "LMDB durable (fsync per commit); the 1-client latency alternates the two stores step by step\n")

    print("## Throughput (HTTP, steps/s) and CPU over the window (% of one core)\n")
    print("| store | processes | steps/s | vs 1 process | p50 ms | p99 ms | servers CPU | PostgreSQL CPU "
          "| client CPU | machine CPU | CPU ms/step (servers + PostgreSQL) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    one = next(r["steps"] for b, p, r in runs if b == "PostgreSQL")
    for backend, p, r in runs:
        c = r["cpu"]
        rel = ratio(r["steps"], one) if backend == "PostgreSQL" else f"{ratio(r['steps'], one)} of PG x1"
        r["cpu_step"] = 10 * (c["servers"] + c["postgres"]) / r["steps"]
        print(f"| {backend} | {p} | {r['steps']:,.0f} | {rel} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{c['servers']:.0f}% | {c['postgres']:.0f}% | {c['client']:.0f}% | {c['machine']:.0f}% of "
              f"{c['cores'] * 100:.0f}% | {r['cpu_step']:.2f} |")
    cores = runs[0][2]["cpu"]["cores"]
    print(f"\nMachine CPU above the servers' + PostgreSQL's + the client's is other work on the machine. "
          f"Ceiling on {cores:.0f} idle cores = {cores:.0f} x 1000 ms / (CPU ms per step), the client excluded: "
          + ", ".join(f"{b} x{p} ~{cores * 1000 / r['cpu_step']:,.0f} steps/s" for b, p, r in runs)
          + " (LMDB: one process, so one core at most: "
          + f"~{1000 / (10 * runs[-1][2]['cpu']['servers'] / runs[-1][2]['steps']):,.0f} steps/s).")

    print("\n## Step latency at 1 client (HTTP, ms) and disk per step\n")
    print("| store | p50 | p99 | disk B/step |")
    print("|---|---:|---:|---:|")
    for name, r in (("PostgreSQL (1 process)", lat_pg), ("LMDB", lat_lmdb)):
        print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['disk']:,.0f} |")
    print(f"\nPostgreSQL / LMDB: p50 {ratio(lat_pg['p50'], lat_lmdb['p50'])}, "
          f"disk per step {ratio(lat_pg['disk'], lat_lmdb['disk'])}")

    print(f"\n## One PostgreSQL's ceiling (one PostgresStore, {args.clients} concurrent committers, group commit)\n")
    print("| step-sized commits/s | WAL bytes/commit | WAL MB/s | ref read round trip p50 / p99 ms |")
    print("|---:|---:|---:|---:|")
    print(f"| {ceiling['commits']:,.0f} | {ceiling['wal_per_commit']:,.0f} | {ceiling['mb_s']:.1f} | "
          f"{ceiling['read_p50']:.3f} / {ceiling['read_p99']:.3f} |")
    print(f"\nA step is two such commits (accepting the task, the run's result) and about 10 ref reads: "
          f"this database takes ~{ceiling['commits'] / 2:,.0f} steps/s from the commits' side.")

    if lg_rows:
        print("\n## vs LangGraph PostgresSaver, same database, in process (ms p50 / p99 over the last "
              "max(10, N/10) turns; bytes: pg_total_relation_size of each side's tables)\n")
        print("| N | ours | PostgresSaver | latency PS/ours (p50) | ours disk (B/turn) | PostgresSaver disk (B/turn) "
              "| disk PS/ours |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in lg_rows:
            print(f"| {r['n']:,} | {r['ours_p50']:.2f} / {r['ours_p99']:.2f} | {r['lg_p50']:.2f} / {r['lg_p99']:.2f}"
                  f" | {ratio(r['lg_p50'], r['ours_p50'])} | {human(r['ours_disk'])} ({r['ours_per_turn']:,.0f}) | "
                  f"{human(r['lg_disk'])} ({r['lg_per_turn']:,.0f}) | {ratio(r['lg_disk'], r['ours_disk'])} |")

    print("\n## Targets (issue 12)\n")
    print("| target | measured | |")
    print("|---|---:|---|")

    def target(name: str, value: float, ok: bool, fmt: str = "{:.2f}x") -> None:
        print(f"| {name} | {fmt.format(value)} | {'met' if ok else 'NOT met'} |")
    target("step p50 on PostgreSQL within 2x of LMDB's", lat_pg["p50"] / lat_lmdb["p50"],
           lat_pg["p50"] <= 2 * lat_lmdb["p50"])
    target("disk per step within 1.5x of LMDB's", lat_pg["disk"] / lat_lmdb["disk"],
           lat_pg["disk"] <= 1.5 * lat_lmdb["disk"])
    last = lg_rows[-1] if lg_rows else None
    if last and last["n"] >= 1000:
        target("at N = 1,000: disk >= 20x less than PostgresSaver", last["lg_disk"] / last["ours_disk"],
               last["lg_disk"] >= 20 * last["ours_disk"])
        target("at N = 1,000: step latency >= 5x lower than PostgresSaver", last["lg_p50"] / last["ours_p50"],
               last["lg_p50"] >= 5 * last["ours_p50"])
    pg = [(p, r) for b, p, r in runs if b == "PostgreSQL"]
    cores = pg[0][1]["cpu"]["cores"]
    steps = ", ".join(f"x{p} {r['steps']:,.0f} ({r['cpu']['machine']:.0f}% CPU)" for p, r in pg)
    saturated = next((p for p, r in pg if r["cpu"]["machine"] >= 90 * cores), None)
    grows = all(b["steps"] > a["steps"] * 1.05 for (pa, a), (_, b) in zip(pg, pg[1:])
                if saturated is None or pa < saturated)
    verdict = ("met" if grows and saturated != pg[0][0] else
               f"not shown: the cores were saturated at x{saturated} already" if saturated == pg[0][0] else "NOT met")
    print(f"| throughput rises with processes until the {cores:.0f} cores are saturated | {steps} | {verdict} |")


if __name__ == "__main__":
    asyncio.run(main())
