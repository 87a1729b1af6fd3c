"""Garbage collection and compaction of the SQLite backend (a mixin of :class:`lattice.sqlite.SqliteStore`).

Garbage collection (:mod:`lattice.gc`) works as on PostgreSQL: the generation and the barrier are
kept in the file (``lattice_meta``, ``lattice_gc_protected``), and, as on LMDB, the store's one
writing process orders them with its commits (its writer lock: each commit checks the generation
and the barrier it holds in memory, set together with the file's). A commit that lands while the
barrier is on records in ``lattice_gc_protected`` the digests it writes and those its refs move
to; the sweep, one
write transaction, adds what they and the current refs reach to the mark, deletes the rest,
bumps ``generation`` and turns the barrier off. An object sharing a live one's 64-bit digest
prefix stays, as on LMDB (the index is by prefix). One collection at a time per file: the
running one holds an exclusive ``flock`` on ``PATH-gc.lock`` (released if its process dies;
the next one resets the barrier).

``compact`` is ``VACUUM`` (SQLite rewrites the file without its free pages), then a checkpoint
that truncates the write-ahead log.
"""

from __future__ import annotations

import fcntl
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
    _gc_run: tuple[int, bytes, Any] | None
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
        """Start a collection: take the file's collection lock, turn the barrier on.

        Raises:
            GcRunning: another collection is running on this file (this process or another).
            StoreError: the store is closed or SQLite failed.
        """
        self._writable()
        with self._gc_lock:
            if self._gc_run is not None:
                raise GcRunning(f"a garbage collection is already running on {self.path!r} in this process")
            fd = os.open(self.path + "-gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise GcRunning(f"another garbage collection is running on {self.path!r}",
                                hint="wait until it is done (one collection at a time per file)") from None
            token = os.urandom(16)
            try:
                with self._wlock, self._write_txn() as w:
                    w.execute("DELETE FROM lattice_gc_protected")  # what a dead collector left
                    w.execute("UPDATE lattice_meta SET v = 1 WHERE k = 'gc_active'")
                    w.execute("UPDATE lattice_meta SET v = ? WHERE k = 'gc_run'", (token,))
                    self.generation = self._meta(w, "generation")
                self._protecting = True  # still holding _wlock: the next commit protects
            except BaseException as e:
                os.close(fd)
                if isinstance(e, sqlite3.Error):
                    raise sqlite_error("garbage collection start", self.path, e) from e
                raise
            self._gc_run = (fd, token, extra)

    def gc_sweep(self, live: set[bytes] | None) -> tuple[int, int]:
        """Finish the collection :meth:`gc_begin` started: in one write transaction, add to ``live``
        what the barrier protected and the current refs reach, delete every other object, bump
        :attr:`generation`, turn the barrier off. ``live=None``: only turn the barrier off.

        Returns:
            ``(objects freed, bytes freed)``.

        Raises:
            StoreError: no collection was started here, another one took over, or SQLite failed
                (then nothing was deleted).
        """
        with self._gc_lock:
            run, self._gc_run = self._gc_run, None
        if run is None:
            raise StoreError("gc_sweep without gc_begin")
        fd, token, extra = run
        try:
            with self._wlock:
                try:
                    if self._closed:
                        raise StoreError(f"SqliteStore {self.path!r} is closed")
                    with self._write_txn() as w:
                        if self._meta(w, "gc_run") != token:
                            raise StoreError(f"the garbage collection on {self.path!r} was taken over by another "
                                             "one; nothing deleted", hint="run it again")
                        freed = (0, 0) if live is None else self._sweep(w, live, extra)
                        w.execute("DELETE FROM lattice_gc_protected")
                        w.execute("UPDATE lattice_meta SET v = 0 WHERE k = 'gc_active'")
                        w.execute("UPDATE lattice_meta SET v = NULL WHERE k = 'gc_run'")
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
        finally:
            os.close(fd)  # releases the flock

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
