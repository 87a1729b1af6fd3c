"""Garbage collection and compaction of the SQLite backend (a mixin of :class:`lattice.sqlite.SqliteStore`).

Garbage collection (:mod:`lattice.gc`): one process writes a file (its writer lock), so, as on
LMDB, the barrier and the collection in progress are that process's, ordered with its commits by
the write lock (``_wlock``). While the barrier is on, a commit records in the table
``lattice_gc_protected`` the digests it writes and those its refs move to. The sweep, one write
transaction, adds to the mark what they and the current refs reach, deletes the rest, bumps
``generation`` (kept in ``lattice_meta``, so that it only grows across restarts) and turns the
barrier off. What a process that died mid-collection protected is emptied by the next start. An
object sharing a live one's 64-bit digest prefix stays, as on LMDB (the index is by prefix).

``compact`` is ``VACUUM`` (SQLite rewrites the file without its free pages), then a checkpoint
that truncates the write-ahead log.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from .digest import digest
from .errors import GcRunning, StoreError
from .gc import closure_many
from .lmdb_layout import object_size, unpack
from .sqlite_support import find_many, prefix_of, sqlite_error

__all__ = ["SqliteCollector"]

#: rows per statement when the sweep reads or deletes by sequence number
_CHUNK = 500


class SqliteCollector:
    """The collection methods of :class:`lattice.sqlite.SqliteStore` (they use its connections)."""

    path: str
    generation: int
    _closed: bool
    _wlock: threading.Lock
    _gc_lock: threading.Lock
    _gc_run: tuple[Any] | None
    _protecting: bool
    _w: sqlite3.Connection

    _read: Any
    _write_txn: Any
    _writable: Any
    _meta: Any

    def objects(self) -> Iterator[tuple[bytes, int]]:
        """``(digest, size)`` of every stored object, ``size`` its own bytes, in log order (read in pages)."""
        after = 0
        while True:
            rows = self._read(lambda c, a=after: c.execute(
                "SELECT seq, v FROM lattice_log WHERE seq > ? ORDER BY seq LIMIT 4096", (a,)).fetchall(), "read")
            if not rows:
                return
            for _, v in rows:
                try:
                    data = unpack(v)
                except ValueError:
                    data = bytes(v)
                yield digest(data), len(data)
            after = rows[-1][0]

    def gc_begin(self, extra: Any = None) -> None:
        """Start a collection: turn the barrier on, ordered with commits.

        Raises:
            GcRunning: a collection is running on this store already.
            StoreError: the store is closed or SQLite failed.
        """
        self._writable()
        with self._gc_lock:
            if self._gc_run is not None:
                raise GcRunning(f"a garbage collection is already running on {self.path!r}",
                                hint="wait until it is done (one collection at a time per store)")
            try:
                with self._wlock:
                    with self._write_txn() as w:
                        w.execute("DELETE FROM lattice_gc_protected")  # what a collector that died left
                    self._protecting = True  # still holding _wlock: the next commit protects
            except sqlite3.Error as e:
                raise sqlite_error("garbage collection start", self.path, e) from e
            self._gc_run = (extra,)

    def gc_sweep(self, live: set[bytes] | None) -> tuple[int, int]:
        """Finish the collection :meth:`gc_begin` started: in one write transaction, add to ``live``
        what the barrier protected and the current refs reach, delete every other object, bump
        :attr:`generation`, turn the barrier off. ``live=None``: only turn the barrier off.

        Returns:
            ``(objects freed, bytes freed)``.

        Raises:
            StoreError: no collection was started, the store is closed, or SQLite failed (then
                nothing was deleted).
        """
        with self._gc_lock:
            run, self._gc_run = self._gc_run, None
        if run is None:
            raise StoreError("gc_sweep without gc_begin")
        (extra,) = run
        try:
            with self._wlock:
                try:
                    if self._closed:
                        raise StoreError(f"SqliteStore {self.path!r} is closed")
                    with self._write_txn() as w:
                        freed = (0, 0) if live is None else self._sweep(w, live, extra)
                        w.execute("DELETE FROM lattice_gc_protected")
                        if live is not None:
                            w.execute("UPDATE lattice_meta SET v = v + 1 WHERE k = 'generation'")
                        generation = self._meta(w, "generation")
                    self.generation = generation  # once committed: a commit with an older one is refused
                finally:
                    # off in any case (a failed sweep deleted nothing; the next start empties what it protected)
                    self._protecting = False
                return freed
        except sqlite3.Error as e:
            raise sqlite_error("garbage collection sweep", self.path, e) from e

    def _sweep(self, w: sqlite3.Connection, live: set[bytes], extra: Any) -> tuple[int, int]:
        seeds = [bytes(d) for (d,) in w.execute("SELECT d FROM lattice_gc_protected")]
        seeds += [bytes(d) for (d,) in w.execute("SELECT d FROM lattice_refs")]
        closure_many(lambda ds: find_many(w, ds), seeds, live, extra)
        keep = {prefix_of(d) for d in live}  # an object sharing a live one's 64-bit prefix stays
        dead = [seq for p, seq in w.execute("SELECT p, seq FROM lattice_index") if p not in keep]
        freed = 0
        for i in range(0, len(dead), _CHUNK):
            chunk = dead[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            freed += sum(object_size(v) for (v,) in w.execute(f"SELECT v FROM lattice_log WHERE seq IN ({marks})",
                                                               chunk))
            w.execute(f"DELETE FROM lattice_log WHERE seq IN ({marks})", chunk)
            w.execute(f"DELETE FROM lattice_index WHERE seq IN ({marks})", chunk)
        return len(dead), freed

    def compact(self) -> tuple[int, int]:
        """Give the pages of deleted objects back to the file system (``VACUUM``, then a checkpoint
        that truncates the write-ahead log); return the file's size before and after, in bytes.
        Commits wait while it runs; readers do not.

        Raises:
            StoreError: the store is closed or SQLite failed (e.g. the disk is full).
        """
        def size() -> int:
            return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))
        self._writable()
        with self._wlock:
            if self._closed:
                raise StoreError(f"SqliteStore {self.path!r} is closed")
            before = size()
            try:
                self._w.execute("VACUUM")
                self._w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                raise sqlite_error("compact", self.path, e) from e
            return before, size()
