"""Agents as files: export an agent's whole history as a bundle, import one as a new agent.

* ``GET /api/v1/agents/{agentId}/export[?from=SEQ]``: the bundle (``application/vnd.lattice.bundle``,
  streamed; :mod:`lattice.bundle` documents the format); with ``from``, only the versions from
  ``SEQ`` on, version ``SEQ`` as a base (see :mod:`ops.engine.bundles`).
* ``POST /api/v1/agents/{agentId}/import``: the body is a bundle; it becomes agent
  ``agentId`` (re-hashed object by object; a cut, changed or incomplete bundle is refused
  with its code and nothing is written). The answer: ``{agentId, fromAgentId, versions,
  objects, status}``.

A bundle is a byte stream, not a JSON value, so these are routes of their own; the operations
``agent:export`` and ``agent:import`` (:mod:`ops.engine.handlers.bundles`) carry the same
bundles in JSON, as base64, up to a size (an export over 16 MiB is ``too_large`` and names
the export route), a bad bundle there being a ``FAILED`` job with the code these routes
answer 400 with. Both act in the caller's namespace. Source of an imported bundle: the
caller (untrusted).
"""

from __future__ import annotations

import re

from aiohttp import web

from lattice.bundle import BundleError, BundleReader

from ..domain.errors import Rejected
from ..engine.bundles import MAX_IMPORT, export_agent, import_agent
from .common import RUNTIME, caller_of, reply
from .routes import Param, Route, json_response

__all__ = ["BUNDLE_TYPE", "MAX_IMPORT_BYTES", "export", "import_", "ROUTES"]

BUNDLE_TYPE = "application/vnd.lattice.bundle"
#: largest bundle an import accepts, bytes (app setting; default :data:`ops.engine.bundles.MAX_IMPORT`)
MAX_IMPORT_BYTES = web.AppKey("max_import", int)
_CHUNK = 1 << 16


async def export(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/agents/{agentId}/export[?from=SEQ]``: the agent's bundle, streamed.

    Raises:
        Rejected: ``invalid_input`` (``from`` is not a version number).
        OpError: ``not_found`` (no agent; ``from`` past the head or pruned), ``conflict``.
    """
    aid = request.match_info["agentId"]
    raw = request.query.get("from")
    if raw is not None and not re.fullmatch(r"[0-9]{1,18}", raw):
        raise Rejected("invalid_input", f"from must be a version number (0 or more), got {raw[:40]!r}",
                       path="$.from", hint="e.g. ?from=10: the versions from 10 on")
    header, chunks = export_agent(request.app[RUNTIME].engine, caller_of(request), aid,
                                  None if raw is None else int(raw))
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", aid)
    resp = web.StreamResponse(headers={"Content-Type": BUNDLE_TYPE,
                                       "Content-Disposition": f'attachment; filename="{safe}.lattice"',
                                       "X-Lattice-Versions": str(header["versions"])})
    await resp.prepare(request)
    buf = bytearray()
    for piece in chunks:
        buf += piece
        if len(buf) >= _CHUNK:
            await resp.write(bytes(buf))
            buf.clear()
    if buf:
        await resp.write(bytes(buf))
    await resp.write_eof()
    return resp


async def import_(request: web.Request) -> web.Response:
    """``POST /api/v1/agents/{agentId}/import``: load the body (a bundle) as agent ``agentId``.

    Raises:
        Rejected: the bundle's code (``bad_format``, ``truncated``, ``corrupt_object``,
            ``tampered``, ``incomplete``), ``invalid_input``.
        OpError: ``conflict``, ``limit_exceeded``.
    """
    reader = BundleReader(request.app.get(MAX_IMPORT_BYTES, MAX_IMPORT))
    try:
        async for chunk in request.content.iter_chunked(_CHUNK):
            reader.feed(chunk)
    except BundleError as e:
        raise Rejected(e.code, e.message, hint=e.hint) from None
    out = await import_agent(request.app[RUNTIME].engine, caller_of(request), request.match_info["agentId"], reader)
    return reply(out)


_AGENT = Param("agentId", "path", {"type": "string"}, "the agent's id (for an import: the new agent's)")
_FROM = Param("from", "query", {"type": "string", "pattern": "^[0-9]{1,18}$"},
              "the first version in the bundle (a seq; it becomes the imported agent's base); default: all")
_BUNDLE_ERRORS = ("bad_format", "truncated", "corrupt_object", "tampered", "incomplete")

#: the bundle routes
ROUTES = (
    Route("GET", "/api/v1/agents/{agentId}/export", export, "exportAgent",
          "The agent's history (all of it, or from a version on) as one content-addressed bundle (a file)",
          parameters=(_AGENT, _FROM),
          responses={"200": {"description": "the bundle", "content": {BUNDLE_TYPE: {"schema": {
              "type": "string", "contentMediaType": BUNDLE_TYPE}}}}},
          errors=("not_found", "invalid_input", "conflict"), tags=("agents",)),
    Route("POST", "/api/v1/agents/{agentId}/import", import_, "importAgent",
          "Load a bundle as a new agent (re-hashed; a bad bundle writes nothing)", parameters=(_AGENT,),
          request_body={"required": True, "content": {BUNDLE_TYPE: {"schema": {
              "type": "string", "contentMediaType": BUNDLE_TYPE}}}},
          responses={"200": json_response("the imported agent", {
              "type": "object", "required": ["agentId", "fromAgentId", "versions", "objects", "status"],
              "properties": {"agentId": {"type": "string"}, "fromAgentId": {"type": "string"},
                             "versions": {"type": "integer"}, "objects": {"type": "integer"},
                             "status": {"type": "string"}}})},
          errors=(*_BUNDLE_ERRORS, "invalid_input", "conflict", "limit_exceeded"), tags=("agents",)),
)
