"""What every HTTP surface (REST, SSE, MCP, OpenAPI) needs from a request and its application.

The application's typed keys, the caller a request acts as, the browser-origin
and ``Host`` checks (DNS rebinding), and the JSON replies. This module imports nothing of :mod:`ops.surfaces`
but :mod:`ops.surfaces.auth` (itself a leaf), so that every surface can import
it and none has to import :mod:`ops.surfaces.app`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from ..domain.errors import OpError, error_body, http_status
from ..domain.jobs import TERMINAL, public_job
from ..engine.runtime import Runtime
from .auth import LOCAL_CALLER

__all__ = ["RUNTIME", "MAX_BODY", "TOKENS", "SHUTDOWN", "ORIGINS", "HOSTS", "CALLER", "ROUTE_TABLE", "LOCAL_CALLER",
           "ShuttingDown", "caller_of", "origin_allowed", "host_name", "host_allowed", "HOST_HINT",
           "wait_or_shutdown", "unless_shutdown", "reply", "error_reply", "job_reply", "shutting_down_reply"]

#: the runtime serving the operations
RUNTIME = web.AppKey("runtime", Runtime)
#: largest accepted request body, bytes
MAX_BODY = web.AppKey("max_body", int)
#: the bearer tokens, or None (one local caller, no authentication)
TOKENS = web.AppKey("tokens", object)
#: browser origins allowed besides loopback ones (``scheme://host[:port]``, no trailing slash)
ORIGINS = web.AppKey("origins", frozenset)
#: host names a server without tokens answers to besides loopback ones (lower case, no port; ``*``: any)
HOSTS = web.AppKey("hosts", frozenset)
#: the routes the application serves (:class:`ops.surfaces.routes.Route`), as registered
ROUTE_TABLE = web.AppKey("route_table", tuple)
#: set when the application shuts down (SIGTERM, SIGINT): event streams end, waits answer at once
SHUTDOWN = web.AppKey("shutdown", asyncio.Event)
#: the authenticated caller of a request (set by the application's authentication middleware)
CALLER = web.RequestKey("caller", str)

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: how to reach a server whose ``Host`` check refused a request
HOST_HINT = ("call it as localhost, 127.0.0.1 or [::1], or start it with `--allow-host NAME` for a name of yours "
             "(a web page whose own name resolves to this machine is refused: DNS rebinding)")
_json = msgspec.json.Encoder()


def caller_of(request: web.Request) -> str:
    """The authenticated caller of ``request``: every surface (REST, SSE, MCP) asks here.

    Args:
        request: a request that went through the application's middlewares.

    Returns:
        With tokens configured, the caller the bearer token names; without,
        :data:`LOCAL_CALLER`.
    """
    return request.get(CALLER, LOCAL_CALLER)


def origin_allowed(request: web.Request) -> bool:
    """Whether a request's ``Origin`` (sent by browsers) may drive this server.

    No ``Origin`` (curl, SDKs, the CLI), a loopback origin, or one of the
    server's allowed origins. Anything else is a web page the user happens to
    visit trying to reach a local server.

    Source: the ``Origin`` header (untrusted; an unparseable one is not loopback).
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        host = None
    return origin.rstrip("/") in request.app.get(ORIGINS, frozenset()) or (host is not None and host in _LOOPBACK_HOSTS)


def host_name(host: str) -> str:
    """The name in a ``Host`` header value: lower case, without the port; IPv6 addresses without brackets.

    Source: the ``Host`` header (untrusted); a malformed value yields a string that names no host.

    >>> host_name("LocalHost:7770"), host_name("[::1]:7770"), host_name("127.0.0.1"), host_name("[::1")
    ('localhost', '::1', '127.0.0.1', '[::1')
    """
    v = host.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        rest = v[end + 1:]
        if end > 0 and (rest == "" or (rest[:1] == ":" and rest[1:].isascii() and rest[1:].isdigit())):
            return v[1:end]
        return v
    name, sep, port = v.rpartition(":")
    if sep and ":" not in name and port.isascii() and port.isdigit():
        return name
    return v


def host_allowed(request: web.Request) -> bool:
    """Whether a request's ``Host`` names this server (DNS rebinding protection).

    With tokens, any ``Host`` passes: the token is the protection. Without,
    only a loopback name or address (``localhost``, ``127.0.0.1``, ``[::1]``,
    any port), a name in ``app[HOSTS]`` (the bound host and ``--allow-host``),
    or no ``Host`` at all (HTTP/1.0; every browser sends one).

    Source: the ``Host`` header (untrusted).
    """
    if request.app.get(TOKENS) is not None:
        return True
    host = request.headers.get("Host")
    if host is None:
        return True
    allowed = request.app.get(HOSTS, frozenset())
    name = host_name(host)
    return name in _LOOPBACK_HOSTS or name in allowed or "*" in allowed


class ShuttingDown(Exception):
    """The application shut down before a request's work finished (503, :func:`shutting_down_reply`)."""


async def wait_or_shutdown(aws: set[asyncio.Future], timeout: float | None, stop: asyncio.Event | None) -> bool:
    """Wait up to ``timeout`` seconds (None: no limit) for the first of ``aws``; False at once if ``stop``
    (the application's :data:`SHUTDOWN`) is or becomes set. Nothing of ``aws`` is cancelled.
    """
    if stop is None:
        await asyncio.wait(aws, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return True
    if stop.is_set():
        return False
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({*aws, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    return not stop.is_set()


async def unless_shutdown(request: web.Request, aw: Any) -> Any:
    """Await ``aw`` (a job being run or waited on); if the application shuts down first, cancel it.

    Cancelling stops the wait, not the job: its commits are shielded, and a task already
    accepted runs again after a restart.

    Raises:
        ShuttingDown: the application shut down first.
    """
    task = asyncio.ensure_future(aw)
    try:
        done = await wait_or_shutdown({task}, None, request.app.get(SHUTDOWN))
    except asyncio.CancelledError:  # the client went away (handler cancellation)
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()
    raise ShuttingDown()


def shutting_down_reply() -> web.Response:
    """503 ``unavailable``: the server stopped before the request's job finished."""
    return reply(error_body("unavailable", "the server is shutting down before the job finished",
                            hint="retry once it is back; a task it had accepted runs again then"),
                 503, {"Retry-After": "5"})


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response.

    Args:
        body: any value msgspec encodes.
        status: the HTTP status (default 200).
        headers: extra response headers.
    """
    return web.Response(body=_json.encode(body), status=status, content_type="application/json", headers=headers)


def error_reply(err: OpError) -> web.Response:
    """The rejection ``{"error": message, "errorCode": code, "path"?, "hint"?}`` with the status its code maps to."""
    return reply(err.body(), http_status(err.code))


def job_reply(job: dict[str, Any]) -> web.Response:
    """A job: 200 when terminal, else 202 with ``Location: /api/v1/jobs/<jobId>``."""
    if job["status"] in TERMINAL:
        return reply(public_job(job))
    return reply(public_job(job), 202, {"Location": f"/api/v1/jobs/{job['jobId']}"})
