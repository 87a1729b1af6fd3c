"""The store contract (:class:`lattice.testing.StoreContract`) run against each backend, plus LMDB specifics."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time

import lmdb
import pytest

from lattice import lmdb_gc, lmdb_layout
from lattice.digest import digest
from lattice.errors import InvalidValue, NotFound, ReadOnly, StoreError
from lattice.gc import collect
from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from lattice.store import RefUpdate
from lattice.testing import StoreContract
from tests.lattice.helpers import tamper_lmdb


def obj(data: bytes) -> tuple[bytes, bytes]:
    return digest(data), data


_GROW_ELSEWHERE = """
import random, sys, lmdb
from blake3 import blake3
from lattice.lmdb_layout import MAX_DBS, Layout
env = lmdb.open(sys.argv[1], max_dbs=MAX_DBS, map_size=64 << 20)
layout = Layout(env, False)
with env.begin(write=True) as txn:
    layout.begin(txn)
    for i in range(8):
        data = random.Random(i).randbytes(256 * 1024)  # incompressible: the map must grow
        layout.put(txn, blake3(data).digest(), data)
    txn.put(b"other/process", blake3(data).digest(), db=layout.refs)
env.close()
"""


class TestMemoryStore(StoreContract):
    """MemoryStore: not durable, so no reopen_store (the durability test is skipped)."""

    def make_store(self, path):
        return MemoryStore()

    def corrupt_object(self, store, path, d, data):
        store._objects[d] = data
        return store


class TestLmdbStore(StoreContract):
    """LmdbStore: the contract, then what only LMDB has (map growth, group commit, the writer thread)."""

    def make_store(self, path):
        return LmdbStore(path)

    def reopen_store(self, path):
        return LmdbStore(path, durable=False)

    def corrupt_object(self, store, path, d, data):
        store.close()  # LMDB forbids a second environment on the path in one process
        tamper_lmdb(path, d, data)
        return LmdbStore(path)

    # ---------------------------------------------------------- LMDB specific

    def test_lmdb_map_grows_on_demand(self, tmp_path):
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

    def test_lmdb_gc_grows_a_full_map(self, tmp_path):
        """A sweep's deletes copy pages too: with the map full it grows the map and sweeps again
        (it used to fail with LMDB's MapFullError, found by bench/lifecycle.py's 1 GB run)."""
        with LmdbStore(tmp_path / "db", map_size=64 * 1024, durable=False) as s:
            pool = [obj(os.urandom(200)) for _ in range(6000)]
            for i in range(0, len(pool), 500):
                assert s.commit(dict(pool[i:i + 500]), [])
            keep = pool[::3]
            assert s.commit({}, [RefUpdate(f"k/{i}", None, d) for i, (d, _) in enumerate(keep)])

            def shrink() -> None:  # on the writer thread, no transaction open: as small as the pages in use
                with s._gate.exclusive():
                    s._env.set_mapsize(1)
            s._control(shrink)
            full = s.stats()
            assert full["map_size"] == full["used_bytes"]
            report = collect(s)
            assert report.freed == len(pool) - len(keep)
            assert report.freed_bytes == 200 * report.freed
            assert s.stats()["map_size"] > full["map_size"]
            assert s.stats()["objects"] == len(keep)
            assert all(s.get(d) == b for d, b in keep)

    @staticmethod
    def _half_dead(s, n: int, seed: int = 1) -> tuple[list, list]:
        rng = random.Random(seed)
        pool = [obj(rng.randbytes(rng.randint(40, 300))) for _ in range(n)]
        for i in range(0, n, 500):
            assert s.commit(dict(pool[i:i + 500]), [])
        keep = pool[::2]
        assert s.commit({}, [RefUpdate(f"k/{i}", None, d) for i, (d, _) in enumerate(keep)])
        return pool, keep

    @pytest.mark.parametrize("batch", [1000, 10**9])
    def test_lmdb_sweep_in_batches_reuses_the_pages_it_frees(self, tmp_path, monkeypatch, batch):
        """The sweep deletes in batches of ``SWEEP_BATCH``, log records in log order, so the pages one
        batch frees hold the next ones' copies: the file grows little. In one transaction every
        copied page is new (+70% here; a 0.8 GB store doubled)."""
        monkeypatch.setattr(lmdb_gc, "SWEEP_BATCH", batch)
        with LmdbStore(tmp_path / "db", durable=False) as s:
            pool, keep = self._half_dead(s, 20_000)
            before = s.stats()["used_bytes"]
            report = collect(s)
            assert report.freed == len(pool) - len(keep)
            assert report.freed_bytes == sum(len(b) for d, b in pool[1::2])
            grown = s.stats()["used_bytes"] / before - 1
            assert (grown < 0.2) if batch == 1000 else (grown > 0.4)
            assert s.stats()["objects"] == len(keep) and all(s.get(d) == b for d, b in keep)

    def test_lmdb_sweep_stopped_between_its_phases_loses_nothing(self, tmp_path, monkeypatch):
        """A sweep that stops after deleting dead log records and before their index entries (a crash,
        a full disk) leaves index entries that read as absent; every live object stays, a commit
        after it does not take a dead entry's sequence number, and the next collection finishes."""
        monkeypatch.setattr(lmdb_gc, "SWEEP_BATCH", 500)
        with LmdbStore(tmp_path / "db", durable=False) as s:
            pool, keep = self._half_dead(s, 4000)
            dead = pool[1::2]
            last_d, last_b = obj(b"the log's last record, unreachable")
            assert s.commit({last_d: last_b}, [])
            real = lmdb_layout.Layout.delete_indexed

            def stop(self, txn, packed, old=()):
                raise OSError("no space left on device")
            monkeypatch.setattr(lmdb_layout.Layout, "delete_indexed", stop)
            with pytest.raises(OSError):
                collect(s)
            monkeypatch.setattr(lmdb_layout.Layout, "delete_indexed", real)
            assert all(s.get(d) == b for d, b in keep)
            assert s.get(last_d) == last_b  # the last record goes last, with its entry
            for d, _ in dead:
                with pytest.raises(NotFound):
                    s.get(d)
                assert not s.has(d)
            new = [obj(f"after the stop {i}".encode()) for i in range(50)]
            assert s.commit(dict(new), [RefUpdate("k/new", None, new[0][0])])
            assert all(s.get(d) == b for d, b in new)
            assert s.commit(dict(dead[:3]), [RefUpdate("k/back", None, dead[0][0])])  # dead content again
            report = collect(s)
            # the stale entries whose prefix is dead, dead[1:3] written again, the old last record,
            # the 49 new objects no ref reaches
            assert report.freed == (len(dead) - 1) + 2 + 1 + 49
            assert all(s.get(d) == b for d, b in keep + new[:1] + dead[:1])
            # dead[0]'s stale entry shares a live prefix: kept unread, as gc keeps any such entry
            assert s.stats()["objects"] == len(keep) + 2 + 1

    def test_lmdb_map_growth_while_reading(self, tmp_path):
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

    def test_lmdb_compact_while_reading_refs(self, tmp_path):
        """compact reopens the environment (new database handles); ref reads running beside it
        must use the new handles, never fail."""
        with LmdbStore(tmp_path / "db", durable=False) as s:
            items = [obj(f"v{i}".encode()) for i in range(50)]
            s.commit(dict(items), [RefUpdate(f"r/{i:02}", None, d) for i, (d, _) in enumerate(items)])
            stop = threading.Event()
            errors = []

            def reader():
                while not stop.is_set():
                    try:
                        assert len(list(s.refs("r/"))) == 50
                        assert s.ref("r/07") == items[7][0]
                        assert len(s.read_refs(["r/01"], ["r/1"])) == 11
                    except BaseException as e:  # noqa: BLE001
                        errors.append(e)
                        return

            readers = [threading.Thread(target=reader) for _ in range(3)]
            for t in readers:
                t.start()
            try:
                for _ in range(20):
                    s.compact()
            finally:
                stop.set()
                for t in readers:
                    t.join()
            assert errors == []

    def test_lmdb_reopen_after_growth_with_small_map_size(self, tmp_path):
        path = tmp_path / "db"
        blobs = [obj(os.urandom(200 * 1024)) for _ in range(4)]
        with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
            s.commit(dict(blobs), [])
        with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
            assert s.stats()["map_size"] >= s.stats()["used_bytes"]
            for d, b in blobs:
                assert s.get(d) == b
            assert s.commit(dict([obj(os.urandom(200 * 1024))]), [])

    def test_lmdb_adopts_map_grown_by_another_process(self, tmp_path):
        path = tmp_path / "db"
        with LmdbStore(path, map_size=64 * 1024, durable=False) as s:
            d, b = obj(b"mine")
            s.commit({d: b}, [])
            subprocess.run([sys.executable, "-c", _GROW_ELSEWHERE, str(path)], check=True, timeout=30)
            last = random.Random(7).randbytes(256 * 1024)
            assert s.ref("other/process") == digest(last)  # read first: needs the writer to adopt
            assert s.get(digest(last)) == last
            assert s.get(d) == b
            d2, b2 = obj(b"after")
            assert s.commit({d2: b2}, [RefUpdate("mine", None, d2)])
            assert s.stats()["map_size"] >= 2 * 1024 * 1024

    def test_lmdb_same_path_twice_is_an_error(self, tmp_path):
        path = tmp_path / "db"
        with LmdbStore(path):
            with pytest.raises(StoreError, match="already open"):
                LmdbStore(path)
            with pytest.raises(StoreError, match="already open"):
                LmdbStore(str(path) + "/../db")  # same place, different spelling
        with LmdbStore(path):  # closing released it
            pass

    def test_lmdb_group_commit_shares_one_transaction(self, tmp_path, monkeypatch):
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
                s.submit({chain[i + 1]: f"step {i}".encode()}, [RefUpdate("seq", chain[i], chain[i + 1])])
                for i in range(10)
            ]
            # plus one that conflicts with an earlier member of the same group
            futures.append(s.submit({}, [RefUpdate("seq", d0, None)]))
            release.set()
            first.join()
            results = [f.result(5) for f in futures]
            assert groups == [1, 11]
            assert results == [True] * 10 + [False]
            assert s.ref("seq") == chain[-1]

    async def test_lmdb_cancelled_acommit_is_withdrawn_if_still_queued(self, tmp_path, monkeypatch):
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

    def test_lmdb_close_is_idempotent_and_final(self, tmp_path):
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

    def test_lmdb_close_finishes_queued_commits(self, tmp_path):
        path = tmp_path / "db"
        s = LmdbStore(path, durable=False)
        items = [obj(f"q{i}".encode()) for i in range(20)]
        futures = [s.submit({d: b}, [RefUpdate(f"q/{i:02}", None, d)]) for i, (d, b) in enumerate(items)]
        s.close()
        assert all(f.result(5) for f in futures)
        with LmdbStore(path) as s2:
            assert len(list(s2.refs("q/"))) == 20

    def test_lmdb_commit_now_commits_on_the_calling_thread(self, tmp_path, monkeypatch):
        """commit_now: the same compare-and-swap and result as commit, in a write transaction of the
        caller's own thread (the writer thread stays idle)."""
        with LmdbStore(tmp_path / "db") as s:
            threads = []
            real_apply = s._apply
            monkeypatch.setattr(s, "_apply", lambda group: threads.append(threading.current_thread()) or
                                real_apply(group))
            d1, b1 = obj(b"one")
            d2, b2 = obj(b"two")
            assert s.commit_now({d1: b1}, [RefUpdate("r", None, d1)]) is True
            assert s.commit_now({d2: b2}, [RefUpdate("r", d2, d2)]) is False  # CAS lost: nothing written
            assert s.ref("r") == d1 and not s.has(d2)
            assert s.commit_now({d2: b2}, [RefUpdate("r", d1, d2)], generation=s.generation) is True
            assert s.commit_now({}, [RefUpdate("r", d2, None)], generation=s.generation - 1) is False  # a gc swept
            assert s.ref("r") == d2 and s.get(d2) == b2
            assert threads == [threading.current_thread()] * 4
            with pytest.raises(InvalidValue):  # checked before anything is written
                s.commit_now({d1: b"not its bytes"}, [RefUpdate("x", None, d1)])
            assert s.ref("x") is None

    def test_lmdb_commit_now_and_the_writer_thread_take_turns(self, tmp_path):
        """commit_now on several threads beside queued commits: one write transaction at a time,
        nothing lost (every compare-and-swap chain ends where its thread left it)."""
        with LmdbStore(tmp_path / "db", durable=False) as s:
            errors = []

            def chain(name: str, now: bool) -> None:
                try:
                    prev = None
                    for i in range(60):
                        d, b = obj(f"{name} {i}".encode())
                        ups = [RefUpdate(name, prev, d)]
                        ok = s.commit_now({d: b}, ups) if now else s.submit({d: b}, ups).result(10)
                        assert ok, (name, i)
                        prev = d
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            workers = [threading.Thread(target=chain, args=(f"c/{i}", i % 2 == 0)) for i in range(6)]
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            assert errors == []
            assert {n: s.get(d) for n, d in s.refs("c/")} == {f"c/{i}": f"c/{i} 59".encode() for i in range(6)}

    def test_lmdb_commit_now_grows_the_map(self, tmp_path):
        with LmdbStore(tmp_path / "db", map_size=64 * 1024, durable=False) as s:
            blobs = dict(obj(os.urandom(256 * 1024)) for _ in range(4))
            assert s.commit_now(blobs, [])
            assert s.stats()["map_size"] > 64 * 1024
            assert all(s.get(d) == b for d, b in blobs.items())

    def test_lmdb_commit_now_refuses_when_closed_read_only_or_on_the_writer(self, tmp_path):
        path = tmp_path / "db"
        d, b = obj(b"v")
        s = LmdbStore(path)
        err = s._control(lambda: _raises(lambda: s.commit_now({d: b}, [])))  # run on the writer thread
        assert type(err) is StoreError and "writer thread" in str(err)
        s.close()
        with pytest.raises(StoreError, match="closed"):
            s.commit_now({d: b}, [])
        with LmdbStore(path, readonly=True) as ro:
            with pytest.raises(ReadOnly):
                ro.commit_now({d: b}, [])
        with LmdbStore(path) as s2:
            assert not s2.has(d)

    def test_lmdb_ref_name_limits(self, tmp_path):
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

    def test_lmdb_stats(self, tmp_path):
        with LmdbStore(tmp_path / "db", durable=False) as s:
            d, b = obj(b"v")
            s.commit({d: b}, [RefUpdate("a", None, d), RefUpdate("b", None, d)])
            st = s.stats()
            assert st["path"] == os.path.realpath(tmp_path / "db")
            assert st["objects"] == 1 and st["refs"] == 2
            assert 0 < st["used_bytes"] <= st["map_size"]
            assert st["durable"] is False


def test_read_refs_on_a_store_without_it_reads_names_first_then_prefixes():
    from lattice.store import read_refs

    calls = []

    class Bare:  # only the port's ref and refs
        refs_ = {"a": b"1" * 32, "b/1": b"2" * 32, "c": b"3" * 32}

        def ref(self, name):
            calls.append(("ref", name))
            return self.refs_.get(name)

        def refs(self, prefix=""):
            calls.append(("refs", prefix))
            return iter(sorted((n, d) for n, d in self.refs_.items() if n.startswith(prefix)))

    assert read_refs(Bare(), ["c", "a", "z"], ["b/"]) == {"c": b"3" * 32, "a": b"1" * 32, "b/1": b"2" * 32}
    assert calls == [("ref", "c"), ("ref", "a"), ("ref", "z"), ("refs", "b/")]


def _raises(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        return e
    return None


def test_drain_takes_what_is_queued_until_full_or_stop():
    import queue

    from lattice.store import drain
    stop = object()
    q = queue.SimpleQueue()
    for x in (2, 3, 4, stop, 5):
        q.put(x)
    assert drain(q, 1, stop, lambda g: len(g) >= 3) == ([1, 2, 3], False)  # full: the rest stays queued
    assert drain(q, 0, stop, lambda g: False) == ([0, 4], True)  # the stop: nothing after it taken
    assert q.get_nowait() == 5
    assert drain(q, 9, stop, lambda g: False) == ([9], False)  # an empty queue
