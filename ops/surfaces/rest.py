"""The REST routes of API v1: invoke an operation, read and cancel jobs, the status.

* ``POST /api/v1/invoke`` with the Covia venue's body ``{"operation", "input",
  "wait"?, "private"?, "ucans"?}`` (:func:`envelope`): the job (200 when terminal,
  202 + ``Location`` while PENDING/STARTED); with ``Accept: text/event-stream``
  preferred, the job's event stream (:mod:`ops.surfaces.sse`).
* ``GET /api/v1/jobs/{jobId}``, ``PUT /api/v1/jobs/{jobId}/cancel`` (body
  ``{"reason"}`` optional): a job.
* ``GET /api/v1/status``: the server.

A job is shown as :func:`ops.domain.jobs.public_job` has it (the venue's ``id``,
``op``, ``error`` message and ``errorCode`` beside ``jobId`` and ``operation``).
Request bodies are untrusted: a rejection is ``{"error": message, "errorCode",
"path"?, "hint"?}`` (raised as :class:`ops.domain.errors.Rejected`, answered by
the application's error middleware) and changes nothing. The venue's other routes
(``/run``, the job list, job-free reads, the catalog) are :mod:`ops.surfaces.venue`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from ..domain import operations as _operations  # noqa: F401  (declares every operation)
from ..domain.contracts import Contract, decode_input, lookup
from ..domain.errors import OpError, Rejected
from ..domain.jobs import TERMINAL, public_job
from ..engine.reads import delete_job
from . import sse
from .common import RUNTIME, caller_of, job_reply, reply, unless_shutdown
from .identity import several_callers
from .inputs import json_error, json_input
from .routes import JOB_ID, Route, component, event_stream, json_content, json_response

__all__ = ["invoke", "get_job", "cancel_job", "status", "ROUTES", "Envelope", "envelope", "read_json", "execute",
           "WAIT_CAP_MS"]

#: how long ``"wait": true`` in a request body blocks, milliseconds (the Covia venue's cap)
WAIT_CAP_MS = 120_000
_FIELDS = ("operation", "input", "wait", "private", "ucans")


@dataclass(frozen=True)
class Envelope:
    """A decoded invoke or run body.

    Attributes:
        contract: the operation. input: its decoded input.
        wait: None (absent), a bool, or milliseconds. private: drop the job's record once finished.
    """

    contract: Contract
    input: Any
    wait: bool | float | None
    private: bool


async def read_json(request: web.Request, hint: str) -> Any:
    """The request body decoded as JSON.

    Raises:
        Rejected: ``invalid_json``.
    """
    body = await request.read()
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise Rejected("invalid_json", f"malformed JSON: {json_error(body, e)}", hint=hint) from None
    except RecursionError:
        raise Rejected("invalid_json", "JSON nested too deeply to decode", hint="flatten the value") from None


def envelope(data: Any) -> Envelope:
    """Check an invoke/run body (decoded JSON) and decode its operation's input.

    ``wait`` (for a task or trigger job still waiting when its operation returns): true blocks up
    to :data:`WAIT_CAP_MS`, a number that many milliseconds, false not at all; absent: not at all,
    or with ``private`` until the job is finished. ``private``: the job's record is dropped once
    the reply carries it finished (a job not finished by then keeps it). ``ucans``: UCAN capability
    proofs, which this server does not verify: a non-empty list is refused.

    Raises:
        Rejected: ``invalid_input`` (the body's shape, ``ucans``), ``unknown_operation``, or the
            operation's own input errors.
    """
    if not isinstance(data, dict):
        raise Rejected("invalid_input", f"Expected `object`, got `{_type(data)}` - at `$`", path="$",
                       hint='send {"operation": "...", "input": {...}}')
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise Rejected("invalid_input", f"Object contains unknown field `{unknown[0]}` - at `$.{unknown[0]}`",
                       path=f"$.{unknown[0]}", hint="the body has `operation`, `input`, `wait`, `private`, `ucans`")
    op = data.get("operation")
    if op is None:
        raise Rejected("invalid_input", "Object missing required field `operation` - at `$.operation`",
                       path="$.operation", hint="e.g. \"operation\": \"agent:create\"")
    if not isinstance(op, str):
        raise Rejected("invalid_input", f"Expected `str`, got `{_type(op)}` - at `$.operation`", path="$.operation")
    wait, private, ucans = data.get("wait"), data.get("private", False), data.get("ucans")
    if wait is not None and (not isinstance(wait, (bool, int, float)) or (not isinstance(wait, bool) and
                                                                             not 0 <= wait < float("inf"))):
        raise Rejected("invalid_input", f"`wait` must be true, false or a number of milliseconds >= 0, got {wait!r:.60}"
                                        " - at `$.wait`", path="$.wait")
    if not isinstance(private, bool):
        raise Rejected("invalid_input", f"Expected `bool`, got `{_type(private)}` - at `$.private`", path="$.private")
    if ucans is not None and ucans != []:
        raise Rejected("invalid_input", "UCAN capability proofs are not supported here - at `$.ucans`: every caller "
                                        "acts in its own namespace and no capability is delegated", path="$.ucans",
                       hint="send no `ucans`; read and write your own paths")
    contract = lookup(op)
    return Envelope(contract, decode_input(contract, json_input(contract, data.get("input"))), wait, private)


async def execute(request: web.Request, env: Envelope) -> dict[str, Any]:
    """Invoke ``env``'s operation for the request's caller; wait as ``env`` says; drop a private job's
    record once it is finished. Returns the job record (stop waiting, with 503, if the server shuts down).
    """
    runtime, caller = request.app[RUNTIME], caller_of(request)

    async def work() -> dict[str, Any]:
        job = await runtime.invoke(env.contract, env.input, caller)
        wait = WAIT_CAP_MS if env.wait is True else (True if env.wait is None and env.private else env.wait)
        if job["status"] not in TERMINAL and wait and job.get("agentId") is not None:  # a task or trigger job
            job = await runtime.engine.wait(caller, job, wait)
        if env.private and job["status"] in TERMINAL:
            await delete_job(runtime.engine, caller, job["jobId"])
        return job
    return await unless_shutdown(request, work())


async def invoke(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/invoke`` with ``{"operation", "input", "wait"?, "private"?, "ucans"?}``; replies with the
    job (or its event stream).

    Source: the body (untrusted).

    Raises:
        Rejected: malformed JSON, a body that is not an invoke request (:func:`envelope`), an unknown
            operation, or an input that violates the operation's contract.
    """
    env = envelope(await read_json(request, 'send {"operation": "...", "input": {...}} in UTF-8'))
    if sse.wants_event_stream(request.headers.get("Accept")):
        if env.private:
            raise Rejected("invalid_input", "a private job cannot be streamed - at `$.private`", path="$.private",
                           hint="send it with Accept: application/json")
        return await sse.invoke_stream(request, env.contract, env.input)
    return job_reply(await execute(request, env))


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
    """``PUT /api/v1/jobs/{jobId}/cancel``, body ``{"reason"?}`` or none: the job after cancelling
    (``reason``, when given, is its error message).

    Raises:
        OpError: ``not_found`` when the caller has no such job.
        Rejected: ``invalid_json``, ``invalid_input`` (a body other than ``{"reason": "..."}``).
    """
    reason = None
    if (await request.read()).strip():  # no body, or an empty one: no reason
        data = await read_json(request, 'send {"reason": "..."} or no body')
        reason = data.get("reason", "") if isinstance(data, dict) else None
        if not isinstance(reason, str) or set(data) - {"reason"} or len(reason) > _REASON_MAX:
            raise Rejected("invalid_input", f'the body is {{"reason": "<text of at most {_REASON_MAX} characters>"}} '
                                            "(optional) - at `$`", path="$")
        reason = reason or None
    job = await request.app[RUNTIME].cancel_job(caller_of(request), request.match_info["jobId"], reason)
    if job is None:
        raise OpError("not_found", f"no job {request.match_info['jobId']!r}")
    return reply(public_job(job))


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: server and store summary (agent count: the caller's own)."""
    shared = several_callers(request.app)  # no whole-store figures
    return reply(request.app[RUNTIME].status(caller_of(request), shared=shared))


# -- routes --------------------------------------------------------------------------

_JOB = json_content(component("Job"))
_INVOKE_ERRORS = ("invalid_json", "invalid_input", "invalid_path", "invalid_config", "unknown_operation", "too_large",
                  "not_supported")
_REASON_MAX = 1000
_CANCEL_BODY = {"type": "object", "properties": {"reason": {"type": "string", "maxLength": _REASON_MAX}},
                "additionalProperties": False}

#: the REST routes
ROUTES = (
    Route("POST", "/api/v1/invoke", invoke, "invoke", "Invoke an operation; the reply is its job",
          description=("The body names the operation and its input; `wait` (true: up to 120 s; a number: "
                       "milliseconds) waits for a task or trigger job to finish; `private` drops the job's record "
                       "once the reply carries it finished; `ucans` (UCAN proofs) are not supported (400). With "
                       "`Accept: text/event-stream` (preferred over application/json) the reply is the job's event "
                       "stream. " + sse.JOB_STREAM_DOC),
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
          description="An optional body `{\"reason\"}` becomes the cancelled job's `error`.",
          request_body={"required": False, "content": json_content(_CANCEL_BODY)},
          responses={"200": {"description": "the job", "content": _JOB}},
          errors=("not_found", "invalid_json", "invalid_input"), tags=("jobs",)),
    Route("GET", "/api/v1/status", status, "status", "Server and store summary",
          responses={"200": json_response("the summary", {
              "type": "object", "required": ["status", "version"],
              "properties": {"status": {"const": "ok"}, "version": {"type": "string"},
                             "did": {"type": "string", "description": "the venue's DID (its did:key)"},
                             "name": {"type": "string"}}})},
          tags=("server",)),
)
