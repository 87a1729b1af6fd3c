"""The Covia venue's REST routes beyond invoke: run, the job list and job verbs, and job-free reads.

* ``POST /api/v1/run`` ``{"operation", "input", "wait"?, "private"?, "ucans"?}`` (the body of
  invoke, :func:`ops.surfaces.rest.envelope`): the operation's output itself as the body (200)
  once its job is COMPLETE. A job that ended otherwise answers the error body, plus the job's
  ``id``/``jobId`` and ``status``, with the status :func:`failed_status` gives its code (404
  ``not_found``, 403, 429, 5xx as for a rejection; any other failure 409). A job still waiting
  when the operation returned (its own ``wait`` ran out, or it was told not to wait) answers
  202 with the job: the venue's snapshot ``{id, status, agentId, ...}``. An ``agent:request`` that
  says neither ``wait`` nor ``timeout`` waits as the venue's does, up to 5 s (through invoke it
  answers at once, as the seed's).
* ``GET /api/v1/jobs?offset&limit``: the caller's job ids, oldest first, as ``{items, total,
  offset, limit}`` (``limit`` 1..1000, default 1000).
* ``PUT /api/v1/jobs/{jobId}/delete``: drop a finished job's record (409 ``conflict`` before it
  is finished). ``POST /api/v1/jobs/{jobId}``: a message to the agent working on the job (its
  inbox, as ``agent:message``): 202 ``{status: "queued", queueDepth, agentId, jobId}``; 409 once
  the job is finished. ``PUT .../pause`` and ``.../resume``: 501 ``not_supported`` (an agent,
  not a job, is suspended and resumed here).
* ``GET /api/v1/agents[?includeTerminated]`` (``agent:list``'s output) and
  ``GET /api/v1/agents/{agentId}[?at]`` (``agent:info``'s): job-free.
* ``GET /api/v1/values/{read,list,slice,count,aggregate,inspect}?path=...``: job-free reads
  (``covia:read``/``list``/``slice``; :func:`ops.engine.reads.count` and ``inspect``).

Query parameters are checked like inputs: an unknown one, a repeated one or a bad value is a 400
``invalid_input`` at ``$.query.<name>``. Every route acts for the caller alone.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Awaitable, Callable

import msgspec
from aiohttp import web

from ..domain import agent as A
from ..domain.contracts import decode_input, lookup
from ..domain.errors import OpError, Rejected, error_fields, http_status
from ..domain.jobs import COMPLETE, TERMINAL, normalize_job_id, public_job
from ..domain.operations import VENUE_REQUEST_TIMEOUT_MS
from ..engine import reads
from .common import RUNTIME, caller_of, reply
from .inputs import json_input
from .openapi import input_json_schema
from .rest import Envelope, envelope, execute, read_json
from .routes import JOB_ID, Param, Route, component, json_content, json_response

__all__ = ["failed_status", "run", "list_jobs", "delete_job", "send_message", "pause_job", "resume_job", "agents",
           "agent", "value_read", "ROUTES", "MAX_PAGE"]

#: the largest page of ``GET /api/v1/jobs``
MAX_PAGE = 1000
_INT = re.compile(r"-?[0-9]{1,20}")
_GROUP_PATTERN = r"^[^/]+(?:/[^/]+)*$"
_GROUP = re.compile(_GROUP_PATTERN)
#: the largest ``offset`` of the job list
_MAX_OFFSET = 2 ** 63 - 1


# -- query parameters ------------------------------------------------------------------

def _query(request: web.Request, spec: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The query parameters ``spec`` names (``str``, ``int``, ``bool``, ``version``), typed.

    Raises:
        Rejected: ``invalid_input`` at ``$.query.<name>``: unknown, repeated, missing or malformed.
    """
    q = request.query
    for name in q:
        where = f"$.query.{name[:60]}"
        if name not in spec:
            raise Rejected("invalid_input", f"unknown query parameter `{name[:60]}` - at `{where}`", path=where,
                           hint=f"this route takes {', '.join(f'`{n}`' for n in spec) or 'no parameter'}")
        if len(q.getall(name)) > 1:
            raise Rejected("invalid_input", f"query parameter `{name[:60]}` given more than once - at `{where}`",
                           path=where)
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        where = f"$.query.{name}"
        text = q.get(name)
        if text is None:
            if name in required:
                raise Rejected("invalid_input", f"missing query parameter `{name}` - at `{where}`", path=where)
            continue
        if kind == "bool":
            if text not in ("true", "false"):
                raise Rejected("invalid_input", f"`{name}` must be true or false, got {text[:40]!r} - at `{where}`",
                               path=where)
            out[name] = text == "true"
        elif kind in ("int", "version") and _INT.fullmatch(text):
            out[name] = int(text)
        elif kind == "int":
            raise Rejected("invalid_input", f"`{name}` must be an integer, got {text[:40]!r} - at `{where}`",
                           path=where)
        else:
            out[name] = text
    return out


def _moved(e: OpError, where: dict[str, str]) -> OpError:
    """``e`` with its pointers into the input (``$.input.<field>``) moved to where the field was sent."""
    path, message = e.path, e.message
    for field, to in where.items():
        old = f"$.input.{field}"
        if path is not None and (path == old or path.startswith(old + ".") or path.startswith(old + "[")):
            path = to + path[len(old):]
        message = message.replace(old, to)
    if path == "$.input":
        path = "$.query"
    return type(e)(e.code, message.replace("$.input", "$.query"), path=path, hint=e.hint)


async def _free(request: web.Request, key: str, raw: dict[str, Any], where: dict[str, str]) -> Any:
    """The output of read-only operation ``key`` on input ``raw``, with no job (errors point at ``where``)."""
    contract = lookup(key)
    try:
        inp = decode_input(contract, json_input(contract, raw))
        return await reads.job_free(request.app[RUNTIME].engine, contract, inp, caller_of(request))
    except OpError as e:
        raise _moved(e, where) from None


def _sync(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(request.app[RUNTIME].engine, caller_of(request), *args)
    except OpError as e:
        raise _moved(e, {"path": "$.query.path"}) from None


# -- run -----------------------------------------------------------------------------

def failed_status(code: str | None) -> int:
    """The HTTP status ``/run`` answers a job that did not complete with: its code's
    (:func:`~ops.domain.errors.http_status`) when that is 403, 404, 429 or 5xx; else 409, since an operation that fails (rather than being
    refused) could not be done in the state it found (``cancelled``, ``illegal_state``, ``conflict``...).

    >>> [failed_status(c) for c in ("not_found", "cancelled", "invalid_range", "limit_exceeded", "internal_error")]
    [404, 409, 409, 429, 500]
    """
    status = http_status(code or "")
    return status if status in (403, 404, 429) or status >= 500 else 409



def venue_request_wait(env: Envelope) -> Envelope:
    """``env`` with the venue's wait for an ``agent:request`` that says neither ``wait`` nor
    ``timeout`` (nor a body ``wait``): ``timeout`` :data:`~ops.domain.operations.VENUE_REQUEST_TIMEOUT_MS`,
    as the venue's ``/run`` answers (its reply is the answer, or the snapshot once the time is up)."""
    inp = env.input
    if env.contract.key != "agent:request" or env.wait is not None or inp.wait is not msgspec.UNSET \
            or inp.timeout is not msgspec.UNSET:
        return env
    return dataclasses.replace(env, input=msgspec.structs.replace(inp, timeout=VENUE_REQUEST_TIMEOUT_MS))


async def run(request: web.Request) -> web.Response:
    """``POST /api/v1/run``: the operation's output as the body (see the module doc).

    Source: the body (untrusted).

    Raises:
        Rejected: as ``POST /api/v1/invoke`` does.
    """
    env = venue_request_wait(envelope(await read_json(request, 'send {"operation": "...", "input": {...}} in UTF-8')))
    job = await execute(request, env)
    status = job["status"]
    if status == COMPLETE:
        return reply(public_job(job)["output"])
    if status in TERMINAL:
        err = job.get("error") or {"code": status.lower(), "message": f"the job ended {status}"}
        body = {**error_fields(err), "id": job["jobId"], "jobId": job["jobId"], "status": status}
        return reply(body, failed_status(err.get("code")))
    return reply(public_job(job), 202, {"Location": f"/api/v1/jobs/{job['jobId']}"})


# -- jobs ----------------------------------------------------------------------------

async def list_jobs(request: web.Request) -> web.Response:
    """``GET /api/v1/jobs``: ``{items, total, offset, limit}``, the caller's job ids oldest first."""
    q = _query(request, {"offset": "int", "limit": "int"})
    offset, limit = q.get("offset", 0), q.get("limit", MAX_PAGE)
    if not 0 <= offset <= _MAX_OFFSET:
        raise Rejected("invalid_input", f"`offset` must be 0..{_MAX_OFFSET} - at `$.query.offset`",
                       path="$.query.offset")
    if not 1 <= limit <= MAX_PAGE:
        raise Rejected("invalid_input", f"`limit` must be 1..{MAX_PAGE} - at `$.query.limit`", path="$.query.limit")
    ids = reads.job_ids(request.app[RUNTIME].engine, caller_of(request))
    return reply({"items": ids[offset:offset + limit], "total": len(ids), "offset": offset, "limit": limit})


def _job(request: web.Request) -> dict[str, Any]:
    """The caller's job named in the path; ``not_found`` without one."""
    jid = request.match_info["jobId"]
    job = request.app[RUNTIME].get_job(caller_of(request), jid)
    if job is None:
        raise OpError("not_found", f"no job {jid[:80]!r}")
    return job


async def delete_job(request: web.Request) -> web.Response:
    """``PUT /api/v1/jobs/{jobId}/delete``: ``{id, jobId, deleted: true}``.

    Raises:
        OpError: ``not_found``; ``conflict`` while the job is not finished.
    """
    jid = normalize_job_id(request.match_info["jobId"])
    if jid is None or not await reads.delete_job(request.app[RUNTIME].engine, caller_of(request), jid):
        raise OpError("not_found", f"no job {request.match_info['jobId'][:80]!r}")
    return reply({"id": jid, "jobId": jid, "deleted": True})


async def send_message(request: web.Request) -> web.Response:
    """``POST /api/v1/jobs/{jobId}``: deliver the body to the inbox of the agent working on the job.

    A string body is the message; an object's ``content`` string is; any other value is sent as its
    JSON text. Replies 202 ``{status: "queued", queueDepth, agentId, jobId}`` (``queueDepth``: the
    agent's tasks, messages and triggers waiting).

    Raises:
        OpError: ``not_found``; ``conflict`` once the job is finished; the message's own failure
            (``limit_exceeded``: the agent's queue is full).
        Rejected: ``invalid_json``.
    """
    job = _job(request)
    body = await read_json(request, "send the message as a JSON string or object")
    if job["status"] in TERMINAL or job.get("agentId") is None:
        raise OpError("conflict", f"job {job['jobId']} is {job['status']}: no agent is working on it",
                      hint="messages go to the agent of a task or trigger job that is not finished")
    content = body.get("content") if isinstance(body, dict) else body
    text = content if isinstance(content, str) else msgspec.json.encode(body).decode()
    runtime, caller, aid = request.app[RUNTIME], caller_of(request), job["agentId"]
    contract = lookup("agent:message")
    sent = await runtime.invoke(contract, decode_input(contract, {"agentId": aid, "message": text}), caller)
    if sent["status"] != COMPLETE:
        err = sent.get("error") or {}
        raise OpError(err.get("code") or "conflict", err.get("message") or "the message was not delivered",
                      hint=err.get("hint"))
    snap = runtime.engine.snapshot(caller, aid)
    depth = 0 if snap is None else A.queued(snap[1])
    return reply({"status": "queued", "queueDepth": depth, "agentId": aid, "jobId": job["jobId"]}, 202)


async def _no_pause(request: web.Request, verb: str) -> web.Response:
    _job(request)
    raise OpError("not_supported", f"a job cannot be {verb}d here: its agent works on its tasks in order",
                  hint="agent:suspend and agent:resume pause an agent; PUT /api/v1/jobs/<id>/cancel drops a task")


async def pause_job(request: web.Request) -> web.Response:
    """``PUT /api/v1/jobs/{jobId}/pause``: 501 ``not_supported`` (404 for an unknown job)."""
    return await _no_pause(request, "pause")


async def resume_job(request: web.Request) -> web.Response:
    """``PUT /api/v1/jobs/{jobId}/resume``: 501 ``not_supported`` (404 for an unknown job)."""
    return await _no_pause(request, "resume")


# -- job-free reads --------------------------------------------------------------------

async def agents(request: web.Request) -> web.Response:
    """``GET /api/v1/agents``: ``agent:list``'s output for the caller, without a job."""
    q = _query(request, {"includeTerminated": "bool"})
    return reply(await _free(request, "agent:list", q, {"includeTerminated": "$.query.includeTerminated"}))


async def agent(request: web.Request) -> web.Response:
    """``GET /api/v1/agents/{agentId}``: ``agent:info``'s output, without a job (404 ``not_found``)."""
    q = _query(request, {"at": "version"})
    raw = {"agentId": request.match_info["agentId"], **q}
    return reply(await _free(request, "agent:info", raw, {"agentId": "$.path.agentId", "at": "$.query.at"}))


_VALUES: dict[str, tuple[str, dict[str, str]]] = {
    "read": ("covia:read", {"path": "str", "maxSize": "int"}),
    "list": ("covia:list", {"path": "str", "offset": "int", "limit": "int"}),
    "slice": ("covia:slice", {"path": "str", "offset": "int", "limit": "int"}),
}


def _values_route(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    key, spec = _VALUES[name]

    async def handler(request: web.Request) -> web.Response:
        q = _query(request, spec, required=("path",))
        return reply(await _free(request, key, q, {f: f"$.query.{f}" for f in spec}))
    handler.__name__ = handler.__qualname__ = f"value_{name}"
    handler.__doc__ = f"``GET /api/v1/values/{name}``: ``{key}``'s output, without a job."
    return handler


value_read, value_list, value_slice = (_values_route(n) for n in ("read", "list", "slice"))


def _bounded(q: dict[str, Any], name: str, lo: int, hi: int, default: int) -> int:
    v = q.get(name, default)
    if not lo <= v <= hi:
        raise Rejected("invalid_input", f"`{name}` must be {lo}..{hi} - at `$.query.{name}`", path=f"$.query.{name}")
    return v


async def value_count(request: web.Request) -> web.Response:
    """``GET /api/v1/values/count?path&depth``: ``{exists, count}`` (:func:`ops.engine.reads.count`)."""
    q = _query(request, {"path": "str", "depth": "int"}, required=("path",))
    return reply(_sync(request, reads.count, q["path"], _bounded(q, "depth", 1, 64, 1)))


async def value_aggregate(request: web.Request) -> web.Response:
    """``GET /api/v1/values/aggregate?path&depth&groupBy``: ``{exists, count, groups?}``."""
    q = _query(request, {"path": "str", "depth": "int", "groupBy": "str"}, required=("path",))
    group = q.get("groupBy")
    if group is not None and not _GROUP.match(group):
        raise Rejected("invalid_path", f"groupBy {group[:60]!r} is not a field or a relative path a/b - at "
                                       "`$.query.groupBy`", path="$.query.groupBy")
    return reply(_sync(request, reads.count, q["path"], _bounded(q, "depth", 1, 64, 1), group))


async def value_inspect(request: web.Request) -> web.Response:
    """``GET /api/v1/values/inspect?path&budget&compact``: ``{exists, result}``, a JSON5-like render."""
    q = _query(request, {"path": "str", "budget": "int", "compact": "bool"}, required=("path",))
    budget = _bounded(q, "budget", 1, 1 << 20, reads.DEFAULT_BUDGET)
    return reply(_sync(request, reads.inspect, q["path"], budget, q.get("compact", True)))


# -- routes --------------------------------------------------------------------------

_ANY = {"description": "any JSON value"}
_JOB = json_content(component("Job"))
_ERRORS = ("invalid_json", "invalid_input", "invalid_path", "invalid_config", "unknown_operation", "too_large",
           "not_found", "conflict", "forbidden", "limit_exceeded", "not_supported")
_READ_ERRORS = ("invalid_input", "invalid_path", "not_found")


def _field(key: str, name: str, required: bool = False, where: str = "query") -> Param:
    """A parameter standing for field ``name`` of operation ``key``'s input: its schema, its description."""
    schema = {k: v for k, v in input_json_schema(lookup(key))["properties"][name].items() if k != "default"}
    if "anyOf" in schema:  # a query parameter is never null
        schema["anyOf"] = [b for b in schema["anyOf"] if b != {"type": "null"}]
    return Param(name, where, schema, schema.pop("description", ""), required)


def _int(name: str, lo: int, hi: int, what: str) -> Param:
    return Param(name, "query", {"type": "integer", "minimum": lo, "maximum": hi}, what)


def _output(key: str) -> dict[str, str]:
    """The schema of an operation's output (its component)."""
    return component(lookup(key).output.__name__)


_BOOL = {"type": "boolean"}
_PATH = _field("covia:read", "path", required=True)
_DEPTH = _int("depth", 1, 64, "levels below the path whose entries are counted (default 1: its children)")


def _read(name: str, handler: Any, params: tuple[Param, ...], summary: str, schema: Any) -> Route:
    return Route("GET", f"/api/v1/values/{name}", handler, f"values{name.capitalize()}", summary,
                 parameters=(_PATH, *params), responses={"200": json_response("the result", schema)},
                 errors=_READ_ERRORS, tags=("values",))


#: the venue's routes: run, the job list and verbs, job-free reads
ROUTES = (
    Route("POST", "/api/v1/run", run, "run", "Run an operation; the reply is its output",
          description=("The body is invoke's. The reply is the operation's output once its job is COMPLETE; a job "
                       "that ended otherwise is the error body (with the job's `id` and `status`); a job its "
                       "operation left waiting (its own `wait` ran out) is 202 with the job."),
          request_body={"required": True, "content": json_content(component("InvokeRequest"))},
          responses={"200": json_response("the output", _ANY),
                     "202": {"description": "the job, still PENDING or STARTED", "content": _JOB,
                             "headers": {"Location": {"schema": {"type": "string"}}}},
                     "503": json_response("the server shut down before the job finished", component("Error"))},
          errors=_ERRORS, tags=("operations",)),
    Route("GET", "/api/v1/jobs", list_jobs, "listJobs", "The caller's job ids, oldest first, a page at a time",
          parameters=(_int("offset", 0, _MAX_OFFSET, "ids to skip"),
                      _int("limit", 1, MAX_PAGE, "ids to return (default 1000)")),
          responses={"200": json_response("a page", {
              "type": "object", "required": ["items", "total", "offset", "limit"],
              "properties": {"items": {"type": "array", "items": {"type": "string"}}, "total": {"type": "integer"},
                             "offset": {"type": "integer"}, "limit": {"type": "integer"}}})},
          errors=("invalid_input",), tags=("jobs",)),
    Route("POST", "/api/v1/jobs/{jobId}", send_message, "sendJobMessage",
          "A message to the agent working on a job (its inbox)", parameters=(JOB_ID,),
          request_body={"required": True, "content": json_content(_ANY)},
          responses={"202": json_response("queued", {
              "type": "object", "required": ["status", "queueDepth"],
              "properties": {"status": {"const": "queued"}, "queueDepth": {"type": "integer"},
                             "agentId": {"type": "string"}, "jobId": {"type": "string"}}})},
          errors=("not_found", "conflict", "invalid_json", "invalid_input", "limit_exceeded"), tags=("jobs",)),
    Route("PUT", "/api/v1/jobs/{jobId}/delete", delete_job, "deleteJob", "Drop a finished job's record",
          parameters=(JOB_ID,), responses={"200": json_response("deleted", {
              "type": "object", "required": ["id", "jobId", "deleted"],
              "properties": {"id": {"type": "string"}, "jobId": {"type": "string"}, "deleted": {"const": True}}})},
          errors=("not_found", "conflict"), tags=("jobs",)),
    Route("PUT", "/api/v1/jobs/{jobId}/pause", pause_job, "pauseJob", "Not supported: suspend the agent instead",
          parameters=(JOB_ID,), errors=("not_found", "not_supported"), tags=("jobs",)),
    Route("PUT", "/api/v1/jobs/{jobId}/resume", resume_job, "resumeJob", "Not supported: resume the agent instead",
          parameters=(JOB_ID,), errors=("not_found", "not_supported"), tags=("jobs",)),
    Route("GET", "/api/v1/agents", agents, "listAgents", "The caller's agents (agent:list), without a job",
          parameters=(Param("includeTerminated", "query", _BOOL, "list terminated agents too"),),
          responses={"200": json_response("agent:list's output", _output("agent:list"))},
          errors=("invalid_input",), tags=("agents",)),
    Route("GET", "/api/v1/agents/{agentId}", agent, "agentInfo", "An agent's summary (agent:info), without a job",
          parameters=(_field("agent:info", "agentId", where="path"), _field("agent:info", "at")),
          responses={"200": json_response("agent:info's output", _output("agent:info"))},
          errors=("invalid_input", "not_found"), tags=("agents",)),
    _read("read", value_read, (_field("covia:read", "maxSize"),),
          "The value at a path (covia:read), without a job", _output("covia:read")),
    _read("list", value_list, (_field("covia:list", "offset"), _field("covia:list", "limit")),
          "The keys or length at a path (covia:list), without a job",
          _output("covia:list")),
    _read("slice", value_slice, (_field("covia:slice", "offset"), _field("covia:slice", "limit")),
          "Items of a list or map at a path (covia:slice), without a job",
          _output("covia:slice")),
    _read("count", value_count, (_DEPTH,), "How many entries lie `depth` levels below a path", {
        "type": "object", "required": ["exists"],
        "properties": {"exists": {"type": "boolean"}, "count": {"type": "integer"}}}),
    _read("aggregate", value_aggregate,
          (_DEPTH, Param("groupBy", "query", {"type": "string", "pattern": _GROUP_PATTERN},
                         "the field (or relative path a/b) whose value groups entries")),
          "How many entries lie `depth` levels below a path, grouped by a field", {
              "type": "object", "required": ["exists"],
              "properties": {"exists": {"type": "boolean"}, "count": {"type": "integer"},
                             "groups": {"type": "object", "additionalProperties": {
                                 "type": "object", "properties": {"count": {"type": "integer"}}}}}}),
    _read("inspect", value_inspect, (_int("budget", 1, 1 << 20, "characters of the render (default 500)"),
                                     Param("compact", "query", _BOOL, "one line (default true)")),
          "A JSON5 preview of the value at a path within a budget", {
              "type": "object", "required": ["exists", "result"],
              "properties": {"exists": {"type": "boolean"}, "result": {"type": ["string", "null"]}}}),
)
