"""MCP server at ``/mcp``: JSON-RPC 2.0 over the streamable-HTTP transport, every operation a tool.

The tools (every operation, called as ``POST /api/v1/invoke`` would for the same
caller) are :mod:`ops.surfaces.mcp_tools`; this module is the endpoint: the
JSON-RPC framing, the protocol versions, the sessions and the reply modes.

Protocol, handshake era: ``initialize`` (versions :data:`PROTOCOL_VERSIONS`;
any other requested version is answered with the newest one, as the lifecycle
requires, and the client decides), ``notifications/initialized``, ``ping``,
``tools/list``, ``tools/call``; every other method is ``-32601``.
``initialize`` opens a session whose id comes back in ``Mcp-Session-Id``;
later requests must carry it (400 without, 404 for an unknown or ended
session; ``DELETE /mcp`` ends one). Stateless era (2026-07-28,
:mod:`ops.surfaces.mcp_modern`): a request that names that version in its
``MCP-Protocol-Version`` header or its ``params._meta`` is served on its own,
without a session: ``server/discover``, ``tools/list``, ``tools/call``. A
dual-era client's ``server/discover`` probe therefore finds the new revision.
``GET /mcp`` (a server stream) is 405: this server sends no requests or
notifications of its own.

Bad input, each answered with the JSON-RPC error the spec defines and
nothing in the store changed: unparseable JSON ``-32700`` (HTTP 400); a batch,
or anything that is not a JSON-RPC 2.0 message, ``-32600`` (HTTP 400; batches
were removed from MCP in 2025-06-18); an unknown method ``-32601``; an unknown
tool or malformed ``tools/call`` params ``-32602``. Arguments that violate a
tool's input schema depend on the negotiated version: ``-32602`` with the
error in ``data`` in 2025-06-18; from 2025-11-25 (SEP-1303) a tool result
with ``isError: true`` and the rejection body ``{"error", "errorCode", "path", "hint"?}``
as its text (no ``structuredContent``: it would have to be a job), so that a
model can correct itself.

Results are ``application/json`` or a ``text/event-stream`` of one
``message`` event, per ``app[RESPONSE_MODE]``: ``"json"``, ``"sse"``, or
``"auto"`` (default: SSE for a ``tools/call`` of an operation that can wait,
with heartbeat comments while it runs; JSON otherwise), within what the
client's ``Accept`` allows. The ``initialize`` reply and the errors sent
with an HTTP error status are always JSON. A call is never cancelled when its client goes away (it finishes
as it would over REST). A request with an ``Origin`` header must come from
a loopback origin or one the server allows, and without tokens its ``Host`` must name this server
(``create_app(allowed_origins=..., allowed_hosts=...)``); 403 otherwise: DNS rebinding protection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import OrderedDict
from typing import Any

import msgspec
from aiohttp import web

from ..domain.contracts import Contract
from .common import (HOST_HINT, MAX_BODY, RUNTIME, SHUTDOWN, ShuttingDown, caller_of, host_allowed, origin_allowed,
                     reply, unless_shutdown, wait_or_shutdown)
from .mcp_tools import (INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
                        SESSION_NOT_FOUND, McpError, call_tool, can_wait, list_tools, tool, tool_name, tool_schemas,
                        tool_table, tools)
from .mcp_modern import (HANDSHAKE_PROTOCOL_VERSIONS, METHODS, MODERN_PROTOCOL_VERSIONS, STATUS, discover, envelope,
                         finish, is_modern, notification_version)
from .inputs import json_error
from .openapi import package_version
from .routes import Route
from .sse import DEFAULT_HEARTBEAT, HEARTBEAT, EventStream, accept_quality

__all__ = ["PROTOCOL_VERSIONS", "MODERN_PROTOCOL_VERSIONS", "LATEST_PROTOCOL_VERSION", "SESSION_HEADER", "VERSION_HEADER", "RESPONSE_MODE",
           "MAX_SESSIONS", "PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND",
           "INVALID_PARAMS", "INTERNAL_ERROR", "SESSION_NOT_FOUND", "tool_name", "tool_table", "tool_schemas", "tools",
           "Sessions",
           "handle_post", "handle_delete", "handle_get", "ROUTES", "prepare"]

log = logging.getLogger("lattice.mcp")

#: handshake-era protocol versions served, newest first (2026-07-28: :mod:`ops.surfaces.mcp_modern`)
PROTOCOL_VERSIONS = HANDSHAKE_PROTOCOL_VERSIONS
LATEST_PROTOCOL_VERSION = PROTOCOL_VERSIONS[0]
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"


#: ``"json"``, ``"sse"`` or ``"auto"``
RESPONSE_MODE = web.AppKey("mcp_response_mode", str)
#: open sessions kept (least recently used ones are ended beyond it)
MAX_SESSIONS = 4096

_TOOLS = web.AppKey("mcp_tools", dict)
_json = msgspec.json.Encoder()


# -- sessions ------------------------------------------------------------------------

class _Session(msgspec.Struct):
    version: str
    created: float
    initialized: bool = False


class Sessions:
    """Open MCP sessions, each belonging to the caller that opened it: ``(caller, id) -> negotiated
    version``; at most ``limit`` per caller (its least recently used ended first), so one caller can
    neither use, end nor crowd out another's."""

    def __init__(self, limit: int = MAX_SESSIONS):
        self.limit = limit
        self._open: dict[str, OrderedDict[str, _Session]] = {}

    def open(self, caller: str, version: str) -> str:
        """Open a session of ``caller`` at protocol ``version``; its new id."""
        sid = secrets.token_hex(16)
        mine = self._open.setdefault(caller, OrderedDict())
        mine[sid] = _Session(version, time.time())
        while len(mine) > self.limit:
            mine.popitem(last=False)
        return sid

    def get(self, caller: str, sid: str) -> _Session | None:
        """``caller``'s session ``sid`` (now its most recently used), or None."""
        mine = self._open.get(caller)
        s = None if mine is None else mine.get(sid)
        if s is not None:
            mine.move_to_end(sid)
        return s

    def close(self, caller: str, sid: str) -> bool:
        """End ``caller``'s session ``sid``; whether it was open."""
        mine = self._open.get(caller)
        return mine is not None and mine.pop(sid, None) is not None

    def __len__(self) -> int:
        return sum(len(m) for m in self._open.values())


_SESSIONS = web.AppKey("mcp_sessions", Sessions)


# -- JSON-RPC framing ----------------------------------------------------------------

def _fail_reply(f: McpError) -> web.Response:
    return reply(f.body(), f.http, f.headers)


def _valid_id(v: Any) -> bool:
    return (isinstance(v, str) or isinstance(v, int)) and not isinstance(v, bool)


def _check_origin(request: web.Request) -> None:
    if not host_allowed(request):
        raise McpError(INVALID_REQUEST, f"Forbidden: Host {request.headers['Host'][:100]!r} is not a name of this "
                                     f"server; {HOST_HINT}", http=403)
    if not origin_allowed(request):
        raise McpError(INVALID_REQUEST, f"Forbidden: origin {request.headers['Origin'][:100]!r} is not allowed "
                                     f"(loopback origins and the server's allowed origins are)", http=403)


@functools.lru_cache(maxsize=256)
def _acceptable(accept: str | None) -> tuple[bool, bool]:
    return accept_quality(accept, "application/json") > 0, accept_quality(accept, "text/event-stream") > 0


def _negotiate(request: web.Request) -> tuple[bool, bool]:
    """(client accepts JSON, client accepts SSE); neither is 406."""
    accept = request.headers.get("Accept")
    json_ok, sse_ok = _acceptable(accept) if accept is None or len(accept) <= 200 else _acceptable.__wrapped__(accept)
    if not json_ok and not sse_ok:
        raise McpError(INVALID_REQUEST, "Not Acceptable: the client must accept application/json and/or "
                                     "text/event-stream", http=406)
    return json_ok, sse_ok


# -- the endpoint --------------------------------------------------------------------

async def handle_post(request: web.Request) -> web.StreamResponse:
    """``POST /mcp``: one JSON-RPC message (request, notification or response).

    Source: the body and headers (untrusted).
    """
    try:
        return await _post(request)
    except McpError as f:
        return _fail_reply(f)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return _fail_reply(McpError(INVALID_REQUEST, f"request body over the limit of {limit} bytes", http=413))


async def _post(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    json_ok, sse_ok = _negotiate(request)
    body = await request.read()
    try:
        msg = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise McpError(PARSE_ERROR, f"Parse error: {json_error(body, e)}", http=400) from None
    except RecursionError:
        raise McpError(PARSE_ERROR, "Parse error: JSON nested too deeply", http=400) from None
    if isinstance(msg, list):
        raise McpError(INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported (MCP removed them in "
                                     "2025-06-18); send one message per POST", http=400)
    if not isinstance(msg, dict):
        raise McpError(INVALID_REQUEST, f"Invalid Request: expected a JSON-RPC object, got {type(msg).__name__}",
                    http=400)
    rid = msg.get("id") if _valid_id(msg.get("id")) else None
    if msg.get("jsonrpc") != "2.0":
        raise McpError(INVALID_REQUEST, 'Invalid Request: `jsonrpc` must be "2.0"', id=rid, http=400)
    if is_modern(request, msg):
        try:
            return await _post_modern(request, msg, rid, json_ok, sse_ok)
        except McpError as f:  # every error with the status this revision gives its code
            f.http = STATUS.get(f.code, 200) if f.http == 200 else f.http
            raise
    if "method" not in msg:
        if "id" in msg and ("result" in msg or "error" in msg):  # a response: we send no requests, so nothing awaits it
            _session(request, required=False)
            return web.Response(status=202)
        raise McpError(INVALID_REQUEST, "Invalid Request: a message needs `method` (request, notification) or "
                                     "`result`/`error` (response)", id=rid, http=400)
    method = msg["method"]
    if not isinstance(method, str):
        raise McpError(INVALID_REQUEST, "Invalid Request: `method` must be a string", id=rid, http=400)
    if "id" not in msg:  # a notification: never answered
        s = _session(request, required=False)
        if method == "notifications/initialized" and s is not None:
            s.initialized = True
        return web.Response(status=202)
    if not _valid_id(msg["id"]):
        raise McpError(INVALID_REQUEST, "Invalid Request: `id` must be a string or an integer", http=400)
    params = msg.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        code = INVALID_PARAMS if isinstance(params, list) else INVALID_REQUEST
        raise McpError(code, "Invalid params: `params` must be an object", id=rid,
                    http=200 if code == INVALID_PARAMS else 400)
    if method == "initialize":
        return _initialize(request, rid, params)
    handler = _METHODS.get(method)
    if handler is None:
        raise McpError(METHOD_NOT_FOUND, f"Method not found: {method[:100]!r}", id=rid,
                    data={"supported": sorted(["initialize", *_METHODS])})
    session = _session(request, required=method != "ping", rid=rid)
    version = session.version if session is not None else LATEST_PROTOCOL_VERSION
    header = request.headers.get(VERSION_HEADER)
    if header is not None and header not in PROTOCOL_VERSIONS:
        raise McpError(INVALID_REQUEST, f"Bad Request: unsupported {VERSION_HEADER} {header[:40]!r}; "
                                     f"supported: {', '.join(PROTOCOL_VERSIONS)}", id=rid, http=400)
    return await _dispatch(request, rid, method, params, handler(request, params, version), json_ok, sse_ok)


async def _post_modern(request: web.Request, msg: dict[str, Any], rid: Any, json_ok: bool,
                       sse_ok: bool) -> web.StreamResponse:
    """A message of the stateless revision (:mod:`ops.surfaces.mcp_modern`): no session, its own envelope."""
    method = msg.get("method")
    if not isinstance(method, str):
        raise McpError(INVALID_REQUEST, "Invalid Request: the body must be one JSON-RPC request or notification",
                       id=rid, http=400)
    if "id" not in msg:  # a notification: accepted and dropped
        notification_version(request)
        return web.Response(status=202)
    if not _valid_id(msg["id"]):
        raise McpError(INVALID_REQUEST, "Invalid Request: `id` must be a string or an integer", http=400)
    version = envelope(request, msg, rid)
    handler = _MODERN_METHODS.get(method)
    if handler is None:
        hint = "; protocol 2026-07-28 has no initialize: call server/discover" if method == "initialize" else ""
        raise McpError(METHOD_NOT_FOUND, f"Method not found: {method[:100]!r}{hint}", id=rid,
                       data={"supported": list(METHODS)})
    params = msg["params"]

    async def work() -> dict[str, Any]:
        return finish(method, await handler(request, params, version), _server_info())
    return await _dispatch(request, rid, method, params, work(), json_ok, sse_ok)


async def _dispatch(request: web.Request, rid: Any, method: str, params: dict[str, Any], work: Any, json_ok: bool,
                    sse_ok: bool) -> web.StreamResponse:
    """Answer a request with the result of ``work``, as JSON or as an event stream (``app[RESPONSE_MODE]``)."""
    mode = request.app.get(RESPONSE_MODE, "auto")
    contract = _call_target(request, method, params)
    stream = sse_ok and (not json_ok or mode == "sse" or (mode == "auto" and contract is not None
                                                          and can_wait(contract)))
    if not stream:
        try:
            result = await unless_shutdown(request, work)
        except ShuttingDown:
            raise _shutting_down(rid) from None
        except McpError as f:
            f.id = rid
            raise
        except Exception:
            log.exception("MCP %s failed", method)
            raise McpError(INTERNAL_ERROR, "Internal error; see the server log", id=rid, http=500) from None
        return reply({"jsonrpc": "2.0", "id": rid, "result": result})
    return await _stream_reply(request, rid, work)


async def _stream_reply(request: web.Request, rid: Any, work: Any) -> web.StreamResponse:
    """Answer on a ``text/event-stream``: heartbeats while ``work`` runs, then one ``message`` event.

    A reply ready within one heartbeat goes out as one plain response. ``work``
    is not cancelled when the client goes (an operation stopped half-way could
    leave its commit without its follow-up): it finishes unobserved, as it would
    over REST. When the application shuts down, the reply is a ``-32603`` error.
    """
    task = asyncio.ensure_future(work)
    beat = request.app.get(HEARTBEAT, DEFAULT_HEARTBEAT)
    if not await wait_or_shutdown({task}, beat, request.app.get(SHUTDOWN)):
        task.cancel()  # the runtime is closing: its run loops end too
        raise _shutting_down(rid)
    if task.done():
        if not task.cancelled() and isinstance(task.exception(), McpError):  # a quick error: JSON, with its status
            err = task.exception()
            err.id = rid
            raise err
        return web.Response(body=b"event: message\ndata: " + _json.encode(_outcome(task, rid)) + b"\n\n",
                            content_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    stream = await EventStream(request).open()
    try:
        while not task.done():
            await stream.comment()
            if not await wait_or_shutdown({task}, beat, request.app.get(SHUTDOWN)):
                task.cancel()
                await stream.send("message", _shutting_down(rid).body())
                break
        else:
            await stream.send("message", _outcome(task, rid))
    except ConnectionResetError:
        log.debug("MCP client went away before the reply")
    await stream.close()
    return stream.response


def _shutting_down(rid: Any) -> McpError:
    return McpError(INTERNAL_ERROR, "Internal error: the server is shutting down before the call finished; "
                                    "read its outcome once it is back", id=rid, http=503, headers={"Retry-After": "5"})


def _outcome(task: asyncio.Future, rid: Any) -> dict[str, Any]:
    """The JSON-RPC response for a finished method call."""
    try:
        return {"jsonrpc": "2.0", "id": rid, "result": task.result()}
    except McpError as f:
        f.id = rid
        return f.body()
    except Exception:
        log.exception("MCP request failed")
        return McpError(INTERNAL_ERROR, "Internal error", id=rid).body()


def _session(request: web.Request, *, required: bool, rid: Any = None) -> _Session | None:
    sid = request.headers.get(SESSION_HEADER)
    if sid is None:
        if required:
            raise McpError(INVALID_REQUEST, f"Bad Request: missing {SESSION_HEADER} header; send `initialize` first",
                        id=rid, http=400)
        return None
    s = request.app[_SESSIONS].get(caller_of(request), sid)
    if s is None:
        raise McpError(SESSION_NOT_FOUND, "Session not found: it ended or never existed; send `initialize` again",
                    id=rid, http=404)
    return s


#: what a model is told about the tools (initialize, server/discover)
INSTRUCTIONS = ("Every agent-lattice operation is a tool (agent:create is agent_create). Each call returns the "
                "operation's job: structuredContent.output is the result; a job that ends FAILED is isError with "
                "structuredContent.errorCode (and the message in error). Read any state with covia_read, e.g. path g/<agentId>/timeline.")


def _server_info() -> dict[str, Any]:
    return {"name": "agent-lattice", "title": "agent-lattice", "version": package_version()}


def _initialize(request: web.Request, rid: Any, params: dict[str, Any]) -> web.Response:
    requested = params.get("protocolVersion")
    if not isinstance(requested, str):
        raise McpError(INVALID_PARAMS, "Invalid params: `protocolVersion` (a string) is required", id=rid)
    for key in ("capabilities", "clientInfo"):
        if key in params and not isinstance(params[key], dict):
            raise McpError(INVALID_PARAMS, f"Invalid params: `{key}` must be an object", id=rid)
    version = requested if requested in PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION
    sid = request.app[_SESSIONS].open(caller_of(request), version)
    result = {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": _server_info(),
        "instructions": INSTRUCTIONS,
    }
    return reply({"jsonrpc": "2.0", "id": rid, "result": result}, headers={SESSION_HEADER: sid})


async def handle_delete(request: web.Request) -> web.Response:
    """``DELETE /mcp``: end the session named by ``Mcp-Session-Id`` (204; 404 if unknown)."""
    try:
        _check_origin(request)
        sid = request.headers.get(SESSION_HEADER)
        if sid is None:
            raise McpError(INVALID_REQUEST, f"Bad Request: missing {SESSION_HEADER} header", http=400)
        if not request.app[_SESSIONS].close(caller_of(request), sid):
            raise McpError(SESSION_NOT_FOUND, "Session not found", http=404)
    except McpError as f:
        return _fail_reply(f)
    return web.Response(status=204)


async def handle_get(request: web.Request) -> web.Response:
    """``GET /mcp``: 405, this server opens no server-to-client stream."""
    return _fail_reply(McpError(INVALID_REQUEST, "Method Not Allowed: this server sends no messages of its own; "
                                              "POST requests to /mcp", http=405,
                             headers={"Allow": "POST, DELETE"}))


# -- methods -------------------------------------------------------------------------

async def _ping(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    return {}


async def _tools_list(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    return list_tools(request.app[_TOOLS]["list"], params)


def _call_target(request: web.Request, method: str, params: dict[str, Any]) -> Contract | None:
    if method != "tools/call":
        return None
    name = params.get("name")
    return request.app[_TOOLS]["table"].get(name) if isinstance(name, str) else None


async def _tools_call(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    return await call_tool(request.app[RUNTIME], caller_of(request), request.app[_TOOLS]["table"], params, version)


async def _discover(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    return discover(INSTRUCTIONS, version)


_METHODS = {"ping": _ping, "tools/list": _tools_list, "tools/call": _tools_call}
_MODERN_METHODS = {"server/discover": _discover, "tools/list": _tools_list, "tools/call": _tools_call}


def prepare(app: web.Application) -> None:
    """Give ``app`` the MCP state: the tool table, the sessions, the response mode (unless already set).

    Raises:
        ValueError: two operations map to one tool name.
    """
    table = tool_table()
    app[_TOOLS] = {"table": table, "list": [tool(c) for c in table.values()]}
    app[_SESSIONS] = Sessions()
    app.setdefault(RESPONSE_MODE, "auto")


#: ``/mcp`` (JSON-RPC, described by the MCP specification rather than the OpenAPI document)
ROUTES = (
    Route("POST", "/mcp", handle_post, "mcpPost", "One JSON-RPC message", documented=False),
    Route("DELETE", "/mcp", handle_delete, "mcpDelete", "End a session", documented=False),
    Route("GET", "/mcp", handle_get, "mcpGet", "405: this server opens no stream of its own", documented=False),
)
