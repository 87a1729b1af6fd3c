"""GET /api/v1/events: the caller's agents, live (created, updated, removed), caller-scoped, documented."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from ops.surfaces.app import ROUTES
from ops.surfaces.auth import Tokens
from ops.surfaces.common import RUNTIME, SHUTDOWN
from ops.surfaces.openapi import openapi_document
from tests.http.helpers import ECHO, HANG, Reader, assert_rejection, create, invoke, ok, open_stream, until

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-fedcba9876543210"
EVENTS = "/api/v1/events"
BEAT = 0.05


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def as_(client, token: str, op: str, **inp) -> dict:
    r = await client.post("/api/v1/invoke", json={"operation": op, "input": inp}, headers=auth(token))
    body = await r.json()
    assert r.status == 200 and body["status"] == "COMPLETE", body
    return body["output"]


async def next_about(rd: Reader, agent_id: str, event: str | None = None, timeout: float = 5.0) -> dict:
    """The next event about ``agent_id`` (of kind ``event``), skipping others."""
    while True:
        ev = await rd.next(timeout)
        assert ev is not None, "the stream ended"
        if ev["data"].get("agentId") == agent_id and (event is None or ev["event"] == event):
            return ev


async def test_the_stream_lists_the_agents_then_follows_their_changes(start_app):
    client = await start_app(heartbeat=BEAT)
    await create(client, "Old", ECHO)
    rd = await open_stream(client, EVENTS)
    first = await rd.next()
    assert first["event"] == "agents" and [a["agentId"] for a in first["data"]["agents"]] == ["Old"]
    listed = (await ok(client, "agent:list", {"includeTerminated": True}))["agents"]
    assert first["data"]["agents"] == listed  # the agent:list entries, `updated` included
    # another request creates an agent: it appears
    await create(client, "New", ECHO)
    created = await next_about(rd, "New")
    assert created["event"] == "agent-created"
    assert created["data"] == {"agentId": "New", "status": "SLEEPING", "taskCount": 0, "tasks": 0, "error": None,
                               "errorCode": None, "updated": created["data"]["updated"]}
    # it runs a task: updates, the last one SLEEPING again with a later `updated`
    await invoke(client, "agent:request", {"agentId": "New", "input": "hi", "wait": True})
    seen = []
    while not seen or seen[-1]["status"] != "SLEEPING":
        seen.append((await next_about(rd, "New", "agent-updated"))["data"])
    assert seen[-1]["updated"] > created["data"]["updated"] or len(seen) > 1
    assert seen[-1] == next(a for a in (await ok(client, "agent:list"))["agents"] if a["agentId"] == "New")
    # suspended, then removed
    await ok(client, "agent:suspend", {"agentId": "Old"})
    assert (await next_about(rd, "Old"))["data"]["status"] == "SUSPENDED"
    await ok(client, "agent:delete", {"agentId": "Old", "remove": True})
    assert await next_about(rd, "Old") == {"event": "agent-removed", "data": {"agentId": "Old"}}
    # idle: heartbeats only
    with pytest.raises(TimeoutError):
        await rd.next(timeout=4 * BEAT)
    assert rd.comments >= 2
    rd.resp.close()


async def test_a_failed_run_is_an_update_with_its_error(client):
    await create(client, "F", {"model": {"provider": "error", "message": "boom"}})
    rd = await open_stream(client, EVENTS)
    await rd.next()
    await invoke(client, "agent:request", {"agentId": "F", "input": "x"})
    while (ev := await next_about(rd, "F", "agent-updated"))["data"]["status"] != "SUSPENDED":
        pass
    assert (ev["data"]["error"], ev["data"]["errorCode"]) == ("boom", "llm_error")
    rd.resp.close()


async def test_only_the_callers_own_agents_are_sent(start_app):
    client = await start_app(tokens=Tokens({ALICE: "alice", BOB: "bob"}), heartbeat=BEAT)
    await as_(client, BOB, "agent:create", agentId="BobsOld")
    await as_(client, ALICE, "agent:create", agentId="Shared")
    rd = await open_stream(client, EVENTS, auth(ALICE))
    first = await rd.next()
    assert [a["agentId"] for a in first["data"]["agents"]] == ["Shared"]
    # bob creates an agent with the same id as alice's, works it, removes his old one: alice hears nothing of it
    await as_(client, BOB, "agent:create", agentId="Shared")
    await as_(client, BOB, "agent:create", agentId="BobsNew")
    await as_(client, BOB, "agent:update", agentId="Shared", state={"x": 1})
    await as_(client, BOB, "agent:delete", agentId="BobsOld", remove=True)
    await as_(client, ALICE, "agent:create", agentId="Mine")  # ...and then of her own, at once
    ev = await rd.next()
    assert ev["event"] == "agent-created" and ev["data"]["agentId"] == "Mine"
    with pytest.raises(TimeoutError):
        await rd.next(timeout=4 * BEAT)
    rd.resp.close()
    bob = await open_stream(client, EVENTS, auth(BOB))
    assert sorted(a["agentId"] for a in (await bob.next())["data"]["agents"]) == ["BobsNew", "Shared"]
    bob.resp.close()
    r = await client.get(EVENTS, headers={"Accept": "text/event-stream"})
    assert_rejection(r.status, await r.json(), 401, "unauthorized")


async def test_missed_notifications_are_caught_up_by_a_full_read(client):
    """When the notifier may have missed commits (PostgreSQL: a lost LISTEN connection, and its poll), it wakes
    every subscription with 'anything may have moved': the stream reads every agent again and sends what changed."""
    rt = client.app[RUNTIME]
    await create(client, "A", ECHO)
    await create(client, "Gone", ECHO)
    rd = await open_stream(client, EVENTS)
    await rd.next()
    notify = rt.notifier.notify
    rt.engine.units._notify = lambda ref: None  # commits from now on announce nothing
    try:
        await create(client, "B", ECHO)
        await ok(client, "agent:update", {"agentId": "A", "state": {"k": 1}})
        await ok(client, "agent:delete", {"agentId": "Gone", "remove": True})
        with pytest.raises(TimeoutError):
            await rd.next(timeout=0.2)
    finally:
        rt.engine.units._notify = notify
    rt.notifier.wake_all()
    events = [await rd.next() for _ in range(3)]
    assert sorted((e["event"], e["data"]["agentId"]) for e in events) == [
        ("agent-created", "B"), ("agent-removed", "Gone"), ("agent-updated", "A")]
    rt.notifier.wake_all()  # nothing moved since: nothing sent
    with pytest.raises(TimeoutError):
        await rd.next(timeout=0.2)
    rd.resp.close()


async def test_a_client_that_leaves_leaves_no_subscription(start_app):
    client = await start_app(heartbeat=BEAT)
    rt = client.app[RUNTIME]
    await create(client, "H", HANG)
    streams = [await open_stream(client, EVENTS) for _ in range(3)]
    for rd in streams:
        await rd.next()
    assert rt.notifier.subscriptions() == 3
    for rd in streams:
        rd.resp.close()
    await until(lambda: asyncio.sleep(0, rt.notifier.subscriptions() == 0), what="subscriptions closed")


async def test_shutdown_ends_the_stream(start_app):
    client = await start_app(heartbeat=10)
    rd = await open_stream(client, EVENTS)
    await rd.next()
    client.app[SHUTDOWN].set()  # what the application does first when it shuts down
    assert await rd.next(timeout=2) is None
    assert client.app[RUNTIME].notifier.subscriptions() == 0


async def test_every_event_is_documented(client):
    doc = openapi_document(ROUTES)
    get = doc["paths"][EVENTS]["get"]
    assert get["operationId"] == "callerEvents" and "agents" in get["tags"]
    media = get["responses"]["200"]["content"]["text/event-stream"]
    schemas = {b["properties"]["event"]["const"]: b for b in media["x-itemSchema"]["oneOf"]}
    assert set(schemas) == {"agents", "agent-created", "agent-updated", "agent-removed", "error"}
    await create(client, "D", ECHO)
    rd = await open_stream(client, EVENTS, raw=True)
    await invoke(client, "agent:request", {"agentId": "D", "input": "hi", "wait": True})
    await ok(client, "agent:delete", {"agentId": "D", "remove": True})
    sent = [await rd.next()]
    while sent[-1]["event"] != "agent-removed":
        sent.append(await rd.next())
    rd.resp.close()
    assert {e["event"] for e in sent} >= {"agents", "agent-updated", "agent-removed"}
    for ev in sent:
        jsonschema.Draft202012Validator({"oneOf": list(schemas.values())}).validate(ev)
        data = schemas[ev["event"]]["properties"]["data"]["contentSchema"]
        jsonschema.Draft202012Validator({**data, "components": doc["components"]}).validate(json.loads(ev["data"]))
