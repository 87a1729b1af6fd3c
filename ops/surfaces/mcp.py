"""MCP server at ``/mcp``: JSON-RPC 2.0 over the streamable-HTTP transport, every operation a tool.

Generated from :data:`ops.domain.contracts.REGISTRY`: each operation is a tool named
after its key (``agent:create`` -> ``agent_create``) whose ``inputSchema`` is
the contract's input schema and whose ``outputSchema`` is the job the
operation returns (:func:`ops.surfaces.openapi.job_json_schema`). A ``tools/call``
runs the operation exactly as ``POST /api/v1/invoke`` does, for the same
caller (:func:`ops.surfaces.common.caller_of`), and answers with the job as
``structuredContent`` plus its JSON as text. A job that ends ``FAILED``,
``CANCELLED`` or ``TIMEOUT`` is a result with ``isError: true``; the error
code is in ``structuredContent.error.code``.

Protocol (handshake era): ``initialize`` (versions :data:`PROTOCOL_VERSIONS`;
any other requested version is answered with the newest one, as the lifecycle
requires, and the client decides), ``notifications/initialized``, ``ping``,
``tools/list``, ``tools/call``. Every other method is ``-32601``, including
the 2026 ``server/discover`` probe, which tells a dual-era client to fall back
to ``initialize``. ``initialize`` opens a session whose id comes back in
``Mcp-Session-Id``; later requests must carry it (400 without, 404 for an
unknown or ended session; ``DELETE /mcp`` ends one). ``GET /mcp`` (a server
stream) is 405: this server sends no requests or notifications of its own.

Bad input, each answered with the JSON-RPC error the spec defines and
nothing in the store changed: unparseable JSON ``-32700`` (HTTP 400); a batch,
or anything that is not a JSON-RPC 2.0 message, ``-32600`` (HTTP 400; batches
were removed from MCP in 2025-06-18); an unknown method ``-32601``; an unknown
tool or malformed ``tools/call`` params ``-32602``. Arguments that violate a
tool's input schema depend on the negotiated version: ``-32602`` with the
error in ``data`` in 2025-06-18; from 2025-11-25 (SEP-1303) a tool result
with ``isError: true`` and ``structuredContent: {"error": {code, message,
path, hint}}``, so that a model can correct itself.

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
import difflib
import functools
import logging
import re
import secrets
import time
from collections import OrderedDict
from typing import Any

import msgspec
from aiohttp import web

from ..domain.contracts import REGISTRY, Contract, decode_input
from ..domain.errors import Rejected
from ..domain.jobs import CANCELLED, FAILED, TIMEOUT, public_job
from .common import HOST_HINT, MAX_BODY, RUNTIME, caller_of, host_allowed, origin_allowed, reply
from .openapi import input_json_schema, job_json_schema, package_version
from .routes import Route
from .sse import DEFAULT_HEARTBEAT, HEARTBEAT, EventStream, accept_quality

__all__ = ["PROTOCOL_VERSIONS", "LATEST_PROTOCOL_VERSION", "SESSION_HEADER", "VERSION_HEADER", "RESPONSE_MODE",
           "MAX_SESSIONS", "PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND",
           "INVALID_PARAMS", "INTERNAL_ERROR", "SESSION_NOT_FOUND", "tool_name", "tool_table", "tools", "Sessions",
           "handle_post", "handle_delete", "handle_get", "ROUTES", "prepare"]

log = logging.getLogger("lattice.mcp")

#: protocol versions served, newest first
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18")
LATEST_PROTOCOL_VERSION = PROTOCOL_VERSIONS[0]
#: from this version on, input validation errors are tool results (SEP-1303)
_TOOL_ERRORS_FROM = "2025-11-25"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
#: unknown or ended session (the code the reference SDKs use, with HTTP 404)
SESSION_NOT_FOUND = -32001

#: ``"json"``, ``"sse"`` or ``"auto"``
RESPONSE_MODE = web.AppKey("mcp_response_mode", str)
#: open sessions kept (least recently used ones are ended beyond it)
MAX_SESSIONS = 4096

_TOOLS = web.AppKey("mcp_tools", dict)
_FAILED = frozenset((FAILED, CANCELLED, TIMEOUT))
_TOOL_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_json = msgspec.json.Encoder()


# -- tools ---------------------------------------------------------------------------

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


def _tool(contract: Contract) -> dict[str, Any]:
    inp = input_json_schema(contract)
    out = job_json_schema(contract)
    for s in (inp, out):
        s.pop("$schema", None)  # 2020-12 is MCP's default dialect
    return {"name": tool_name(contract), "title": contract.key, "description": contract.summary,
            "inputSchema": inp, "outputSchema": out,
            # an operation that emits no event changes nothing
            "annotations": {"title": contract.key, "readOnlyHint": not contract.emits, "openWorldHint": False}}


def tools() -> list[dict[str, Any]]:
    """The ``tools/list`` entries, one per operation."""
    return [_tool(c) for c in tool_table().values()]


def _can_wait(contract: Contract) -> bool:
    return "wait" in getattr(contract.input, "__struct_fields__", ())


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

class _Fail(Exception):
    """A JSON-RPC error answer (``http``: the HTTP status it travels with)."""

    def __init__(self, code: int, message: str, *, id: Any = None, http: int = 200, data: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.id, self.http, self.data, self.headers = code, message, id, http, data, headers

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return {"jsonrpc": "2.0", "id": self.id, "error": err}


def _fail_reply(f: _Fail) -> web.Response:
    return reply(f.body(), f.http, f.headers)


def _valid_id(v: Any) -> bool:
    return (isinstance(v, str) or isinstance(v, int)) and not isinstance(v, bool)


def _check_origin(request: web.Request) -> None:
    if not host_allowed(request):
        raise _Fail(INVALID_REQUEST, f"Forbidden: Host {request.headers['Host'][:100]!r} is not a name of this "
                                     f"server; {HOST_HINT}", http=403)
    if not origin_allowed(request):
        raise _Fail(INVALID_REQUEST, f"Forbidden: origin {request.headers['Origin'][:100]!r} is not allowed "
                                     f"(loopback origins and the server's allowed origins are)", http=403)


@functools.lru_cache(maxsize=256)
def _acceptable(accept: str | None) -> tuple[bool, bool]:
    return accept_quality(accept, "application/json") > 0, accept_quality(accept, "text/event-stream") > 0


def _negotiate(request: web.Request) -> tuple[bool, bool]:
    """(client accepts JSON, client accepts SSE); neither is 406."""
    accept = request.headers.get("Accept")
    json_ok, sse_ok = _acceptable(accept) if accept is None or len(accept) <= 200 else _acceptable.__wrapped__(accept)
    if not json_ok and not sse_ok:
        raise _Fail(INVALID_REQUEST, "Not Acceptable: the client must accept application/json and/or "
                                     "text/event-stream", http=406)
    return json_ok, sse_ok


# -- the endpoint --------------------------------------------------------------------

async def handle_post(request: web.Request) -> web.StreamResponse:
    """``POST /mcp``: one JSON-RPC message (request, notification or response).

    Source: the body and headers (untrusted).
    """
    try:
        return await _post(request)
    except _Fail as f:
        return _fail_reply(f)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return _fail_reply(_Fail(INVALID_REQUEST, f"request body over the limit of {limit} bytes", http=413))


async def _post(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    json_ok, sse_ok = _negotiate(request)
    body = await request.read()
    try:
        msg = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise _Fail(PARSE_ERROR, f"Parse error: {e}", http=400) from None
    except RecursionError:
        raise _Fail(PARSE_ERROR, "Parse error: JSON nested too deeply", http=400) from None
    if isinstance(msg, list):
        raise _Fail(INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported (MCP removed them in "
                                     "2025-06-18); send one message per POST", http=400)
    if not isinstance(msg, dict):
        raise _Fail(INVALID_REQUEST, f"Invalid Request: expected a JSON-RPC object, got {type(msg).__name__}",
                    http=400)
    rid = msg.get("id") if _valid_id(msg.get("id")) else None
    if msg.get("jsonrpc") != "2.0":
        raise _Fail(INVALID_REQUEST, 'Invalid Request: `jsonrpc` must be "2.0"', id=rid, http=400)
    if "method" not in msg:
        if "id" in msg and ("result" in msg or "error" in msg):  # a response: we send no requests, so nothing awaits it
            _session(request, required=False)
            return web.Response(status=202)
        raise _Fail(INVALID_REQUEST, "Invalid Request: a message needs `method` (request, notification) or "
                                     "`result`/`error` (response)", id=rid, http=400)
    method = msg["method"]
    if not isinstance(method, str):
        raise _Fail(INVALID_REQUEST, "Invalid Request: `method` must be a string", id=rid, http=400)
    if "id" not in msg:  # a notification: never answered
        s = _session(request, required=False)
        if method == "notifications/initialized" and s is not None:
            s.initialized = True
        return web.Response(status=202)
    if not _valid_id(msg["id"]):
        raise _Fail(INVALID_REQUEST, "Invalid Request: `id` must be a string or an integer", http=400)
    params = msg.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        code = INVALID_PARAMS if isinstance(params, list) else INVALID_REQUEST
        raise _Fail(code, "Invalid params: `params` must be an object", id=rid,
                    http=200 if code == INVALID_PARAMS else 400)
    if method == "initialize":
        return _initialize(request, rid, params)
    handler = _METHODS.get(method)
    if handler is None:
        raise _Fail(METHOD_NOT_FOUND, f"Method not found: {method[:100]!r}", id=rid,
                    data={"supported": sorted(["initialize", *_METHODS])})
    session = _session(request, required=method != "ping", rid=rid)
    version = session.version if session is not None else LATEST_PROTOCOL_VERSION
    header = request.headers.get(VERSION_HEADER)
    if header is not None and header not in PROTOCOL_VERSIONS:
        raise _Fail(INVALID_REQUEST, f"Bad Request: unsupported {VERSION_HEADER} {header[:40]!r}; "
                                     f"supported: {', '.join(PROTOCOL_VERSIONS)}", id=rid, http=400)
    mode = request.app.get(RESPONSE_MODE, "auto")
    contract = _call_target(request, method, params)
    stream = sse_ok and (not json_ok or mode == "sse" or (mode == "auto" and contract is not None
                                                          and _can_wait(contract)))
    work = handler(request, params, version)
    if not stream:
        try:
            result = await work
        except _Fail as f:
            f.id = rid
            raise
        except Exception:
            log.exception("MCP %s failed", method)
            raise _Fail(INTERNAL_ERROR, "Internal error; see the server log", id=rid, http=500) from None
        return reply({"jsonrpc": "2.0", "id": rid, "result": result})
    return await _stream_reply(request, rid, work)


async def _stream_reply(request: web.Request, rid: Any, work: Any) -> web.StreamResponse:
    """Answer on a ``text/event-stream``: heartbeats while ``work`` runs, then one ``message`` event.

    A reply ready within one heartbeat goes out as one plain response. ``work``
    is never cancelled (an operation stopped half-way could leave its commit
    without its follow-up): if the client goes, it finishes unobserved, as it
    would over REST.
    """
    task = asyncio.ensure_future(work)
    beat = request.app.get(HEARTBEAT, DEFAULT_HEARTBEAT)
    await asyncio.wait({task}, timeout=beat)
    if task.done():
        return web.Response(body=b"event: message\ndata: " + _json.encode(_outcome(task, rid)) + b"\n\n",
                            content_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    stream = await EventStream(request).open()
    try:
        while not task.done():
            await stream.comment()
            await asyncio.wait({task}, timeout=beat)
        await stream.send("message", _outcome(task, rid))
    except ConnectionResetError:
        log.debug("MCP client went away before the reply")
    await stream.close()
    return stream.response


def _outcome(task: asyncio.Future, rid: Any) -> dict[str, Any]:
    """The JSON-RPC response for a finished method call."""
    try:
        return {"jsonrpc": "2.0", "id": rid, "result": task.result()}
    except _Fail as f:
        f.id = rid
        return f.body()
    except Exception:
        log.exception("MCP request failed")
        return _Fail(INTERNAL_ERROR, "Internal error", id=rid).body()


def _session(request: web.Request, *, required: bool, rid: Any = None) -> _Session | None:
    sid = request.headers.get(SESSION_HEADER)
    if sid is None:
        if required:
            raise _Fail(INVALID_REQUEST, f"Bad Request: missing {SESSION_HEADER} header; send `initialize` first",
                        id=rid, http=400)
        return None
    s = request.app[_SESSIONS].get(caller_of(request), sid)
    if s is None:
        raise _Fail(SESSION_NOT_FOUND, "Session not found: it ended or never existed; send `initialize` again",
                    id=rid, http=404)
    return s


def _initialize(request: web.Request, rid: Any, params: dict[str, Any]) -> web.Response:
    requested = params.get("protocolVersion")
    if not isinstance(requested, str):
        raise _Fail(INVALID_PARAMS, "Invalid params: `protocolVersion` (a string) is required", id=rid)
    for key in ("capabilities", "clientInfo"):
        if key in params and not isinstance(params[key], dict):
            raise _Fail(INVALID_PARAMS, f"Invalid params: `{key}` must be an object", id=rid)
    version = requested if requested in PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION
    sid = request.app[_SESSIONS].open(caller_of(request), version)
    result = {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "agent-lattice", "title": "agent-lattice", "version": package_version()},
        "instructions": ("Every agent-lattice operation is a tool (agent:create is agent_create). Each call returns "
                         "the operation's job: structuredContent.output is the result; a job that ends FAILED is "
                         "isError with structuredContent.error.code. Read any state with covia_read, e.g. "
                         "path g/<agentId>/timeline."),
    }
    return reply({"jsonrpc": "2.0", "id": rid, "result": result}, headers={SESSION_HEADER: sid})


async def handle_delete(request: web.Request) -> web.Response:
    """``DELETE /mcp``: end the session named by ``Mcp-Session-Id`` (204; 404 if unknown)."""
    try:
        _check_origin(request)
        sid = request.headers.get(SESSION_HEADER)
        if sid is None:
            raise _Fail(INVALID_REQUEST, f"Bad Request: missing {SESSION_HEADER} header", http=400)
        if not request.app[_SESSIONS].close(caller_of(request), sid):
            raise _Fail(SESSION_NOT_FOUND, "Session not found", http=404)
    except _Fail as f:
        return _fail_reply(f)
    return web.Response(status=204)


async def handle_get(request: web.Request) -> web.Response:
    """``GET /mcp``: 405, this server opens no server-to-client stream."""
    return _fail_reply(_Fail(INVALID_REQUEST, "Method Not Allowed: this server sends no messages of its own; "
                                              "POST requests to /mcp", http=405,
                             headers={"Allow": "POST, DELETE"}))


# -- methods -------------------------------------------------------------------------

async def _ping(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    return {}


async def _tools_list(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    cursor = params.get("cursor")
    if cursor is not None:
        raise _Fail(INVALID_PARAMS, "Invalid params: unknown cursor (the tool list has one page)")
    return {"tools": request.app[_TOOLS]["list"]}


def _call_target(request: web.Request, method: str, params: dict[str, Any]) -> Contract | None:
    if method != "tools/call":
        return None
    name = params.get("name")
    return request.app[_TOOLS]["table"].get(name) if isinstance(name, str) else None


def _rename(err: dict[str, Any]) -> dict[str, Any]:
    """Point an input error into the tool's ``arguments`` rather than the REST ``input``."""
    out = dict(err)
    for k in ("path", "message"):
        if isinstance(out.get(k), str):
            out[k] = out[k].replace("$.input", "$.arguments")
    return out


def _tool_result(structured: dict[str, Any], is_error: bool) -> dict[str, Any]:
    body = _json.encode(structured)  # encoded once: the text, and the structured content as is
    return {"content": [{"type": "text", "text": body.decode()}], "structuredContent": msgspec.Raw(body),
            "isError": is_error}


async def _tools_call(request: web.Request, params: dict[str, Any], version: str) -> dict[str, Any]:
    name = params.get("name")
    if not isinstance(name, str):
        raise _Fail(INVALID_PARAMS, "Invalid params: `name` (a string) is required")
    table = request.app[_TOOLS]["table"]
    contract = table.get(name)
    if contract is None:
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "tools/list shows the tools"
        raise _Fail(INVALID_PARAMS, f"Invalid params: unknown tool {name[:100]!r}; {hint}",
                    data={"code": "unknown_operation", "tool": name[:100], "hint": hint})
    args = params.get("arguments")
    if args is not None and not isinstance(args, dict):
        raise _Fail(INVALID_PARAMS, f"Invalid params: `arguments` must be an object, got {type(args).__name__}")
    try:
        inp = decode_input(contract, args)
        job = await request.app[RUNTIME].invoke(contract, inp, caller_of(request))
    except Rejected as e:
        err = _rename(e.to_dict())
        if version >= _TOOL_ERRORS_FROM:
            return _tool_result({"error": err}, True)
        raise _Fail(INVALID_PARAMS, f"Invalid params: {err['message']}", data=err) from None
    pub = public_job(job)
    return _tool_result(pub, pub["status"] in _FAILED)


_METHODS = {"ping": _ping, "tools/list": _tools_list, "tools/call": _tools_call}


def prepare(app: web.Application) -> None:
    """Give ``app`` the MCP state: the tool table, the sessions, the response mode (unless already set).

    Raises:
        ValueError: two operations map to one tool name.
    """
    table = tool_table()
    app[_TOOLS] = {"table": table, "list": [_tool(c) for c in table.values()]}
    app[_SESSIONS] = Sessions()
    app.setdefault(RESPONSE_MODE, "auto")


#: ``/mcp`` (JSON-RPC, described by the MCP specification rather than the OpenAPI document)
ROUTES = (
    Route("POST", "/mcp", handle_post, "mcpPost", "One JSON-RPC message", documented=False),
    Route("DELETE", "/mcp", handle_delete, "mcpDelete", "End a session", documented=False),
    Route("GET", "/mcp", handle_get, "mcpGet", "405: this server opens no stream of its own", documented=False),
)
