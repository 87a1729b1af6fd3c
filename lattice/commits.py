"""Commits: the event log of a ref.

A commit object records one event and the full state tree after it::

    {format, parent: digest | None, root: Link, seq, ts, op, input, caller}

``seq`` counts from 0 along the chain, ``ts`` is Unix milliseconds (passed in:
commits never read a clock), ``op`` the operation key, ``input`` the event's
input (stored like any value, so large text is shared with the state).
Every version stays readable: a ref moves, the commits it left do not.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgspec

from .codec import FORMAT_VERSION, Link, decode, encode
from .errors import InvalidValue, NotFound
from .nodes import Tx

__all__ = ["Commit", "write_commit", "read_commit", "log"]


class Commit(msgspec.Struct, frozen=True):
    """A decoded commit. ``root`` is the link to the state tree (see
    :meth:`Tx.put_root`); ``input`` is in stored form (open it with a Tx)."""

    parent: bytes | None
    root: Link
    seq: int
    ts: int
    op: str
    input: Any
    caller: str
    format: int = FORMAT_VERSION


def write_commit(tx: Tx, *, parent: bytes | None, parent_seq: int | None, root: Link, ts: int, op: str,
                 input: Any, caller: str) -> tuple[bytes, Commit]:
    """Buffer a commit object in ``tx``; return ``(digest, commit)``.

    Args:
        parent: digest of the previous commit of the ref, or None for the first.
        parent_seq: the parent's ``seq`` (ignored without a parent).
        root: the root's link (from :meth:`Tx.put_root`).
        ts: Unix milliseconds.
    """
    seq = 0 if parent is None else (parent_seq or 0) + 1
    stored_input = tx.put_value(input)
    obj = {"format": FORMAT_VERSION, "parent": parent, "root": root, "seq": seq, "ts": ts, "op": op,
           "input": stored_input, "caller": caller}
    d = tx.put(encode(obj))
    return d, Commit(parent, root, seq, ts, op, stored_input, caller)


def read_commit(store_or_tx: Any, d: bytes) -> Commit:
    """Return the commit stored under ``d``.

    Raises:
        NotFound: no such object. InvalidValue: the object is not a commit.
    """
    obj = decode(store_or_tx.get(d))
    if type(obj) is not dict or not _is_commit(obj):
        raise InvalidValue(f"object {d.hex()} is not a commit")
    return Commit(obj["parent"], obj["root"], obj["seq"], obj["ts"], obj["op"], obj["input"], obj["caller"],
                  obj["format"])


_ABSENT = object()
_SHAPE = {"root": Link, "seq": int, "ts": int, "op": str, "caller": str, "format": int}


def _is_commit(obj: dict) -> bool:
    return (all(type(obj.get(k, _ABSENT)) is t for k, t in _SHAPE.items()) and "input" in obj
            and (obj.get("parent", _ABSENT) is None or type(obj.get("parent")) is bytes))


def log(store: Any, head: bytes | None, limit: int | None = None) -> Iterator[tuple[bytes, Commit]]:
    """Yield ``(digest, commit)`` from ``head`` back along parents, newest first."""
    n = 0
    d = head
    while d is not None and (limit is None or n < limit):
        try:
            c = read_commit(store, d)
        except NotFound:
            raise NotFound(f"commit {d.hex()} is missing from the store") from None
        yield d, c
        d = c.parent
        n += 1
