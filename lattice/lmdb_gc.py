"""Garbage collection, compaction and sizes of the LMDB backend (a mixin of :class:`lattice.lmdb.LmdbStore`).

Every step that must be ordered with commits runs on the store's writer thread
(:meth:`_control`): turning the barrier on, and the sweep, which deletes in write
transactions of :data:`SWEEP_BATCH` deletes while commits wait for all of them. See
:mod:`lattice.gc` for why that is safe beside writers.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import threading
from typing import Any, Callable, Iterable, Iterator, TypeVar

import lmdb

from .errors import ReadOnly, StoreError
from .digest import digest
from .gc import closure
from .lmdb_layout import MAX_DBS, Layout, index_entry_size, index_key
from .lmdb_moves import copy_compacted
from .lmdb_support import Control

__all__ = ["LmdbCollector"]

_T = TypeVar("_T")

#: Deletes per write transaction of a sweep (log records, then index entries).
SWEEP_BATCH = 10_000


class LmdbCollector:
    """The collection and size methods of :class:`lattice.lmdb.LmdbStore` (they use its environment,
    writer queue and gate)."""

    _env: Any
    _layout: Layout
    _refs: Any
    _closed: bool
    _thread: threading.Thread | None
    path: str
    readonly: bool
    durable: bool
    generation: int
    _growing: Callable[..., Any]

    def stats(self) -> dict:
        """Return sizes of the environment.

        Returns:
            ``{"path", "map_size", "used_bytes", "objects", "refs", "durable"}``:
            ``used_bytes`` is the part of the map holding pages
            (``(last_pgno + 1) * page size``); ``objects``/``refs`` count entries.

        Raises:
            StoreError: the store is closed or LMDB failed.
        """

        def collect(txn: lmdb.Transaction) -> dict:
            info = self._env.info()
            return {
                "path": self.path,
                "map_size": info["map_size"],
                "used_bytes": (info["last_pgno"] + 1) * self._env.stat()["psize"],
                "objects": self._layout.count(txn),
                "refs": txn.stat(self._refs)["entries"] if self._refs is not None else 0,
                "durable": self.durable,
            }

        return self._read(None, collect)

    def objects(self) -> Iterator[tuple[bytes, int]]:
        """``(digest, size)`` of every stored object, ``size`` its own bytes (a snapshot, read in
        pages of the log; a store not yet moved from layout 1 lists its old database too)."""
        layout = self._layout
        after = 0
        while True:
            items = self._read(None, lambda txn, after=after: layout.entries(txn, after))
            if not items:
                break
            for _, data in items:
                yield digest(data), len(data)
            after = items[-1][0]
        if layout.legacy is not None:
            last: bytes | None = None
            while True:
                def page(txn: lmdb.Transaction, after: bytes | None = last) -> list[tuple[bytes, int]]:
                    cur = txn.cursor(db=layout.legacy)
                    found = cur.first() if after is None else cur.set_range(after)
                    if found and after is not None and cur.key() == after:
                        found = cur.next()
                    out = []
                    while found and len(out) < 4096:
                        out.append((bytes(cur.key()), len(cur.value())))
                        found = cur.next()
                    return out
                legacy = self._read(None, page)
                if not legacy:
                    return
                yield from legacy
                last = legacy[-1][0]

    def get_many(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        """``{digest: bytes}`` of those of ``digests`` that are stored, read in one transaction (the
        collector's mark and bundle export read a layer of the graph at a time with it).

        An object whose stored bytes do not hash to its digest is left out, as if absent
        (:func:`lattice.fsck.fsck` reports it; :meth:`get` raises ``CorruptObject``).

        Raises:
            StoreError: the store is closed or LMDB failed.
        """
        keys = [bytes(d) for d in digests]

        def read(txn: lmdb.Transaction) -> dict[bytes, bytes]:
            layout = self._layout  # in the transaction: a read-only store may open it again
            out = {}
            for d in keys:
                data, ok = layout.find(txn, d)
                if ok:
                    out[d] = data
            return out
        return self._read(None, read) if keys else {}

    def _control(self, run: Callable[[], _T]) -> _T:
        if self._closed:
            raise StoreError(f"LmdbStore {self.path!r} is closed")
        if self.readonly:
            raise ReadOnly(f"LmdbStore {self.path!r} is open read-only")
        if threading.current_thread() is self._thread:
            raise StoreError("LmdbStore garbage collection called on the store's own writer thread")
        ctl = Control(run, concurrent.futures.Future())
        with self._submit_lock:
            if self._closed:
                raise StoreError(f"LmdbStore {self.path!r} is closed")
            self._queue.put(ctl)
        return ctl.future.result()

    def gc_begin(self, extra: Any = None) -> None:
        """Turn the write barrier on, ordered with commits (on the writer thread)."""
        self._control(lambda: self._barrier.start(extra))

    def gc_sweep(self, live: set[bytes] | None) -> tuple[int, int]:
        """Sweep on the writer thread, in batches (commits wait until the last one); return
        ``(objects, bytes)`` freed.

        Raises:
            StoreError: LMDB failed (what earlier batches deleted stays deleted: dead objects only)."""
        return self._control(lambda: self._sweep(live))

    def _sweep(self, live: set[bytes] | None) -> tuple[int, int]:
        extra = self._barrier.extra
        protected = self._barrier.stop()
        if live is None:
            return 0, 0
        layout = self._layout

        def find(txn: lmdb.Transaction) -> tuple:
            heads = [bytes(v) for _, v in txn.cursor(db=self._refs)]
            closure(lambda d: layout.get(txn, d), [*protected, *heads], live, extra)
            # An index entry whose prefix no live digest has is dead. One that shares a live
            # digest's prefix is kept without hashing it: an unreachable object kept that way
            # (a 64-bit prefix collision with a live one) is only garbage left, never a loss.
            return layout.dead(txn, {index_key(d) for d in live})

        # Commits wait on this thread until the sweep ends, so what is dead stays dead between
        # its transactions. The sweep deletes in batches, log records in log order first, then
        # index entries in index order: each batch's freed pages are reused two batches later,
        # so the file grows by a few batches' pages, not by every page the sweep copies (one
        # transaction doubled a 0.8 GB file). A crash part-way leaves dead objects, never a
        # live one missing; an index entry whose record is gone reads as absent.
        dead = self._read(None, find)
        self.generation += 1

        def write(fn: Callable[[lmdb.Transaction], _T]) -> _T:
            return self._growing(lambda: self._in_write(fn), "collection")

        order = sorted(dead.seqs)
        nbytes = 0
        for i in range(0, len(order), SWEEP_BATCH):
            part = order[i:i + SWEEP_BATCH]
            nbytes += write(lambda txn: layout.delete_logged(txn, part))
        step = SWEEP_BATCH * index_entry_size()
        for i in range(0, len(dead.packed), step):
            entries = dead.packed[i:i + step]
            write(lambda txn: layout.delete_indexed(txn, entries))
        if dead.old:
            write(lambda txn: layout.delete_indexed(txn, b"", dead.old))
        if dead.last is not None:  # the log's last record with its entry, at once (see Dead)
            seq, entry, old = dead.last

            def tail(txn: lmdb.Transaction) -> int:
                layout.delete_indexed(txn, entry, old)
                return layout.delete_logged(txn, [seq])
            nbytes += write(tail)
        return len(order) + (dead.last is not None), nbytes

    def _in_write(self, fn: Callable[[lmdb.Transaction], _T]) -> _T:
        """Run ``fn`` in a write transaction and commit it (aborted if ``fn`` raises): every write
        transaction of the store, commits and sweeps."""
        txn = self._env.begin(write=True)
        try:
            out = fn(txn)
        except BaseException:
            # py-lmdb 3.0 makes a write-txn abort wait until no LMDB call is in flight on ANY
            # thread; under steady concurrent reads that can starve forever. Hold the gate so
            # reads drain and none start.
            with self._gate.exclusive():
                txn.abort()
            raise
        txn.commit()  # on failure LMDB has already aborted the txn
        return out

    def compact(self) -> tuple[int, int]:
        """Rewrite the data file without its free pages; return its size before and after (bytes).

        Copies the environment compacted beside the data file
        (:func:`lattice.lmdb_moves.copy_compacted`), then, on the writer
        thread with no transaction open, closes the environment, moves the copy over the
        data file and opens it again.

        Raises:
            StoreError: LMDB or the file system failed (the old file is kept).
        """
        data = os.path.join(self.path, "data.mdb")
        tmp = os.path.join(self.path, "compact.tmp")
        before = os.path.getsize(data)

        def run() -> int:
            shutil.rmtree(tmp, ignore_errors=True)  # what a compaction that crashed left
            os.makedirs(tmp)
            try:
                copy_compacted(self._env, self._layout, tmp)
            except lmdb.Error as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StoreError(f"cannot compact {self.path!r}: {e}") from e
            with self._gate.exclusive():
                info = self._env.info()
                self._env.close()
                os.replace(os.path.join(tmp, "data.mdb"), data)
                shutil.rmtree(tmp, ignore_errors=True)
                self._env = lmdb.open(self.path, map_size=info["map_size"], max_dbs=MAX_DBS,
                                      max_readers=self._env_readers, sync=self.durable, metasync=self.durable)
                self._layout = Layout(self._env, False)
                self._refs = self._layout.refs
            return os.path.getsize(data)
        return before, self._control(run)

