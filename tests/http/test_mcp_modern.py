"""MCP 2026-07-28 at /mcp, over raw HTTP: stateless requests (the `_meta` envelope, the mirrored headers,
server/discover), beside the handshake era, and every error with the status the transport gives it."""

from __future__ import annotations

import base64
import json

import pytest

from ops.surfaces import mcp as M
from ops.surfaces import mcp_modern as N
from tests.http.helpers import ECHO, create, snapshot

ACCEPT = "application/json, text/event-stream"
V = "2026-07-28"
META = {N.PROTOCOL_VERSION_KEY: V, N.CLIENT_CAPABILITIES_KEY: {}, N.CLIENT_INFO_KEY: {"name": "t", "version": "0"}}


@pytest.fixture
async def rpc(start_app):
    return await start_app(mcp_mode="auto", heartbeat=0.05)


def _request(method: str, params: dict | None = None, rid: int = 1, meta: dict | None = META) -> dict:
    p = dict(params or {})
    if meta is not None:
        p["_meta"] = meta
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": p}


def _headers(method: str, name: str | None = None, version: str | None = V, **extra: str) -> dict:
    h = {"Accept": ACCEPT, "Mcp-Method": method, **extra}
    if version is not None:
        h["MCP-Protocol-Version"] = version
    if name is not None:
        h["Mcp-Name"] = name
    return h


async def _post(c, body: dict, headers: dict) -> tuple[int, dict | None, str]:
    r = await c.post("/mcp", json=body, headers=headers)
    text = await r.text()
    if r.content_type == "text/event-stream":
        data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        return r.status, json.loads(data[-1]), r.content_type
    return r.status, (json.loads(text) if text else None), r.content_type


async def test_discover_list_and_call_without_a_session(rpc, store):
    status, body, _ = await _post(rpc, _request("server/discover"), _headers("server/discover"))
    assert status == 200, body
    res = body["result"]
    assert res["supportedVersions"] == [V] and res["capabilities"] == {"tools": {"listChanged": False}}
    assert res["resultType"] == "complete" and res["cacheScope"] == "public" and res["ttlMs"] > 0
    assert res["_meta"][N.SERVER_INFO_KEY]["name"] == "agent-lattice" and res["instructions"]

    status, body, _ = await _post(rpc, _request("tools/list", rid=2), _headers("tools/list"))
    tools = body["result"]["tools"]
    assert status == 200 and [t["name"] for t in tools][:2] == ["agent_create", "agent_update"]
    assert body["result"]["resultType"] == "complete" and body["result"]["cacheScope"] == "public"

    args = {"agentId": "A", "config": ECHO}
    status, body, _ = await _post(rpc, _request("tools/call", {"name": "agent_create", "arguments": args}, 3),
                                  _headers("tools/call", "agent_create", **{"Mcp-Session-Id": "ignored"}))
    assert status == 200 and body["result"]["isError"] is False and body["result"]["resultType"] == "complete"
    assert body["result"]["structuredContent"]["output"]["created"] is True
    assert len(rpc.app[M._SESSIONS]) == 0  # nothing was opened


async def test_a_call_that_waits_streams_and_its_result_is_stamped(rpc):
    await create(rpc, "A", ECHO)
    args = {"agentId": "A", "input": "hi", "wait": True}
    status, body, ctype = await _post(rpc, _request("tools/call", {"name": "agent_request", "arguments": args}),
                                      _headers("tools/call", "agent_request"))
    assert status == 200 and body["result"]["structuredContent"]["output"]["output"] == "hi"
    assert body["result"]["resultType"] == "complete" and N.SERVER_INFO_KEY in body["result"]["_meta"]


async def test_arguments_that_violate_the_schema_are_a_tool_error_as_text(rpc, store):
    status, body, _ = await _post(rpc, _request("tools/call", {"name": "agent_info", "arguments": {"agentId": 7}}),
                                  _headers("tools/call", "agent_info"))
    res = body["result"]
    assert status == 200 and res["isError"] is True and "structuredContent" not in res
    assert json.loads(res["content"][0]["text"])["path"] == "$.arguments.agentId"
    assert snapshot(store) == ([], 0)


@pytest.mark.parametrize("case, body, headers, status, code", [
    ("no _meta", _request("tools/list", meta=None), _headers("tools/list"), 400, M.INVALID_PARAMS),
    ("no capabilities", _request("tools/list", meta={N.PROTOCOL_VERSION_KEY: V}), _headers("tools/list"), 400,
     M.INVALID_PARAMS),
    ("version header differs", _request("tools/list"), _headers("tools/list", version="2025-11-25"), 400,
     N.HEADER_MISMATCH),
    ("no method header", _request("tools/list"), {"Accept": ACCEPT, "MCP-Protocol-Version": V}, 400,
     N.HEADER_MISMATCH),
    ("method header differs", _request("tools/list"), _headers("tools/call"), 400, N.HEADER_MISMATCH),
    ("name header differs", _request("tools/call", {"name": "agent_list", "arguments": {}}),
     _headers("tools/call", "agent_info"), 400, N.HEADER_MISMATCH),
    ("no name header", _request("tools/call", {"name": "agent_list", "arguments": {}}), _headers("tools/call"),
     400, N.HEADER_MISMATCH),
    ("unsupported version", _request("tools/list", meta={**META, N.PROTOCOL_VERSION_KEY: "2099-01-01"}),
     _headers("tools/list", version="2099-01-01"), 400, N.UNSUPPORTED_VERSION),
    ("unknown method", _request("resources/list"), _headers("resources/list"), 404, M.METHOD_NOT_FOUND),
    ("no ping any more", _request("ping"), _headers("ping"), 404, M.METHOD_NOT_FOUND),
    ("no initialize", _request("initialize"), _headers("initialize"), 404, M.METHOD_NOT_FOUND),
    ("unknown tool", _request("tools/call", {"name": "nope", "arguments": {}}), _headers("tools/call", "nope"),
     400, M.INVALID_PARAMS),
    ("a response", {"jsonrpc": "2.0", "id": 1, "result": {}}, _headers("tools/list"), 400, M.INVALID_REQUEST),
])
async def test_rejections_have_the_transport_status(rpc, store, case, body, headers, status, code):
    got, reply, ctype = await _post(rpc, body, headers)
    assert (got, reply["error"]["code"]) == (status, code), (case, reply)
    assert ctype == "application/json"
    if code == N.UNSUPPORTED_VERSION:
        assert reply["error"]["data"] == {"supported": [V, *M.PROTOCOL_VERSIONS], "requested": "2099-01-01"}
    assert snapshot(store) == ([], 0)


async def test_a_routing_header_sent_twice_is_a_mismatch(rpc):
    r = await rpc.post("/mcp", json=_request("tools/list"),
                       headers=[("Accept", ACCEPT), ("MCP-Protocol-Version", V), ("Mcp-Method", "tools/list"),
                                ("Mcp-Method", "tools/call")])
    assert r.status == 400 and (await r.json())["error"]["code"] == N.HEADER_MISMATCH


async def test_a_tool_name_header_may_be_base64(rpc):
    name = "agent_list"
    encoded = "=?base64?" + base64.b64encode(name.encode()).decode() + "?="
    status, body, _ = await _post(rpc, _request("tools/call", {"name": name, "arguments": {}}),
                                  _headers("tools/call", encoded))
    assert status == 200 and body["result"]["isError"] is False
    status, body, _ = await _post(rpc, _request("tools/call", {"name": name, "arguments": {}}),
                                  _headers("tools/call", "=?base64?!!?="))
    assert status == 400 and body["error"]["code"] == N.HEADER_MISMATCH


async def test_notifications_are_accepted_and_dropped(rpc):
    r = await rpc.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"_meta": META}},
                       headers=_headers("notifications/cancelled"))
    assert r.status == 202
    r = await rpc.post("/mcp", json={"jsonrpc": "2.0", "method": "x", "params": {"_meta": META}},
                       headers=_headers("x", version="2099-01-01"))
    assert r.status == 400 and (await r.json())["error"]["code"] == N.UNSUPPORTED_VERSION


async def test_both_eras_side_by_side(rpc):
    """A handshake-era session and stateless requests on one endpoint; the handshake still needs its session."""
    r = await rpc.post("/mcp", headers={"Accept": ACCEPT}, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    sid = r.headers[M.SESSION_HEADER]
    assert (await r.json())["result"]["protocolVersion"] == "2025-11-25"
    r = await rpc.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"Accept": ACCEPT})
    assert r.status == 400  # no session: the handshake era
    r = await rpc.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                       headers={"Accept": ACCEPT, M.SESSION_HEADER: sid})
    assert r.status == 200 and "resultType" not in (await r.json())["result"]
    status, body, _ = await _post(rpc, _request("tools/list"), _headers("tools/list"))
    assert status == 200 and body["result"]["resultType"] == "complete"
