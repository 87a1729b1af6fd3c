"""Lattice paths: parsing, and reads/writes that touch only the nodes on the path.

A path is ``/``-separated; the first segment is the namespace (``g``, ``w``,
``j``). A segment indexes a map by key or a list by its decimal position.

>>> parse_path("g/Alice/timeline/3")
('g', ['Alice', 'timeline', '3'])
"""

from __future__ import annotations

from typing import Any

from .codec import Link
from .errors import InvalidPath
from .nodes import BLOB, MAP, NODE, VEC, HMap, Tx, Vec, map_delete, map_set, seq_append, seq_len, seq_set

__all__ = ["NAMESPACES", "MAX_DEPTH", "MAX_SEGMENT", "parse_path", "open_level", "kind_of", "read_path", "write_path",
           "delete_path", "Missing"]

#: g/ agents, w/ workspace, j/ jobs, t/ LangGraph threads, v/ the venue's globals (read-only, virtual)
NAMESPACES = ("g", "w", "j", "t", "v")
#: most segments a path may have (namespace included)
MAX_DEPTH = 64
#: longest segment, in characters
MAX_SEGMENT = 256


class _MissingType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "Missing"


#: returned by :func:`read_path` when nothing is at the path
Missing = _MissingType()


def parse_path(path: str) -> tuple[str, list[str]]:
    """Split ``path`` into its namespace and segments.

    Args:
        path: e.g. ``"g/Alice/state/history/0"``. Source: the caller (untrusted).

    Raises:
        InvalidPath: empty, a leading/trailing/double ``/``, an unknown
            namespace, more than ``MAX_DEPTH`` segments, a segment longer
            than ``MAX_SEGMENT`` or holding a control character.
    """
    if not isinstance(path, str) or not path:
        raise InvalidPath("path is empty: expected e.g. 'g/Alice/timeline'", hint="paths look like g/<agentId>/..., w/... or j/<jobId>")
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidPath(f"path has {len(parts)} segments, at most {MAX_DEPTH} allowed")
    for i, p in enumerate(parts):
        if not p:
            raise InvalidPath(f"empty segment at position {i} in {path!r}", hint="remove the leading, trailing or doubled '/'")
        if len(p) > MAX_SEGMENT:
            raise InvalidPath(f"segment {i} is {len(p)} characters long, at most {MAX_SEGMENT} allowed")
        if any(c < " " or "\x7f" <= c <= "\x9f" for c in p):
            raise InvalidPath(f"segment {i} of the path holds a control character")
    ns = parts[0]
    if ns not in NAMESPACES:
        raise InvalidPath(f"unknown namespace {ns!r} in {path!r}: expected one of g, w, j, t, v",
                          hint="paths look like g/<agentId>/..., w/..., j/<jobId> t/<threadId> (LangGraph) or v/info/... (the venue)")
    return ns, parts[1:]


def _index(seg: str) -> int | None:
    if seg.isascii() and seg.isdigit() and (seg == "0" or seg[0] != "0"):
        return int(seg)
    return None


def open_level(tx: Tx, v: Any) -> Any:
    """Open one level of a stored value: a link becomes a container, handle or scalar (children stay links)."""
    while type(v) is Link:
        code = v.code
        if code == NODE:
            v = tx.load(v)
        elif code == VEC:
            return Vec.open(tx, v)
        elif code == MAP:
            return HMap.open(tx, v)
        elif code == BLOB:
            return tx.load(v)
        else:
            return v
    return v


def read_path(tx: Tx, value: Any, segments: list[str]) -> Any:
    """Return the stored-form value at ``segments`` below ``value``, or :data:`Missing`.

    Loads only the objects on the path: reading item 3 of a 100k-entry
    timeline reads the vector root and one node per level, not the timeline.
    Indexing a scalar, a missing key or an out-of-range position gives Missing.
    """
    for seg in segments:
        v = open_level(tx, value)
        t = type(v)
        if t is dict:
            value = v.get(seg, Missing)
        elif t is HMap:
            try:
                value = v.get_raw(seg)
            except KeyError:
                value = Missing
        elif t is list or t is Vec:
            i = _index(seg)
            if i is None or i >= seq_len(v):
                value = Missing
            else:
                value = v[i] if t is list else v.get_raw(i)
        else:
            value = Missing
        if value is Missing:
            return Missing
    return value


def _open_container(tx: Tx, v: Any) -> Any:
    v = open_level(tx, v)
    if type(v) in (dict, list):
        return tx.open(v)
    return v


def write_path(tx: Tx, value: Any, segments: list[str], new: Any, *, append: bool = False,
               where: tuple[str, ...] = ()) -> Any:
    """Return ``value`` with ``new`` written at ``segments`` (missing maps are created).

    With ``append=True`` the target must be a list (or missing: a new list) and
    ``new`` is appended to it.

    Args:
        where: the path of ``value`` itself (e.g. ``("w",)``), for error messages.

    Raises:
        InvalidPath: a segment crosses a scalar (the message names the segment
            holding it), a list position is not a number or out of range
            (position == length appends), or an append targets a non-list.
    """
    if not segments:
        if append:
            cur = _open_container(tx, value)
            if cur is Missing or cur is None:
                return [new]
            if type(cur) not in (list, Vec):
                raise InvalidPath(f"cannot append to {_show(where)}: it holds {_a(kind_of(cur))}, not a list")
            return seq_append(tx, cur, [new])
        return new
    seg, rest = segments[0], segments[1:]
    cur = Missing if value is Missing else _open_container(tx, value)
    if cur is Missing or cur is None:
        cur = {}
    t = type(cur)
    here = (*where, seg)
    if t is dict or t is HMap:
        child = read_path(tx, cur, [seg]) if t is HMap else cur.get(seg, Missing)
        return map_set(tx, cur, seg, write_path(tx, child, rest, new, append=append, where=here))
    if t is list or t is Vec:
        i = _index(seg)
        n = seq_len(cur)
        if i is None:
            raise InvalidPath(f"{_show(where)} is a list: {seg!r} is not a position (0..{n})")
        if i > n:
            raise InvalidPath(f"list position {seg} of {_show(where)} is out of range (length {n}; {n} appends)")
        if i == n:
            return seq_append(tx, cur, [write_path(tx, Missing, rest, new, append=append, where=here)])
        child = cur[i] if t is list else cur.get_raw(i)
        return seq_set(tx, cur, i, write_path(tx, child, rest, new, append=append, where=here))
    raise InvalidPath(f"cannot write below {_show(where)}: it holds {_a(kind_of(cur))}, not a map or a list")


def _show(where: tuple[str, ...]) -> str:
    return repr("/".join(where)) if where else "the root"


def _a(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def delete_path(tx: Tx, value: Any, segments: list[str]) -> tuple[Any, bool]:
    """Return ``(value without the entry at segments, whether it existed)``."""
    if not segments:
        return Missing, True
    cur = _open_container(tx, value)
    seg, rest = segments[0], segments[1:]
    t = type(cur)
    if t is dict or t is HMap:
        child = read_path(tx, cur, [seg])
        if child is Missing:
            return value, False
        if not rest:
            return map_delete(tx, cur, seg), True
        new_child, found = delete_path(tx, child, rest)
        return (map_set(tx, cur, seg, new_child) if found else value), found
    if t is list or t is Vec:
        i = _index(seg)
        if i is None or i >= seq_len(cur):
            return value, False
        child = cur[i] if t is list else cur.get_raw(i)
        if not rest:
            items = list(cur) if t is list else [tx.open(x) for x in cur.iter_raw()]
            del items[i]
            return items, True
        new_child, found = delete_path(tx, child, rest)
        return (seq_set(tx, cur, i, new_child) if found else value), found
    return value, False


def kind_of(v: Any) -> str:
    """The JSON-ish type name of an opened value: map, list, string, integer, number, boolean, bytes, null."""
    if v is None:
        return "null"
    return {str: "string", bytes: "bytes", bool: "boolean", int: "integer", float: "number", dict: "map", list: "list",
            Vec: "list", HMap: "map"}.get(type(v), type(v).__name__)
