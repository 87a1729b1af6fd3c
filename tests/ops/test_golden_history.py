"""Pinned digests of a fixed agent history: encoding is identity.

Every operation of the protocol, tool calls (workspace writes and reads, messages to
another agent and to itself, complete_task, fail_task), a failed run and its
recovery, a cancelled task, forks at a version and at the head, workspace edits,
an overwrite and a removal, with a fixed clock and fixed job ids. Every ref head's
digest is pinned: any change that would re-hash stores (the codec, a threshold, a
record's fields, an event's recorded shape, the order a transition applies things)
fails here loudly. Change the pins only on purpose, with a format version
(``lattice.codec``) and a note on migrating stores.

The pins were computed on the code before the architecture split (9292515) and
hold after it: the split changed no byte of any store.

Re-pinned on purpose once since (``JOBS`` only; every agent and workspace head is as it was):
the job outputs took the Covia venue's shapes (issue 11). 6 of the 29 stored job records
changed: the ``agent:trigger`` job (``taskResults`` a list), 2 ``agent:fork`` jobs (``created: true``), ``covia:write`` (``existed``, ``pathCreated``), 2
``covia:append`` (``existed``, ``index``, ``newSize``) and ``agent:delete {remove}``
(``status``). No job's recorded input changed, and no commit of an agent chain. A request's
answer is stored as it is: the view wraps one that is not a map (``ops.domain.jobs.public_job``).

Re-pinned on purpose for format 2 (issue 13, a smaller step): every commit says ``format: 2``
and vectors have 8-item leaves (``lattice.vector``), so every head changed. Format 1's pins are
kept: the same history under format 1's two settings still gives them
(:func:`test_format1_pins_hold_under_format1_settings`), so format 2 changed nothing else.
Stores of format 1 are read as they are (``tests/lattice/test_golden.py::test_format1_vectors``).

Re-pinned on purpose for folded jobs (issue 13, a smaller step; ``JOBS`` and ``JOBS_FORMAT1``
only: every agent and workspace head is as it was). A task, trigger or chat job stores no
record when it is accepted: its ref points at the agent commit that accepted it, and its
record is derived from that commit (``ops.domain.jobs.folded_job``). Its first change
(``job:status``, ``job:finish``, ``job:cancel``) starts a chain of its own (no parent, seq 0).
So the 9 jobs of ``agent:request`` (8) and ``agent:trigger`` (1) here lost their first commit (the
accept commit, op ``agent:request``/``agent:trigger``, and its record), and their record's
``input`` lost ``wait`` (how the caller waited is not in the agent's commit); every other field
of every job record is as it was (compared field by field), and the 20 other jobs did not change.

Re-pinned on purpose once more for format 2 (unreleased, the same version): format 2 also records
the agent id in the events that accept a request (``agent:request``: ``{agentId, input, taskId}``)
and a trigger (``agent:trigger``: ``{agentId, triggerId}``), as ``agent:chat``'s already did, so a
folded job's reader knows its agent from the commit (``ops.engine.jobs_index.resolve_job``). Every
agent commit from an agent's first request or trigger on changed, so ``HEADS`` of A, B, E, S and
of F and G (forked from A's versions) changed; ``w/local`` did not, nor ``JOBS`` (every job here
changed after it was accepted, and its record's chain starts on its own). Under format 1's settings
the events record no ``agentId`` (``ops.domain.events.records_agent`` reads
``lattice.commits.FORMAT_VERSION``), so ``HEADS_FORMAT1`` and ``JOBS_FORMAT1`` still hold.

Re-pinned on purpose for format 3 (issue 13, a smaller step): every commit says ``format: 3``
and vectors' interior nodes hold 8 links (``lattice.vector``), so every head changed; a run whose
commit goes on top of the version it started from records no ``base`` (its parent:
``ops.domain.events.omits_parent_base``); and a task its run completes on top of the commit that
accepted it stays folded, into the run's commit (``ops.domain.jobs.finished_job``), so ``JOBS``
changed: 4 of the 29 jobs lost their
``job:finish`` commit and record, and each reads exactly as its record did
(:func:`test_jobs_folded_into_their_runs_read_as_their_records_did`). Format 2's pins are kept:
the same history under format 2's settings still gives them
(:func:`test_format2_pins_hold_under_format2_settings`).
"""

from __future__ import annotations

import asyncio
import itertools

import blake3

from lattice.commits import read_commit
from lattice.memory import MemoryStore
from ops.domain.jobs import JobIds
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out

SCRIPT = {"provider": "scripted", "rules": [
    {"when": "write", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/notes/a", "value": {"x": 1}}}]},
    {"when": "written", "toolCalls": [{"name": "agent_message", "arguments": {"agentId": "B", "message": "hi B"}},
                                      {"name": "agent_message", "arguments": {"agentId": "S", "message": "self"}}]},
    {"when": "delivered", "toolCalls": [{"name": "complete_task", "arguments": {"output": {"done": True}}}]},
    {"when": "fail", "toolCalls": [{"name": "fail_task", "arguments": {"error": "nope"}}]},
    {"when": "read", "toolCalls": [{"name": "covia_read", "arguments": {"path": "w/notes"}},
                                   {"name": "covia_list", "arguments": {"path": "w"}}]},
    {"content": "ok"}]}

#: head commit digest of each agent and of the workspace
HEADS = {
    "g/local/A": "55b306efd81c1283d3269bb6479894cf61599a27adc69e5116028de5033d4c25",
    "g/local/B": "7a8aca9084a463e19fac486017123ba9877b6c5ebf0accfe6623f150fabb6157",
    "g/local/E": "212eec8901640f2d751adfa19f744ad7bf3d47d2bb4e07841bebfa27c3b05487",
    "g/local/F": "a97274862246f5a0d8cc06480dafa6e0633444c94f8c4506f916ab0e19b9f1fd",
    "g/local/G": "d7a2ca76f41e44260bc6d14a01f4f69c09d828717736e3aa0ae6c7403949ba0a",
    "g/local/S": "c3f78fb502187d110072d0daf8f1781586c7aeabe72c4ec84684933d49b12726",
    "w/local": "767a9dd2e79ab77580118148529c77ae8831aadae16c508b4929565426d46118",
}
#: 29 stored job records: blake3 over their sorted "ref=head" lines
JOBS = ("j/local/", 29, "3826eca0048db90f1ef10ee49d9a760713fc50c683682f2d477798a22126c700")

#: the pins of format 2 (before format 3's re-pin): the same history under format 2's two settings
#: (``format: 2`` in commits, 32-link vector nodes) still gives them, so format 3 changed exactly those
HEADS_FORMAT2 = {
    "g/local/A": "811f1052d0580c27417e5698054253792b91bd1b86c7db44a6d49ab014b140d0",
    "g/local/B": "35f6b6b8e5d12a3548552e0b86898ec385be397f4eeccb45e4a7d932417c267e",
    "g/local/E": "658078a1a25b7c5136b98f361c481cba4bb2cce50bc3cab5c5753e4b2f57f9c6",
    "g/local/F": "b2ae28c7598e427bc6f0b7c2e4623d3c8d770cb5adbd2ea296de8335d4e4103b",
    "g/local/G": "fb703ac8938ec88c5efa11e15cfd8cd649a0766968da2d2e94b4e3ee992f7564",
    "g/local/S": "32c657497deb99a768e0a4d8977dd676783254329a4554c4e460392897c27995",
    "w/local": "42c64939adb912d8b2230a0d03830da6e04564c2b03ec3099676212500d1a90d",
}
JOBS_FORMAT2 = ("j/local/", 29, "88b05245f2e5ecce930c5443dde8c017bae9840b492cf20deacd2437e73468cd")

#: the pins of format 1 (before format 2's re-pin): the same history under format 1's two settings
#: (``format: 1`` in commits, 32-item vector leaves) still gives them, so format 2 changed exactly those
HEADS_FORMAT1 = {
    "g/local/A": "97d70d7faf5bd4b06e0b9397623bc8e7262b271984f8b0ac7dc2859a005071d9",
    "g/local/B": "09ad3d780d96905672f07c6af982359917cf1bc8ae47bef6e5121fd7c5f0ae50",
    "g/local/E": "2cdafe38616fe1a5c3a26f757f07276de5b7a61e55a9bb504746c61a4810df96",
    "g/local/F": "e7aceb5a3b297ea9ccbf2381d69f69fedc4892224078d4f68a408b03d3143062",
    "g/local/G": "e19f1dec090d9df26b81e8338ab68f546bdeb6df37c63fff93aab43b78094439",
    "g/local/S": "1abfae96489b31d90a95b3e7ca0c3ea25a20ac1db9e228900e50607d8e98bff8",
    "w/local": "8fab82932c08c1d578a1bb5c92431670377b243e94aa31b0b1261a8bc87decc1",
}
JOBS_FORMAT1 = ("j/local/", 29, "1df19dd59760997126acce454375d051257dc6f0c677204c6a65c2862d4ca1cc")


async def build() -> Runtime:
    now = [1_750_000_000_000]
    counter = itertools.count(1)
    rt = Runtime(MemoryStore(), clock=lambda: now[0], job_ids=JobIds(lambda n: next(counter).to_bytes(n, "big")))
    await rt.start()

    async def step(op: str, **inp):
        now[0] += 1000
        job = await call(rt, op, **inp)
        for a in list(rt.running()):  # let every run this step started commit
            await rt.idle(*a)
        for _ in range(50):
            await asyncio.sleep(0)
        return job
    await step("agent:create", agentId="A", config={"systemPrompt": "be brief"},
               state={"history": [{"role": "user", "content": "earlier"}], "k": [1, 2, 3]})
    await step("agent:create", agentId="B", config="echo")
    await step("agent:create", agentId="S", config={"model": SCRIPT})
    await step("agent:request", agentId="A", input={"q": "what?", "n": list(range(5))}, wait=True)
    await step("agent:request", agentId="A", input="x" * 600, wait=True)
    await step("agent:message", agentId="A", message="note this")
    await step("agent:trigger", agentId="A", wait=True)
    await step("agent:update", agentId="A", config={"systemPrompt": "be verbose"}, state={"k2": "v"})
    await step("agent:request", agentId="S", input="please write", wait=True)
    await step("agent:request", agentId="S", input="please fail", wait=True)
    await step("agent:request", agentId="S", input="please read", wait=True)
    await step("agent:suspend", agentId="B")
    await step("agent:request", agentId="B", input="queued", wait=False)
    j = await step("agent:request", agentId="B", input="to cancel", wait=False)
    await step("agent:cancelTask", agentId="B", taskId=j["jobId"])
    await step("agent:resume", agentId="B")
    await step("agent:fork", sourceId="A", agentId="F", at=3, config={"systemPrompt": "forked"}, includeTimeline=True)
    await step("agent:fork", sourceId="A", agentId="G")
    await step("agent:create", agentId="E", config={"model": {"provider": "error", "message": "boom"}})
    await step("agent:request", agentId="E", input="fails", wait=True)
    await step("agent:update", agentId="E", config={"model": {"provider": "echo"}})
    await step("agent:resume", agentId="E")
    await step("covia:write", path="w/docs/x", value={"big": "y" * 400, "list": list(range(40))})
    await step("covia:append", path="w/log", value="one")
    await step("covia:append", path="w/log", value="two")
    await step("covia:delete", path="w/docs/x/list")
    await step("agent:delete", agentId="G")
    await step("agent:create", agentId="A2", config="echo", overwrite=True)
    await step("agent:delete", agentId="A2", remove=True)
    return rt


def jobs_digest(refs: dict[str, str]) -> tuple[str, int, str]:
    lines = sorted(f"{n}={d}" for n, d in refs.items() if n.startswith(JOBS[0]))
    return JOBS[0], len(lines), blake3.blake3("\n".join(lines).encode()).hexdigest()


async def test_a_fixed_history_has_pinned_digests() -> None:
    rt = await build()
    refs = {name: d.hex() for name, d in rt.store.refs("")}
    await rt.close()
    assert {n: d for n, d in refs.items() if not n.startswith("j/")} == HEADS
    assert jobs_digest(refs) == JOBS


def format_settings(monkeypatch, fmt: int) -> None:
    """Write as format ``fmt`` (1 or 2) did: its version in commits (and what reads it, as
    :func:`ops.domain.events.records_agent`), and its vectors' geometry."""
    import lattice.commits
    import lattice.vector
    monkeypatch.setattr(lattice.commits, "FORMAT_VERSION", fmt)
    monkeypatch.setattr(lattice.vector, "LEAF_BITS", lattice.vector.GEOMETRY[fmt][0])
    monkeypatch.setattr(lattice.vector, "NODE_BITS", lattice.vector.GEOMETRY[fmt][1])


async def test_format2_pins_hold_under_format2_settings(monkeypatch) -> None:
    format_settings(monkeypatch, 2)
    rt = await build()
    refs = {name: d.hex() for name, d in rt.store.refs("")}
    for name in HEADS:  # and a format 2 history replays identical under format 3's code
        if name.startswith("g/"):
            monkeypatch.undo()
            r = await out(rt, "agent:replay", agentId=name.split("/")[2])
            assert r["identical"] is True and r["divergence"] is None, (name, r)
    await rt.close()
    assert {n: d for n, d in refs.items() if not n.startswith("j/")} == HEADS_FORMAT2
    assert jobs_digest(refs) == JOBS_FORMAT2


async def test_format1_pins_hold_under_format1_settings(monkeypatch) -> None:
    format_settings(monkeypatch, 1)
    rt = await build()
    refs = {name: d.hex() for name, d in rt.store.refs("")}
    await rt.close()
    assert {n: d for n, d in refs.items() if not n.startswith("j/")} == HEADS_FORMAT1
    assert jobs_digest(refs) == JOBS_FORMAT1


async def test_the_fixed_history_replays_identical() -> None:
    rt = await build()
    for name in HEADS:
        if name.startswith("g/"):
            r = await out(rt, "agent:replay", agentId=name.split("/")[2])
            assert r["identical"] is True and r["divergence"] is None, (name, r)
    await rt.close()


async def test_an_agent_written_in_format_2_then_3_replays_identical(monkeypatch) -> None:
    """An agent whose history outgrew 32 messages under format 2 (a vector of 32-link nodes),
    then grew under format 3 (its first append rebuilds the vector), replays identical: each
    version re-derives in its own commit's format (:attr:`lattice.nodes.Tx.format`)."""
    from lattice.nodes import Vec

    def history(rt: Runtime) -> Vec:
        tx = rt.engine.tx()
        head = read_commit(tx, rt.store.ref("g/local/A"))
        vec = tx.load_root(head.root)["state"]["history"]
        assert type(vec) is Vec
        return vec

    format_settings(monkeypatch, 2)
    rt = Runtime(MemoryStore())
    await rt.start()
    try:
        await out(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}})
        for i in range(20):
            await out(rt, "agent:request", agentId="A", input=f"turn {i}", wait=True)
        assert history(rt).geometry == (3, 5) and history(rt).count == 40
        monkeypatch.undo()
        for i in range(20, 30):
            await out(rt, "agent:request", agentId="A", input=f"turn {i}", wait=True)
        assert history(rt).geometry == (3, 3) and history(rt).count == 60
        r = await out(rt, "agent:replay", agentId="A")
        assert r["identical"] is True and r["divergence"] is None and r["replayed"] == 61, r
    finally:
        await rt.close()


async def test_jobs_folded_into_their_runs_read_as_their_records_did(monkeypatch) -> None:
    """Format 3 folds a task its run completes on top of the commit that accepted it into the
    run's commit (:func:`ops.domain.jobs.finished_job`): every job of the fixed history reads
    exactly as with a stored record, and some of them are folded."""
    from ops.domain import jobs as J

    async def jobs(fold: bool) -> tuple[dict[str, dict], list[str]]:
        monkeypatch.setattr(J, "folds_finished", lambda: fold)
        rt = await build()
        try:
            tx = rt.engine.tx()
            ids = [name.split("/")[2] for name, _ in rt.store.refs("j/local/")]
            folded = [jid for jid in ids if read_commit(tx, rt.store.ref(f"j/local/{jid}")).op == "agent:run"]
            return {jid: rt.get_job("local", jid) for jid in ids}, folded
        finally:
            await rt.close()

    stored, none = await jobs(False)
    derived, folded = await jobs(True)
    assert none == [] and len(folded) >= 3
    assert all(derived[jid]["status"] == J.COMPLETE for jid in folded)
    assert derived == stored
