"""SQLite backend of the store port: one file, write-ahead log, one sync a commit.

Why a second embedded backend beside LMDB: a durable LMDB commit syncs twice (the data
pages, then the meta page: LMDB has no checksums to find a torn commit with) and keeps the
pages the last commits freed (copy on write), so a small store is mostly free pages. SQLite's
WAL appends a commit's pages to the log and syncs once (its frames carry checksums), and a
page written twice between two checkpoints takes the space once. On the ``bench/vs_langgraph.py``
workload (``bench/README.md``, "The SQLite backend") a 10-turn agent takes 53 KB here against
111 KB on LMDB (LangGraph's ``DeltaChannel`` on SQLite: 70 KB), a turn adds 2.9 KB at 1,000
turns against 3.1 KB, and a step takes 10-20% less. LMDB stays the default (``DESIGN.md``);
this one is ``sqlite:PATH``.

Tables (schema version :data:`SCHEMA`, in ``lattice_meta``):

* ``lattice_log(seq INTEGER PRIMARY KEY, v BLOB)``: the objects in commit order, each as
  :func:`lattice.lmdb_layout.pack` encodes it for LMDB's log (a codec byte, then the bytes,
  zstd-compressed with the shared dictionary when that is smaller). Row ids only grow, so
  SQLite appends and fills its pages;
* ``lattice_index(p INTEGER, seq INTEGER, PRIMARY KEY (p, seq)) WITHOUT ROWID``: the first
  8 bytes of each object's blake3 digest (a signed big-endian integer) and its ``seq``. Two
  objects whose digests share the prefix are two rows; a read tells them apart by hashing,
  as every read re-hashes anyway (:func:`lattice.store.check_object`);
* ``lattice_refs(name TEXT PRIMARY KEY, d BLOB) WITHOUT ROWID``: ``BINARY`` collation
  compares UTF-8 bytes, so ``refs(prefix)`` yields names in ``sorted()`` order;
* ``lattice_meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID``: ``schema`` and ``generation``;
  ``lattice_gc_protected(d BLOB PRIMARY KEY)``: the collector's write barrier.

One process writes a file at a time, as with LMDB (the runtime of ``lattice serve`` assumes it
is the only one moving its agents): a writing store holds an exclusive ``flock`` on
``PATH-writer.lock`` (:class:`~lattice.errors.StoreLocked` for a second one); a store opened
``readonly`` (``lattice fsck`` beside a server) takes no lock.

Writes: one writer connection. :meth:`SqliteStore.commit`, :meth:`~SqliteStore.acommit` and
:meth:`~SqliteStore.submit` queue the request for the store's writer thread, which drains the
queue and applies the group in one ``BEGIN IMMEDIATE`` transaction (one sync: group commit);
each request's compare-and-swaps see the requests before it, and one that fails writes
nothing. :meth:`~SqliteStore.commit_now` writes on the calling thread instead (taking turns
with the writer on one lock). A database another connection holds locked (e.g. while it
checkpoints the write-ahead log) is waited for up to ``timeout`` seconds.

Reads use a small pool of connections, one statement (or one ``BEGIN``...``COMMIT``, for
several) each: in WAL mode a reader never waits for the writer.

Garbage collection and compaction: :mod:`lattice.sqlite_gc`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .digest import DIGEST_SIZE
from .errors import CorruptObject, InvalidValue, NotFound, ReadOnly, StoreError
from .lmdb_layout import pack, unpack
from .lmdb_support import writer_lock
from .sqlite_gc import SqliteCollector
from .sqlite_support import find, find_many, prefix_of, sqlite_error
from .store import RefUpdate, check_ref_updates, drain

__all__ = ["SqliteStore", "SCHEMA", "sqlite_path"]

#: the schema this module writes (``lattice_meta['schema']``)
SCHEMA = 1
#: most requests applied in one write transaction
MAX_GROUP = 64
_T = TypeVar("_T")

_DDL = (
    "CREATE TABLE IF NOT EXISTS lattice_meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS lattice_log (seq INTEGER PRIMARY KEY, v BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lattice_index (p INTEGER NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (p, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS lattice_refs (name TEXT PRIMARY KEY, d BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS lattice_gc_protected (d BLOB PRIMARY KEY) WITHOUT ROWID",
)
_STOP = object()


def sqlite_path(spec: str) -> str:
    """The file a ``sqlite:`` spec names: ``sqlite:PATH`` or ``sqlite://PATH`` (so
    ``sqlite:///tmp/a.db`` is ``/tmp/a.db`` and ``sqlite:a.db`` is ``a.db``, relative).

    Raises:
        InvalidValue: no path after the scheme.
    """
    rest = spec[len("sqlite:"):]
    if rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise InvalidValue(f"no file in store spec {spec!r}", hint="sqlite:PATH, e.g. sqlite:./lattice.db")
    return rest


class _Request:
    __slots__ = ("objects", "updates", "future", "generation")

    def __init__(self, objects: list[tuple[bytes, bytes, bytes]], updates: list[RefUpdate],
                 generation: int | None) -> None:
        self.objects, self.updates, self.generation = objects, updates, generation
        self.future: concurrent.futures.Future[bool] = concurrent.futures.Future()


class SqliteStore(SqliteCollector):
    """A store in one SQLite file (WAL mode). Thread-safe; one writing process per file.

    Args:
        path: the database file (created with its tables, and its directory, if missing).
        durable: sync the log at every commit (``synchronous=FULL``: a commit that returned
            survives a power loss). ``False``: ``synchronous=OFF``, for tests and bulk loads
            (a crash of the machine may lose recent commits or damage the file).
        timeout: seconds to wait for a database another connection holds locked.
        readonly: open for reading only (``lattice fsck`` beside a server): no lock, no writer
            thread; the file must exist. Writes raise :class:`~lattice.errors.ReadOnly`.

    Raises:
        StoreLocked: another process writes to the file.
        StoreError: the file cannot be opened, is not a store (readonly), or has a newer schema.
    """

    def __init__(self, path: str | os.PathLike, *, durable: bool = True, timeout: float = 30.0,
                 readonly: bool = False) -> None:
        self.path = os.fspath(path)
        self.durable = durable
        self.timeout = timeout
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self.generation = 0
        self._closed = False
        self._wlock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._gc_lock = threading.Lock()
        self._gc_run: tuple[Any] | None = None  # (extra,) of the collection in progress
        #: the write barrier is on (set and cleared holding ``_wlock``)
        self._protecting = False
        self._next_seq = 0  # the last sequence number in the log (this process is its only writer)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        try:
            if readonly:
                if not os.path.isfile(self.path):
                    raise StoreError(f"no store at {self.path!r}")
                schema = self._read(lambda c: self._meta(c, "schema") if _tables(c) else None, "open")
                self.generation = self._read(lambda c: self._meta(c, "generation"), "open") if schema else 0
            else:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self._lock_fd = writer_lock(self.path, self.path + "-writer.lock")
                self._w = self._connect()
                if _tables(self._w) is False:  # before anything changes it (the journal mode stays)
                    raise StoreError(f"{self.path!r} is not a store of agent-lattice (no schema)",
                                     hint="a SQLite database of something else: give a new file")
                self._w.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
                if self._w.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                    raise StoreError(f"SQLite could not put {self.path!r} in WAL mode")
                with self._write_txn():
                    for ddl in _DDL:
                        self._w.execute(ddl)
                    self._w.execute("INSERT OR IGNORE INTO lattice_meta VALUES ('schema', ?), ('generation', 0)",
                                    (SCHEMA,))
                    schema = self._meta(self._w, "schema")
                    self.generation = self._meta(self._w, "generation")
                    self._next_seq = self._w.execute("SELECT coalesce(max(seq), 0) FROM lattice_log").fetchone()[0]
        except (sqlite3.Error, OSError) as e:
            self._release()
            raise sqlite_error("open", self.path, e) from e
        except BaseException:
            self._release()
            raise
        if schema is None or schema > SCHEMA:
            self._release()
            if schema is None:
                raise StoreError(f"{self.path!r} is not a store of agent-lattice (no schema)")
            raise StoreError(f"{self.path!r} has schema {schema}, newer than this version knows ({SCHEMA})",
                             hint="upgrade agent-lattice")
        if readonly:
            return
        self._thread = threading.Thread(target=self._write_loop, name=f"sqlite-writer:{self.path}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path!r}{'' if self.durable else ' not durable'}>"

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ connections
    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            from urllib.parse import quote
            conn = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?mode=ro", uri=True,
                                   timeout=self.timeout, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError(f"SqliteStore {self.path!r} is closed")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            self._readers.put(conn)

    def _read(self, fn: Callable[[sqlite3.Connection], _T], doing: str, snapshot: bool = False) -> _T:
        """``fn(connection)``; ``snapshot``: inside one read transaction (several statements, one view)."""
        try:
            with self._reader() as conn:
                if not snapshot:
                    return fn(conn)
                conn.execute("BEGIN")
                try:
                    return fn(conn)
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise sqlite_error(doing, self.path, e) from e

    @contextmanager
    def _write_txn(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection (the caller holds ``_wlock`` or is opening)."""
        w = self._w
        w.execute("BEGIN IMMEDIATE")
        try:
            yield w
        except BaseException:
            w.execute("ROLLBACK")
            raise
        w.execute("COMMIT")

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> Any:
        row = conn.execute("SELECT v FROM lattice_meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ reads
    def get(self, d: bytes) -> bytes:
        """The object stored under digest ``d``.

        Raises:
            NotFound: no object has that digest. CorruptObject: its stored bytes do not hash to ``d``.
            StoreError: the store is closed or SQLite failed.
        """
        d = bytes(d)
        if len(d) != DIGEST_SIZE:
            raise NotFound(f"object {d.hex()} not found")
        data, ok = self._read(lambda c: find(c, d), "read")
        if ok:
            return data
        if data is not None:
            raise CorruptObject(f"object {d.hex()} does not match its digest ({len(data)} bytes)")
        raise NotFound(f"object {d.hex()} not found")

    def has(self, d: bytes) -> bool:
        """Whether an object is stored under ``d`` (a damaged one counts: see :meth:`get`)."""
        d = bytes(d)
        return len(d) == DIGEST_SIZE and self._read(lambda c: find(c, d)[0] is not None, "read")

    def get_many(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        """``{digest: bytes}`` of those of ``digests`` stored and whole, read as one snapshot (the
        collector's mark and bundle export read a layer of the graph at a time with it)."""
        keys = [bytes(d) for d in digests if len(d) == DIGEST_SIZE]
        return self._read(lambda c: find_many(c, keys), "read", snapshot=True) if keys else {}

    def ref(self, name: str) -> bytes | None:
        """The digest ``name`` points at, or ``None`` (also for a name no ref can have: not UTF-8)."""
        if not _storable(name):
            return None
        row = self._read(lambda c: c.execute("SELECT d FROM lattice_refs WHERE name = ?", (name,)).fetchone(),
                         "read")
        return None if row is None else bytes(row[0])

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """``(name, digest)`` of every ref starting with ``prefix``, in name order (a snapshot)."""
        if prefix and not _storable(prefix):
            return iter(())
        return iter(self._read(lambda c: _scan(c, prefix), "read"))

    def read_refs(self, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, bytes]:
        """The refs named and those starting with each prefix, read as one snapshot (absent ones left out)."""
        def read(c: sqlite3.Connection) -> dict[str, bytes]:
            out = {}
            for n in names:
                row = c.execute("SELECT d FROM lattice_refs WHERE name = ?", (n,)).fetchone() \
                    if _storable(n) else None
                if row is not None:
                    out[n] = bytes(row[0])
            for p in prefixes:
                if not p or _storable(p):
                    out.update(_scan(c, p))
            return out
        return self._read(read, "read", snapshot=True)

    def stats(self) -> dict[str, Any]:
        """``path``, ``used_bytes`` (the database's pages, free ones included: the file once its
        log is checkpointed), ``wal_bytes``, ``objects``, ``refs``, ``durable``."""
        def read(c: sqlite3.Connection) -> dict[str, Any]:
            pages = c.execute("PRAGMA page_count").fetchone()[0]
            size = c.execute("PRAGMA page_size").fetchone()[0]
            return {"objects": c.execute("SELECT count(*) FROM lattice_index").fetchone()[0],
                    "refs": c.execute("SELECT count(*) FROM lattice_refs").fetchone()[0],
                    "used_bytes": pages * size}
        out = self._read(read, "stats", snapshot=True)
        try:
            wal = os.path.getsize(self.path + "-wal")
        except OSError:
            wal = 0
        return {"path": self.path, **out, "wal_bytes": wal, "durable": self.durable}

    # ------------------------------------------------------------------ writes
    def _prepare(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate],
                 generation: int | None) -> _Request:
        objs = {bytes(d): bytes(data) for d, data in objects.items()}
        ups = check_ref_updates(objs, updates)  # hashes what is written
        for u in ups:
            try:
                u.name.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InvalidValue(f"ref name {u.name!r} is not encodable as UTF-8") from e
        # packed (compressed) on the caller's thread, so the writer's serial path stays short
        return _Request([(d, data, pack(data)) for d, data in objs.items()], ups, generation)

    def commit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
               generation: int | None = None) -> bool:
        """Store ``objects`` and apply every ref update atomically (see :meth:`lattice.store.Store.commit`).

        Args:
            generation: the store's :attr:`generation` when the writer started reading; the
                commit is refused when a collection swept since (:mod:`lattice.gc`). None: not checked.

        Returns:
            ``True`` when every update's ``expected`` matched and all were applied; ``False``
            (nothing written) otherwise.

        Raises:
            InvalidValue: a digest does not match its bytes, a ref name is empty, repeated or not UTF-8.
            StoreError: the store is closed or SQLite failed (nothing written).
        """
        if threading.current_thread() is self._thread:
            raise StoreError("SqliteStore.commit called on the store's own writer thread (would deadlock)")
        return self.submit(objects, updates, generation=generation).result()

    async def acommit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
                      generation: int | None = None) -> bool:
        """:meth:`commit` for an event loop: awaits the writer thread, never blocks the loop."""
        return await asyncio.wrap_future(self.submit(objects, updates, generation=generation))

    def submit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
               generation: int | None = None) -> concurrent.futures.Future[bool]:
        """Queue a commit for the writer thread; the future resolves to its result (see
        :meth:`lattice.store.Store.submit`: requests are applied in the order queued).

        Raises:
            InvalidValue: as :meth:`commit` (nothing queued). StoreError: the store is closed.
        """
        self._writable()
        req = self._prepare(objects, updates, generation)
        with self._submit_lock:  # with close(): nothing is queued behind the writer's stop
            self._writable()
            self._queue.put(req)
        return req.future

    def _writable(self) -> None:
        if self._closed:
            raise StoreError(f"SqliteStore {self.path!r} is closed")
        if self.readonly:
            raise ReadOnly(f"SqliteStore {self.path!r} is open read-only")

    def commit_now(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
                   generation: int | None = None) -> bool:
        """:meth:`commit` on the calling thread, without the hand-off to the writer thread and back; it
        may land before commits queued earlier and not applied yet. Same arguments, result and errors."""
        if threading.current_thread() is self._thread:
            raise StoreError("SqliteStore.commit_now called on the store's own writer thread (would deadlock)")
        self._writable()
        req = self._prepare(objects, updates, generation)
        with self._wlock:
            if self._closed:
                raise StoreError(f"SqliteStore {self.path!r} is closed")
            return self._apply([req])[0]

    def _write_loop(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            if item is _STOP:
                return
            group, stop = drain(q, item, _STOP, lambda g: len(g) >= MAX_GROUP)
            group = [r for r in group if r.future.set_running_or_notify_cancel()]
            if group:
                with self._wlock:
                    try:
                        results = self._apply(group)
                    except BaseException as e:  # noqa: BLE001 - reported through the futures
                        for r in group:
                            r.future.set_exception(e)
                    else:
                        for r, ok in zip(group, results):
                            r.future.set_result(ok)
            if stop:
                return

    def _apply(self, group: list[_Request]) -> list[bool]:
        """Apply each request in one write transaction; its result per request (the caller holds ``_wlock``).

        Few statements a group (each one lets go of the GIL, which a busy process may take long to give
        back): the barrier, the generation and the next sequence number are this process's (it is the
        only writer), every object's candidates come in one query, every request's refs in another.

        Raises:
            StoreError: SQLite failed (the transaction is rolled back: nothing of the group written)."""
        try:
            with self._write_txn() as w:
                results = []
                seq = self._next_seq
                found = _candidates(w, [prefix_of(d) for req in group for d, _, _ in req.objects])
                written: set[bytes] = set()
                for req in group:
                    ok = req.generation is None or req.generation == self.generation
                    if ok and req.updates:
                        names = [u.name for u in req.updates]
                        now = dict(w.execute(f"SELECT name, d FROM lattice_refs WHERE name IN ({_marks(names)})",
                                             names).fetchall())
                        ok = all((None if now.get(u.name) is None else bytes(now[u.name])) == u.expected
                                 for u in req.updates)
                    results.append(ok)
                    if not ok:
                        continue
                    log, index = [], []
                    for d, data, packed in req.objects:
                        if d in written or _stored(found.get(prefix_of(d), ()), data, packed):
                            continue
                        written.add(d)
                        seq += 1
                        log.append((seq, packed))
                        index.append((prefix_of(d), seq))
                    if log:
                        w.executemany("INSERT INTO lattice_log (seq, v) VALUES (?, ?)", log)
                        w.executemany("INSERT INTO lattice_index (p, seq) VALUES (?, ?)", index)
                    gone = [(u.name,) for u in req.updates if u.new is None]
                    moved = [(u.name, bytes(u.new)) for u in req.updates if u.new is not None]
                    if gone:
                        w.executemany("DELETE FROM lattice_refs WHERE name = ?", gone)
                    if moved:
                        w.executemany("INSERT OR REPLACE INTO lattice_refs (name, d) VALUES (?, ?)", moved)
                    if self._protecting:
                        kept = [(d,) for d, _, _ in req.objects] + [(d,) for _, d in moved]
                        w.executemany("INSERT OR IGNORE INTO lattice_gc_protected (d) VALUES (?)", kept)
            self._next_seq = seq
            return results
        except sqlite3.Error as e:
            raise sqlite_error("commit", self.path, e) from e

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Finish queued commits, stop the writer thread, close every connection. Idempotent."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._wlock:
            self._release()

    def _release(self) -> None:
        """Close every connection, drop the writer lock."""
        self._close_all()
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock

    def _close_all(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass


def _storable(name: object) -> bool:
    """Whether a ref could be named ``name``: a non-empty str that is valid UTF-8."""
    if not isinstance(name, str) or not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tables(c: sqlite3.Connection) -> bool | None:
    """True: the store's tables are there; None: the database is empty; False: it holds other tables."""
    names = {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return True if "lattice_meta" in names else (None if not names else False)


def _scan(c: sqlite3.Connection, prefix: str) -> list[tuple[str, bytes]]:
    rows = c.execute("SELECT name, d FROM lattice_refs WHERE name >= ? ORDER BY name", (prefix,))
    out = []
    for name, d in rows:
        if not name.startswith(prefix):
            break
        out.append((name, bytes(d)))
    return out


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def _candidates(w: sqlite3.Connection, prefixes: list[int]) -> dict[int, list[bytes]]:
    """The log values stored under each of ``prefixes`` (a query per 500)."""
    out: dict[int, list[bytes]] = {}
    keys = list(set(prefixes))
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        for p, v in w.execute("SELECT i.p, l.v FROM lattice_index i JOIN lattice_log l ON l.seq = i.seq "
                              f"WHERE i.p IN ({_marks(chunk)})", chunk):
            out.setdefault(p, []).append(v)
    return out


def _stored(values: Iterable[bytes], data: bytes, packed: bytes) -> bool:
    """Whether one of ``values`` (log values under ``data``'s prefix) holds ``data``: one equal to
    ``packed`` does (packing is a function of the bytes); any other is unpacked and compared."""
    for v in values:
        if v == packed:
            return True
        try:
            if unpack(v) == data:
                return True
        except ValueError:
            continue
    return False
