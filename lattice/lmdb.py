"""LMDB backend of the store port.

Layout: one LMDB environment (a directory) with named sub-databases:

* ``log`` and ``digests``: the objects, in an append-ordered log with an index by digest
  prefix (:mod:`lattice.lmdb_layout`: why, the stored encoding, and how a store written
  by an earlier version is read and moved over);
* ``refs``: key = the ref name encoded as UTF-8, value = a 32-byte digest;
* ``meta``: the layout version.

LMDB orders keys bytewise, and UTF-8 byte order equals code point order, so
``refs(prefix)`` yields names in the same order as ``sorted()`` on ``str``.

Writes: a write transaction must begin and commit on the same OS thread, so
writes run on one writer thread owned by the store. :meth:`LmdbStore.commit`
and :meth:`LmdbStore.acommit` validate their arguments on the caller's thread,
queue a request and wait on a :class:`concurrent.futures.Future`
(:meth:`LmdbStore.commit_now` instead writes on the caller's thread, taking turns
with the writer on one lock held around every write transaction). The writer
takes a request, drains whatever else is queued (up to :data:`MAX_GROUP`) and
applies the whole group in one write transaction, i.e. one fsync (group
commit). Within a group, requests are applied in order and each request's
compare-and-swaps see the effects of the requests before it; a request whose
CAS fails writes nothing and resolves to ``False`` without affecting the rest.

Reads run inline on the caller's thread in a short read transaction. Growing
the map (``MDB_MAP_FULL``) invalidates every open transaction of the
environment, so reads and the resize are serialised by a small
readers/exclusive gate: the writer waits until no read is in flight, remaps
(doubling the size) and retries the group. The writer also takes the gate to
abort a write transaction: py-lmdb 3.0 makes that abort wait until no LMDB
call is in flight on any thread, which steady concurrent readers can postpone
forever. If another process (e.g. a CLI on the same directory) grows the map
beyond ours, LMDB reports ``MDB_MAP_RESIZED``; the writer adopts the new size
(a read that hits it asks the writer to, with an empty commit, then retries).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import lmdb

from .errors import InvalidValue, NotFound, ReadOnly, StoreError
from .gc import Barrier
from .lmdb_gc import LmdbCollector
from .lmdb_layout import MAX_DBS, Layout, StaleLayout, pack
from .lmdb_moves import migrate
from .lmdb_support import Gate, Request as _Request, Control as _Control, store_error, writer_lock
from .store import RefUpdate, check_object, check_ref_updates, drain

__all__ = ["LmdbStore"]

#: Initial map size when none is given (the map doubles on demand).
DEFAULT_MAP_SIZE = 64 * 1024 * 1024
#: Most commit requests applied in one write transaction.
MAX_GROUP = 256


# Realpaths of environments open in this process (LMDB forbids opening one twice).
_open_paths: set[str] = set()
_open_paths_lock = threading.Lock()

_STOP = object()
_REFS = object()  # _read's stand-in for the refs database, looked up under the gate
_T = TypeVar("_T")


class LmdbStore(LmdbCollector):
    """A durable backend of the store port on one LMDB environment.

    Thread-safe: reads run on the caller's thread, writes are funnelled to a
    single writer thread that group-commits concurrent requests (or run on the
    caller's thread: :meth:`commit_now`). Use as a
    context manager or call :meth:`close` to stop the writer and release the
    environment.

    Args:
        path: directory of the environment; created if missing.
        map_size: initial map size in bytes (default 64 MiB). The map doubles
            whenever a commit does not fit, so this only sets the starting point.
        durable: ``True`` fsyncs data and metadata on every commit (group);
            ``False`` skips the fsync: faster, but the last commits may be lost
            (never corrupted) if the machine crashes.
        max_readers: most read transactions in flight at once (LMDB's reader
            table; each concurrent ``get``/``has``/``ref``/``refs`` takes a slot).
        readonly: open for reading only (``lattice fsck`` beside a server): no
            writer lock is taken, every commit raises :class:`ReadOnly`.

    One process writes to a directory at a time: a writer holds an exclusive lock
    on ``<path>/writer.lock`` (``flock``, released when the process ends, however
    it ends), so a second server on the same directory fails at once instead of
    re-running the first one's in-flight work. Readers take no lock.

    Raises:
        StoreLocked: another process holds the writer lock.
        StoreError: the environment is already open in this process, or LMDB
            could not open it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        durable: bool = True,
        max_readers: int = 126,
        readonly: bool = False,
    ) -> None:
        self._env: lmdb.Environment | None = None
        self._lock_fd: int | None = None
        self.readonly = readonly
        self._env_readers = max_readers
        self._barrier = Barrier()
        #: bumped by every garbage-collection sweep (see :mod:`lattice.gc`)
        self.generation = 0
        self._thread: threading.Thread | None = None
        self._closed = True
        self._registered = False
        self._gate = Gate()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._submit_lock = threading.Lock()
        self._wlock = threading.Lock()  # held around every write transaction (writer thread, commit_now)
        self.durable = durable
        self.path = os.fspath(path)
        try:
            if not readonly:
                os.makedirs(path, exist_ok=True)
            elif not os.path.isdir(path):
                raise FileNotFoundError(2, "no such directory", self.path)
        except OSError as e:
            raise store_error(f"cannot create LMDB directory {self.path!r}", e) from e
        self.path = os.path.realpath(path)
        with _open_paths_lock:
            if self.path in _open_paths:
                raise StoreError(
                    f"LMDB environment {self.path!r} is already open in this process",
                    hint="share one LmdbStore per path; close the first before reopening",
                )
            _open_paths.add(self.path)
            self._registered = True
        try:
            if not readonly:
                self._lock_fd = writer_lock(self.path)
            self._env = lmdb.open(
                self.path,
                map_size=map_size,
                max_dbs=MAX_DBS,
                max_readers=max_readers,
                sync=durable,
                metasync=durable,
                readonly=readonly,
            )
            self._layout = Layout(self._env, readonly)
            self._refs = self._layout.refs
            if not readonly:
                migrate(self._env, self._layout)
            self._max_key = self._env.max_key_size()
        except BaseException as e:
            if self._env is not None:
                self._env.close()
                self._env = None
            self._release()
            if isinstance(e, lmdb.Error):
                raise store_error(f"cannot open LMDB environment {self.path!r}", e) from e
            raise
        self._closed = False
        self._thread = threading.Thread(
            target=self._writer, name=f"lattice-lmdb-writer:{self.path}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<LmdbStore {self.path!r} {state}>"

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def _read(self, db: object, fn: Callable[[lmdb.Transaction], _T]) -> _T:
        """Run ``fn`` in a short read transaction on ``db`` (``_REFS``: the refs database, looked up
        inside the gate, as ``compact`` reopens the environment with new handles) and return its result.

        Raises:
            StoreError: the store is closed or LMDB failed.
        """
        resized = False
        for attempt in range(3):
            stale = False
            with self._gate.shared():
                env = self._env
                if env is None:
                    raise StoreError(f"LmdbStore {self.path!r} is closed")
                try:
                    with env.begin(db=self._refs if db is _REFS else db, buffers=False) as txn:
                        return fn(txn)
                except lmdb.MapResizedError as e:
                    # Another process grew the map beyond ours; only the
                    # writer may adopt the new size (no txn may be open).
                    if resized or attempt == 2:
                        raise store_error(f"LMDB read failed in {self.path!r}", e) from e
                    resized = True
                except (StaleLayout, lmdb.BadDbiError) as e:
                    # Read-only, opened before a writer in another process moved the store to
                    # layout 3: it created the new index and dropped the old one since.
                    if not self.readonly or attempt == 2:
                        raise store_error(f"LMDB read failed in {self.path!r}", e) from e
                    stale = True
                except lmdb.Error as e:
                    raise store_error(f"LMDB read failed in {self.path!r}", e) from e
            if stale:
                self._reopen_layout()
            else:
                self.commit({}, [])  # an empty commit makes the writer adopt the new map size
        raise AssertionError("unreachable")

    def _reopen_layout(self) -> None:
        """Open the databases again (read-only stores; no read is in flight meanwhile: LMDB opens
        a database handle in a transaction of its own, and the old handles stay valid)."""
        with self._gate.exclusive():
            if self._env is not None:
                self._layout = Layout(self._env, True)
                self._refs = self._layout.refs

    def get(self, d: bytes) -> bytes:
        """Return the object stored under digest ``d``.

        Args:
            d: a 32-byte digest.

        Returns:
            The object's bytes (a copy; safe to keep after later commits).

        Raises:
            NotFound: no object has that digest.
            CorruptObject: the stored bytes do not hash to ``d``.
            StoreError: the store is closed or LMDB failed.
        """
        key = bytes(d)
        data, ok = self._read(None, lambda txn: self._layout.find(txn, key))
        if data is None:
            raise NotFound(f"no object {key.hex()}")
        return data if ok else check_object(key, data)

    def has(self, d: bytes) -> bool:
        """Return whether an object with digest ``d`` is stored (whole or damaged: :meth:`get` tells).

        Raises:
            StoreError: the store is closed or LMDB failed.
        """
        key = bytes(d)
        return self._read(None, lambda txn: self._layout.find(txn, key)[0] is not None)

    def ref(self, name: str) -> bytes | None:
        """Return the digest ``name`` points at, or ``None``.

        Raises:
            StoreError: the store is closed or LMDB failed.
        """
        key = self._ref_key(name)
        if self._refs is None:
            return None
        return self._read(_REFS, lambda txn: None if key is None else txn.get(key))

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """Return ``(name, digest)`` for every ref starting with ``prefix``, in name order.

        The result is materialised in one read transaction, so it is a
        consistent snapshot and stays valid across later commits.

        Raises:
            StoreError: the store is closed, LMDB failed or a stored name is
                not UTF-8 (written by something other than this class).
        """
        pfx = self._ref_key(prefix) if prefix else b""
        if pfx is None or self._refs is None:
            return iter(())
        return iter(self._read(_REFS, lambda txn: list(self._under(txn.cursor(), pfx))))

    def _under(self, cur: lmdb.Cursor, pfx: bytes) -> Iterator[tuple[str, bytes]]:
        """``(name, digest)`` of the refs whose key starts with ``pfx``, in key order (on the refs DB).

        Raises:
            StoreError: a stored name is not UTF-8 (written by something other than this class).
        """
        if cur.set_range(pfx):
            for key, value in cur:
                if not key.startswith(pfx):
                    break
                try:
                    yield key.decode("utf-8"), value
                except UnicodeDecodeError as e:
                    raise store_error(f"ref key {key!r} in {self.path!r} is not UTF-8", e) from e

    def read_refs(self, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, bytes]:
        """``{name: digest}`` of the refs in ``names`` and of those starting with a prefix, in one
        read transaction (see :func:`lattice.store.read_refs`).

        Raises:
            StoreError: the store is closed or LMDB failed.
        """
        if self._refs is None:
            return {}
        keys = [(n, k) for n in names if (k := self._ref_key(n)) is not None]
        pfxs = [k for p in prefixes if (k := self._ref_key(p)) is not None]

        def scan(txn: lmdb.Transaction) -> dict[str, bytes]:
            out = {name: d for name, key in keys if (d := txn.get(key)) is not None}
            for pfx in pfxs:
                out.update(self._under(txn.cursor(), pfx))
            return out

        return self._read(_REFS, scan)

    # ----------------------------------------------------------------- writes

    def commit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
               generation: int | None = None) -> bool:
        """Store ``objects`` and apply every ref update atomically.

        Blocks until the writer thread has committed (and, when durable,
        fsynced) the group this request was part of.

        Args:
            objects: ``{digest: bytes}``; each digest must be blake3 of its bytes.
            updates: compare-and-swaps, all applied or none.
            generation: the store's :attr:`generation` when the writer started reading;
                the commit is refused when a garbage collection swept since (see
                :mod:`lattice.gc`). None: not checked.

        Returns:
            ``True`` when every update's ``expected`` matched and all were
            applied with the objects; ``False`` (and nothing written) otherwise.

        Raises:
            InvalidValue: a digest does not match its bytes, a ref name is
                empty, repeated, not encodable as UTF-8 or longer than LMDB's
                key limit (511 bytes).
            StoreError: the store is closed or LMDB failed.
        """
        if threading.current_thread() is self._thread:
            raise StoreError("LmdbStore.commit called on the store's own writer thread (would deadlock)")
        return self.submit(objects, updates, generation=generation).result()

    async def acommit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
                      generation: int | None = None) -> bool:
        """:meth:`commit` for an event loop: awaits the writer thread, never blocks the loop.

        Validation happens synchronously when the coroutine starts. Cancelling
        the awaiting task withdraws the request if the writer has not picked
        it up yet; once picked up, it is committed regardless.

        Raises:
            InvalidValue: as :meth:`commit`.
            StoreError: as :meth:`commit`.
        """
        return await asyncio.wrap_future(self.submit(objects, updates, generation=generation))

    def _ref_key(self, name: str) -> bytes | None:
        """Encode a ref name; ``None`` when no stored key can equal or start with it."""
        try:
            key = name.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return key if len(key) <= self._max_key else None

    def _prepare(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate],
                 generation: int | None = None) -> _Request:
        # Copy first, validate the copies: what is hashed is what is written.
        objs = {bytes(d): bytes(data) for d, data in objects.items()}
        ups = check_ref_updates(objs, updates)
        encoded = []
        for u in ups:
            try:
                key = u.name.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InvalidValue(f"ref name {u.name!r} is not encodable as UTF-8") from e
            if len(key) > self._max_key:
                raise InvalidValue(
                    f"ref name is {len(key)} bytes in UTF-8; LMDB allows at most {self._max_key}"
                )
            encoded.append(
                (
                    key,
                    None if u.expected is None else bytes(u.expected),
                    None if u.new is None else bytes(u.new),
                )
            )
        # packed (compressed) here, on the caller's thread, so the writer's serial path stays short
        return _Request([(d, data, pack(data)) for d, data in objs.items()], encoded, concurrent.futures.Future(),
                        generation)

    def submit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
               generation: int | None = None) -> concurrent.futures.Future:
        """Queue a commit for the writer thread and return at once (see :meth:`lattice.store.Store.submit`).

        Requests are applied in the order they were queued, possibly several in one
        write transaction (one fsync); the future resolves to ``True``/``False`` as
        :meth:`commit` returns, or to the backend's error.

        Raises:
            InvalidValue: as :meth:`commit` (nothing queued).
            StoreError: the store is closed. ReadOnly: opened read-only.
        """
        if self._closed:
            raise StoreError(f"LmdbStore {self.path!r} is closed")
        if self.readonly:
            raise ReadOnly(f"LmdbStore {self.path!r} is open read-only")
        req = self._prepare(objects, updates, generation)
        with self._submit_lock:
            if self._closed:
                raise StoreError(f"LmdbStore {self.path!r} is closed")
            self._queue.put(req)
        return req.future

    def commit_now(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), *,
                   generation: int | None = None) -> bool:
        """:meth:`commit` on the calling thread, without the hand-off to the writer thread and back.

        It may land before commits submitted earlier (by any thread) that the writer has not
        applied yet, so a caller uses it only when nothing it depends on is still in flight
        (the LangGraph saver: when no commit of the namespace is). It waits while the writer
        thread, or another ``commit_now``, is in a write transaction. Same arguments, result
        and errors as :meth:`commit`.
        """
        if self.readonly:
            raise ReadOnly(f"LmdbStore {self.path!r} is open read-only")
        if threading.current_thread() is self._thread:
            raise StoreError("LmdbStore.commit_now called on the store's own writer thread (would deadlock)")
        req = self._prepare(objects, updates, generation)
        with self._wlock:
            if self._closed or self._env is None:
                raise StoreError(f"LmdbStore {self.path!r} is closed")
            return self._commit_group([req])[0]

    def _writer(self) -> None:
        """Writer thread: take a request, drain the queue, commit the group; close the env on stop."""
        try:
            self._write_loop()
        finally:
            with self._wlock, self._gate.exclusive():
                env, self._env = self._env, None
                if env is not None:
                    env.close()
            self._release()

    def _write_loop(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            if item is _STOP:
                return
            # a collection step ends a group: it runs after the commits before it
            group, stop = drain(q, item, _STOP, lambda g: len(g) >= MAX_GROUP or type(g[-1]) is _Control)
            control = group.pop() if type(group[-1]) is _Control else None
            group = [r for r in group if r.future.set_running_or_notify_cancel()]
            with self._wlock:  # one write transaction at a time: this thread's or a commit_now's
                if group:
                    self._write_group(group)
                if control is not None and control.future.set_running_or_notify_cancel():
                    try:
                        control.future.set_result(control.run())
                    except BaseException as e:  # noqa: BLE001 - reported through the future
                        control.future.set_exception(e)
            if stop:
                return

    def _write_group(self, group: list[_Request]) -> None:
        """Commit ``group`` (holding ``_wlock``) and resolve its futures."""
        try:
            results = self._commit_group(group)
        except BaseException as e:  # noqa: BLE001 - reported through the futures; keep the writer alive
            for r in group:
                r.future.set_exception(e)
            return
        for r, ok in zip(group, results):
            r.future.set_result(ok)

    def _commit_group(self, group: list[_Request]) -> list[bool]:
        """Commit ``group`` in one transaction, growing the map as needed (the caller holds ``_wlock``)."""
        return self._growing(lambda: self._apply(group), "commit")

    def _growing(self, write: Callable[[], _T], what: str) -> _T:
        """Run ``write`` (one write transaction, aborted when it raises) until the map holds it: grow a
        full map, adopt the size another process gave it. The caller holds ``_wlock``.

        Raises:
            StoreError: LMDB failed, or the map could not grow."""
        resized = 0
        while True:
            try:
                return write()
            except lmdb.MapResizedError as e:
                # Another process grew the map: adopt its size and retry.
                resized += 1
                try:
                    if resized > 3:
                        raise
                    with self._gate.exclusive():
                        self._env.set_mapsize(0)
                except BaseException as e2:
                    raise store_error(f"cannot adopt LMDB map size of {self.path!r}", e2) from e
            except lmdb.MapFullError as e:
                try:
                    self._grow()
                except BaseException as e2:
                    raise store_error(f"cannot grow LMDB map of {self.path!r}", e2) from e
            except lmdb.Error as e:
                raise store_error(f"LMDB {what} failed in {self.path!r}", e) from e

    def _apply(self, group: list[_Request]) -> list[bool]:
        """Apply each request's CAS + writes in one write transaction; return per-request results."""
        return self._in_write(lambda txn: self._apply_in(txn, group))

    def _apply_in(self, txn: lmdb.Transaction, group: list[_Request]) -> list[bool]:
        results = []
        layout, refs_db = self._layout, self._refs
        layout.begin(txn)
        for req in group:
            ok = (req.generation is None or req.generation == self.generation) and \
                all(txn.get(key, db=refs_db) == expected for key, expected, _ in req.updates)
            results.append(ok)
            if not ok:
                continue
            if self._barrier.active:
                self._barrier.record({d: data for d, data, _ in req.objects}, (new for _, _, new in req.updates),
                                     lambda d: layout.get(txn, d))
            for d, data, packed in req.objects:
                layout.put(txn, d, data, packed)
            for key, _, new in req.updates:
                if new is None:
                    txn.delete(key, db=refs_db)
                else:
                    txn.put(key, new, db=refs_db)
        return results

    def _grow(self) -> None:
        """Double the map size; runs holding ``_wlock``, with no write txn open."""
        with self._gate.exclusive():
            size = self._env.info()["map_size"]
            self._env.set_mapsize(size * 2)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Finish queued commits, stop the writer thread and close the environment.

        Idempotent. Afterwards every other method raises :class:`StoreError`.
        The writer thread closes the environment itself once it has drained
        the queue; ``close`` waits for that unless it is called on the writer
        thread (e.g. from a future's done-callback).
        """
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _release(self) -> None:
        """Forget this path in the process-wide registry of open environments; drop the writer lock."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock
        if self._registered:
            self._registered = False
            with _open_paths_lock:
                _open_paths.discard(self.path)
