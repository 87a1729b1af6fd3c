"""Handlers of the lattice path operations (``covia:*``): reads anywhere in the caller's
namespaces (``g/`` agents, ``j/`` jobs, ``w/`` the workspace, ``t/`` LangGraph threads; at any
version of an agent or a thread; ``v/`` the venue's globals: :func:`venue_globals`), writes only under ``w/``. A path may start with ``/`` or with
the caller's own DID (:func:`ops.domain.address.local_path`); another caller's DID is ``not_found``."""

from __future__ import annotations

from typing import Any, Callable

import re

import msgspec

from lattice.commits import read_commit
from lattice.errors import InvalidPath, InvalidValue, NotFound
from lattice.history import resolve
from lattice.nodes import HMap, Tx, Vec, map_keys, map_len, seq_len
from lattice.paths import Missing, delete_path, kind_of, open_level, parse_path, read_path, write_path

from ...domain import operations as O
from ...domain.address import local_path
from ...domain.contracts import REGISTRY
from ...domain.errors import OpError, Rejected
from ...domain.jobs import is_job_record, normalize_job_id
from ...domain.refs import ws_ref
from ..context import Engine
from ..tools import describe
from ..unit import Unit

__all__ = ["HANDLERS", "CONVEX_TYPES", "target", "value_at", "venue_globals"]

#: our value type names (``type``) and the venue's Convex type names (``convexType``) for them
CONVEX_TYPES = {"map": "Map", "list": "Vector", "string": "String", "integer": "Long", "number": "Double",
                "boolean": "Boolean", "bytes": "Blob", "null": "Nil"}


def _typed(kind: str) -> dict[str, str]:
    """``{type, convexType}`` of a value of kind ``kind`` (:func:`lattice.paths.kind_of`)."""
    return {"type": kind, "convexType": CONVEX_TYPES.get(kind, kind)}


def target(caller: str, path: str, venue_did: str | None = None) -> tuple[str, str | None, list[str]]:
    """Map a caller's path to ``(namespace, ref name or None for a bare namespace, segments)``.

    ``path`` may start with ``/`` or with the caller's own DID (:func:`ops.domain.address.local_path`;
    ``venue_did``: the serving venue's, for a token caller's DID).

    Raises:
        Rejected: ``invalid_path`` (with a hint); ``not_found``: another caller's DID.
    """
    try:
        ns, segs = parse_path(local_path(path, caller, venue_did))
    except InvalidPath as e:
        raise Rejected("invalid_path", e.message, path="$.input.path", hint=e.hint) from None
    if ns == "w":
        return ns, ws_ref(caller), segs
    if ns == "v":
        return ns, None, segs
    if not segs:
        return ns, None, []
    ident = segs[0]
    if ns == "j":
        ident = normalize_job_id(ident) or ident
    return ns, f"{ns}/{caller}/{ident}", segs[1:]


def value_at(engine: Engine, tx: Tx, caller: str, path: str, at: Any = None) -> Any:
    """The raw value at a caller's path (at version ``at`` of an agent), or ``Missing``.
    A bare ``g`` or ``j`` is a virtual map of the caller's agents or jobs."""
    ns, ref, segs = target(caller, path, engine.venue_did)
    if at is not None:
        if ns not in ("g", "t") or ref is None:  # v/ too: the venue's globals have no versions
            raise Rejected("invalid_input", "`at` reads a version of an agent or a LangGraph thread: the path must "
                                            "be g/<agentId>/... or t/<threadId>/...", path="$.input.at")
        ident = ref.split("/", 2)[2]
        if ns == "g":
            _, c = engine.at_version(tx, caller, ident, at, agent_path="$.input.path")
        else:
            c = _thread_version(engine, tx, ref, ident, at)
        return read_path(tx, tx.raw_root(c.root), segs)
    if ns == "v":
        return _walk(venue_globals(engine), segs)
    if ref is None:
        prefix = f"{ns}/{caller}/"
        raw: Any = {}
        for name, d in engine.store.refs(prefix):
            c = read_commit(tx, d)
            raw[name[len(prefix):]] = c.root
            if ns == "j" and not is_job_record(tx.load_root(c.root)):  # folded into its agent's commit
                raw[name[len(prefix):]] = engine.jobs.resolve(tx, name, d, c)
        if ns == "j":
            for jid, job in engine.jobs.unstored(caller):
                raw.setdefault(jid, job)
        return raw
    raw = engine.raw_root(tx, ref)
    if raw is Missing:
        return Missing
    return read_path(tx, raw, segs)


def venue_globals(engine: Engine) -> dict[str, Any]:
    """The virtual, read-only ``v/`` namespace, as the Covia venue lays it out (venue/docs/OPERATIONS.md):
    ``v/info/{name, did, version, started (epoch ms), protocols, adapters/<adapter>: {name, description,
    operations (a count)}}`` and ``v/ops/<adapter>/<op>``: each operation's ``{name, operation (our key),
    summary, version}``. The same for every caller; nothing of it is stored."""
    info = dict(engine.venue_info)
    adapters: dict[str, Any] = {}
    ops: dict[str, dict[str, Any]] = {}
    for key, contract in sorted(REGISTRY.items()):
        adapter, _, name = key.partition(":")
        entry = adapters.setdefault(adapter, {"name": adapter, "description": f"the {adapter}:* operations",
                                              "operations": 0})
        entry["operations"] += 1
        kebab = re.sub(r"(?<!^)([A-Z])", lambda m: "-" + m.group(1).lower(), name)
        ops.setdefault(adapter, {})[kebab] = {"name": f"v/ops/{adapter}/{kebab}", "operation": key,
                                              "summary": contract.summary, "version": contract.version}
    info["adapters"] = adapters
    return {"info": info, "ops": ops}


def _walk(value: Any, segs: list[str]) -> Any:
    for seg in segs:
        if isinstance(value, dict) and seg in value:
            value = value[seg]
        elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
            value = value[int(seg)]
        else:
            return Missing
    return value


def _thread_version(engine: Engine, tx: Tx, ref: str, thread: str, at: Any) -> Any:
    """The commit of a LangGraph thread's checkpoint named by ``at`` (a seq: its depth; or a commit id)."""
    head = engine.store.ref(ref)
    if head is None:
        raise OpError("not_found", f"no thread {thread!r}", path="$.input.path")
    try:
        return resolve(tx, head, at)[1]
    except NotFound as e:
        raise OpError("not_found", f"thread {thread!r}: {e.message}", path="$.input.at") from None
    except InvalidValue as e:
        raise Rejected("invalid_input", e.message, path="$.input.at") from None


async def read(engine: Engine, caller: str, inp: O.ReadInput, job: dict) -> dict:
    """``{exists, value, valueBytes}`` (``valueBytes``: the value's JSON size); over ``maxSize``:
    ``{exists: true, value: null, truncated: true, size, valueBytes, type, convexType}``."""
    def fn(u: Unit) -> dict:
        v = value_at(engine, u.tx, caller, inp.path, inp.at)
        if v is Missing:
            return {"exists": False, "value": None}
        size = u.tx.json_size(v)  # without building the value: a huge read costs no memory
        if size > inp.maxSize:
            return {"exists": True, "value": None, "truncated": True, "size": size, "valueBytes": size,
                    **_typed(kind_of(open_level(u.tx, v)))}
        return {"exists": True, "value": u.tx.materialize(v), "valueBytes": size}
    return await engine.sync(caller, job, fn)


async def list_path(engine: Engine, caller: str, inp: O.ListPathInput, job: dict) -> dict:
    """:func:`ops.engine.tools.describe` with the venue's ``convexType``; a missing path is
    ``{exists: false, type: "null", convexType: "Nil"}``."""
    def fn(u: Unit) -> dict:
        d = describe(u.tx, value_at(engine, u.tx, caller, inp.path, inp.at), inp.offset, inp.limit)
        return {**d, **_typed(d["type"] if d["exists"] else "null")}
    return await engine.sync(caller, job, fn)


async def slice_path(engine: Engine, caller: str, inp: O.SliceInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        tx = u.tx
        v = value_at(engine, tx, caller, inp.path, inp.at)
        if v is Missing:
            return {"exists": False}
        v = open_level(tx, v)
        t = type(v)
        end = inp.offset + inp.limit
        if t is list:
            return {"exists": True, **_typed("list"), "count": len(v), "offset": inp.offset,
                    "values": [tx.materialize(x) for x in v[inp.offset:end]]}
        if t is Vec:
            return {"exists": True, **_typed("list"), "count": v.count, "offset": inp.offset,
                    "values": [tx.materialize(x) for x in v.iter_raw(inp.offset, end)]}
        if t is dict or t is HMap:
            keys = map_keys(v)[inp.offset:end]  # only the slice's values are loaded
            return {"exists": True, **_typed("map"), "count": map_len(v), "offset": inp.offset,
                    "values": [{"key": k, "value": tx.materialize(v[k] if t is dict else v.get_raw(k))}
                               for k in keys]}
        return {"exists": True, **_typed(kind_of(v))}
    return await engine.sync(caller, job, fn)


def _write_target(engine: Engine, caller: str, path: str) -> list[str]:
    ns, _, segs = target(caller, path, engine.venue_did)
    if ns != "w":
        raise OpError("forbidden", f"{path} is framework-managed: g/, j/, t/ and v/ are read-only",
                      path="$.input.path",
                      hint="write under w/, e.g. w/notes; change agents with agent:* operations")
    if not segs:
        raise Rejected("invalid_path", "a write needs a path below w/, e.g. w/notes", path="$.input.path")
    return segs


async def _ws_edit(engine: Engine, caller: str, op: str, input: Any,
                   edit: Callable[[Tx, Any], tuple[Any, dict[str, Any]]], job: dict) -> dict:
    """Apply ``edit`` (``(tx, workspace) -> (new workspace, output)``; new ``None``: nothing to
    change) to the caller's workspace; the job's output is ``edit``'s."""
    def fn(u: Unit) -> Any:
        name = ws_ref(caller)
        cur = u.read(name)
        try:
            new, output = edit(u.tx, {} if cur is None else cur)
        except InvalidPath as e:
            raise OpError("invalid_path", e.message, path="$.input.path") from None
        if new is not None:
            u.write(name, {} if new is Missing else new, op, input)
        return output
    return await engine.sync(caller, job, fn)


def _presence(tx: Tx, ws: Any, segs: list[str]) -> tuple[Any, dict[str, Any]]:
    """``(value at segs or Missing, {pathCreated: true} when its parent is missing)``: a write
    there builds the missing maps above it."""
    parent_missing = len(segs) > 1 and read_path(tx, ws, segs[:-1]) is Missing
    return read_path(tx, ws, segs), ({"pathCreated": True} if parent_missing else {})


async def write(engine: Engine, caller: str, inp: O.WriteInput, job: dict) -> dict:
    """``{written: true, existed, pathCreated?}``: ``existed`` whether a value was replaced."""
    segs = _write_target(engine, caller, inp.path)

    def edit(tx: Tx, ws: Any) -> tuple[Any, dict[str, Any]]:
        old, created = _presence(tx, ws, segs)
        new = write_path(tx, ws, segs, inp.value, where=("w",))
        return new, {"written": True, "existed": old is not Missing, **created}
    return await _ws_edit(engine, caller, "covia:write", msgspec.to_builtins(inp), edit, job)


async def append(engine: Engine, caller: str, inp: O.WriteInput, job: dict) -> dict:
    """``{appended: true, existed, index, newSize, pathCreated?}``: ``existed`` whether the list
    was there, ``index`` where the value landed, ``newSize`` the list's length after."""
    segs = _write_target(engine, caller, inp.path)

    def edit(tx: Tx, ws: Any) -> tuple[Any, dict[str, Any]]:
        old, created = _presence(tx, ws, segs)
        new = write_path(tx, ws, segs, inp.value, append=True, where=("w",))
        cur = None if old is Missing else open_level(tx, old)
        existed = type(cur) in (list, Vec)  # else a new list (over nothing, or a stored null)
        n = seq_len(cur) if existed else 0
        return new, {"appended": True, "existed": existed, "index": n, "newSize": n + 1, **created}
    return await _ws_edit(engine, caller, "covia:append", msgspec.to_builtins(inp), edit, job)


async def delete(engine: Engine, caller: str, inp: O.PathInput, job: dict) -> dict:
    """``{deleted: true}``, or ``{deleted: false}`` when nothing was there (nothing changes)."""
    segs = _write_target(engine, caller, inp.path)

    def edit(tx: Tx, ws: Any) -> tuple[Any, dict[str, Any]]:
        new, found = delete_path(tx, ws, segs)
        return (new if found else None), {"deleted": found}
    return await _ws_edit(engine, caller, "covia:delete", msgspec.to_builtins(inp), edit, job)


HANDLERS = {"covia:read": read, "covia:list": list_path, "covia:slice": slice_path, "covia:write": write,
            "covia:append": append, "covia:delete": delete}
