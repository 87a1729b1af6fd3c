"""MCP at /mcp: the official `mcp` SDK client (auto and legacy modes, JSON and SSE replies) and raw JSON-RPC.

The server speaks the handshake-era protocol (2025-06-18, 2025-11-25). Bad input gets the JSON-RPC error
the spec defines and changes nothing in the store (checked with `snapshot`).
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.client.client import Client as McpClient
from mcp.shared.exceptions import MCPError

from ops.domain.contracts import REGISTRY
from ops.surfaces import mcp as M
from ops.surfaces.common import RUNTIME
from ops.surfaces.openapi import input_json_schema, job_json_schema
from ops.surfaces.schemas import portable
from tests.http.helpers import ECHO, HANG, assert_rejection, create, invoke, snapshot, value

ACCEPT = "application/json, text/event-stream"


@pytest.fixture(params=["json", "sse"])
async def served(request, start_app):
    """A real server on 127.0.0.1 answering MCP with JSON or with SSE."""
    return await start_app(mcp_mode=request.param)


@pytest.fixture
async def rpc(start_app):
    """A server in the default (auto) response mode, driven with raw HTTP."""
    return await start_app(mcp_mode="auto", heartbeat=0.05, max_body=4096)


# ---------------------------------------------------------------- the official client


@pytest.mark.parametrize("mode, version", [("auto", "2026-07-28"), ("2026-07-28", "2026-07-28"),
                                           ("legacy", M.LATEST_PROTOCOL_VERSION)])
async def test_official_client_drives_agents(served, mode, version):
    url = str(served.make_url("/mcp"))
    async with McpClient(url, mode=mode) as mc:
        assert mc.protocol_version == version
        if mode != "2026-07-28":  # a pinned version asks the server nothing before its first call
            assert mc.server_info.name == "agent-lattice"

        listed = (await mc.list_tools()).tools
        by_name = {t.name: t for t in listed}
        assert set(by_name) == {M.tool_name(c) for c in REGISTRY.values()}
        assert "agent_create" in by_name and "covia_read" in by_name
        for c in REGISTRY.values():
            t = by_name[M.tool_name(c)]
            assert t.input_schema == M.tool_schemas(c)[0], c.key
            assert t.description == c.summary

        r = await mc.call_tool("agent_create", {"agentId": "Alice", "config": ECHO})
        assert not r.is_error
        assert r.structured_content["status"] == "COMPLETE"
        assert r.structured_content["output"] == {"agentId": "Alice", "status": "SLEEPING", "created": True,
                                                  "updated": False}
        assert r.content[0].type == "text" and '"agentId":"Alice"' in r.content[0].text

        r = await mc.call_tool("agent_request", {"agentId": "Alice", "input": "hello", "wait": True})
        assert not r.is_error and r.structured_content["output"]["output"] == "hello"  # a text answer, wrapped
        task_id = r.structured_content["jobId"]

        r = await mc.call_tool("covia_read", {"path": "g/Alice/timeline"})
        timeline = r.structured_content["output"]["value"]
        assert len(timeline) == 1 and timeline[0]["taskResults"][task_id]["output"] == "hello"

        # an operation failure is a result, isError, with the code
        r = await mc.call_tool("agent_info", {"agentId": "Nobody"})
        assert r.is_error
        assert r.structured_content["status"] == "FAILED"
        assert r.structured_content["errorCode"] == "not_found"
        assert "not_found" in r.content[0].text

        # arguments violating the schema (2025-11-25, SEP-1303): a tool error the model can read, as text only
        # (a structuredContent must be the job the outputSchema declares, and there is none)
        r = await mc.call_tool("agent_info", {"agentId": 7})
        assert r.is_error and r.structured_content is None
        err = json.loads(r.content[0].text)
        assert err["errorCode"] == "invalid_input" and err["path"] == "$.arguments.agentId" and err["error"]

        with pytest.raises(MCPError) as e:
            await mc.call_tool("agent_nope", {})
        assert e.value.code == M.INVALID_PARAMS

    # the same caller as the REST API: the agent is there
    assert await value(served, "g/Alice/status") == "SLEEPING"


async def test_a_probe_without_the_envelope_is_a_modern_error(rpc):
    """server/discover with the 2026 version header but no _meta: a -32602 a dual-era client recognises."""
    r = await rpc.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}},
                       headers={"Accept": ACCEPT, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"})
    body = await r.json()
    assert r.status == 400 and body["error"]["code"] == M.INVALID_PARAMS and body["id"] == 1


async def test_results_conform_to_the_declared_output_schema(rpc):
    sid, _ = await _init(rpc)
    await create(rpc, "A", ECHO)
    calls = [("agent_info", {"agentId": "A"}), ("agent_list", {}), ("covia_read", {"path": "g/A/status"}),
             ("covia_list", {"path": "g/A"}), ("agent_request", {"agentId": "A", "input": "x", "wait": True}),
             ("agent_context", {"agentId": "A"})]
    tools = {t["name"]: t for t in (await _call(rpc, sid, "tools/list"))["result"]["tools"]}
    for name, args in calls:
        res = (await _call(rpc, sid, "tools/call", {"name": name, "arguments": args}))["result"]
        assert res["isError"] is False, res
        jsonschema.validate(res["structuredContent"], tools[name]["outputSchema"])


async def test_tools_are_generated_from_the_registry(rpc):
    sid, _ = await _init(rpc)
    tools = (await _call(rpc, sid, "tools/list"))["result"]["tools"]
    assert [t["name"] for t in tools] == [M.tool_name(c) for c in REGISTRY.values()]
    for t in tools:
        c = REGISTRY[t["title"]]
        assert (t["inputSchema"], t["outputSchema"]) == M.tool_schemas(c)
        # the portable spelling says the same as the documents' schemas (one `type` each, nothing unsaid)
        inp, out = input_json_schema(c), job_json_schema(c)
        assert t["inputSchema"] == portable({k: v for k, v in inp.items() if k != "$schema"})
        assert t["outputSchema"] == portable({k: v for k, v in out.items() if k != "$schema"})
        assert t["inputSchema"]["type"] == "object" and t["outputSchema"]["type"] == "object"
        assert t["annotations"]["readOnlyHint"] is (not c.emits)
        jsonschema.Draft202012Validator.check_schema(t["inputSchema"])
        jsonschema.Draft202012Validator.check_schema(t["outputSchema"])


# ---------------------------------------------------------------- raw JSON-RPC


async def _post(c, body, sid=None, headers=None, raw=False):
    h = {"Accept": ACCEPT, **(headers or {})}
    if sid is not None:
        h[M.SESSION_HEADER] = sid
    kw = {"data": body} if raw else {"json": body}
    r = await c.post("/mcp", headers=h, **kw)
    text = await r.text()
    return r, text


async def _init(c, version: str = M.LATEST_PROTOCOL_VERSION) -> tuple[str, dict]:
    r = await c.post("/mcp", headers={"Accept": ACCEPT}, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    assert r.status == 200, await r.text()
    body = await r.json()
    sid = r.headers[M.SESSION_HEADER]
    r2 = await c.post("/mcp", headers={"Accept": ACCEPT, M.SESSION_HEADER: sid},
                      json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert r2.status == 202 and await r2.read() == b""
    return sid, body["result"]


async def _call(c, sid, method, params=None, id=1, accept=ACCEPT, headers=None):
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    r = await c.post("/mcp", json=msg, headers={"Accept": accept, M.SESSION_HEADER: sid, **(headers or {})})
    if r.content_type == "text/event-stream":  # one `message` event (after heartbeats)
        data = [line for line in (await r.text()).splitlines() if line.startswith("data: ")]
        assert len(data) == 1, data
        body = json.loads(data[0][len("data: "):])
    else:
        assert r.content_type == "application/json", (r.status, await r.text())
        body = await r.json()
    body["_status"] = r.status
    return body


@pytest.mark.parametrize("asked,answered", [
    ("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"),
    ("2026-07-28", "2025-11-25"), ("2099-01-01", "2025-11-25"), ("2024-11-05", "2025-11-25")])
async def test_version_negotiation(rpc, asked, answered):
    _, result = await _init(rpc, asked)
    assert result["protocolVersion"] == answered
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "agent-lattice"


async def test_sessions_and_ping(rpc, store):
    sid, _ = await _init(rpc)
    assert (await _call(rpc, sid, "ping"))["result"] == {}
    # no session: 400; unknown session: 404 (the client must initialize again)
    r, text = await _post(rpc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert r.status == 400 and '"code":-32600' in text
    r, text = await _post(rpc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid="f" * 32)
    assert r.status == 404 and f'"code":{M.SESSION_NOT_FOUND}' in text
    # an unsupported MCP-Protocol-Version header: 400
    r, text = await _post(rpc, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, sid=sid,
                          headers={M.VERSION_HEADER: "1999-01-01"})
    assert r.status == 400 and "1999-01-01" in text
    # DELETE ends it
    r = await rpc.delete("/mcp", headers={M.SESSION_HEADER: sid})
    assert r.status == 204
    r, _ = await _post(rpc, {"jsonrpc": "2.0", "id": 4, "method": "ping"}, sid=sid)
    assert r.status == 404
    r = await rpc.delete("/mcp", headers={M.SESSION_HEADER: sid})
    assert r.status == 404
    # no server stream
    r = await rpc.get("/mcp", headers={"Accept": "text/event-stream"})
    assert r.status == 405 and "POST" in r.headers["Allow"]
    assert snapshot(store) == ([], 0)


async def test_sessions_are_bounded():
    s = M.Sessions(limit=3)
    ids = [s.open("local", "2025-11-25") for _ in range(5)]
    assert len(s) == 3 and s.get("local", ids[0]) is None and s.get("local", ids[-1]) is not None
    other = s.open("other", "2025-11-25")  # each caller's sessions are bounded apart
    assert len(s) == 4 and s.get("local", ids[-1]) is not None and s.get("local", other) is None


async def test_a_client_response_and_notifications_are_accepted(rpc):
    sid, _ = await _init(rpc)
    for msg in ({"jsonrpc": "2.0", "id": 9, "result": {}}, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                           "params": {"requestId": 1}},
                {"jsonrpc": "2.0", "method": "notifications/whatever"}):
        r, text = await _post(rpc, msg, sid=sid)
        assert r.status == 202 and text == "", msg


BAD_MESSAGES = [
    # (body, raw?, HTTP status, JSON-RPC code)
    (b"{not json", True, 400, M.PARSE_ERROR),
    (b"", True, 400, M.PARSE_ERROR),
    ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], False, 400, M.INVALID_REQUEST),
    ([], False, 400, M.INVALID_REQUEST),
    (5, False, 400, M.INVALID_REQUEST),
    ("tools/list", False, 400, M.INVALID_REQUEST),
    ({"id": 1, "method": "ping"}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1, "method": 5}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": None, "method": "ping"}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": True, "method": "ping"}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"}, False, 400, M.INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["agent_list"]}, False, 200, M.INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, False, 200, M.INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "resources/list"}, False, 200, M.METHOD_NOT_FOUND),
    ({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}, False, 200, M.METHOD_NOT_FOUND),
    ({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "info"}}, False, 200,
     M.METHOD_NOT_FOUND),
    ({"jsonrpc": "2.0", "id": 1, "method": "agent:create", "params": {"agentId": "A"}}, False, 200,
     M.METHOD_NOT_FOUND),
]


@pytest.mark.parametrize("body,raw,http,code", BAD_MESSAGES)
async def test_malformed_messages_get_the_spec_error_and_change_nothing(rpc, store, body, raw, http, code):
    sid, _ = await _init(rpc)
    before = snapshot(store)
    r, text = await _post(rpc, body, sid=sid, raw=raw)
    assert r.status == http, text
    assert r.content_type == "application/json"
    err = (await r.json())["error"]
    assert err["code"] == code and err["message"]
    assert snapshot(store) == before


async def test_a_batch_runs_nothing(rpc, store):
    sid, _ = await _init(rpc)
    batch = [{"jsonrpc": "2.0", "id": i, "method": "tools/call",
              "params": {"name": "agent_create", "arguments": {"agentId": f"B{i}"}}} for i in range(3)]
    r, text = await _post(rpc, batch, sid=sid)
    assert r.status == 400 and '"id":null' in text and f'"code":{M.INVALID_REQUEST}' in text
    assert snapshot(store) == ([], 0)


@pytest.mark.parametrize("params,fragment", [
    ({"name": "agent_nope", "arguments": {}}, "did you mean"),
    ({"name": "agent:create", "arguments": {"agentId": "A"}}, "unknown tool"),
    ({"arguments": {}}, "`name`"),
    ({"name": 3}, "`name`"),
    ({"name": "agent_create", "arguments": ["A"]}, "`arguments`"),
    ({"name": "agent_create", "arguments": "A"}, "`arguments`"),
])
async def test_unknown_tools_and_malformed_calls_are_invalid_params(rpc, store, params, fragment):
    sid, _ = await _init(rpc)
    body = await _call(rpc, sid, "tools/call", params, id="x-1")
    assert body["_status"] == 200 and body["id"] == "x-1"
    assert body["error"]["code"] == M.INVALID_PARAMS and fragment in body["error"]["message"]
    assert snapshot(store) == ([], 0)


BAD_ARGUMENTS = [
    ("agent_create", {}, "$.arguments.agentId"),
    ("agent_create", {"agentId": "a/b"}, "$.arguments.agentId"),
    ("agent_create", {"agentId": "A", "confg": {}}, "$.arguments.confg"),
    ("agent_create", {"agentId": "A", "config": {"model": {"provider": "nope"}}}, "$.arguments.config.model.provider"),
    ("agent_request", {"agentId": "A", "input": 1, "wait": "soon"}, "$.arguments.wait"),
    ("covia_write", {"path": "w/x"}, "$.arguments.value"),
    ("covia_read", {"path": "q/x"}, "$.arguments.path"),
    ("covia_list", {"path": "w", "limit": 0}, "$.arguments.limit"),
]


@pytest.mark.parametrize("tool,args,path", BAD_ARGUMENTS)
async def test_schema_violations_by_version(rpc, store, tool, args, path):
    # 2025-06-18: a protocol error, -32602, the error in data
    sid, _ = await _init(rpc, "2025-06-18")
    body = await _call(rpc, sid, "tools/call", {"name": tool, "arguments": args})
    assert body["error"]["code"] == M.INVALID_PARAMS, body
    assert body["error"]["data"]["path"] == path
    assert body["error"]["data"]["errorCode"] in ("invalid_input", "invalid_path", "invalid_config")
    # 2025-11-25 (SEP-1303): a tool execution error with the same error object
    sid, _ = await _init(rpc, "2025-11-25")
    res = (await _call(rpc, sid, "tools/call", {"name": tool, "arguments": args}))["result"]
    assert res["isError"] is True and "structuredContent" not in res
    assert json.loads(res["content"][0]["text"]) == body["error"]["data"]
    assert snapshot(store) == ([], 0)


async def test_transport_rejections(rpc, store):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    r = await rpc.post("/mcp", json=ping, headers={"Accept": "text/html"})
    assert r.status == 406 and (await r.json())["error"]["code"] == M.INVALID_REQUEST
    r = await rpc.post("/mcp", json=ping, headers={"Accept": ACCEPT, "Origin": "http://evil.example"})
    assert r.status == 403
    r = await rpc.post("/mcp", json=ping, headers={"Accept": ACCEPT, "Origin": "http://localhost:5173"})
    assert r.status == 200
    big = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "covia_write", "arguments": {"path": "w/x", "value": "x" * 8000}}}
    r = await rpc.post("/mcp", json=big, headers={"Accept": ACCEPT})
    assert r.status == 413 and (await r.json())["error"]["code"] == M.INVALID_REQUEST
    assert snapshot(store) == ([], 0)


async def test_json_only_and_sse_only_clients(rpc):
    sid, _ = await _init(rpc)
    await create(rpc, "A", ECHO)
    call = {"name": "agent_request", "arguments": {"agentId": "A", "input": "hi", "wait": True}}
    body = await _call(rpc, sid, "tools/call", call, accept="application/json")
    assert body["result"]["structuredContent"]["output"]["output"] == "hi"
    r, text = await _post(rpc, {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}, sid=sid,
                          headers={"Accept": "text/event-stream"})
    assert r.content_type == "text/event-stream" and text.startswith("event: message\ndata: {")


async def test_sse_reply_carries_heartbeats_while_the_operation_waits(rpc):
    sid, _ = await _init(rpc)
    await create(rpc, "H", HANG)
    r, text = await _post(rpc, {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "agent_request", "arguments": {"agentId": "H", "input": "x", "wait": 300}}}, sid=sid)
    assert r.content_type == "text/event-stream"
    assert ": keep-alive" in text
    assert '"status":"STARTED"' in text and '"isError":false' in text


async def test_rest_rejections_are_unchanged(rpc):
    status, body = await invoke(rpc, "agent:nope", {})
    assert_rejection(status, body, 404, "unknown_operation")


async def test_calls_are_served_concurrently(rpc):
    sid, _ = await _init(rpc)
    await create(rpc, "H", HANG)
    slow = asyncio.create_task(_call(rpc, sid, "tools/call", {"name": "agent_request", "arguments": {
        "agentId": "H", "input": "x", "wait": 400}}, accept="application/json"))
    await asyncio.sleep(0.05)
    body = await _call(rpc, sid, "tools/call", {"name": "agent_list", "arguments": {}})
    assert not slow.done() and body["result"]["isError"] is False
    assert (await slow)["result"]["structuredContent"]["status"] in ("PENDING", "STARTED")


# ---------------------------------------------------------------- property: arbitrary messages

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
_methods = st.sampled_from(["initialize", "ping", "tools/list", "tools/call", "notifications/initialized",
                            "server/discover", "resources/read"]) | st.text(max_size=15)
_messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]) | _json_values},
    optional={"id": st.integers() | st.text(max_size=8) | _json_values, "method": _methods | _json_values,
              "params": st.fixed_dictionaries({}, optional={
                  "name": st.sampled_from([M.tool_name(c) for c in REGISTRY.values()]) | st.text(max_size=12),
                  "arguments": _json_values, "protocolVersion": st.sampled_from(M.PROTOCOL_VERSIONS) | st.text(),
                  "cursor": _json_values}) | _json_values,
              "result": _json_values, "error": _json_values})


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(msg=_messages | _json_values)
async def test_any_message_gets_a_jsonrpc_answer_and_no_5xx(rpc, store, msg):
    sid = rpc.app[M._SESSIONS].open("local", M.LATEST_PROTOCOL_VERSION)  # a session, without a request
    before = snapshot(store)
    r, text = await _post(rpc, msg, sid=sid)
    assert r.status in (200, 202, 400, 404), (r.status, text)
    if r.status == 202:
        assert text == ""
    else:
        body = json.loads(text.split("data: ", 1)[1]) if r.content_type == "text/event-stream" else json.loads(text)
        assert body["jsonrpc"] == "2.0" and "id" in body and ("result" in body) != ("error" in body), body
        if "error" in body:
            assert isinstance(body["error"]["code"], int) and body["error"]["message"]
    is_call = isinstance(msg, dict) and msg.get("method") == "tools/call" and r.status == 200 and "result" in text
    if not is_call:
        assert snapshot(store) == before, msg


@pytest.mark.parametrize("mode", ["json", "sse"])
async def test_an_unexpected_error_is_an_internal_error(start_app, mode, monkeypatch):
    c = await start_app(mcp_mode=mode, heartbeat=0.05)
    sid, _ = await _init(c)

    async def boom(*a, **k):
        raise RuntimeError("bug")
    monkeypatch.setattr(c.app[RUNTIME], "invoke", boom)
    body = await _call(c, sid, "tools/call", {"name": "agent_list", "arguments": {}}, id=42)
    assert body["id"] == 42 and body["error"]["code"] == M.INTERNAL_ERROR
    assert "bug" not in body["error"]["message"]  # the server's log has it, the client does not
