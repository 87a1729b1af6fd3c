"""HTTP API v1 (aiohttp): ``POST /api/v1/invoke``, jobs, status, and the generated surfaces.

Besides the invoke endpoint this application serves the surfaces generated from
the operation contracts: MCP at ``/mcp`` (:mod:`ops.mcp`), server-sent event
streams (:mod:`ops.sse`) and the OpenAPI document (:mod:`ops.openapi`).

``create_app(runtime)`` returns a :class:`aiohttp.web.Application`; the
runtime is started and closed with the application. Request bodies are
untrusted: every rejection is ``{"error": {code, message, path?, hint?}}``
with the status from :data:`ops.errors.HTTP_STATUS`, and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from ..domain import operations as _operations  # noqa: F401  (declares every operation)
from ..domain.contracts import REGISTRY, catalog_entry, decode_input, lookup
from ..domain.errors import OpError, Rejected, http_status, status_code
from ..domain.jobs import TERMINAL, public_job
from .auth import LOCAL_CALLER, Tokens
from ..engine.runtime import Runtime

__all__ = ["RUNTIME", "TOKENS", "DEFAULT_MAX_BODY", "LOCAL_CALLER", "caller_of", "origin_allowed", "create_app"]

log = logging.getLogger("lattice.http")

RUNTIME = web.AppKey("runtime", Runtime)
MAX_BODY = web.AppKey("max_body", int)
TOKENS = web.AppKey("tokens", object)
ORIGINS = web.AppKey("origins", frozenset)
CALLER = web.RequestKey("caller", str)
#: largest accepted request body, bytes
DEFAULT_MAX_BODY = 1 << 20
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

_json = msgspec.json.Encoder()


def caller_of(request: web.Request) -> str:
    """The authenticated caller of ``request``: every surface (REST, SSE, MCP) asks here.

    With tokens configured it is the caller the bearer token names (set by the
    authentication middleware); without, every request acts as :data:`LOCAL_CALLER`.
    """
    return request.get(CALLER, LOCAL_CALLER)


def origin_allowed(request: web.Request) -> bool:
    """Whether a request's ``Origin`` (sent by browsers) may drive this server.

    No ``Origin`` (curl, SDKs, the CLI), a loopback origin, or one of the
    server's allowed origins. Anything else is a web page the user happens to
    visit trying to reach a local server.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        host = None
    return origin.rstrip("/") in request.app.get(ORIGINS, frozenset()) or (host is not None and host in _LOOPBACK_HOSTS)


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Authenticate the caller (401 without a valid token) and refuse foreign browser origins (403)."""
    tokens: Tokens | None = request.app.get(TOKENS)
    if tokens is not None:
        caller = tokens.caller(request.headers.get("Authorization"))
        if caller is None:
            body = {"error": {"code": "unauthorized", "message": "missing or invalid bearer token",
                              "hint": "send Authorization: Bearer <token> (the server's --tokens file lists them)"}}
            return _reply(body, 401, {"WWW-Authenticate": 'Bearer realm="lattice"'})
        request[CALLER] = caller
    if not request.path.startswith("/mcp") and not origin_allowed(request):  # MCP answers in JSON-RPC itself
        raise Rejected("forbidden", f"requests from origin {request.headers['Origin'][:100]!r} are not allowed",
                       hint="call the server from a program, or list the origin in the server's allowed origins")
    return await handler(request)


def _reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_json.encode(body), status=status, content_type="application/json", headers=headers)


def _error(err: OpError) -> web.Response:
    return _reply({"error": err.to_dict()}, http_status(err.code))


def _job_reply(job: dict[str, Any]) -> web.Response:
    if job["status"] in TERMINAL:
        return _reply(public_job(job))
    return _reply(public_job(job), 202, {"Location": f"/api/v1/jobs/{job['jobId']}"})


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except OpError as e:
        return _error(e)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return _error(Rejected("too_large", f"request body over the limit of {limit} bytes",
                               hint="send a smaller input (the server's --max-body sets the limit)"))
    except web.HTTPException as e:
        if e.status >= 400:
            code = status_code(e.status)
            allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None  # RFC 9110: 405 lists them
            message = f"{e.reason}: {request.method} {request.path}"
            return _reply({"error": {"code": code, "message": message}}, e.status, allow)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _reply({"error": {"code": "internal_error", "message": "internal server error"}}, 500)


async def invoke(request: web.Request) -> web.Response:
    """``POST /api/v1/invoke`` with ``{"operation", "input"}``; replies with the job."""
    body = await request.read()
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise Rejected("invalid_json", f"malformed JSON: {e}", hint='send {"operation": "...", "input": {...}}') from None
    except RecursionError:
        raise Rejected("invalid_json", "JSON nested too deeply to decode", hint="flatten the value") from None
    if not isinstance(data, dict):
        raise Rejected("invalid_input", f"Expected `object`, got `{_type(data)}` - at `$`", path="$",
                       hint='send {"operation": "...", "input": {...}}')
    unknown = sorted(set(data) - {"operation", "input"})
    if unknown:
        raise Rejected("invalid_input", f"Object contains unknown field `{unknown[0]}` - at `$.{unknown[0]}`",
                       path=f"$.{unknown[0]}", hint="the body has only `operation` and `input`")
    op = data.get("operation")
    if op is None:
        raise Rejected("invalid_input", "Object missing required field `operation` - at `$.operation`",
                       path="$.operation", hint="e.g. \"operation\": \"agent:create\"")
    if not isinstance(op, str):
        raise Rejected("invalid_input", f"Expected `str`, got `{_type(op)}` - at `$.operation`", path="$.operation")
    contract = lookup(op)
    inp = decode_input(contract, data.get("input"))
    if sse.wants_event_stream(request.headers.get("Accept")):
        return await sse.invoke_stream(request, contract, inp)
    job = await request.app[RUNTIME].invoke(contract, inp, caller_of(request))
    return _job_reply(job)


def _type(v: Any) -> str:
    return {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool"}.get(type(v), "null")


async def get_job(request: web.Request) -> web.Response:
    """``GET /api/v1/jobs/{jobId}``."""
    job = request.app[RUNTIME].get_job(caller_of(request), request.match_info["job_id"])
    if job is None:
        raise OpError("not_found", f"no job {request.match_info['job_id']!r}")
    return _reply(public_job(job))


async def cancel_job(request: web.Request) -> web.Response:
    """``PUT /api/v1/jobs/{jobId}/cancel``: the job after cancelling."""
    job = await request.app[RUNTIME].cancel_job(caller_of(request), request.match_info["job_id"])
    if job is None:
        raise OpError("not_found", f"no job {request.match_info['job_id']!r}")
    return _reply(public_job(job))


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: server and store summary (agent count: the caller's own)."""
    return _reply(request.app[RUNTIME].status(caller_of(request)))


async def operations(request: web.Request) -> web.Response:
    """``GET /api/v1/operations``: each operation's key, summary, input and output schema."""
    return _reply({"operations": [{**catalog_entry(c), "output": openapi.output_schema(c)} for c in REGISTRY.values()]})


def create_app(runtime: Runtime, *, max_body: int = DEFAULT_MAX_BODY, tokens: Tokens | None = None,
               allowed_origins: frozenset[str] = frozenset()) -> web.Application:
    """The v1 application over ``runtime`` (started on startup, closed on cleanup).

    Args:
        runtime: serves the operations.
        max_body: largest request body in bytes (413 above).
        tokens: bearer tokens, each naming a caller; None: one local caller, no authentication.
        allowed_origins: browser origins (``https://host:port``) allowed besides loopback ones.
    """
    app = web.Application(middlewares=[_errors, _guard], client_max_size=max_body)
    app[RUNTIME] = runtime
    app[MAX_BODY] = max_body
    app[TOKENS] = tokens
    app[ORIGINS] = frozenset(o.rstrip("/") for o in allowed_origins)

    async def lifecycle(app: web.Application):
        await runtime.start()
        yield
        await runtime.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/api/v1/invoke", invoke)
    app.router.add_get("/api/v1/jobs/{job_id}", get_job)
    app.router.add_put("/api/v1/jobs/{job_id}/cancel", cancel_job)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/operations", operations)
    sse.setup(app)
    openapi.setup(app)
    mcp.setup(app)
    return app


from . import mcp, openapi, sse  # noqa: E402  (they import this module's helpers)
