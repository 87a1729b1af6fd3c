"""OpenAPI 3.1 and JSON Schema generated from the contracts; the catalog; `lattice schema`; and
schemathesis fuzzing a live server from the OpenAPI document (no 5xx, no hang, rejections in the
documented error shape)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import jsonschema
import msgspec
import pytest
import schemathesis
from aiohttp import web
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.memory import MemoryStore
from ops.surfaces.cli import main as cli
from ops.domain.contracts import REGISTRY, input_schema
from ops.surfaces.app import ROUTES, create_app
from ops.surfaces.openapi import (camel_name, error_json_schema, input_json_schema, job_json_schema, openapi_document,
                                  output_json_schema, output_schema)
from ops.surfaces.schemas import refine
from ops.engine.runtime import Runtime
from ops.surfaces.sse import parse_resume_point
from tests.http.helpers import ECHO, HANG, INVOKE, Reader, create, invoke, ok, open_stream
from tests.serve import BIN, free_port

DOC = openapi_document(ROUTES)
ROOT = Path(__file__).resolve().parents[2]


def _validator(doc: dict, name: str) -> jsonschema.Draft202012Validator:
    """A validator of ``#/components/schemas/<name>`` that resolves the document's refs."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


# ---------------------------------------------------------------- the document


def test_document_is_generated_from_every_contract():
    assert DOC["openapi"].startswith("3.1")
    schemas = DOC["components"]["schemas"]
    assert len(schemas["InvokeRequest"]["oneOf"]) == len(REGISTRY) == len(schemas["Job"]["oneOf"])
    enums = [schemas[f"{camel_name(c)}Request"]["properties"]["operation"]["enum"] for c in REGISTRY.values()]
    assert len({k for e in enums for k in e}) == 2 * len(REGISTRY)  # disjoint: one branch applies
    template = "#/components/schemas/{name}"
    for c in REGISTRY.values():
        req = schemas[f"{camel_name(c)}Request"]
        assert req["properties"]["operation"]["enum"] == [c.key, c.alias]
        job = schemas[f"{camel_name(c)}Job"]
        assert job["properties"]["operation"] == {"const": c.key}
        # the input components are msgspec's own schemas of the contract's Structs, with the handlers' rules
        inp = req["properties"]["input"]
        ref = (inp["$ref"] if "$ref" in inp else inp["anyOf"][0]["$ref"]).rsplit("/", 1)[1]
        own = msgspec.json.schema_components([c.input], ref_template=template)[1][ref]
        defs = json.loads(json.dumps(input_schema(c)["$defs"][ref]).replace('"#/$defs/', '"#/components/schemas/'))
        assert own == defs  # (a nested input Struct's refs point at its own component)
        assert schemas[ref] == refine(c, own, template)[0]
    for s in schemas.values():
        jsonschema.Draft202012Validator.check_schema(s)
    assert set(DOC["paths"]) >= {"/api/v1/invoke", "/api/v1/jobs/{jobId}", "/api/v1/jobs/{jobId}/cancel",
                                 "/api/v1/jobs/{jobId}/sse", "/api/v1/agents/{agentId}/events", "/api/v1/status",
                                 "/api/v1/operations", "/api/v1/openapi.json"}
    assert schemas["Error"] == error_json_schema()


def test_document_names_its_server_and_its_bearer_scheme():
    assert DOC["servers"][0]["url"] == "/"
    assert DOC["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": DOC["components"]["securitySchemes"]["bearer"]["description"]}
    assert {} in DOC["security"] and {"bearer": []} in DOC["security"]  # a token when the server has --tokens
    assert openapi_document(ROUTES, "http://127.0.0.1:7770")["servers"] == [
        {"url": "http://127.0.0.1:7770", "description": "this server"}]


#: what a handler checks beyond its input Struct, now in the schema: (operation, input, schema-valid)
RULES = [("agent:replay", {"agentId": "A", "into": "B"}, False),
         ("agent:replay", {"agentId": "A", "into": "B", "from": None}, False),
         ("agent:replay", {"agentId": "A", "into": "B", "from": 2}, True),
         ("agent:replay", {"agentId": "A", "from": 2, "into": None}, True),
         ("agent:replay", {"agentId": "A", "config": {"systemPromt": "x"}}, False),
         ("agent:diff", {"agentId": "A"}, False), ("agent:diff", {"agentId": "A", "from": 0}, True),
         ("agent:diff", {"agentId": "A", "otherAgentId": "B"}, True),
         ("agent:diff", {"agentId": "A", "otherAgentId": "B", "from": 0}, False),
         ("covia:read", {"path": ""}, False), ("covia:read", {"path": "x/y"}, False),
         ("covia:read", {"path": "g//a"}, False), ("covia:read", {"path": "g"}, True),
         ("covia:read", {"path": "w/a", "at": 1}, False), ("covia:read", {"path": "g/A/state", "at": 1}, True),
         ("covia:write", {"path": "w", "value": 1}, False), ("covia:write", {"path": "w/x", "value": 2 ** 64}, False),
         ("covia:write", {"path": "g/A", "value": 2 ** 64}, False),
         ("agent:create", {"agentId": "A", "state": 5}, False),
         ("agent:create", {"agentId": "A", "state": {"config": {}}}, False),
         ("agent:create", {"agentId": "A", "state": {"history": [{"role": "user", "content": "hi"}], "k": 1}}, True),
         ("agent:create", {"agentId": "A", "config": {"systemPromt": "x"}}, False),
         ("agent:create", {"agentId": "A", "config": {"model": {"provider": "scripted", "rules": [{"whne": "x"}]}}},
          False),
         ("agent:create", {"agentId": "A", "config": {"tools": ["nope"]}}, False),
         ("agent:create", {"agentId": "A", "config": {"model": {"provider": "openai", "model": "m",
                                                                "apiKeyEnv": "AWS_SECRET"}}}, False),
         ("agent:create", {"agentId": "A", "config": "vendor-assistant"}, True),
         ("agent:create", {"agentId": "A", "config": "w//x"}, False),
         ("agent:cancelTask", {"agentId": "A", "taskId": "zz"}, False),
         ("agent:request", {"agentId": "A", "input": {"n": 2 ** 64}}, False),
         ("agent:request", {"agentId": "A", "input": {"n": 2 ** 64 - 1, "f": 1.5}}, True),
         ("agent:history", {"agentId": "A", "before": 2 ** 64}, False)]


@pytest.mark.parametrize("op, inp, valid", RULES)
async def test_the_schema_says_what_the_server_refuses(client, op, inp, valid):
    """Each rule a handler checks is in the input's schema, and a request the schema refuses is a 400 (nothing
    changed), whatever the state: the agent `A` does not exist here."""
    schema_ok = jsonschema.Draft202012Validator(input_json_schema(REGISTRY[op])).is_valid(inp)
    assert schema_ok == valid, (op, inp)
    status, body = await invoke(client, op, inp)
    if not valid:
        assert status == 400, body
    else:
        assert status in (200, 202), body


async def test_served_document_and_catalog(client):
    r = await client.get("/api/v1/openapi.json")
    assert r.status == 200 and await r.json() == json.loads(json.dumps(DOC))
    r = await client.get("/api/v1/operations")
    ops = await r.json()  # the Covia venue's list: [{name, asset, description, input, output, ...}]
    assert [o["operation"] for o in ops] == list(REGISTRY)
    for o in ops:
        c = REGISTRY[o["operation"]]
        assert o["name"] == o["alias"] == c.alias and o["description"] == o["summary"] == c.summary
        assert o["input"] == input_json_schema(c) and o["output"] == output_json_schema(c)
        assert re.fullmatch("[0-9a-f]{64}", o["asset"]) and o["toolName"] == c.snake_name


async def test_replies_validate_against_the_document(client):
    """Jobs and rejections from real calls conform to the published schemas."""
    job_v, err_v = _validator(DOC, "Job"), _validator(DOC, "Error")
    await create(client, "A", ECHO)
    calls = [("agent:info", {"agentId": "A"}), ("agent:list", {}), ("agent:context", {"agentId": "A"}),
             ("agent:request", {"agentId": "A", "input": "x", "wait": True}), ("agent:request", {"agentId": "A",
                                                                                                  "input": "y"}),
             ("agent:trigger", {"agentId": "A", "wait": True}), ("agent:message", {"agentId": "A", "message": "m"}),
             ("covia:write", {"path": "w/x", "value": [1]}), ("covia:append", {"path": "w/x", "value": 2}),
             ("covia:read", {"path": "w/x"}), ("covia:list", {"path": "g/A"}), ("covia:slice", {"path": "w/x"}),
             ("covia:delete", {"path": "w/x"}), ("agent:fork", {"sourceId": "A", "agentId": "B"}),
             ("agent:update", {"agentId": "B", "state": {"k": 1}}), ("agent:suspend", {"agentId": "B"}),
             ("agent:resume", {"agentId": "B"}), ("agent:delete", {"agentId": "B"}),
             ("agent:delete", {"agentId": "B", "remove": True}), ("agent:info", {"agentId": "Nobody"}),
             ("agent:cancelTask", {"agentId": "A", "taskId": "0x" + "0" * 32}),
             ("agent:step", {"agentId": "A", "replies": [{"toolCalls": [{"name": "covia_write", "arguments": {
                 "path": "w/s", "value": 1}}]}, {"content": "done"}]}),
             ("agent:trigger", {"agentId": "A", "force": False}),
             ("agent:completeTask", {"agentId": "A", "taskId": "0x" + "0" * 32, "result": 1}),
             ("agent:request", {"agentId": "A", "input": '{"n": 1}', "timeout": 5000, "outputPath": "w/o",
                                "responseSchema": {"type": "object"}, "strict": True})]
    for op, inp in calls:
        status, body = await invoke(client, op, inp)
        assert status in (200, 202), body
        job_v.validate(body)
        # and against the operation's own JSON Schema (the MCP outputSchema, `lattice schema --response`)
        jsonschema.validate(body, job_json_schema(REGISTRY[op]))
        if body["status"] == "COMPLETE":
            jsonschema.validate(body["output"], output_json_schema(REGISTRY[op]))
    for body in ({"operation": "agent:nope"}, {"operation": "agent:info", "input": {}}, {"x": 1}):
        r = await client.post("/api/v1/invoke", json=body)
        err_v.validate(await r.json())


def test_input_schemas_agree_with_the_decoder():
    """What the published schema accepts for a few samples, the server's decoder accepts, and the converse."""
    samples = [("agent:create", {"agentId": "A"}, True), ("agent:create", {"agentId": "A", "x": 1}, False),
               ("agent:request", {"agentId": "A", "input": None, "wait": 10}, True),
               ("agent:request", {"agentId": "A", "input": 1, "wait": -1}, False),
               ("covia:list", {"path": "w", "limit": 0}, False), ("agent:list", {}, True)]
    for op, inp, good in samples:
        c = REGISTRY[op]
        schema_ok = jsonschema.Draft202012Validator(input_json_schema(c)).is_valid(inp)
        try:
            msgspec.convert(inp, c.input)
            decoder_ok = True
        except msgspec.ValidationError:
            decoder_ok = False
        assert schema_ok == decoder_ok == good, (op, inp)


# ---------------------------------------------------------------- the event streams, as documented

AGENT_EVENTS = "/api/v1/agents/{agentId}/events"


def _event_schemas(path: str, method: str = "get") -> dict[str, dict]:
    """``{event name: item schema}`` of a documented event stream (its ``x-itemSchema`` branches)."""
    media = DOC["paths"][path][method]["responses"]["200"]["content"]["text/event-stream"]
    return {branch["properties"]["event"]["const"]: branch for branch in media["x-itemSchema"]["oneOf"]}


def _parameter(path: str, name: str) -> dict:
    return next(p for p in DOC["paths"][path]["get"]["parameters"] if p["name"] == name)


def _check_event(path: str, ev: dict, method: str = "get") -> None:
    """An event as sent (``data`` as text) conforms to the stream's documented item schema, ``data`` included."""
    schemas = _event_schemas(path, method)
    assert ev["event"] in schemas, ev
    jsonschema.Draft202012Validator({"oneOf": list(schemas.values())}).validate(ev)
    data_schema = schemas[ev["event"]]["properties"]["data"]["contentSchema"]
    jsonschema.Draft202012Validator({**data_schema, "components": DOC["components"]}).validate(json.loads(ev["data"]))


async def test_every_event_and_id_the_server_sends_is_documented(client):
    """Real streams: every event conforms to its stream's item schema, and every SSE ``id:`` matches the
    documented pattern of what is sent and the documented pattern of what is accepted back."""
    id_pattern = _event_schemas(AGENT_EVENTS)["agent-version"]["properties"]["id"]["pattern"]
    resume_pattern = _parameter(AGENT_EVENTS, "Last-Event-ID")["schema"]["pattern"]
    await create(client, "E", ECHO)
    agent = await open_stream(client, "/api/v1/agents/E/events", raw=True)
    await invoke(client, "agent:request", {"agentId": "E", "input": "hi", "wait": True})
    for op in ("agent:suspend", "agent:resume"):
        await ok(client, op, {"agentId": "E"})
    await ok(client, "agent:delete", {"agentId": "E", "remove": True})
    versions = await agent.rest()
    assert [e["event"] for e in versions].count("agent-version") >= 5 and versions[-1]["event"] == "agent-removed"

    await create(client, "H", HANG)
    status, job = await invoke(client, "agent:request", {"agentId": "H", "input": "x"})
    updates = await open_stream(client, f"/api/v1/jobs/{job['jobId']}/sse", raw=True)
    first = await updates.next()
    await client.put(f"/api/v1/jobs/{job['jobId']}/cancel")
    job_events = [first, *await updates.rest()]
    assert [json.loads(e["data"])["status"] for e in job_events] == ["STARTED", "CANCELLED"]
    r = await client.post(INVOKE, json={"operation": "agent:list"}, headers={"Accept": "text/event-stream"})
    invoked = await Reader(r, raw=True).rest()
    assert invoked

    for ev in versions:
        _check_event(AGENT_EVENTS, ev)
    for ev in job_events:
        _check_event("/api/v1/jobs/{jobId}/sse", ev)
    for ev in invoked:
        _check_event("/api/v1/invoke", ev, "post")
    ids = [e["id"] for e in versions if "id" in e]
    assert len(ids) == len(versions) - 1  # every agent-version carries an id, agent-removed none
    for i in ids:
        assert re.search(id_pattern, i) and re.search(resume_pattern, i), i
    # of a job's updates, the final one only, and its id is the terminal status
    for events in (job_events, invoked):
        assert [e.get("id") for e in events] == [None] * (len(events) - 1) + [json.loads(events[-1]["data"])["status"]]

    # each id sent, given back, resumes the stream after it
    await create(client, "E", ECHO)
    rd = await open_stream(client, "/api/v1/agents/E/events", raw=True)
    sent = await rd.next()
    rd.resp.close()
    await ok(client, "agent:update", {"agentId": "E", "state": {"k": 1}})
    await ok(client, "agent:update", {"agentId": "E", "state": {"k": 2}})
    rd = await open_stream(client, "/api/v1/agents/E/events", {"Last-Event-ID": sent["id"]}, raw=True)
    assert [json.loads((await rd.next())["data"])["seq"] for _ in range(2)] == [1, 2]
    rd.resp.close()


#: resume points the server accepts: an id as sent, a bare seq, a seq and any prefix of the commit id
ACCEPTED = ["0", "1", "000", "9" * 18, "1/", "1/0", "1/" + "ab" * 8, "1/" + "0" * 64, "", " ", "\t1/ab "]
#: and those it refuses (400)
REFUSED = ["x", "-1", "+1", "1.5", "1e3", "9" * 19, "1/A", "1/" + "a" * 65, "/ab", "1/ab/cd", "1/g", "0x1", "1 /a"]
#: refused too, sent in the query only: a header value is latin-1 without control characters
UNICODE_REFUSED = ["²", "٣", "1/é", "\x1c", "1\x0b", "\xa0"]


@pytest.mark.parametrize("param", ["Last-Event-ID", "since"])
async def test_the_documented_resume_pattern_is_what_the_server_accepts(client, param):
    pattern = _parameter(AGENT_EVENTS, param)["schema"]["pattern"]
    assert pattern == _parameter(AGENT_EVENTS, "since" if param == "Last-Event-ID" else "Last-Event-ID")[
        "schema"]["pattern"]
    await create(client, "E", ECHO)
    refused = REFUSED + (UNICODE_REFUSED if param == "since" else [])  # a header value is latin-1
    for value in ACCEPTED + refused:
        if param == "since":
            r = await client.get("/api/v1/agents/E/events", params={"since": value})
        else:
            r = await client.get("/api/v1/agents/E/events", headers={"Last-Event-ID": value})
        documented = re.search(pattern, value) is not None
        assert documented == (value in ACCEPTED), value
        assert r.status == (200 if documented else 400), (value, r.status)
        r.close()


@given(st.from_regex(_parameter(AGENT_EVENTS, "Last-Event-ID")["schema"]["pattern"])
       | st.text(alphabet="0123456789abcdefAx/-. ²٣\n\t\x1c\xa0", max_size=24))
@settings(max_examples=300)
def test_the_resume_point_parser_accepts_exactly_the_documented_pattern(value):
    pattern = _parameter(AGENT_EVENTS, "Last-Event-ID")["schema"]["pattern"]
    blank = value.strip(" \t") == ""  # no resume point: accepted, the stream starts at the current version
    assert (blank or parse_resume_point(value) is not None) == (re.fullmatch(pattern, value) is not None)


# ---------------------------------------------------------------- the CLI


@pytest.mark.parametrize("key", list(REGISTRY))
def test_cli_schema(key):
    r = CliRunner().invoke(cli, ["schema", key])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == input_json_schema(REGISTRY[key])
    r = CliRunner().invoke(cli, ["schema", REGISTRY[key].alias, "--response"])
    assert r.exit_code == 0 and json.loads(r.output) == job_json_schema(REGISTRY[key])


def test_cli_schema_unknown_operation():
    r = CliRunner().invoke(cli, ["schema", "agent:crate"])
    assert r.exit_code == 2 and "did you mean agent:create" in r.output


# ---------------------------------------------------------------- fuzzing a live server


class LiveServer:
    """A real server on 127.0.0.1 in its own thread and event loop, for schemathesis' synchronous client."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = MemoryStore()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(create_app(Runtime(self.store)))
        self.thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        assert self._started.wait(10), "the fuzzed server did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()


@pytest.fixture(scope="module")
def live_url():
    with LiveServer() as srv:
        yield srv.url


@pytest.fixture(scope="module")
def empty_live_url():
    """A server that never holds an agent or a job: its event streams can only be refused."""
    with LiveServer() as srv:
        yield srv.url


SCHEMA = schemathesis.openapi.from_dict(DOC)
SCHEMA.config.generation.update(max_examples=40, deterministic=True)
# the event streams are long-lived by design (tests/http/test_sse.py covers them): fuzzed on a server
# without agents or jobs, where every request to them is refused
STREAMS = r"/(sse|events)$"
#: binary bundles (not JSON) have their own bad-input tests (tests/http/test_bundles.py)
BUNDLES = r"/import$"
#: the Covia venue routes this server answers 501 `not_supported` by design (tests/http/test_venue_wire.py)
UNSUPPORTED = r"^/api/v1/(assets|secrets)|/(pause|resume)$"
#: (the caller's stream, /api/v1/events, takes no input to refuse: tests/http/test_caller_events.py covers it)
FUZZED_STREAMS = SCHEMA.include(path_regex=STREAMS).exclude(path="/api/v1/events")
#: examples per operation and phase of the schemathesis run (its coverage phase is exhaustive anyway)
ST_EXAMPLES = int(os.environ.get("LATTICE_SCHEMATHESIS_EXAMPLES", "20"))


def test_schemathesis_every_check_on_every_non_stream_path(live_url, tmp_path):
    """`st run --checks all` (coverage, fuzzing and stateful phases) against a live server: no failure.

    ``negative_data_rejection`` runs as ``negative_data_rejection_of_invalid_data`` (tests/http/schemathesis_hooks.py),
    which first confirms that a "negative" body is invalid: negating one branch of an anyOf/oneOf can leave a body
    another branch accepts. ``LATTICE_SCHEMATHESIS_EXAMPLES`` (default 20) and ``LATTICE_SCHEMATHESIS_SEED`` widen it.
    """
    cmd = [str(BIN / "st"), "run", f"{live_url}/api/v1/openapi.json", "--checks", "all",
           "--exclude-checks", "negative_data_rejection", "--exclude-path-regex", f"{STREAMS}|{BUNDLES}|{UNSUPPORTED}",
           "--max-examples", str(ST_EXAMPLES), "--seed", os.environ.get("LATTICE_SCHEMATHESIS_SEED", "1"),
           "--request-timeout", "20", "--no-color"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.http.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)  # cwd: its cache
    cases = re.search(r"(\d+) generated, (.*)", p.stdout)
    print(f"\nschemathesis: {cases.group(0) if cases else '?'}")
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    assert cases and int(cases.group(1)) > 500, p.stdout[-2000:]


def test_doctests():
    import doctest

    from ops.surfaces import auth, common, inputs, openapi, routes, schemas, sse
    for module in (auth, common, inputs, openapi, routes, schemas, sse):
        assert doctest.testmod(module).failed == 0, module.__name__


@FUZZED_STREAMS.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=25)
def test_fuzz_stream_refusals(case, empty_live_url):
    response = case.call_and_validate(base_url=empty_live_url, timeout=10)  # every check
    assert response.status_code in (400, 404, 405), response.status_code
