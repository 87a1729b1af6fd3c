"""On-disk layout of the LMDB backend: an append-ordered object log with a dense digest index.

Layout 3 (this module) keeps objects in two sub-databases:

* ``log``: key = 8-byte big-endian sequence number, given in commit order, value = one
  stored object (:func:`pack`: a codec byte, then the object's bytes, compressed when that
  makes them smaller). Keys only ever grow, so LMDB appends and keeps the log's pages full;
* ``digests``: the index, one key (``b"d"``) whose sorted, fixed-size duplicates
  (``MDB_DUPSORT | MDB_DUPFIXED``) are 14 bytes each: the first :data:`PREFIX` (8)
  bytes of the object's blake3 digest, then its 6-byte sequence number. Two objects whose
  digests share a prefix are two entries side by side; a read tells them apart by hashing
  (every read re-hashes anyway: :func:`lattice.store.check_object`).

Why: under random 32-byte keys LMDB splits pages at random places and leaves them about
two thirds full, so layout 1 (one ``objects`` database, digest -> bytes) spent about 1.45
bytes of disk per byte stored. The log fills its pages; only the small index entries pay for
random keys. Layout 2 keyed the index by the prefix (``index``: prefix -> sequence number):
each entry then also carried LMDB's 8-byte node header and 2-byte page slot, about 35 bytes
of disk an entry at two-thirds fill. Duplicates of one ``DUPFIXED`` key are stored packed,
without either, and take about 19 bytes an entry (``bench/README.md``, layout 3).

Codecs (the first byte of a log value): ``0`` the object as it is; ``1`` and ``2`` a zstd
frame (``zstandard``, level 3, without its magic number, checksum or dictionary id, with the
content size) compressed with the dictionary ``lattice/dictionaries/v1.zdict`` or ``v2.zdict``.
Most objects are small msgpack maps whose keys and constants (``caller``, ``format``,
``agentId``, ``status``, ``COMPLETE``, ...) repeat from object to object but not inside one,
which is what a dictionary is for: on the ``bench/vs_langgraph.py`` workload, which it was not
trained on, one turn's objects took 3.7 KB with v1 and 4.4 KB with zstd alone (4.9 KB raw).
v2 (codec 2, written since format 3) was trained the same way on format 3's objects, whose
shapes had changed since v1: 82 B less a turn on that workload. ``scripts/build_zstd_dictionary.py``
says how they were built; each is part of the format and never changes, and a store may hold
objects of both. An object is stored compressed only when that saves at least
:data:`MIN_SAVING` bytes. The digest is always of the object's own bytes, so compression is
invisible above the backend: what is hashed, exported and compared is unchanged.

``meta`` holds ``layout`` (``b"3"``). A store written by an earlier layout is read as it is
(a read that misses the index also looks in layout 2's ``index`` and layout 1's ``objects``
database) and moved to layout 3 by the first writer that opens it
(:func:`lattice.lmdb_moves.migrate`), in batches that each move and delete together, so a
crash in between leaves every object readable. A read-only store opened before the move (``lattice fsck`` beside a server that
starts) has handles to the databases of then: a read it misses checks whether a database was
created or dropped since (:meth:`Layout.check_current`), and the store opens them again.
"""

from __future__ import annotations

import queue
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Container, Iterable, Iterator

import lmdb
import zstandard

from .digest import DIGEST_SIZE, digest

__all__ = ["LAYOUT", "MAX_DBS", "PREFIX", "MIN_SAVING", "LOG_DB", "INDEX_DB", "INDEX2_DB", "META_DB", "LEGACY_DB",
           "REFS_DB", "RAW", "ZSTD", "ZSTD_V2", "CODEC", "pack", "unpack", "object_size", "index_key",
           "index_entry_size", "seq_key", "Layout", "Dead", "StaleLayout"]

#: the layout this module writes (``meta["layout"]``)
LAYOUT = 3
#: bytes of the digest the index is keyed by
PREFIX = 8
#: an object is stored compressed only when that saves at least this many bytes
MIN_SAVING = 4
#: smallest object worth trying to compress
_MIN_COMPRESS = 24

LOG_DB, INDEX_DB, META_DB, REFS_DB = b"log", b"digests", b"meta", b"refs"
#: layout 2's index (prefix -> sequence number) and layout 1's objects (digest -> bytes), read
#: until :func:`lattice.lmdb_moves.migrate` has moved them
INDEX2_DB, LEGACY_DB = b"index", b"objects"
#: named databases of an environment: layout 3's four and the two older ones
MAX_DBS = 6
#: the one key of the index database; its duplicates are the entries
_IKEY = b"d"
#: codec bytes: raw, zstd with dictionary v1, zstd with dictionary v2
RAW, ZSTD, ZSTD_V2 = 0, 1, 2
#: the codec :func:`pack` compresses with
CODEC = ZSTD_V2

_SEQ = struct.Struct(">Q")
_DICTS = {codec: zstandard.ZstdCompressionDict(
    (Path(__file__).resolve().parent / "dictionaries" / f"v{codec}.zdict").read_bytes()) for codec in (ZSTD, ZSTD_V2)}
_FORMAT = zstandard.FORMAT_ZSTD1_MAGICLESS
_PARAMS = zstandard.ZstdCompressionParameters.from_level(
    3, format=_FORMAT, write_checksum=False, write_dict_id=False, write_content_size=True)
#: text and binary blobs of at least this many bytes are compressed with zstd's lazy match
#: finder: level 3's own (``dfast``) skips entropy-coding the literals of a small input with
#: few matches, e.g. 400 random letters: 400 bytes with it, 322 with ``lazy``; 400 characters of
#: English 102 against 89. It costs 2-4 us more for a 400-byte blob, and 3-7 us more for a
#: structured object, where it saves nothing: maps and lists keep ``dfast``.
LAZY_FROM = 256
#: first bytes of a msgpack str (8, 16, 32-bit length) or bin: an object that is one blob
_BLOB_TAGS = frozenset((0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6))
_PARAMS_LAZY = zstandard.ZstdCompressionParameters.from_level(
    3, format=_FORMAT, write_checksum=False, write_dict_id=False, write_content_size=True,
    strategy=zstandard.STRATEGY_LAZY)
# The dictionary digested once for each set of parameters and shared by every compressor: a
# compressor given the raw dictionary digests it again for itself. Either writes codec CODEC:
# the decoder needs only the dictionary.
_CDICT = zstandard.ZstdCompressionDict(_DICTS[CODEC].as_bytes())
_CDICT.precompute_compress(compression_params=_PARAMS)
_CDICT_LAZY = zstandard.ZstdCompressionDict(_DICTS[CODEC].as_bytes())
_CDICT_LAZY.precompute_compress(compression_params=_PARAMS_LAZY)


# Compressors and decompressors are not thread-safe, and making one loads the dictionary (tens
# of microseconds): each call borrows one from a pool, so short-lived threads (a LangGraph run
# starts new ones per invoke) do not pay for a fresh one each.
_decompressors: dict[int, queue.SimpleQueue] = {codec: queue.SimpleQueue() for codec in _DICTS}
_packers: queue.SimpleQueue = queue.SimpleQueue()


class Packer:
    """Encodes objects for the log (one thread at a time: a zstd compressor is not thread-safe; see :func:`pack`)."""

    def __init__(self) -> None:
        self._zc = zstandard.ZstdCompressor(dict_data=_CDICT, compression_params=_PARAMS)
        self._zl = zstandard.ZstdCompressor(dict_data=_CDICT_LAZY, compression_params=_PARAMS_LAZY)

    def pack(self, data: bytes) -> bytes:
        """The log value of ``data``: the codec byte, then the bytes (compressed when worth it)."""
        if len(data) >= _MIN_COMPRESS:
            z = (self._zl if len(data) >= LAZY_FROM and data[0] in _BLOB_TAGS else self._zc).compress(data)
            if len(z) + MIN_SAVING <= len(data):
                return bytes((CODEC,)) + z
        return bytes((RAW,)) + data


def pack(data: bytes) -> bytes:
    """:meth:`Packer.pack` with a compressor borrowed from a pool."""
    try:
        p = _packers.get_nowait()
    except queue.Empty:
        p = Packer()
    try:
        return p.pack(data)
    finally:
        _packers.put(p)


def unpack(value: bytes) -> bytes:
    """The object's bytes from a log value.

    Raises:
        ValueError: an unknown codec byte or a damaged zstd frame.
    """
    if not value:
        raise ValueError("empty log value")
    codec = value[0]
    if codec == RAW:
        return bytes(value[1:])
    pool = _decompressors.get(codec)
    if pool is not None:
        try:
            try:
                d = pool.get_nowait()
            except queue.Empty:
                d = zstandard.ZstdDecompressor(dict_data=_DICTS[codec], format=_FORMAT)
            try:
                return d.decompress(bytes(value[1:]))
            finally:
                pool.put(d)
        except zstandard.ZstdError as e:
            raise ValueError(f"damaged zstd frame: {e}") from e
    raise ValueError(f"unknown codec byte {codec}")


def object_size(value: bytes) -> int:
    """The size of the object a log value holds (its own bytes, before compression)."""
    if value and value[0] in _DICTS:
        try:
            return len(unpack(value))
        except ValueError:
            pass
    return max(len(value) - 1, 0)


def index_key(d: bytes) -> bytes:
    return bytes(d[:PREFIX])


def index_entry_size() -> int:
    """Bytes of one entry of the index: the digest prefix, then the 6-byte sequence number."""
    return PREFIX + 6


def seq_key(seq: int) -> bytes:
    return _SEQ.pack(seq)


def seq_value(seq: int) -> bytes:
    """The 6-byte index value of a sequence number (a log of 2**48 objects is out of reach)."""
    return _SEQ.pack(seq)[2:]


def seq_of(value: bytes) -> int:
    return _SEQ.unpack(b"\0\0" + bytes(value))[0]


class StaleLayout(Exception):
    """A read-only :class:`Layout` opened on a store not yet in layout 3 no longer matches it: a
    writer in another process has since moved objects or index entries and created or dropped
    databases (the reader opens its handles again: :meth:`Layout.check_current`)."""


#: the databases whose presence tells a layout's stage (layout 3's object databases, the old two)
_STAGE_DBS = (LOG_DB, INDEX_DB, INDEX2_DB, LEGACY_DB)


@dataclass
class Dead:
    """What a sweep deletes (:meth:`Layout.dead`), 14 bytes a dead entry in ``packed``, 8 in ``seqs``.

    Attributes:
        packed: layout 3's dead index entries back to back, in index order (prefix, then the
            6-byte sequence number).
        seqs: the log sequence numbers of the entries of ``packed`` and ``old``.
        old: layout 2's dead ``(key, value)`` index entries.
        last: ``(seq, packed entry or b"", layout 2 entries)`` when the log's last record is dead:
            it is deleted together with its index entry, in one transaction after every other
            entry is gone. The next sequence number follows the last record (:meth:`Layout.begin`),
            so while an index entry a crashed sweep left behind exists, its number is never
            given to a record written later.
    """

    packed: bytearray
    seqs: array
    old: list[tuple[bytes, bytes]]
    last: tuple[int, bytes, tuple] | None


class Layout:
    """The sub-databases of one environment and the reads and writes of objects inside a transaction.

    Attributes:
        log, index, meta, refs: LMDB database handles (None in a read-only environment that
            lacks them). index2: layout 2's ``index`` until :func:`lattice.lmdb_moves.migrate`
            drops it (read as a fallback), else None. legacy: layout 1's ``objects`` database,
            likewise.
        next_seq: the next log sequence number (read by :meth:`begin` in each write transaction).
        pending: read-only and opened before the store was moved to layout 3, so a writer may
            move it meanwhile (:meth:`check_current`).
    """

    def __init__(self, env: lmdb.Environment, readonly: bool) -> None:
        create = not readonly
        self.refs = env.open_db(REFS_DB, create=create) if create or _has_db(env, REFS_DB) else None
        self.log = env.open_db(LOG_DB, create=True) if create else _maybe_db(env, LOG_DB)
        self.index = (env.open_db(INDEX_DB, create=True, dupsort=True, dupfixed=True) if create
                      else _maybe_db(env, INDEX_DB, dupsort=True, dupfixed=True))
        self.meta = env.open_db(META_DB, create=True) if create else _maybe_db(env, META_DB)
        self.index2 = _maybe_db(env, INDEX2_DB, dupsort=True)
        self.legacy = _maybe_db(env, LEGACY_DB)  # even empty: migrate drops it
        self.next_seq = 1
        self.pending = readonly and (self.index is None or self.index2 is not None or self.legacy is not None)
        self._main = env.open_db(None) if self.pending else None
        self._stage: tuple[bool, ...] = ()
        with env.begin() as txn:
            if self.log is not None:
                self.begin(txn)
            if self.pending:
                self._stage = self._stage_of(txn)
        if create:
            with env.begin(write=True) as txn:
                if txn.get(b"layout", db=self.meta) is None and self.index2 is None and self.legacy is None:
                    txn.put(b"layout", str(LAYOUT).encode(), db=self.meta)

    # ------------------------------------------------------------- the index

    def seqs(self, txn: lmdb.Transaction, d: bytes) -> list[int]:
        """The log sequence numbers of every object whose digest shares ``d``'s prefix."""
        p = index_key(d)
        out = []
        if self.index is not None:
            cur = txn.cursor(db=self.index)
            found = cur.set_range_dup(_IKEY, p)
            while found:
                v = cur.value()
                if v[:PREFIX] != p:
                    break
                out.append(seq_of(v[PREFIX:]))
                found = cur.next_dup()
        if self.index2 is not None:
            cur = txn.cursor(db=self.index2)
            if cur.set_key(p):
                out.extend(seq_of(v) for v in cur.iternext_dup())
        return out

    def dead(self, txn: lmdb.Transaction, live: Container[bytes]) -> Dead:
        """The index entries whose digest prefix is not in ``live`` (a set of :func:`index_key`), for
        the collector's sweep (see :class:`Dead`)."""
        out = Dead(bytearray(), array("Q"), [], None)
        cur = txn.cursor(db=self.log)
        last = _SEQ.unpack(cur.key())[0] if cur.last() else 0
        if self.index is not None:
            cur = txn.cursor(db=self.index)
            if cur.set_key(_IKEY):
                for v in cur.iternext_dup():
                    if bytes(v[:PREFIX]) not in live:
                        seq = seq_of(v[PREFIX:])
                        if seq == last:
                            out.last = (seq, bytes(v), ())
                        else:
                            out.packed += v
                            out.seqs.append(seq)
        if self.index2 is not None:
            for k, v in txn.cursor(db=self.index2):
                if bytes(k) not in live:
                    seq = seq_of(v)
                    if seq == last:
                        out.last = (seq, b"", ((bytes(k), bytes(v)),))
                    else:
                        out.old.append((bytes(k), bytes(v)))
                        out.seqs.append(seq)
        return out

    def delete_logged(self, txn: lmdb.Transaction, seqs: Iterable[int]) -> int:
        """Delete the log records at ``seqs`` (in log order, each page is copied once); return the
        bytes of the objects they held, as :func:`object_size` counts them."""
        nbytes = 0
        log = self.log
        for seq in seqs:
            key = seq_key(seq)
            raw = txn.get(key, db=log)
            if raw is not None:
                nbytes += object_size(raw)
                txn.delete(key, db=log)
        return nbytes

    def delete_indexed(self, txn: lmdb.Transaction, packed: bytes | bytearray,
                       old: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Delete index entries as :meth:`dead` gives them (``packed``: whole entries)."""
        size = index_entry_size()
        for i in range(0, len(packed), size):
            txn.delete(_IKEY, bytes(packed[i:i + size]), db=self.index)
        for k, v in old:
            txn.delete(k, v, db=self.index2)

    # ------------------------------------------------------------- reads, inside a transaction

    def _stage_of(self, txn: lmdb.Transaction) -> tuple[bool, ...]:
        return tuple(txn.get(name, db=self._main) is not None for name in _STAGE_DBS)

    def check_current(self, txn: lmdb.Transaction) -> None:
        """Raise :class:`StaleLayout` when this read-only layout was opened before the store was
        moved to layout 3 and a writer has since created or dropped a database (its handles then
        miss what was moved, or name a dropped database: LMDB's ``MDB_BAD_DBI``). Free otherwise."""
        if self.pending and self._stage_of(txn) != self._stage:
            raise StaleLayout("the store was moved to a new layout since it was opened")

    def candidates(self, txn: lmdb.Transaction, d: bytes) -> Iterator[tuple[int, bytes]]:
        """``(seq, object bytes)`` of every stored object whose digest shares ``d``'s prefix."""
        for seq in self.seqs(txn, d):
            raw = txn.get(seq_key(seq), db=self.log)
            if raw is not None:
                try:
                    yield seq, unpack(raw)
                except ValueError:  # damaged: its bytes will not hash to any digest
                    yield seq, bytes(raw)

    def find(self, txn: lmdb.Transaction, d: bytes) -> tuple[bytes | None, bool]:
        """``(bytes, True)`` of the object with digest ``d``; ``(None, False)`` when absent;
        ``(bytes, False)`` when under its prefix sits an object whose bytes hash to no digest
        with that prefix (a damaged object: the caller reports it as corrupt). Another whole
        object that only shares the prefix (a 64-bit collision) leaves ``d`` absent: a store
        that skips writing what it "has" must never skip ``d`` for it.

        Raises:
            StaleLayout: ``d`` was not found by a read-only layout that no longer matches the
                store (:meth:`check_current`).
        """
        if len(d) != DIGEST_SIZE:
            return None, False
        p = d[:PREFIX]
        other = None
        # The walk of seqs() written out: reads are the hot path, and a list of seqs then a loop
        # costs 0.3-0.5 us more a find (3.5 against 4.1 us for a stored object, scratch).
        if self.index is not None:
            cur = txn.cursor(db=self.index)
            found = cur.set_range_dup(_IKEY, p)
            while found:
                v = cur.value()
                if v[:PREFIX] != p:
                    break
                data, hit = self._check(txn, seq_of(v[PREFIX:]), d, p)
                if hit:
                    return data, True
                if data is not None:
                    other = data
                found = cur.next_dup()
        if self.index2 is not None:
            cur = txn.cursor(db=self.index2)
            if cur.set_key(p):
                for v in cur.iternext_dup():
                    data, hit = self._check(txn, seq_of(v), d, p)
                    if hit:
                        return data, True
                    if data is not None:
                        other = data
        if self.legacy is not None:
            data = txn.get(bytes(d), db=self.legacy)
            if data is not None:
                return bytes(data), digest(data) == d
        if other is None:
            self.check_current(txn)
        return other, False

    def _check(self, txn: lmdb.Transaction, seq: int, d: bytes, p: bytes) -> tuple[bytes | None, bool]:
        """``(bytes, True)`` when the object at ``seq`` is ``d``; ``(bytes, False)`` when it is
        damaged (its bytes hash to no digest with prefix ``p``); ``(None, False)`` when it is another
        whole object or missing from the log."""
        raw = txn.get(seq_key(seq), db=self.log)
        if raw is None:
            return None, False
        try:
            data = unpack(raw)
        except ValueError:  # damaged: its bytes will not hash to any digest
            data = bytes(raw)
        h = digest(data)
        if h == d:
            return data, True
        return (data if h[:PREFIX] != p else None), False

    def get(self, txn: lmdb.Transaction, d: bytes) -> bytes | None:
        """The object with digest ``d``, or None (what the collector and the barrier read)."""
        data, ok = self.find(txn, d)
        return data if ok else None

    def entries(self, txn: lmdb.Transaction, after: int = 0, limit: int = 4096) -> list[tuple[int, bytes]]:
        """Up to ``limit`` ``(seq, object bytes)`` of the log after ``after``, in log order."""
        out: list[tuple[int, bytes]] = []
        if self.log is None:
            return out
        cur = txn.cursor(db=self.log)
        found = cur.set_range(seq_key(after + 1))
        while found and len(out) < limit:
            try:
                data = unpack(cur.value())
            except ValueError:
                data = bytes(cur.value())
            out.append((_SEQ.unpack(cur.key())[0], data))
            found = cur.next()
        return out

    # ------------------------------------------------------------- writes (the writer thread)

    def begin(self, txn: lmdb.Transaction) -> None:
        """Start writing in ``txn``: the next sequence number follows the log's last (read in the
        transaction, so it holds whatever wrote last, this process or another)."""
        cur = txn.cursor(db=self.log)
        self.next_seq = _SEQ.unpack(cur.key())[0] + 1 if cur.last() else 1

    def put(self, txn: lmdb.Transaction, d: bytes, data: bytes, packed: bytes | None = None) -> bool:
        """Store ``data`` under digest ``d`` unless it is stored; return whether it was new.
        ``packed``: its log value (:func:`pack`) if already made (else made here)."""
        if any(stored == data for _, stored in self.candidates(txn, d)):
            return False
        if self.legacy is not None and txn.get(d, db=self.legacy) is not None:
            return False
        seq = self.next_seq
        txn.put(seq_key(seq), pack(data) if packed is None else packed, db=self.log, append=True)
        txn.put(_IKEY, index_key(d) + seq_value(seq), db=self.index, dupdata=True)
        self.next_seq = seq + 1
        return True

    def count(self, txn: lmdb.Transaction) -> int:
        """How many objects are stored.

        Raises:
            StaleLayout: a read-only layout no longer matches the store (:meth:`check_current`).
        """
        self.check_current(txn)
        n = sum(txn.stat(db)["entries"] for db in (self.index, self.index2, self.legacy) if db is not None)
        return n


def _has_db(env: lmdb.Environment, name: bytes) -> bool:
    with env.begin() as txn:
        return txn.get(name) is not None  # named databases are keys of the main database


def _maybe_db(env: lmdb.Environment, name: bytes, **kw) -> object | None:
    if not _has_db(env, name):
        return None
    return env.open_db(name, create=False, **kw)
