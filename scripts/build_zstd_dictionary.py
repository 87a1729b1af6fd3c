"""Build a zstd dictionary the LMDB backend compresses small objects with (:mod:`lattice.lmdb_layout`).

A dictionary is part of the stored format: a store written with it needs exactly these bytes to
be read back, so each is built once, committed, pinned by a test, and never rebuilt in place.
``lattice/dictionaries/v1.zdict`` (codec 1) was built before format 2; ``v2.zdict`` (codec 2,
what the backend writes now) by this script on format 3's objects, whose shapes had changed
since (folded jobs, events that name their agent, vectors' nodes). Both are kept for reading. A
better one would be ``v3.zdict`` with codec 3.

The corpus is a mixed workload run through the runtime on a fresh store, unlike any
benchmark's (``bench/`` workloads must not be trained on): several callers, agents with
varied ids and configs (echo with a system prompt, scripted models whose rules call tools),
requests with English-like text of varied lengths, messages between agents, chats on
sessions, forks at old versions, workspace writes, triggers, cancelled tasks. Every object
the workload stores is a sample, except text blobs (whose words would only add noise). Job ids
and times differ from run to run, so each run gives another dictionary of the same use.

Run: ``python scripts/build_zstd_dictionary.py -o lattice/dictionaries/v3.zdict --dict-id 3``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zstandard  # noqa: E402

from lattice.codec import decode  # noqa: E402
from lattice.memory import MemoryStore  # noqa: E402
from ops.domain import operations  # noqa: E402,F401
from ops.domain.contracts import decode_input, lookup  # noqa: E402
from ops.engine.runtime import Runtime  # noqa: E402

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write "
         "go see number no way could people my than first water been call who oil its now find long down day did "
         "get come made may part report customer invoice deploy server error retry summary ticket order").split()


def sentence(rng: random.Random, lo: int = 4, hi: int = 80) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


class Recorder:
    """A store wrapper that keeps every object committed through it."""

    def __init__(self, inner):
        self.inner, self.samples = inner, {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _keep(self, objects):
        for d, b in objects.items():
            if type(decode(b)) is not str:
                self.samples[d] = b

    def commit(self, objects, updates, **kw):
        self._keep(objects)
        return self.inner.commit(objects, updates, **kw)

    async def acommit(self, objects, updates, **kw):
        self._keep(objects)
        return await self.inner.acommit(objects, updates, **kw)

    def submit(self, objects, updates, **kw):
        self._keep(objects)
        return self.inner.submit(objects, updates, **kw)


async def workload(rt: Runtime, rng: random.Random) -> None:
    async def call(caller, op, **inp):
        c = lookup(op)
        return await rt.invoke(c, decode_input(c, inp), caller)

    callers = ["local", "alice", "ops-team", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK:u:carol"]
    agents: list[tuple[str, str]] = []
    for i in range(24):
        caller = rng.choice(callers)
        aid = rng.choice(["support-bot", "researcher", "Alice", "planner", "summariser", "triage"]) + f"-{i}"
        if i % 3 == 0:
            cfg = {"model": {"provider": "echo"}, "systemPrompt": sentence(rng, 5, 30)}
        else:
            other = agents[-1][1] if agents else aid
            cfg = {"model": {"provider": "scripted", "rules": [
                {"when": "write", "toolCalls": [{"name": "covia:write", "arguments": {
                    "path": f"w/notes/{aid}/{rng.randint(0, 9)}", "value": {"note": sentence(rng, 3, 10)}}}]},
                {"when": "tell", "toolCalls": [{"name": "agent:message", "arguments": {
                    "agentId": other, "message": sentence(rng, 3, 12)}}]},
                {"content": sentence(rng, 5, 40)}]}}
        job = await call(caller, "agent:create", agentId=aid, config=cfg)
        if job["status"] == "COMPLETE":
            agents.append((caller, aid))
    for turn in range(40):
        for caller, aid in rng.sample(agents, 8):
            kind = rng.random()
            text = sentence(rng) + rng.choice(["", " write it down", " tell the others"])
            if kind < 0.55:
                await call(caller, "agent:request", agentId=aid, input=text, wait=True)
            elif kind < 0.7:
                await call(caller, "agent:message", agentId=aid, message=text)
                await call(caller, "agent:trigger", agentId=aid, wait=True)
            elif kind < 0.85:
                await call(caller, "agent:chat", agentId=aid, message=text, wait=True)
            elif kind < 0.9:
                await call(caller, "covia:write", path=f"w/data/{aid}/{turn}",
                           value={"items": [rng.randint(0, 999) for _ in range(rng.randint(1, 8))], "ok": True})
            elif kind < 0.95:
                job = await call(caller, "agent:request", agentId=aid, input=text)
                await call(caller, "agent:cancelTask", agentId=aid, taskId=job["jobId"])
            else:
                await call(caller, "agent:fork", sourceId=aid, agentId=f"{aid}-fork{turn}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="where to write it (never over a committed dictionary)")
    ap.add_argument("--dict-id", type=int, required=True, help="its id: the codec byte it will be stored under")
    ap.add_argument("--size", type=int, default=16384, help="dictionary size in bytes (16384)")
    args = ap.parse_args()
    store = Recorder(MemoryStore())

    async def run():
        rt = Runtime(store)
        await rt.start()
        try:
            await workload(rt, random.Random(2026))
        finally:
            await rt.close()
    asyncio.run(run())
    samples = sorted(store.samples.values())
    d = zstandard.train_dictionary(args.size, samples, level=3, dict_id=args.dict_id, threads=1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_bytes(d.as_bytes())
    print(f"{len(samples)} samples, {sum(map(len, samples))} bytes -> {args.output} ({len(d.as_bytes())} bytes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
