"""HTTP API v1 (aiohttp): the application and its route table.

``create_app(runtime)`` returns a :class:`aiohttp.web.Application` serving every
route of :data:`ROUTES`: the REST routes (:mod:`ops.surfaces.rest`), the event
streams (:mod:`ops.surfaces.sse`, :mod:`ops.surfaces.caller_events`), the OpenAPI document generated from the same
table (:mod:`ops.surfaces.openapi`), MCP at ``/mcp`` (:mod:`ops.surfaces.mcp`) and
the web inspector's static files at ``/ui`` (:mod:`ops.surfaces.ui`).
The runtime is started and closed with the application. When the application
shuts down (SIGTERM, SIGINT), :data:`ops.surfaces.common.SHUTDOWN` is set first:
event streams end at once and requests still waiting on a job answer 503, so
that the server exits without waiting on its clients.

Two middlewares guard every route: authentication (401 without a valid bearer
token when tokens are configured, or with a refused ``did:key`` token when those are
accepted, :mod:`ops.surfaces.identity`; the inspector's static files and the DID
document excepted, see :func:`ops.surfaces.ui.is_public`), the ``Host`` check without tokens and the
browser-origin check (403 ``forbidden``: DNS rebinding protection), then the
mapping of errors to replies: every rejection is the Covia venue's ``{"error":
message}`` with our ``errorCode`` (and ``path``, ``hint`` where known) beside it,
with the status from :data:`ops.domain.errors.HTTP_STATUS`, and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ..domain.errors import OpError, Rejected, error_body, status_code
from ..engine.runtime import Runtime
from . import admin, bundles, caller_events, identity, mcp, openapi, rest, sse, ui
from . import venue, venue_catalog
from .auth import LOCAL_CALLER, Tokens
from .common import (HOST_HINT, HOSTS, MAX_BODY, ORIGINS, ROUTE_TABLE, RUNTIME, SHUTDOWN, TOKENS, ShuttingDown,
                     error_reply, host_allowed, host_name, origin_allowed, reply, shutting_down_reply)
from .routes import Route

__all__ = ["ROUTES", "DEFAULT_MAX_BODY", "LOCAL_CALLER", "create_app"]

log = logging.getLogger("lattice.http")

#: largest accepted request body, bytes
DEFAULT_MAX_BODY = 1 << 20

#: every route of the application, in the order the OpenAPI document lists them
ROUTES: tuple[Route, ...] = (*rest.ROUTES, *sse.ROUTES, *caller_events.ROUTES, *bundles.ROUTES, *openapi.ROUTES,
                             *admin.ROUTES, *identity.ROUTES, *mcp.ROUTES, *ui.ROUTES,
                             # the Covia venue's REST surface (issue 11): run, jobs, job-free reads, catalog
                             *venue.ROUTES, *venue_catalog.ROUTES)


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Authenticate the caller (401 without a valid token, :func:`ops.surfaces.identity.authenticate`); refuse
    foreign ``Host`` names and browser origins (403)."""
    if not ui.is_public(request) and not identity.is_public(request):  # the inspector's files, the DID document
        refused = identity.authenticate(request)
        if refused is not None:
            return refused
    if request.path.startswith("/mcp"):  # MCP answers in JSON-RPC itself
        return await handler(request)
    if not host_allowed(request):
        raise Rejected("forbidden", f"Host {request.headers['Host'][:100]!r} is not a name of this server",
                       hint=HOST_HINT)
    if not origin_allowed(request):
        raise Rejected("forbidden", f"requests from origin {request.headers['Origin'][:100]!r} are not allowed",
                       hint="call the server from a program, or list the origin in the server's allowed origins")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer every error in the rejection shape: an :class:`OpError`, aiohttp's HTTP errors, and 500."""
    try:
        return await handler(request)
    except OpError as e:
        return error_reply(e)
    except ShuttingDown:
        return shutting_down_reply()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return error_reply(Rejected("too_large", f"request body over the limit of {limit} bytes",
                                    hint="send a smaller input (the server's --max-body sets the limit)"))
    except web.HTTPException as e:
        if e.status >= 400:
            code = status_code(e.status)
            allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None  # RFC 9110: 405 lists them
            message = f"{e.reason}: {request.method} {request.path}"
            return reply(error_body(code, message), e.status, allow)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return reply(error_body("internal_error", "internal server error"), 500)


def create_app(runtime: Runtime, *, max_body: int = DEFAULT_MAX_BODY, tokens: Tokens | None = None,
               allowed_origins: frozenset[str] = frozenset(), admins: frozenset[str] = frozenset(),
               allowed_hosts: frozenset[str] = frozenset(), accept_did_auth: bool = False) -> web.Application:
    """The v1 application over ``runtime`` (started on startup, closed on cleanup), serving :data:`ROUTES`.

    Args:
        runtime: serves the operations.
        max_body: largest request body in bytes (413 above; default :data:`DEFAULT_MAX_BODY`).
        tokens: bearer tokens, each naming a caller; None: one local caller, no authentication.
        allowed_origins: browser origins (``https://host:port``) allowed besides loopback ones.
        admins: with tokens, the callers allowed on the operator routes (:mod:`ops.surfaces.admin`).
        allowed_hosts: without tokens, the ``Host`` names (a port is ignored) answered besides
            ``localhost``, ``127.0.0.1`` and ``[::1]``; ``*`` answers any. Others get 403
            ``forbidden`` (DNS rebinding). With tokens every ``Host`` is answered.
        accept_did_auth: accept self-issued ``did:key`` JWTs (the Covia SDK's ``Ed25519Auth``) beside the
            tokens; such a caller is its DID (:mod:`ops.surfaces.identity`). Off by default.

    Raises:
        ValueError: two operations map to one MCP tool name.
    """
    app = web.Application(middlewares=[_errors, _guard], client_max_size=max_body)
    app[RUNTIME] = runtime
    app[MAX_BODY] = max_body
    app[TOKENS] = tokens
    app[identity.DID_AUTH] = identity.DidAuth(runtime.identity.did) if accept_did_auth else None
    app[ORIGINS] = frozenset(o.rstrip("/") for o in allowed_origins)
    app[HOSTS] = frozenset(host_name(h) for h in allowed_hosts)
    app[ROUTE_TABLE] = ROUTES
    app[admin.ADMINS] = frozenset(admins)
    app[SHUTDOWN] = asyncio.Event()
    for prepare in (sse.prepare, openapi.prepare, mcp.prepare):
        prepare(app)

    async def lifecycle(app: web.Application):
        await runtime.start()
        yield
        await runtime.close()

    async def shutting_down(app: web.Application) -> None:  # before the server waits for its requests
        app[SHUTDOWN].set()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(shutting_down)
    for route in ROUTES:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)  # and HEAD
        else:
            app.router.add_route(route.method, route.path, route.handler)
    return app
