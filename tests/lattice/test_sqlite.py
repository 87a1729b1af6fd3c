"""The store contract on :class:`lattice.sqlite.SqliteStore`, then what only SQLite has."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from lattice.digest import digest
from lattice.errors import GcRunning, InvalidValue, StoreError
from lattice.gc import collect
from lattice.open import open_store
from lattice.sqlite import SCHEMA, SqliteStore, sqlite_path
from lattice.store import RefUpdate
from lattice.testing import StoreContract


def obj(data: bytes) -> tuple[bytes, bytes]:
    return digest(data), data


class TestSqliteStore(StoreContract):
    def make_store(self, path):
        return SqliteStore(path / "lattice.db")

    def reopen_store(self, path):
        return SqliteStore(path / "lattice.db", durable=False)

    def corrupt_object(self, store, path, d, data):
        with sqlite3.connect(path / "lattice.db") as c:
            p = int.from_bytes(d[:8], "big", signed=True)
            (seq,) = c.execute("SELECT seq FROM lattice_index WHERE p = ?", (p,)).fetchone()
            c.execute("UPDATE lattice_log SET v = ? WHERE seq = ?", (b"\0" + data, seq))
        return store

    # ---------------------------------------------------------- SQLite specific

    def test_open_store_spec(self, tmp_path):
        for spec, path in ((f"sqlite:{tmp_path}/a.db", f"{tmp_path}/a.db"),
                           (f"sqlite://{tmp_path}/b.db", f"{tmp_path}/b.db"),
                           ("SQLITE:rel/c.db", "rel/c.db")):
            assert sqlite_path(spec) == path
        with open_store(f"sqlite:{tmp_path}/sub/dir/a.db", durable=False) as s:
            assert type(s) is SqliteStore and not s.durable
            d, b = obj(b"x")
            assert s.commit({d: b}, [RefUpdate("r", None, d)])
        with open_store(f"sqlite:///{tmp_path}/sub/dir/a.db") as s:
            assert s.get(d) == b and s.ref("r") == d
        for bad in ("sqlite:", "sqlite://"):
            with pytest.raises(InvalidValue):
                open_store(bad)

    def test_one_writing_process_readers_beside_it(self, tmp_path):
        path = tmp_path / "a.db"
        from lattice.errors import ReadOnly, StoreLocked
        with SqliteStore(path) as s:
            d, b = obj(b"written by the server")
            assert s.commit({d: b}, [RefUpdate("r", None, d)])
            code = ("import sys; from lattice.sqlite import SqliteStore\n"
                    "try:\n    SqliteStore(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__)")
            out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
            assert out.stdout.strip() == "StoreLocked", out
            with pytest.raises(StoreLocked):  # in this process too: the lock is per open store
                SqliteStore(path)
            with SqliteStore(path, readonly=True) as r:
                assert r.get(d) == b and r.ref("r") == d and r.generation == s.generation
                with pytest.raises(ReadOnly):
                    r.commit({}, [RefUpdate("r", d, None)])
                with pytest.raises(ReadOnly):
                    r.gc_begin()
                e, c = obj(b"after the reader opened")
                assert s.commit({e: c}, [RefUpdate("r", d, e)])
                assert r.ref("r") == e and r.get(e) == c  # a reader sees the latest commit
        with SqliteStore(path) as s:  # the lock went with the store
            assert s.ref("r") == e

    def test_readonly_needs_a_store(self, tmp_path):
        with pytest.raises(StoreError, match="no store"):
            SqliteStore(tmp_path / "missing.db", readonly=True)
        (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
        with pytest.raises(StoreError):
            SqliteStore(tmp_path / "junk.db", readonly=True)
        with pytest.raises(StoreError):
            SqliteStore(tmp_path / "junk.db")
        plain = tmp_path / "plain.db"
        sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()
        with pytest.raises(StoreError, match="not a store"):
            SqliteStore(plain, readonly=True)

    def test_a_newer_schema_is_refused_and_left_alone(self, tmp_path):
        path = tmp_path / "a.db"
        SqliteStore(path).close()
        with sqlite3.connect(path) as c:
            c.execute("UPDATE lattice_meta SET v = ? WHERE k = 'schema'", (SCHEMA + 1,))
        for ro in (False, True):
            with pytest.raises(StoreError, match="newer"):
                SqliteStore(path, readonly=ro)
        with sqlite3.connect(path) as c:
            assert c.execute("SELECT v FROM lattice_meta WHERE k = 'schema'").fetchone()[0] == SCHEMA + 1

    def test_an_object_is_stored_once_and_appended_in_order(self, tmp_path):
        with SqliteStore(tmp_path / "a.db", durable=False) as s:
            objs = dict(obj(bytes([i]) * (100 + i)) for i in range(20))
            assert s.commit(objs, [])
            assert s.commit(objs, [RefUpdate("r", None, next(iter(objs)))])  # again: nothing new
            assert s.stats()["objects"] == 20
            with sqlite3.connect(tmp_path / "a.db") as c:
                seqs = [seq for (seq,) in c.execute("SELECT seq FROM lattice_log ORDER BY seq")]
            assert seqs == list(range(1, 21))
            assert sorted(d for d, _ in s.objects()) == sorted(objs)

    def test_one_collection_at_a_time_and_compact(self, tmp_path):
        path = tmp_path / "a.db"
        with SqliteStore(path, durable=False) as s:
            blobs = [obj(os.urandom(20_000)) for _ in range(50)]
            assert s.commit(dict(blobs), [RefUpdate(f"r/{i}", None, d) for i, (d, _) in enumerate(blobs)])
            assert s.commit({}, [RefUpdate(f"r/{i}", d, None) for i, (d, _) in enumerate(blobs) if i % 2])
            s.gc_begin()
            with pytest.raises(GcRunning):
                s.gc_begin()
            s.gc_sweep(None)
            report = collect(s)
            assert report.freed == 25 and report.freed_bytes == 25 * 20_000
            before, after = s.compact()
            assert after < before - 400_000
            assert all(s.get(d) == b for i, (d, b) in enumerate(blobs) if i % 2 == 0)
        with pytest.raises(StoreError, match="without gc_begin"):
            with SqliteStore(path) as s:
                s.gc_sweep(set())

    def test_bad_ref_names_write_nothing(self, tmp_path):
        with SqliteStore(tmp_path / "a.db", durable=False) as s:
            d, b = obj(b"x")
            with pytest.raises(InvalidValue):
                s.commit({d: b}, [RefUpdate("bad\udc80", None, d)])
            assert not s.has(d) and s.stats()["objects"] == 0

    def test_closed_store_raises(self, tmp_path):
        s = SqliteStore(tmp_path / "a.db")
        s.close()
        d, b = obj(b"x")
        for call in (lambda: s.get(d), lambda: s.ref("r"), lambda: s.commit({d: b}, []),
                     lambda: s.commit_now({d: b}, []), lambda: s.gc_begin(), lambda: s.compact()):
            with pytest.raises(StoreError):
                call()

    def test_a_database_of_something_else_is_left_alone(self, tmp_path):
        plain = tmp_path / "app.db"
        with sqlite3.connect(plain) as c:
            c.execute("CREATE TABLE users (name)")
        with pytest.raises(StoreError, match="not a store"):
            SqliteStore(plain)
        with sqlite3.connect(plain) as c:
            assert [n for (n,) in c.execute("SELECT name FROM sqlite_master")] == ["users"]
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    def test_names_no_ref_can_have_read_as_absent(self, tmp_path):
        with SqliteStore(tmp_path / "a.db", durable=False) as s:
            d, b = obj(b"x")
            assert s.commit({d: b}, [RefUpdate("r/1", None, d)])
            assert s.ref("r/\udc80") is None and s.ref("") is None
            assert list(s.refs("r/\udc80")) == []
            from lattice.store import read_refs
            assert read_refs(s, ["r/1", "bad\udc80"], ["\udc80", "r/"]) == {"r/1": d}

    def test_commits_racing_close_land_or_fail_never_hang(self, tmp_path):
        import threading
        s = SqliteStore(tmp_path / "a.db", durable=False)
        futures, errors = [], []

        def run(t):
            for i in range(200):
                d, b = obj(f"{t}/{i}".encode())
                try:
                    futures.append(s.submit({d: b}, [RefUpdate(f"r/{t}/{i}", None, d)]))
                except StoreError:
                    errors.append(i)
                    return
        threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        s.close()
        for t in threads:
            t.join(10)
        for f in futures:
            assert f.result(10) is True  # queued before the stop: committed
        with SqliteStore(tmp_path / "a.db") as again:
            assert again.stats()["objects"] == len(futures)
