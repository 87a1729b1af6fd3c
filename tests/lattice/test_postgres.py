"""PostgresStore: the store contract against a real PostgreSQL (tests/pg.py), plus what only it has:
the versioned schema, CAS races between two stores (two pools, as two processes), group commit,
error mapping and reconnection."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import psycopg
import pytest

import lattice.postgres as pg
import lattice.postgres_support as pgs
from lattice.digest import digest
from lattice.errors import CorruptObject, InvalidValue, StoreError
from lattice.postgres import SCHEMA_VERSION, PostgresStore, map_error
from lattice.store import RefUpdate
from lattice.testing import StoreContract
import tests.pg
from tests.pg import PostgresMissing, create_database, drop_database, find_bin


def obj(data: bytes) -> tuple[bytes, bytes]:
    return digest(data), data


def sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on its own connection (behind the store's back); return its rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


class TestPostgresStore(StoreContract):
    """The contract: each test on a fresh database of the session's server."""

    @pytest.fixture(autouse=True)
    def _databases(self, postgres_server):
        # autouse: set up before, torn down after, the contract's ``store`` fixture
        self._server = postgres_server
        self._urls: dict = {}
        yield
        for url in self._urls.values():
            drop_database(url)

    def make_store(self, path):
        self._urls[path] = url = create_database(self._server)
        return PostgresStore(url, pool_size=4)

    def reopen_store(self, path):
        return PostgresStore(self._urls[path], pool_size=4)

    def corrupt_object(self, store, path, d, data):
        sql(self._urls[path], "UPDATE lattice_objects SET data = %b WHERE digest = %b", (data, d))
        return store


# ------------------------------------------------------------------ schema


def test_schema_created_with_its_version(postgres_url):
    with PostgresStore(postgres_url) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        assert s.generation == 0
    rows = sql(postgres_url, "SELECT version, applied_by FROM lattice_schema ORDER BY version")
    assert [v for v, _ in rows] == [1, 2]
    assert rows[0][1].startswith("agent-lattice ")
    tables = {t for (t,) in sql(postgres_url, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'lattice_%'")}
    assert tables == {"lattice_schema", "lattice_objects", "lattice_refs", "lattice_gc", "lattice_gc_protected"}
    # opening again neither migrates nor adds a row
    with PostgresStore(postgres_url) as s:
        assert s.schema_version == 2
    assert sql(postgres_url, "SELECT count(*) FROM lattice_schema") == [(2,)]


def test_newer_schema_is_refused(postgres_url):
    with PostgresStore(postgres_url):
        pass
    sql(postgres_url, "INSERT INTO lattice_schema (version, applied_by) VALUES (%s, 'the future')",
        (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError) as info:
        PostgresStore(postgres_url)
    assert info.value.code == "store_error"
    assert f"version {SCHEMA_VERSION + 1}" in info.value.message
    assert f"up to {SCHEMA_VERSION}" in info.value.message
    assert "upgrade" in info.value.hint
    # the refused store left no connection behind
    wait_until(lambda: sql(postgres_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND application_name = 'agent-lattice'") == [(0,)])


def test_older_schema_is_migrated(postgres_url, monkeypatch):
    d, b = obj(b"kept across the migration")
    with PostgresStore(postgres_url) as s:
        assert s.commit({d: b}, [RefUpdate("main", None, d)])
    monkeypatch.setattr(pg, "MIGRATIONS", {**pg.MIGRATIONS, 3: ("CREATE TABLE lattice_extra (x int)",)})
    monkeypatch.setattr(pg, "SCHEMA_VERSION", 3)
    with PostgresStore(postgres_url) as s:
        assert s.schema_version == 3
        assert s.get(d) == b and s.ref("main") == d
    assert [v for (v,) in sql(postgres_url, "SELECT version FROM lattice_schema ORDER BY version")] == [1, 2, 3]
    assert sql(postgres_url, "SELECT to_regclass('lattice_extra') IS NOT NULL") == [(True,)]


def test_concurrent_first_opens_create_the_schema_once(postgres_url):
    stores, errors = [], []
    barrier = threading.Barrier(6)

    def open_one():
        barrier.wait()
        try:
            stores.append(PostgresStore(postgres_url, pool_size=1))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == 6
    assert sql(postgres_url, "SELECT version FROM lattice_schema ORDER BY version") == [(1,), (2,)]


# ------------------------------------------------- CAS between two stores


def test_two_stores_racing_on_one_ref_exactly_one_wins(postgres_url):
    """Two stores (two pools, as two processes would have) race, round after round, to move one
    existing ref and to create one new ref: exactly one commit wins each race."""
    a, b = PostgresStore(postgres_url, pool_size=2), PostgresStore(postgres_url, pool_size=2)
    try:
        base_d, base_b = obj(b"base")
        assert a.commit({base_d: base_b}, [RefUpdate("head", None, base_d)])
        racers = [store for _ in range(3) for store in (a, b)]
        head = base_d
        for rnd in range(40):
            barrier = threading.Barrier(len(racers))
            results: list = [None] * len(racers)

            def race(k, store):
                d, data = obj(f"round {rnd} racer {k}".encode())
                barrier.wait()
                moved = store.commit({d: data}, [RefUpdate("head", head, d)])
                # and the creation race: expected None on a ref that nobody has made yet
                results[k] = (moved, store.commit({}, [RefUpdate(f"new/{rnd}", None, d)]))

            threads = [threading.Thread(target=race, args=(k, s)) for k, s in enumerate(racers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            moves = [m for m, _ in results]
            creations = [c for _, c in results]
            assert moves.count(True) == 1, f"round {rnd}: {moves}"
            assert creations.count(True) == 1, f"round {rnd}: {creations}"
            winner = moves.index(True)
            head = digest(f"round {rnd} racer {winner}".encode())
            assert a.ref("head") == b.ref("head") == head
            loser = (winner + 1) % len(racers)
            assert not b.has(digest(f"round {rnd} racer {loser}".encode()))  # losers wrote nothing
        assert len(list(a.refs("new/"))) == 40
    finally:
        a.close()
        b.close()


def test_creator_waits_for_an_uncommitted_creator(postgres_url):
    """A commit that creates a ref while another transaction holds that ref's lock waits,
    then sees the other's result: the second creator loses."""
    with PostgresStore(postgres_url) as s:
        d, b = obj(b"first")
        with psycopg.connect(postgres_url, autocommit=True) as other:
            with other.transaction():
                other.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)",
                              (pgs.REF_LOCK_SPACE, pgs.lock_key("fresh")))
                other.execute("INSERT INTO lattice_refs VALUES ('fresh', %b)", (d,))
                other.execute("INSERT INTO lattice_objects VALUES (%b, %b)", (d, b))
                fut = s.submit({}, [RefUpdate("fresh", None, digest(b"second"))])
                time.sleep(0.2)
                assert not fut.done()  # blocked on the lock, not deciding on a stale read
        assert fut.result(5) is False
        assert s.ref("fresh") == d


# ---------------------------------------------------------- group commit


def test_group_commit_keeps_each_commit_all_or_none(postgres_url, monkeypatch):
    """Requests queued while the writer is busy share one transaction; one whose CAS fails
    writes nothing, the others (before and after it) land."""
    with PostgresStore(postgres_url) as s:
        release, groups = threading.Event(), []
        real_apply = s._apply

        def slow_apply(conn, group):
            groups.append(len(group))
            if len(groups) == 1:
                assert release.wait(5)
            return real_apply(conn, group)

        monkeypatch.setattr(s, "_apply", slow_apply)
        d0, b0 = obj(b"first")
        first = s.submit({d0: b0}, [RefUpdate("seq", None, d0)])
        wait_until(lambda: groups)
        # the writer is inside the first group: queue a chain, a conflicting multi-ref commit, more
        chain = [d0] + [obj(f"step {i}".encode())[0] for i in range(5)]
        futures = [s.submit({chain[i + 1]: f"step {i}".encode()}, [RefUpdate("seq", chain[i], chain[i + 1])])
                   for i in range(5)]
        bad_d, bad_b = obj(b"never")
        futures.append(s.submit({bad_d: bad_b}, [RefUpdate("other", None, bad_d), RefUpdate("seq", d0, bad_d)]))
        ok_d, ok_b = obj(b"independent")
        futures.append(s.submit({ok_d: ok_b}, [RefUpdate("independent", None, ok_d)]))
        release.set()
        assert first.result(5) is True
        assert [f.result(5) for f in futures] == [True] * 5 + [False, True]
        assert groups == [1, 7]
        assert s.ref("seq") == chain[-1]
        assert s.ref("other") is None and not s.has(bad_d)
        assert s.ref("independent") == ok_d and s.get(ok_d) == ok_b


def test_group_with_a_database_error_is_retried_one_by_one(postgres_url, monkeypatch):
    """A request the database rejects (an index entry too big) fails alone; its group-mates land."""
    monkeypatch.setattr(pgs, "MAX_REF_BYTES", 1 << 20)  # let the too-long name reach the server
    with PostgresStore(postgres_url) as s:
        release, groups = threading.Event(), []
        real_apply = s._apply

        def slow_apply(conn, group):
            groups.append(len(group))
            if len(groups) == 1:
                assert release.wait(5)
            return real_apply(conn, group)

        monkeypatch.setattr(s, "_apply", slow_apply)
        d, b = obj(b"v")
        first = s.submit({d: b}, [RefUpdate("a", None, d)])
        wait_until(lambda: groups)
        huge = os.urandom(6000).hex()  # incompressible: over the B-tree entry limit
        good1 = s.submit({}, [RefUpdate("b", None, d)])
        bad = s.submit({}, [RefUpdate(huge, None, d)])
        good2 = s.submit({}, [RefUpdate("c", None, d)])
        release.set()
        assert first.result(5) and good1.result(5) and good2.result(5)
        with pytest.raises(InvalidValue) as info:
            bad.result(5)
        assert "SQLSTATE 54000" in info.value.message
        assert isinstance(info.value.__cause__, psycopg.Error)
        assert groups == [1, 3, 1, 1, 1]
        assert [n for n, _ in s.refs()] == ["a", "b", "c"]


async def test_acommit_does_not_block_the_event_loop(postgres_url):
    """While a commit waits for a ref lock held elsewhere, the loop keeps running."""
    with PostgresStore(postgres_url) as s:
        d, b = obj(b"v")
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        with psycopg.connect(postgres_url, autocommit=True) as other:
            with other.transaction():
                other.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)",
                              (pgs.REF_LOCK_SPACE, pgs.lock_key("main")))
                pending = asyncio.ensure_future(s.acommit({d: b}, [RefUpdate("main", None, d)]))
                await asyncio.sleep(0.3)
                assert not pending.done()
                assert ticks >= 10
        assert await pending is True
        t.cancel()
        assert s.ref("main") == d


async def test_cancelled_acommit_is_withdrawn_if_still_queued(postgres_url, monkeypatch):
    with PostgresStore(postgres_url) as s:
        release, busy = threading.Event(), threading.Event()
        real_apply = s._apply

        def slow_apply(conn, group):
            busy.set()
            assert release.wait(5)
            return real_apply(conn, group)

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
        assert s.ref("b") is None and not s.has(d2)
        assert s.ref("a") == d1


# ------------------------------------------------- errors and connections


def test_rehash_on_read_names_the_digest(postgres_url):
    with PostgresStore(postgres_url) as s:
        d, b = obj(b"precious")
        s.commit({d: b}, [])
        sql(postgres_url, "UPDATE lattice_objects SET data = 'tampered'::bytea WHERE digest = %b", (d,))
        with pytest.raises(CorruptObject, match=d.hex()):
            s.get(d)


def test_ref_name_limits(postgres_url):
    with PostgresStore(postgres_url) as s:
        d, b = obj(b"v")
        for name in ("nul\x00inside", "bad\ud800", "x" * (pg.MAX_REF_BYTES + 1)):
            with pytest.raises(InvalidValue):
                s.commit({d: b}, [RefUpdate(name, None, d)])
            assert s.ref(name) is None
            assert list(s.refs(name)) == []
        assert not s.has(d)
        assert s.commit({d: b}, [RefUpdate("x" * pg.MAX_REF_BYTES, None, d)])
        assert s.ref("x" * pg.MAX_REF_BYTES) == d
        # LIKE's wildcards in a prefix are literal
        s.commit({}, [RefUpdate("a%b", None, d), RefUpdate("a_c", None, d), RefUpdate("axb", None, d),
                      RefUpdate("a\\d", None, d)])
        assert [n for n, _ in s.refs("a%")] == ["a%b"]
        assert [n for n, _ in s.refs("a_")] == ["a_c"]
        assert [n for n, _ in s.refs("a\\")] == ["a\\d"]


def test_open_errors_are_store_errors(postgres_server):
    head = postgres_server.rpartition("/")[0]
    with pytest.raises(StoreError, match="does not exist") as info:
        PostgresStore(f"{head}/no_such_database")
    assert isinstance(info.value.__cause__, psycopg.Error)
    with pytest.raises(StoreError):
        PostgresStore("postgresql://postgres@127.0.0.1:1/x")  # nothing listens on port 1
    with pytest.raises(StoreError):
        PostgresStore("postgresql://127.0.0.1/x?no_such_option=1")
    with pytest.raises(InvalidValue):
        PostgresStore(postgres_server, pool_size=0)


def test_map_error_by_sqlstate_class():
    for state, cls in [("22021", InvalidValue), ("54000", InvalidValue), ("08006", StoreError),
                       ("40P01", StoreError), ("42501", StoreError), ("53300", StoreError), (None, StoreError)]:
        e = psycopg.errors.lookup(state)(f"fake {state}") if state else psycopg.OperationalError("no state")
        assert e.sqlstate == state
        err = map_error(e, "commit")
        assert type(err) is cls, state
        assert err.__cause__ is e
        assert "PostgreSQL commit failed" in err.message
        if state:
            assert f"SQLSTATE {state}" in err.message


def test_reads_and_commits_survive_killed_connections(postgres_url):
    """A server that drops every connection (restart, failover, pooler) costs one retry, not an error."""
    with PostgresStore(postgres_url, pool_size=2) as s:
        d, b = obj(b"before")
        assert s.commit({d: b}, [RefUpdate("r", None, d)])
        assert s.get(d) == b
        killed = sql(postgres_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert killed and all(ok for (ok,) in killed)
        assert s.get(d) == b
        assert s.ref("r") == d
        d2, b2 = obj(b"after")
        assert s.commit({d2: b2}, [RefUpdate("r", d, d2)])
        assert s.ref("r") == d2


def test_no_server_side_prepared_statements(postgres_url):
    """Transaction-mode poolers (pgbouncer) break named prepared statements: none are made."""
    with PostgresStore(postgres_url, pool_size=1) as s:
        d, b = obj(b"v")
        for i in range(20):  # past psycopg's default prepare threshold (5)
            s.commit({d: b}, [RefUpdate(f"r{i}", None, d)])
            s.get(d), s.has(d), s.ref(f"r{i}"), list(s.refs("r"))
        with s._pool.connection() as conn:
            assert conn.prepare_threshold is None
            assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_stats_and_password_redaction(postgres_url):
    with PostgresStore(postgres_url, pool_size=3) as s:
        d, b = obj(b"v")
        s.commit({d: b}, [RefUpdate("a", None, d), RefUpdate("b", None, d)])
        st = s.stats()
        assert st["objects"] == 1 and st["refs"] == 2
        assert st["schema_version"] == SCHEMA_VERSION
        assert st["pool_size"] == 3 and 1 <= st["pool_open"] <= 3
        assert st["used_bytes"] > 0
        assert st["url"] == postgres_url
    assert pgs.redact("postgresql://u:s3cret@h:5/db") == "postgresql://u:***@h:5/db"
    assert pgs.redact("postgresql://h/db?password=s3cret&x=1") == "postgresql://h/db?password=***&x=1"


def test_close_is_idempotent_and_final(postgres_url):
    s = PostgresStore(postgres_url)
    d, b = obj(b"v")
    s.commit({d: b}, [])
    s.close()
    s.close()
    for call in (lambda: s.get(d), lambda: s.has(d), lambda: s.ref("x"), lambda: s.refs(),
                 lambda: s.stats(), lambda: s.commit({}, [])):
        with pytest.raises(StoreError, match="closed"):
            call()
    with pytest.raises(StoreError):
        asyncio.run(s.acommit({}, []))
    assert not s._thread.is_alive()
    assert s._pool.closed


def test_missing_postgres_is_a_clear_error(monkeypatch):
    """Without binaries the fixtures fail (CI must run these tests) with a message saying what to install."""
    monkeypatch.setattr(tests.pg.shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(tests.pg.glob, "glob", lambda pattern: [])
    with pytest.raises(PostgresMissing, match="apt-get install -y postgresql"):
        find_bin()
