"""LLM faults through the run loop: retried, suspended with a readable error, or sent back to the model;
nothing loops without bound, and agent:resume recovers after each."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lattice.memory import MemoryStore
from ops.domain.contracts import decode_input, lookup
from ops.llm import make_adapter
from ops.engine.runtime import Runtime
from tests.ops.helpers import answer

KEY = "sk-fault-test-0123456789"


def completion(content: str | None = None, calls: list[tuple[str, str]] | None = None) -> dict:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = [{"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}}
                             for i, (n, a) in enumerate(calls)]
    return {"choices": [{"message": msg}]}


class Script:
    def __init__(self) -> None:
        self.handlers: list[Callable[[dict], Any]] = []
        self.bodies: list[dict] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        h = self.handlers.pop(0) if self.handlers else (lambda b: web.json_response(completion("default")))
        r = h(body)
        return await r if asyncio.iscoroutine(r) else r


@pytest.fixture
async def env():
    script = Script()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", script.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    rt = Runtime(MemoryStore(), adapter_factory=lambda m: make_adapter(m, environ={"FAULT_API_KEY": KEY})
                 if m.__class__.__name__ == "OpenAIModel" else make_adapter(m))
    await rt.start()
    model = {"provider": "openai", "model": "m", "baseUrl": str(server.make_url("/v1")), "apiKeyEnv": "FAULT_API_KEY",
             "retryBackoff": 0.01, "timeout": 0.5}

    async def call(op: str, **inp: Any) -> dict:
        c = lookup(op)
        return await rt.invoke(c, decode_input(c, inp), "local")
    await call("agent:create", agentId="A", config={"model": model, "maxIterations": 4})
    yield script, call, rt
    await rt.close()
    await server.close()


async def read(call, path: str) -> Any:
    return (await call("covia:read", path=path))["output"].get("value")


async def test_429_then_success_completes_without_suspending(env) -> None:
    script, call, _ = env
    script.handlers = [lambda b: web.json_response({}, status=429, headers={"Retry-After": "0"}),
                       lambda b: web.json_response(completion("ok"))]
    job = await call("agent:request", agentId="A", input="x", wait=True)
    assert job["status"] == "COMPLETE" and answer(job) == "ok" and len(script.bodies) == 2


@pytest.mark.parametrize("fault, code, text", [
    (lambda b: web.json_response({"error": {"message": "overloaded"}}, status=503), "llm_error", "after 3 attempts"),
    (lambda b: web.Response(text="<html>oops</html>", content_type="text/html"), "llm_error", "malformed reply"),
    (lambda b: web.json_response({"error": {"message": "invalid model"}}, status=400), "llm_error", "invalid model"),
])
async def test_faults_suspend_readably_and_resume_recovers(env, fault, code: str, text: str) -> None:
    script, call, rt = env
    script.handlers = [fault] * 3
    job = await call("agent:request", agentId="A", input="x", wait=True)
    rec = await read(call, "g/A")
    assert rec["status"] == "SUSPENDED" and rec["error"]["code"] == code and text in rec["error"]["message"]
    assert KEY not in str(rec)
    assert rec["timeline"] == [] and list(rec["tasks"]) == [job["jobId"]]
    n = len(script.bodies)
    await asyncio.sleep(0.05)
    assert len(script.bodies) == n  # no retry loop once suspended
    script.handlers = [lambda b: web.json_response(completion("recovered"))]
    await call("agent:resume", agentId="A")
    await rt.idle("local", "A")
    assert answer(rt.get_job("local", job["jobId"])) == "recovered"


async def test_timeout_suspends_and_resume_recovers(env) -> None:
    script, call, rt = env

    async def slow(body: dict) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(completion("late"))
    script.handlers = [slow]
    await call("agent:request", agentId="A", input="x", wait=True)
    rec = await read(call, "g/A")
    assert rec["error"]["code"] == "llm_timeout" and len(script.bodies) == 1
    script.handlers = [lambda b: web.json_response(completion("in time"))]
    await call("agent:resume", agentId="A")
    await rt.idle("local", "A")
    assert (await read(call, "g/A/timeline"))[0]["result"] == "in time"


async def test_bad_tool_calls_go_back_to_the_model(env) -> None:
    script, call, _ = env
    script.handlers = [
        lambda b: web.json_response(completion(None, [("covia_write", "{not json"), ("no_such_tool", "{}")])),
        lambda b: web.json_response(completion(None, [("complete_task", '{"output": "fixed"}')])),
    ]
    job = await call("agent:request", agentId="A", input="x", wait=True)
    assert job["status"] == "COMPLETE" and answer(job) == "fixed"
    tool_msgs = [m for m in script.bodies[1]["messages"] if m["role"] == "tool"]
    assert tool_msgs[0]["content"] == "error: the arguments are not a JSON object"
    assert tool_msgs[1]["content"].startswith("error: unknown tool 'no_such_tool'")


async def test_a_model_that_never_finishes_is_bounded(env) -> None:
    script, call, _ = env
    script.handlers = [lambda b: web.json_response(completion(None, [("covia_list", '{"path": "w"}')]))] * 10
    await call("agent:request", agentId="A", input="x", wait=True)
    rec = await read(call, "g/A")
    assert rec["status"] == "SUSPENDED" and rec["error"]["code"] == "tool_loop_limit"
    assert len(script.bodies) == 4  # config.maxIterations


async def test_a_request_with_a_response_schema_reaches_the_endpoint_as_json_schema_output(env) -> None:
    """agent:request {responseSchema, strict}: the model is asked for json_schema output; its JSON
    text answer is checked and kept decoded; a strict mismatch fails the task, not the agent."""
    script, call, _ = env
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    script.handlers.append(lambda b: web.json_response(completion('{"n": 4}')))
    job = await call("agent:request", agentId="A", input="count", responseSchema=schema, strict=True, wait=True)
    assert job["status"] == "COMPLETE" and job["output"] == {"n": 4}
    assert script.bodies[-1]["response_format"]["json_schema"]["schema"] == schema
    script.handlers.append(lambda b: web.json_response(completion('{"n": "four"}')))
    job = await call("agent:request", agentId="A", input="count", responseSchema=schema, strict=True, wait=True)
    assert job["status"] == "FAILED" and job["error"]["code"] == "schema_mismatch"
    assert job["error"]["schemaPath"] == "#/properties/n/type" and job["error"]["answerPath"] == "$.n"
    assert job["error"]["path"] == "$.input.responseSchema.properties.n.type"
    info = (await call("agent:info", agentId="A"))["output"]
    assert info["status"] == "SLEEPING" and info["error"] is None  # the agent goes on
