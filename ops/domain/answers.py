"""A task's answer: its check against the request's ``responseSchema``, and the output an
``agent:request`` job completes with (an unfinished one is answered as its job, which carries the
venue's snapshot fields ``{id, status, agentId}``: :func:`ops.domain.jobs.public_job`).

Pure: the schema check is :mod:`jsonschema` (no remote ``$ref`` is ever fetched: the
``referencing`` registry it uses retrieves nothing by default).
"""

from __future__ import annotations

from typing import Any

import msgspec
from jsonschema import exceptions, validators
from referencing.exceptions import Unresolvable

__all__ = ["TASK_OPTIONS", "schema_problem", "check_answer", "request_output"]

#: the ``agent:request`` options a task record keeps beside its ``input``
TASK_OPTIONS = ("responseSchema", "strict", "outputPath")


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` cannot check answers, or None: not a valid JSON Schema (its dialect from
    ``$schema``, default 2020-12), or a ``$ref`` that is not a pointer into the schema itself
    (nothing is fetched) or points at nothing. Source of ``schema``: the caller."""
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as e:
        where = "/".join(str(p) for p in e.path)
        return f"responseSchema is not a JSON Schema: {e.message}" + (f" - at `{where}`" if where else "")
    stack: list[Any] = [schema]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            ref = v.get("$ref")
            if isinstance(ref, str) and not _resolves(schema, ref):
                return f"responseSchema: $ref {ref!r} does not point into the schema (only local #/... refs are used)"
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _resolves(schema: Any, ref: str) -> bool:
    """Whether ``ref`` is a JSON pointer (``#/a/b``) to a part of ``schema``."""
    if ref == "#":
        return True
    if not ref.startswith("#/"):
        return False
    node = schema
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _pointer(parts: Any) -> str:
    return "#/" + "/".join(str(p) for p in parts)


def _json_path(root: str, parts: Any) -> str:
    """``parts`` (keys and indexes) below ``root`` as a JSON path: ``$.a[0]``-style."""
    out = root
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def check_answer(schema: dict[str, Any], answer: Any) -> tuple[Any, dict[str, Any] | None]:
    """The answer as the task keeps it, and the first mismatch with ``schema`` (None when it matches).

    A string answer that does not match as it is but holds JSON (a model asked for structured
    output answers JSON text) is decoded first. Source of ``answer``: the model (untrusted).

    Returns:
        ``(answer, error)``: ``error`` is ``{code: "schema_mismatch", message, path, hint,
        schemaPath, answerPath}``: ``path`` points at the failing keyword in the request's
        ``responseSchema`` (``$.input.responseSchema.properties.n.type``), ``schemaPath`` is the
        same as a JSON pointer into the schema (``#/properties/n/type``), ``answerPath`` points
        into the answer (``$`` is the answer).
    """
    validator = validators.validator_for(schema)(schema)
    value = answer
    try:
        err = exceptions.best_match(validator.iter_errors(answer))
        if err is not None and isinstance(answer, str):
            try:
                value = msgspec.json.decode(answer)
            except msgspec.DecodeError:
                pass
            else:
                err = exceptions.best_match(validator.iter_errors(value))
    except Unresolvable as e:  # schema_problem refuses such schemas; kept for a schema stored before it did
        return value, {"code": "schema_mismatch", "message": f"responseSchema cannot be applied: {e}",
                       "path": "$.input.responseSchema", "schemaPath": "#", "answerPath": "$"}
    if err is None:
        return value, None
    pointer = _pointer(err.schema_path)
    message = (f"the answer does not match responseSchema: {err.message} - at `{err.json_path}` of the answer "
               f"(schema {pointer})")
    return value, {"code": "schema_mismatch", "message": message,
                   "path": _json_path("$.input.responseSchema", err.schema_path),
                   "hint": f"the answer at `{err.json_path}` fails the schema's {pointer}",
                   "schemaPath": pointer, "answerPath": err.json_path}


def request_output(task_id: str, agent_id: str, answer: Any, session_id: str | None = None) -> Any:
    """The output of an ``agent:request`` job its agent completed: the answer itself when it is a
    map (the agent's structured response), else the answer wrapped as
    ``{id, jobId, agentId, status: "COMPLETE", output: <answer>, sessionId?}`` (a request's output
    is an object; ``sessionId``: the session the task belonged to, if any).

    >>> request_output("0x01", "A", {"answer": 42})
    {'answer': 42}
    >>> request_output("0x01", "A", "hi")["output"]
    'hi'
    """
    if isinstance(answer, dict):
        return answer
    out = {"id": task_id, "jobId": task_id, "agentId": agent_id, "status": "COMPLETE", "output": answer}
    return out if session_id is None else {**out, "sessionId": session_id}
