"""How fast and how small is one durable agent step, and is it flat in history length?

Measures, in one run, on a fresh durable ``LmdbStore`` per history length:

* step latency: ``agent:request`` (``wait: true``) answered by the ``echo``
  provider with a 400-character message, from the call to the COMPLETE job
  (two durable commits: accept, and the run's result), p50/p99;
* commit latency: each ``Store.acommit`` inside those steps, p50/p99;
* ``agent:fork`` latency (a durable commit) at that history length;
* bytes on disk added per step (LMDB pages in use), and the new objects per step;
* in the same run: the floor, a raw LMDB durable single-put commit (400 bytes);
  and the peer layout, what one LMDB B-tree under random 32-byte keys (the
  backend's layout 1, before the object log of :mod:`lattice.lmdb_layout`) needs
  for exactly the step's new objects (same sizes, uncompressed, one durable
  transaction per commit).

Run: ``python bench/store.py`` (``--quick`` for a short run). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import string
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmdb  # noqa: E402

from lattice.lmdb import LmdbStore  # noqa: E402
from ops.domain import operations  # noqa: E402,F401
from ops.domain.contracts import decode_input, lookup  # noqa: E402
from ops.engine.runtime import Runtime  # noqa: E402

CALLER = "bench"


def text(rng: random.Random, n: int = 400) -> str:
    return "".join(rng.choices(string.ascii_letters + " ", k=n))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class TimedStore:
    """Wraps a store to time every acommit and record the new objects each one writes."""

    def __init__(self, inner: LmdbStore):
        self.inner = inner
        self.commit_ms: list[float] = []
        self.new_objects: list[list[int]] = []  # per commit: sizes of objects not stored before

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def acommit(self, objects, updates, **kw):
        new = [len(v) for k, v in objects.items() if not self.inner.has(k)]
        t = time.perf_counter()
        ok = await self.inner.acommit(objects, updates, **kw)
        self.commit_ms.append((time.perf_counter() - t) * 1000)
        if ok:
            self.new_objects.append(new)
        return ok


async def invoke(rt: Runtime, op: str, **inp) -> dict:
    c = lookup(op)
    job = await rt.invoke(c, decode_input(c, inp), CALLER)
    assert job["status"] in ("COMPLETE",), job
    return job


async def one_length(root: Path, length: int, steps: int, forks: int, rng: random.Random) -> dict:
    path = root / f"h{length}"
    store = LmdbStore(path, durable=True)
    timed = TimedStore(store)
    rt = Runtime(timed)
    await rt.start()
    history = []
    for i in range(length // 2):
        history.append({"role": "user", "content": text(rng)})
        history.append({"role": "assistant", "content": history[-1]["content"]})
    await invoke(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}}, state={"history": history})
    for _ in range(5):  # warm up
        await invoke(rt, "agent:request", agentId="A", input=text(rng), wait=True)
    timed.commit_ms.clear()
    timed.new_objects.clear()
    used0 = store.stats()["used_bytes"]
    step_ms = []
    for _ in range(steps):
        msg = text(rng)
        t = time.perf_counter()
        job = await invoke(rt, "agent:request", agentId="A", input=msg, wait=True)
        step_ms.append((time.perf_counter() - t) * 1000)
        assert job["output"] == msg  # as stored (the surfaces wrap a text answer)
    used1 = store.stats()["used_bytes"]
    commit_ms = list(timed.commit_ms)
    new_objects = list(timed.new_objects)
    fork_ms = []
    for i in range(forks):
        t = time.perf_counter()
        await invoke(rt, "agent:fork", sourceId="A", agentId=f"F{i}")
        fork_ms.append((time.perf_counter() - t) * 1000)
    await rt.close()
    store.close()
    return {"length": length, "step_ms": step_ms, "commit_ms": commit_ms, "fork_ms": fork_ms,
            "disk_per_step": (used1 - used0) / steps, "new_objects": new_objects,
            "objects_per_step": sum(map(sum, new_objects)) / steps,
            "count_per_step": sum(map(len, new_objects)) / steps,
            "floor_disk_per_step": raw_disk(root / f"floor{length}", new_objects) / steps}


def raw_disk(path: Path, commits: list[list[int]]) -> float:
    """On-disk bytes of layout 1 for the same objects: one B-tree, one durable txn per commit,
    random 32-byte keys (like digests), the same value sizes, uncompressed."""
    env = lmdb.open(str(path), map_size=1 << 30, sync=True, metasync=True)
    try:
        def used() -> int:
            return (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        u0 = used()
        for sizes in commits:
            with env.begin(write=True) as txn:
                for n in sizes:
                    txn.put(os.urandom(32), os.urandom(n))
        return used() - u0
    finally:
        env.close()


def raw_lmdb(root: Path, n: int, rng: random.Random) -> list[float]:
    env = lmdb.open(str(root / "raw"), map_size=1 << 30, sync=True, metasync=True)
    ms = []
    try:
        for i in range(n):
            v = text(rng).encode()
            t = time.perf_counter()
            with env.begin(write=True) as txn:
                txn.put(os.urandom(32), v)
            ms.append((time.perf_counter() - t) * 1000)
    finally:
        env.close()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="10,1000,10000", help="history lengths, in messages (comma-separated)")
    ap.add_argument("--steps", type=int, default=300, help="measured steps per length")
    ap.add_argument("--forks", type=int, default=50, help="forks per length")
    ap.add_argument("--dir", default=None, help="where to put the stores (default: a temp dir on /tmp's disk)")
    ap.add_argument("--quick", action="store_true", help="lengths 10,1000 with 100 steps")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.quick:
        lengths, args.steps, args.forks = [10, 1000], 100, 20
    root = Path(args.dir or tempfile.mkdtemp(prefix="lattice-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    try:
        raw = raw_lmdb(root, max(200, args.steps), rng)
        rows = [asyncio.run(one_length(root, n, args.steps, args.forks, rng)) for n in lengths]
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    raw50, raw99 = pct(raw, 50), pct(raw, 99)
    print(f"# bench/store.py  python {platform.python_version()}  lmdb {version('lmdb')}  msgspec {version('msgspec')}"
          f"  blake3 {version('blake3')}  aiohttp {version('aiohttp')}")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}; store dir on {root}")
    print(f"# floor: raw LMDB durable single-put commit p50 {raw50:.3f} ms, p99 {raw99:.3f} ms (n={len(raw)})")
    print()
    print("| history (msgs) | step p50 ms | step p99 ms | step p50 / raw put | commit p50 ms | commit p99 ms "
          "| commit p50 / raw put | fork p50 ms | fork p99 ms | disk B/step | new objects/step (B) "
          "| layout 1 B/step (one B-tree, random keys, same objects) | disk / layout 1 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s50, s99 = pct(r["step_ms"], 50), pct(r["step_ms"], 99)
        c50 = pct(r["commit_ms"], 50)
        print(f"| {r['length']:,} | {s50:.3f} | {s99:.3f} | {s50 / raw50:.1f}x | {c50:.3f} "
              f"| {pct(r['commit_ms'], 99):.3f} | {c50 / raw50:.1f}x | {pct(r['fork_ms'], 50):.3f} "
              f"| {pct(r['fork_ms'], 99):.3f} | {r['disk_per_step']:,.0f} "
              f"| {r['count_per_step']:.1f} ({r['objects_per_step']:,.0f}) | {r['floor_disk_per_step']:,.0f} "
              f"| {r['disk_per_step'] / r['floor_disk_per_step']:.2f}x |")
    first, last = rows[0], rows[-1]
    print()
    print(f"flatness: step p50 at {last['length']:,} / at {first['length']:,} = "
          f"{pct(last['step_ms'], 50) / pct(first['step_ms'], 50):.2f}x (target <= 1.5x); "
          f"fork p50 at {last['length']:,} / at {first['length']:,} = "
          f"{pct(last['fork_ms'], 50) / pct(first['fork_ms'], 50):.2f}x")


if __name__ == "__main__":
    main()
