"""Contract tests of the store port, run against every backend, plus LMDB specifics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import lmdb
import pytest

from lattice.digest import digest
from lattice.errors import CorruptObject, InvalidValue, NotFound, StoreError
from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from lattice.store import RefUpdate, Store


def obj(data: bytes) -> tuple[bytes, bytes]:
    return digest(data), data


@pytest.fixture(params=["memory", "lmdb"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
    else:
        s = LmdbStore(tmp_path / "db")
    try:
        yield s
    finally:
        s.close()


# ----------------------------------------------------------------- contract


def test_implements_port(store):
    assert isinstance(store, Store)


def test_put_get_round_trip(store):
    d1, b1 = obj(b"hello")
    d2, b2 = obj(b"")  # empty object is a valid object, distinct from "missing"
    d3, b3 = obj(os.urandom(100_000))
    assert store.commit({d1: b1, d2: b2, d3: b3}, []) is True
    assert store.get(d1) == b1
    assert store.get(d2) == b""
    assert store.get(d3) == b3
    assert type(store.get(d1)) is bytes


def test_recommitting_an_object_is_harmless(store):
    d, b = obj(b"same")
    assert store.commit({d: b}, [])
    assert store.commit({d: b}, [])
    assert store.get(d) == b


def test_get_missing_raises_not_found(store):
    with pytest.raises(NotFound):
        store.get(digest(b"never stored"))


def test_has(store):
    d, b = obj(b"x")
    assert not store.has(d)
    store.commit({d: b}, [])
    assert store.has(d)
    assert not store.has(digest(b"y"))


def test_wrong_digest_is_invalid_and_writes_nothing(store):
    good_d, good_b = obj(b"good")
    bad_d = digest(b"other")
    with pytest.raises(InvalidValue):
        store.commit({good_d: good_b, bad_d: b"not other"}, [RefUpdate("r", None, good_d)])
    assert not store.has(good_d)
    assert not store.has(bad_d)
    assert store.ref("r") is None


def test_short_digest_key_is_invalid(store):
    with pytest.raises(InvalidValue):
        store.commit({b"short": b"short"}, [])


def test_empty_ref_name_is_invalid(store):
    d, b = obj(b"v")
    with pytest.raises(InvalidValue):
        store.commit({d: b}, [RefUpdate("", None, d)])
    assert not store.has(d)


def test_cas_create_with_expected_none(store):
    d, b = obj(b"v1")
    assert store.ref("main") is None
    assert store.commit({d: b}, [RefUpdate("main", None, d)]) is True
    assert store.ref("main") == d
    # creating again with expected=None fails: the ref exists now
    d2, b2 = obj(b"v2")
    assert store.commit({d2: b2}, [RefUpdate("main", None, d2)]) is False
    assert store.ref("main") == d
    assert not store.has(d2)


def test_cas_wrong_expected_writes_nothing(store):
    d1, b1 = obj(b"v1")
    store.commit({d1: b1}, [RefUpdate("main", None, d1)])
    d2, b2 = obj(b"v2")
    assert store.commit({d2: b2}, [RefUpdate("main", digest(b"stale"), d2), RefUpdate("other", None, d2)]) is False
    assert store.ref("main") == d1
    assert store.ref("other") is None
    assert not store.has(d2)
    # the right expected moves it
    assert store.commit({d2: b2}, [RefUpdate("main", d1, d2)]) is True
    assert store.ref("main") == d2


def test_multi_ref_commit_is_all_or_none(store):
    d1, b1 = obj(b"a")
    store.commit({d1: b1}, [RefUpdate("a", None, d1), RefUpdate("b", None, d1)])
    d2, b2 = obj(b"b")
    # first update matches, second does not: neither applies
    ups = [RefUpdate("a", d1, d2), RefUpdate("b", d2, d2), RefUpdate("c", None, d2)]
    assert store.commit({d2: b2}, ups) is False
    assert (store.ref("a"), store.ref("b"), store.ref("c")) == (d1, d1, None)
    assert not store.has(d2)
    ups = [RefUpdate("a", d1, d2), RefUpdate("b", d1, d2), RefUpdate("c", None, d2)]
    assert store.commit({d2: b2}, ups) is True
    assert (store.ref("a"), store.ref("b"), store.ref("c")) == (d2, d2, d2)


def test_delete_ref(store):
    d, b = obj(b"v")
    store.commit({d: b}, [RefUpdate("gone", None, d)])
    assert store.commit({}, [RefUpdate("gone", d, None)]) is True
    assert store.ref("gone") is None
    assert list(store.refs()) == []
    assert store.has(d)  # objects are never deleted by ref updates
    # deleting with a wrong expected fails
    store.commit({}, [RefUpdate("kept", None, d)])
    assert store.commit({}, [RefUpdate("kept", None, None)]) is False
    assert store.ref("kept") == d


def test_refs_prefix_order_and_boundary(store):
    d, b = obj(b"v")
    names = ["g/b/1", "g/a/2", "g/ab", "g/a/1", "g/a", "g/a/\u00e9", "g/a/z", "g/a/\U0001f600", "h/a/1", "f/a/1"]
    store.commit({d: b}, [RefUpdate(n, None, d) for n in names])
    got = store.refs("g/a/")
    assert iter(got) is got  # an iterator
    assert [n for n, _ in got] == ["g/a/1", "g/a/2", "g/a/z", "g/a/\u00e9", "g/a/\U0001f600"]
    assert [n for n, _ in store.refs("g/a")] == sorted(n for n in names if n.startswith("g/a"))
    assert [n for n, _ in store.refs()] == sorted(names)
    assert all(v == d for _, v in store.refs())
    assert list(store.refs("g/c")) == []
    assert list(store.refs("zzz")) == []


def test_refs_is_a_snapshot(store):
    d, b = obj(b"v")
    store.commit({d: b}, [RefUpdate("p/1", None, d), RefUpdate("p/2", None, d)])
    it = store.refs("p/")
    assert next(it)[0] == "p/1"
    store.commit({}, [RefUpdate("p/2", d, None), RefUpdate("p/3", None, d)])
    assert [n for n, _ in it] == ["p/2"]


def test_duplicate_ref_in_one_commit_is_invalid(store):
    d, b = obj(b"v")
    with pytest.raises(InvalidValue):
        store.commit({d: b}, [RefUpdate("r", None, d), RefUpdate("r", None, d)])
    assert store.ref("r") is None
    assert not store.has(d)


def test_stored_bytes_are_immutable(store):
    buf = bytearray(b"original")
    d = digest(bytes(buf))
    store.commit({d: buf}, [])
    buf[:] = b"mutated!"
    assert store.get(d) == b"original"


async def test_acommit_on_event_loop(store):
    d, b = obj(b"async")
    assert await store.acommit({d: b}, [RefUpdate("main", None, d)]) is True
    assert store.get(d) == b
    assert store.ref("main") == d
    assert await store.acommit({}, [RefUpdate("main", None, d)]) is False
    with pytest.raises(InvalidValue):
        await store.acommit({digest(b"x"): b"y"}, [])


async def test_concurrent_acommits_on_one_ref_exactly_one_wins(store):
    base_d, base_b = obj(b"base")
    assert await store.acommit({base_d: base_b}, [RefUpdate("head", None, base_d)])
    candidates = [obj(f"candidate {i}".encode()) for i in range(50)]
    results = await asyncio.gather(
        *(store.acommit({d: b}, [RefUpdate("head", base_d, d)]) for d, b in candidates)
    )
    assert sum(results) == 1
    winner = candidates[results.index(True)][0]
    assert store.ref("head") == winner
    for (d, _), ok in zip(candidates, results):
        assert store.has(d) is ok  # losers wrote nothing


def test_threads_racing_on_one_ref_exactly_one_wins(store):
    base_d, base_b = obj(b"base")
    store.commit({base_d: base_b}, [RefUpdate("head", None, base_d)])
    results = [None] * 16
    barrier = threading.Barrier(len(results))

    def run(i):
        d, b = obj(f"thread {i}".encode())
        barrier.wait()
        results[i] = store.commit({d: b}, [RefUpdate("head", base_d, d)])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


# ------------------------------------------------------------- LMDB specific


def test_lmdb_corrupt_object_detected_on_get(tmp_path):
    path = tmp_path / "db"
    d, b = obj(b"precious")
    with LmdbStore(path) as s:
        s.commit({d: b}, [])
    env = lmdb.open(str(path), max_dbs=2)
    try:
        objects = env.open_db(b"objects")  # before begin(): open_db inside a write txn self-deadlocks
        with env.begin(write=True) as txn:
            txn.put(d, b"tampered", db=objects)
    finally:
        env.close()
    with LmdbStore(path) as s:
        assert s.has(d)
        with pytest.raises(CorruptObject):
            s.get(d)


def test_lmdb_map_grows_on_demand(tmp_path):
    small = 64 * 1024
    with LmdbStore(tmp_path / "db", map_size=small, durable=False) as s:
        assert s.stats()["map_size"] == small
        blobs = [obj(os.urandom(256 * 1024)) for _ in range(16)]  # 4 MiB in total
        for i in range(0, len(blobs), 4):
            assert s.commit(dict(blobs[i : i + 4]), [RefUpdate(f"r/{i}", None, blobs[i][0])])
        big_d, big_b = obj(os.urandom(3 * 1024 * 1024))  # one object larger than the doubled map
        assert s.commit({big_d: big_b}, [])
        st = s.stats()
        assert st["map_size"] > small
        assert st["used_bytes"] <= st["map_size"]
        assert st["used_bytes"] > 7 * 1024 * 1024
        assert st["objects"] == 17
        assert st["refs"] == 4
        for d, b in blobs + [(big_d, big_b)]:
            assert s.get(d) == b


def test_lmdb_map_growth_while_reading(tmp_path):
    """Growing the map invalidates open read txns; concurrent readers must never see that."""
    with LmdbStore(tmp_path / "db", map_size=64 * 1024, durable=False) as s:
        d0, b0 = obj(b"always there")
        s.commit({d0: b0}, [RefUpdate("r", None, d0)])
        stop = threading.Event()
        errors = []

        def reader():
            while not stop.is_set():
                try:
                    assert s.get(d0) == b0
                    assert s.ref("r") == d0
                    assert [n for n, _ in s.refs()] == ["r"]
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
                    return

        readers = [threading.Thread(target=reader) for _ in range(4)]
        for t in readers:
            t.start()
        try:
            for _ in range(8):
                s.commit(dict(obj(os.urandom(128 * 1024)) for _ in range(4)), [])
        finally:
            stop.set()
            for t in readers:
                t.join()
        assert errors == []
        assert s.stats()["map_size"] > 64 * 1024


def test_lmdb_data_survives_reopen(tmp_path):
    path = tmp_path / "db"
    d, b = obj(b"durable")
    with LmdbStore(path) as s:
        s.commit({d: b}, [RefUpdate("main", None, d), RefUpdate("x/y", None, d)])
    with LmdbStore(path, durable=False) as s:
        assert s.get(d) == b
        assert s.ref("main") == d
        assert list(s.refs()) == [("main", d), ("x/y", d)]


def test_lmdb_reopen_after_growth_with_small_map_size(tmp_path):
    path = tmp_path / "db"
    blobs = [obj(os.urandom(200 * 1024)) for _ in range(4)]
    with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
        s.commit(dict(blobs), [])
    with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
        assert s.stats()["map_size"] >= s.stats()["used_bytes"]
        for d, b in blobs:
            assert s.get(d) == b
        assert s.commit(dict([obj(os.urandom(200 * 1024))]), [])


_GROW_ELSEWHERE = """
import sys, lmdb
from blake3 import blake3
env = lmdb.open(sys.argv[1], max_dbs=2, map_size=64 << 20)
objects, refs = env.open_db(b"objects"), env.open_db(b"refs")
with env.begin(write=True) as txn:
    for i in range(8):
        data = bytes([i]) * (256 * 1024)
        txn.put(blake3(data).digest(), data, db=objects)
    txn.put(b"other/process", blake3(data).digest(), db=refs)
env.close()
"""


def test_lmdb_adopts_map_grown_by_another_process(tmp_path):
    path = tmp_path / "db"
    with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
        d, b = obj(b"mine")
        s.commit({d: b}, [])
        subprocess.run([sys.executable, "-c", _GROW_ELSEWHERE, str(path)], check=True, timeout=30)
        last = bytes([7]) * (256 * 1024)
        assert s.ref("other/process") == digest(last)  # read first: needs the writer to adopt
        assert s.get(digest(last)) == last
        assert s.get(d) == b
        d2, b2 = obj(b"after")
        assert s.commit({d2: b2}, [RefUpdate("mine", None, d2)])
        assert s.stats()["map_size"] >= 2 * 1024 * 1024


def test_lmdb_same_path_twice_is_an_error(tmp_path):
    path = tmp_path / "db"
    with LmdbStore(path):
        with pytest.raises(StoreError, match="already open"):
            LmdbStore(path)
        with pytest.raises(StoreError, match="already open"):
            LmdbStore(str(path) + "/../db")  # same place, different spelling
    with LmdbStore(path):  # closing released it
        pass


def test_lmdb_commits_from_many_threads_all_land(tmp_path):
    with LmdbStore(tmp_path / "db") as s:
        n_threads, per_thread = 8, 25
        barrier = threading.Barrier(n_threads)

        def run(t):
            barrier.wait()
            for i in range(per_thread):
                d, b = obj(f"{t}/{i}".encode())
                assert s.commit({d: b}, [RefUpdate(f"t/{t}/{i:03}", None, d)])

        threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s.stats()["refs"] == n_threads * per_thread
        assert s.stats()["objects"] == n_threads * per_thread
        for t in range(n_threads):
            for i in range(per_thread):
                assert s.get(s.ref(f"t/{t}/{i:03}")) == f"{t}/{i}".encode()


def test_lmdb_group_commit_shares_one_transaction(tmp_path, monkeypatch):
    """Requests queued while the writer is busy are applied together, in order."""
    with LmdbStore(tmp_path / "db") as s:
        release = threading.Event()
        groups = []
        real_apply = s._apply

        def slow_apply(group):
            groups.append(len(group))
            if len(groups) == 1:
                assert release.wait(5)
            return real_apply(group)

        monkeypatch.setattr(s, "_apply", slow_apply)
        d0, b0 = obj(b"first")
        first = threading.Thread(target=s.commit, args=({d0: b0}, [RefUpdate("seq", None, d0)]))
        first.start()
        deadline = time.monotonic() + 5
        while not groups and time.monotonic() < deadline:
            time.sleep(0.001)
        # writer is now blocked inside the first group; queue a chain of CAS moves
        chain = [d0] + [obj(f"step {i}".encode())[0] for i in range(10)]
        futures = [
            s._submit({chain[i + 1]: f"step {i}".encode()}, [RefUpdate("seq", chain[i], chain[i + 1])])
            for i in range(10)
        ]
        # plus one that conflicts with an earlier member of the same group
        futures.append(s._submit({}, [RefUpdate("seq", d0, None)]))
        release.set()
        first.join()
        results = [f.result(5) for f in futures]
        assert groups == [1, 11]
        assert results == [True] * 10 + [False]
        assert s.ref("seq") == chain[-1]


async def test_lmdb_cancelled_acommit_is_withdrawn_if_still_queued(tmp_path, monkeypatch):
    with LmdbStore(tmp_path / "db", durable=False) as s:
        release = threading.Event()
        busy = threading.Event()
        real_apply = s._apply

        def slow_apply(group):
            busy.set()
            assert release.wait(5)
            return real_apply(group)

        monkeypatch.setattr(s, "_apply", slow_apply)
        d1, b1 = obj(b"lands")
        first = asyncio.ensure_future(s.acommit({d1: b1}, [RefUpdate("a", None, d1)]))
        assert await asyncio.to_thread(busy.wait, 5)
        d2, b2 = obj(b"withdrawn")
        second = asyncio.ensure_future(s.acommit({d2: b2}, [RefUpdate("b", None, d2)]))
        await asyncio.sleep(0)  # let it queue
        second.cancel()
        await asyncio.sleep(0)
        release.set()
        assert await first is True
        with pytest.raises(asyncio.CancelledError):
            await second
        assert s.ref("b") is None
        assert not s.has(d2)
        assert s.ref("a") == d1


def test_lmdb_close_is_idempotent_and_final(tmp_path):
    s = LmdbStore(tmp_path / "db")
    d, b = obj(b"v")
    s.commit({d: b}, [])
    s.close()
    s.close()
    for call in (
        lambda: s.get(d),
        lambda: s.has(d),
        lambda: s.ref("x"),
        lambda: s.refs(),
        lambda: s.stats(),
        lambda: s.commit({}, []),
    ):
        with pytest.raises(StoreError):
            call()
    with pytest.raises(StoreError):
        asyncio.run(s.acommit({}, []))
    assert not s._thread.is_alive()


def test_lmdb_close_finishes_queued_commits(tmp_path):
    path = tmp_path / "db"
    s = LmdbStore(path, durable=False)
    items = [obj(f"q{i}".encode()) for i in range(20)]
    futures = [s._submit({d: b}, [RefUpdate(f"q/{i:02}", None, d)]) for i, (d, b) in enumerate(items)]
    s.close()
    assert all(f.result(5) for f in futures)
    with LmdbStore(path) as s2:
        assert len(list(s2.refs("q/"))) == 20


def test_lmdb_ref_name_limits(tmp_path):
    with LmdbStore(tmp_path / "db") as s:
        d, b = obj(b"v")
        with pytest.raises(InvalidValue):
            s.commit({d: b}, [RefUpdate("x" * 600, None, d)])
        with pytest.raises(InvalidValue):
            s.commit({d: b}, [RefUpdate("bad\ud800", None, d)])
        assert not s.has(d)
        assert s.ref("x" * 600) is None
        assert list(s.refs("x" * 600)) == []
        assert s.commit({d: b}, [RefUpdate("x" * 511, None, d)])
        assert s.ref("x" * 511) == d


def test_lmdb_stats(tmp_path):
    with LmdbStore(tmp_path / "db", durable=False) as s:
        d, b = obj(b"v")
        s.commit({d: b}, [RefUpdate("a", None, d), RefUpdate("b", None, d)])
        st = s.stats()
        assert st["path"] == os.path.realpath(tmp_path / "db")
        assert st["objects"] == 1 and st["refs"] == 2
        assert 0 < st["used_bytes"] <= st["map_size"]
        assert st["durable"] is False
