"""Server-sent event streams: a job's updates, an agent's versions, and invoke as a stream.

Routes (:data:`ROUTES`, registered by :func:`ops.surfaces.app.create_app`):

* ``GET /api/v1/jobs/<jobId>/sse``: event ``job-update`` whose data is the full
  job (the shape of ``GET /api/v1/jobs/<jobId>``), first the current state, then
  each change; the stream ends after a terminal status. Only that final event
  carries an ``id:``, the terminal status (``COMPLETE``, ``FAILED``, ``CANCELLED``,
  ``TIMEOUT``); a reconnect that sends it back in ``Last-Event-ID`` gets 204, which
  makes a browser ``EventSource`` stop reconnecting (it would otherwise fetch the
  final update again every few seconds, forever).
* ``GET /api/v1/agents/<agentId>/events``: event ``agent-version`` per version
  of the agent, data ``{agentId, seq, id, op, status, ts}`` (``id`` is the
  commit's digest in hex, ``seq`` its position in the agent's commit chain).
  Each event's SSE ``id:`` is ``<seq>/<commit id prefix>`` (:data:`EVENT_ID_PATTERN`):
  reconnecting with it (or a bare ``<seq>``) in ``Last-Event-ID`` or ``?since=``
  (:data:`RESUME_PATTERN`) replays every version after it, so nothing is missed;
  an agent removed and created again is sent from its start.
  Without either, the stream starts with the current version. When the agent is
  removed (``agent:delete`` with ``remove``) an ``agent-removed`` event ends it.
* ``POST /api/v1/invoke`` with ``Accept: text/event-stream`` (preferred over
  ``application/json``; a tie or ``*/*`` keeps the JSON reply): the job's
  ``job-update`` events instead of a single reply. ``wait`` in the input is
  ignored, since the stream carries every update until the job is terminal.
  A request rejected before a job exists still gets the JSON error reply.

Idle streams carry a comment line every :data:`DEFAULT_HEARTBEAT` seconds
(``app[HEARTBEAT]``). A client that goes away is noticed at the next write (a
heartbeat at the latest); its stream then ends and leaves no task behind.
Following a stream never cancels or delays the operation it watches. When the
application shuts down (SIGTERM, SIGINT), ``app[SHUTDOWN]`` is set and every open
stream ends at once, cleanly (:data:`ops.surfaces.common.SHUTDOWN`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any, AsyncIterator

import msgspec
from aiohttp import web

from lattice.commits import Commit, find, log, read_commit
from lattice.digest import to_hex
from lattice.nodes import Tx

from ..domain.contracts import Contract
from ..domain.errors import OpError, Rejected, error_body
from ..domain.jobs import TERMINAL, normalize_job_id, public_job
from ..domain.refs import agent_ref, job_ref
from ..engine.runtime import Runtime
from .common import RUNTIME, SHUTDOWN, caller_of, wait_or_shutdown
from .routes import JOB_ID, Param, Route, component, event_stream, sse_event

__all__ = ["HEARTBEAT", "DEFAULT_HEARTBEAT", "EVENT_ID_PATTERN", "RESUME_PATTERN", "EventStream", "wants_event_stream",
           "accept_quality", "follow_job", "follow_agent", "event_id", "parse_resume_point", "invoke_stream",
           "job_stream", "agent_events", "JOB_EVENTS", "JOB_STREAM_DOC", "ROUTES", "prepare", "wait_changed", "pump"]

log_ = logging.getLogger("lattice.sse")

#: seconds between heartbeat comments on an idle stream
HEARTBEAT = web.AppKey("sse_heartbeat", float)
DEFAULT_HEARTBEAT = 15.0
#: the SSE ``id:`` of an ``agent-version`` event: ``<seq>/<first 16 hex digits of its commit id>``
EVENT_ID_PATTERN = "^[0-9]+/[0-9a-f]{16}$"
#: a resume point the server accepts (``Last-Event-ID``, ``?since=``): an ``id:`` as sent, a bare ``<seq>``,
#: or ``<seq>/`` and any prefix of the commit id; spaces and tabs around it are ignored, and an empty value
#: is no resume point (the stream starts at the current version)
RESUME_PATTERN = "^[ \t]*(?:([0-9]{1,18})(?:/([0-9a-f]{0,64}))?)?[ \t]*$"
_RESUME = re.compile(RESUME_PATTERN)

_json = msgspec.json.Encoder()


# -- content negotiation ---------------------------------------------------------

def accept_quality(accept: str | None, media: str) -> float:
    """The quality (0..1) an ``Accept`` header gives ``media`` (``type/subtype``).

    The most specific matching range wins (``text/event-stream`` over ``text/*``
    over ``*/*``); a missing header accepts everything (1.0).

    Source: the request's ``Accept`` header (untrusted; malformed parts are skipped).

    >>> accept_quality("application/json;q=0.5, text/*", "text/event-stream")
    1.0
    >>> accept_quality("application/json", "text/event-stream")
    0.0
    """
    if accept is None or not accept.strip():
        return 1.0
    mtype, _, msub = media.partition("/")
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.split(","):
        fields = part.strip().split(";")
        rng = fields[0].strip().lower()
        rtype, _, rsub = rng.partition("/")
        if not rtype or not rsub:
            continue
        if rng == media:
            spec = 2
        elif rtype == mtype and rsub == "*":
            spec = 1
        elif rng == "*/*":
            spec = 0
        else:
            continue
        q = 1.0
        for f in fields[1:]:
            k, _, v = f.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = min(max(float(v), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if spec > best[0]:
            best = (spec, q)
    return best[1]


def wants_event_stream(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers ``text/event-stream`` to ``application/json``.

    Only a strict preference selects the stream: a missing header, ``*/*`` or
    ``application/json, text/event-stream`` keep the JSON reply.

    >>> wants_event_stream("text/event-stream")
    True
    >>> wants_event_stream("application/json, text/event-stream")
    False
    """
    if not accept or "event-stream" not in accept.lower():
        return False
    return accept_quality(accept, "text/event-stream") > accept_quality(accept, "application/json")


# -- the wire ------------------------------------------------------------------------

class EventStream:
    """An open ``text/event-stream`` response.

    Args:
        request: the request being answered.
        headers: extra response headers.
    """

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None):
        self.request = request
        self.response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
            **(headers or {})})

    async def open(self) -> "EventStream":
        """Send the response headers; the stream, open."""
        await self.response.prepare(self.request)
        return self

    @property
    def closed(self) -> bool:
        """Whether the client has gone (the transport is closing or closed)."""
        t = self.request.transport
        return t is None or t.is_closing()

    async def send(self, event: str | None, data: Any, id: str | int | None = None) -> None:
        """Write one event; ``data`` is encoded as JSON on one line.

        Raises:
            ConnectionResetError: the client has gone.
        """
        if self.closed:
            raise ConnectionResetError("client disconnected")
        parts = []
        if id is not None:
            parts.append(f"id: {id}\n")
        if event is not None:
            parts.append(f"event: {event}\n")
        await self.response.write("".join(parts).encode() + b"data: " + _json.encode(data) + b"\n\n")

    async def comment(self, text: str = "keep-alive") -> None:
        """Write a comment line (a heartbeat; clients ignore it).

        Raises:
            ConnectionResetError: the client has gone.
        """
        if self.closed:
            raise ConnectionResetError("client disconnected")
        await self.response.write(f": {text}\n\n".encode())

    async def close(self) -> None:
        """End the response (quietly, if the client has gone)."""
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.response.write_eof()


# -- following the store -------------------------------------------------------------

async def wait_changed(ev: asyncio.Event, heartbeat: float, stop: asyncio.Event | None = None) -> bool | None:
    """Wait for ``ev`` up to ``heartbeat`` seconds: True if it fired, False if not, None if ``stop`` was set."""
    fired = asyncio.ensure_future(ev.wait())
    try:
        if not await wait_or_shutdown({fired}, heartbeat, stop):
            return None
    finally:
        fired.cancel()
    return ev.is_set()


async def follow_job(runtime: Runtime, caller: str, job_id: str, heartbeat: float = DEFAULT_HEARTBEAT,
                     first: dict[str, Any] | None = None, stop: asyncio.Event | None = None,
                     ) -> AsyncIterator[dict[str, Any] | None]:
    """Yield the job (public form) now and at each change; None after ``heartbeat`` idle seconds.

    Ends after yielding a terminal status, when the job is gone, or when ``stop`` is set.

    Args:
        runtime: serves the job.
        caller: whose job it is.
        job_id: the job id (any case, with or without ``0x``).
        heartbeat: seconds of quiet before a None (time for a keep-alive).
        first: the job record as the caller already has it (used when the
            runtime no longer holds a job kept only in memory).
        stop: ends the stream when set (the server shuts down).
    """
    jid = normalize_job_id(job_id) or job_id
    name = job_ref(caller, jid)
    last: dict[str, Any] | None = None
    while True:
        ev = runtime.watch(name)  # before the read: a commit in between sets it
        rec = runtime.get_job(caller, jid) or first
        if rec is None:
            return
        job = public_job(rec)
        if job != last:
            last = job
            yield job
        if job["status"] in TERMINAL:
            return
        changed = await wait_changed(ev, heartbeat, stop)
        if changed is None:
            return
        if not changed:
            yield None


def _version(runtime: Runtime, agent_id: str, d: bytes, c: Commit) -> dict[str, Any]:
    rec = Tx(runtime.store, runtime.cache).load_root(c.root)
    status = rec.get("status") if isinstance(rec, dict) else None
    return {"agentId": agent_id, "seq": c.seq, "id": to_hex(d), "op": c.op, "status": status, "ts": c.ts}


def event_id(seq: int, d: bytes) -> str:
    """The SSE ``id:`` of a version: ``<seq>/<first 16 hex digits of its commit id>``."""
    return f"{seq}/{d.hex()[:16]}"


def _continues(store: Any, head: bytes, head_seq: int, last: int, last_id: str | None) -> bool:
    """Whether the chain at ``head`` still holds the version the client has (else: a new incarnation)."""
    if head_seq < last:
        return False
    if last_id is None:
        return True  # a bare seq: best effort
    return find(store, head, last)[0].hex().startswith(last_id)


async def follow_agent(runtime: Runtime, caller: str, agent_id: str, after: int | None = None,
                       heartbeat: float = DEFAULT_HEARTBEAT, after_id: str | None = None,
                       stop: asyncio.Event | None = None) -> AsyncIterator[tuple[str, dict[str, Any]] | None]:
    """Yield ``("agent-version", version)`` for each version of an agent, oldest first.

    Args:
        after: the ``seq`` of the last version the client has; every later one
            is yielded. None: start with the current version.
        heartbeat: seconds of quiet before a None (time for a keep-alive).
        after_id: a prefix of that version's commit id (hex), when known.
        stop: ends the stream when set (the server shuts down).

    Yields ``("agent-removed", {agentId, seq})`` and ends when the agent's ref
    is gone. If the agent was removed and created again meanwhile (the version
    the client has is not on the chain any more), the new chain is yielded from
    its first version.
    """
    name = agent_ref(caller, agent_id)
    last, last_id = after, after_id
    while True:
        ev = runtime.watch(name)
        d = runtime.store.ref(name)
        if d is None:
            yield "agent-removed", {"agentId": agent_id, "seq": last}
            return
        head = read_commit(runtime.store, d)
        if last is None:
            batch = [(d, head)]
        else:
            floor = last if _continues(runtime.store, d, head.seq, last, last_id) else -1
            batch = []
            for dd, c in log(runtime.store, d):
                if c.seq <= floor:
                    break
                batch.append((dd, c))
        for dd, c in reversed(batch):
            last, last_id = c.seq, dd.hex()
            yield "agent-version", _version(runtime, agent_id, dd, c)
        changed = await wait_changed(ev, heartbeat, stop)
        if changed is None:
            return
        if not changed:
            yield None


# -- handlers ------------------------------------------------------------------------

async def pump(stream: EventStream, items: AsyncIterator[Any], send) -> None:
    """Send every item of ``items`` with ``send`` (None: a heartbeat comment) until it ends or the client goes;
    a failure is logged and sent as an ``error`` event; then the stream is closed."""
    try:
        async with contextlib.aclosing(items):
            async for item in items:
                if item is None:
                    await stream.comment()
                else:
                    await send(item)
    except ConnectionResetError:
        log_.debug("event stream client went away: %s %s", stream.request.method, stream.request.path)
        return
    except Exception:
        log_.exception("event stream %s %s failed", stream.request.method, stream.request.path)
        with contextlib.suppress(ConnectionResetError):
            await stream.send("error", error_body("internal_error", "internal server error"))
    await stream.close()


def _heartbeat(request: web.Request) -> float:
    return request.app.get(HEARTBEAT, DEFAULT_HEARTBEAT)


async def _stream_job(request: web.Request, caller: str, job: dict[str, Any]) -> web.StreamResponse:
    stream = await EventStream(request).open()
    items = follow_job(request.app[RUNTIME], caller, job["jobId"], _heartbeat(request), first=job,
                       stop=request.app.get(SHUTDOWN))
    # the final update carries an id (its status): sent back on a reconnect, it gets 204 (job_stream)
    await pump(stream, items, lambda j: stream.send("job-update", j, j["status"] if j["status"] in TERMINAL else None))
    return stream.response


async def job_stream(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/jobs/{jobId}/sse``: the job's ``job-update`` events until a terminal status.

    A finished job whose final status the client sends back in ``Last-Event-ID``
    (the ``id:`` of the final event) is 204: the client has it all.

    Raises:
        OpError: ``not_found`` (404) when the caller has no such job.
    """
    caller = caller_of(request)
    job_id = request.match_info["jobId"]
    job = request.app[RUNTIME].get_job(caller, job_id)
    if job is None:
        raise OpError("not_found", f"no job {job_id!r}", hint="a job id is 0x + 32 hex digits, from the invoke reply")
    last = request.headers.get("Last-Event-ID")
    if last is not None and job["status"] in TERMINAL and last.strip() == job["status"]:
        return web.Response(status=204)  # the client had the final event: EventSource stops reconnecting
    return await _stream_job(request, caller, job)


def parse_resume_point(value: str) -> tuple[int, str | None] | None:
    """``(seq, commit id prefix | None)`` of a resume point, or None if it is not one (:data:`RESUME_PATTERN`).

    Source: a ``Last-Event-ID`` header or ``?since=`` (untrusted).

    >>> parse_resume_point("3/00ab"), parse_resume_point(" 3 "), parse_resume_point("3/"), parse_resume_point("-1")
    ((3, '00ab'), (3, None), (3, None), None)
    >>> parse_resume_point(" ") is None  # accepted by the pattern: no resume point
    True
    """
    m = _RESUME.fullmatch(value)
    return None if m is None or m[1] is None else (int(m[1]), m[2] or None)


def _last_event_id(request: web.Request) -> tuple[int | None, str | None]:
    """``Last-Event-ID`` header, else ``?since=``: ``(seq, commit id prefix | None)`` the client has.

    Source: the request (untrusted): ``<seq>`` or ``<seq>/<hex>`` as sent in ``id:``, within spaces or tabs;
    empty (or blank) is absent.
    """
    for where, value in (("Last-Event-ID header", request.headers.get("Last-Event-ID")),
                         ("since query parameter", request.query.get("since"))):
        if value is None or value.strip(" \t") == "":
            continue
        point = parse_resume_point(value)
        if point is None:
            raise Rejected("invalid_input", f"Expected a version id (<seq> or <seq>/<hex>), got {value[:40]!r} "
                                            f"- at the {where}", hint="send the id: of the last event received")
        return point
    return None, None


async def agent_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/agents/{agentId}/events``: one ``agent-version`` event per version.

    Raises:
        OpError: ``not_found`` (404) when the caller has no such agent.
        Rejected: ``invalid_input`` (400) for a malformed ``Last-Event-ID``/``since``.
    """
    caller = caller_of(request)
    aid = request.match_info["agentId"]
    after, after_id = _last_event_id(request)
    runtime = request.app[RUNTIME]
    if runtime.store.ref(agent_ref(caller, aid)) is None:
        raise OpError("not_found", f"no agent {aid!r}", hint="agent:list shows your agents")
    stream = await EventStream(request).open()
    items = follow_agent(runtime, caller, aid, after, _heartbeat(request), after_id, request.app.get(SHUTDOWN))
    await pump(stream, items, lambda item: stream.send(
        item[0], item[1], event_id(item[1]["seq"], bytes.fromhex(item[1]["id"])) if item[0] == "agent-version" else None))
    return stream.response


async def invoke_stream(request: web.Request, contract: Contract, inp: Any) -> web.StreamResponse:
    """Invoke ``contract`` with the decoded ``inp`` and stream its job's updates.

    Raises:
        Rejected: the request is refused before a job exists (sent as the usual JSON error).
    """
    if "wait" in contract.input.__struct_fields__:
        inp = msgspec.structs.replace(inp, wait=False)  # the stream is the wait
    caller = caller_of(request)
    job = await request.app[RUNTIME].invoke(contract, inp, caller)
    return await _stream_job(request, caller, job)


def prepare(app: web.Application) -> None:
    """Give ``app`` the event streams' settings (the heartbeat, unless already set)."""
    app.setdefault(HEARTBEAT, DEFAULT_HEARTBEAT)


# -- routes --------------------------------------------------------------------------

_ERROR_EVENT = sse_event("error", component("Error"), description="the stream failed on the server; it ends")
#: the events of a job's stream (``/api/v1/jobs/{jobId}/sse``, and invoke as a stream)
_FINAL_ID = {"enum": sorted(TERMINAL), "description": "on the final event only: the job's terminal status"}
JOB_EVENTS = [sse_event("job-update", component("Job"), _FINAL_ID, id_required=False,
                        description="the job, as `GET /api/v1/jobs/{jobId}`; the final one carries `id:`"),
              _ERROR_EVENT]
JOB_STREAM_DOC = ("A stream of `job-update` events (data: the job, as `GET /api/v1/jobs/{jobId}`), the current state "
                  "first, then each change; it ends after a terminal status. Only the final event carries an `id:`: "
                  "the terminal status. Idle streams carry `: keep-alive` comments.")
_JOB_RESUME_DOC = ("A reconnect after the end: the `id:` of the final event (the job's terminal status). The reply is "
                   "then 204 No Content, which makes a browser `EventSource` stop reconnecting; any other value is "
                   "ignored.")
_VERSION = {"type": "object", "properties": {
    "agentId": {"type": "string"}, "seq": {"type": "integer", "minimum": 0},
    "id": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "the commit id"},
    "op": {"type": "string"}, "status": {"type": ["string", "null"]}, "ts": {"type": "integer"}},
    "required": ["agentId", "seq", "id", "op", "status", "ts"], "additionalProperties": False}
_REMOVED = {"type": "object", "properties": {"agentId": {"type": "string"}, "seq": {"type": ["integer", "null"]}},
            "required": ["agentId", "seq"], "additionalProperties": False}
_AGENT_EVENTS = [
    sse_event("agent-version", _VERSION, {"type": "string", "pattern": EVENT_ID_PATTERN,
                                          "description": "<seq>/<first 16 hex digits of the commit id>"},
              "a version of the agent"),
    sse_event("agent-removed", _REMOVED, description="the agent was removed; the stream ends"),
    _ERROR_EVENT]
_RESUME_SCHEMA = {"type": "string", "pattern": RESUME_PATTERN}

_AGENT_STREAM_DOC = (
    "One `agent-version` event per version of the agent, data `{agentId, seq, id, op, status, ts}`, SSE `id:` = "
    "`<seq>/<first 16 hex digits of the commit id>`. Resume with `Last-Event-ID` (or `?since=`) set to that id, or "
    "to a bare seq, to receive every version after it (if the agent was removed and created again since that "
    "version, which only the full id tells, the new chain from its first version); without either the stream "
    "starts at the current version. `agent-removed` ends the stream when the agent is removed.")

#: the event-stream routes
ROUTES = (
    Route("GET", "/api/v1/jobs/{jobId}/sse", job_stream, "jobEvents", "A job's updates as server-sent events",
          description=JOB_STREAM_DOC + " " + _JOB_RESUME_DOC,
          parameters=(JOB_ID, Param("Last-Event-ID", "header", {"type": "string"}, _JOB_RESUME_DOC)),
          responses={"200": {"description": "the event stream", "content": event_stream(JOB_EVENTS)},
                     "204": {"description": "the job is finished and the client had its final event"}},
          errors=("not_found",), tags=("jobs",)),
    Route("GET", "/api/v1/agents/{agentId}/events", agent_events, "agentEvents",
          "An agent's versions as server-sent events", description=_AGENT_STREAM_DOC,
          parameters=(Param("agentId", "path", {"type": "string"}),
                      Param("since", "query", _RESUME_SCHEMA, "the last version received: its `id:`, or its seq"),
                      Param("Last-Event-ID", "header", _RESUME_SCHEMA, "the `id:` of the last event received")),
          responses={"200": {"description": "the event stream", "content": event_stream(_AGENT_EVENTS)}},
          errors=("not_found", "invalid_input"), tags=("agents",)),
)
