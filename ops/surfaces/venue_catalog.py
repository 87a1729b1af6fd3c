"""The Covia venue's catalog and discovery routes, and the venue routes this server does not have.

* ``GET /api/v1/operations``: a JSON array, one entry per operation as the venue lists them
  (``{name, asset, description, input, output}``: ``name`` the venue's catalog path
  ``v/ops/<adapter>/<kebab-name>``, ``asset`` a stable hash of the entry, ``input``/``output``
  JSON Schemas), with our fields beside: ``operation`` (the key, ``agent:cancelTask``),
  ``alias`` (= ``name``), ``version``, ``summary``, ``auth``, ``emits``, ``adapter``,
  ``toolName`` (the MCP tool).
* ``GET /api/v1/operations/{name}``: one entry, by any name of the operation (key, catalog
  path with or without URL-encoded slashes, kebab-case key); 404 ``unknown_operation``.
* ``GET /api/v1/adapters/{name}/operations``: the adapter's (``agent``, ``covia``) operations
  as ``{catalog path: metadata}``, the metadata as the venue's asset has it:
  ``{name, description, operation: {adapter: <key>, toolName, input, output}}``; 404
  ``not_found`` for an adapter this server does not have.
* ``GET /.well-known/mcp``: where and how to reach the MCP endpoint.
* Assets (``/api/v1/assets...``) and secrets (``/api/v1/secrets...``): 501 ``not_supported``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import msgspec
from aiohttp import web

from ..domain import operations as _operations  # noqa: F401  (declares every operation)
from ..domain.contracts import REGISTRY, Contract, lookup
from ..domain.errors import OpError
from .common import TOKENS, reply
from .mcp import LATEST_PROTOCOL_VERSION, PROTOCOL_VERSIONS
from .openapi import input_json_schema, output_json_schema, package_version
from .routes import Param, Route, json_response

__all__ = ["operation_info", "operations", "operation", "adapter_operations", "mcp_discovery", "not_supported",
           "ROUTES"]


@lru_cache(maxsize=None)
def _info(key: str) -> dict[str, Any]:
    c = REGISTRY[key]
    adapter = c.key.partition(":")[0]
    meta = {"name": c.alias, "description": c.summary,
            "operation": {"adapter": c.key, "toolName": c.snake_name, "input": input_json_schema(c),
                          "output": output_json_schema(c)}}
    asset = hashlib.sha256(msgspec.json.encode(meta, order="sorted")).hexdigest()
    return {"name": c.alias, "asset": asset, "description": c.summary, "input": meta["operation"]["input"],
            "output": meta["operation"]["output"], "operation": c.key, "alias": c.alias, "version": c.version,
            "summary": c.summary, "auth": c.auth, "emits": list(c.emits), "adapter": adapter,
            "toolName": c.snake_name, "meta": meta}


def operation_info(contract: Contract) -> dict[str, Any]:
    """An operation's catalog entry (see the module doc)."""
    return {k: v for k, v in _info(contract.key).items() if k != "meta"}


async def operations(request: web.Request) -> web.Response:
    """``GET /api/v1/operations``: every operation's catalog entry, as a JSON array."""
    return reply([operation_info(c) for c in REGISTRY.values()])


async def operation(request: web.Request) -> web.Response:
    """``GET /api/v1/operations/{name}``: one catalog entry.

    Raises:
        Rejected: ``unknown_operation`` (404).
    """
    return reply(operation_info(lookup(request.match_info["name"])))


async def adapter_operations(request: web.Request) -> web.Response:
    """``GET /api/v1/adapters/{name}/operations``: ``{catalog path: metadata}`` of the adapter's operations.

    Raises:
        OpError: ``not_found`` for an adapter this server does not have.
    """
    name = request.match_info["name"]
    ops = {c.alias: _info(c.key)["meta"] for c in REGISTRY.values() if c.key.partition(":")[0] == name}
    if not ops:
        adapters = sorted({k.partition(':')[0] for k in REGISTRY})
        raise OpError("not_found", f"no adapter {name[:80]!r}", hint=f"the adapters are {', '.join(adapters)}")
    return reply(ops)


async def mcp_discovery(request: web.Request) -> web.Response:
    """``GET /.well-known/mcp``: the MCP endpoint (streamable HTTP at ``/mcp``), its protocol versions and auth."""
    url = f"{request.scheme}://{request.host}/mcp"
    return reply({"mcp_version": LATEST_PROTOCOL_VERSION, "protocolVersions": list(PROTOCOL_VERSIONS),
                  "server_url": url, "tools_endpoint": url,
                  "endpoint": {"url": url, "transport": "streamable-http"},
                  "name": "agent-lattice", "version": package_version(),
                  "description": "agent-lattice: every operation (agent:*, covia:*) is an MCP tool",
                  "auth": {"type": "bearer"} if request.app.get(TOKENS) is not None else {"type": "none"}})


async def not_supported(request: web.Request) -> web.Response:
    """The venue's asset and secret routes: 501 ``not_supported``."""
    what = "assets" if request.path.startswith("/api/v1/assets") else "secrets"
    raise OpError("not_supported", f"{what} are not supported here: {request.method} {request.path[:120]} is a "
                                   "Covia venue route this server does not serve",
                  hint="agents, jobs and lattice values are served; keep data under w/ (covia:write)")


_ENTRY = {"type": "object", "required": ["name", "asset"], "properties": {
    "name": {"type": "string"}, "asset": {"type": "string"}, "description": {"type": "string"},
    "input": {"type": "object"}, "output": {"type": "object"}, "operation": {"type": "string"},
    "alias": {"type": "string"}, "version": {"type": "string"}, "summary": {"type": "string"},
    "auth": {"type": "string"}, "emits": {"type": "array", "items": {"type": "string"}},
    "adapter": {"type": "string"}, "toolName": {"type": "string"}}}
_NAME = Param("name", "path",
              {"type": "string", "pattern": "^(?:/?v/ops/[a-z]+/[a-z][a-z-]*|[a-z]+:[A-Za-z][A-Za-z-]*)$"},
              "the operation: agent:create, v/ops/agent/cancel-task, agent:cancel-task")
_ID = Param("id", "path", {"type": "string"})
_SECRET = Param("name", "path", {"type": "string"})


def _unsupported(method: str, path: str, op_id: str, params: tuple[Param, ...] = ()) -> Route:
    return Route(method, path, not_supported, op_id, "Not supported by this server (501)", parameters=params,
                 errors=("not_supported",), tags=("not supported",))


#: the catalog and discovery routes, and the venue routes answered 501
ROUTES = (
    Route("GET", "/api/v1/operations", operations, "operations",
          "The operation catalog: one entry per operation, as the Covia venue lists them",
          responses={"200": json_response("the catalog", {"type": "array", "items": _ENTRY})}, tags=("operations",)),
    Route("GET", "/api/v1/operations/{name:.+}", operation, "getOperation", "One operation's catalog entry",
          parameters=(_NAME,), responses={"200": json_response("the entry", _ENTRY)},
          errors=("unknown_operation",), tags=("operations",)),
    Route("GET", "/api/v1/adapters/{name}/operations", adapter_operations, "adapterOperations",
          "An adapter's operations: {catalog path: metadata}", parameters=(Param("name", "path", {"type": "string"}),),
          responses={"200": json_response("the operations", {"type": "object", "additionalProperties": {
              "type": "object", "required": ["name", "operation"]}})},
          errors=("not_found",), tags=("operations",)),
    Route("GET", "/.well-known/mcp", mcp_discovery, "mcpDiscovery", "MCP discovery: the endpoint and its versions",
          responses={"200": json_response("discovery", {"type": "object", "required": ["mcp_version", "server_url"]})},
          tags=("server",)),
    _unsupported("GET", "/api/v1/assets", "listAssets"),
    _unsupported("POST", "/api/v1/assets", "addAsset"),
    _unsupported("GET", "/api/v1/assets/{id}", "getAsset", (_ID,)),
    _unsupported("GET", "/api/v1/assets/{id}/content", "getAssetContent", (_ID,)),
    _unsupported("PUT", "/api/v1/assets/{id}/content", "putAssetContent", (_ID,)),
    _unsupported("GET", "/api/v1/secrets", "listSecrets"),
    _unsupported("PUT", "/api/v1/secrets/{name}", "putSecret", (_SECRET,)),
    _unsupported("DELETE", "/api/v1/secrets/{name}", "deleteSecret", (_SECRET,)),
)
