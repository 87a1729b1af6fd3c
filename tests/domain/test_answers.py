"""Tests of :mod:`ops.domain.answers`: checking a task's answer against its ``responseSchema``,
and the shapes an ``agent:request`` job answers with."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from ops.domain import answers
from ops.domain.answers import check_answer, request_output, schema_problem


@pytest.mark.parametrize("schema", [
    {"type": "object"},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "integer"}}},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "items": {"type": "string"}},
    {},
])
def test_valid_schemas(schema: dict[str, Any]) -> None:
    assert schema_problem(schema) is None


@pytest.mark.parametrize("schema, words", [
    ({"type": "objekt"}, "not a JSON Schema"),
    ({"properties": {"a": {"minimum": "x"}}}, "properties/a/minimum"),
    ({"$ref": "https://example.com/s.json"}, "does not point into the schema"),
    ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "#/$defs/missing"),
    ({"items": [{"$ref": "#/items/5"}]}, "#/items/5"),
])
def test_schema_problems_are_named(schema: dict[str, Any], words: str) -> None:
    problem = schema_problem(schema)
    assert problem is not None and words in problem


@pytest.mark.parametrize("schema, answer, kept", [
    ({"type": "object"}, '{"a": 1}', {"a": 1}),  # JSON text decoded
    ({"type": "string"}, "42", "42"),  # matches as it is: not decoded
    ({"type": "integer"}, "42", 42),
    ({"type": "array"}, [1, 2], [1, 2]),
])
def test_matching_answers(schema: dict[str, Any], answer: Any, kept: Any) -> None:
    assert check_answer(schema, answer) == (kept, None)


def test_a_mismatch_points_into_the_answer_and_the_schema() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    kept, err = check_answer(schema, {"items": [1, "two"]})
    assert kept == {"items": [1, "two"]}
    assert err["code"] == "schema_mismatch"
    assert err["answerPath"] == "$.items[1]" and err["schemaPath"] == "#/properties/items/items/type"
    assert err["path"] == "$.input.responseSchema.properties.items.items.type"  # into the request, as paths are
    assert "$.items[1]" in err["hint"]
    assert "'two' is not of type 'integer'" in err["message"]


def test_an_unresolvable_ref_is_a_mismatch_not_a_crash() -> None:
    _, err = check_answer({"$ref": "https://example.com/s.json"}, 1)
    assert err["code"] == "schema_mismatch" and "cannot be applied" in err["message"]


@pytest.mark.parametrize("answer", ["text", 3, None, [1], True])
def test_a_non_map_answer_is_wrapped(answer: Any) -> None:
    assert request_output("0x01", "A", answer) == {"id": "0x01", "jobId": "0x01", "agentId": "A",
                                                   "status": "COMPLETE", "output": answer}


def test_a_map_answer_is_the_output() -> None:
    assert request_output("0x01", "A", {"answer": 1}) == {"answer": 1}


def test_a_session_tasks_wrapped_answer_says_its_session() -> None:
    assert request_output("0x01", "A", "hi", "0x02")["sessionId"] == "0x02"
    assert request_output("0x01", "A", {"a": 1}, "0x02") == {"a": 1}


def test_doctests() -> None:
    assert doctest.testmod(answers).failed == 0
