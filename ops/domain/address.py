"""Lattice addresses as the Covia venue and its SDK write them, brought to the paths the engine reads.

The venue addresses its lattice as ``<DID>/<namespace>/<path...>``; within a request the
DID is implicit and a path may start with ``/`` (``/w/notes``). Every operation that
takes a lattice path (``covia:read``/``list``/``slice``/``write``/``append``/``delete``,
their ``at`` reads, the agents' ``covia_*`` tools, the ``/api/v1/values`` routes) passes
it through :func:`local_path` first, then :func:`lattice.paths.parse_path`:

========================================  =============================================
path given                                 path read
========================================  =============================================
``w/notes``                                ``w/notes`` (unchanged)
``/w/notes``                               ``w/notes`` (one leading ``/`` is dropped)
``<the caller's own DID>/w/notes``         ``w/notes``
``<another DID>/w/notes``                  ``not_found`` (404), whether or not it exists
``did:bad!/w/x``, ``did:key:z6Mk...``      ``invalid_path`` (a malformed DID; a DID alone)
``//w/notes``, ``<DID>//w/notes``          ``invalid_path`` (an empty segment)
========================================  =============================================

**A caller's DID** (:func:`caller_did`). A caller authenticated by a ``did:key`` token
(``lattice serve --accept-did-auth``) *is* its DID: its caller id is the DID string. A
caller named by a bearer token (``alice``), or the one local caller of a server without
tokens (``local``), has the DID the Covia venue gives the users it authenticates itself:
``<venue DID>:u:<caller id>`` (e.g. ``did:key:z6MkV...:u:alice``). So every caller can
write the fully qualified addresses the SDK builds (``did_url(did, "w", ...)``), and
no token caller id can be mistaken for a DID: token ids have no ``:``
(:data:`ops.surfaces.auth.CALLER_ID`). Another caller's DID names nothing reachable:
``not_found`` with the same message whether that caller exists or not (isolation).

>>> local_path("/w/notes", "alice", "did:key:z6MkV")
'w/notes'
>>> local_path("did:key:z6MkV:u:alice/w/notes", "alice", "did:key:z6MkV")
'w/notes'
>>> caller_did("alice", "did:key:z6MkV"), caller_did("did:key:z6MkA", "did:key:z6MkV")
('did:key:z6MkV:u:alice', 'did:key:z6MkA')
"""

from __future__ import annotations

from .did import is_did
from .errors import Rejected

__all__ = ["caller_did", "local_path"]

_HINT = "paths look like w/notes, /w/notes or <your DID>/w/notes (g/<agentId>/..., j/<jobId>, t/<threadId> too)"


def caller_did(caller: str, venue_did: str | None) -> str | None:
    """The DID of ``caller``: the caller id itself for a DID caller, else ``<venue_did>:u:<caller>``.

    Args:
        caller: the caller id a request acts as (a bearer token's caller id, ``local``, or a DID).
        venue_did: the serving venue's DID; None: a non-DID caller has no DID.
    """
    if caller.startswith("did:"):
        return caller
    return f"{venue_did}:u:{caller}" if venue_did else None


def local_path(path: str, caller: str, venue_did: str | None = None, *, field: str = "$.input.path") -> str:
    """``path`` relative to ``caller``'s namespaces: a leading ``/`` or the caller's own DID prefix removed.

    Pure: the result still has to pass :func:`lattice.paths.parse_path` (which rejects an
    empty path, an empty segment such as the one ``//w/x`` leaves, an unknown namespace).

    Args:
        path: as the client sent it (untrusted).
        caller: the caller id the request acts as. venue_did: the serving venue's DID (see
            :func:`caller_did`). field: where ``path`` is in the request, for errors.

    Returns:
        The namespace-relative path (``w/notes``).

    Raises:
        Rejected: ``invalid_path`` (400): a DID prefix that is not a DID, or a DID with no
            path after it; ``not_found`` (404): a DID other than the caller's own (the same
            answer whether or not that DID's caller exists).
    """
    if not isinstance(path, str) or not path:
        return path
    if path.startswith("did:"):
        did, slash, rest = path.partition("/")
        if not is_did(did):
            raise Rejected("invalid_path", f"{did[:100]!r} is not a DID (did:<method>:<id>)", path=field,
                           hint=_HINT)
        if not slash:
            raise Rejected("invalid_path", "a DID alone names no value: add a namespace and a path, e.g. "
                                           f"{did}/w/notes", path=field, hint=_HINT)
        if did != caller_did(caller, venue_did):
            raise Rejected("not_found", f"nothing reachable at {path[:300]!r}: a DID-qualified path reaches "
                                        "only the caller's own namespaces", path=field,
                           hint="drop the DID (w/notes) to address your own namespaces")
        return rest
    if path.startswith("/"):
        return path[1:]
    return path
