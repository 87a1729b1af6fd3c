"""Tests for the OpenAI-compatible adapter against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ops.domain.models import LlmError, LlmReply, LlmRequest, ToolCall
from ops.domain.models import OpenAIModel
from ops.llm.openai import OpenAIAdapter

KEY = "sk-test-SECRET-0123456789abcdef"
ENV = {"FAKE_OPENAI_KEY": KEY}

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Look up the weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def completion(content: str | None = None, tool_calls: list[dict] | None = None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


Handler = Callable[[web.Request, dict], Any]


class FakeServer:
    """A chat-completions server: records requests, answers from a script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Handler] = []
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    def reply_json(self, doc: Any, status: int = 200) -> None:
        self.script.append(lambda req, body: web.json_response(doc, status=status))

    def reply_raw(self, text: str, status: int = 200, content_type: str = "text/plain") -> None:
        self.script.append(
            lambda req, body: web.Response(text=text, status=status, content_type=content_type)
        )

    def reply_with(self, handler: Handler) -> None:
        self.script.append(handler)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        handler = self.script.pop(0)
        result = handler(request, body)
        if asyncio.iscoroutine(result):
            result = await result
        return result


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    fake.server = server
    try:
        yield fake
    finally:
        fake.release.set()
        await server.close()


def make_adapter(fake: FakeServer, **kw: Any) -> OpenAIAdapter:
    fields: dict[str, Any] = {
        "model": "gpt-test",
        "baseUrl": fake.base_url(),
        "apiKeyEnv": "FAKE_OPENAI_KEY",
        "timeout": 5.0,
    }
    fields.update(kw)
    return OpenAIAdapter(OpenAIModel(**fields), environ=ENV)


def req(messages: list[dict], tools: list[dict] | None = None) -> LlmRequest:
    return LlmRequest(model={"provider": "openai", "model": "gpt-test"}, messages=messages, tools=tools or [])


HELLO = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hi."},
]


async def expect_error(adapter: OpenAIAdapter, request: LlmRequest, code: str) -> LlmError:
    with pytest.raises(LlmError) as info:
        await adapter.complete(request)
    err = info.value
    assert err.code == code
    assert KEY not in err.message and KEY not in str(err) and KEY not in repr(err)
    assert err.__cause__ is None or KEY not in str(err.__cause__)
    return err


# --- happy paths ----------------------------------------------------------------


async def test_plain_text_reply(fake: FakeServer) -> None:
    fake.reply_json(completion("hi"))
    adapter = make_adapter(fake, temperature=0.3, maxTokens=64)

    reply = await adapter.complete(req(HELLO))

    assert reply == LlmReply(content="hi")
    assert reply.toolCalls == []
    [seen] = fake.requests
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["Authorization"] == f"Bearer {KEY}"
    assert seen["headers"]["Content-Type"].startswith("application/json")
    assert seen["body"] == {
        "model": "gpt-test",
        "messages": HELLO,
        "temperature": 0.3,
        "max_tokens": 64,
    }


async def test_a_response_schema_asks_for_json_schema_output(fake: FakeServer) -> None:
    fake.reply_json(completion('{"n": 1}'))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = LlmRequest(model={"provider": "openai", "model": "gpt-test"}, messages=HELLO,
                         responseFormat={"name": "response", "schema": schema})

    reply = await make_adapter(fake).complete(request)

    assert reply.content == '{"n": 1}'
    [seen] = fake.requests
    assert seen["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": False}}
    # without one, no response_format is sent
    fake.reply_json(completion("x"))
    await make_adapter(fake).complete(req(HELLO))
    assert "response_format" not in fake.requests[-1]["body"]


async def test_optional_fields_omitted_and_trailing_slash(fake: FakeServer) -> None:
    fake.reply_json(completion("ok"))
    adapter = make_adapter(fake, baseUrl=fake.base_url() + "/")

    await adapter.complete(req(HELLO))

    [seen] = fake.requests
    assert seen["path"] == "/v1/chat/completions"
    assert set(seen["body"]) == {"model", "messages"}  # no tools/temperature/max_tokens


async def test_tool_call_round_trip(fake: FakeServer) -> None:
    fake.reply_json(
        completion(
            None,
            [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        )
    )
    fake.reply_json(completion("It is sunny in Paris."))
    adapter = make_adapter(fake)
    messages: list[dict] = [{"role": "user", "content": "Weather in Paris?"}]

    first = await adapter.complete(req(messages, [WEATHER_TOOL]))

    assert first.content is None
    assert first.toolCalls == [ToolCall(id="call_abc", name="get_weather", arguments={"city": "Paris"})]
    assert first.toolCalls[0].invalid is None
    sent = fake.requests[0]["body"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]

    messages += [
        {
            "role": "assistant",
            "content": None,
            "toolCalls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in first.toolCalls],
        },
        {"role": "tool", "toolCallId": "call_abc", "name": "get_weather", "content": "sunny, 24C"},
    ]
    second = await adapter.complete(req(messages, [WEATHER_TOOL]))

    assert second == LlmReply(content="It is sunny in Paris.")
    wire = fake.requests[1]["body"]["messages"]
    assert wire[0] == {"role": "user", "content": "Weather in Paris?"}
    assistant = wire[1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] is None
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_abc"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert "toolCalls" not in assistant
    assert wire[2] == {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 24C"}


async def test_text_and_several_tool_calls(fake: FakeServer) -> None:
    fake.reply_json(
        completion(
            "Checking both.",
            [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"A"}'}},
                {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "B"}}},
                {"type": "function", "function": {"name": "ping", "arguments": ""}},
            ],
        )
    )
    reply = await make_adapter(fake).complete(req(HELLO, [WEATHER_TOOL]))

    assert reply.content == "Checking both."
    assert reply.toolCalls == [
        ToolCall(id="a", name="get_weather", arguments={"city": "A"}),
        ToolCall(id="b", name="get_weather", arguments={"city": "B"}),
        ToolCall(id="call_2", name="ping", arguments={}),
    ]


@pytest.mark.parametrize(
    "raw",
    ['{"city": "Par', "[1, 2, 3]", '"just a string"', "42", "not json at all"],
)
async def test_invalid_tool_call_arguments(fake: FakeServer, raw: str) -> None:
    fake.reply_json(
        completion(None, [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": raw}}])
    )
    reply = await make_adapter(fake).complete(req(HELLO, [WEATHER_TOOL]))

    assert reply.toolCalls == [ToolCall(id="c1", name="get_weather", arguments={}, invalid=raw)]


async def test_invalid_tool_call_arguments_truncated(fake: FakeServer) -> None:
    raw = "x" * 5000
    fake.reply_json(
        completion(None, [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": raw}}])
    )
    reply = await make_adapter(fake).complete(req(HELLO))

    [call] = reply.toolCalls
    assert call.arguments == {}
    assert call.invalid == "x" * 1000


async def test_no_authorization_header_without_key_env(fake: FakeServer) -> None:
    fake.reply_json(completion("local"))
    adapter = OpenAIAdapter(
        OpenAIModel(model="llama", baseUrl=fake.base_url(), apiKeyEnv=None), environ={}
    )

    assert (await adapter.complete(req(HELLO))).content == "local"
    [seen] = fake.requests
    assert "Authorization" not in seen["headers"]


async def test_shared_session_is_used_and_left_open(fake: FakeServer) -> None:
    fake.reply_json(completion("one"))
    fake.reply_json(completion("two"))
    async with aiohttp.ClientSession() as session:
        adapter = OpenAIAdapter(
            OpenAIModel(model="m", baseUrl=fake.base_url(), apiKeyEnv="FAKE_OPENAI_KEY"),
            session=session,
            environ=ENV,
        )
        assert (await adapter.complete(req(HELLO))).content == "one"
        assert not session.closed
        assert (await adapter.complete(req(HELLO))).content == "two"


async def test_environ_is_read_at_call_time(fake: FakeServer) -> None:
    fake.reply_json(completion("ok"))
    environ: dict[str, str] = {}
    adapter = OpenAIAdapter(
        OpenAIModel(model="m", baseUrl=fake.base_url(), apiKeyEnv="LATE_KEY"), environ=environ
    )
    await expect_error(adapter, req(HELLO), "llm_config")
    environ["LATE_KEY"] = KEY
    assert (await adapter.complete(req(HELLO))).content == "ok"
    assert fake.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


# --- failures -------------------------------------------------------------------


async def test_timeout(fake: FakeServer) -> None:
    async def slow(request: web.Request, body: dict) -> web.Response:
        try:
            await asyncio.wait_for(fake.release.wait(), 5)
        except asyncio.TimeoutError:
            pass
        return web.json_response(completion("too late"))

    fake.reply_with(slow)
    adapter = make_adapter(fake, timeout=0.2)

    loop = asyncio.get_running_loop()
    started = loop.time()
    err = await expect_error(adapter, req(HELLO), "llm_timeout")
    assert loop.time() - started < 2.0
    assert "0.2" in err.message


@pytest.mark.parametrize("status", [500, 401, 429, 503])
async def test_http_error_status(fake: FakeServer, status: int) -> None:
    fake.reply_raw("upstream exploded", status=status)

    err = await expect_error(make_adapter(fake, maxRetries=0), req(HELLO), "llm_error")

    assert str(status) in err.message
    assert "upstream exploded" in err.message


async def test_openai_style_error_body_message_surfaces(fake: FakeServer) -> None:
    fake.reply_json(
        {
            "error": {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        status=401,
    )

    err = await expect_error(make_adapter(fake), req(HELLO), "llm_error")

    assert "401" in err.message
    assert "Incorrect API key provided." in err.message
    assert "invalid_request_error" not in err.message  # message, not the raw body


async def test_error_body_excerpt_is_short(fake: FakeServer) -> None:
    fake.reply_raw("<html>" + "oops " * 2000 + "</html>", status=502, content_type="text/html")

    err = await expect_error(make_adapter(fake, maxRetries=0), req(HELLO), "llm_error")

    assert "502" in err.message
    assert len(err.message) < 400


async def test_error_inside_2xx_body(fake: FakeServer) -> None:
    fake.reply_json({"error": {"message": "model not loaded"}})

    err = await expect_error(make_adapter(fake), req(HELLO), "llm_error")

    assert "model not loaded" in err.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("this is not json", "text/plain"),
        ('{"choices": [', "application/json"),
        ('{"choices": [{"message": {"content": 5}}]}', "application/json"),
        ('{"choices": "nope"}', "application/json"),
        ("[]", "application/json"),
    ],
)
async def test_malformed_body(fake: FakeServer, body: str, content_type: str) -> None:
    fake.reply_raw(body, content_type=content_type)

    err = await expect_error(make_adapter(fake), req(HELLO), "llm_error")

    assert err.message.startswith("malformed reply:")


@pytest.mark.parametrize("doc", [{"id": "x", "object": "chat.completion"}, {"choices": []}])
async def test_body_without_choices(fake: FakeServer, doc: dict) -> None:
    fake.reply_json(doc)

    err = await expect_error(make_adapter(fake), req(HELLO), "llm_error")

    assert err.message.startswith("malformed reply:")
    assert "choices" in err.message


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = OpenAIAdapter(
        OpenAIModel(model="m", baseUrl=f"http://127.0.0.1:{port}/v1", apiKeyEnv="FAKE_OPENAI_KEY", timeout=2.0),
        environ=ENV,
    )

    err = await expect_error(adapter, req(HELLO), "llm_error")

    assert f"127.0.0.1:{port}" in err.message


@pytest.mark.parametrize(("environ", "word"), [({}, "is not set"), ({"FAKE_OPENAI_KEY": ""}, "is empty")])
async def test_missing_env_var(fake: FakeServer, environ: dict, word: str) -> None:
    adapter = OpenAIAdapter(
        OpenAIModel(model="m", baseUrl=fake.base_url(), apiKeyEnv="FAKE_OPENAI_KEY"), environ=environ
    )

    err = await expect_error(adapter, req(HELLO), "llm_config")

    assert err.message == f"environment variable FAKE_OPENAI_KEY {word}"
    assert fake.requests == []


async def test_missing_default_env_var_message() -> None:
    adapter = OpenAIAdapter(OpenAIModel(model="gpt-4o"), environ={})

    err = await expect_error(adapter, req(HELLO), "llm_config")

    assert err.message == "environment variable OPENAI_API_KEY is not set"


@pytest.mark.parametrize(
    "echo",
    [
        lambda auth: web.json_response({"error": {"message": f"bad header {auth}"}}, status=401),
        lambda auth: web.Response(text=f"you sent {auth}", status=403),
        lambda auth: web.Response(text=("pad " * 100) + auth, status=500),
        lambda auth: web.json_response({"error": f"denied for {auth}"}, status=200),
        lambda auth: web.json_response({"detail": auth}, status=400),
    ],
)
async def test_key_never_leaks_when_server_echoes_it(fake: FakeServer, echo: Callable) -> None:
    fake.reply_with(lambda request, body: echo(request.headers["Authorization"]))
    adapter = make_adapter(fake)

    err = await expect_error(adapter, req(HELLO), "llm_error")

    assert "sk-test-SECRET" not in err.message
    assert KEY not in repr(adapter)


def test_repr_and_model_hide_key() -> None:
    model = OpenAIModel(model="gpt-4o", apiKeyEnv="FAKE_OPENAI_KEY")
    adapter = OpenAIAdapter(model, environ=ENV)
    assert KEY not in repr(adapter)
    assert KEY not in repr(model)
    assert "gpt-4o" in repr(adapter)


# --- the model ref --------------------------------------------------------------


def test_model_ref_tagged_decoding_and_defaults() -> None:
    model = msgspec.json.decode(b'{"provider": "openai", "model": "gpt-4o", "extra": 1}', type=OpenAIModel)
    assert model == OpenAIModel(model="gpt-4o")
    assert model.baseUrl == "https://api.openai.com/v1"
    assert model.apiKeyEnv == "OPENAI_API_KEY"
    assert model.timeout == 60.0
    assert model.temperature is None and model.maxTokens is None
    assert msgspec.to_builtins(model)["provider"] == "openai"


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan")])
def test_model_ref_rejects_bad_timeout(timeout: float) -> None:
    with pytest.raises(ValueError):
        OpenAIModel(model="m", timeout=timeout)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"provider": "openai", "model": "m", "timeout": timeout}, OpenAIModel)


async def test_oversized_reply_is_refused(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import ops.llm.openai as openai_mod
    monkeypatch.setattr(openai_mod, "MAX_REPLY_BYTES", 4096)
    fake.reply_json(completion("x" * 10_000))

    err = await expect_error(make_adapter(fake), req(HELLO), "llm_error")

    assert "over 4096 bytes" in err.message


# --- faults: what is retried, what is not ------------------------------------------


async def test_429_with_retry_after_is_retried(fake: FakeServer) -> None:
    fake.reply_with(lambda r, b: web.json_response({"error": {"message": "slow down"}}, status=429,
                                                  headers={"Retry-After": "0"}))
    fake.reply_json(completion("after the limit"))
    reply = await make_adapter(fake, retryBackoff=5.0).complete(req(HELLO))  # Retry-After 0 wins over 5 s
    assert reply.content == "after the limit" and len(fake.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_then_reported(fake: FakeServer, status: int) -> None:
    for _ in range(3):
        fake.reply_json({"error": {"message": "down"}}, status=status)
    err = await expect_error(make_adapter(fake, maxRetries=2, retryBackoff=0.01), req(HELLO), "llm_error")
    assert f"{status}" in err.message and "after 3 attempts" in err.message
    assert len(fake.requests) == 3


async def test_reply_cut_off_mid_body_is_retried(fake: FakeServer) -> None:
    async def cut(request: web.Request, body: dict) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "500"})
        await resp.prepare(request)
        await resp.write(b'{"choices": [{"message": {"content": "par')
        request.transport.close()  # the connection drops mid-reply
        return resp
    fake.reply_with(cut)
    fake.reply_json(completion("whole"))
    reply = await make_adapter(fake, retryBackoff=0.01).complete(req(HELLO))
    assert reply.content == "whole" and len(fake.requests) == 2


@pytest.mark.parametrize("make_reply, code", [
    (lambda: web.json_response({"error": {"message": "bad request"}}, status=400), "llm_error"),
    (lambda: web.Response(text="{not json", content_type="application/json"), "llm_error"),
])
async def test_permanent_failures_are_not_retried(fake: FakeServer, make_reply, code: str) -> None:
    fake.reply_with(lambda r, b: make_reply())
    await expect_error(make_adapter(fake, retryBackoff=0.01), req(HELLO), code)
    assert len(fake.requests) == 1


async def test_timeouts_are_not_retried(fake: FakeServer) -> None:
    async def slow(request: web.Request, body: dict) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response(completion("late"))
    fake.reply_with(slow)
    await expect_error(make_adapter(fake, timeout=0.2, retryBackoff=0.01), req(HELLO), "llm_timeout")
    assert len(fake.requests) == 1


def test_retry_after_parsing() -> None:
    import email.utils

    from ops.llm.openai import _retry_after
    assert _retry_after("3") == 3.0 and _retry_after("0.5") == 0.5 and _retry_after(None) is None
    assert _retry_after("soon") is None and _retry_after("-4") == 0.0
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 15 < _retry_after(later) <= 20


def test_retry_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        OpenAIModel(model="m", maxRetries=11)
    with pytest.raises(ValueError):
        OpenAIModel(model="m", retryBackoff=-1)


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_reply_arriving_in_pieces_is_read_whole(fake: FakeServer, chunked: bool) -> None:
    body = json.dumps(completion("x" * 300_000)).encode()

    async def trickle(request: web.Request, _body: dict) -> web.StreamResponse:
        headers = {"Content-Type": "application/json"}
        if not chunked:
            headers["Content-Length"] = str(len(body))
        resp = web.StreamResponse(headers=headers)
        if chunked:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 50_000):
            await resp.write(body[i:i + 50_000])
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp
    fake.reply_with(trickle)
    reply = await make_adapter(fake, maxRetries=0).complete(req(HELLO))
    assert reply.content == "x" * 300_000


async def test_a_redirect_is_not_followed_and_the_key_stays_home(fake: FakeServer) -> None:
    elsewhere = FakeServer()
    other = web.Application()
    other.router.add_post("/v1/chat/completions", elsewhere.handle)
    server = TestServer(other, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        target = str(server.make_url("/v1/chat/completions"))
        fake.reply_with(lambda req, body: web.Response(status=307, headers={"Location": target}))
        err = await expect_error(make_adapter(fake), req(HELLO), "llm_error")
        assert "redirect" in err.message and "not followed" in err.message
        assert elsewhere.requests == []  # nothing, and no key, reached the other host
    finally:
        await server.close()
