"""Contracts: every operation declared once, served, and schema-described; job ids."""

from __future__ import annotations

import doctest

import msgspec
import pytest

from ops.domain import jobs
from ops.domain.contracts import REGISTRY, decode_input, input_schema, lookup
from ops.domain.errors import Rejected
from ops.domain.jobs import JobIds, normalize_job_id
from ops.engine.handlers import HANDLERS

SEED_OPERATIONS = {
    "agent:trigger", "agent:request", "agent:message", "agent:create", "agent:update", "agent:fork",
    "agent:suspend", "agent:resume", "agent:delete", "agent:cancelTask", "agent:info", "agent:list",
    "agent:context", "covia:read", "covia:write", "covia:delete", "covia:append", "covia:list", "covia:slice"}
VERSION_OPERATIONS = {"agent:history", "agent:version", "agent:diff", "agent:replay", "agent:prune"}
SESSION_OPERATIONS = {"agent:chat", "agent:sessions", "agent:sessionRead", "agent:renameSession", "agent:deleteSession",
                      "agent:compactSession", "agent:reloadContext", "agent:query", "agent:summarise",
                      "agent:forkSession"}
#: the venue's task operations and the dry run
VENUE_OPERATIONS = {"agent:completeTask", "agent:failTask", "agent:step"}
#: the bundles as operations (the routes' bundles, in base64)
BUNDLE_OPERATIONS = {"agent:export", "agent:import"}


def test_every_seed_operation_is_declared_and_served() -> None:
    assert set(REGISTRY) == (SEED_OPERATIONS | VERSION_OPERATIONS | SESSION_OPERATIONS | VENUE_OPERATIONS
                             | BUNDLE_OPERATIONS)
    assert set(HANDLERS) == set(REGISTRY)  # every operation served, nothing served undeclared
    for c in REGISTRY.values():
        assert callable(HANDLERS[c.key]), c.key
        assert c.summary and c.version
        schema = input_schema(c)
        assert schema  # JSON Schema generates for every input


def test_alias_and_unknown_operation() -> None:
    assert lookup("v/ops/agent/cancelTask").key == "agent:cancelTask"
    with pytest.raises(Rejected) as e:
        lookup("agent:crate")
    assert e.value.code == "unknown_operation" and "agent:create" in e.value.hint


@pytest.mark.parametrize("name", ["v/ops/secret/set", "v/ops/asset/store", "asset:get", "v/ops/ucan/issue",
                                  "/v/ops/a2a/send"])
def test_venue_only_operations_are_not_supported(name: str) -> None:
    with pytest.raises(Rejected) as e:
        lookup(name)
    assert e.value.code == "not_supported" and e.value.path == "$.operation" and "does not support" in e.value.message


@pytest.mark.parametrize("op,inp,path", [
    ("agent:request", {"agentId": "A"}, "$.input.input"),
    ("agent:request", {"agentId": "A", "input": 1, "wait": "soon"}, "$.input.wait"),
    ("covia:list", {"path": "w", "limit": 0}, "$.input.limit"),
    ("agent:create", {"agentId": "A", "confg": {}}, "$.input.confg"),
    ("agent:create", {"agentId": "a/b"}, "$.input.agentId"),
])
def test_input_errors_carry_paths(op: str, inp: dict, path: str) -> None:
    with pytest.raises(Rejected) as e:
        decode_input(lookup(op), inp)
    assert e.value.code == "invalid_input" and e.value.path == path and e.value.message


def test_wait_accepts_bool_and_milliseconds() -> None:
    assert decode_input(lookup("agent:request"), {"agentId": "A", "input": 1, "wait": 250}).wait == 250
    assert decode_input(lookup("agent:trigger"), {"agentId": "A"}).wait is True


@pytest.mark.parametrize("op,inp,path", [
    ("agent:request", {"agentId": "A", "input": 1, "timeout": -1}, "$.input.timeout"),
    ("agent:request", {"agentId": "A", "input": 1, "timeout": 1.5}, "$.input.timeout"),
    ("agent:request", {"agentId": "A", "input": 1, "responseSchema": "object"}, "$.input.responseSchema"),
    ("agent:request", {"agentId": "A", "input": 1, "strict": "yes"}, "$.input.strict"),
    ("agent:request", {"agentId": "A", "input": 1, "outputPath": 5}, "$.input.outputPath"),
    ("agent:create", {"agentId": "A", "definition": {"agent": {}}}, "$.input.definition"),
    ("agent:fork", {"sourceId": "A", "agentId": "B", "overwrite": 1}, "$.input.overwrite"),
    ("agent:trigger", {"agentId": "A", "force": "no"}, "$.input.force"),
    ("agent:cancelTask", {"agentId": "A", "taskId": "0x" + "1" * 32, "reason": 3}, "$.input.reason"),
    ("agent:message", {"agentId": "A"}, "$.input.message"),
    ("agent:failTask", {"agentId": "A", "taskId": "0x" + "1" * 32}, "$.input.error"),
    ("agent:completeTask", {"agentId": "A/B"}, "$.input.agentId"),
    ("agent:step", {"agentId": "A", "replies": []}, "$.input.replies"),
    ("agent:step", {"agentId": "A"}, "$.input.replies"),
    ("agent:step", {"agentId": "A", "replies": [{"toolCalls": [{"arguments": {}}]}]}, "$.input.replies[0].toolCalls[0].name"),
    ("agent:step", {"agentId": "A", "replies": [{"contnet": "x"}]}, "$.input.replies[0].contnet"),
])
def test_venue_input_errors_carry_paths(op: str, inp: dict, path: str) -> None:
    with pytest.raises(Rejected) as e:
        decode_input(lookup(op), inp)
    assert e.value.code == "invalid_input" and e.value.path == path and e.value.message


def test_message_takes_any_json_value() -> None:
    for message in ("text", 3, {"a": [1]}, [1, "x"], True):
        assert decode_input(lookup("agent:message"), {"agentId": "A", "message": message}).message == message


def test_job_ids_are_monotonic_within_a_millisecond() -> None:
    ids = JobIds()
    seq = [ids(1_000) for _ in range(1000)] + [ids(999)]  # clock stepping back stays monotonic
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    assert all(len(i) == 34 and i.startswith("0x") for i in seq)
    assert normalize_job_id(seq[0][2:].upper()) == seq[0]
    assert normalize_job_id("0x123") is None and normalize_job_id(5) is None


def test_output_shapes_decode() -> None:
    out = {"agentId": "A", "status": "SLEEPING", "config": {}, "taskCount": 0, "tasks": 0, "timelineLength": 0,
           "error": None}
    assert msgspec.convert(out, REGISTRY["agent:info"].output).agentId == "A"


def test_doctests() -> None:
    assert doctest.testmod(jobs).failed == 0
