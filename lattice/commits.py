"""Commits: the event log of a ref.

A commit object records one event and the full state tree after it::

    {format, parent: digest | None, root: Link, seq, ts, op, input, caller,
     skip?: digest, skipSeq?: int}

``seq`` counts from 0 along the chain, ``ts`` is Unix milliseconds (passed in:
commits never read a clock), ``op`` the operation key, ``input`` the event's
input (stored like any value, so large text is shared with the state).
Every version stays readable: a ref moves, the commits it left do not.

``skip`` is a jump pointer to an older commit of the chain (Myers' skew-binary
scheme: the jump of a commit is its parent's jump's jump when the two jumps
span equal distances, else its parent), so :func:`find` reaches any ancestor
in O(log n) reads. It is stored only where it is not the parent.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgspec

from .codec import FORMAT_VERSION, Link, decode, encode
from .errors import InvalidValue, NotFound
from .nodes import Tx

__all__ = ["Commit", "write_commit", "read_commit", "find", "log", "squash"]


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
    skip: bytes | None = None
    skipSeq: int = 0

    def jump(self) -> tuple[bytes | None, int]:
        """``(digest, seq)`` of this commit's jump target (``(None, 0)`` for a first commit)."""
        if self.skip is not None:
            return self.skip, self.skipSeq
        return self.parent, max(self.seq - 1, 0)


def write_commit(tx: Tx, *, parent: bytes | None, parent_commit: "Commit | None", root: Link, ts: int, op: str,
                 input: Any, caller: str) -> tuple[bytes, Commit]:
    """Buffer a commit object in ``tx``; return ``(digest, commit)``.

    Args:
        parent: digest of the previous commit of the ref, or None for the first.
        parent_commit: the decoded parent (None without one).
        root: the root's link (from :meth:`Tx.put_root`).
        ts: Unix milliseconds.
    """
    seq = 0 if parent is None else parent_commit.seq + 1
    stored_input = tx.put_value(input)
    obj = {"format": FORMAT_VERSION, "parent": parent, "root": root, "seq": seq, "ts": ts, "op": op,
           "input": stored_input, "caller": caller}
    skip, skip_seq = (None, 0) if parent is None else _jump_for(tx, parent, parent_commit)
    if skip is not None and skip != parent:
        obj["skip"], obj["skipSeq"] = skip, skip_seq
    else:
        skip, skip_seq = None, 0
    d = tx.put(encode(obj))
    c = Commit(parent, root, seq, ts, op, stored_input, caller, FORMAT_VERSION, skip, skip_seq)
    cache = getattr(tx, "_cache", None)
    if cache is not None:  # what read_commit would decode: the next read of a new head needs no store read
        cache[(_COMMIT, d)] = c
    return d, c


def _jump_for(tx: Any, p: bytes, pc: Commit) -> tuple[bytes, int]:
    """The jump target of a new child of commit ``p`` (Myers 1983)."""
    if pc.parent is None:
        return p, pc.seq  # the first commit is its own jump
    j, js = pc.jump()
    jc = read_commit(tx, j)
    jj, jjs = (j, js) if jc.parent is None else jc.jump()
    if pc.seq - js == js - jjs:
        return jj, jjs
    return p, pc.seq


def read_commit(store_or_tx: Any, d: bytes) -> Commit:
    """Return the commit stored under ``d``.

    Read through a :class:`~lattice.nodes.Tx`, the decoded commit is kept in its object cache
    (commits are immutable; a run reads the same heads several times).

    Raises:
        NotFound: no such object. InvalidValue: the object is not a commit.
    """
    cache = getattr(store_or_tx, "_cache", None)
    key = (_COMMIT, bytes(d))
    if cache is not None:
        c = cache.get(key)
        if c is not None:
            return c
    obj = decode(store_or_tx.get(d))
    if type(obj) is not dict or not _is_commit(obj):
        raise InvalidValue(f"object {d.hex()} is not a commit")
    c = Commit(obj["parent"], obj["root"], obj["seq"], obj["ts"], obj["op"], obj["input"], obj["caller"],
               obj["format"], obj.get("skip"), obj.get("skipSeq", 0))
    if cache is not None:
        cache[key] = c
    return c


#: the key of a decoded commit in a transaction's object cache (beside decoded objects, keyed by digest)
_COMMIT = "commit"


_ABSENT = object()
_SHAPE = {"root": Link, "seq": int, "ts": int, "op": str, "caller": str, "format": int}


def _is_commit(obj: dict) -> bool:
    return (all(type(obj.get(k, _ABSENT)) is t for k, t in _SHAPE.items()) and "input" in obj
            and (obj.get("parent", _ABSENT) is None or type(obj.get("parent")) is bytes))


def find(store: Any, head: bytes, seq: int) -> tuple[bytes, Commit]:
    """The commit with ``seq`` on the chain ending at ``head``, in O(log n) reads.

    Raises:
        NotFound: ``seq`` is negative or after the head.
    """
    d, c = head, read_commit(store, head)
    if seq < 0 or seq > c.seq:
        raise NotFound(f"version {seq} does not exist: versions are 0..{c.seq}")
    while c.seq > seq:
        if c.parent is None:  # the base of a squashed chain (see squash)
            raise NotFound(f"version {seq} was squashed into version {c.seq} (the chain was pruned)")
        j, js = c.jump()
        d = j if js >= seq else c.parent
        c = read_commit(store, d)
    return d, c


def squash(tx: Tx, head: bytes, keep_from: int, *, ts: int, op: str, input: Any, caller: str,
           remap: Any = None) -> tuple[bytes, dict[bytes, bytes]]:
    """Rewrite a chain so that versions ``< keep_from`` become one base version.

    The base is a new first commit (no parent) with ``seq = keep_from - 1``, the root of
    that version, and ``op``/``input``/``caller``/``ts`` saying who squashed it and when.
    Every later version is rewritten on top of it with its seq, root, time, op, caller,
    format and input unchanged, except what ``remap`` changes in an input (``remap(op, stored
    input, ids) -> stored input``, ``ids``: old commit id -> new). Buffers the commits in
    ``tx``; returns ``(new head, {old commit id: new commit id})``.

    Raises:
        InvalidValue: ``keep_from`` is not in ``first seq + 1 .. head seq + 1`` (``head seq + 1``:
            the head itself becomes the base, with nothing above it).
    """
    chain = list(log(tx, head))
    chain.reverse()
    top = chain[-1][1].seq
    first = chain[0][1].seq
    if not first < keep_from <= top + 1:
        raise InvalidValue(f"versions {first}..{top}: cannot keep from {keep_from}")
    ids: dict[bytes, bytes] = {}
    base_old, base_c = chain[keep_from - 1 - first]
    obj = {"format": FORMAT_VERSION, "parent": None, "root": base_c.root, "seq": base_c.seq, "ts": ts, "op": op,
           "input": tx.put_value(input), "caller": caller}
    d = tx.put(encode(obj))
    c = Commit(None, base_c.root, base_c.seq, ts, op, obj["input"], caller, FORMAT_VERSION)
    for old, _ in chain[:keep_from - first]:
        ids[old] = d  # every squashed version maps to the base
    for old, oc in chain[keep_from - first:]:
        stored = oc.input if remap is None else remap(oc.op, oc.input, ids)
        obj = {"format": oc.format, "parent": d, "root": oc.root, "seq": oc.seq, "ts": oc.ts, "op": oc.op,
               "input": stored, "caller": oc.caller}
        skip, skip_seq = _jump_for(tx, d, c)
        if skip is not None and skip != d:
            obj["skip"], obj["skipSeq"] = skip, skip_seq
        else:
            skip, skip_seq = None, 0
        nd = tx.put(encode(obj))
        c = Commit(d, oc.root, oc.seq, oc.ts, oc.op, stored, oc.caller, oc.format, skip, skip_seq)
        ids[old], d = nd, nd
    return d, ids


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
