"""Storage lifecycle: what garbage collection costs and frees, and how big and fast bundles are.

In one run, on a durable ``LmdbStore`` (or, ``--backend postgres``, a ``PostgresStore`` on a
PostgreSQL started for the run with its durable defaults, or the one ``--pg URL`` names):

* build a store of ``--agents`` agents with ``--turns`` turns each (400-character
  messages and replies, ``echo``-like replies reversed so every turn is new text);
* ``gc`` with nothing to free: time per GB of store (the mark walks everything);
* remove half the agents, drop finished jobs, ``gc``: objects and bytes freed, time;
  then ``compact``: the file before and after (LMDB never shrinks by itself; on
  PostgreSQL the tables with indexes and TOAST, after ``VACUUM`` and ``VACUUM FULL``);
* export one agent: bundle bytes against the agent's own objects' bytes, MB/s, and its
  bundle from the middle version on; import it into a fresh store under another id:
  MB/s; replay it there (verified).

Run: ``python bench/lifecycle.py`` (``--quick`` for a short run; the full run builds
340 agents x 1,000 turns, a 0.8 GB file of 1.06 GB of objects, in about 15 minutes on 2 cores).
Prints a table with the library versions and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lattice.bundle import BundleReader  # noqa: E402
from lattice.gc import mark  # noqa: E402
from lattice.lmdb import LmdbStore  # noqa: E402
from lattice.open import open_store  # noqa: E402
from ops.domain.contracts import decode_input, lookup  # noqa: E402
from ops.domain.models import LlmReply  # noqa: E402
from ops.engine.bundles import export_agent, import_agent  # noqa: E402
from ops.engine.links import version_links  # noqa: E402
from ops.engine.runtime import Runtime  # noqa: E402


class Reverser:
    """An adapter whose reply is the user's text reversed (new text every turn, like a model)."""

    def __call__(self, model):
        class _A:
            async def complete(self, request):
                return LlmReply(content=request.messages[-1]["content"][::-1])
        return _A()


async def call(rt: Runtime, op: str, **inp):
    c = lookup(op)
    job = await rt.invoke(c, decode_input(c, inp), "local")
    assert job["status"] == "COMPLETE", job
    return job["output"]


def file_size(store) -> int:
    """The store's size on disk: LMDB's data file; PostgreSQL's tables with indexes and TOAST."""
    if isinstance(store, LmdbStore):
        return os.path.getsize(os.path.join(store.path, "data.mdb"))
    return store.stats()["used_bytes"]


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=340)
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="40 agents x 100 turns")
    p.add_argument("--backend", choices=["lmdb", "postgres"], default="lmdb")
    p.add_argument("--pg", default=None, metavar="URL",
                   help="with --backend postgres: a superuser URL of a running server (default: start one)")
    args = p.parse_args()
    if args.quick:
        args.agents, args.turns = 40, 100
    tmp = tempfile.mkdtemp(prefix="lattice-lifecycle-")
    stop = None
    try:
        if args.backend == "postgres":
            from tests.pg import create_database, start_postgres
            server = args.pg
            if server is None:
                server, stop = start_postgres(tmp, durable=True)
            args.spec, args.other = create_database(server), create_database(server)
        else:
            args.spec, args.other = os.path.join(tmp, "store"), os.path.join(tmp, "other")
        await run(args, tmp)
    finally:
        if stop is not None:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def run(args: argparse.Namespace, tmp: str) -> None:
    store = open_store(args.spec, **({"durable": False} if args.backend == "lmdb" else {}))  # building is not measured
    rt = Runtime(store, adapter_factory=Reverser())
    await rt.start()
    t0 = time.perf_counter()
    for a in range(args.agents):
        await call(rt, "agent:create", agentId=f"A{a}", config={"model": {"provider": "echo"}})
    text = "".join(chr(97 + i % 26) for i in range(390))
    for t in range(args.turns):
        await asyncio.gather(*(call(rt, "agent:request", agentId=f"A{a}", input=f"{a}.{t} {text}", wait=True)
                               for a in range(args.agents)))
        if t % 50 == 49:
            print(f"# built {t + 1}/{args.turns} turns", file=sys.stderr)
    build = time.perf_counter() - t0
    size = file_size(store)
    objects = sum(1 for _ in store.objects())
    stored = sum(n for _, n in store.objects())

    first = await rt.gc()
    gc_full_s = first["markSeconds"] + first["sweepSeconds"]
    # one agent's own bytes, and its bundle
    head = store.ref("g/local/A0")
    own = mark(store, [head], extra=version_links)
    own_bytes = sum(len(store.get(d)) for d in own)
    t1 = time.perf_counter()
    header, chunks = export_agent(rt.engine, "local", "A0")
    bundle = b"".join(chunks)
    export_s = time.perf_counter() - t1
    mid = header["versions"] // 2
    tail = b"".join(export_agent(rt.engine, "local", "A0", mid)[1])  # from the middle version on
    for a in range(0, args.agents, 2):
        await call(rt, "agent:delete", agentId=f"A{a}", remove=True)
    half = await rt.gc(retain_jobs_ms=0)
    await rt.close()
    vacuumed = None
    if args.backend == "postgres":  # a plain VACUUM first (beside the servers), then VACUUM FULL
        before_compact, vacuumed = store.compact()
        _, after_compact = store.compact(full=True)
    else:
        before_compact, after_compact = store.compact()
    store.close()

    dst = open_store(args.other)
    rt2 = Runtime(dst)
    await rt2.start()
    t2 = time.perf_counter()
    reader = BundleReader()
    for i in range(0, len(bundle), 1 << 16):
        reader.feed(bundle[i:i + (1 << 16)])
    await import_agent(rt2.engine, "local", "Copy", reader)
    import_s = time.perf_counter() - t2
    replay = await call(rt2, "agent:replay", agentId="Copy")
    await rt2.close()
    dst.close()

    print(f"# bench/lifecycle.py  python {platform.python_version()}  lmdb {version('lmdb')}  "
          f"msgspec {version('msgspec')}  blake3 {version('blake3')}  psycopg {version('psycopg')}")
    where = "LMDB" if args.backend == "lmdb" else f"PostgreSQL ({args.spec.split('@')[-1]})"
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}; "
          f"{args.agents} agents x {args.turns} turns built in {build:.0f} s on {where}")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| store {'file' if args.backend == 'lmdb' else 'tables'} | {mb(size)} ({objects:,} objects, "
          f"{mb(stored)} of object bytes) |")
    print(f"| gc, nothing to free | {gc_full_s:.2f} s ({gc_full_s / (size / 1e9):.1f} s per GB of file; "
          f"mark {first['markSeconds']} s, sweep {first['sweepSeconds']} s) |")
    print(f"| gc after removing half the agents and dropping finished jobs | freed {half['freed']:,} objects, "
          f"{mb(half['freedBytes'])} ({half['freedBytes'] / stored:.0%} of object bytes); "
          f"{half['markSeconds'] + half['sweepSeconds']:.2f} s |")
    if vacuumed is not None:
        print(f"| VACUUM (beside the servers) | tables {mb(before_compact)} -> {mb(vacuumed)} |")
    print(f"| compact{' (VACUUM FULL)' if vacuumed is not None else ''} | {mb(before_compact)} -> "
          f"{mb(after_compact)} ({after_compact / before_compact:.0%}) |")
    print(f"| one agent's bundle | {mb(len(bundle))} for {mb(own_bytes)} of its own objects "
          f"({len(bundle) / own_bytes:.2f}x; {header['versions']:,} versions) |")
    print(f"| its bundle from version {mid:,} on | {mb(len(tail))} ({len(tail) / len(bundle):.0%} of the whole) |")
    print(f"| export | {len(bundle) / 1e6 / export_s:,.1f} MB/s |")
    print(f"| import (re-hash, check, commit) | {len(bundle) / 1e6 / import_s:,.1f} MB/s; "
          f"replay there: {replay['replayed']:,} versions identical={replay['identical']} |")


if __name__ == "__main__":
    asyncio.run(main())
