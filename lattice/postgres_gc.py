"""Garbage collection and compaction of the PostgreSQL backend (a mixin of :class:`lattice.postgres.PostgresStore`).

:func:`lattice.gc.collect` works here as on LMDB (barrier on, mark, sweep), but the
writers are any number of processes sharing the database, so the barrier and the
generation live in the database, in the table ``lattice_gc`` (one row: ``generation``,
``active``, the running collection's ``run`` token) and ``lattice_gc_protected``
(digests), and the ordering LMDB gets from its one writer thread comes from one
advisory lock, ``(GC_LOCK_SPACE, 0)``:

* **Every commit** takes it *shared* first, before its ref locks, and then, in a new
  statement (a READ COMMITTED snapshot taken after the lock was granted), reads the
  ``lattice_gc`` row with its refs. It is refused (``False``, nothing written) when it
  carries a ``generation`` that is not the row's. When the row is ``active``, it
  inserts into ``lattice_gc_protected``, in its own transaction, the digest of every
  object it writes and every digest a ref of it moves to.
* **The start** of a collection (``gc_begin``) takes it *exclusive*: it waits until no
  commit is in flight, empties ``lattice_gc_protected`` and sets ``active``. A commit
  either committed before (the mark, which lists the refs afterwards, sees it) or
  starts after and sees ``active`` (it protects what it writes).
* **The sweep** (``gc_sweep``) lists the objects that are not live (one statement: a
  snapshot; an object written later is never a candidate), adds to ``live`` what the
  protected digests reach (read without the lock, then again under it for those
  protected since), and then, holding the lock *exclusive*: adds what the protected
  digests and the current ref heads reach, deletes the candidates still not live,
  bumps ``generation``, clears ``active`` and ``lattice_gc_protected``, in one
  transaction. Commits wait meanwhile (about as long as the DELETE).

So, as on LMDB (:mod:`lattice.gc`): an object a commit made reachable before the
start was marked, one made reachable during the collection was protected, and one
linked after the sweep by a commit that read before it is refused by the generation.
Objects never change, so what was closed over before the lock stays right. A commit
that does not pass a generation is not checked: it must not link to objects it did not
read from a current head (every writer of the engine and the LangGraph saver passes
one).

Each store holds the ``generation`` it last saw (on open, and in every commit it
makes): after a sweep by another process, it is behind until its next commit, which is
refused once (like a lost compare-and-swap: the writer reads again, with the new value).
A stale value is never ahead of the database's, so it never lets a commit through.

One collection at a time per database: the running one holds ``(GC_LOCK_SPACE, 1)`` in
an open transaction on a connection of its own (no pooler keeps a transaction's lock
from its session), so a collector that dies releases it with its connection; the next
one finds ``active`` set by the dead one and starts over (its token differs, so a sweep
by the dead one's process, were it still alive, would be refused).

``compact`` is ``VACUUM``: PostgreSQL reuses the space of deleted rows once vacuumed
(autovacuum does it too); a plain ``VACUUM`` runs beside the servers and gives back only
empty pages at the end of a table, ``VACUUM FULL`` rewrites the tables and gives every
free page back to the file system but locks them (reads and commits wait) while it runs.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Iterable, Iterator, NamedTuple, TypeVar

import psycopg

from .digest import DIGEST_SIZE, digest
from .errors import GcRunning, StoreError
from .gc import closure_many
from .postgres_support import GC_LOCK_SPACE, map_error

__all__ = ["PostgresCollector"]

_T = TypeVar("_T")
#: digests per statement when reading or deleting objects by digest
_CHUNK = 2000
_TABLES = ("lattice_objects", "lattice_refs", "lattice_gc_protected")


class _Run(NamedTuple):
    """A collection in progress in this process: the connection holding its lock, its token."""

    owner: psycopg.Connection
    token: bytes
    extra: Any


class PostgresCollector:
    """The collection methods of :class:`lattice.postgres.PostgresStore` (they use its pool)."""

    _pool: Any
    _timeout: float
    _dsn: str
    _conn_kwargs: dict
    url: str
    generation: int
    _gc_run: _Run | None
    _gc_lock: threading.Lock

    _run: Callable[..., Any]
    _check_open: Callable[[], None]

    def objects(self) -> Iterator[tuple[bytes, int]]:
        """``(digest, size in bytes)`` of every stored object, in digest order, read in pages."""
        last = b""
        while True:
            rows = self._run(lambda c, after=last: c.execute(
                "SELECT digest, octet_length(data) FROM lattice_objects WHERE digest > %b ORDER BY digest LIMIT 4096",
                (after,)).fetchall(), "objects")
            if not rows:
                return
            for d, n in rows:
                yield bytes(d), n
            last = bytes(rows[-1][0])

    def get_many(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        """``{digest: bytes}`` of those of ``digests`` that are stored, in one statement (the
        collector's mark reads a layer of the graph at a time with it).

        An object whose stored bytes do not hash to its digest is left out, as if absent
        (:func:`lattice.fsck.fsck` reports it; :meth:`get` raises ``CorruptObject``).

        Raises:
            StoreError: the store is closed or the database failed.
        """
        self._check_open()
        keys = [bytes(d) for d in digests if len(d) == DIGEST_SIZE]
        if not keys:
            return {}
        rows = self._run(lambda c: _fetch(c, keys), "get_many")
        return {d: data for d, data in rows.items() if digest(data) == d}

    def _with_conn(self, fn: Callable[[psycopg.Connection], _T], doing: str) -> _T:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                return fn(conn)
        except psycopg.Error as e:
            raise map_error(e, doing) from e

    def gc_begin(self, extra: Any = None) -> None:
        """Start a collection: take the database's collection lock, turn the barrier on.

        Raises:
            GcRunning: another collection is running on this database (or in this process).
            StoreError: the database failed.
        """
        self._check_open()
        with self._gc_lock:
            if self._gc_run is not None:
                raise GcRunning(f"a garbage collection is already running on {self.url} in this process")
            try:
                owner = psycopg.connect(self._dsn, **{**self._conn_kwargs, "autocommit": False})
            except psycopg.Error as e:
                raise map_error(e, "garbage collection") from e
            try:
                owner.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                got = owner.execute("SELECT pg_try_advisory_xact_lock(%s::int4, 1)", (GC_LOCK_SPACE,)).fetchone()[0]
                if not got:
                    raise GcRunning(f"another garbage collection is running on {self.url}",
                                     hint="wait until it is done (one collection at a time per database)")
                token = os.urandom(16)

                def begin(c: psycopg.Connection) -> int:
                    with c.transaction():
                        c.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (GC_LOCK_SPACE,))
                        c.execute("DELETE FROM lattice_gc_protected")  # what a dead collector left
                        return c.execute("UPDATE lattice_gc SET active = true, run = %b, started_at = now(), "
                                         "started_by = %s RETURNING generation",
                                         (token, self._conn_kwargs.get("application_name", ""))).fetchone()[0]
                self.generation = self._with_conn(begin, "garbage collection start")
            except psycopg.Error as e:  # the owner connection's statements
                _close(owner)
                raise map_error(e, "garbage collection start") from e
            except BaseException:
                _close(owner)
                raise
            self._gc_run = _Run(owner, token, extra)

    def gc_sweep(self, live: set[bytes] | None) -> tuple[int, int]:
        """Finish the collection started by :meth:`gc_begin`: delete what is not live, in one
        transaction with the lock exclusive; ``live=None``: only turn the barrier off.

        Returns:
            ``(objects freed, bytes freed)``.

        Raises:
            StoreError: no collection was started here, another collection took over
                (this one's lock was lost with its connection), or the database failed
                (then nothing was deleted).
        """
        with self._gc_lock:
            run, self._gc_run = self._gc_run, None
        if run is None:
            raise StoreError("gc_sweep without gc_begin")
        try:
            if live is None:
                self._with_conn(lambda c: self._end(c, run.token), "garbage collection stop")
                return 0, 0
            return self._with_conn(lambda c: self._sweep(c, run, live), "garbage collection sweep")
        except BaseException:
            try:  # the barrier off, so that commits stop protecting (best effort: the next start resets it)
                self._with_conn(lambda c: self._end(c, run.token), "garbage collection stop")
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        finally:
            _close(run.owner)

    def _end(self, c: psycopg.Connection, token: bytes) -> None:
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (GC_LOCK_SPACE,))
            if c.execute("UPDATE lattice_gc SET active = false, run = NULL WHERE run = %b", (token,)).rowcount:
                c.execute("DELETE FROM lattice_gc_protected")

    def _sweep(self, c: psycopg.Connection, run: _Run, live: set[bytes]) -> tuple[int, int]:
        candidates: list[tuple[bytes, int]] = []
        with c.transaction():  # a named cursor streams inside a transaction; one statement: a snapshot
            with c.cursor(name="lattice_gc_candidates") as cur:
                cur.itersize = 10_000
                cur.execute("SELECT digest, octet_length(data) FROM lattice_objects")
                for d, n in cur:
                    d = bytes(d)
                    if d not in live:
                        candidates.append((d, n))
        protected = [bytes(d) for (d,) in c.execute("SELECT digest FROM lattice_gc_protected").fetchall()]
        closure_many(lambda ds: _fetch(c, ds), protected, live, run.extra)  # the bulk of it, while commits go on
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (GC_LOCK_SPACE,))
            row = c.execute("SELECT active, run FROM lattice_gc").fetchone()
            if not row[0] or row[1] is None or bytes(row[1]) != run.token:
                raise StoreError(f"the garbage collection on {self.url} was taken over by another one; "
                                 "nothing deleted", hint="its lock was lost with its connection; run it again")
            seeds = [bytes(d) for (d,) in c.execute("SELECT digest FROM lattice_gc_protected").fetchall()]
            seeds += [bytes(d) for (d,) in c.execute("SELECT digest FROM lattice_refs").fetchall()]
            closure_many(lambda ds: _fetch(c, ds), seeds, live, run.extra)
            dead = [(d, n) for d, n in candidates if d not in live]
            for i in range(0, len(dead), _CHUNK):
                c.execute("DELETE FROM lattice_objects WHERE digest = ANY(%b::bytea[])",
                          ([d for d, _ in dead[i:i + _CHUNK]],))
            c.execute("DELETE FROM lattice_gc_protected")
            generation = c.execute("UPDATE lattice_gc SET generation = generation + 1, active = false, run = NULL "
                                   "RETURNING generation").fetchone()[0]
        self.generation = generation
        return len(dead), sum(n for _, n in dead)

    def compact(self, *, full: bool = False) -> tuple[int, int]:
        """``VACUUM`` the store's tables; return their size (with indexes and TOAST) before and after, bytes.

        Args:
            full: ``VACUUM FULL``: rewrite the tables, giving every free page back to the file
                system; it locks them while it runs (the servers' reads and commits wait).
                Without it, a plain ``VACUUM``: the space of deleted objects becomes reusable
                by new ones, only empty pages at the end go back, and the servers run on.

        Raises:
            StoreError: the database failed (e.g. the user does not own the tables).
        """
        self._check_open()
        size = "SELECT " + " + ".join(f"pg_total_relation_size('{t}')" for t in _TABLES)
        before = self._run(lambda c: c.execute(size).fetchone()[0], "compact")
        vacuum = f"VACUUM ({'FULL, ' if full else ''}ANALYZE) {', '.join(_TABLES)}"
        self._run(lambda c: c.execute(vacuum), "compact")
        return before, self._run(lambda c: c.execute(size).fetchone()[0], "compact")


def _fetch(c: psycopg.Connection, digests: list[bytes]) -> dict[bytes, bytes]:
    """The stored objects of ``digests`` (one statement; no re-hash: the sweep only follows links)."""
    rows = c.execute("SELECT digest, data FROM lattice_objects WHERE digest = ANY(%b::bytea[])", (digests,)).fetchall()
    return {bytes(d): bytes(data) for d, data in rows}


def _close(conn: psycopg.Connection) -> None:
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone already: its lock went with it
        pass
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass
