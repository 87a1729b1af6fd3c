"""A pending task's job folded into its agent's commit (issue 13, a smaller step) reads over HTTP
as the record accepting it wrote before: ``GET /api/v1/jobs/{id}``, the jobs list, a wait that
runs out, the job's event stream; cancelling it ends the stream."""

from __future__ import annotations

from lattice.commits import read_commit
from ops.domain import jobs as J
from ops.surfaces.common import RUNTIME
from tests.http.helpers import ECHO, create, get_job, invoke, ok, open_stream


async def test_a_folded_pending_request_over_http(start_app) -> None:
    client = await start_app(heartbeat=0.05)
    store = client.app[RUNTIME].store
    await create(client, "A", ECHO)
    await ok(client, "agent:suspend", {"agentId": "A"})
    status, job = await invoke(client, "agent:request", {"agentId": "A", "input": {"q": 1}, "wait": False})
    assert status == 202, job
    jid = job["jobId"]
    head = store.ref("g/local/A")
    assert store.ref(f"j/local/{jid}") == head and read_commit(store, head).op == "agent:request"
    want = J.public_job(J.job_record(jid, "agent:request", J.job_time(jid), input={"agentId": "A", "input": {"q": 1}},
                                     agent_id="A"))
    assert job == want
    assert await get_job(client, jid) == (200, want)
    r = await client.get("/api/v1/jobs")
    assert jid in (await r.json())["items"]
    status, waited = await invoke(client, "agent:request", {"agentId": "A", "input": "two", "timeout": 30})
    assert status == 202 and waited["status"] == "PENDING" and waited["agent"]["status"] == "SUSPENDED"
    assert waited["input"] == {"agentId": "A", "input": "two"}  # how the caller waited is not recorded
    rd = await open_stream(client, f"/api/v1/jobs/{jid}/sse")
    first = await rd.next()
    assert first["event"] == "job-update" and first["data"] == want
    r = await client.put(f"/api/v1/jobs/{jid}/cancel")
    assert r.status == 200
    last = await rd.next()
    assert last["data"]["status"] == "CANCELLED" and last["data"] == (await get_job(client, jid))[1]
    assert {k: v for k, v in last["data"].items() if k not in ("status", "error", "errorCode", "updated")} == \
        {k: v for k, v in want.items() if k not in ("status", "error", "errorCode", "updated")}
    assert await rd.next() is None


async def test_a_folded_request_finishes_over_http(start_app) -> None:
    client = await start_app("lmdb")
    await create(client, "A", ECHO)
    await ok(client, "agent:suspend", {"agentId": "A"})
    _, job = await invoke(client, "agent:request", {"agentId": "A", "input": "hi"})
    await ok(client, "agent:resume", {"agentId": "A"})
    status, done = await invoke(client, "agent:request", {"agentId": "A", "input": "after", "wait": True})
    assert status == 200 and done["status"] == "COMPLETE"
    status, first = await get_job(client, job["jobId"])
    assert status == 200 and first["status"] == "COMPLETE" and first["created"] == job["created"]


async def test_a_request_folded_into_its_run_over_http(start_app) -> None:
    """A request its run completes on top of its accepting commit stays folded (format 3): its ref
    is the run's commit, and every view reads it COMPLETE with its answer; its event stream says so
    and ends."""
    client = await start_app("lmdb")
    store = client.app[RUNTIME].store
    await create(client, "A", ECHO)
    status, done = await invoke(client, "agent:request", {"agentId": "A", "input": "folded", "wait": True})
    assert status == 200 and done["status"] == "COMPLETE"
    jid = done["jobId"]
    head = store.ref("g/local/A")
    assert store.ref(f"j/local/{jid}") == head and read_commit(store, head).op == "agent:run"
    assert await get_job(client, jid) == (200, done)
    r = await client.get("/api/v1/jobs")
    assert jid in (await r.json())["items"]
    rd = await open_stream(client, f"/api/v1/jobs/{jid}/sse")
    first = await rd.next()
    assert first["event"] == "job-update" and first["data"] == done
    assert await rd.next() is None
