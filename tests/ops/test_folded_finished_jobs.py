"""Tasks folded into the run that completed them (format 3, issue 13): a request its run completes on
top of the commit that accepted it stores no record and no ``job:finish`` commit; its ref moves to
the run's commit and its record is derived from that commit and its parent
(:func:`ops.domain.jobs.finished_job`). Every other way a job finishes keeps its record."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lattice.commits import log, read_commit
from lattice.fsck import fsck
from lattice.memory import MemoryStore
from lattice.store import RefUpdate
from ops.domain import jobs as J
from ops.domain.check import make_check_head
from ops.domain.jobs import JobIds
from ops.engine.jobs_index import LocalJobIndex
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out, read
from tests.ops.test_folded_jobs import ECHO, Counting, accepted, pointed


def is_folded(rt: Runtime, jid: str) -> bool:
    """Whether the job's ref points at an agent's run commit (no record of its own)."""
    return pointed(rt, jid)[1].op == "agent:run"


async def test_a_request_its_run_completes_is_folded_into_the_run_commit(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    job = await call(rt, "agent:request", agentId="A", input="hello", wait=True)
    jid = job["jobId"]
    d, c = pointed(rt, jid)
    assert d == rt.store.ref("g/local/A") and c.op == "agent:run"  # the agent's head: its run
    acc = read_commit(rt.store, c.parent)
    assert acc.op == "agent:request" and rt.engine.tx().materialize(acc.input)["taskId"] == jid
    want = J.finish(accepted(jid, "A", {"input": "hello"}, J.STARTED, acc.ts), J.COMPLETE, c.ts, output="hello")
    assert rt.get_job("local", jid) == want
    assert job["status"] == J.COMPLETE and job["output"] == "hello"  # the wait's answer
    assert await read(rt, f"j/{jid}") == want  # covia:read
    assert (await out(rt, "covia:read", path="j"))["value"][jid] == want  # the map of jobs
    counting = Counting(rt.store)  # another process: reads the job's ref and commits, no agent ref
    assert LocalJobIndex(counting).get("local", jid) == want
    assert counting.names == [f"j/local/{jid}"] and counting.scans == []
    await out(rt, "agent:request", agentId="A", input="again", wait=True)  # the head moves on
    assert rt.get_job("local", jid) == want and pointed(rt, jid)[0] == d
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


def fixed_runtime() -> Runtime:
    """A runtime with a fixed clock and job ids: two of them do the same thing the same way."""
    now = [1_750_000_000_000]

    def clock() -> int:
        now[0] += 7
        return now[0]
    counter = itertools.count(1)
    return Runtime(MemoryStore(), clock=clock, job_ids=JobIds(lambda n: next(counter).to_bytes(n, "big")))


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
SCRIPTED = {"model": {"provider": "scripted", "rules": [{"content": '{"n": 7}'}]}}


@pytest.mark.parametrize("config, inp, folds", [
    (ECHO, {"input": "plain"}, True),
    (ECHO, {"input": {"nested": [1, 2]}, "outputPath": "w/answers/a"}, True),
    (SCRIPTED, {"input": "json please", "responseSchema": SCHEMA, "strict": True}, True),
    (ECHO, {"input": "in a new session", "session": {"title": "t"}}, True),
    (ECHO, {"input": "in a session", "sessionId": None}, True),  # the session a chat opened
    (ECHO, {"input": "answer to a bad path", "outputPath": "w/taken/deeper"}, False),  # FAILED: keeps its record
], ids=["plain", "outputPath", "responseSchema", "session-opened", "session", "outputPath-fails"])
async def test_a_folded_job_reads_exactly_as_its_record_did(monkeypatch, config, inp, folds) -> None:
    """The same requests with and without the fold: every job reads the same, field by field."""
    async def run(fold: bool) -> tuple[dict[str, Any], bool]:
        monkeypatch.setattr(J, "folds_finished", lambda: fold)
        rt = fixed_runtime()
        await rt.start()
        try:
            await out(rt, "agent:create", agentId="A", config=config)
            await out(rt, "covia:write", path="w/taken", value="a string: nothing goes under it")
            req = dict(inp)
            if "sessionId" in req:
                req["sessionId"] = (await call(rt, "agent:chat", agentId="A", message="opens", wait=True))["sessionId"]
            job = await call(rt, "agent:request", agentId="A", wait=True, **req)
            got = rt.get_job("local", job["jobId"])
            assert got == {k: v for k, v in job.items() if k != "agent"}
            return got, is_folded(rt, job["jobId"])
        finally:
            await rt.close()
    stored, was = await run(False)
    derived, now = await run(True)
    assert not was and now is folds
    assert derived == stored
    assert stored["status"] == (J.COMPLETE if folds else J.FAILED)


async def test_a_task_queued_behind_another_keeps_its_record(rt: Runtime) -> None:
    """Accepted while its agent worked on another task: its run commits on top of another version,
    so its job stores a record, as before."""
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    first = await call(rt, "agent:request", agentId="A", input="first")
    second = await call(rt, "agent:request", agentId="A", input="second")
    await out(rt, "agent:resume", agentId="A")
    await rt.idle("local", "A")
    for j in (first, second):
        rec = rt.get_job("local", j["jobId"])
        assert rec["status"] == J.COMPLETE and not is_folded(rt, j["jobId"])
        assert J.is_job_record(rt.engine.tx().load_root(pointed(rt, j["jobId"])[1].root))


async def test_a_failed_run_keeps_the_job_waiting_and_unfolded(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config={"model": {"provider": "error"}})
    job = await call(rt, "agent:request", agentId="A", input="x", timeout=200)
    assert job["status"] != J.COMPLETE and not is_folded(rt, job["jobId"])


async def test_pruning_gives_folded_finished_jobs_their_records(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    jobs = [await call(rt, "agent:request", agentId="A", input=f"turn {i}", wait=True) for i in range(5)]
    ids = [j["jobId"] for j in jobs]
    before = {jid: rt.get_job("local", jid) for jid in ids}
    assert all(is_folded(rt, jid) for jid in ids)
    old = [d for d, _ in log(rt.store, rt.store.ref("g/local/A"))]
    await out(rt, "agent:prune", agentId="A", keepLast=2)
    for jid in ids:  # squashed or rewritten: each has its own record now, as it read before
        d, c = pointed(rt, jid)
        assert c.parent is None and c.seq == 0 and J.is_job_record(rt.engine.tx().load_root(c.root))
        assert rt.get_job("local", jid) == before[jid]
    await rt.gc(retain_jobs_ms=None)
    assert not any(rt.store.has(d) for d in old[4:])  # no job holds a squashed version alive
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    later = await call(rt, "agent:request", agentId="A", input="after the prune", wait=True)
    assert is_folded(rt, later["jobId"])


async def test_removing_an_agent_gives_its_folded_finished_jobs_their_records(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    jobs = [await call(rt, "agent:request", agentId="A", input="y" * 600 + str(i), wait=True) for i in range(3)]
    ids = [j["jobId"] for j in jobs]
    before = {jid: rt.get_job("local", jid) for jid in ids}
    versions = [d for d, _ in log(rt.store, rt.store.ref("g/local/A"))]
    await out(rt, "agent:delete", agentId="A", remove=True)
    for jid in ids:
        assert rt.get_job("local", jid) == before[jid] and pointed(rt, jid)[1].parent is None
    gc = await rt.gc(retain_jobs_ms=None)
    assert gc["freed"] > 0
    assert not any(rt.store.has(d) for d in versions)  # no job holds a version of the removed agent
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok


async def test_deleting_without_remove_keeps_the_jobs_folded(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    job = await call(rt, "agent:request", agentId="A", input="kept", wait=True)
    await out(rt, "agent:delete", agentId="A")
    assert is_folded(rt, job["jobId"]) and rt.get_job("local", job["jobId"])["status"] == J.COMPLETE


async def test_retention_removes_old_folded_finished_jobs() -> None:
    now = [1_750_000_000_000]
    rt = Runtime(MemoryStore(), clock=lambda: now[0])
    await rt.start()
    try:
        await out(rt, "agent:create", agentId="A", config=ECHO)
        old = await call(rt, "agent:request", agentId="A", input="old", wait=True)
        now[0] += 3_600_000
        new = await call(rt, "agent:request", agentId="A", input="new", wait=True)
        await out(rt, "agent:suspend", agentId="A")
        waiting = await call(rt, "agent:request", agentId="A", input="waits")
        assert is_folded(rt, old["jobId"]) and is_folded(rt, new["jobId"])
        now[0] += 1000
        report = await rt.gc(retain_jobs_ms=60_000)
        assert report["jobsRemoved"] == 2  # the old request and the agent:create job
        assert rt.get_job("local", old["jobId"]) is None
        assert rt.get_job("local", new["jobId"])["status"] == J.COMPLETE
        assert rt.get_job("local", waiting["jobId"])["status"] == J.PENDING
        assert (await out(rt, "agent:history", agentId="A"))["versions"]  # the agent keeps its versions
    finally:
        await rt.close()


async def test_fsck_flags_a_job_ref_on_a_run_that_did_not_complete_it(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await call(rt, "agent:request", agentId="A", input="x", wait=True)
    run = rt.store.ref("g/local/A")
    assert read_commit(rt.store, run).op == "agent:run"
    jid = J.new_job_id(1, bytes(10))
    assert rt.store.commit({}, [RefUpdate(f"j/local/{jid}", None, run)])
    report = fsck(rt.store, check_head=make_check_head(rt.store))
    assert any("nor complete it" in p.message for p in report.problems), report.problems
    assert rt.get_job("local", jid) is None


async def test_format_2_settings_store_the_record(monkeypatch, rt: Runtime) -> None:
    import lattice.commits
    monkeypatch.setattr(lattice.commits, "FORMAT_VERSION", 2)
    await out(rt, "agent:create", agentId="A", config=ECHO)
    job = await call(rt, "agent:request", agentId="A", input="x", wait=True)
    assert pointed(rt, job["jobId"])[1].op == "job:finish"
