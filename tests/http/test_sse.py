"""Server-sent events: job updates, agent versions with Last-Event-ID resumption, invoke as a stream,
heartbeats, and clean-up after a client leaves."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from aiohttp import web

from lattice.commits import read_commit
from ops.surfaces import sse
from ops.surfaces.common import RUNTIME
from tests.http.helpers import (ECHO, HANG, INVOKE, Reader, assert_job_shape, assert_rejection, create, get_job, invoke,
                                ok, open_stream, snapshot)

BEAT = 0.05


@pytest.fixture
async def client(start_app):
    """The app, with heartbeats every BEAT seconds."""
    return await start_app(heartbeat=BEAT)


async def request_job(client, aid: str, text: str = "x") -> dict:
    status, job = await invoke(client, "agent:request", {"agentId": aid, "input": text})
    assert status in (200, 202), job
    return job


# ---------------------------------------------------------------- jobs


async def test_job_stream_sends_current_state_then_each_change_and_ends(client):
    await create(client, "H", HANG)
    job = await request_job(client, "H")
    rd = await open_stream(client, f"/api/v1/jobs/{job['jobId']}/sse")
    first = await rd.next()
    assert first["event"] == "job-update" and first["data"]["status"] == "STARTED"
    assert_job_shape(first["data"], "agent:request")
    r = await client.put(f"/api/v1/jobs/{job['jobId']}/cancel")
    assert r.status == 200
    last = await rd.next()
    assert last["data"]["status"] == "CANCELLED" and last["data"]["errorCode"] == "cancelled"
    assert last["data"] == (await get_job(client, job["jobId"]))[1]
    assert await rd.next() is None  # ended after the terminal status


async def test_job_stream_of_a_finished_job_is_one_event(client):
    await create(client, "E", ECHO)
    status, job = await invoke(client, "agent:request", {"agentId": "E", "input": "hi", "wait": True})
    rd = await open_stream(client, f"/api/v1/jobs/{job['jobId'].upper().replace('0X', '')}/sse")
    events = await rd.rest()
    assert [e["data"] for e in events] == [job]


async def test_job_stream_of_a_memory_only_job(client):
    status, job = await invoke(client, "agent:list", {})
    rd = await open_stream(client, f"/api/v1/jobs/{job['jobId']}/sse")
    assert [e["data"]["status"] for e in await rd.rest()] == ["COMPLETE"]


@pytest.mark.parametrize("job_id", ["0x" + "0" * 32, "nope"])
async def test_job_stream_of_an_unknown_job_is_404(client, job_id):
    r = await client.get(f"/api/v1/jobs/{job_id}/sse")
    assert_rejection(r.status, await r.json(), 404, "not_found")


async def test_idle_streams_carry_heartbeats(client):
    await create(client, "H", HANG)
    job = await request_job(client, "H")
    rd = await open_stream(client, f"/api/v1/jobs/{job['jobId']}/sse")
    await rd.next()
    with pytest.raises(TimeoutError):
        await rd.next(timeout=6 * BEAT)
    assert rd.comments >= 3
    rd.resp.close()


# ---------------------------------------------------------------- invoke as a stream


async def test_invoke_with_accept_event_stream_streams_the_job(client):
    await create(client, "E", ECHO)
    r = await client.post(INVOKE, json={"operation": "agent:request", "input": {"agentId": "E", "input": "hi",
                                                                                 "wait": True}},
                          headers={"Accept": "text/event-stream"})
    assert r.status == 200 and r.content_type == "text/event-stream"
    events = await Reader(r).rest()
    assert all(e["event"] == "job-update" for e in events)
    statuses = [e["data"]["status"] for e in events]
    assert statuses[-1] == "COMPLETE" and events[-1]["data"]["output"]["output"] == "hi"
    assert len(set(statuses)) == len(statuses)  # one event per change
    assert set(statuses) <= {"PENDING", "STARTED", "COMPLETE"}


async def test_invoke_stream_of_a_synchronous_operation(client):
    r = await client.post(INVOKE, json={"operation": "covia:read", "input": {"path": "w"}},
                          headers={"Accept": "text/event-stream;q=1, application/json;q=0.5"})
    events = await Reader(r).rest()
    assert len(events) == 1 and events[0]["data"]["output"] == {"exists": False, "value": None}


@pytest.mark.parametrize("accept", ["application/json, text/event-stream", "*/*", "text/event-stream;q=0.5, "
                                    "application/json", "application/*, text/event-stream"])
async def test_invoke_keeps_json_unless_the_stream_is_preferred(client, accept):
    r = await client.post(INVOKE, json={"operation": "agent:list"}, headers={"Accept": accept})
    assert r.status == 200 and r.content_type == "application/json"


async def test_invoke_stream_rejections_are_json(client, store):
    before = snapshot(store)
    r = await client.post(INVOKE, json={"operation": "agent:create", "input": {"agentId": 5}},
                          headers={"Accept": "text/event-stream"})
    assert_rejection(r.status, await r.json(), 400, "invalid_input", "$.input.agentId")
    r = await client.post(INVOKE, data=b"{", headers={"Accept": "text/event-stream"})
    assert_rejection(r.status, await r.json(), 400, "invalid_json")
    assert snapshot(store) == before


def test_accept_negotiation():
    assert sse.wants_event_stream("text/event-stream")
    assert sse.wants_event_stream("application/json;q=0.9, text/event-stream")
    assert not sse.wants_event_stream(None)
    assert not sse.wants_event_stream("")
    assert not sse.wants_event_stream("application/json, text/event-stream")
    assert not sse.wants_event_stream("text/event-stream;q=0")
    assert not sse.wants_event_stream("text/event-stream;q=bogus, */*")
    assert sse.accept_quality("text/*;q=0.3, */*;q=0.1", "text/event-stream") == 0.3


# ---------------------------------------------------------------- agent versions


async def test_agent_events_one_per_version_with_ids(client):
    await create(client, "E", ECHO)
    rd = await open_stream(client, "/api/v1/agents/E/events")
    first = await rd.next()
    assert first["event"] == "agent-version" and first["id"] == "0/" + first["data"]["id"][:16]
    assert first["data"] == {"agentId": "E", "seq": 0, "id": first["data"]["id"], "op": "agent:create",
                             "status": "SLEEPING", "ts": first["data"]["ts"]}
    assert len(first["data"]["id"]) == 64
    await invoke(client, "agent:request", {"agentId": "E", "input": "hi", "wait": True})
    await ok(client, "agent:suspend", {"agentId": "E"})
    seen = [first]
    while seen[-1]["data"]["op"] != "agent:suspend":
        seen.append(await rd.next())
    seqs = [e["data"]["seq"] for e in seen]
    assert seqs == list(range(len(seqs)))  # nothing missed, in order
    assert [e["id"] for e in seen] == [f"{e['data']['seq']}/{e['data']['id'][:16]}" for e in seen]
    assert seen[1]["data"]["op"] == "agent:request" and seen[1]["data"]["status"] == "RUNNING"
    assert any(e["data"]["op"] == "agent:run" and e["data"]["status"] == "SLEEPING" for e in seen)
    assert seen[-1]["data"]["status"] == "SUSPENDED"
    rd.resp.close()


async def test_agent_events_resume_with_last_event_id(client, store):
    await create(client, "E", ECHO)
    rd = await open_stream(client, "/api/v1/agents/E/events")
    got = [await rd.next()]
    rd.resp.close()  # the client drops; work continues meanwhile
    for i in range(3):
        await ok(client, "agent:message", {"agentId": "E", "message": f"m{i}"})
    await invoke(client, "agent:trigger", {"agentId": "E", "wait": True})
    head = read_commit(store, store.ref("g/local/E")).seq

    rd = await open_stream(client, "/api/v1/agents/E/events", {"Last-Event-ID": got[-1]["id"]})
    while got[-1]["data"]["seq"] < head:
        got.append(await rd.next())
    rd.resp.close()
    seqs = [e["data"]["seq"] for e in got]
    assert seqs == list(range(head + 1))  # every version, none twice
    ops = [e["data"]["op"] for e in got]
    assert ops.count("agent:message") == 3 and "agent:trigger" in ops and ops[-1] == "agent:run"

    # ?since= does the same; from the start: every version again
    rd = await open_stream(client, "/api/v1/agents/E/events?since=0")
    again = [await rd.next() for _ in range(len(got) - 1)]
    assert [e["data"] for e in again] == [e["data"] for e in got[1:]]
    rd.resp.close()


async def test_agent_events_end_when_the_agent_is_removed(client):
    await create(client, "E", ECHO)
    rd = await open_stream(client, "/api/v1/agents/E/events")
    await rd.next()
    await ok(client, "agent:delete", {"agentId": "E", "remove": True})
    events = await rd.rest()
    assert events[-1]["event"] == "agent-removed" and events[-1]["data"]["agentId"] == "E"


async def test_agent_events_of_a_recreated_agent_restart_its_chain(client):
    await create(client, "E", ECHO)
    for i in range(3):
        await ok(client, "agent:update", {"agentId": "E", "state": {"n": i}})
    await ok(client, "agent:delete", {"agentId": "E", "remove": True})
    await create(client, "E", ECHO)
    rd = await open_stream(client, "/api/v1/agents/E/events", {"Last-Event-ID": "3"})
    ev = await rd.next()
    assert ev["data"]["seq"] == 0 and ev["data"]["op"] == "agent:create"
    rd.resp.close()


@pytest.mark.parametrize("headers,query", [({"Last-Event-ID": "x"}, ""), ({"Last-Event-ID": "-1"}, ""),
                                           ({}, "?since=1.5"), ({"Last-Event-ID": "9" * 40}, "")])
async def test_agent_events_bad_resume_point_is_400(client, store, headers, query):
    await create(client, "E", ECHO)
    before = snapshot(store)
    r = await client.get(f"/api/v1/agents/E/events{query}", headers=headers)
    assert_rejection(r.status, await r.json(), 400, "invalid_input")
    assert snapshot(store) == before


async def test_agent_events_of_an_unknown_agent_is_404(client):
    r = await client.get("/api/v1/agents/Nobody/events")
    assert_rejection(r.status, await r.json(), 404, "not_found")


async def test_many_watchers_each_see_every_version(client):
    await create(client, "E", ECHO)
    readers = [await open_stream(client, "/api/v1/agents/E/events") for _ in range(5)]
    for rd in readers:
        assert (await rd.next())["data"]["seq"] == 0
    for i in range(4):
        await ok(client, "agent:update", {"agentId": "E", "state": {"n": i}})
    for rd in readers:
        assert [(await rd.next())["data"]["seq"] for _ in range(4)] == [1, 2, 3, 4]
        rd.resp.close()


# ---------------------------------------------------------------- clean-up


def _live_streams() -> int:
    gc.collect()
    n = 0
    for o in gc.get_objects():
        if isinstance(o, web.StreamResponse) and not isinstance(o, web.Response):
            n += 1
        elif type(o).__name__ == "async_generator" and getattr(o, "ag_code", None) is not None \
                and o.ag_code.co_name in ("follow_job", "follow_agent"):
            n += 1
    return n


async def test_disconnected_clients_leave_no_task_or_memory(client):
    await create(client, "H", HANG)
    await create(client, "E", ECHO)
    job = await request_job(client, "H")
    await asyncio.sleep(0.05)
    baseline_tasks = len(asyncio.all_tasks())
    baseline_streams = _live_streams()
    runtime = client.app[RUNTIME]
    for _ in range(10):
        streams = [await open_stream(client, f"/api/v1/jobs/{job['jobId']}/sse"),
                   await open_stream(client, "/api/v1/agents/E/events")]
        r = await client.post(INVOKE, json={"operation": "agent:request", "input": {"agentId": "H", "input": "y"}},
                              headers={"Accept": "text/event-stream"})
        streams.append(Reader(r))
        for rd in streams:
            assert await rd.next() is not None
        assert len(asyncio.all_tasks()) > baseline_tasks
        for rd in streams:
            rd.resp.close()
    deadline = time.monotonic() + 3
    while len(asyncio.all_tasks()) > baseline_tasks or _live_streams() > baseline_streams:
        assert time.monotonic() < deadline, (len(asyncio.all_tasks()), baseline_tasks, _live_streams())
        await asyncio.sleep(BEAT)
    # Runtime.watch keeps one Event per watched ref until the ref moves: one per distinct ref here (the hang job,
    # the agent, and the 10 streamed jobs, which never move again), not one per client
    assert len(runtime.watched()) <= 2 + 10


async def test_agent_events_resume_across_a_recreated_agent(client):
    """A client holding version 3 of an agent that was removed and created again gets the new chain whole."""
    await create(client, "R", ECHO)
    for i in range(3):
        await ok(client, "agent:update", {"agentId": "R", "state": {"n": i}})
    rd = await open_stream(client, "/api/v1/agents/R/events", {"Last-Event-ID": "0"})
    got = [await rd.next() for _ in range(3)]
    last_id = got[-1]["id"]
    assert last_id.startswith("3/")
    await ok(client, "agent:delete", {"agentId": "R", "remove": True})
    await create(client, "R", ECHO)
    for i in range(5):
        await ok(client, "agent:update", {"agentId": "R", "state": {"m": i}})
    rd = await open_stream(client, "/api/v1/agents/R/events", {"Last-Event-ID": last_id})
    again = [await rd.next() for _ in range(6)]
    assert [e["data"]["seq"] for e in again] == [0, 1, 2, 3, 4, 5]  # the new chain from its first version


@pytest.mark.parametrize("status", ["COMPLETE", "CANCELLED", "FAILED"])
async def test_the_final_job_update_has_an_id_and_a_reconnect_after_it_is_204(client, status):
    """A browser EventSource reconnects whenever a stream ends; sending back the final id stops it (204)."""
    await create(client, "H", HANG)
    await create(client, "E", ECHO)
    if status == "COMPLETE":
        _, job = await invoke(client, "agent:request", {"agentId": "E", "input": "x", "wait": True})
    elif status == "CANCELLED":
        _, job = await invoke(client, "agent:request", {"agentId": "H", "input": "x"})
    else:
        _, job = await invoke(client, "agent:info", {"agentId": "Nobody"})
    url = f"/api/v1/jobs/{job['jobId']}/sse"
    rd = await open_stream(client, url)
    if status == "CANCELLED":
        first = await rd.next()
        assert "id" not in first and first["data"]["status"] == "STARTED"
        await client.put(f"/api/v1/jobs/{job['jobId']}/cancel")
    events = await rd.rest()
    final = events[-1]
    assert final["data"]["status"] == status and final["id"] == status
    assert all("id" not in e for e in events[:-1])

    again = await client.get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": final["id"]})
    assert again.status == 204 and await again.read() == b""
    # any other Last-Event-ID is ignored: the job again, as one final event
    for other in ("0", "STARTED", "COMPLETE" if status != "COMPLETE" else "FAILED"):
        rd = await open_stream(client, url, {"Last-Event-ID": other})
        assert [e["id"] for e in await rd.rest()] == [status]
