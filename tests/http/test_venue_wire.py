"""The Covia venue's REST surface and job record (issue 11), route by route, each failure path with its code,
with tokens off and on; and a smoke test with the official ``covia`` SDK against a real ``lattice serve``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ops.domain.contracts import REGISTRY, canonical_key
from ops.surfaces import venue, venue_catalog
from ops.surfaces.auth import Tokens
from ops.surfaces.openapi import input_json_schema
from tests.http.helpers import (ECHO, HANG, assert_job_shape, assert_rejection, create, invoke, ok, snapshot,
                                until)
from tests.serve import free_port, serve

ALICE, BOB = "alice-token-0123456789abcdef", "bob-token-fedcba9876543210"
ZERO = "0x" + "0" * 32


async def call(c, method: str, path: str, body: Any = None, token: str | None = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, Any] = {"data": raw, "headers": {**headers, "Content-Type": "application/json"}} if raw is not None \
        else {"json": body, "headers": headers}
    r = await c.request(method, path, **kw)
    return r.status, await r.json(content_type=None)


async def job_ids(c, token: str | None = None) -> list[str]:
    status, page = await call(c, "GET", "/api/v1/jobs", token=token)
    assert status == 200, page
    return page["items"]


# ---------------------------------------------------------------- names and the job record

def test_the_venue_names_of_an_operation_are_its_key() -> None:
    cases = {"v/ops/agent/cancel-task": "agent:cancelTask", "/v/ops/covia/read": "covia:read",
             "agent:session-read": "agent:sessionRead", "agent:complete-task": "agent:completeTask",
             "v/ops/agent/cancelTask": "agent:cancelTask", "agent:create": "agent:create",
             "v/ops/agent/a/b": "v/ops/agent/a/b", "create": "create", "v/ops/agent": "v/ops/agent"}
    assert {n: canonical_key(n) for n in cases} == cases
    for c in REGISTRY.values():
        assert canonical_key(c.alias) == c.key and c.alias.startswith("v/ops/") and c.alias == c.alias.lower()
    assert REGISTRY["agent:cancelTask"].alias == "v/ops/agent/cancel-task"


async def test_every_alias_invokes_the_operation_and_the_job_says_its_key(client) -> None:
    await create(client, "A", ECHO)
    for name in ("v/ops/agent/info", "/v/ops/agent/info", "agent:info", "v/ops/agent/cancel-task",
                 "agent:cancel-task"):
        inp = {"agentId": "A"} if "info" in name else {"agentId": "A", "taskId": ZERO}
        status, job = await invoke(client, name, inp)
        assert status == 200, job
        assert_job_shape(job, canonical_key(name).lstrip("/"))


async def test_the_job_record_has_the_venue_fields(client) -> None:
    status, job = await invoke(client, "agent:create", {"agentId": "A", "config": ECHO})
    assert status == 200
    assert_job_shape(job, "agent:create")
    assert (job["id"], job["op"], job["error"], job["errorCode"]) == (job["jobId"], "agent:create", None, None)
    assert job["input"]["agentId"] == "A" and job["output"]["created"] is True
    # a failed job: the message in `error`, the code in `errorCode`, its pointer and hint beside them
    status, failed = await invoke(client, "agent:info", {"agentId": "Nobody"})
    assert_job_shape(failed, "agent:info")
    assert failed["status"] == "FAILED" and failed["errorCode"] == "not_found" and "Nobody" in failed["error"]
    assert failed["path"] == "$.input.agentId" and failed["hint"]
    # the same record on GET, and the stored record is unchanged (error as {code, message})
    status, again = await call(client, "GET", f"/api/v1/jobs/{failed['id']}")
    assert status == 200 and again == failed
    _, task = await invoke(client, "agent:request", {"agentId": "A", "input": "hi", "wait": True})
    assert task["agentId"] == "A" and task["output"]["output"] == "hi"  # a text answer, wrapped


async def test_a_cancelled_job_carries_the_reason_as_its_error(client, store) -> None:
    await create(client, "H", HANG)
    _, job = await invoke(client, "agent:request", {"agentId": "H", "input": "x"})
    status, done = await call(client, "PUT", f"/api/v1/jobs/{job['id']}/cancel", {"reason": "not needed"})
    assert status == 200 and done["status"] == "CANCELLED", done
    assert (done["error"], done["errorCode"]) == ("not needed", "cancelled")
    _, job2 = await invoke(client, "agent:request", {"agentId": "H", "input": "y"})
    status, done2 = await call(client, "PUT", f"/api/v1/jobs/{job2['id']}/cancel", raw=b" ")
    assert status == 200 and (done2["error"], done2["errorCode"]) == ("cancelled by caller", "cancelled")
    _, job3 = await invoke(client, "agent:request", {"agentId": "H", "input": "z"})
    before = snapshot(store)
    for raw, path in ((b"{nope", None), (b'"text"', "$"), (b'{"reason": 5}', "$"), (b'{"why": "x"}', "$"),
                      (json.dumps({"reason": "r" * 1001}).encode(), "$")):
        status, body = await call(client, "PUT", f"/api/v1/jobs/{job3['id']}/cancel", raw=raw)
        assert_rejection(status, body, 400, "invalid_json" if path is None else "invalid_input", path)
    assert snapshot(store) == before
    status, body = await call(client, "PUT", f"/api/v1/jobs/{ZERO}/cancel", {"reason": "x"})
    assert_rejection(status, body, 404, "not_found")


async def test_rejections_have_the_venue_body(client) -> None:
    for method, path, raw, http, code in (
            ("POST", "/api/v1/invoke", b"{", 400, "invalid_json"), ("GET", "/api/v1/nowhere", None, 404, "not_found"),
            ("DELETE", "/api/v1/invoke", None, 405, "method_not_allowed"),
            ("POST", "/api/v1/invoke", b'{"operation": "agent:nope"}', 404, "unknown_operation")):
        status, body = await call(client, method, path, raw=raw)
        assert_rejection(status, body, http, code)


# ---------------------------------------------------------------- invoke's body

async def test_invoke_wait_blocks_for_a_task(client) -> None:
    await create(client, "A", ECHO)
    r = await client.post("/api/v1/invoke", json={"operation": "agent:request", "input": {"agentId": "A",
                                                                                         "input": "q"}, "wait": True})
    job = await r.json()
    assert r.status == 200 and job["status"] == "COMPLETE" and job["output"]["output"] == "q"
    await create(client, "H", HANG)
    r = await client.post("/api/v1/invoke", json={"operation": "agent:request", "input": {"agentId": "H",
                                                                                         "input": "q"}, "wait": 30})
    job = await r.json()
    assert r.status == 202 and job["status"] == "STARTED" and r.headers["Location"] == f"/api/v1/jobs/{job['id']}"


@pytest.mark.parametrize("body, path", [
    ({"operation": "agent:list", "wait": "yes"}, "$.wait"), ({"operation": "agent:list", "wait": -1}, "$.wait"),
    ({"operation": "agent:list", "private": 1}, "$.private"),
    ({"operation": "agent:list", "ucans": ["eyJ.x"]}, "$.ucans"),
    ({"operation": "agent:list", "ucans": "eyJ"}, "$.ucans"), ({"operation": "agent:list", "extra": 1}, "$.extra"),
    ({"input": {}}, "$.operation"), ([1], "$")])
@pytest.mark.parametrize("route", ["/api/v1/invoke", "/api/v1/run"])
async def test_a_bad_envelope_is_a_400_that_changes_nothing(client, store, body, path: str, route: str) -> None:
    before = snapshot(store)
    status, got = await call(client, "POST", route, body)
    err = assert_rejection(status, got, 400, "invalid_input", path)
    if path == "$.ucans":
        assert "not supported" in err["message"] and err["hint"]
    assert snapshot(store) == before and await job_ids(client) == []


async def test_no_ucans_is_accepted(client) -> None:
    status, job = await call(client, "POST", "/api/v1/invoke", {"operation": "agent:list", "ucans": []})
    assert status == 200 and job["status"] == "COMPLETE"


async def test_a_private_job_leaves_no_record(client, store) -> None:
    status, job = await call(client, "POST", "/api/v1/invoke", {"operation": "covia:write", "private": True,
                                                                "input": {"path": "w/p", "value": 1}})
    assert status == 200 and job["status"] == "COMPLETE", job
    assert store.ref(f"j/local/{job['id']}") is None and await job_ids(client) == []
    status, body = await call(client, "GET", f"/api/v1/jobs/{job['id']}")
    assert_rejection(status, body, 404, "not_found")
    assert (await ok(client, "covia:read", {"path": "w/p"}))["value"] == 1  # what it did stays
    # a private task is waited for, then forgotten too
    await create(client, "A", ECHO)
    before = set(await job_ids(client))
    status, job = await call(client, "POST", "/api/v1/invoke", {"operation": "agent:request", "private": True,
                                                                "input": {"agentId": "A", "input": "p"}})
    assert status == 200 and job["output"]["output"] == "p" and set(await job_ids(client)) == before
    r = await client.post("/api/v1/invoke", json={"operation": "agent:list", "private": True},
                          headers={"Accept": "text/event-stream"})
    assert_rejection(r.status, await r.json(), 400, "invalid_input", "$.private")


# ---------------------------------------------------------------- run

async def test_run_answers_the_output_itself(client) -> None:
    status, out = await call(client, "POST", "/api/v1/run", {"operation": "v/ops/agent/create",
                                                             "input": {"agentId": "A", "config": ECHO}})
    assert status == 200 and out["agentId"] == "A" and out["created"] is True
    status, out = await call(client, "POST", "/api/v1/run", {"operation": "agent:request",
                                                             "input": {"agentId": "A", "input": "hi", "wait": True}})
    assert (status, out["output"]) == (200, "hi")
    status, body = await call(client, "POST", "/api/v1/run", {"operation": "agent:info", "input": {"agentId": "B"}})
    assert status == 404 and body["errorCode"] == "not_found" and "'B'" in body["error"] and body["status"] == "FAILED"
    assert body["id"] == body["jobId"] and body["path"] == "$.input.agentId"
    # any other failure is 409: the operation could not be done in the state it found
    status, body = await call(client, "POST", "/api/v1/run", {"operation": "agent:fork",
                                                              "input": {"sourceId": "A", "agentId": "A"}})
    assert status == 409 and body["errorCode"] == "conflict" and body["status"] == "FAILED", body
    await call(client, "POST", "/api/v1/run", {"operation": "agent:delete", "input": {"agentId": "A"}})
    status, body = await call(client, "POST", "/api/v1/run", {"operation": "agent:message",
                                                              "input": {"agentId": "A", "message": "m"}})
    assert status == 409 and body["errorCode"] == "illegal_state" and body["status"] == "FAILED", body
    status, body = await call(client, "POST", "/api/v1/run", {"operation": "agent:nope"})
    assert_rejection(status, body, 404, "unknown_operation")
    status, body = await call(client, "POST", "/api/v1/run", raw=b"[")
    assert_rejection(status, body, 400, "invalid_json")


async def test_run_of_a_job_left_waiting_is_its_snapshot(client) -> None:
    await create(client, "H", HANG)
    status, snap = await call(client, "POST", "/api/v1/run", {"operation": "agent:request",
                                                              "input": {"agentId": "H", "input": "x", "wait": 20}})
    assert status == 202 and snap["status"] == "STARTED" and snap["agentId"] == "H" and snap["id"]
    # a run cancelled while it waits answers 409 `cancelled`
    task = asyncio.ensure_future(call(client, "POST", "/api/v1/run", {"operation": "agent:request",
                                                                      "input": {"agentId": "H", "input": "y"},
                                                                      "wait": True}))
    ids = await until(lambda: _pending(client, snap["id"]), what="the second task")
    await call(client, "PUT", f"/api/v1/jobs/{ids[0]}/cancel", {"reason": "stop"})
    status, body = await task
    assert status == 409 and body["errorCode"] == "cancelled" and body["error"] == "stop" and body["id"] == ids[0]


async def _pending(client, first: str) -> list[str]:
    return [j for j in await job_ids(client) if j > first]


async def test_a_private_run_is_forgotten(client) -> None:
    await create(client, "A", ECHO)
    before = await job_ids(client)
    status, out = await call(client, "POST", "/api/v1/run", {"operation": "agent:request", "private": True,
                                                             "input": {"agentId": "A", "input": "secret"}})
    assert (status, out["output"]) == (200, "secret") and await job_ids(client) == before


# ---------------------------------------------------------------- jobs

async def test_the_job_list_is_paged_oldest_first(client) -> None:
    await create(client, "A", ECHO)
    made = [(await invoke(client, "agent:info", {"agentId": "A"}))[1]["id"] for _ in range(4)]
    all_ids = await job_ids(client)
    assert all_ids == sorted(all_ids) and all_ids[-4:] == made and len(all_ids) == 5
    status, page = await call(client, "GET", "/api/v1/jobs?offset=1&limit=2")
    assert status == 200 and page == {"items": all_ids[1:3], "total": 5, "offset": 1, "limit": 2}
    status, page = await call(client, "GET", "/api/v1/jobs?offset=9")
    assert page == {"items": [], "total": 5, "offset": 9, "limit": venue.MAX_PAGE}
    for query, name in (("offset=-1", "offset"), ("limit=0", "limit"), (f"limit={venue.MAX_PAGE + 1}", "limit"),
                        ("limit=x", "limit"), ("limit=1&limit=2", "limit"), ("since=1", "since")):
        status, body = await call(client, "GET", f"/api/v1/jobs?{query}")
        assert_rejection(status, body, 400, "invalid_input", f"$.query.{name}")


async def test_delete_drops_a_finished_job(client, store) -> None:
    _, w = await invoke(client, "covia:write", {"path": "w/x", "value": 1})
    _, r = await invoke(client, "covia:read", {"path": "w/x"})
    assert store.ref(f"j/local/{w['id']}") is not None
    for job in (w, r):
        status, body = await call(client, "PUT", f"/api/v1/jobs/{job['id'].upper().replace('0X', '0x')}/delete")
        assert status == 200 and body == {"id": job["id"], "jobId": job["id"], "deleted": True}
        status, body = await call(client, "GET", f"/api/v1/jobs/{job['id']}")
        assert_rejection(status, body, 404, "not_found")
    assert store.ref(f"j/local/{w['id']}") is None and await job_ids(client) == []
    assert (await ok(client, "covia:read", {"path": "w/x"}))["value"] == 1
    for jid in (w["id"], ZERO, "nonsense"):
        status, body = await call(client, "PUT", f"/api/v1/jobs/{jid}/delete")
        assert_rejection(status, body, 404, "not_found")
    await create(client, "H", HANG)
    _, task = await invoke(client, "agent:request", {"agentId": "H", "input": "x"})
    status, body = await call(client, "PUT", f"/api/v1/jobs/{task['id']}/delete")
    assert_rejection(status, body, 409, "conflict")
    assert (await call(client, "GET", f"/api/v1/jobs/{task['id']}"))[1]["status"] == "STARTED"


async def test_a_message_to_a_job_goes_to_its_agent(client, store) -> None:
    await create(client, "H", HANG)
    _, task = await invoke(client, "agent:request", {"agentId": "H", "input": "x"})
    status, ack = await call(client, "POST", f"/api/v1/jobs/{task['id']}", "more context")
    assert status == 202 and ack == {"status": "queued", "queueDepth": 2, "agentId": "H", "jobId": task["id"]}
    status, ack = await call(client, "POST", f"/api/v1/jobs/{task['id']}", {"content": "and this"})
    assert status == 202 and ack["queueDepth"] == 3
    status, ack = await call(client, "POST", f"/api/v1/jobs/{task['id']}", {"n": 1})
    inbox = (await ok(client, "covia:read", {"path": "g/H/inbox"}))["value"]
    assert [m["message"] for m in inbox] == ["more context", "and this", '{"n":1}']
    await call(client, "PUT", f"/api/v1/jobs/{task['id']}/cancel")
    before = snapshot(store)
    status, body = await call(client, "POST", f"/api/v1/jobs/{task['id']}", "late")
    assert_rejection(status, body, 409, "conflict")
    status, body = await call(client, "POST", f"/api/v1/jobs/{ZERO}", "x")
    assert_rejection(status, body, 404, "not_found")
    status, body = await call(client, "POST", f"/api/v1/jobs/{task['id']}", raw=b"{")
    assert_rejection(status, body, 400, "invalid_json")
    assert snapshot(store) == before


async def test_jobs_cannot_be_paused_here(client) -> None:
    await create(client, "H", HANG)
    _, task = await invoke(client, "agent:request", {"agentId": "H", "input": "x"})
    for verb in ("pause", "resume"):
        status, body = await call(client, "PUT", f"/api/v1/jobs/{task['id']}/{verb}")
        err = assert_rejection(status, body, 501, "not_supported")
        assert "agent:suspend" in err["hint"]
        status, body = await call(client, "PUT", f"/api/v1/jobs/{ZERO}/{verb}")
        assert_rejection(status, body, 404, "not_found")


# ---------------------------------------------------------------- job-free reads

async def test_agents_are_read_without_a_job(client, store) -> None:
    await create(client, "A", ECHO)
    await create(client, "T", ECHO)
    await ok(client, "agent:delete", {"agentId": "T"})
    ids, before = await job_ids(client), snapshot(store)
    status, listed = await call(client, "GET", "/api/v1/agents")
    assert status == 200 and listed == await ok(client, "agent:list", {})
    assert [a["agentId"] for a in listed["agents"]] == ["A"]
    status, listed = await call(client, "GET", "/api/v1/agents?includeTerminated=true")
    assert [a["agentId"] for a in listed["agents"]] == ["A", "T"]
    status, info = await call(client, "GET", "/api/v1/agents/A")
    assert status == 200 and info == await ok(client, "agent:info", {"agentId": "A"})
    status, old = await call(client, "GET", "/api/v1/agents/A?at=0")
    assert status == 200 and old["timelineLength"] == 0
    # the operations above made jobs: the GETs none
    assert len(await job_ids(client)) == len(ids) + 2 and snapshot(store) == before
    for path, http, code, where in (("/api/v1/agents/Nobody", 404, "not_found", "$.path.agentId"),
                                    ("/api/v1/agents/%20bad", 400, "invalid_input", "$.path.agentId"),
                                    ("/api/v1/agents/A?at=99", 404, "not_found", "$.query.at"),
                                    ("/api/v1/agents/A?at=-1", 400, "invalid_input", "$.query.at"),
                                    ("/api/v1/agents?includeTerminated=maybe", 400, "invalid_input",
                                     "$.query.includeTerminated"),
                                    ("/api/v1/agents?x=1", 400, "invalid_input", "$.query.x")):
        status, body = await call(client, "GET", path)
        assert_rejection(status, body, http, code, where)
    assert len(await job_ids(client)) == len(ids) + 2


async def test_values_are_read_without_a_job(client, store) -> None:
    await ok(client, "covia:write", {"path": "w/orders", "value": {
        "a": {"x1": {"source": "nhs"}, "x2": {"source": "nhs"}}, "b": {"y1": {"source": "letters"}, "y2": {}}}})
    await ok(client, "covia:write", {"path": "w/list", "value": list(range(10))})
    ids, before = await job_ids(client), snapshot(store)
    for name, params, op, inp in (
            ("read", "path=w/orders/a", "covia:read", {"path": "w/orders/a"}),
            ("read", "path=w/list&maxSize=5", "covia:read", {"path": "w/list", "maxSize": 5}),
            ("list", "path=w/orders&limit=1&offset=1", "covia:list", {"path": "w/orders", "limit": 1, "offset": 1}),
            ("slice", "path=w/list&offset=2&limit=3", "covia:slice", {"path": "w/list", "offset": 2, "limit": 3})):
        status, got = await call(client, "GET", f"/api/v1/values/{name}?{params}")
        assert status == 200 and got == await ok(client, op, inp), (name, got)
    expected = {"count?path=w/orders": {"exists": True, "count": 2},
                "count?path=w/orders&depth=2": {"exists": True, "count": 4},
                "count?path=w/orders&depth=9": {"exists": True, "count": 0},
                "count?path=w/list": {"exists": True, "count": 10},
                "count?path=w/list/0": {"exists": False}, "count?path=w/none": {"exists": False},
                "aggregate?path=w/orders&depth=2&groupBy=source": {"exists": True, "count": 4, "groups": {
                    "letters": {"count": 1}, "nhs": {"count": 2}, "null": {"count": 1}}},
                "aggregate?path=w/orders": {"exists": True, "count": 2},
                "inspect?path=w/list": {"exists": True, "result": "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"},
                "inspect?path=w/orders/a": {"exists": True,
                                            "result": '{x1: {source: "nhs"}, x2: {source: "nhs"}}'},
                "inspect?path=w/none": {"exists": False, "result": None}}
    for query, want in expected.items():
        status, got = await call(client, "GET", f"/api/v1/values/{query}")
        assert (status, got) == (200, want), query
    status, got = await call(client, "GET", "/api/v1/values/inspect?path=w/orders&budget=40")
    assert "/* " in got["result"] and len(got["result"]) < 80, got
    status, got = await call(client, "GET", "/api/v1/values/inspect?path=w/orders/a&compact=false")
    assert got["result"].startswith("{\n  x1: ") and got["result"].endswith("\n}")
    # only the covia:* operations above made jobs; the GETs none
    assert len(await job_ids(client)) == len(ids) + 4 and snapshot(store) == before
    for query, code, name in (("read", "invalid_input", "path"), ("read?path=bad//path", "invalid_path", "path"),
                              ("read?path=x/y", "invalid_path", "path"),
                              ("read?path=w/x&maxSize=-1", "invalid_input", "maxSize"),
                              ("read?path=w/x&maxSize=big", "invalid_input", "maxSize"),
                              ("list?path=w/x&limit=0", "invalid_input", "limit"),
                              ("slice?path=w/x&nope=1", "invalid_input", "nope"),
                              ("count?path=w/x&depth=0", "invalid_input", "depth"),
                              ("aggregate?path=w/orders&groupBy=/", "invalid_path", "groupBy"),
                              ("inspect?path=w/x&budget=0", "invalid_input", "budget"),
                              ("inspect?path=w/x&compact=True", "invalid_input", "compact"),
                              ("read?path=w/x&maxSize=99999999999999999999", "invalid_input", "maxSize"),
                              ("aggregate?path=w/x&groupBy=a//b", "invalid_path", "groupBy"),
                              ("read?path=w/x&at=1", "invalid_input", "at")):  # versions: covia:read's `at`
        status, body = await call(client, "GET", f"/api/v1/values/{query}")
        assert_rejection(status, body, 400, code, f"$.query.{name}")
    assert len(await job_ids(client)) == len(ids) + 4


# ---------------------------------------------------------------- catalog and discovery

async def test_the_catalog_as_the_venue_lists_it(client) -> None:
    status, ops = await call(client, "GET", "/api/v1/operations")
    assert status == 200 and isinstance(ops, list) and len(ops) == len(REGISTRY)
    for entry, c in zip(ops, REGISTRY.values()):
        assert (entry["name"], entry["operation"], entry["description"]) == (c.alias, c.key, c.summary)
        assert entry["input"] == input_json_schema(c) and len(entry["asset"]) == 64
    one = ops[list(REGISTRY).index("agent:cancelTask")]
    for name in ("v/ops/agent/cancel-task", "v%2Fops%2Fagent%2Fcancel-task", "agent:cancelTask", "agent:cancel-task"):
        status, got = await call(client, "GET", f"/api/v1/operations/{name}")
        assert (status, got) == (200, one), name
    status, body = await call(client, "GET", "/api/v1/operations/v/ops/agent/nope")
    assert_rejection(status, body, 404, "unknown_operation")
    status, agent_ops = await call(client, "GET", "/api/v1/adapters/agent/operations")
    assert status == 200 and set(agent_ops) == {c.alias for c in REGISTRY.values() if c.key.startswith("agent:")}
    meta = agent_ops["v/ops/agent/cancel-task"]
    assert meta["operation"]["adapter"] == "agent:cancelTask" and meta["operation"]["input"] == one["input"]
    status, body = await call(client, "GET", "/api/v1/adapters/grid/operations")
    err = assert_rejection(status, body, 404, "not_found")
    assert "agent" in err["hint"] and "covia" in err["hint"]


async def test_mcp_discovery(client) -> None:
    status, doc = await call(client, "GET", "/.well-known/mcp")
    assert status == 200 and doc["server_url"] == f"http://127.0.0.1:{client.port}/mcp"
    assert doc["mcp_version"] in doc["protocolVersions"] and doc["auth"] == {"type": "none"}


UNSUPPORTED = [r for r in venue_catalog.ROUTES if r.handler is venue_catalog.not_supported]


@pytest.mark.parametrize("route", UNSUPPORTED, ids=[f"{r.method} {r.path}" for r in UNSUPPORTED])
async def test_assets_and_secrets_are_not_supported(client, store, route) -> None:
    before = snapshot(store)
    status, body = await call(client, route.method, route.path.replace("{id}", "0x12").replace("{name}", "k"),
                              {"value": "v"} if route.method in ("POST", "PUT") else None)
    err = assert_rejection(status, body, 501, "not_supported")
    assert ("assets" if "assets" in route.path else "secrets") in err["message"]
    assert snapshot(store) == before


# ---------------------------------------------------------------- tokens

VENUE_ROUTES = [r for r in (*venue.ROUTES, *venue_catalog.ROUTES)]


@pytest.mark.parametrize("route", VENUE_ROUTES, ids=[f"{r.method} {r.path}" for r in VENUE_ROUTES])
async def test_with_tokens_every_venue_route_needs_one(start_app, route) -> None:
    c = await start_app(tokens=Tokens({ALICE: "alice"}))
    path = route.path.replace("{jobId}", ZERO).replace("{agentId}", "A").replace("{name:.+}", "agent:create") \
        .replace("{name}", "agent").replace("{id}", "x")
    status, body = await call(c, route.method, path, {"operation": "agent:list"} if route.method != "GET" else None)
    assert_rejection(status, body, 401, "unauthorized")


async def test_with_tokens_each_caller_sees_its_own(start_app) -> None:
    c = await start_app(tokens=Tokens({ALICE: "alice", BOB: "bob"}))
    status, out = await call(c, "POST", "/api/v1/run", {"operation": "agent:create", "input": {"agentId": "A"}},
                             token=ALICE)
    assert status == 200 and out["created"] is True
    await call(c, "POST", "/api/v1/run", {"operation": "covia:write", "input": {"path": "w/k", "value": 1}},
               token=ALICE)
    alice_jobs = await job_ids(c, ALICE)
    assert len(alice_jobs) == 2 and await job_ids(c, BOB) == []
    assert (await call(c, "GET", "/api/v1/agents", token=BOB))[1] == {"agents": []}
    assert (await call(c, "GET", "/api/v1/agents/A", token=ALICE))[0] == 200
    assert_rejection(*await call(c, "GET", "/api/v1/agents/A", token=BOB), 404, "not_found")
    assert (await call(c, "GET", "/api/v1/values/read?path=w/k", token=BOB))[1]["exists"] is False
    assert (await call(c, "GET", "/api/v1/values/read?path=w/k", token=ALICE))[1]["value"] == 1
    for verb in ("delete", "pause"):
        assert_rejection(*await call(c, "PUT", f"/api/v1/jobs/{alice_jobs[0]}/{verb}", token=BOB), 404, "not_found")
    assert_rejection(*await call(c, "POST", f"/api/v1/jobs/{alice_jobs[0]}", "hi", token=BOB), 404, "not_found")
    status, doc = await call(c, "GET", "/.well-known/mcp", token=BOB)
    assert status == 200 and doc["auth"] == {"type": "bearer"}


# ---------------------------------------------------------------- the official SDK

def test_the_covia_sdk_drives_a_real_server(tmp_path) -> None:
    """``covia.Grid.connect`` against ``lattice serve``: invoke, wait, get, cancel, list, run, the catalog."""
    from covia import Grid
    from covia.exceptions import GridError, JobFailedError, JobNotFoundError

    port = free_port()
    proc = serve(port, "--memory")
    try:
        with Grid.connect(f"http://127.0.0.1:{port}") as v:
            created = v.run("v/ops/agent/create", {"agentId": "A", "config": ECHO})
            assert created["created"] is True
            job = v.invoke("v/ops/agent/request", {"agentId": "A", "input": "hello"})
            assert job.id is not None and job.result(timeout=10)["output"] == "hello"
            got = v.get_job(job.id)
            assert got.is_complete and got.data.op == "agent:request" and got.output["output"] == "hello"
            v.run("agent:create", {"agentId": "H", "config": HANG})
            hung = v.invoke("agent:request", {"agentId": "H", "input": "x"})
            cancelled = v.cancel_job(hung.id, reason="enough")
            assert cancelled.status == "CANCELLED" and (cancelled.error, cancelled.errorCode) == ("enough", "cancelled")
            with pytest.raises(JobFailedError):
                v.get_job(hung.id).output
            failed = v.invoke("agent:info", {"agentId": "Nobody"})
            assert failed.status == "FAILED" and failed.data.errorCode == "not_found" and "Nobody" in failed.error
            assert set(v.list_jobs()) >= {job.id, hung.id, failed.id}
            with pytest.raises(GridError) as e:
                v.run("agent:info", {"agentId": "Nobody"})
            assert e.value.status_code == 404 and "Nobody" in e.value.message
            with pytest.raises(JobNotFoundError):
                v.get_job(ZERO)
            ops = {o.name: o for o in v.list_operations()}
            assert ops["v/ops/agent/cancel-task"].input["properties"]["taskId"]
            assert v.get_operation("agent:create").name == "v/ops/agent/create"
            assert v.agents.info("A").agentId == "A" and [a.agentId for a in v.agents.list().agents] == ["A", "H"]
            assert v.workspace.read("w/none").exists is False
            assert v.mcp_discovery().server_url.endswith("/mcp")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"Traceback" not in out, out.decode()


def test_doctests() -> None:
    import doctest

    from ops.domain import contracts, errors, jobs
    for module in (contracts, errors, jobs, venue):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
