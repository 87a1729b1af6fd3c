"""MCP protocol revision 2026-07-28 at ``/mcp``: stateless requests beside the handshake era.

A request of this revision carries its protocol version, client capabilities
and (optionally) client info in ``params._meta``, and mirrors its version,
method and tool name in the ``MCP-Protocol-Version``, ``Mcp-Method`` and
``Mcp-Name`` headers. There is no ``initialize``, no session (an
``Mcp-Session-Id`` is ignored) and no ``ping``; ``server/discover`` tells a
client what the server speaks. :mod:`ops.surfaces.mcp` routes a POST here when
its ``MCP-Protocol-Version`` header names this revision or its ``params._meta``
names a version (:func:`is_modern`); everything else is the handshake era.

Checked in the order the specification gives (:func:`envelope`): the ``_meta``
envelope (``-32602``), the headers against the body (``-32020`` header
mismatch, a routing header sent twice included), then the version
(``-32022``, with the versions this server supports, both eras). Every
JSON-RPC error goes out with the HTTP status the transport assigns it
(:data:`STATUS`: 400, and 404 for an unknown method). Results carry
``resultType: "complete"`` and the server's info in ``_meta``; ``tools/list``
and ``server/discover`` say how long they may be cached (:func:`finish`).

The tools are those of the handshake era (:mod:`ops.surfaces.mcp_tools`),
with its 2025-11-25 rules (arguments that violate the input schema are a tool
result with ``isError``). Closing the response stream of a call stops the
reply, not the operation: a task already accepted runs on (cancel it with
``agent_cancelTask``), as over REST.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiohttp import web

from .mcp_tools import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, McpError

__all__ = ["MODERN_PROTOCOL_VERSIONS", "HANDSHAKE_PROTOCOL_VERSIONS", "HEADER_MISMATCH", "MISSING_CLIENT_CAPABILITY", "UNSUPPORTED_VERSION",
           "PROTOCOL_VERSION_KEY", "CLIENT_CAPABILITIES_KEY", "CLIENT_INFO_KEY", "SERVER_INFO_KEY", "STATUS",
           "TTL_MS", "METHODS", "is_modern", "envelope", "notification_version", "finish", "discover"]

#: the stateless revisions served
MODERN_PROTOCOL_VERSIONS = ("2026-07-28",)
#: the handshake-era revisions served (``initialize``, sessions), newest first
HANDSHAKE_PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18")
HEADER_MISMATCH, MISSING_CLIENT_CAPABILITY, UNSUPPORTED_VERSION = -32020, -32021, -32022
PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
#: the HTTP status of each JSON-RPC error code on this revision's wire (others: 200)
STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
          MISSING_CLIENT_CAPABILITY: 400, UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404}
#: how long a client may keep the tool list and the discovery result (they change with the server's version)
TTL_MS = 300_000
#: the methods of this revision (ping and initialize are gone)
METHODS = ("server/discover", "tools/list", "tools/call")

_VERSION_HEADER, _METHOD_HEADER, _NAME_HEADER = "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"
_SENTINEL = re.compile(r"^=\?base64\?(.*)\?=$")


def is_modern(request: web.Request, msg: dict[str, Any]) -> bool:
    """Whether a POSTed message is of the stateless revision: its version header names one, or its
    ``params._meta`` names a protocol version (a version this server may not serve: :func:`envelope` says so).

    Source: the request (untrusted).
    """
    if request.headers.get(_VERSION_HEADER) in MODERN_PROTOCOL_VERSIONS:
        return True
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta


def _supported() -> list[str]:
    return [*MODERN_PROTOCOL_VERSIONS, *HANDSHAKE_PROTOCOL_VERSIONS]  # a dual-era client may fall back


def _header(request: web.Request, name: str, rid: Any) -> str | None:
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise McpError(HEADER_MISMATCH, f"Header mismatch: {name} header appears more than once", id=rid, http=400)
    return values[0] if values else None


def _decoded(value: str | None) -> str | None:
    """A header value, its ``=?base64?...?=`` form decoded (None if that is malformed)."""
    if value is None:
        return None
    m = _SENTINEL.fullmatch(value)
    if m is None:
        return value
    try:
        raw = base64.b64decode(m[1], validate=True)
        return raw.decode("utf-8") if base64.b64encode(raw).decode("ascii") == m[1] else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def envelope(request: web.Request, msg: dict[str, Any], rid: Any) -> str:
    """The protocol version of a stateless request, after its envelope and headers are checked.

    Source: the request (untrusted).

    Raises:
        McpError: ``-32602`` (no ``_meta`` with the version and the client capabilities), ``-32020``
            (a header missing, sent twice, or not what the body says), ``-32022`` (a version this
            server does not serve; ``data.supported`` lists those it does): HTTP 400 each.
    """
    for name in (_VERSION_HEADER, _METHOD_HEADER, _NAME_HEADER):
        _header(request, name, rid)
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or PROTOCOL_VERSION_KEY not in meta or CLIENT_CAPABILITIES_KEY not in meta:
        raise McpError(INVALID_PARAMS, f"Invalid params: params._meta must carry {PROTOCOL_VERSION_KEY!r} and "
                                       f"{CLIENT_CAPABILITIES_KEY!r} (protocol 2026-07-28 has no initialize)",
                       id=rid, http=400)
    version = meta[PROTOCOL_VERSION_KEY]
    if request.headers.get(_VERSION_HEADER) != version:
        raise McpError(HEADER_MISMATCH, f"Header mismatch: {_VERSION_HEADER} is not the request's protocol version "
                                        f"(params._meta)", id=rid, http=400)
    if request.headers.get(_METHOD_HEADER) != msg.get("method"):
        raise McpError(HEADER_MISMATCH, f"Header mismatch: {_METHOD_HEADER} is not the request's method",
                       id=rid, http=400)
    if msg.get("method") == "tools/call" and isinstance(params, dict) and params.get("name") is not None \
            and _decoded(request.headers.get(_NAME_HEADER)) != params.get("name"):
        raise McpError(HEADER_MISMATCH, f"Header mismatch: {_NAME_HEADER} is not the tool's name", id=rid, http=400)
    if not isinstance(version, str):
        raise McpError(INVALID_PARAMS, "Invalid params: the protocol version must be a string", id=rid, http=400)
    if version not in MODERN_PROTOCOL_VERSIONS:
        raise McpError(UNSUPPORTED_VERSION, "Unsupported protocol version", id=rid, http=400,
                       data={"supported": _supported(), "requested": version[:40]})
    return version


def notification_version(request: web.Request) -> None:
    """Accept a notification of the stateless revision (202, dropped: this revision defines none a
    client sends over HTTP), unless its version header names a version this server does not serve.

    Raises:
        McpError: ``-32022`` with HTTP 400.
    """
    header = request.headers.get(_VERSION_HEADER)
    if header is not None and header not in _supported():
        raise McpError(UNSUPPORTED_VERSION, "Unsupported protocol version", http=400,
                       data={"supported": _supported(), "requested": header[:40]})


def discover(instructions: str, version: str) -> dict[str, Any]:
    """The ``server/discover`` result (before :func:`finish`)."""
    return {"supportedVersions": list(MODERN_PROTOCOL_VERSIONS), "capabilities": {"tools": {"listChanged": False}},
            "instructions": instructions}


def finish(method: str, result: dict[str, Any], server_info: dict[str, Any]) -> dict[str, Any]:
    """A result as this revision sends it: ``resultType``, the server's info in ``_meta``, and the cache
    hints of the cacheable results (the same for every caller: ``public``)."""
    out = {**result, "resultType": "complete", "_meta": {**result.get("_meta", {}), SERVER_INFO_KEY: server_info}}
    if method in ("tools/list", "server/discover"):
        out.update(ttlMs=TTL_MS, cacheScope="public")
    return out
