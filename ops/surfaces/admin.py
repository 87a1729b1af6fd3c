"""Operator routes: garbage collection of the store beside the running server.

``POST /api/v1/admin/gc`` with an optional ``{"retainJobs": ms}`` drops finished
jobs older than that, then frees every object no ref reaches
(:meth:`ops.engine.runtime.Runtime.gc`), and answers what it freed. Without
tokens the one local caller may call it; an authenticated caller (a token's, or a
``did:key`` one's), only if the operator named it an admin (``lattice serve --admin
CALLER``): a collection walks the whole store, every caller's data included.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from ..domain.errors import Rejected
from .common import CALLER, RUNTIME, caller_of, reply
from .inputs import integral_ints
from .routes import Route, json_response

__all__ = ["ADMINS", "gc", "ROUTES"]

#: the callers allowed on the admin routes when tokens are on
ADMINS = web.AppKey("admins", frozenset)


#: the longest retention, milliseconds (a 64-bit signed integer)
_MAX_MS = 2 ** 63 - 1


class GcInput(msgspec.Struct, forbid_unknown_fields=True):
    retainJobs: Annotated[int, msgspec.Meta(ge=0, le=_MAX_MS)] | msgspec.UnsetType = msgspec.UNSET


def _input(body: bytes) -> GcInput:
    try:
        raw = msgspec.json.decode(body or b"{}")
        return msgspec.convert(integral_ints(GcInput, raw), GcInput)  # 7.0 is the integer 7, as JSON Schema says
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise Rejected("invalid_input", f"{e}", hint='send {} or {"retainJobs": <milliseconds>}') from None


async def gc(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/gc``: collect garbage; the report. Source: the body (untrusted).

    Raises:
        Rejected: ``forbidden`` (not an admin), ``invalid_input`` (a body not ``{retainJobs?: ms}``).
    """
    # an authenticated caller (a token's, a DID's) must be an admin; the anonymous local caller of a server
    # without tokens may collect
    if request.get(CALLER) is not None and caller_of(request) not in request.app.get(ADMINS, frozenset()):
        raise Rejected("forbidden", "only the server's admins may collect garbage",
                       hint="the operator names them with lattice serve --admin CALLER")
    inp = _input(await request.read())
    retain = None if inp.retainJobs is msgspec.UNSET else inp.retainJobs
    report: dict[str, Any] = await request.app[RUNTIME].gc(retain_jobs_ms=retain)
    return reply(report)


_REPORT = {"type": "object", "required": ["refs", "live", "freed", "freedBytes", "jobsRemoved"],
           "properties": {k: {"type": "integer", "minimum": 0} for k in ("refs", "live", "freed", "freedBytes",
                                                                           "jobsRemoved")}}

#: the operator routes
ROUTES = (
    Route("POST", "/api/v1/admin/gc", gc, "collectGarbage",
          "Free every object no ref reaches (optionally after dropping finished jobs older than retainJobs ms)",
          request_body={"required": False, "content": {"application/json": {"schema": {
              "type": "object", "additionalProperties": False,
              "properties": {"retainJobs": {"type": "integer", "minimum": 0, "maximum": _MAX_MS,
                                            "description": "drop finished jobs older than this, in milliseconds"}}}}}},
          responses={"200": json_response("what the collection freed", _REPORT)},
          errors=("forbidden", "invalid_input", "not_supported"), tags=("server",)),
)
