"""PostgreSQL backend of the store port: several processes, on one or several machines, share one database.

Tables (schema version :data:`SCHEMA_VERSION`, in the connection's ``search_path``):

* ``lattice_objects (digest bytea PRIMARY KEY, data bytea)``: immutable objects,
  inserted with ``ON CONFLICT DO NOTHING``; every read re-hashes (``CorruptObject``);
* ``lattice_refs (name text COLLATE "C" PRIMARY KEY, digest bytea)``: the refs. The
  ``"C"`` collation orders names by UTF-8 bytes, i.e. by code point, as ``sorted()``
  orders ``str``, and lets ``LIKE 'prefix%'`` use the primary key;
* ``lattice_schema (version int PRIMARY KEY, applied_at timestamptz, applied_by text)``:
  one row per migration applied; the schema's version is the largest;
* ``lattice_gc`` (one row: the collection ``generation``, whether one is ``active``) and
  ``lattice_gc_protected (digest bytea PRIMARY KEY)``: garbage collection, see
  :mod:`lattice.postgres_gc` (schema version 2).

The first :class:`PostgresStore` to open a database creates the tables, and one that
finds an older version it knows migrates it (in one transaction, under an advisory
lock, so concurrent openers wait for each other); a newer version than it knows is
refused with :class:`StoreError`.

**Compare-and-swap.** A commit's transaction first takes the collection's lock shared
(:mod:`lattice.postgres_gc`), then one transaction-scoped advisory lock per ref it names
(``pg_advisory_xact_lock(space, hash(name))``, in
ascending key order, so two transactions never wait on each other in a cycle). A
lock exists whether or not the ref does, so two creators of the same new ref
serialise like two movers of an existing one. Holding the locks, a second statement
(a fresh READ COMMITTED snapshot, taken after the previous holder committed) reads
the refs' current digests and the collection's state (a commit carrying another
``generation`` is refused); the CAS is decided in Python; objects and ref writes
follow, and ``COMMIT`` releases the locks. A lost CAS writes nothing. Every writer of
``lattice_refs`` must take these locks: write refs only through this class.

**Group commit.** :meth:`PostgresStore.commit` and :meth:`PostgresStore.acommit`
validate their arguments on the caller's thread and queue the request; one writer
thread per store takes a request, drains whatever else is queued (up to
:data:`MAX_GROUP` requests or :data:`MAX_GROUP_BYTES` of objects) and applies the
group in one transaction, i.e. one WAL flush. Requests are decided in order against
the refs as the earlier requests of the group left them (the locks cover the union of
their names), so each keeps its own all-or-none result: a request whose CAS fails
writes nothing and resolves to ``False``, the others land. If the group's transaction
fails on a database error, it is rolled back and each request is retried alone, so
one bad request cannot fail its neighbours.

**Poolers.** Connections come from one :class:`psycopg_pool.ConnectionPool` per store
(one per process: share the store), in autocommit mode with server-side prepared
statements off (``prepare_threshold=None``) and no session state, so the store works
through pgbouncer in transaction pooling mode.

**Errors.** PostgreSQL errors are mapped by SQLSTATE class: ``22`` (data exception)
and ``54`` (program limit exceeded) become :class:`InvalidValue`, every other class
:class:`StoreError`; the SQLSTATE is in the message, the psycopg error is the cause.
A read that loses its connection is retried once on a new one. A group is retried
(three times at most) when its connection was lost before ``COMMIT`` was sent or the
server rolled it back (SQLSTATE class ``40``: deadlock, serialization failure); one that
loses its connection during ``COMMIT`` fails: its outcome is unknown, re-read the refs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from .digest import DIGEST_SIZE
from .errors import InvalidValue, LatticeError, NotFound, StoreError
from .postgres_gc import PostgresCollector
from .postgres_support import (GC_LOCK_SPACE, INSERT_CHUNK_BYTES, MAX_GROUP, MAX_GROUP_BYTES, MAX_REF_BYTES,
                               MIGRATIONS, REF_LOCK_SPACE, SCHEMA_LOCK_SPACE, SCHEMA_VERSION)
from .postgres_support import connection_lost as _connection_lost
from .postgres_support import (fetch_refs, like_prefix, lock_key, map_error, name_error, package_version, redact,
                               request_specific, text_ok)
from .store import RefUpdate, check_object, check_ref_updates, drain

__all__ = ["MAX_REF_BYTES", "SCHEMA_VERSION", "PostgresStore", "map_error"]

_STOP = object()
_T = TypeVar("_T")


class _Request(NamedTuple):
    """One queued commit: copied objects and validated ref updates."""

    objects: dict[bytes, bytes]
    updates: list[RefUpdate]
    future: concurrent.futures.Future
    size: int
    generation: int | None = None


class _Ambiguous(Exception):
    """The connection failed while COMMIT was in flight: the outcome is unknown."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


#: a commit's first statement: the collection's lock shared, then its refs' locks in key order
_LOCK_REFS = ("WITH g AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(%s::int4, 0)) "
              "SELECT pg_advisory_xact_lock(%s::int4, k) FROM g, unnest(%s::int4[]) AS k")
#: its second: the collection's state and the refs' digests (a snapshot taken after the locks)
_READ_REFS = ("SELECT g.generation, g.active, r.name, r.digest FROM lattice_gc g "
              "LEFT JOIN lattice_refs r ON r.name = ANY(%s)")


class PostgresStore(PostgresCollector):
    """A backend of the store port on a PostgreSQL database, shared by any number of processes.

    Thread-safe. Reads borrow a pooled connection on the caller's thread (one
    statement, autocommit); writes are funnelled to one writer thread per store that
    group-commits concurrent requests. Open one store per process and share it; use
    it as a context manager or call :meth:`close`.

    Args:
        url: a libpq connection URL, ``postgresql://user:password@host:port/dbname?...``
            (``postgres://`` too). The database must exist and use the UTF8 encoding;
            the user needs CREATE on its schema the first time (or to migrate).
        pool_size: most connections this store opens (default 8; the writer uses one).
        timeout: seconds to wait for a free pooled connection, and for the pool to
            open (default 30).
        application_name: shown in ``pg_stat_activity`` (default ``"agent-lattice"``).

    Raises:
        StoreError: the server cannot be reached, the database is not UTF8, its schema
            is newer than :data:`SCHEMA_VERSION`, or creating/migrating it failed.
    """

    def __init__(self, url: str, *, pool_size: int = 8, timeout: float = 30.0,
                 application_name: str = "agent-lattice") -> None:
        if pool_size < 1:
            raise InvalidValue(f"pool_size must be at least 1, got {pool_size}")
        self.url = redact(url)
        self.schema_version = 0
        self._timeout = timeout
        self._closed = True
        self._thread: threading.Thread | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._submit_lock = threading.Lock()
        #: bumped by every garbage-collection sweep; this store's last sight of it (see lattice.postgres_gc)
        self.generation = 0
        self._gc_run = None
        self._gc_lock = threading.Lock()
        conn_kwargs = {"autocommit": True, "prepare_threshold": None, "application_name": application_name}
        self._dsn, self._conn_kwargs = url, conn_kwargs
        try:
            # one direct connection first: its errors are the server's own (refused, no such
            # database, authentication), where a pool would only report a timeout
            with psycopg.connect(url, **conn_kwargs) as conn:
                self.schema_version = self._migrate(conn)
                self.generation = conn.execute("SELECT generation FROM lattice_gc").fetchone()[0]
            self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout, open=False,
                                        name=f"lattice:{self.url}", kwargs=conn_kwargs)
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as e:
            self._pool_close()
            raise map_error(e, f"open of {self.url}") from e
        except LatticeError:
            self._pool_close()
            raise
        except Exception as e:  # a malformed URL fails before any I/O (ProgrammingError is a psycopg.Error)
            self._pool_close()
            raise StoreError(f"cannot open PostgreSQL store {self.url}: {e}") from e
        self._closed = False
        self._thread = threading.Thread(target=self._writer, name=f"lattice-pg-writer:{self.url}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<PostgresStore {self.url} {'closed' if self._closed else 'open'}>"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- schema

    def _migrate(self, conn: psycopg.Connection) -> int:
        """Create or migrate the schema to :data:`SCHEMA_VERSION`; return the version found after.

        Raises:
            StoreError: the database is not UTF8, or its schema is newer than this module.
        """
        encoding = conn.execute("SHOW server_encoding").fetchone()[0]
        if encoding.upper() not in ("UTF8", "UTF-8"):
            raise StoreError(f"database encoding is {encoding}; the lattice needs UTF8",
                             hint="CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0")
        version = self._read_version(conn)
        if version == SCHEMA_VERSION:
            return version  # the common case: no lock, no DDL
        self._refuse_newer(version)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (SCHEMA_LOCK_SPACE,))
            version = self._read_version(conn)  # another process may have migrated meanwhile
            self._refuse_newer(version)
            if version == 0:
                conn.execute("""CREATE TABLE IF NOT EXISTS lattice_schema (
                                    version integer PRIMARY KEY,
                                    applied_at timestamptz NOT NULL DEFAULT now(),
                                    applied_by text NOT NULL)""")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v]:
                    conn.execute(statement)
                conn.execute("INSERT INTO lattice_schema (version, applied_by) VALUES (%s, %s)",
                             (v, f"agent-lattice {package_version()}"))
        return SCHEMA_VERSION

    @staticmethod
    def _read_version(conn: psycopg.Connection) -> int:
        # An MVCC read of the catalog, not to_regclass(): after waiting for the schema lock,
        # the backend's catalog cache may not yet know a table another opener just created.
        exists = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname = 'lattice_schema' AND n.nspname = current_schema())"
        ).fetchone()[0]
        if not exists:
            return 0
        return conn.execute("SELECT coalesce(max(version), 0) FROM lattice_schema").fetchone()[0]

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database schema of {self.url} is version {version}; this agent-lattice knows "
                f"versions up to {SCHEMA_VERSION}",
                hint="upgrade agent-lattice on this machine (a newer version migrated the database)",
            )

    # -------------------------------------------------------------- plumbing

    def _run(self, fn: Callable[[psycopg.Connection], _T], doing: str) -> _T:
        """Run ``fn`` on a pooled connection; retry once on a lost connection; map errors.

        Raises:
            StoreError: no connection was free in time, or the database failed.
            InvalidValue: the database rejected a value (SQLSTATE classes 22 and 54).
        """
        for attempt in range(2):
            try:
                with self._pool.connection(timeout=self._timeout) as conn:
                    return fn(conn)
            except psycopg.OperationalError as e:
                if attempt or not _connection_lost(e):
                    raise map_error(e, doing) from e
            except psycopg.Error as e:
                raise map_error(e, doing) from e
        raise AssertionError("unreachable")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"PostgresStore {self.url} is closed")

    # ------------------------------------------------------------------ reads

    def get(self, d: bytes) -> bytes:
        """Return the object stored under digest ``d``.

        Args:
            d: a 32-byte digest.

        Returns:
            The object's bytes, re-hashed against ``d``.

        Raises:
            NotFound: no object has that digest.
            CorruptObject: the stored bytes do not hash to ``d``.
            StoreError: the store is closed or the database failed.
        """
        self._check_open()
        key = bytes(d)
        row = None
        if len(key) == DIGEST_SIZE:
            row = self._run(lambda c: c.execute("SELECT data FROM lattice_objects WHERE digest = %b",
                                                (key,)).fetchone(), "get")
        if row is None:
            raise NotFound(f"no object {key.hex()}")
        return check_object(key, bytes(row[0]))

    def has(self, d: bytes) -> bool:
        """Return whether an object with digest ``d`` is stored (no re-hash, no transfer).

        Raises:
            StoreError: the store is closed or the database failed.
        """
        self._check_open()
        key = bytes(d)
        if len(key) != DIGEST_SIZE:
            return False
        return self._run(lambda c: c.execute("SELECT 1 FROM lattice_objects WHERE digest = %b",
                                             (key,)).fetchone() is not None, "has")

    def ref(self, name: str) -> bytes | None:
        """Return the digest ``name`` points at, or ``None``.

        Raises:
            StoreError: the store is closed or the database failed.
        """
        self._check_open()
        if not isinstance(name, str) or name_error(name):
            return None
        row = self._run(lambda c: c.execute("SELECT digest FROM lattice_refs WHERE name = %s",
                                            (name,)).fetchone(), "ref")
        return None if row is None else bytes(row[0])

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """Return ``(name, digest)`` for every ref starting with ``prefix``, in name order.

        The result is read by one statement (a consistent snapshot) and materialised,
        so it stays valid across later commits.

        Raises:
            StoreError: the store is closed or the database failed.
        """
        self._check_open()
        if not text_ok(prefix):
            return iter(())  # no stored name can start with it
        pattern = like_prefix(prefix)
        rows = self._run(lambda c: c.execute("SELECT name, digest FROM lattice_refs WHERE name LIKE %s "
                                             "ORDER BY name", (pattern,)).fetchall(), "refs")
        return iter([(name, bytes(d)) for name, d in rows])

    def read_refs(self, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, bytes]:
        """``{name: digest}`` of ``names`` and ``prefixes``, in one statement (:func:`lattice.store.read_refs`).

        Raises:
            StoreError: the store is closed or the database failed.
        """
        self._check_open()
        return self._run(lambda c: fetch_refs(c, names, prefixes), "read_refs")

    def stats(self) -> dict[str, Any]:
        """Return sizes of the database and the pool.

        Returns:
            ``{"url", "schema_version", "objects", "refs", "used_bytes", "pool_size",
            "pool_open", "pool_in_use"}``: ``url`` without its password; ``objects``
            and ``refs`` are exact counts (a scan of each table: not for a hot path);
            ``used_bytes`` is the tables' size with indexes and TOAST; ``pool_size`` is
            the most connections, ``pool_open`` those open now, ``pool_in_use`` those lent.

        Raises:
            StoreError: the store is closed or the database failed.
        """
        self._check_open()

        def collect(conn: psycopg.Connection) -> tuple:
            return conn.execute(
                "SELECT (SELECT count(*) FROM lattice_objects), (SELECT count(*) FROM lattice_refs), "
                "pg_total_relation_size('lattice_objects') + pg_total_relation_size('lattice_refs')"
            ).fetchone()

        objects, refs, used = self._run(collect, "stats")
        pool = self._pool.get_stats()
        return {"url": self.url, "schema_version": self.schema_version, "objects": objects, "refs": refs,
                "used_bytes": used, "pool_size": self._pool.max_size, "pool_open": pool.get("pool_size", 0),
                "pool_in_use": pool.get("pool_size", 0) - pool.get("pool_available", 0)}

    # ----------------------------------------------------------------- writes

    def commit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
               generation: int | None = None) -> bool:
        """Store ``objects`` and apply every ref update atomically.

        Blocks until the writer thread has committed the group this request was part of.

        Args:
            objects: ``{digest: bytes}``; each digest must be blake3 of its bytes.
            updates: compare-and-swaps, all applied or none.
            generation: the store's :attr:`generation` when the writer started reading; the
                commit is refused when a garbage collection swept since (see
                :mod:`lattice.postgres_gc`). None: not checked.

        Returns:
            ``True`` when every update's ``expected`` matched (and the generation, when
            given) and all were applied with the objects; ``False`` (and nothing written)
            otherwise.

        Raises:
            InvalidValue: a digest does not match its bytes, a ref name is empty,
                repeated, contains NUL, is not encodable as UTF-8 or is longer than
                :data:`MAX_REF_BYTES`.
            StoreError: the store is closed or the database failed (if the connection
                was lost during ``COMMIT``, the commit may or may not have landed).
        """
        if threading.current_thread() is self._thread:
            raise StoreError("PostgresStore.commit called on the store's own writer thread (would deadlock)")
        return self.submit(objects, updates, generation=generation).result()

    async def acommit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
                      generation: int | None = None) -> bool:
        """:meth:`commit` for an event loop: awaits the writer thread, never blocks the loop.

        Validation happens synchronously when the coroutine starts. Cancelling the
        awaiting task withdraws the request if the writer has not picked it up yet;
        once picked up, it is committed regardless.

        Raises:
            InvalidValue: as :meth:`commit`.
            StoreError: as :meth:`commit`.
        """
        return await asyncio.wrap_future(self.submit(objects, updates, generation=generation))

    def _prepare(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate],
                 generation: int | None) -> _Request:
        # Copy first, validate the copies: what is hashed is what is written.
        objs = {bytes(d): bytes(data) for d, data in objects.items()}
        ups = check_ref_updates(objs, updates)
        for u in ups:
            problem = name_error(u.name)
            if problem:
                raise InvalidValue(f"ref name {u.name[:80]!r} {problem}")
        ups = [RefUpdate(u.name, None if u.expected is None else bytes(u.expected),
                         None if u.new is None else bytes(u.new)) for u in ups]
        return _Request(objs, ups, concurrent.futures.Future(), sum(map(len, objs.values())), generation)

    def submit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
               generation: int | None = None) -> concurrent.futures.Future:
        """Queue a commit for the writer thread and return at once (see :meth:`lattice.store.Store.submit`).

        Requests are applied in the order they were queued, possibly several in one
        transaction; the future resolves to ``True``/``False`` as :meth:`commit` returns,
        or to the backend's error.

        Raises:
            InvalidValue: as :meth:`commit` (nothing queued). StoreError: the store is closed.
        """
        self._check_open()
        req = self._prepare(objects, updates, generation)
        with self._submit_lock:
            self._check_open()
            self._queue.put(req)
        return req.future

    def _writer(self) -> None:
        """Writer thread: take a request, drain the queue, commit the group; close the pool on stop."""
        try:
            self._write_loop()
        finally:
            self._pool_close()

    def _write_loop(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            if item is _STOP:
                return
            group, stop = drain(q, item, _STOP,
                                lambda g: len(g) >= MAX_GROUP or sum(r.size for r in g) >= MAX_GROUP_BYTES)
            group = [r for r in group if r.future.set_running_or_notify_cancel()]
            if group:
                self._write_group(group)
            if stop:
                return

    def _write_group(self, group: list[_Request]) -> None:
        """Commit ``group`` in one transaction and resolve its futures; on a database
        error, retry each request alone so that only the one at fault fails."""
        try:
            results = self._commit_group(group)
        except LatticeError as e:
            if len(group) == 1 or not request_specific(e):
                for r in group:
                    r.future.set_exception(e)
                return
            for r in group:
                self._write_group([r])
            return
        except BaseException as e:  # noqa: BLE001 - keep the writer alive; report through the futures
            for r in group:
                r.future.set_exception(e)
            return
        for r, ok in zip(group, results):
            r.future.set_result(ok)

    def _commit_group(self, group: list[_Request]) -> list[bool]:
        """Apply ``group`` in one transaction; retry a lost connection (before COMMIT) or a
        deadlock/serialization failure (SQLSTATE class 40) a few times.

        Raises:
            StoreError: the database failed; its ``__cause__`` is an :class:`_Ambiguous`
                when the connection was lost while COMMIT was in flight.
            InvalidValue: the database rejected a value (SQLSTATE classes 22, 54).
        """
        for attempt in range(4):
            try:
                with self._pool.connection(timeout=self._timeout) as conn:
                    return self._apply(conn, group)
            except _Ambiguous as e:
                err = map_error(e.cause, "COMMIT (outcome unknown: re-read the refs)")
                raise err from e
            except psycopg.Error as e:
                state = getattr(e, "sqlstate", None) or ""
                transient = state.startswith("40") or (isinstance(e, psycopg.OperationalError)
                                                       and _connection_lost(e))
                if attempt == 3 or not transient:
                    raise map_error(e, "commit") from e
        raise AssertionError("unreachable")

    def _apply(self, conn: psycopg.Connection, group: list[_Request]) -> list[bool]:
        """Lock the group's refs, decide each request's CAS in order, write the winners, commit."""
        names = sorted({u.name for r in group for u in r.updates})
        body_done = False
        try:
            with conn.transaction():
                # the collection's lock (shared) before the refs' locks, always in that order
                if names:
                    conn.execute(_LOCK_REFS, (GC_LOCK_SPACE, REF_LOCK_SPACE, sorted({lock_key(n) for n in names})))
                else:
                    conn.execute("SELECT pg_advisory_xact_lock_shared(%s::int4, 0)", (GC_LOCK_SPACE,))
                # a new statement: its snapshot is taken after every earlier holder committed
                rows = conn.execute(_READ_REFS, (names,)).fetchall()
                generation, active = rows[0][0], rows[0][1]
                self.generation = generation
                current = {name: bytes(d) for _, _, name, d in rows if name is not None}
                state: dict[str, bytes | None] = dict(current)
                results: list[bool] = []
                objects: dict[bytes, bytes] = {}
                heads: set[bytes] = set()
                for r in group:
                    ok = (r.generation is None or r.generation == generation) and \
                        all(state.get(u.name) == u.expected for u in r.updates)
                    results.append(ok)
                    if ok:
                        objects.update(r.objects)
                        for u in r.updates:
                            state[u.name] = u.new
                            if u.new is not None:
                                heads.add(u.new)
                self._insert_objects(conn, objects)
                if active and (objects or heads):  # a collection runs: protect what this commit reaches
                    conn.execute("INSERT INTO lattice_gc_protected (digest) SELECT unnest(%b::bytea[]) "
                                 "ON CONFLICT DO NOTHING", (sorted(heads.union(objects)),))
                upserts = [(n, d) for n, d in state.items() if d is not None and current.get(n) != d]
                deletes = [n for n, d in state.items() if d is None and n in current]
                if upserts:
                    conn.execute(
                        "INSERT INTO lattice_refs (name, digest) SELECT * FROM unnest(%s::text[], %b::bytea[]) "
                        "ON CONFLICT (name) DO UPDATE SET digest = EXCLUDED.digest",
                        ([n for n, _ in upserts], [d for _, d in upserts]),
                    )
                if deletes:
                    conn.execute("DELETE FROM lattice_refs WHERE name = ANY(%s)", (deletes,))
                body_done = True  # leaving the block sends COMMIT
        except psycopg.OperationalError as e:
            if body_done and _connection_lost(e):
                raise _Ambiguous(e) from e
            raise
        return results

    @staticmethod
    def _insert_objects(conn: psycopg.Connection, objects: dict[bytes, bytes]) -> None:
        """Insert ``objects`` in digest order (two writers never wait on each other's rows in a cycle)."""
        items = sorted(objects.items())
        start = 0
        while start < len(items):
            end, size = start, 0
            while end < len(items) and (end == start or size + len(items[end][1]) <= INSERT_CHUNK_BYTES):
                size += len(items[end][1])
                end += 1
            chunk = items[start:end]
            conn.execute(
                "INSERT INTO lattice_objects (digest, data) SELECT * FROM unnest(%b::bytea[], %b::bytea[]) "
                "ON CONFLICT DO NOTHING",
                ([d for d, _ in chunk], [b for _, b in chunk]),
            )
            start = end

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Finish queued commits, stop the writer thread and close the pool.

        Idempotent. Afterwards every other method raises :class:`StoreError`.
        """
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _pool_close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

