"""JSON Schema and OpenAPI 3.1, generated from the operation contracts.

Nothing here names an operation or a route: every schema comes from
:data:`ops.domain.contracts.REGISTRY` (each contract's input and output
``msgspec.Struct``) and every path from the application's route table
(:class:`ops.surfaces.routes.Route`), so a new operation appears in the OpenAPI
document, the catalog, the MCP tool list and ``lattice schema`` at once, and a
route is documented where it is declared.

* :func:`input_json_schema`, :func:`output_json_schema`, :func:`job_json_schema`:
  self-contained JSON Schema (2020-12) documents for one operation: its input,
  its output, and the job that carries the output (the invoke reply).
* :func:`openapi_document`: the OpenAPI 3.1 document of a route table, served at
  ``GET /api/v1/openapi.json`` (:data:`ROUTES`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from aiohttp import web

from ..domain import operations as _operations  # noqa: F401  (declares every operation)
from ..domain.contracts import REGISTRY, Contract
from ..domain.errors import HTTP_STATUS
from ..domain.jobs import PUBLIC_FIELDS, STATUSES
from .common import ROUTE_TABLE
from .routes import Route, json_response, openapi_path
from .schemas import refine

__all__ = ["JSON_SCHEMA_DIALECT", "simplify", "input_json_schema", "output_json_schema", "output_schema",
           "job_json_schema", "error_json_schema", "error_object_schema", "camel_name", "openapi_document",
           "package_version", "openapi_json", "ROUTES", "prepare"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_JOB_ID = {"type": "string", "pattern": "^0x[0-9a-f]{32}$", "description": "job id: 0x + 32 hex digits"}
_MS = {"type": "integer", "description": "Unix milliseconds"}


def camel_name(contract: Contract) -> str:
    """The component name of an operation: ``agent:cancelTask`` -> ``AgentCancelTask``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", contract.key) if p)


def output_schema(contract: Contract) -> dict[str, Any]:
    """JSON Schema of the contract's output, as msgspec generates it (like :func:`ops.domain.contracts.input_schema`)."""
    return msgspec.json.schema(contract.output)


def _inline_root(schema: dict[str, Any]) -> dict[str, Any]:
    """Move a root ``{"$ref": "#/$defs/X", "$defs": ...}`` to the top, keeping the other ``$defs``."""
    ref = schema.get("$ref")
    defs = dict(schema.get("$defs", {}))
    if not isinstance(ref, str) or not ref.startswith("#/$defs/") or len(schema) > 2:
        return dict(schema)
    name = ref[len("#/$defs/"):]
    root = dict(defs[name])
    others = {k: v for k, v in defs.items() if k != name}
    if f'"#/$defs/{name}"' in json.dumps([root, others]):
        others[name] = defs[name]  # recursive: it is still referenced
    if others:
        root["$defs"] = others
    return root


def _document(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    body = _inline_root(schema)
    body.pop("title", None)
    return {"$schema": JSON_SCHEMA_DIALECT, "title": title, "description": description, **body}


def input_json_schema(contract: Contract) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of the operation's ``input``; the MCP tool's ``inputSchema``.

    With the rules the operation's handler checks beyond the Struct (:func:`ops.surfaces.schemas.refine`).
    """
    doc = _document(msgspec.json.schema(contract.input), f"{contract.key} input", contract.summary)
    doc, defs = refine(contract, doc, "#/$defs/{name}")
    if defs:
        doc["$defs"] = {**doc.get("$defs", {}), **defs}
    return doc


def output_json_schema(contract: Contract) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of the operation's ``output`` (the job's output when COMPLETE)."""
    return _document(output_schema(contract), f"{contract.key} output", contract.summary)


_CODE = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "stable snake_case code"}


def error_object_schema() -> dict[str, Any]:
    """``{code, message, path?, hint?}``: an error as a job record stores it (and an agent's ``error``)."""
    return {"type": "object", "properties": {
        "code": _CODE,
        "message": {"type": "string", "minLength": 1, "description": "what was expected, what was found, and where"},
        "path": {"type": "string", "description": "pointer into the request, e.g. $.input.agentId"},
        "hint": {"type": "string", "description": "how to fix it"}},
        "required": ["code", "message"], "additionalProperties": False}


def error_json_schema() -> dict[str, Any]:
    """The body of every rejection, the Covia venue's ``{"error": message}`` with our fields beside it:
    ``{"error", "errorCode", "path"?, "hint"?}``; ``POST /api/v1/run`` adds the failed job's ``id``, ``jobId``
    and ``status``."""
    return {"type": "object", "properties": {
        "error": {"type": "string", "minLength": 1, "description": "what was expected, what was found, and where"},
        "errorCode": _CODE,
        "path": {"type": "string", "description": "pointer into the request, e.g. $.input.agentId"},
        "hint": {"type": "string", "description": "how to fix it"},
        "id": _JOB_ID, "jobId": _JOB_ID, "status": {"enum": list(STATUSES)}},
        "required": ["error", "errorCode"], "additionalProperties": False}


#: keywords that constrain only objects, or only annotate: a schema made of them and ``type: object``
#: accepts null once ``null`` is added to its ``type``
_OBJECT_ONLY = frozenset(("type", "properties", "required", "additionalProperties", "title", "description",
                          "$comment", "default", "examples"))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null, as one schema (``type: [.., "null"]``) where that is exact, else ``anyOf``.

    One schema rather than an ``anyOf`` keeps validators on their fast path (MCP clients validate every
    ``structuredContent`` against the tool's ``outputSchema``).
    """
    if not schema:
        return {}
    if schema.get("type") == "object" and set(schema) <= _OBJECT_ONLY:
        return {**schema, "type": ["object", "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def simplify(schema: Any) -> Any:
    """An equivalent schema with ``anyOf`` of bare types folded into one ``type`` list.

    >>> simplify({"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None})
    {'default': None, 'type': ['boolean', 'null']}
    """
    if isinstance(schema, list):
        return [simplify(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: simplify(v) for k, v in schema.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and branches and "type" not in out and all(
            isinstance(b, dict) and set(b) == {"type"} and isinstance(b["type"], str) for b in branches):
        del out["anyOf"]
        out["type"] = [b["type"] for b in branches]
    return out


#: on a task or trigger job a wait returned unfinished because its agent cannot progress: why
_STUCK = {"type": "object", "description": "the agent that cannot progress (suspended with an error, or terminated)",
          "properties": {"agentId": {"type": "string"}, "status": {"type": "string"},
                         "error": {"anyOf": [{"type": "object"}, {"type": "null"}]}},
          "required": ["agentId", "status", "error"]}


def _job(contract: Contract | None, output: dict[str, Any]) -> dict[str, Any]:
    op = {"const": contract.key} if contract is not None else {"type": "string"}
    return {"type": "object", "properties": {
        "id": _JOB_ID, "jobId": _JOB_ID, "op": op, "operation": op,
        "status": {"enum": list(STATUSES)},
        "input": {"description": "the operation's input, as decoded"},
        "output": _nullable(output),
        "error": {"type": ["string", "null"], "description": "what went wrong (FAILED, CANCELLED), else null"},
        "errorCode": {**_CODE, "type": ["string", "null"]},
        "created": _MS, "updated": _MS,
        "path": {"type": "string", "description": "of the error: a pointer into the request"},
        "hint": {"type": "string", "description": "of the error: how to fix it"},
        "agentId": {"type": "string", "description": "the agent of a task or trigger job"},
        "agent": _STUCK},
        "required": list(PUBLIC_FIELDS), "additionalProperties": False}


def job_json_schema(contract: Contract) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of the job an invoke of ``contract`` replies with.

    The Covia venue's job record (``id``, ``op``, ``status``, ``output``, ``error`` the message,
    ``errorCode``, ``created``, ``updated``) beside the seed's ``jobId`` and ``operation``;
    ``output`` is the contract's output (or null until COMPLETE). This is the MCP tool's ``outputSchema``.
    """
    out = simplify(_inline_root(output_schema(contract)))
    defs = out.pop("$defs", None)
    out.pop("title", None)
    doc = {"$schema": JSON_SCHEMA_DIALECT, "title": f"{contract.key} job",
           "description": f"The job of {contract.key}: {contract.summary}",
           **_job(contract, out)}
    if defs:
        doc["$defs"] = defs
    return doc


# -- OpenAPI -------------------------------------------------------------------------

#: the invoke body's fields beside `operation` and `input` (the Covia venue's)
_ENVELOPE = {
    "wait": {"type": ["boolean", "number", "null"], "minimum": 0,
             "description": "wait for a task or trigger job to finish: true up to 120 s, a number of milliseconds"},
    "private": {"type": "boolean", "description": "drop the job's record once the reply carries it finished"},
    "ucans": {"type": ["array", "null"], "maxItems": 0,
              "description": "UCAN capability proofs: not supported (a non-empty list is refused, 400)"}}


def _components() -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-key ``{input, output}`` refs, component schemas) for every contract."""
    contracts = list(REGISTRY.values())
    types = [t for c in contracts for t in (c.input, c.output)]
    refs, comps = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    per = {c.key: {"input": refs[2 * i], "output": refs[2 * i + 1]} for i, c in enumerate(contracts)}
    return per, comps


def _required_fields(t: type) -> bool:
    info = msgspec.inspect.type_info(t)
    return any(f.required for f in getattr(info, "fields", ()))


def _needs_input(contract: Any, refined: dict[str, Any]) -> bool:
    """Whether ``{}`` (an absent or null input) fails ``contract``'s input: a required field, or refined rules
    whose every ``anyOf`` branch requires one (``agent:history``: ``agentId`` or ``threadId``)."""
    branches = refined.get("anyOf")
    return _required_fields(contract.input) or bool(branches) and all(b.get("required") for b in branches)


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


def _statuses(*codes: str) -> dict[str, Any]:
    """Error responses for rejection codes, grouped by HTTP status."""
    out: dict[str, list[str]] = {}
    for code in codes:
        out.setdefault(str(HTTP_STATUS[code]), []).append(code)
    return {status: _error_response("rejected: " + ", ".join(cs)) for status, cs in sorted(out.items())}


def _operation(route: Route) -> dict[str, Any]:
    """The OpenAPI Operation Object of a route."""
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if route.description:
        op["description"] = route.description
    if route.tags:
        op["tags"] = list(route.tags)
    if route.parameters:
        op["parameters"] = [p.openapi() for p in route.parameters]
    if route.request_body is not None:
        op["requestBody"] = dict(route.request_body)
    op["responses"] = {**route.responses, **_statuses(*route.errors)}
    return op


def _schemas() -> dict[str, Any]:
    """The component schemas: every contract's input and output, its request and job; the error; the catalog."""
    per, comps = _components()
    schemas: dict[str, Any] = dict(comps)
    refined: dict[str, Any] = {}
    for key, refs in per.items():  # the rules each handler checks beyond its input Struct
        name = refs["input"]["$ref"].rpartition("/")[2]
        schema, defs = refine(REGISTRY[key], comps[name], "#/components/schemas/{name}")
        if refined.setdefault(name, schema) != schema:
            raise ValueError(f"operations sharing the input {name} have different rules")
        schemas[name] = schema
        for d, body in defs.items():
            if schemas.setdefault(d, body) != body:
                raise ValueError(f"component {d} defined twice")
    schemas["Error"] = error_json_schema()
    schemas["ErrorObject"] = error_object_schema()
    requests, jobs = [], []
    for key, c in REGISTRY.items():
        name = camel_name(c)
        needs_input = _needs_input(c, schemas[per[key]["input"]["$ref"].rpartition("/")[2]])
        req = {"type": "object", "description": c.summary, "properties": {
            "operation": {"enum": [c.key, c.alias], "description": f"`{c.key}` (or its Covia name `{c.alias}`)"},
            # an absent or null input is {}
            "input": per[key]["input"] if needs_input else {"anyOf": [per[key]["input"], {"type": "null"}]},
            **_ENVELOPE},
            "required": ["operation", "input"] if needs_input else ["operation"],
            "additionalProperties": False}
        schemas[f"{name}Request"] = req
        schemas[f"{name}Job"] = _job(c, per[key]["output"])
        schemas[f"{name}Job"]["description"] = f"The job of {c.key}; `output` when COMPLETE."
        requests.append({"$ref": f"#/components/schemas/{name}Request"})
        jobs.append({"$ref": f"#/components/schemas/{name}Job"})
    # the branches' `operation` enums are disjoint: exactly one branch applies (no discriminator: its mapping
    # would name each branch twice, by key and by alias, which fuzzers read as two different branches)
    schemas["InvokeRequest"] = {"oneOf": requests}
    schemas["Job"] = {"oneOf": jobs}
    return schemas


def openapi_document(routes: tuple[Route, ...], server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of an HTTP API (every operation's input and output, the job, the error).

    Args:
        routes: the routes to document (those with ``documented`` set), e.g.
            :data:`ops.surfaces.app.ROUTES`.
        server_url: the base URL to publish in ``servers`` (default: ``/``, relative to the document).

    Raises:
        ValueError: two routes share a method and a path, or a route names an unknown rejection code.
    """
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not route.documented:
            continue
        methods = paths.setdefault(openapi_path(route.path), {})
        method = route.method.lower()
        if method in methods:
            raise ValueError(f"two routes for {route.method} {route.path}")
        unknown = [c for c in route.errors if c not in HTTP_STATUS]
        if unknown:
            raise ValueError(f"route {route.method} {route.path}: unknown rejection codes {unknown}")
        methods[method] = _operation(route)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {"title": "agent-lattice", "version": package_version(),
                 "description": ("An event-sourced agent state store serving the Covia agent protocol. Generated from "
                                 "the operation contracts. The same operations are MCP tools at `/mcp` "
                                 "(JSON-RPC 2.0, streamable HTTP).")},
        "servers": [{"url": server_url or "/", "description": "this server" if server_url else
                     "the server that serves this document (`lattice serve` listens on http://127.0.0.1:7770)"}],
        # a server run with --tokens wants a bearer token on every request; one without, none
        "security": [{}, {"bearer": []}],
        "paths": paths,
        "components": {"schemas": _schemas(), "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "With `lattice serve --tokens FILE`: one of the file's tokens, naming the caller. Without "
                           "--tokens there is one local caller and no token is needed. With --accept-did-auth: "
                           "also a self-issued EdDSA JWT whose sub is the caller's did:key (the Covia SDK's "
                           "Ed25519Auth); the caller is that DID."}}},
    }
    return doc


def package_version() -> str:
    """The installed agent-lattice version (``0+unknown`` in a source tree)."""
    try:
        from importlib.metadata import version
        return version("agent-lattice")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"


_DOC = web.AppKey("openapi_document", dict)


async def openapi_json(request: web.Request) -> web.Response:
    """``GET /api/v1/openapi.json``: the document of the application's routes (generated once, then cached)."""
    cache = request.app[_DOC]
    body = cache.get("json")
    if body is None:
        body = cache["json"] = msgspec.json.encode(openapi_document(request.app[ROUTE_TABLE]))
    return web.Response(body=body, content_type="application/json")


def prepare(app: web.Application) -> None:
    """Give ``app`` the document's cache."""
    app[_DOC] = {}


#: the document's route
ROUTES = (
    Route("GET", "/api/v1/openapi.json", openapi_json, "openapi", "This document",
          responses={"200": json_response("OpenAPI 3.1", {"type": "object"})}, tags=("server",)),
)
