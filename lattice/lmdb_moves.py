"""Moving a whole LMDB store's entries: into layout 3 (:func:`migrate`, when a writer opens a store an
earlier layout wrote) and into a new, compacted file (:func:`copy_compacted`, ``lattice compact``).

See :mod:`lattice.lmdb_layout` for the layouts.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Callable

import lmdb

from .lmdb_layout import (_IKEY, INDEX2_DB, INDEX_DB, LAYOUT, LEGACY_DB, LOG_DB, MAX_DBS, META_DB, REFS_DB,
                          Layout)

__all__ = ["LOG_EVERY", "migrate", "copy_compacted"]

#: seconds between two progress lines of a move to layout 3 (:func:`migrate`)
LOG_EVERY = 5.0
_log = logging.getLogger("lattice.lmdb")


def migrate(env: lmdb.Environment, layout: Layout, batch: int = 10_000,
            progress: Callable[[int], None] | None = None) -> int:
    """Move a store written by an earlier layout to layout 3; return how many objects and index
    entries were moved.

    Layout 1's objects go into the log, then layout 2's index entries into the index. Each batch
    of ``batch`` is moved and deleted in one write transaction, so a crash between batches leaves
    each one in exactly one of the two places (reads look in both). Each emptied database is
    dropped; ``meta["layout"]`` becomes ``3`` once both are gone. ``progress`` is called with the
    running count after each batch. A move is logged (logger ``lattice.lmdb``, INFO) when it
    starts, every :data:`LOG_EVERY` seconds and when it ends: a large store takes a while
    (about 0.5 million index entries a second; layout 1's objects, which are compressed and
    written again, take longer).
    """
    moved = 0
    with env.begin() as txn:
        total = sum(txn.stat(db)["entries"] for db in (layout.legacy, layout.index2) if db is not None)
    where = env.path()
    if total:
        _log.info("moving the store at %s to layout %d: %d objects and index entries", where, LAYOUT, total)
    started = last = time.monotonic()
    for name in ("legacy", "index2"):
        while getattr(layout, name) is not None:
            try:
                items = _move_batch(env, layout, name, batch)
            except lmdb.MapFullError:  # the batch was aborted: grow the map (nothing else is open yet)
                env.set_mapsize(env.info()["map_size"] * 2)
                continue
            if not items:
                setattr(layout, name, None)
                continue
            moved += len(items)
            if progress is not None:
                progress(moved)
            if time.monotonic() - last >= LOG_EVERY:
                last = time.monotonic()
                _log.info("moving the store at %s to layout %d: %d of %d moved", where, LAYOUT, moved, total)
    if total:
        _log.info("moved the store at %s to layout %d: %d in %.1f s", where, LAYOUT, moved, time.monotonic() - started)
    with env.begin() as txn:
        current = txn.get(b"layout", db=layout.meta) == str(LAYOUT).encode()
    if not current:
        with env.begin(write=True) as txn:
            txn.put(b"layout", str(LAYOUT).encode(), db=layout.meta)
    return moved


def _move_batch(env: lmdb.Environment, layout: Layout, name: str, batch: int) -> list:
    """Move up to ``batch`` entries of the old database ``name`` in one write transaction, or drop it
    when empty; return the entries moved."""
    with env.begin(write=True) as txn:
        layout.begin(txn)
        db = getattr(layout, name)
        items = [(bytes(k), bytes(v)) for k, v in itertools.islice(txn.cursor(db=db), batch)]
        if not items:
            txn.drop(db, delete=True)
        for k, v in items:
            txn.delete(k, v, db=db)  # first: put() looks there too
            if name == "legacy":
                layout.put(txn, k, v)
            else:
                txn.put(_IKEY, k + v, db=layout.index, dupdata=True)
    return items


def copy_compacted(env: lmdb.Environment, layout: Layout, dest: str, batch: int = 100_000) -> None:
    """Write every database of ``env`` into a new environment in the directory ``dest``, entry by
    entry in key order with LMDB's append, so that its pages come out full and it has none free.

    This is what ``mdb_env_copy2`` with ``MDB_CP_COMPACT`` does, which LMDB 0.9.36 (py-lmdb 3.0)
    cannot do for the index: its compacting copy crashes the process on a ``DUPFIXED`` database
    whose duplicates fill pages of their own (from about a thousand entries). One read snapshot
    of ``env``; the new environment is written in transactions of ``batch`` entries, without
    syncing, and synced once at the end.

    Raises:
        lmdb.Error: LMDB failed (``dest`` is then incomplete: the caller removes it).
    """
    dbs = [(LOG_DB, layout.log, {}), (INDEX_DB, layout.index, {"dupsort": True, "dupfixed": True}),
           (META_DB, layout.meta, {}), (REFS_DB, layout.refs, {}), (INDEX2_DB, layout.index2, {"dupsort": True}),
           (LEGACY_DB, layout.legacy, {})]
    out = lmdb.open(dest, map_size=env.info()["map_size"], max_dbs=MAX_DBS, sync=False, metasync=False)
    try:
        with env.begin() as txn:
            for name, src, kw in dbs:
                if src is None:
                    continue
                dst = out.open_db(name, create=True, **kw)
                cur = txn.cursor(db=src)
                found = cur.first()
                while found:
                    with out.begin(write=True) as w:
                        put, n = w.cursor(db=dst).put, 0
                        while found and n < batch:
                            if not put(cur.key(), cur.value(), dupdata=bool(kw), append=True):
                                raise lmdb.Error(f"{name!r} is not in key order")  # LMDB's order: never
                            n += 1
                            found = cur.next()
        out.sync(True)
    finally:
        out.close()
