"""Route declarations: each HTTP route once, with the OpenAPI description of it.

A :class:`Route` names the method, the path, the handler and what the OpenAPI
document says about the route (summary, parameters, request body, responses,
the rejection codes it may answer with, tags). :mod:`ops.surfaces.app`
registers the routes from one table; :func:`ops.surfaces.openapi.openapi_document`
writes the ``paths`` of the document from the same table, so that a route and
its documentation cannot drift apart.

The OpenAPI fragments (``responses``, ``request_body``) are plain dicts; the
helpers below build the common ones. ``#/components/schemas/<name>`` references
name the schemas :mod:`ops.surfaces.openapi` generates from the operation
contracts (``Job``, ``InvokeRequest``, ``Error``...).

>>> Param("jobId", "path", {"type": "string"}).openapi()
{'name': 'jobId', 'in': 'path', 'required': True, 'schema': {'type': 'string'}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Mapping

from aiohttp import web

__all__ = ["Route", "Param", "Handler", "JOB_ID", "component", "json_content", "json_response", "event_stream", "sse_event",
           "path_params", "openapi_path"]

#: an aiohttp request handler
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter of a route.

    Attributes:
        name: as in the path template (``{jobId}``), the query string or the header.
        where: ``"path"``, ``"query"`` or ``"header"``.
        schema: the JSON Schema of the value (as text: every value arrives as a string).
        description: what it means (optional).
        required: whether it must be sent (path parameters always must).
    """

    name: str
    where: Literal["path", "query", "header"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI Parameter Object."""
        out: dict[str, Any] = {"name": self.name, "in": self.where, "required": self.required or self.where == "path"}
        if self.description:
            out["description"] = self.description
        out["schema"] = dict(self.schema)
        return out


@dataclass(frozen=True, eq=False)
class Route:
    """One HTTP route: what serves it and how the OpenAPI document describes it.

    Attributes:
        method: ``GET``, ``POST``, ``PUT`` or ``DELETE`` (a ``GET`` also answers ``HEAD``).
        path: the path template, in OpenAPI syntax (``/api/v1/jobs/{jobId}``); the
            handler reads each ``{name}`` from ``request.match_info[name]``. ``{name:regex}``
            (aiohttp's syntax) matches ``regex`` (``.+``: slashes too); OpenAPI shows ``{name}``.
        handler: the aiohttp handler.
        operation_id: the OpenAPI ``operationId``.
        summary: one line.
        description: more, when one line is not enough.
        parameters: the path, query and header parameters; every ``{name}`` of
            ``path`` must have one.
        request_body: the OpenAPI Request Body Object, or None.
        responses: the OpenAPI Response Objects of the successful replies, by status.
        errors: the rejection codes (:data:`ops.domain.errors.HTTP_STATUS`) the route
            may answer with; documented as error responses grouped by status.
        tags: OpenAPI tags.
        documented: False for a route the OpenAPI document leaves out (``/mcp``
            speaks JSON-RPC, described by the MCP specification).
    """

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    description: str = ""
    parameters: tuple[Param, ...] = ()
    request_body: Mapping[str, Any] | None = None
    responses: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    documented: bool = True

    def __post_init__(self) -> None:
        declared = {p.name for p in self.parameters if p.where == "path"}
        if path_params(self.path) != declared:
            raise ValueError(f"route {self.method} {self.path}: path parameters {sorted(path_params(self.path))} "
                             f"but declared {sorted(declared)}")


#: the ``{jobId}`` of the job routes (REST and SSE)
JOB_ID = Param("jobId", "path", {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{32}$"}, "job id (any case, 0x optional)")


def path_params(path: str) -> set[str]:
    """The ``{name}`` parameters of a path template (``{name:regex}``: a parameter matching ``regex``,
    e.g. ``{name:.+}`` for one that may hold slashes).

    >>> sorted(path_params("/api/v1/jobs/{jobId}/cancel")), sorted(path_params("/api/v1/operations/{name:.+}"))
    (['jobId'], ['name'])
    """
    return set(re.findall(r"\{([^{}/:]+)(?::[^{}]+)?\}", path))


def openapi_path(path: str) -> str:
    """A route's path as OpenAPI writes it: ``{name:regex}`` -> ``{name}``.

    >>> openapi_path("/api/v1/operations/{name:.+}")
    '/api/v1/operations/{name}'
    """
    return re.sub(r"\{([^{}/:]+):[^{}]+\}", r"{\1}", path)


def component(name: str) -> dict[str, str]:
    """A reference to ``#/components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``content`` map of one ``application/json`` body."""
    return {"application/json": {"schema": dict(schema)}}


def json_response(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI Response Object with an ``application/json`` body."""
    return {"description": description, "content": json_content(schema)}


def sse_event(event: str, data: Mapping[str, Any], id: Mapping[str, Any] | None = None,
              description: str = "", id_required: bool = True) -> dict[str, Any]:
    """The schema of one kind of server-sent event: ``{event, data, id?}``.

    Args:
        event: the ``event:`` name.
        data: the JSON Schema of the ``data:`` line's JSON value.
        id: the JSON Schema of the ``id:`` field; None: the event carries no ``id:``.
        description: what the event means.
        id_required: whether every such event carries the ``id:`` (else only some do).
    """
    props: dict[str, Any] = {"event": {"const": event},
                             "data": {"type": "string", "contentMediaType": "application/json",
                                      "contentSchema": dict(data)}}
    if id is not None:
        props["id"] = dict(id)
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "required": ["event", "data", *(["id"] if id is not None and id_required else [])]}
    if id is None:
        out["not"] = {"required": ["id"]}
    if description:
        out["description"] = description
    return out


def event_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An OpenAPI ``content`` map of a ``text/event-stream`` body.

    The body is a string; ``x-itemSchema`` (OpenAPI 3.2's ``itemSchema``, as an
    extension of this 3.1 document) describes each event, one of ``events``
    (from :func:`sse_event`).
    """
    return {"text/event-stream": {"schema": {"type": "string"}, "x-itemSchema": {"oneOf": events}}}
