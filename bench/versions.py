"""Do version operations stay fast as an agent's history grows?

For each history length (messages), on a fresh durable ``LmdbStore``: an agent
is created with that many history messages, then ``--steps`` durable
``agent:request`` steps (``echo``) give it a chain of 2 x steps + 1 versions.
Measured through the runtime in process, p50/p99 over ``--reps`` repetitions:

* ``agent:fork`` with ``at`` a version in the middle of the chain (a durable commit);
* ``covia:read`` of one field at an old version (``g/A/state/history/0/content``, version 1);
* ``agent:history`` of the newest 50 versions, and of 3,000 versions;
* ``agent:diff`` of two versions one step apart (a run: history and timeline appends);
* ``agent:replay`` of the whole chain, and from version 1 (the creation event
  carries the whole initial history, so it costs as much as that history), in
  events per second.

Run: ``python bench/versions.py`` (``--quick``: lengths 10 and 1,000, fewer steps).
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

from lattice.lmdb import LmdbStore  # noqa: E402
from ops.domain import operations  # noqa: E402,F401
from ops.domain.contracts import decode_input, lookup  # noqa: E402
from ops.engine.runtime import Runtime  # noqa: E402

CALLER = "bench"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def invoke(rt: Runtime, op: str, **inp) -> dict:
    c = lookup(op)
    job = await rt.invoke(c, decode_input(c, inp), CALLER)
    assert job["status"] == "COMPLETE", job
    return job["output"]


async def timed(reps: int, fn) -> list[float]:
    out = []
    for i in range(reps):
        t = time.perf_counter()
        await fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def one_length(root: Path, length: int, steps: int, reps: int, rng: random.Random) -> dict:
    store = LmdbStore(root / f"h{length}", durable=True)
    rt = Runtime(store)
    await rt.start()
    try:
        text = "".join(rng.choices(string.ascii_letters, k=400))
        history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} {text}"} for i in range(length)]
        await invoke(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}},
                     state={"history": history})
        for i in range(steps):
            await invoke(rt, "agent:request", agentId="A", input=f"step {i} {text}", wait=True)
        head = (await invoke(rt, "agent:history", agentId="A", limit=1))["versions"][0]["seq"]
        mid = head // 2
        r = {"length": length, "versions": head + 1}
        r["fork"] = await timed(reps, lambda i: invoke(rt, "agent:fork", sourceId="A", agentId=f"F{i}", at=mid))
        r["read"] = await timed(reps, lambda i: invoke(rt, "covia:read", path="g/A/state/history/0/content", at=1))
        r["hist50"] = await timed(reps, lambda i: invoke(rt, "agent:history", agentId="A", limit=50))
        n_list = min(3000, head + 1)
        r["list_n"] = n_list
        r["hist3000"] = await timed(max(3, reps // 10), lambda i: invoke(rt, "agent:history", agentId="A",
                                                                         limit=n_list))
        run_seq = head if head % 2 == 0 else head - 1  # a run commit: its parent is the request before it
        r["diff"] = await timed(reps, lambda i: invoke(rt, "agent:diff", agentId="A", **{"from": run_seq - 1},
                                                       to=run_seq))
        t = time.perf_counter()
        res = await invoke(rt, "agent:replay", agentId="A")
        secs = time.perf_counter() - t
        assert res["identical"], res
        r["replay_eps"] = res["replayed"] / secs
        t = time.perf_counter()
        res = await invoke(rt, "agent:replay", agentId="A", **{"from": 1})
        r["replay1_eps"] = res["replayed"] / (time.perf_counter() - t)
        assert res["identical"], res
        return r
    finally:
        await rt.close()
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="10,1000,100000", help="history lengths, in messages (comma-separated)")
    ap.add_argument("--steps", type=int, default=1500, help="request steps after creation (2 versions each)")
    ap.add_argument("--reps", type=int, default=50, help="repetitions per timed operation")
    ap.add_argument("--dir", default=None, help="where to put the stores (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="lengths 10,1000; 300 steps; 20 reps")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.quick:
        lengths, args.steps, args.reps = [10, 1000], 300, 20
    root = Path(args.dir or tempfile.mkdtemp(prefix="lattice-versions-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    rows = []
    try:
        for n in lengths:
            print(f"# length {n:,}: building {args.steps} steps ...", file=sys.stderr, flush=True)
            rows.append(asyncio.run(one_length(root, n, args.steps, args.reps, rng)))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"# bench/versions.py  python {platform.python_version()}  lmdb {version('lmdb')}  "
          f"msgspec {version('msgspec')}  blake3 {version('blake3')}")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}; durable LmdbStore; "
          f"{args.steps} steps per length, {args.reps} reps")
    print()
    print("| history (msgs) | versions | fork at mid p50 / p99 ms | as-of read p50 / p99 ms | history 50 p50 ms "
          "| history N p50 ms (N) | one-step diff p50 / p99 ms | replay events/s (all; from v1) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['length']:,} | {r['versions']:,} | {pct(r['fork'], 50):.3f} / {pct(r['fork'], 99):.3f} "
              f"| {pct(r['read'], 50):.3f} / {pct(r['read'], 99):.3f} | {pct(r['hist50'], 50):.3f} "
              f"| {pct(r['hist3000'], 50):.1f} ({r['list_n']:,}) | {pct(r['diff'], 50):.3f} / {pct(r['diff'], 99):.3f} "
              f"| {r['replay_eps']:,.0f}; {r['replay1_eps']:,.0f} |")
    a, b = rows[0], rows[-1]
    print()
    print(f"flatness {b['length']:,} vs {a['length']:,} messages: fork-at {pct(b['fork'], 50) / pct(a['fork'], 50):.2f}x, "
          f"as-of read {pct(b['read'], 50) / pct(a['read'], 50):.2f}x, "
          f"one-step diff {pct(b['diff'], 50) / pct(a['diff'], 50):.2f}x "
          f"(targets: fork-at and read <= 1 ms and flat; diff <= 5 ms; 3,000 versions <= 50 ms)")


if __name__ == "__main__":
    main()
