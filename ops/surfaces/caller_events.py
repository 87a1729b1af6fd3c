"""The caller's event stream: every change to the caller's agents, as server-sent events.

``GET /api/v1/events`` (:data:`ROUTES`) follows all of the caller's agents at once (the
per-agent stream, :mod:`ops.surfaces.sse`, follows one agent's versions):

* ``agents`` first, data ``{agents: [entry...]}``: every agent of the caller now,
  terminated ones included, each entry as ``agent:list`` gives it
  (``{agentId, status, taskCount, error, updated, ...}``, :func:`ops.engine.handlers.agents.summary`);
* ``agent-created``, data an entry: an agent was created or forked;
* ``agent-updated``, data the entry as it is now: the agent changed (its status, tasks,
  error or last activity ``updated``). Versions committed in quick succession may come
  as one event (the latest); an agent removed and created again in between, as one
  ``agent-updated``;
* ``agent-removed``, data ``{agentId}``: the agent was removed (``agent:delete`` with ``remove``).

Only the caller's own agents (``g/<caller>/``) are ever sent. The stream has no
``id:``: a client that reconnects gets a new ``agents`` list, which is all it needs.
It is built on the engine's change notification (a
:class:`~ops.engine.notify.Subscription` to the caller's agent refs), so it hears
commits made by this process and, on PostgreSQL, by the other processes
(:class:`ops.engine.pg.PgNotifier`; after a lost notification connection, and at its
poll, every agent is read again). Idle streams carry a comment every
``app[HEARTBEAT]`` seconds; shutting down ends the stream at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from aiohttp import web

from lattice.nodes import Tx

from ..domain.refs import agent_prefix, split_ref
from ..engine.handlers.agents import summary
from ..engine.runtime import Runtime
from .common import RUNTIME, SHUTDOWN, caller_of
from .routes import Route, component, event_stream, sse_event
from .sse import DEFAULT_HEARTBEAT, HEARTBEAT, EventStream, pump, wait_changed

__all__ = ["follow_caller", "caller_events", "ROUTES"]


async def follow_caller(runtime: Runtime, caller: str, heartbeat: float = DEFAULT_HEARTBEAT,
                        stop: asyncio.Event | None = None) -> AsyncIterator[tuple[str, dict[str, Any]] | None]:
    """Yield ``("agents", {agents})``, then ``(event, data)`` at each change of the caller's agents
    (see module doc); None after ``heartbeat`` idle seconds. Ends when ``stop`` is set.

    Args:
        runtime: serves the store and its change notification.
        caller: whose agents.
        heartbeat: seconds of quiet before a None (time for a keep-alive).
        stop: ends the stream when set (the server shuts down).
    """
    prefix = agent_prefix(caller)
    store = runtime.store
    with runtime.subscribe(prefix) as sub:  # before the first read: nothing committed after it is missed
        heads: dict[str, bytes] = dict(store.refs(prefix))
        tx = Tx(store, runtime.cache)
        shown = {name: summary(tx, name, d) for name, d in heads.items()}
        yield "agents", {"agents": list(shown.values())}
        while True:
            fired = await wait_changed(sub.changed, heartbeat, stop)
            if fired is None:
                return
            if not fired:
                yield None
                continue
            moved = sub.take()
            if moved is None:  # anything may have moved: read them all
                now = dict(store.refs(prefix))
                names = [*now, *(n for n in heads if n not in now)]
            else:
                now = {n: d for n in moved if (d := store.ref(n)) is not None}
                names = moved
            tx = Tx(store, runtime.cache)
            for name in names:
                d = now.get(name)
                if d == heads.get(name):
                    continue
                if d is None:
                    del heads[name], shown[name]
                    yield "agent-removed", {"agentId": split_ref(name)[2]}
                    continue
                entry = summary(tx, name, d)
                before = shown.get(name)
                heads[name], shown[name] = d, entry
                if before is None:
                    yield "agent-created", entry
                elif entry != before:
                    yield "agent-updated", entry


async def caller_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/events``: the caller's ``agents``, then ``agent-created``, ``agent-updated`` and
    ``agent-removed`` events (see module doc)."""
    caller = caller_of(request)
    stream = await EventStream(request).open()
    items = follow_caller(request.app[RUNTIME], caller, request.app.get(HEARTBEAT, DEFAULT_HEARTBEAT),
                          request.app.get(SHUTDOWN))
    await pump(stream, items, lambda item: stream.send(*item))
    return stream.response


# -- the route -----------------------------------------------------------------------

_ENTRY = {"type": "object", "description": "the agent as an `agent:list` entry", "properties": {
    "agentId": {"type": "string"}, "status": {"type": "string"}, "taskCount": {"type": "integer", "minimum": 0},
    "error": {}, "updated": {"type": "integer", "description": "the agent's last change (Unix ms)"}},
    "required": ["agentId", "status", "taskCount", "error", "updated"]}
_EVENTS = [
    sse_event("agents", {"type": "object", "properties": {"agents": {"type": "array", "items": _ENTRY}},
                         "required": ["agents"], "additionalProperties": False},
              description="first: every agent of the caller now (terminated ones included)"),
    sse_event("agent-created", _ENTRY, description="an agent was created (or forked)"),
    sse_event("agent-updated", _ENTRY, description="an agent changed: the entry as it is now"),
    sse_event("agent-removed", {"type": "object", "properties": {"agentId": {"type": "string"}},
                                "required": ["agentId"], "additionalProperties": False},
              description="an agent was removed"),
    sse_event("error", component("Error"), description="the stream failed on the server; it ends"),
]
_DOC = ("The caller's agents, live: first an `agents` event listing every agent of the caller (as `agent:list` "
        "with `includeTerminated`), then `agent-created`, `agent-updated` (the agent's entry as it is now: status, "
        "task count, error, last activity `updated`) and `agent-removed` events as they change. Versions committed "
        "in quick succession may come as one `agent-updated`. Only the caller's own agents are sent. Events carry "
        "no `id:`: a client that reconnects gets a new `agents` list. Idle streams carry `: keep-alive` comments.")

#: the caller's event stream
ROUTES = (
    Route("GET", "/api/v1/events", caller_events, "callerEvents", "The caller's agents, live, as server-sent events",
          description=_DOC, responses={"200": {"description": "the event stream", "content": event_stream(_EVENTS)}},
          tags=("agents",)),
)
