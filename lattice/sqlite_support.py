"""Pieces the SQLite backend's store and collector share: the index key, finding an object, errors."""

from __future__ import annotations

import sqlite3

from .digest import digest
from .errors import StoreError
from .lmdb_layout import unpack

__all__ = ["CANDIDATES", "prefix_of", "find", "find_many", "sqlite_error"]

#: the log values stored under one index key (the objects whose digests share its 8 bytes)
CANDIDATES = "SELECT l.v FROM lattice_index i JOIN lattice_log l ON l.seq = i.seq WHERE i.p = ?"


def prefix_of(d: bytes) -> int:
    """The index key of digest ``d``: its first 8 bytes as a signed big-endian integer."""
    return int.from_bytes(d[:8], "big", signed=True)


def find(conn: sqlite3.Connection, d: bytes) -> tuple[bytes | None, bool]:
    """In ``conn``: ``(bytes, True)`` for the object ``d``; ``(None, False)`` when absent; ``(bytes, False)``
    when under its prefix lies an object whose bytes hash to no digest with that prefix (damaged)."""
    damaged = None
    for (v,) in conn.execute(CANDIDATES, (prefix_of(d),)):
        try:
            data = unpack(v)
        except ValueError:
            data = bytes(v)
        h = digest(data)
        if h == d:
            return data, True
        if h[:8] != d[:8]:
            damaged = data
    return damaged, False


def find_many(conn: sqlite3.Connection, digests: list[bytes]) -> dict[bytes, bytes]:
    """In ``conn``: ``{digest: bytes}`` of those of ``digests`` stored and whole (:func:`find`)."""
    out = {}
    for d in digests:
        data, ok = find(conn, d)
        if ok:
            out[d] = data
    return out


def sqlite_error(doing: str, path: str, e: BaseException) -> StoreError:
    """A :class:`StoreError` for SQLite's error ``e`` while ``doing`` something to the file at ``path``."""
    busy = isinstance(e, sqlite3.OperationalError) and "locked" in str(e)
    return StoreError(f"SQLite {doing} failed in {path!r}: {e}",
                      hint="another process held the database longer than the timeout" if busy else None)
