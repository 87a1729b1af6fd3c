"""What a config and a state may hold, and where model requests may go.

A config key the framework does not know is refused with a "did you mean" hint (a typo
would otherwise be kept and silently ignored). With strict model connections (the
server has tokens: several callers), model requests go only to endpoints the
operator declared and each key only to its own endpoint.
"""

from __future__ import annotations

from typing import Any

import pytest

from lattice.memory import MemoryStore
from ops.domain.errors import Rejected
from ops.domain.models import Connection, Connections, LlmReply
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out, read

DECLARED = {"oa": Connection(baseUrl="https://api.openai.com/v1", apiKeyEnv="OPENAI_API_KEY"),
            "local": Connection(baseUrl="http://127.0.0.1:4000/v1")}
EVIL = "http://evil.example/v1"


class Recorder:
    """An adapter factory that records the model refs it is asked for and answers ``ok``."""

    def __init__(self) -> None:
        self.models: list[Any] = []

    def __call__(self, model: Any) -> Any:
        self.models.append(model)

        class _A:
            async def complete(self, request):
                return LlmReply(content="ok")
        return _A()


async def runtime(strict: bool, factory: Any = None) -> Runtime:
    rt = Runtime(MemoryStore(), connections=Connections(DECLARED, strict), adapter_factory=factory or Recorder())
    await rt.start()
    return rt


@pytest.mark.parametrize("config, path, hint", [
    ({"systemPromt": "Be terse"}, "$.input.config.systemPromt", "did you mean `systemPrompt`?"),
    ({"model": {"provider": "openai", "model": "m", "baseURL": "x"}}, "$.input.config.model.baseURL",
     "did you mean `baseUrl`?"),
    ({"model": {"provider": "scripted", "rules": [{"whne": "x", "content": "y"}]}},
     "$.input.config.model.rules[0].whne", "did you mean `when`?"),
    ({"model": {"provider": "scripted", "rules": [{"toolCalls": [{"name": "x", "argumnets": {}}]}]}},
     "$.input.config.model.rules[0].toolCalls[0].argumnets", "did you mean `arguments`?"),
])
@pytest.mark.parametrize("op", ["agent:create", "agent:update", "agent:fork"])
async def test_unknown_config_keys_are_refused_with_a_hint(op: str, config: dict, path: str, hint: str) -> None:
    rt = await runtime(strict=False)
    await out(rt, "agent:create", agentId="S")
    before = dict(rt.store.refs(""))
    inp = {"agent:create": {"agentId": "A"}, "agent:update": {"agentId": "S"},
           "agent:fork": {"sourceId": "S", "agentId": "A"}}[op]
    with pytest.raises(Rejected) as e:
        await call(rt, op, **inp, config=config)
    assert (e.value.code, e.value.path, e.value.hint) == ("invalid_config", path, hint)
    assert dict(rt.store.refs("")) == before  # nothing changed
    await rt.close()


async def test_free_form_keys_are_kept() -> None:
    rt = await runtime(strict=False)
    await out(rt, "agent:create", agentId="A", config={"description": "d", "metadata": {"team": ["x"] * 40}})
    assert await read(rt, "g/A/state/config/metadata/team/39") == "x"
    await rt.close()


async def test_a_template_or_workspace_config_with_an_unknown_key_fails_the_job() -> None:
    rt = await runtime(strict=False)
    await out(rt, "covia:write", path="w/cfg", value={"systemPromt": "x"})
    job = await call(rt, "agent:create", agentId="A", config="w/cfg")
    assert job["status"] == "FAILED" and job["error"]["code"] == "invalid_config"
    assert job["error"]["hint"] == "did you mean `systemPrompt`?" and await read(rt, "g/A") is None
    await rt.close()


@pytest.mark.parametrize("state, path", [(5, "$.input.state"), ("text", "$.input.state"), ([1, 2], "$.input.state"),
                                         ({"config": {"systemPrompt": "x"}}, "$.input.state.config")])
async def test_state_must_be_a_map_of_own_keys(state: Any, path: str) -> None:
    rt = await runtime(strict=False)
    await out(rt, "agent:create", agentId="S")
    before = dict(rt.store.refs(""))
    for op, inp in (("agent:create", {"agentId": "A"}), ("agent:update", {"agentId": "S"})):
        with pytest.raises(Rejected) as e:
            await call(rt, op, **inp, state=state)
        assert e.value.code == "invalid_input" and e.value.path == path and e.value.hint
    assert dict(rt.store.refs("")) == before
    await rt.close()


def openai(**kw: Any) -> dict:
    return {"model": {"provider": "openai", "model": "gpt-test", **kw}}


@pytest.mark.parametrize("config, code", [
    (openai(baseUrl=EVIL), "forbidden"),  # the operator's key (the default variable) to an address of the caller's
    (openai(baseUrl=EVIL, apiKeyEnv=None), "forbidden"),  # a request to an address of the caller's choosing
    (openai(baseUrl="https://api.openai.com/v1", apiKeyEnv="OTHER_API_KEY"), "forbidden"),  # another key
    (openai(baseUrl="http://127.0.0.1:4000/v1", apiKeyEnv="OPENAI_API_KEY"), "forbidden"),  # a key to another host
    (openai(connection="nope"), "invalid_config"),
    (openai(connection="oa", baseUrl=EVIL), "invalid_config"),
])
@pytest.mark.parametrize("op", ["agent:create", "agent:update", "agent:fork"])
async def test_strict_connections_refuse_undeclared_endpoints(op: str, config: dict, code: str) -> None:
    rt = await runtime(strict=True)
    await out(rt, "agent:create", agentId="S")
    before = dict(rt.store.refs("g/"))
    inp = {"agent:create": {"agentId": "A"}, "agent:update": {"agentId": "S"},
           "agent:fork": {"sourceId": "S", "agentId": "A"}}[op]
    job = await call(rt, op, **inp, config=config)
    assert job["status"] == "FAILED" and job["error"]["code"] == code, job
    assert job["error"]["path"].startswith("$.input.config.model") and job["error"]["hint"]
    assert dict(rt.store.refs("g/")) == before
    await rt.close()


@pytest.mark.parametrize("config", [openai(connection="oa"), openai(), openai(baseUrl="https://api.openai.com/v1/"),
                                    openai(baseUrl="http://127.0.0.1:4000/v1", apiKeyEnv=None)])
async def test_strict_connections_serve_declared_endpoints(config: dict) -> None:
    rec = Recorder()
    rt = await runtime(strict=True, factory=rec)
    await out(rt, "agent:create", agentId="A", config=config)
    job = await call(rt, "agent:request", agentId="A", input="hi", wait=True)
    assert job["status"] == "COMPLETE", job
    model = rec.models[-1]
    assert any(model.baseUrl.rstrip("/") == c.baseUrl and model.apiKeyEnv == c.apiKeyEnv for c in DECLARED.values())
    await rt.close()


async def test_without_strict_connections_inline_endpoints_work_and_connections_resolve() -> None:
    rec = Recorder()
    rt = await runtime(strict=False, factory=rec)
    await out(rt, "agent:create", agentId="A", config=openai(baseUrl="http://127.0.0.1:9/v1", apiKeyEnv=None))
    await out(rt, "agent:create", agentId="B", config=openai(connection="local"))
    for a in ("A", "B"):
        assert (await call(rt, "agent:request", agentId=a, input="hi", wait=True))["status"] == "COMPLETE"
    assert [(m.baseUrl, m.apiKeyEnv) for m in rec.models] == [("http://127.0.0.1:9/v1", None),
                                                                ("http://127.0.0.1:4000/v1", None)]
    await rt.close()


async def test_an_agent_made_before_tokens_were_on_cannot_reach_an_undeclared_endpoint() -> None:
    store = MemoryStore()
    rt = Runtime(store, connections=Connections(DECLARED, False), adapter_factory=Recorder())
    await rt.start()
    await out(rt, "agent:create", agentId="A", config=openai(baseUrl=EVIL))
    await rt.close()
    rec = Recorder()
    rt = Runtime(store, connections=Connections(DECLARED, True), adapter_factory=rec)
    await rt.start()
    job = await call(rt, "agent:request", agentId="A", input="hi", wait=True)
    info = await out(rt, "agent:info", agentId="A")
    assert job["status"] == "PENDING" and info["status"] == "SUSPENDED"
    assert info["errorCode"] == "llm_config" and "declared" in info["error"]
    assert rec.models == []  # no adapter was even made for it
    await rt.close()
