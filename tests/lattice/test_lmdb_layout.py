"""LMDB's on-disk layout (:mod:`lattice.lmdb_layout`): the object log and its prefix index,
compression, prefix collisions, damaged values, and stores written in layouts 1 and 2."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from lattice import lmdb_layout, lmdb_moves
from lattice.codec import encode
from lattice.digest import digest
from lattice.errors import CorruptObject, NotFound, ReadOnly
from lattice.gc import collect
from lattice.lmdb import LmdbStore
from lattice.lmdb_layout import (CODEC, INDEX2_DB, INDEX_DB, LEGACY_DB, MAX_DBS, REFS_DB, Layout, index_key, seq_key,
                                  seq_value, unpack)
from lattice.store import RefUpdate
from tests.lattice.helpers import tamper_lmdb, truncate_logged


def obj(data: bytes) -> tuple[bytes, bytes]:
    return digest(data), data


def raw_log(path) -> list[bytes]:
    """The log's stored values, in order."""
    env = lmdb.open(str(path), max_dbs=MAX_DBS, readonly=True)
    try:
        log = env.open_db(b"log", create=False)
        with env.begin(db=log) as txn:
            return [bytes(v) for _, v in txn.cursor()]
    finally:
        env.close()


def write_layout1(path, objects: dict[bytes, bytes], refs: dict[str, bytes]) -> None:
    """A store as layout 1 wrote it: one ``objects`` database keyed by digest, and ``refs``."""
    os.makedirs(path, exist_ok=True)
    env = lmdb.open(str(path), max_dbs=2)
    try:
        odb, rdb = env.open_db(LEGACY_DB), env.open_db(REFS_DB)
        with env.begin(write=True) as txn:
            for d, b in objects.items():
                txn.put(d, b, db=odb)
            for name, d in refs.items():
                txn.put(name.encode(), d, db=rdb)
    finally:
        env.close()


def test_log_is_in_commit_order_and_compresses_what_shrinks(tmp_path):
    big = b"the same sentence, again and again. " * 200
    small = b"tiny"
    noise = random.Random(1).randbytes(4000)
    with LmdbStore(tmp_path / "db", durable=False) as s:
        for data in (big, small, noise):
            assert s.commit(dict([obj(data)]), [])
        assert s.commit(dict([obj(big)]), [])  # stored once
        assert [s.get(digest(x)) for x in (big, small, noise)] == [big, small, noise]
        assert sorted(n for _, n in s.objects()) == sorted(map(len, (big, small, noise)))
        assert s.stats()["objects"] == 3
    values = raw_log(tmp_path / "db")
    assert len(values) == 3
    assert values[0][0] == CODEC and len(values[0]) < len(big) // 10
    assert values[1] == b"\0" + small and values[2] == b"\0" + noise  # not worth compressing


def test_text_blobs_of_few_repeats_are_still_entropy_coded(tmp_path):
    """A text blob of 400 random letters holds 5.7 bits a byte: stored in well under 400 bytes
    (level 3's own match finder would store it whole), and read back exactly."""
    rng = random.Random(5)
    letters = encode("".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", k=400)))
    assert len(lmdb_layout.pack(letters)) < 340
    with LmdbStore(tmp_path / "db", durable=False) as s:
        assert s.commit(dict([obj(letters)]), [])
        assert s.get(digest(letters)) == letters
    [value] = raw_log(tmp_path / "db")
    assert value[0] == CODEC and len(value) < 340


def test_prefix_collisions_are_told_apart(tmp_path, monkeypatch):
    """With a 1-byte prefix (256 buckets) 600 objects collide often: reads, dedup and gc stay exact."""
    monkeypatch.setattr(lmdb_layout, "PREFIX", 1)
    pool = [obj(f"object {i}".encode() * 5) for i in range(600)]
    with LmdbStore(tmp_path / "db", durable=False) as s:
        assert s.commit(dict(pool[:300]), [])
        assert s.commit(dict(pool), [])  # the first 300 again: deduplicated
        assert s.stats()["objects"] == 600
        for d, b in pool:
            assert s.get(d) == b and s.has(d)
        absent = digest(b"never stored")
        assert not s.has(absent)
        with pytest.raises(NotFound):
            s.get(absent)
        keep = pool[0][0]
        assert s.commit({}, [RefUpdate("keep", None, keep)])
        report = collect(s)
        # every object sharing keep's 1-byte prefix is kept (garbage left, never a loss); the rest freed
        same_bucket = sum(1 for d, _ in pool if d[:1] == keep[:1])
        assert report.freed == 600 - same_bucket
        assert s.get(keep) == pool[0][1]
        assert s.stats()["objects"] == same_bucket


def test_an_absent_object_sharing_a_prefix_is_absent(tmp_path, monkeypatch):
    """An object that is not stored is absent even when others share its prefix: ``has`` is what
    writers (the LangGraph saver, bundle import) use to skip objects, so a false yes would lose one."""
    monkeypatch.setattr(lmdb_layout, "PREFIX", 1)
    pool = dict(obj(f"object {i}".encode()) for i in range(300))
    buckets = {d[:1] for d in pool}
    absent = [d for d in (digest(f"absent {i}".encode()) for i in range(200)) if d[:1] in buckets][:20]
    assert len(absent) == 20
    with LmdbStore(tmp_path / "db", durable=False) as s:
        assert s.commit(pool, [])
        for d in absent:
            assert not s.has(d)
            with pytest.raises(NotFound):
                s.get(d)
            assert s.get_many([d]) == {}
        x = next(d for d in absent)
        data = next(f"absent {i}".encode() for i in range(200) if digest(f"absent {i}".encode()) == x)
        assert s.commit({x: data}, [])  # and it is written when committed
        assert s.get(x) == data and s.stats()["objects"] == 301


def test_a_damaged_object_among_others_of_its_prefix(tmp_path, monkeypatch):
    """With a 1-byte prefix, one damaged object of a shared bucket is corrupt and only it: the others
    read whole (the test helper used to damage the bucket's first entry, whatever digest it named)."""
    monkeypatch.setattr(lmdb_layout, "PREFIX", 1)
    pool = dict(obj(f"object {i}".encode() * 30) for i in range(600))
    path = tmp_path / "db"
    with LmdbStore(path, durable=False) as s:
        assert s.commit(pool, [])
    first = min(pool)
    bucket = sorted(d for d in pool if d[:1] == first[:1])
    assert len(bucket) >= 2
    victim = bucket[-1]  # not the bucket's first entry
    tamper_lmdb(path, victim, b"damaged")
    with LmdbStore(path, readonly=True) as s:
        with pytest.raises(CorruptObject):
            s.get(victim)
        assert all(s.get(d) == pool[d] for d in bucket if d != victim)
        assert s.get_many(bucket) == {d: pool[d] for d in bucket if d != victim}


def test_damaged_compressed_value_is_corrupt(tmp_path):
    big = b"compressible " * 100
    d = digest(big)
    path = tmp_path / "db"
    with LmdbStore(path, durable=False) as s:
        assert s.commit({d: big}, [])
    assert truncate_logged(path)[0] == CODEC  # a truncated zstd frame
    with LmdbStore(path, durable=False) as s:
        assert s.has(d)
        with pytest.raises(CorruptObject):
            s.get(d)


def test_tampered_raw_value_is_corrupt(tmp_path):
    d, b = obj(b"precious")
    path = tmp_path / "db"
    with LmdbStore(path, durable=False) as s:
        assert s.commit({d: b}, [])
    tamper_lmdb(path, d, b"tampered")
    with LmdbStore(path, durable=False) as s:
        with pytest.raises(CorruptObject):
            s.get(d)


def test_layout1_store_is_read_as_is_then_moved_by_a_writer(tmp_path):
    path = tmp_path / "old"
    pool = dict(obj(f"old object {i}".encode() * 20) for i in range(25))
    head = next(iter(pool))
    write_layout1(path, pool, {"g/x/A": head})
    # read-only: served from the old database, nothing moved
    with LmdbStore(path, readonly=True) as ro:
        assert ro.ref("g/x/A") == head
        assert all(ro.get(d) == b for d, b in pool.items())
        assert dict(ro.objects()) == {d: len(b) for d, b in pool.items()}
        assert ro.stats()["objects"] == 25
        with pytest.raises(ReadOnly):
            ro.commit({}, [])
    assert raw_log_missing(path)
    # a writer moves every object into the log and drops the old database
    with LmdbStore(path, durable=False) as s:
        assert s.stats()["objects"] == 25
        assert all(s.get(d) == b for d, b in pool.items())
        nd, nb = obj(b"written after the move")
        assert s.commit({nd: nb, **dict([next(iter(pool.items()))])}, [RefUpdate("g/x/A", head, nd)])
        assert s.stats()["objects"] == 26
        assert collect(s).freed == 25  # nothing else is reachable from the moved ref
    env = lmdb.open(str(path), max_dbs=MAX_DBS, readonly=True)
    try:
        with env.begin() as txn:
            assert txn.get(LEGACY_DB) is None  # dropped
    finally:
        env.close()
    assert raw_log(path) == [b"\0written after the move"]  # the moved objects were freed by the gc


def raw_log_missing(path) -> bool:
    env = lmdb.open(str(path), max_dbs=MAX_DBS, readonly=True)
    try:
        with env.begin() as txn:
            return txn.get(b"log") is None
    finally:
        env.close()


def crash_the_move_after_one_batch(path, monkeypatch) -> None:
    """Open a writer on ``path`` whose move to layout 3 fails after its first batch of 10."""
    calls = []

    def boom(n):
        calls.append(n)
        raise RuntimeError("crash")
    real = lmdb_moves.migrate
    monkeypatch.setattr("lattice.lmdb.migrate", lambda env, layout: real(env, layout, 10, boom))
    with pytest.raises(RuntimeError):
        LmdbStore(path, durable=False)
    assert calls == [10]
    monkeypatch.setattr("lattice.lmdb.migrate", real)


def test_an_interrupted_move_leaves_every_object_readable(tmp_path, monkeypatch):
    """The move runs in batches; a crash between two (here: an error after the first) loses nothing."""
    path = tmp_path / "old"
    pool = dict(obj(f"old object {i}".encode()) for i in range(30))
    write_layout1(path, pool, {})
    crash_the_move_after_one_batch(path, monkeypatch)
    with LmdbStore(path, readonly=True) as ro:  # 10 moved, 20 not yet: all readable
        assert all(ro.get(d) == b for d, b in pool.items())
        assert ro.stats()["objects"] == 30
    with LmdbStore(path, durable=False) as s:
        assert all(s.get(d) == b for d, b in pool.items())
        assert s.stats()["objects"] == 30
    assert len(raw_log(path)) == 30


def test_a_move_interrupted_after_its_last_batch_is_finished(tmp_path, monkeypatch):
    """A crash after the last batch leaves layout 1's ``objects`` empty: the next writer drops it
    (it used to be kept, empty, for good, and read by every miss of a read-only store)."""
    path = tmp_path / "old"
    pool = dict(obj(f"old object {i}".encode()) for i in range(20))
    write_layout1(path, pool, {})
    real = lmdb_moves.migrate

    def boom(n):
        if n == 20:
            raise RuntimeError("crash")
    monkeypatch.setattr("lattice.lmdb.migrate", lambda env, layout: real(env, layout, 10, boom))
    with pytest.raises(RuntimeError):
        LmdbStore(path, durable=False)
    monkeypatch.setattr("lattice.lmdb.migrate", real)
    assert layout_of(path)[1] == [INDEX_DB, b"log", b"meta", LEGACY_DB, b"refs"]
    with LmdbStore(path, durable=False) as s:
        assert all(s.get(d) == b for d, b in pool.items())
        assert s.stats()["objects"] == 20
    assert layout_of(path) == (b"3", [INDEX_DB, b"log", b"meta", b"refs"])
    with LmdbStore(path, readonly=True) as ro:
        assert not ro._layout.pending


def write_layout2(path, objects: dict[bytes, bytes], refs: dict[str, bytes]) -> None:
    """A store as layout 2 wrote it: the log, and ``index`` keyed by digest prefix (one sequence
    number per duplicate)."""
    os.makedirs(path, exist_ok=True)
    env = lmdb.open(str(path), max_dbs=5)
    try:
        log, index = env.open_db(b"log"), env.open_db(INDEX2_DB, dupsort=True)
        meta, rdb = env.open_db(b"meta"), env.open_db(REFS_DB)
        with env.begin(write=True) as txn:
            for seq, (d, b) in enumerate(objects.items(), 1):
                txn.put(seq_key(seq), lmdb_layout.pack(b), db=log)
                txn.put(d[:lmdb_layout.PREFIX], seq.to_bytes(6, "big"), db=index, dupdata=True)
            for name, d in refs.items():
                txn.put(name.encode(), d, db=rdb)
            txn.put(b"layout", b"2", db=meta)
    finally:
        env.close()


def layout_of(path) -> tuple[bytes | None, list[bytes]]:
    """``meta["layout"]`` and the names of the environment's databases."""
    env = lmdb.open(str(path), max_dbs=MAX_DBS, readonly=True)
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin() as txn:
            names = [bytes(k) for k, _ in txn.cursor()]
            return txn.get(b"layout", db=meta), names
    finally:
        env.close()


def test_layout2_store_is_read_as_is_then_moved_by_a_writer(tmp_path, monkeypatch):
    """Layout 2's index (prefix -> sequence number) is read as it is, then moved into layout 3's;
    a 1-byte prefix makes most entries share a prefix with another."""
    monkeypatch.setattr(lmdb_layout, "PREFIX", 1)
    path = tmp_path / "old"
    pool = dict(obj(f"layout 2 object {i}".encode() * 3) for i in range(400))
    head = next(iter(pool))
    write_layout2(path, pool, {"g/x/A": head})
    with LmdbStore(path, readonly=True) as ro:
        assert ro.ref("g/x/A") == head
        assert all(ro.get(d) == b for d, b in pool.items())
        assert ro.stats()["objects"] == 400
    assert layout_of(path) == (b"2", [b"index", b"log", b"meta", b"refs"])
    with LmdbStore(path, durable=False) as s:
        with s._env.begin() as txn:  # moved, and the old index dropped
            assert [bytes(k) for k, _ in txn.cursor()] == [INDEX_DB, b"log", b"meta", b"refs"]
        assert s.stats()["objects"] == 400
        assert all(s.get(d) == b for d, b in pool.items())
        assert s.commit(dict([next(iter(pool.items()))]), [])  # already stored: not added again
        nd, nb = obj(b"written after the move")
        assert s.commit({nd: nb}, [RefUpdate("g/x/A", head, nd)])
        assert s.stats()["objects"] == 401
        # entries sharing the live object's (1-byte) prefix are kept unhashed, as gc documents
        kept = [d for d in pool if d[:1] == nd[:1]]
        assert collect(s).freed == 400 - len(kept)
        assert s.get(nd) == nb and all(s.has(d) == (d in kept) for d in pool)
    assert layout_of(path)[0] == b"3"
    assert len(raw_log(path)) == 1 + len(kept)


def test_a_move_is_logged_with_its_progress(tmp_path, monkeypatch, caplog):
    path = tmp_path / "old"
    pool = dict(obj(f"layout 2 object {i}".encode()) for i in range(30))
    write_layout2(path, pool, {})
    monkeypatch.setattr(lmdb_moves, "LOG_EVERY", 0.0)
    real = lmdb_moves.migrate
    monkeypatch.setattr("lattice.lmdb.migrate", lambda env, layout: real(env, layout, 10))
    with caplog.at_level("INFO", logger="lattice.lmdb"):
        with LmdbStore(path, durable=False) as s:
            assert s.stats()["objects"] == 30
        with LmdbStore(path, durable=False):  # already moved: nothing to say
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "lattice.lmdb"]
    assert lines[0].endswith("to layout 3: 30 objects and index entries")
    assert [ln.split(": ")[-1] for ln in lines[1:4]] == ["10 of 30 moved", "20 of 30 moved", "30 of 30 moved"]
    assert lines[4].startswith(f"moved the store at {path} to layout 3: 30 in ") and len(lines) == 5


def test_an_interrupted_layout2_move_leaves_every_object_readable(tmp_path, monkeypatch):
    path = tmp_path / "old"
    pool = dict(obj(f"layout 2 object {i}".encode()) for i in range(30))
    write_layout2(path, pool, {})
    crash_the_move_after_one_batch(path, monkeypatch)
    with LmdbStore(path, readonly=True) as ro:  # 10 entries moved, 20 not yet: all readable
        assert all(ro.get(d) == b for d, b in pool.items())
        assert ro.stats()["objects"] == 30
        assert sorted(d for d, _ in ro.objects()) == sorted(pool)
    assert layout_of(path)[0] == b"2"
    with LmdbStore(path, durable=False) as s:
        assert all(s.get(d) == b for d, b in pool.items())
        assert s.stats()["objects"] == 30
    assert layout_of(path) == (b"3", [INDEX_DB, b"log", b"meta", b"refs"])
    assert len(raw_log(path)) == 30


#: a writer in another process (LMDB opens an environment once per process): moves the store at
#: argv[1] to layout 3, stopping after the first batch of argv[2] when argv[3] is "crash"
_MOVE_ELSEWHERE = """
import sys
sys.path.insert(0, sys.argv[4])
import lattice.lmdb as L
from lattice import lmdb_moves
def crash(n):
    raise RuntimeError("crash")
real = lmdb_moves.migrate
L.migrate = lambda env, layout: real(env, layout, int(sys.argv[2]), crash if sys.argv[3] == "crash" else None)
try:
    L.LmdbStore(sys.argv[1], durable=False).close()
except RuntimeError:
    pass
"""


def move_elsewhere(path, batch: int, crash: bool) -> None:
    root = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", _MOVE_ELSEWHERE, str(path), str(batch), "crash" if crash else "-", root],
                   check=True, timeout=60)


@pytest.mark.parametrize("writer", [write_layout1, write_layout2])
def test_a_reader_opened_before_the_move_reads_on(tmp_path, writer):
    """A read-only store (``lattice fsck`` beside a server) opened on a layout 1 or 2 store before a
    writer in another process moves it: reads keep finding every object, part-way through the move
    and after it (it used to miss the moved ones, then fail with ``MDB_BAD_DBI`` on every read that
    missed once the writer dropped the old database)."""
    path = tmp_path / "old"
    pool = dict(obj(f"old object {i}".encode()) for i in range(30))
    head = next(iter(pool))
    writer(path, pool, {"g/x/A": head})
    absent = digest(b"never stored")
    with LmdbStore(path, readonly=True) as ro:
        assert ro.stats()["objects"] == 30
        move_elsewhere(path, 10, crash=True)  # 10 moved, 20 not yet
        assert all(ro.get(d) == b for d, b in pool.items())
        assert ro.get_many(list(pool)) == pool
        assert not ro.has(absent)
        assert ro.stats()["objects"] == 30
        move_elsewhere(path, 10, crash=False)  # all moved, the old database dropped
        assert not ro.has(absent)
        with pytest.raises(NotFound):
            ro.get(absent)
        assert all(ro.has(d) and ro.get(d) == b for d, b in pool.items())
        assert ro.stats()["objects"] == 30
        assert ro.ref("g/x/A") == head
        assert not ro._layout.pending  # opened again once, in layout 3: no more checks
    assert layout_of(path)[0] == b"3"


def test_index_entries_are_stored_packed(tmp_path):
    """The index's entries are fixed-size duplicates of one key: about 19 bytes of disk each at the
    two-thirds fill that random inserts leave, where layout 2's key/value nodes took about 35."""
    n = 20_000
    rng = random.Random(3)
    with LmdbStore(tmp_path / "db", durable=False) as s:
        for _ in range(n // 500):
            assert s.commit(dict(obj(rng.randbytes(16)) for _ in range(500)), [])
        assert s.stats()["objects"] == n
        layout, env = s._layout, s._env
        with env.begin() as txn:
            st = txn.stat(layout.index)
        pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        psize = env.stat()["psize"]
    assert st["entries"] == n
    assert pages * psize / n < 24, pages


def test_compact_copies_an_index_with_pages_of_its_own(tmp_path):
    """LMDB's own compacting copy crashes the process on the index once its entries fill pages of
    their own; ``compact`` copies entry by entry instead: everything kept, the file smaller."""
    rng = random.Random(7)
    path = tmp_path / "db"
    with LmdbStore(path, durable=False) as s:
        pool = {}
        for _ in range(12):
            part = dict(obj(rng.randbytes(40)) for _ in range(500))
            assert s.commit(part, [])
            pool.update(part)
        head = next(iter(pool))
        assert s.commit({}, [RefUpdate("g/x/A", None, head)])
        before, after = s.compact()
        assert after < before
        assert s.stats()["objects"] == 6000 and s.ref("g/x/A") == head
        assert all(s.get(d) == b for d, b in pool.items())
        nd, nb = obj(b"written after compaction")
        assert s.commit({nd: nb}, [RefUpdate("g/x/A", head, nd)]) and s.get(nd) == nb
        assert collect(s).freed == 6000  # the index stays consistent for the collector
    with LmdbStore(path, durable=False) as s:
        assert s.ref("g/x/A") == nd and s.get(nd) == nb and s.stats()["objects"] == 1
        assert not (path / "compact.tmp").exists()


def test_compact_keeps_every_object_and_packs_the_index(tmp_path):
    rng = random.Random(8)
    pool = dict(obj(rng.randbytes(30)) for _ in range(6000))
    with LmdbStore(tmp_path / "db", durable=False) as s:
        items = list(pool.items())
        for i in range(0, len(items), 300):
            assert s.commit(dict(items[i:i + 300]), [])
        s.compact()
        assert s.stats()["objects"] == 6000 and all(s.get(d) == b for d, b in pool.items())
        with s._env.begin() as txn:
            st = txn.stat(s._layout.index)
        assert (st["leaf_pages"] + st["branch_pages"]) * 4096 / 6000 < 16  # appended: full pages
    (tmp_path / "db" / "compact.tmp").mkdir()
    (tmp_path / "db" / "compact.tmp" / "data.mdb").write_bytes(b"left by a crash")
    with LmdbStore(tmp_path / "db", durable=False) as s:
        s.compact()
        assert s.stats()["objects"] == 6000


def test_get_many_reads_present_and_whole_objects(tmp_path):
    good = [obj(f"object {i}".encode() * 9) for i in range(5)]
    bad_d, bad = obj(b"will be damaged")
    path = tmp_path / "db"
    with LmdbStore(path, durable=False) as s:
        assert s.commit(dict(good + [(bad_d, bad)]), [])
    tamper_lmdb(path, bad_d, b"damaged")
    with LmdbStore(path, durable=False) as s:
        absent = digest(b"never stored")
        got = s.get_many([d for d, _ in good] + [bad_d, absent, b"short"])
        assert got == dict(good)  # the damaged, the absent and the malformed are left out
        assert s.get_many([]) == {}


@pytest.mark.parametrize("pattern", ["random", "runs", "first_and_last", "all", "none"])
def test_sweep_deletes_exactly_the_dead_entries(tmp_path, pattern):
    """What the collector's sweep does, batch by batch: the dead entries (:meth:`Layout.dead`), their
    log records in log order, then their index entries in index order, across page boundaries, in
    runs, at both ends, all or none; layout 2's index (``index2``, as a move interrupted before a
    collection leaves it) the same way; the log's last record, when dead, with its entry at the end."""
    rng = random.Random(11)
    env = lmdb.open(str(tmp_path / "db"), max_dbs=MAX_DBS, map_size=1 << 28)
    try:
        env.open_db(INDEX2_DB, dupsort=True)
        layout = Layout(env, False)
        pool = dict(obj(rng.randbytes(30 + i % 50)) for i in range(3000))  # ~10 pages of index entries
        moved = set(list(pool)[:2400])  # in layout 3's index; the rest still in layout 2's
        with env.begin(write=True) as txn:
            layout.begin(txn)
            for seq, (d, b) in enumerate(pool.items(), 1):
                txn.put(seq_key(seq), lmdb_layout.pack(b), db=layout.log)
                if d in moved:
                    txn.put(b"d", index_key(d) + seq_value(seq), db=layout.index, dupdata=True)
                else:
                    txn.put(index_key(d), seq_value(seq), db=layout.index2, dupdata=True)
        order = sorted(pool, key=index_key)  # the index's order: runs are neighbours there
        if pattern == "random":
            live = {d for d in order if rng.random() < 0.5}
        elif pattern == "runs":
            live = {d for i, d in enumerate(order) if (i // 300) % 2}
        elif pattern == "first_and_last":
            live = set(order[1:-1]) - {sorted(moved, key=index_key)[-1]}
        else:
            live = set(order) if pattern == "none" else set()
        last = list(pool)[-1]  # the log's last record: apart, deleted with its entry at the end
        with env.begin() as txn:
            dead = layout.dead(txn, {index_key(d) for d in live})
        assert (dead.last is not None) == (last not in live)
        assert len(dead.seqs) == len(pool) - len(live | {last})
        assert len(dead.packed) == lmdb_layout.index_entry_size() * (len(dead.seqs) - len(dead.old))
        nbytes, order_seqs, step = 0, sorted(dead.seqs), 7 * lmdb_layout.index_entry_size()
        for i in range(0, len(order_seqs), 100):
            with env.begin(write=True) as txn:
                nbytes += layout.delete_logged(txn, order_seqs[i:i + 100])
        for i in range(0, len(dead.packed), step):
            with env.begin(write=True) as txn:
                layout.delete_indexed(txn, dead.packed[i:i + step])
        with env.begin(write=True) as txn:
            layout.delete_indexed(txn, b"", dead.old)
        assert nbytes == sum(len(b) for d, b in pool.items() if d not in live | {last})
        if dead.last is not None:
            seq, entry, old = dead.last
            with env.begin(write=True) as txn:
                layout.delete_indexed(txn, entry, old)
                assert layout.delete_logged(txn, [seq]) == len(pool[last])
        kept = live
        with env.begin() as txn:
            cur = txn.cursor(db=layout.index)
            left = [bytes(v[:lmdb_layout.PREFIX]) for v in cur.iternext_dup()] if cur.set_key(b"d") else []
            left += [bytes(k) for k, _ in txn.cursor(db=layout.index2)]
            assert sorted(left) == sorted(index_key(d) for d in kept)
            assert sorted(unpack(v) for _, v in txn.cursor(db=layout.log)) == sorted(pool[d] for d in kept)
            assert all(layout.find(txn, d) == (pool[d], True) for d in kept)
    finally:
        env.close()


def test_a_move_into_a_full_map_grows_it(tmp_path):
    """A layout 2 store whose map is full (LMDB keeps the size it was given) is still moved when
    a writer opens it: a batch that does not fit is aborted, the map doubles, the batch runs again."""
    path = tmp_path / "old"
    pool = dict(obj(f"layout 2 object {i}".encode() * 4) for i in range(3000))
    write_layout2(path, pool, {"g/x/A": next(iter(pool))})
    env = lmdb.open(str(path), max_dbs=MAX_DBS)
    try:
        psize = env.stat()["psize"]
        env.set_mapsize((env.info()["last_pgno"] + 9) * psize)  # 8 pages to spare; kept by the next write
        with env.begin(write=True) as txn:
            txn.put(b"full", b"1", db=env.open_db(b"meta", txn=txn))
        full = env.info()["map_size"]
    finally:
        env.close()
    with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
        assert s.stats()["map_size"] > full
        assert s.stats()["objects"] == 3000 and all(s.get(d) == b for d, b in pool.items())
    assert layout_of(path) == (b"3", [INDEX_DB, b"log", b"meta", b"refs"])
