"""MCP tools: every operation a tool, and the ``tools/list`` and ``tools/call`` methods.

Generated from :data:`ops.domain.contracts.REGISTRY`: each operation is a tool named
after its key (``agent:create`` -> ``agent_create``) whose ``inputSchema`` is
the contract's input schema and whose ``outputSchema`` is the job the
operation returns (:func:`ops.surfaces.openapi.job_json_schema`), both in the portable
spelling (:func:`tool_schemas`). A ``tools/call``
runs the operation exactly as ``POST /api/v1/invoke`` does, for the same
caller (:func:`ops.surfaces.common.caller_of`), and answers with the job as
``structuredContent`` plus its JSON as text. A job that ends ``FAILED``,
``CANCELLED`` or ``TIMEOUT`` is a result with ``isError: true``; the error
code is in ``structuredContent.errorCode`` (the message in ``error``). Arguments that violate the input
schema (from 2025-11-25, SEP-1303) are a result with ``isError: true`` and the
rejection body ``{"error": message, "errorCode", "path", "hint"?}`` as text only: a
``structuredContent`` must conform to the tool's ``outputSchema`` (the job), and
no job exists.

The endpoint that carries these methods is :mod:`ops.surfaces.mcp`.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import msgspec

from ..domain.contracts import REGISTRY, Contract, decode_input
from ..domain.errors import Rejected
from ..domain.jobs import CANCELLED, FAILED, TIMEOUT, public_job
from ..engine.runtime import Runtime
from .inputs import json_input
from .openapi import input_json_schema, job_json_schema
from .schemas import portable

__all__ = ["PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND", "INVALID_PARAMS", "INTERNAL_ERROR",
           "SESSION_NOT_FOUND", "McpError", "tool_name", "tool_table", "tool_schemas", "tool", "tools", "can_wait", "list_tools",
           "call_tool"]

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
#: unknown or ended session (the code the reference SDKs use, with HTTP 404)
SESSION_NOT_FOUND = -32001
#: from this version on, input validation errors are tool results (SEP-1303)
_TOOL_ERRORS_FROM = "2025-11-25"

_FAILED = frozenset((FAILED, CANCELLED, TIMEOUT))
_TOOL_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_json = msgspec.json.Encoder()


class McpError(Exception):
    """A JSON-RPC error answer (``http``: the HTTP status it travels with)."""

    def __init__(self, code: int, message: str, *, id: Any = None, http: int = 200, data: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.id, self.http, self.data, self.headers = code, message, id, http, data, headers

    def body(self) -> dict[str, Any]:
        """The JSON-RPC error response."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return {"jsonrpc": "2.0", "id": self.id, "error": err}


def tool_name(contract: Contract) -> str:
    """The MCP tool name of an operation: ``agent:create`` -> ``agent_create``.

    Characters outside ``[A-Za-z0-9_.-]`` (the tool-name alphabet) become ``_``.
    """
    return _TOOL_CHARS.sub("_", contract.key)[:128]


def tool_table() -> dict[str, Contract]:
    """``{tool name: contract}`` for every declared operation.

    Raises:
        ValueError: two operations map to one tool name.
    """
    table: dict[str, Contract] = {}
    for c in REGISTRY.values():
        name = tool_name(c)
        if name in table:
            raise ValueError(f"operations {table[name].key} and {c.key} both map to MCP tool {name}")
        table[name] = c
    return table


def tool_schemas(contract: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(inputSchema, outputSchema)`` of an operation's tool: its input and its job, in the portable spelling
    (:func:`ops.surfaces.schemas.portable`: one ``type`` per schema, nothing left unsaid), 2020-12 (MCP's
    default dialect, so without ``$schema``)."""
    inp, out = input_json_schema(contract), job_json_schema(contract)
    for s in (inp, out):
        s.pop("$schema", None)
    return portable(inp), portable(out)


def tool(contract: Contract) -> dict[str, Any]:
    """The ``tools/list`` entry of an operation."""
    inp, out = tool_schemas(contract)
    return {"name": tool_name(contract), "title": contract.key, "description": contract.summary,
            "inputSchema": inp, "outputSchema": out,
            # an operation that emits no event changes nothing
            "annotations": {"title": contract.key, "readOnlyHint": not contract.emits, "openWorldHint": False}}


def tools() -> list[dict[str, Any]]:
    """The ``tools/list`` entries, one per operation."""
    return [tool(c) for c in tool_table().values()]


def can_wait(contract: Contract) -> bool:
    """Whether the operation takes ``wait`` (its call may last: worth a streamed reply)."""
    return "wait" in getattr(contract.input, "__struct_fields__", ())


def list_tools(listed: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """The ``tools/list`` result: every tool, on one page.

    Raises:
        McpError: ``-32602`` for a cursor (there is no second page).
    """
    if params.get("cursor") is not None:
        raise McpError(INVALID_PARAMS, "Invalid params: unknown cursor (the tool list has one page)")
    return {"tools": listed}


def _rename(err: dict[str, Any]) -> dict[str, Any]:
    """Point an input error into the tool's ``arguments`` rather than the REST ``input``."""
    out = dict(err)
    for k in ("path", "error"):
        if isinstance(out.get(k), str):
            out[k] = out[k].replace("$.input", "$.arguments")
    return out


def _tool_result(structured: dict[str, Any], is_error: bool) -> dict[str, Any]:
    body = _json.encode(structured)  # encoded once: the text, and the structured content as is
    return {"content": [{"type": "text", "text": body.decode()}], "structuredContent": msgspec.Raw(body),
            "isError": is_error}


async def call_tool(runtime: Runtime, caller: str, table: dict[str, Contract], params: dict[str, Any],
                    version: str) -> dict[str, Any]:
    """The ``tools/call`` result: run the named operation for ``caller`` at protocol ``version``.

    Source: ``params`` (untrusted).

    Raises:
        McpError: ``-32602`` for an unknown tool or malformed params (and, before 2025-11-25,
            arguments that violate the input schema).
    """
    name = params.get("name")
    if not isinstance(name, str):
        raise McpError(INVALID_PARAMS, "Invalid params: `name` (a string) is required")
    contract = table.get(name)
    if contract is None:
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "tools/list shows the tools"
        raise McpError(INVALID_PARAMS, f"Invalid params: unknown tool {name[:100]!r}; {hint}",
                    data={"code": "unknown_operation", "tool": name[:100], "hint": hint})
    args = params.get("arguments")
    if args is not None and not isinstance(args, dict):
        raise McpError(INVALID_PARAMS, f"Invalid params: `arguments` must be an object, got {type(args).__name__}")
    try:
        inp = decode_input(contract, json_input(contract, args))
        job = await runtime.invoke(contract, inp, caller)
    except Rejected as e:
        err = _rename(e.body())
        if version >= _TOOL_ERRORS_FROM:  # no structuredContent: the outputSchema is the job's, and there is none
            return {"content": [{"type": "text", "text": _json.encode(err).decode()}], "isError": True}
        raise McpError(INVALID_PARAMS, f"Invalid params: {err['error']}", data=err) from None
    pub = public_job(job)
    return _tool_result(pub, pub["status"] in _FAILED)
