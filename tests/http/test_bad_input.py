"""Every bad input gets the DESIGN.md section 3 error, and the store is unchanged.

Rejections (no job): 400/404/405/413 with ``{"error": {code, message, path?, hint?}}``.
Operation failures: HTTP 200, a ``FAILED`` job with a stable ``error.code``.
In both cases nothing in the store changes: the refs (names and digests) and
the number of stored objects are the same before and after.
"""

from __future__ import annotations

import json

import pytest

from tests.http.helpers import ECHO, INVOKE, SMALL_BODY, assert_rejection, create, failed, get_job, invoke, ok, snapshot


@pytest.fixture
async def seeded(client, store):
    """An echo agent ``A`` (with one finished task), and a workspace holding ``w/a = 1`` and a list."""
    await create(client, "A", ECHO)
    await ok(client, "agent:request", {"agentId": "A", "input": "hi", "wait": True})
    await ok(client, "covia:write", {"path": "w/a", "value": 1})
    await ok(client, "covia:write", {"path": "w/list", "value": [1, 2]})
    return client


class Unchanged:
    """``with Unchanged(store): ...`` asserts that the block changed no ref and stored no object."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        self.before = snapshot(self.store)
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert snapshot(self.store) == self.before, "the store changed"


async def post_raw(client, data: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    r = await client.post(INVOKE, data=data, headers={"Content-Type": content_type})
    assert r.content_type == "application/json", await r.text()
    return r.status, await r.json()


# ---------------------------------------------------------------- the body


@pytest.mark.parametrize("raw", [b"{not json", b'{"operation": "agent:info",', b"", b"\xff\xfe"],
                         ids=["garbage", "truncated", "empty", "binary"])
async def test_malformed_json(seeded, store, raw):
    with Unchanged(store):
        status, body = await post_raw(seeded, raw)
    assert_rejection(status, body, 400, "invalid_json")


@pytest.mark.parametrize("doc", [[], [{"operation": "agent:list"}], "agent:list", 42, 1.5, True, None],
                         ids=["empty-array", "array", "string", "int", "float", "bool", "null"])
async def test_body_not_an_object(seeded, store, doc):
    with Unchanged(store):
        status, body = await post_raw(seeded, json.dumps(doc).encode())
    assert_rejection(status, body, 400, "invalid_input", "$")


@pytest.mark.parametrize("doc,path", [
    ({"input": {"agentId": "A"}}, "$.operation"),
    ({}, "$.operation"),
    ({"operation": 5, "input": {}}, "$.operation"),
    ({"operation": ["agent:info"], "input": {}}, "$.operation"),
    ({"operation": {"key": "agent:info"}}, "$.operation"),
    ({"operation": "agent:info", "input": {"agentId": "A"}, "extra": 1}, "$.extra"),
    ({"operation": "agent:info", "input": {"agentId": "A"}, "Input": {}}, "$.Input"),
], ids=["missing-op", "empty-object", "op-int", "op-list", "op-object", "unknown-top", "unknown-top-case"])
async def test_bad_envelope(seeded, store, doc, path):
    with Unchanged(store):
        status, body = await post_raw(seeded, json.dumps(doc).encode())
    assert_rejection(status, body, 400, "invalid_input", path)


@pytest.mark.parametrize("op", ["agent:crate", "agent:nope", "covia:reed", "v/ops/agent/nope", "", "AGENT:CREATE"])
async def test_unknown_operation(seeded, store, op):
    with Unchanged(store):
        status, body = await invoke(seeded, op, {"agentId": "A"})
    err = assert_rejection(status, body, 404, "unknown_operation")
    assert err.get("hint"), err


@pytest.mark.parametrize("op", ["v/ops/secret/set", "v/ops/asset/pin"])
async def test_venue_only_operation_is_not_supported(seeded, store, op):
    with Unchanged(store):
        status, body = await invoke(seeded, op, {"name": "k", "value": "v"})
    err = assert_rejection(status, body, 501, "not_supported")
    assert "does not support" in err["message"] and err.get("hint"), err


async def test_unknown_operation_hint_suggests_close_key(seeded, store):
    status, body = await invoke(seeded, "agent:crate", {"agentId": "A"})
    err = assert_rejection(status, body, 404, "unknown_operation")
    assert "agent:create" in err["hint"]


@pytest.mark.parametrize("inp", [[1, 2], "A", 7, True], ids=["array", "string", "int", "bool"])
async def test_input_not_an_object(seeded, store, inp):
    with Unchanged(store):
        status, body = await post_raw(seeded, json.dumps({"operation": "agent:info", "input": inp}).encode())
    assert_rejection(status, body, 400, "invalid_input", "$.input")


# ---------------------------------------------------------------- schema violations


@pytest.mark.parametrize("op,inp,path", [
    # missing / mistyped agentId
    ("agent:info", {}, "$.input.agentId"),
    ("agent:create", {"config": ECHO}, "$.input.agentId"),
    ("agent:request", {"input": "x"}, "$.input.agentId"),
    ("agent:info", {"agentId": 5}, "$.input.agentId"),
    ("agent:info", {"agentId": None}, "$.input.agentId"),
    ("agent:info", {"agentId": ["A"]}, "$.input.agentId"),
    # pattern violations
    ("agent:create", {"agentId": "a/b", "config": ECHO}, "$.input.agentId"),
    ("agent:create", {"agentId": "", "config": ECHO}, "$.input.agentId"),
    ("agent:create", {"agentId": "-lead", "config": ECHO}, "$.input.agentId"),
    ("agent:create", {"agentId": "has space", "config": ECHO}, "$.input.agentId"),
    ("agent:create", {"agentId": "x" * 129, "config": ECHO}, "$.input.agentId"),
    ("agent:info", {"agentId": "../A"}, "$.input.agentId"),
    ("agent:fork", {"sourceId": "a/b", "agentId": "B"}, "$.input.sourceId"),
    ("agent:fork", {"agentId": "B"}, "$.input.sourceId"),
    # unknown fields
    ("agent:create", {"agentId": "N", "confg": ECHO}, "$.input.confg"),
    ("agent:info", {"agentId": "A", "verbose": True}, "$.input.verbose"),
    ("covia:read", {"path": "w/a", "max_size": 3}, "$.input.max_size"),
    # wrong types and ranges
    ("agent:request", {"agentId": "A", "input": "x", "wait": "yes"}, "$.input.wait"),
    ("agent:request", {"agentId": "A", "input": "x", "wait": -1}, "$.input.wait"),
    ("agent:request", {"agentId": "A", "input": "x", "wait": None}, "$.input.wait"),
    ("agent:trigger", {"agentId": "A", "wait": "soon"}, "$.input.wait"),
    ("agent:request", {"agentId": "A"}, "$.input.input"),
    ("agent:create", {"agentId": "N", "overwrite": "yes"}, "$.input.overwrite"),
    ("agent:create", {"agentId": "N", "overwrite": 1}, "$.input.overwrite"),
    ("agent:create", {"agentId": "N", "config": 5}, "$.input.config"),
    ("agent:create", {"agentId": "N", "config": ["echo"]}, "$.input.config"),
    ("agent:update", {"agentId": "A", "config": "echo"}, "$.input.config"),
    ("agent:delete", {"agentId": "A", "remove": "please"}, "$.input.remove"),
    ("agent:resume", {"agentId": "A", "autoWake": "no"}, "$.input.autoWake"),
    ("agent:fork", {"sourceId": "A", "agentId": "B", "includeTimeline": "yes"}, "$.input.includeTimeline"),
    ("agent:list", {"includeTerminated": 1}, "$.input.includeTerminated"),
    ("agent:message", {"agentId": "A", "message": None}, "$.input.message"),  # any JSON value but null
    ("agent:message", {"agentId": "A"}, "$.input.message"),
    ("agent:cancelTask", {"agentId": "A"}, "$.input.taskId"),
    ("agent:cancelTask", {"agentId": "A", "taskId": 12}, "$.input.taskId"),
    ("covia:read", {}, "$.input.path"),
    ("covia:read", {"path": 5}, "$.input.path"),
    ("covia:read", {"path": "w/a", "maxSize": "big"}, "$.input.maxSize"),
    ("covia:read", {"path": "w/a", "maxSize": -1}, "$.input.maxSize"),
    ("covia:read", {"path": "w/a", "maxSize": 1.5}, "$.input.maxSize"),
    ("covia:list", {"path": "w", "limit": 0}, "$.input.limit"),
    ("covia:list", {"path": "w", "limit": -5}, "$.input.limit"),
    ("covia:list", {"path": "w", "limit": "ten"}, "$.input.limit"),
    ("covia:list", {"path": "w", "limit": 10_001}, "$.input.limit"),
    ("covia:list", {"path": "w", "offset": -1}, "$.input.offset"),
    ("covia:slice", {"path": "w/list", "limit": 0}, "$.input.limit"),
    ("covia:slice", {"path": "w/list", "offset": "1"}, "$.input.offset"),
    ("covia:write", {"path": "w/x"}, "$.input.value"),
])
async def test_schema_violation(seeded, store, op, inp, path):
    with Unchanged(store):
        status, body = await invoke(seeded, op, inp)
    assert_rejection(status, body, 400, "invalid_input", path)


async def test_input_omitted_is_empty_object(seeded, store):
    with Unchanged(store):
        status, body = await post_raw(seeded, json.dumps({"operation": "agent:info"}).encode())
    assert_rejection(status, body, 400, "invalid_input", "$.input.agentId")


@pytest.mark.parametrize("op,inp,path", [
    ("agent:create", {"agentId": "N", "config": {"model": {"provider": "gpt-magic"}}}, "$.input.config.model.provider"),
    ("agent:create", {"agentId": "N", "config": {"model": {}}}, "$.input.config.model"),
    ("agent:update", {"agentId": "A", "config": {"model": {"provider": "nope"}}}, "$.input.config.model.provider"),
    ("agent:fork", {"sourceId": "A", "agentId": "B", "config": {"model": {"provider": "nope"}}},
     "$.input.config.model.provider"),
])
async def test_unknown_provider(seeded, store, op, inp, path):
    with Unchanged(store):
        status, body = await invoke(seeded, op, inp)
    err = assert_rejection(status, body, 400, "invalid_input")
    assert err["path"].startswith(path), err
    if path.endswith("provider"):
        assert err["path"] == path
        assert "echo" in err.get("hint", ""), err  # the hint lists the providers


@pytest.mark.parametrize("config,path", [
    ({"model": {"provider": "echo"}, "maxIterations": 0}, "$.input.config.maxIterations"),
    ({"model": {"provider": "echo"}, "systemPrompt": 3}, "$.input.config.systemPrompt"),
    ({"model": {"provider": "echo"}, "tools": ["rm_rf"]}, "$.input.config.tools[0]"),
    ({"model": "gpt-4o"}, "$.input.config.model"),
])
async def test_invalid_inline_config(seeded, store, config, path):
    with Unchanged(store):
        status, body = await invoke(seeded, "agent:create", {"agentId": "N", "config": config})
    assert_rejection(status, body, 400, "invalid_input", path)


# ---------------------------------------------------------------- unknown agents: FAILED jobs


@pytest.mark.parametrize("op,inp", [
    ("agent:request", {"agentId": "Ghost", "input": "x", "wait": True}),
    ("agent:request", {"agentId": "Ghost", "input": "x"}),
    ("agent:info", {"agentId": "Ghost"}),
    ("agent:message", {"agentId": "Ghost", "message": "hello?"}),
    ("agent:fork", {"sourceId": "Ghost", "agentId": "B"}),
    ("agent:update", {"agentId": "Ghost", "config": ECHO}),
    ("agent:suspend", {"agentId": "Ghost"}),
    ("agent:resume", {"agentId": "Ghost"}),
    ("agent:delete", {"agentId": "Ghost"}),
    ("agent:delete", {"agentId": "Ghost", "remove": True}),
    ("agent:context", {"agentId": "Ghost"}),
    ("agent:trigger", {"agentId": "Ghost"}),
    ("agent:cancelTask", {"agentId": "Ghost", "taskId": "0x" + "00" * 16}),
], ids=lambda v: v if isinstance(v, str) else None)
async def test_unknown_agent(seeded, store, op, inp):
    with Unchanged(store):
        job = await failed(seeded, op, inp, "not_found")
    # the failed job can still be fetched (but it was not stored: no j/ ref, see Unchanged)
    st, got = await get_job(seeded, job["jobId"])
    assert st == 200 and got["status"] == "FAILED" and got["errorCode"] == "not_found"


async def test_request_to_terminated_agent(seeded, store):
    await ok(seeded, "agent:delete", {"agentId": "A"})
    with Unchanged(store):
        await failed(seeded, "agent:request", {"agentId": "A", "input": "x", "wait": True}, "illegal_state")
        await failed(seeded, "agent:message", {"agentId": "A", "message": "x"}, "illegal_state")
        await failed(seeded, "agent:trigger", {"agentId": "A"}, "illegal_state")
        await failed(seeded, "agent:resume", {"agentId": "A"}, "illegal_state")
        await failed(seeded, "agent:update", {"agentId": "A", "state": {"k": 1}}, "illegal_state")


async def test_fork_onto_existing_agent(seeded, store):
    await create(seeded, "B", ECHO)
    with Unchanged(store):
        await failed(seeded, "agent:fork", {"sourceId": "A", "agentId": "B"}, "conflict")
        await failed(seeded, "agent:fork", {"sourceId": "A", "agentId": "A"}, "conflict")


# ---------------------------------------------------------------- config references


async def test_unknown_template(seeded, store):
    with Unchanged(store):
        job = await failed(seeded, "agent:create", {"agentId": "N", "config": "no-such-template"}, "not_found")
    assert "no-such-template" in job["error"]


async def test_unknown_template_has_hint(seeded, store):
    with Unchanged(store):
        job = await failed(seeded, "agent:create", {"agentId": "N", "config": "no-such-template"}, "not_found")
    assert "vendor-assistant" in (job.get("hint") or "") + job["error"], job


async def test_config_workspace_path_missing_or_not_a_map(seeded, store):
    with Unchanged(store):
        await failed(seeded, "agent:create", {"agentId": "N", "config": "w/configs/none"}, "not_found")
        await failed(seeded, "agent:create", {"agentId": "N", "config": "w/a"}, "invalid_config")


async def test_config_workspace_path_malformed(seeded, store):
    with Unchanged(store):
        status, body = await invoke(seeded, "agent:create", {"agentId": "N", "config": "w//x"})
    assert_rejection(status, body, 400, "invalid_path", "$.input.config")


# ---------------------------------------------------------------- paths


# "/w/x" is w/x (a leading / as Covia paths have); tests/http/test_identity.py covers DID-qualified paths
BAD_PATHS = ["", "g//x", "//w/x", "w/x/", "x/y", "w//", "/", "W/x", "w/a\x01b", "did:key:z6Mk!/w/x", "/did:key:z/w"]


@pytest.mark.parametrize("op", ["covia:read", "covia:list", "covia:slice", "covia:write", "covia:append",
                                "covia:delete"])
@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
async def test_invalid_path(seeded, store, op, path):
    inp = {"path": path}
    if op in ("covia:write", "covia:append"):
        inp["value"] = 1
    with Unchanged(store):
        status, body = await invoke(seeded, op, inp)
    assert_rejection(status, body, 400, "invalid_path", "$.input.path")


@pytest.mark.parametrize("op", ["covia:write", "covia:append", "covia:delete"])
async def test_write_to_bare_workspace(seeded, store, op):
    inp = {"path": "w"} if op == "covia:delete" else {"path": "w", "value": {"replace": "everything"}}
    with Unchanged(store):
        status, body = await invoke(seeded, op, inp)
    assert_rejection(status, body, 400, "invalid_path", "$.input.path")


@pytest.mark.parametrize("op,path", [
    ("covia:write", "g/A/status"),
    ("covia:write", "g/A"),
    ("covia:write", "g/New"),
    ("covia:write", "g"),
    ("covia:write", "j/x"),
    ("covia:append", "g/A/timeline"),
    ("covia:append", "j/x"),
    ("covia:delete", "g/A"),
    ("covia:delete", "g/A/state/history"),
    ("covia:delete", "j/x"),
])
async def test_framework_paths_are_read_only(seeded, store, op, path):
    inp = {"path": path} if op == "covia:delete" else {"path": path, "value": {"status": "RUNNING"}}
    with Unchanged(store):
        await failed(seeded, op, inp, "forbidden")


async def test_write_below_scalar(seeded, store):
    with Unchanged(store):
        await failed(seeded, "covia:write", {"path": "w/a/b", "value": 2}, "invalid_path")
        await failed(seeded, "covia:append", {"path": "w/a", "value": 2}, "invalid_path")
        await failed(seeded, "covia:write", {"path": "w/list/5", "value": 2}, "invalid_path")
        await failed(seeded, "covia:write", {"path": "w/list/x", "value": 2}, "invalid_path")
    out = await ok(seeded, "covia:read", {"path": "w"})
    assert out == {"exists": True, "value": {"a": 1, "list": [1, 2]}, "valueBytes": 20}


async def test_delete_missing(seeded, store):
    """Deleting what is not there is the venue's idempotent no-op: ``{deleted: false}``, nothing stored."""
    with Unchanged(store):
        for path in ("w/missing", "w/a/b", "w/list/7"):
            assert await ok(seeded, "covia:delete", {"path": path}) == {"deleted": False}


# ---------------------------------------------------------------- task ids


@pytest.mark.parametrize("tid", ["xyz", "0x123", "", "0x" + "g" * 32, "0x" + "ab" * 17])
async def test_cancel_task_malformed_id(seeded, store, tid):
    with Unchanged(store):
        status, body = await invoke(seeded, "agent:cancelTask", {"agentId": "A", "taskId": tid})
    assert_rejection(status, body, 400, "invalid_input", "$.input.taskId")


async def test_cancel_task_unknown_id(seeded, store):
    with Unchanged(store):
        await failed(seeded, "agent:cancelTask", {"agentId": "A", "taskId": "0x" + "0f" * 16}, "not_found")


async def test_cancel_finished_task(seeded, store):
    _, job = await invoke(seeded, "agent:request", {"agentId": "A", "input": "done", "wait": True})
    assert job["status"] == "COMPLETE"
    with Unchanged(store):
        await failed(seeded, "agent:cancelTask", {"agentId": "A", "taskId": job["jobId"]}, "not_found")
    assert (await get_job(seeded, job["jobId"]))[1]["status"] == "COMPLETE"


# ---------------------------------------------------------------- transport


async def test_body_too_large(small_client, store):
    await create(small_client, "A", ECHO)
    big = json.dumps({"operation": "covia:write", "input": {"path": "w/big", "value": "x" * 10_240}}).encode()
    assert len(big) > SMALL_BODY
    with Unchanged(store):
        status, body = await post_raw(small_client, big)
    err = assert_rejection(status, body, 413, "too_large")
    assert str(SMALL_BODY) in err["message"]

    async def chunks():  # no Content-Length: the limit still applies while reading
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]
    with Unchanged(store):
        r = await small_client.post(INVOKE, data=chunks(), headers={"Content-Type": "application/json"})
        assert_rejection(r.status, await r.json(), 413, "too_large")
    # just under the limit is fine
    fits = json.dumps({"operation": "covia:write", "input": {"path": "w/ok", "value": "x" * 1000}}).encode()
    status, body = await post_raw(small_client, fits)
    assert status == 200 and body["status"] == "COMPLETE"


async def test_unknown_route(seeded, store):
    for method, url in [("GET", "/api/v1/nope"), ("POST", "/api/v2/invoke"), ("GET", "/"),
                        ("GET", "/api/v1/jobs/0x" + "00" * 16 + "/extra")]:
        with Unchanged(store):
            r = await seeded.request(method, url)
        assert r.content_type == "application/json", (url, await r.text())
        assert_rejection(r.status, await r.json(), 404, "not_found")


@pytest.mark.parametrize("method,url", [("GET", INVOKE), ("PUT", INVOKE), ("DELETE", INVOKE),
                                        ("POST", "/api/v1/status"), ("GET", "/api/v1/jobs/0x" + "00" * 16 + "/cancel")])
async def test_method_not_allowed(seeded, store, method, url):
    with Unchanged(store):
        r = await seeded.request(method, url)
    assert r.content_type == "application/json", await r.text()
    err = assert_rejection(r.status, await r.json(), 405, "method_not_allowed")
    assert err["message"]


async def test_rejections_leave_no_job(seeded, store):
    """A rejected request creates no job: nothing new under j/, stored or in memory."""
    first = await ok(seeded, "covia:list", {"path": "j"})  # this read-only job is then kept in memory
    with Unchanged(store):
        status, body = await invoke(seeded, "agent:request", {"agentId": "A", "input": "x", "wait": "bad"})
        assert status == 400
        status, body = await invoke(seeded, "agent:nope", {})
        assert status == 404
    second = await ok(seeded, "covia:list", {"path": "j"})
    assert second["count"] == first["count"] + 1


# ---------------------------------------------------------------- values outside the data model


@pytest.mark.parametrize("op,inp", [
    ("covia:write", {"path": "w/n", "value": 2**64 - 1}),
    ("covia:write", {"path": "w/n", "value": -2**63}),
    ("covia:write", {"path": "w/n", "value": [1.5e308, -0.0, "\u00e9\u4e2d\U0001f600", None, True, {}]}),
    ("agent:request", {"agentId": "A", "input": {"big": 2**64 - 1}, "wait": True}),
], ids=["u64-max", "i64-min", "mixed", "request-u64"])
async def test_extreme_but_valid_values_are_stored(seeded, op, inp):
    out = await ok(seeded, op, inp)
    if op == "covia:write":
        assert (await ok(seeded, "covia:read", {"path": "w/n"}))["value"] == inp["value"]
    else:
        assert json.loads(out["output"]) == inp["input"]  # the echoed text, wrapped (a request's output is a map)


@pytest.mark.parametrize("op,inp", [
    ("covia:write", {"path": "w/n", "value": 2**64}),
    ("covia:write", {"path": "w/n", "value": {"deep": [-2**63 - 1]}}),
    ("covia:append", {"path": "w/list", "value": 2**70}),
    ("agent:request", {"agentId": "A", "input": 2**64, "wait": True}),
    ("agent:create", {"agentId": "N", "state": {"x": 2**64}}),
], ids=["write-2^64", "write-nested-neg", "append-2^70", "request-input", "create-state"])
async def test_integer_out_of_range_is_rejected(seeded, store, op, inp):
    with Unchanged(store):
        status, body = await invoke(seeded, op, inp)
    assert status == 400, (status, body)
    assert body["errorCode"] in ("invalid_input", "invalid_value"), body
    assert body["error"]


@pytest.mark.parametrize("depth", [1000, 5000])
async def test_deeply_nested_value(seeded, store, depth):
    nested = "[" * depth + "]" * depth
    raw = ('{"operation":"covia:write","input":{"path":"w/deep","value":%s}}' % nested).encode()
    before = snapshot(store)
    status, body = await post_raw(seeded, raw)
    assert status != 500, body
    if status == 200:
        assert body["status"] == "COMPLETE", body
    else:
        assert_rejection(status, body, 400, body["errorCode"])
        assert body["errorCode"] in ("invalid_json", "invalid_input", "invalid_value")
        assert snapshot(store) == before


@pytest.mark.parametrize("raw, fragment", [
    (b'{"operation": "agent:list", "input": {"x": "\\ud800"}}', "lone surrogate \\ud800 at byte 44"),
    (b'{"operation": "agent:list", "input": {"x": "a\\uDC00b"}}', "lone surrogate \\udc00 at byte 45"),
    (b'{"operation": "agent:list", "input": {"x": "\\ud800\\u0041"}}', "lone surrogate \\ud800 at byte 44"),
    (b'{"operation": "agent:list", "input": {"x": "\xed\xa0\x80"}}', "not UTF-8 at byte 44 (0xed)"),
])
async def test_a_lone_surrogate_or_bad_utf8_is_named_with_its_place(seeded, store, raw, fragment):
    before = snapshot(store)
    r = await seeded.post("/api/v1/invoke", data=raw, headers={"Content-Type": "application/json"})
    err = assert_rejection(r.status, await r.json(), 400, "invalid_json")
    assert fragment in err["message"] and "truncated" not in err["message"], err
    assert snapshot(store) == before
    mcp = raw.replace(b'"operation": "agent:list", "input"', b'"jsonrpc": "2.0", "id": 1, "method": "ping", "params"')
    r = await seeded.post("/mcp", data=mcp, headers={"Content-Type": "application/json",
                                                     "Accept": "application/json, text/event-stream"})
    body = await r.json()
    assert r.status == 400 and body["error"]["code"] == -32700, body
    assert fragment.split(" at byte")[0] in body["error"]["message"]


async def test_an_escaped_backslash_before_u_d800_is_no_surrogate(seeded):
    r = await seeded.post("/api/v1/invoke", data=b'{"operation": "covia:write", "input": {"path": "w/s", '
                                                 b'"value": "\\\\ud800 \\ud83d\\ude00"}}')
    body = await r.json()
    assert r.status == 200 and body["status"] == "COMPLETE", body


@pytest.mark.parametrize("op, inp, field", [
    ("agent:request", {"agentId": "A", "input": "x", "timeout": 0.0}, "timeout"),  # an integer, in JSON Schema's sense
    ("agent:prune", {"agentId": "A", "keepLast": 3.0}, "keepLast"),  # an annotated int in a union with null
])
async def test_an_integral_float_is_an_integer(seeded, op: str, inp: dict, field: str) -> None:
    status, body = await invoke(seeded, op, inp)
    assert status in (200, 202), body  # decoded: not a 400 for "expected int, got float"
    assert body["errorCode"] != "invalid_input" or body.get("path") != f"$.input.{field}", body
