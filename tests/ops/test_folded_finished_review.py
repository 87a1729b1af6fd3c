"""Review of format 3's folded finished tasks (``ops.domain.jobs.finished_job``): the paths where a
task folded into the run that completed it could read otherwise than its record would have."""

from __future__ import annotations

from lattice.memory import MemoryStore
from ops.domain import jobs as J
from ops.engine.jobs_index import LocalJobIndex
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out
from tests.ops.test_folded_jobs import ECHO, pointed
from tests.ops.test_runtime import Gate


async def test_a_request_accepted_before_format_2_and_run_after_the_upgrade_keeps_its_agent(monkeypatch) -> None:
    """Accepted by a commit that names no agent (format 1), its run committed by format 3's code (the
    upgrade restarted the server in between: the run re-ran from that commit). Its record must name
    its agent for every reader, as the stored one did: it is not folded into the run."""
    from tests.ops.test_golden_history import format_settings
    format_settings(monkeypatch, 1)
    gate = Gate()
    rt = Runtime(MemoryStore())
    rt.adapter_factory = gate
    await rt.start()
    try:
        await out(rt, "agent:create", agentId="A", config=ECHO)
        job = await call(rt, "agent:request", agentId="A", input="across the upgrade", wait=False)
        jid = job["jobId"]
        await gate.entered.wait()
        assert "agentId" not in rt.engine.tx().materialize(pointed(rt, jid)[1].input)
        monkeypatch.undo()  # format 3 from here on
        gate.release.set()
        await rt.idle("local", "A")
        got = LocalJobIndex(rt.store).get("local", jid)  # a reader that does not know the agent
        assert got["status"] == J.COMPLETE and got["output"] == "across the upgrade"
        assert got["agentId"] == "A" and got["input"]["agentId"] == "A"
        assert rt.get_job("local", jid) == got
    finally:
        await rt.close()


async def test_fsck_flags_a_folded_job_that_holds_versions_its_agent_no_longer_has(rt) -> None:
    """What drops an agent's versions gives its folded jobs their records first; a job ref left on
    a commit its agent no longer has (here: the agent's ref removed behind the engine's back) keeps
    those versions alive for good. fsck says so, for a finished job and a waiting one."""
    from lattice.fsck import fsck
    from lattice.store import RefUpdate
    from ops.domain.check import make_check_head
    await out(rt, "agent:create", agentId="A", config=ECHO)
    done = await call(rt, "agent:request", agentId="A", input="finished", wait=True)
    await out(rt, "agent:suspend", agentId="A")
    waiting = await call(rt, "agent:request", agentId="A", input="waiting")
    assert pointed(rt, done["jobId"])[1].op == "agent:run" and pointed(rt, waiting["jobId"])[1].op == "agent:request"
    assert fsck(rt.store, check_head=make_check_head(rt.store)).ok
    await out(rt, "agent:create", agentId="B", config=ECHO)
    assert rt.store.commit({}, [RefUpdate("g/local/A", rt.store.ref("g/local/A"), rt.store.ref("g/local/B"))])
    report = fsck(rt.store, check_head=make_check_head(rt.store))
    flagged = {p.ref for p in report.problems if "not on agent 'A'" in p.message}
    assert flagged == {f"j/local/{done['jobId']}", f"j/local/{waiting['jobId']}"}, report.problems
    assert rt.store.commit({}, [RefUpdate("g/local/A", rt.store.ref("g/local/A"), None)])
    report = fsck(rt.store, check_head=make_check_head(rt.store))
    assert {p.ref for p in report.problems if "there is no agent 'A'" in p.message} == flagged, report.problems
