"""The REST routes of API v1: invoke an operation, read and cancel jobs, the status and the catalog.

* ``POST /api/v1/invoke`` with ``{"operation", "input"}``: the job (200 when
  terminal, 202 + ``Location`` while PENDING/STARTED); with ``Accept:
  text/event-stream`` preferred, the job's event stream (:mod:`ops.surfaces.sse`).
* ``GET /api/v1/jobs/{jobId}``, ``PUT /api/v1/jobs/{jobId}/cancel``: a job.
* ``GET /api/v1/status``, ``GET /api/v1/operations``: the server and the catalog.

Request bodies are untrusted: a rejection is ``{"error": {code, message, path?,
hint?}}`` (raised as :class:`ops.domain.errors.Rejected`, answered by the
application's error middleware) and changes nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from ..domain import operations as _operations  # noqa: F401  (declares every operation)
from ..domain.contracts import REGISTRY, catalog_entry, decode_input, lookup
from ..domain.errors import OpError, Rejected
from ..domain.jobs import public_job
from . import sse
from .common import RUNTIME, caller_of, job_reply, reply, unless_shutdown
from .identity import several_callers
from .inputs import json_error, json_input
from .openapi import output_schema
from .routes import JOB_ID, Route, component, event_stream, json_content, json_response

__all__ = ["invoke", "get_job", "cancel_job", "status", "operations", "ROUTES"]


async def invoke(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/invoke`` with ``{"operation", "input"}``; replies with the job (or its event stream).

    Source: the body (untrusted).

    Raises:
        Rejected: malformed JSON, a body that is not ``{"operation", "input"}``, an
            unknown operation, or an input that violates the operation's contract.
    """
    body = await request.read()
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise Rejected("invalid_json", f"malformed JSON: {json_error(body, e)}",
                       hint='send {"operation": "...", "input": {...}} in UTF-8') from None
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
    inp = decode_input(contract, json_input(contract, data.get("input")))
    if sse.wants_event_stream(request.headers.get("Accept")):
        return await sse.invoke_stream(request, contract, inp)
    job = await unless_shutdown(request, request.app[RUNTIME].invoke(contract, inp, caller_of(request)))
    return job_reply(job)


def _type(v: Any) -> str:
    return {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool"}.get(type(v), "null")


async def get_job(request: web.Request) -> web.Response:
    """``GET /api/v1/jobs/{jobId}``.

    Raises:
        OpError: ``not_found`` when the caller has no such job.
    """
    job = request.app[RUNTIME].get_job(caller_of(request), request.match_info["jobId"])
    if job is None:
        raise OpError("not_found", f"no job {request.match_info['jobId']!r}")
    return reply(public_job(job))


async def cancel_job(request: web.Request) -> web.Response:
    """``PUT /api/v1/jobs/{jobId}/cancel``: the job after cancelling.

    Raises:
        OpError: ``not_found`` when the caller has no such job.
    """
    job = await request.app[RUNTIME].cancel_job(caller_of(request), request.match_info["jobId"])
    if job is None:
        raise OpError("not_found", f"no job {request.match_info['jobId']!r}")
    return reply(public_job(job))


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: server and store summary (agent count: the caller's own)."""
    shared = several_callers(request.app)  # no whole-store figures
    return reply(request.app[RUNTIME].status(caller_of(request), shared=shared))


async def operations(request: web.Request) -> web.Response:
    """``GET /api/v1/operations``: each operation's key, summary, input and output schema."""
    return reply({"operations": [{**catalog_entry(c), "output": output_schema(c)} for c in REGISTRY.values()]})


# -- routes --------------------------------------------------------------------------

_JOB = json_content(component("Job"))
_INVOKE_ERRORS = ("invalid_json", "invalid_input", "invalid_path", "invalid_config", "unknown_operation", "too_large")

#: the REST routes
ROUTES = (
    Route("POST", "/api/v1/invoke", invoke, "invoke", "Invoke an operation; the reply is its job",
          description=("The body names the operation and its input. With `Accept: text/event-stream` (preferred "
                       "over application/json) the reply is the job's event stream. " + sse.JOB_STREAM_DOC),
          request_body={"required": True, "content": json_content(component("InvokeRequest"))},
          responses={
              "200": {"description": "the job, finished (COMPLETE, FAILED, CANCELLED or TIMEOUT); or the event stream",
                      "content": {**_JOB, **event_stream(sse.JOB_EVENTS)}},
              "202": {"description": "the job, still PENDING or STARTED",
                      "headers": {"Location": {"description": "/api/v1/jobs/<jobId>", "schema": {"type": "string"}}},
                      "content": _JOB},
              "503": {"description": "unavailable: the server shut down before the job finished (a `wait`)",
                      "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}},
                      "content": json_content(component("Error"))}},
          errors=_INVOKE_ERRORS, tags=("operations",)),
    Route("GET", "/api/v1/jobs/{jobId}", get_job, "getJob", "A job", parameters=(JOB_ID,),
          responses={"200": {"description": "the job", "content": _JOB}}, errors=("not_found",), tags=("jobs",)),
    Route("PUT", "/api/v1/jobs/{jobId}/cancel", cancel_job, "cancelJob",
          "Cancel a job (a task or a trigger); the job after cancelling", parameters=(JOB_ID,),
          responses={"200": {"description": "the job", "content": _JOB}}, errors=("not_found",), tags=("jobs",)),
    Route("GET", "/api/v1/status", status, "status", "Server and store summary",
          responses={"200": json_response("the summary", {
              "type": "object", "required": ["status", "version"],
              "properties": {"status": {"const": "ok"}, "version": {"type": "string"},
                             "did": {"type": "string", "description": "the venue's DID (its did:key)"},
                             "name": {"type": "string"}}})},
          tags=("server",)),
    Route("GET", "/api/v1/operations", operations, "operations",
          "The operation catalog: key, summary, input and output schemas",
          responses={"200": json_response("the catalog", {
              "type": "object", "required": ["operations"],
              "properties": {"operations": {"type": "array", "items": component("CatalogEntry")}}})},
          tags=("operations",)),
)
