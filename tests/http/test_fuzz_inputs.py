"""Fuzz every operation's input over HTTP: no 5xx, every rejection in the documented shape,
and the store unchanged by any rejected request or failed job.

``LATTICE_FUZZ_EXAMPLES`` sets the examples per operation (default 60); ``-s`` prints the count.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.memory import MemoryStore
from ops.domain.contracts import REGISTRY
from ops.surfaces.app import create_app
from ops.engine.runtime import Runtime

EXAMPLES = int(os.environ.get("LATTICE_FUZZ_EXAMPLES", "60"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(["g/A", "w/x", "j/0x" + "0" * 32, "A", "", "/", "g//", "0x12", "é\u0000"]),
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=8), ch, max_size=4),
    max_leaves=12,
)

_SID = "0x" + "2" * 32  # a session id (of no session: its operations fail with not_found)
#: a valid input per operation, to mutate one field at a time
VALID: dict[str, dict[str, Any]] = {
    "agent:create": {"agentId": "N"}, "agent:update": {"agentId": "A"}, "agent:fork": {"sourceId": "A", "agentId": "F"},
    "agent:suspend": {"agentId": "A"}, "agent:resume": {"agentId": "A"}, "agent:delete": {"agentId": "D"},
    "agent:cancelTask": {"agentId": "A", "taskId": "0x" + "1" * 32}, "agent:info": {"agentId": "A"},
    "agent:list": {}, "agent:context": {"agentId": "A"}, "agent:trigger": {"agentId": "A", "wait": False},
    "agent:request": {"agentId": "A", "input": "x"}, "agent:message": {"agentId": "A", "message": "m"},
    "covia:read": {"path": "g/A"}, "covia:list": {"path": "w"}, "covia:slice": {"path": "g/A/timeline"},
    "covia:write": {"path": "w/x", "value": 1}, "covia:append": {"path": "w/l", "value": 1},
    "covia:delete": {"path": "w/x"}, "agent:history": {"agentId": "A"}, "agent:diff": {"agentId": "A", "from": 0},
    "agent:replay": {"agentId": "A", "to": 1},
    "agent:prune": {"agentId": "A", "keepLast": 1}, "agent:version": {"agentId": "A", "at": 0},
    "agent:chat": {"agentId": "A", "message": "m", "wait": False}, "agent:sessions": {"agentId": "A"},
    "agent:sessionRead": {"agentId": "A"}, "agent:renameSession": {"agentId": "A", "sessionId": _SID, "title": "t"},
    "agent:deleteSession": {"agentId": "A", "sessionId": _SID},
    "agent:compactSession": {"agentId": "A", "sessionId": _SID, "summary": "s"},
    "agent:reloadContext": {"agentId": "A", "sessionId": _SID}, "agent:query": {"agentId": "A", "question": "q"},
    "agent:summarise": {"agentId": "A"}, "agent:forkSession": {"agentId": "A", "sessionId": _SID},
    "agent:completeTask": {"agentId": "A", "taskId": "0x" + "1" * 32, "result": 1},
    "agent:failTask": {"agentId": "A", "taskId": "0x" + "1" * 32, "error": "e"},
    "agent:step": {"agentId": "A", "replies": [{"content": "x"}]},
    "agent:export": {"agentId": "A"}, "agent:import": {"agentId": "N", "bundle": ""},  # (an empty bundle: truncated)
}


class Harness:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = MemoryStore()
        self.client = self.run(self._start())
        self.tried = 0
        self.run(self.post({"operation": "agent:create", "input": {"agentId": "A", "config": {"model": {"provider": "echo"}}}}))
        self.run(self.post({"operation": "agent:suspend", "input": {"agentId": "A"}}))

    async def _start(self) -> TestClient:
        self.rt = Runtime(self.store)
        client = TestClient(TestServer(create_app(self.rt)))
        await client.start_server()
        return client

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def post(self, body: Any) -> tuple[int, Any]:
        r = await self.client.post("/api/v1/invoke", json=body)
        return r.status, await r.json()

    def snapshot(self) -> tuple:
        return list(self.store.refs("")), len(self.store)

    async def _quiesce(self) -> None:
        while self.rt.running():  # runs started by earlier payloads commit in the background
            await asyncio.sleep(0.001)

    def check(self, body: Any) -> None:
        self.tried += 1
        self.run(self._quiesce())
        before = self.snapshot()
        status, reply = self.run(self.post(body))
        assert status < 500, (body, status, reply)
        if status >= 400:
            assert isinstance(reply["errorCode"], str) and reply["errorCode"], reply
            assert isinstance(reply["error"], str) and reply["error"], reply
            self.run(self._quiesce())
            assert self.snapshot() == before, body
        elif reply["status"] == "FAILED":
            assert reply["errorCode"] and reply["error"]
            self.run(self._quiesce())
            assert self.snapshot() == before, body

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.close()


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    yield h
    print(f"\nfuzz: {h.tried} invalid or random payloads tried")
    h.close()


def test_every_operation_has_a_fuzz_seed() -> None:
    assert set(VALID) == set(REGISTRY)


@pytest.mark.parametrize("op", sorted(VALID))
def test_fuzz_operation(harness: Harness, op: str) -> None:
    fields = sorted(set(VALID[op]) | set(REGISTRY[op].input.__struct_encode_fields__))

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(
        json_values,  # a random input
        st.builds(lambda k, v: {**VALID[op], k: v}, st.sampled_from(fields), json_values),  # one field replaced
        st.builds(lambda k, v: {**VALID[op], k: v}, st.text(min_size=1, max_size=6), json_values),  # an extra field
        st.builds(lambda k: {f: v for f, v in VALID[op].items() if f != k}, st.sampled_from(fields)),  # one dropped
    ))
    def fuzz(inp: Any) -> None:
        harness.check({"operation": op, "input": inp})
    fuzz()


@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(json_values)
def test_fuzz_envelope(harness: Harness, body: Any) -> None:
    harness.check(body)
