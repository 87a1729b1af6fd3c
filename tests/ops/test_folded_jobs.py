"""Folded jobs (issue 13, a smaller step): a task, trigger or chat job stores no record when it is
accepted; its ref points at the agent commit that accepted it, its record is derived from that
commit, and its first change starts a chain of its own (see ``ops.domain.jobs``)."""

from __future__ import annotations

import pytest

from lattice.commits import log, read_commit
from lattice.fsck import fsck
from lattice.memory import MemoryStore
from lattice.store import RefUpdate
from ops.domain import jobs as J
from ops.domain.check import make_check_head
from ops.engine.jobs_index import LocalJobIndex
from ops.engine.runtime import Runtime
from ops.engine.unit import Unit
from tests.ops.helpers import call, out, read

ECHO = {"model": {"provider": "echo"}}


def pointed(rt: Runtime, jid: str):
    """``(digest, commit)`` the job's ref points at."""
    d = rt.store.ref(f"j/local/{jid}")
    return d, read_commit(rt.store, d)


def accepted(jid: str, agent_id: str, inp: dict, status: str = J.PENDING, updated: int | None = None,
             **extra) -> dict:
    """The record accepting a request wrote before jobs were folded (``wait`` aside)."""
    rec = J.job_record(jid, "agent:request", J.job_time(jid), input={"agentId": agent_id, **inp}, status=status,
                       agent_id=agent_id)
    if updated is not None:
        rec["updated"] = updated
    return {**rec, **extra}


async def test_a_pending_request_points_at_its_agent_commit_and_reads_as_before(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input={"q": 1}, wait=False)
    jid = job["jobId"]
    d, c = pointed(rt, jid)
    assert d == rt.store.ref("g/local/A") and c.op == "agent:request"  # no record of its own
    want = accepted(jid, "A", {"input": {"q": 1}})
    assert job == want
    assert rt.get_job("local", jid) == want
    assert await read(rt, f"j/{jid}") == want  # covia:read
    assert (await out(rt, "covia:read", path="j"))["value"][jid] == want  # the virtual map of jobs
    fresh = LocalJobIndex(rt.store)  # another process: the commit names the agent
    await out(rt, "agent:message", agentId="A", message="moves the head on")
    assert fresh.get("local", jid) == want
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok


async def test_started_at_accept_and_the_first_change_starts_its_own_chain(rt: Runtime) -> None:
    from tests.ops.test_runtime import Gate
    gate = Gate()
    rt.adapter_factory = gate
    await out(rt, "agent:create", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="x", wait=False)
    jid = job["jobId"]
    d, c = pointed(rt, jid)
    assert job == accepted(jid, "A", {"input": "x"}, J.STARTED, c.ts)  # the oldest task of a RUNNING agent
    await gate.entered.wait()
    second = await call(rt, "agent:request", agentId="A", input="y", wait=False)
    assert second["status"] == J.PENDING
    assert pointed(rt, jid)[0] == d  # nothing changed the first one
    gate.release.set()
    await rt.idle("local", "A")
    for j in (jid, second["jobId"]):
        done = rt.get_job("local", j)
        assert done["status"] == J.COMPLETE
        chain = [c for _, c in log(rt.store, pointed(rt, j)[0])]
        assert chain[-1].parent is None and chain[-1].seq == 0  # its first change started it
        assert all(J.is_job_record(rt.engine.tx().load_root(c.root)) for c in chain)  # no agent commit
    assert [c.op for _, c in log(rt.store, pointed(rt, second["jobId"])[0])] == ["job:finish", "job:status"]


async def test_cancel_and_finish_of_folded_jobs(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    a = await call(rt, "agent:request", agentId="A", input="a")
    b = await call(rt, "agent:request", agentId="A", input="b", outputPath="w/out/b")
    t = await call(rt, "agent:trigger", agentId="A", wait=False)
    cancelled = await rt.cancel_job("local", a["jobId"], reason="no longer")
    assert cancelled == {**J.cancel(accepted(a["jobId"], "A", {"input": "a"}), cancelled["updated"], "no longer")}
    c = pointed(rt, a["jobId"])[1]
    assert c.parent is None and c.seq == 0 and c.op == "job:cancel"
    await out(rt, "agent:completeTask", agentId="A", taskId=b["jobId"], result={"ok": True})
    done = rt.get_job("local", b["jobId"])
    assert done["status"] == J.COMPLETE and done["output"] == {"ok": True}
    assert done["input"] == {"agentId": "A", "input": "b", "outputPath": "w/out/b"}
    assert await read(rt, "w/out/b") == {"ok": True}
    assert pointed(rt, b["jobId"])[1].parent is None
    assert rt.get_job("local", t["jobId"]) == {**J.job_record(t["jobId"], "agent:trigger", J.job_time(t["jobId"]),
                                                               input={"agentId": "A"}, agent_id="A")}
    await out(rt, "agent:resume", agentId="A")
    await rt.idle("local", "A")
    assert rt.get_job("local", t["jobId"])["status"] == J.COMPLETE
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok


async def test_a_chat_job_is_folded_with_its_session(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:chat", agentId="A", message="hello", wait=False)
    sid = job["sessionId"]
    assert pointed(rt, job["jobId"])[1].op == "agent:chat"
    want = {**J.job_record(job["jobId"], "agent:chat", J.job_time(job["jobId"]),
                           input={"agentId": "A", "message": "hello", "sessionId": None}, agent_id="A"),
            "sessionId": sid}
    assert job == want and rt.get_job("local", job["jobId"]) == want
    await out(rt, "agent:resume", agentId="A")
    await rt.idle("local", "A")
    done = rt.get_job("local", job["jobId"])
    assert done["status"] == J.COMPLETE and done["output"]["sessionId"] == sid


async def test_a_trigger_with_a_session_keeps_its_record(rt: Runtime) -> None:
    """The session a trigger echoes is not in the agent's commit: that job is not folded."""
    await out(rt, "agent:create", agentId="A", config=ECHO)
    chat = await call(rt, "agent:chat", agentId="A", message="hi", wait=True)
    await out(rt, "agent:suspend", agentId="A")
    t = await call(rt, "agent:trigger", agentId="A", sessionId=chat["sessionId"], wait=False)
    c = pointed(rt, t["jobId"])[1]
    assert c.op == "agent:trigger" and J.is_job_record(rt.engine.tx().load_root(c.root))
    await out(rt, "agent:resume", agentId="A")
    await rt.idle("local", "A")
    assert rt.get_job("local", t["jobId"])["output"]["sessionId"] == chat["sessionId"]


async def test_removing_an_agent_with_folded_jobs_frees_its_objects_at_gc(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    jobs = [await call(rt, "agent:request", agentId="A", input="z" * 600 + str(i)) for i in range(3)]
    versions = [d for d, _ in log(rt.store, rt.store.ref("g/local/A"))]
    await out(rt, "agent:delete", agentId="A", remove=True)
    for j in jobs:
        rec = rt.get_job("local", j["jobId"])
        assert rec["status"] == J.CANCELLED and rec["agentId"] == "A"
        assert pointed(rt, j["jobId"])[1].parent is None
    gc = await rt.gc(retain_jobs_ms=None)
    assert gc["freed"] > 0
    assert not any(rt.store.has(d) for d in versions)  # no job chain holds a version alive
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok


async def test_a_pruned_agent_with_a_pending_job(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    for i in range(5):
        await out(rt, "agent:request", agentId="A", input=f"turn {i}", wait=True)
    await out(rt, "agent:suspend", agentId="A")
    task = await call(rt, "agent:request", agentId="A", input="waits")
    old = rt.store.ref(f"j/local/{task['jobId']}")
    assert old == rt.store.ref("g/local/A")
    await out(rt, "agent:prune", agentId="A", keepLast=2)
    d, c = pointed(rt, task["jobId"])
    assert c.parent is None and c.seq == 0 and c.op == "agent:request"  # its record, on its own chain
    assert rt.get_job("local", task["jobId"]) == accepted(task["jobId"], "A", {"input": "waits"})
    await rt.gc(retain_jobs_ms=None)
    assert not rt.store.has(old)  # the squashed versions are not held by the job
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok
    await out(rt, "agent:resume", agentId="A")
    await rt.idle("local", "A")
    assert rt.get_job("local", task["jobId"])["status"] == J.COMPLETE
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_a_wait_that_runs_out_returns_the_folded_job(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="w", timeout=20)
    assert {k: v for k, v in job.items() if k != "agent"} == accepted(job["jobId"], "A", {"input": "w"})
    assert job["agent"]["status"] == "SUSPENDED"


async def test_restart_reads_folded_jobs_and_finishes_them(tmp_path) -> None:
    from lattice.lmdb import LmdbStore
    store = LmdbStore(tmp_path / "db", durable=True)
    rt = Runtime(store)
    await rt.start()
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="after restart")
    await rt.close()
    store.close()
    store = LmdbStore(tmp_path / "db", durable=True)
    rt = Runtime(store)
    await rt.start()
    try:
        assert rt.get_job("local", job["jobId"]) == job
        await out(rt, "agent:resume", agentId="A")
        await rt.idle("local", "A")
        assert rt.get_job("local", job["jobId"])["status"] == J.COMPLETE
    finally:
        await rt.close()
        store.close()


async def test_fsck_flags_a_job_ref_on_an_agent_commit_that_did_not_accept_it(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    head = rt.store.ref("g/local/A")  # agent:create: accepted no job
    jid = J.new_job_id(1, bytes(10))
    assert rt.store.commit({}, [RefUpdate(f"j/local/{jid}", None, head)])
    report = fsck(rt.store, check_head=make_check_head(rt.store))
    assert any("did not accept this job" in p.message for p in report.problems), report.problems
    assert rt.get_job("local", jid) is None  # not a job


async def test_a_unit_following_a_ref_it_does_not_write_fails() -> None:
    u = Unit(MemoryStore(), 1, "local")
    u.follow("j/local/x", "g/local/A")
    with pytest.raises(RuntimeError, match="commits nothing to"):
        u.updates()


async def test_an_untrue_agent_hint_is_not_believed(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:create", agentId="B", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="mine")
    assert rt.engine.jobs.get("local", job["jobId"], "B")["agentId"] == "A"  # the commit names it
    bad = await call(rt, "agent:cancelTask", agentId="B", taskId=job["jobId"])
    assert bad["status"] == J.FAILED and bad["error"]["code"] == "not_found"
    assert rt.get_job("local", job["jobId"])["status"] == J.PENDING


class Counting:
    """The store, counting what is read: refs by name, scans by prefix, objects."""

    def __init__(self, inner):
        self.inner, self.names, self.scans, self.objects = inner, [], [], 0

    def ref(self, n):
        self.names.append(n)
        return self.inner.ref(n)

    def refs(self, prefix=""):
        self.scans.append(prefix)
        return self.inner.refs(prefix)

    def get(self, d):
        self.objects += 1
        return self.inner.get(d)

    def __getattr__(self, k):
        return getattr(self.inner, k)


@pytest.mark.parametrize("op", ["agent:request", "agent:trigger", "agent:chat"])
async def test_a_folded_job_read_by_id_in_a_fresh_process_reads_no_agent(rt: Runtime, op: str) -> None:
    """The accepting commit names its agent (format 2): a reader with no hint and no memory reads the
    job's ref and that commit, never another agent's ref nor a scan of them."""
    for i in range(30):
        await out(rt, "agent:create", agentId=f"X{i}", config=ECHO)
        await out(rt, "agent:suspend", agentId=f"X{i}")
    inp = {"input": "q"} if op == "agent:request" else {"message": "m"} if op == "agent:chat" else {}
    job = await call(rt, op, agentId="X17", wait=False, **inp)
    jid = job["jobId"]
    ev = rt.engine.tx().materialize(pointed(rt, jid)[1].input)
    assert ev["agentId"] == "X17"
    for i in range(30):  # every agent moves on: the job's commit is no agent's head
        await out(rt, "agent:message", agentId=f"X{i}", message="later")
    counting = Counting(rt.store)
    got = LocalJobIndex(counting).get("local", jid)
    assert got == job and got["agentId"] == "X17" and got["status"] == J.PENDING
    assert counting.names == [f"j/local/{jid}"] and counting.scans == []
    few = counting.objects
    counting = Counting(rt.store)  # the same read with one agent: as many object reads
    await out(rt, "agent:create", agentId="Y", config=ECHO)
    await out(rt, "agent:suspend", agentId="Y")
    one = await call(rt, op, agentId="Y", wait=False, **inp)
    assert LocalJobIndex(counting).get("local", one["jobId"])["agentId"] == "Y"
    assert counting.objects == few and counting.scans == []


async def test_a_reader_that_saw_the_ref_before_the_job_finished_gets_it_as_it_was(rt: Runtime) -> None:
    """A job's ref read at its agent's commit, then the job finished: the reader gets the job as it
    was when it read the ref (PENDING, with its agent), a later read its own record."""
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    job = await call(rt, "agent:request", agentId="A", input="race")
    name = f"j/local/{job['jobId']}"
    folded = rt.store.ref(name)
    await out(rt, "agent:completeTask", agentId="A", taskId=job["jobId"], result="done")
    got = LocalJobIndex(Late(rt.store, name, folded)).get("local", job["jobId"])
    assert got == job and got["agentId"] == "A"
    assert LocalJobIndex(rt.store).get("local", job["jobId"])["status"] == J.COMPLETE


class Late:
    """The store, but the first read of ref ``name`` gives ``stale``."""

    def __init__(self, inner, name, stale):
        self.inner, self.name, self.stale = inner, name, stale

    def ref(self, n):
        if n == self.name and self.stale is not None:
            d, self.stale = self.stale, None
            return d
        return self.inner.ref(n)

    def __getattr__(self, k):
        return getattr(self.inner, k)


def format1(monkeypatch) -> None:
    """Format 1's settings (``tests/ops/test_golden_history.py``): accept events name no agent."""
    from tests.ops.test_golden_history import format_settings
    format_settings(monkeypatch, 1)


async def test_a_folded_job_whose_commit_names_no_agent(monkeypatch) -> None:
    """A request or trigger accepted before format 2 names no agent: a reader that knows it is
    believed when that agent holds the job; one that does not gets the record without ``agentId``;
    one whose read raced with the job finishing reads again. Such a chain replays, shows its
    versions, and exports and imports into a store that names agents."""
    from lattice.bundle import BundleReader
    from ops.engine.bundles import export_agent, import_agent
    format1(monkeypatch)
    rt = Runtime(MemoryStore())
    await rt.start()
    try:
        await out(rt, "agent:create", agentId="A", config=ECHO)
        await out(rt, "agent:create", agentId="B", config=ECHO)
        await out(rt, "agent:suspend", agentId="A")
        job = await call(rt, "agent:request", agentId="A", input="old")
        jid, name = job["jobId"], f"j/local/{job['jobId']}"
        assert "agentId" not in rt.engine.tx().materialize(pointed(rt, jid)[1].input)
        assert job == accepted(jid, "A", {"input": "old"})
        assert rt.engine.jobs.get("local", jid, "A") == job
        nameless = rt.engine.jobs.get("local", jid)
        assert "agentId" not in nameless and nameless["input"]["agentId"] is None
        assert "agentId" not in rt.engine.jobs.get("local", jid, "B")  # B does not hold it
        folded = rt.store.ref(name)
        await out(rt, "agent:completeTask", agentId="A", taskId=jid, result="done")
        got = LocalJobIndex(Late(rt.store, name, folded)).get("local", jid, "A")  # A no longer holds it
        assert got == rt.get_job("local", jid) and got["status"] == J.COMPLETE
        trig = await call(rt, "agent:trigger", agentId="A", wait=False)
        assert "agentId" not in rt.engine.tx().materialize(pointed(rt, trig["jobId"])[1].input)
        assert rt.engine.jobs.get("local", trig["jobId"], "A")["agentId"] == "A"
        assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
        v = await out(rt, "agent:version", agentId="A", at=2)
        assert v["op"] == "agent:request" and v["input"] == {"taskId": jid, "input": "old"}
        _, chunks = export_agent(rt.engine, "local", "A")
        data = b"".join(chunks)
    finally:
        await rt.close()
    monkeypatch.undo()  # format 2 from here on: a new request names its agent
    rt = Runtime(MemoryStore())
    await rt.start()
    try:
        reader = BundleReader()
        reader.feed(data)
        assert (await import_agent(rt.engine, "local", "C", reader))["fromAgentId"] == "A"
        assert rt.get_job("local", trig["jobId"])["agentId"] == "C"  # imported work keeps a record
        assert (await out(rt, "agent:replay", agentId="C"))["identical"] is True
        await out(rt, "agent:suspend", agentId="C")
        new = await call(rt, "agent:request", agentId="C", input="new")
        assert rt.engine.tx().materialize(pointed(rt, new["jobId"])[1].input)["agentId"] == "C"
        assert LocalJobIndex(rt.store).get("local", new["jobId"])["agentId"] == "C"
        await out(rt, "agent:resume", agentId="C")
        await rt.idle("local", "C")
        assert rt.get_job("local", new["jobId"])["status"] == J.COMPLETE
        assert (await out(rt, "agent:replay", agentId="C"))["identical"] is True
    finally:
        await rt.close()


async def test_a_folded_request_keeps_its_session_and_options(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    opened = await call(rt, "agent:request", agentId="A", input="one", session={"title": "T"}, wait=False)
    sid = opened["sessionId"]
    assert opened == accepted(opened["jobId"], "A", {"input": "one", "session": {"title": "T"}}, sessionId=sid)
    schema = {"type": "object"}
    bound = await call(rt, "agent:request", agentId="A", input="two", sessionId=sid, responseSchema=schema,
                       strict=True, outputPath="w/answers/two", timeout=0)
    assert bound == accepted(bound["jobId"], "A", {"input": "two", "sessionId": sid, "responseSchema": schema,
                                                   "strict": True, "outputPath": "w/answers/two"}, sessionId=sid)
    for j in (opened, bound):
        assert rt.get_job("local", j["jobId"]) == j
