"""``agent:export`` and ``agent:import``: the bundles of the export and import routes as operations
(base64 in JSON) over ``/invoke``, MCP and the generated client; the export's size cap; bad input
and bad bundles write nothing; a caller exports and imports in its own namespace only."""

from __future__ import annotations

import base64
import os
from typing import Any

import blake3
import msgspec
import pytest

from lattice.bundle import read_bundle
from ops.domain import bundle_ops as BO
from ops.surfaces.auth import Tokens
from ops.surfaces.client import Client
from ops.surfaces.common import RUNTIME
from tests.http.helpers import assert_job_shape, failed, invoke, ok
from tests.http.test_bundles import do_import, export, make_agent

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-fedcba9876543210"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def snapshot(client) -> tuple[list, int]:
    """The app's refs and object count (a memory or an LMDB store): equal before/after, nothing written."""
    store = client.app[RUNTIME].store
    return list(store.refs("")), len(store) if hasattr(store, "__len__") else store.stats()["objects"]


async def rejected(client, op: str, input: Any, code: str, status: int = 400) -> dict:
    """Invoke, assert a rejection (no job) with ``errorCode == code``; return its body."""
    got, body = await invoke(client, op, input)
    assert got == status and body["errorCode"] == code, (got, body)
    return body


async def test_round_trip_over_invoke_replays_identical(start_app) -> None:
    src = await start_app("lmdb")
    await make_agent(src)
    before = snapshot(src)
    status, job = await invoke(src, "agent:export", {"agentId": "Src"})
    assert status == 200, job
    assert_job_shape(job, "agent:export")
    o = job["output"]
    data = unb64(o["bundle"])
    assert set(o) == {"agentId", "versions", "exportedAt", "bytes", "digest", "bundle"}  # no `from`: all of it
    assert o["agentId"] == "Src" and o["bytes"] == len(data) and o["digest"] == blake3.blake3(data).hexdigest()
    header, objects = read_bundle([data])
    top = (await ok(src, "agent:history", {"agentId": "Src", "limit": 1}))["versions"][0]["seq"]
    assert o["versions"] == header["versions"] == top + 1 and o["exportedAt"] == header["exportedAt"]
    assert read_bundle([await export(src, "Src")])[1] == objects  # the route's bundle, object for object
    assert snapshot(src) == before  # an export writes nothing
    kept = (await (await src.get(f"/api/v1/jobs/{job['jobId']}")).json())
    assert kept["status"] == "COMPLETE" and "bundle" not in kept["output"] and kept["output"]["digest"] == o["digest"]

    dst = await start_app("lmdb")
    status, job = await invoke(dst, "agent:import", {"agentId": "Copy", "bundle": o["bundle"]})
    assert status == 200 and job["status"] == "COMPLETE", job
    assert_job_shape(job, "agent:import")
    _, by_route = await do_import(await start_app("lmdb"), "Copy", data)
    assert job["output"] == by_route  # what the import route answers
    assert job["output"]["fromAgentId"] == "Src" and job["output"]["objects"] == len(objects)
    # the job kept carries the bundle's size and digest, not the bundle
    assert job["input"] == {"agentId": "Copy", "bytes": len(data), "digest": o["digest"]}
    assert (await (await dst.get(f"/api/v1/jobs/{job['jobId']}")).json())["input"] == job["input"]
    replay = await ok(dst, "agent:replay", {"agentId": "Copy"})
    assert replay["identical"] is True and replay["replayed"] == job["output"]["versions"], replay
    history = await ok(dst, "agent:history", {"agentId": "Copy", "limit": 1})
    assert history["versions"][0]["op"] == "agent:import"
    assert await ok(src, "covia:read", {"path": "g/Src/state/history"}) == \
        await ok(dst, "covia:read", {"path": "g/Copy/state/history"})


async def test_export_from_a_version(start_app) -> None:
    src = await start_app()
    await ok(src, "agent:create", {"agentId": "A", "config": {"model": {"provider": "echo"}}})
    for i in range(4):
        await ok(src, "agent:request", {"agentId": "A", "input": f"t{i}", "wait": True})
    top = (await ok(src, "agent:history", {"agentId": "A", "limit": 1}))["versions"][0]["seq"]
    k = top - 2
    whole = await ok(src, "agent:export", {"agentId": "A"})
    o = await ok(src, "agent:export", {"agentId": "A", "from": k})
    assert o["from"] == k and o["versions"] == top + 1 and o["bytes"] < whole["bytes"]
    assert read_bundle([unb64(o["bundle"])])[0]["from"] == k
    dst = await start_app("lmdb")
    await ok(dst, "agent:import", {"agentId": "Tail", "bundle": o["bundle"]})
    history = (await ok(dst, "agent:history", {"agentId": "Tail", "limit": 100}))["versions"]
    assert [v["seq"] for v in history] == list(range(top + 1, k - 1, -1))
    assert history[-1]["op"] == "agent:prune"  # version k, a base taken as given
    assert (await ok(dst, "agent:replay", {"agentId": "Tail"}))["identical"] is True
    job = await failed(src, "agent:export", {"agentId": "A", "from": top + 1}, "not_found")
    assert job["path"] == "$.input.from" and "versions are" in job["error"], job
    body = await rejected(src, "agent:export", {"agentId": "A", "from": -1}, "invalid_input")
    assert body["path"] == "$.input.from"


async def test_a_bundle_over_the_cap_is_too_large_and_names_the_route(start_app, monkeypatch) -> None:
    src = await start_app()
    await ok(src, "agent:create", {"agentId": "A", "state": {"notes": "x" * 2000}})
    size = (await ok(src, "agent:export", {"agentId": "A"}))["bytes"]
    monkeypatch.setattr(BO, "MAX_EXPORT_BYTES", size - 1)
    before = snapshot(src)
    job = await failed(src, "agent:export", {"agentId": "A"}, "too_large")
    assert f"over {size - 1} bytes" in job["error"] and "GET /api/v1/agents/A/export" in job["hint"], job
    assert snapshot(src) == before
    monkeypatch.setattr(BO, "MAX_EXPORT_BYTES", size)  # the cap itself is allowed
    assert (await ok(src, "agent:export", {"agentId": "A"}))["bytes"] == size
    r = await src.get("/api/v1/agents/A/export")  # the route streams any size
    assert r.status == 200 and len(await r.read()) == size


@pytest.mark.parametrize("bundle", ["not base64!", "abc", "QUJD\nREVG", "QUJDRA", "é" * 4, "QUJD===="])
async def test_bad_base64_is_invalid_input(start_app, bundle) -> None:
    dst = await start_app()
    before = snapshot(dst)
    body = await rejected(dst, "agent:import", {"agentId": "B", "bundle": bundle}, "invalid_input")
    assert body["path"] == "$.input.bundle" and "base64" in body["error"], body
    assert snapshot(dst) == before


@pytest.mark.parametrize("damage, code", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:400] + bytes([b[400] ^ 1]) + b[401:], None),  # a flipped bit: corrupt_object or tampered
    (lambda b: b[:-3], "truncated"),
    (lambda b: b"not a bundle at all", "bad_format"),
    (lambda b: b"", "truncated"),
])
async def test_bad_bundles_fail_with_the_routes_codes_and_write_nothing(start_app, damage, code) -> None:
    src = await start_app()
    await make_agent(src)
    data = unb64((await ok(src, "agent:export", {"agentId": "Src"}))["bundle"])
    dst = await start_app("lmdb")
    await ok(dst, "agent:create", {"agentId": "Other"})
    before = snapshot(dst)
    route_status, by_route = await do_import(dst, "Bad", damage(data))
    assert route_status == 400, by_route
    job = await failed(dst, "agent:import", {"agentId": "Bad", "bundle": b64(damage(data))}, by_route["errorCode"])
    assert job["errorCode"] == code if code else job["errorCode"] in ("corrupt_object", "tampered")
    assert set(job["input"]) == {"agentId", "bytes", "digest"}
    assert snapshot(dst) == before
    assert (await invoke(dst, "agent:info", {"agentId": "Bad"}))[1]["errorCode"] == "not_found"


async def test_an_existing_agent_id_is_a_conflict(start_app) -> None:
    src = await start_app()
    await ok(src, "agent:create", {"agentId": "A"})
    await ok(src, "agent:update", {"agentId": "A", "state": {"n": 1}})
    bundle = (await ok(src, "agent:export", {"agentId": "A"}))["bundle"]
    before = snapshot(src)
    job = await failed(src, "agent:import", {"agentId": "A", "bundle": bundle}, "conflict")
    assert job["path"] == "$.input.agentId" and "already exists" in job["error"], job
    assert snapshot(src) == before
    assert set(job["input"]) == {"agentId", "bytes", "digest"}  # the failed job keeps no bundle either
    assert (await ok(src, "agent:import", {"agentId": "A2", "bundle": bundle}))["fromAgentId"] == "A"


async def test_a_caller_exports_and_imports_its_own_agents_only(start_app) -> None:
    c = await start_app(tokens=Tokens({ALICE: "alice", BOB: "bob"}))

    async def as_(token: str, op: str, inp: dict) -> dict:
        r = await c.post("/api/v1/invoke", json={"operation": op, "input": inp},
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200, await r.text()
        return await r.json()
    assert (await as_(ALICE, "agent:create", {"agentId": "A", "state": {"secret": 1}}))["status"] == "COMPLETE"
    job = await as_(BOB, "agent:export", {"agentId": "A"})
    assert job["status"] == "FAILED" and job["errorCode"] == "not_found", job
    r = await c.get("/api/v1/agents/A/export", headers={"Authorization": f"Bearer {BOB}"})
    assert r.status == 404  # as the route
    bundle = (await as_(ALICE, "agent:export", {"agentId": "A"}))["output"]["bundle"]
    job = await as_(BOB, "agent:import", {"agentId": "A", "bundle": bundle})  # Bob's own A: no conflict
    assert job["status"] == "COMPLETE", job
    await as_(BOB, "agent:update", {"agentId": "A", "state": {"secret": 2}})
    mine = await as_(ALICE, "covia:read", {"path": "g/A/state/secret"})
    assert mine["output"]["value"] == 1  # Alice's agent is untouched


async def test_an_import_is_bounded_by_the_request_body(start_app) -> None:
    src = await start_app(max_body=4096)
    await ok(src, "agent:create", {"agentId": "A"})
    for _ in range(3):
        await ok(src, "agent:update", {"agentId": "A", "state": {"notes": os.urandom(700).hex()}})
    bundle = (await ok(src, "agent:export", {"agentId": "A"}))["bundle"]
    assert len(bundle) > 4096
    await rejected(src, "agent:import", {"agentId": "B", "bundle": bundle}, "too_large", 413)


async def test_mcp_tools_and_the_client(start_app) -> None:
    from tests.http.test_mcp import _call, _init
    c = await start_app(mcp_mode="json")
    await ok(c, "agent:create", {"agentId": "A", "state": {"n": 1}})
    sid, _ = await _init(c)
    tools = {t["name"]: t for t in (await _call(c, sid, "tools/list"))["result"]["tools"]}
    assert tools["agent_export"]["annotations"]["readOnlyHint"] is True
    assert tools["agent_import"]["annotations"]["readOnlyHint"] is False
    assert tools["agent_import"]["inputSchema"]["properties"]["bundle"]["contentEncoding"] == "base64"
    got = (await _call(c, sid, "tools/call", {"name": "agent_export", "arguments": {"agentId": "A"}}))["result"]
    assert got["isError"] is False and got["structuredContent"]["status"] == "COMPLETE"
    bundle = got["structuredContent"]["output"]["bundle"]
    got = (await _call(c, sid, "tools/call", {"name": "agent_import", "arguments": {"agentId": "B",
                                                                                  "bundle": bundle}}))["result"]
    assert got["isError"] is False and got["structuredContent"]["output"]["fromAgentId"] == "A", got
    got = (await _call(c, sid, "tools/call", {"name": "agent_import", "arguments": {"agentId": "C",
                                                                                  "bundle": "!"}}))["result"]
    assert got["isError"] is True and '"errorCode":"invalid_input"' in got["content"][0]["text"], got

    async with Client(str(c.make_url(""))) as lat:
        out = (await lat.agent_export(agentId="B", from_=1)).result()
        assert isinstance(out, BO.ExportOutput) and out.from_ == 1 and out.agentId == "B"
        whole = await lat.agent_export(agentId="B")
        kept = await lat.job(whole.jobId)  # the job kept: no bundle, its size and digest
        assert kept.output.bundle is msgspec.UNSET and whole.output.bundle is not msgspec.UNSET
        assert (kept.output.bytes, kept.output.digest) == (whole.output.bytes, whole.output.digest)
        imported = (await lat.agent_import(agentId="D", bundle=out.bundle)).result()
        assert isinstance(imported, BO.ImportOutput) and imported.fromAgentId == "B"
