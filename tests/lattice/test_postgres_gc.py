"""Garbage collection on PostgreSQL beyond the store contract: several stores (as several processes)
share the barrier and the generation through the database; one collection at a time; a dead
collector is taken over; a sweep waits for a commit in flight; migration from schema 1; compact."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

import lattice.postgres_support as pgs
from lattice.codec import Link, encode
from lattice.digest import digest
from lattice.errors import StoreError
from lattice.gc import collect, mark
from lattice.layout import BLOB
from lattice.postgres import PostgresStore
from lattice.store import RefUpdate
from tests.lattice.test_postgres import obj, sql


@pytest.fixture
def two(postgres_url):
    """Two stores on one database: two pools, as two server processes would have."""
    a, b = PostgresStore(postgres_url, pool_size=3), PostgresStore(postgres_url, pool_size=3)
    yield a, b
    a.close()
    b.close()


def test_what_another_process_commits_during_a_collection_is_protected(two, postgres_url):
    a, b = two
    old_d, old = obj(b"only reachable through a ref that goes away during the collection")
    assert b.commit({old_d: old}, [RefUpdate("old", None, old_d)])
    a.gc_begin()
    assert sql(postgres_url, "SELECT active FROM lattice_gc") == [(True,)]
    live = mark(a, [d for _, d in a.refs("")])
    # meanwhile, in the other process: the ref goes, and a new tree links to the object (read before)
    new = encode({"x": Link(BLOB, old_d)})
    new_d = digest(new)
    assert b.commit({new_d: new}, [RefUpdate("old", old_d, None), RefUpdate("new", None, new_d)])
    assert {bytes(d) for (d,) in sql(postgres_url, "SELECT digest FROM lattice_gc_protected")} == {new_d}
    assert a.gc_sweep(live) == (0, 0)
    assert b.get(old_d) == old and b.get(new_d) == new
    assert sql(postgres_url, "SELECT active, generation FROM lattice_gc") == [(False, 1)]
    assert sql(postgres_url, "SELECT count(*) FROM lattice_gc_protected") == [(0,)]
    assert b.commit({}, [RefUpdate("new", new_d, None)])
    assert sql(postgres_url, "SELECT count(*) FROM lattice_gc_protected") == [(0,)]  # no collection: no rows
    assert collect(a).freed == 2
    assert not b.has(old_d) and not b.has(new_d)


def test_another_process_learns_the_generation_from_its_next_commit(two):
    """A store that did not sweep holds an older generation: a commit with it is refused once
    (as a lost race), and the store has the new value for the retry."""
    a, b = two
    d, data = obj(b"read before the sweep")
    gen = b.generation
    assert collect(a).refs == 0 and a.generation == gen + 1
    assert b.generation == gen  # not told yet
    assert b.commit({d: data}, [RefUpdate("r", None, d)], generation=b.generation) is False
    assert b.ref("r") is None and not b.has(d)
    assert b.generation == gen + 1
    assert b.commit({d: data}, [RefUpdate("r", None, d)], generation=b.generation) is True
    # a store opened after the sweep starts with the database's value
    with PostgresStore(a._dsn, pool_size=1) as c:
        assert c.generation == gen + 1


def test_one_collection_at_a_time_per_database(two):
    a, b = two
    a.gc_begin()
    with pytest.raises(StoreError, match="another garbage collection is running"):
        b.gc_begin()
    with pytest.raises(StoreError, match="already running .* in this process"):
        a.gc_begin()
    a.gc_sweep(set())
    b.gc_begin()  # free again
    assert b.gc_sweep(None) == (0, 0)
    with pytest.raises(StoreError, match="without gc_begin"):
        b.gc_sweep(set())


def test_a_dead_collector_is_taken_over_and_its_sweep_refused(two, postgres_url):
    a, b = two
    d, data = obj(b"garbage")
    assert a.commit({d: data}, [])
    a.gc_begin()
    run = a._gc_run
    run.owner.close()  # its process died: the connection and the collection's lock go with it
    b.gc_begin()  # finds the barrier on, starts over with its own token
    assert b.commit({}, [RefUpdate("x", None, d)])  # protected by b's collection
    with pytest.raises(StoreError, match="taken over"):
        a.gc_sweep(set())  # the dead one's sweep, were its process still alive: refused
    assert a.has(d)
    assert sql(postgres_url, "SELECT active FROM lattice_gc") == [(True,)]  # b's barrier stays on
    assert b.gc_sweep(set()) == (0, 0)  # the object is protected by b's barrier and the ref
    assert a.has(d)


def test_a_sweep_waits_for_a_commit_in_flight(two, postgres_url):
    """A transaction of a commit holds the collection's lock shared: the sweep waits for it to
    commit, then sees its ref."""
    a, _ = two
    d, data = obj(b"committed by a transaction in flight during the sweep")
    a.gc_begin()
    live = mark(a, [])
    done = []
    with psycopg.connect(postgres_url, autocommit=True) as other:
        with other.transaction():
            other.execute("SELECT pg_advisory_xact_lock_shared(%s::int4, 0)", (pgs.GC_LOCK_SPACE,))
            other.execute("INSERT INTO lattice_objects VALUES (%b, %b)", (d, data))
            other.execute("INSERT INTO lattice_refs VALUES ('late', %b)", (d,))
            sweeper = threading.Thread(target=lambda: done.append(a.gc_sweep(live)))
            sweeper.start()
            time.sleep(0.3)
            assert not done  # waiting for the commit
        sweeper.join(10)
    assert done == [(0, 0)]
    assert a.get(d) == data


def test_a_schema_1_database_is_migrated_and_collects(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE lattice_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL "
                     "DEFAULT now(), applied_by text NOT NULL)")
        for statement in pgs.MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO lattice_schema (version, applied_by) VALUES (1, 'agent-lattice 0.1')")
        keep_d, keep = obj(b"kept")
        drop_d, drop = obj(b"dropped")
        conn.execute("INSERT INTO lattice_objects VALUES (%b, %b), (%b, %b)", (keep_d, keep, drop_d, drop))
        conn.execute("INSERT INTO lattice_refs VALUES ('main', %b)", (keep_d,))
    with PostgresStore(postgres_url) as s:
        assert s.schema_version == 2 and s.generation == 0
        report = collect(s)
        assert (report.freed, report.freed_bytes) == (1, len(drop))
        assert s.get(keep_d) == keep and not s.has(drop_d)


def test_compact_vacuums_and_gives_back_space(postgres_url):
    with PostgresStore(postgres_url) as s:
        items = [obj(bytes([i % 251]) * 3000 + str(i).encode()) for i in range(2000)]
        assert s.commit(dict(items), [RefUpdate("one", None, items[0][0])])
        assert collect(s).freed == len(items) - 1
        before, after = s.compact()  # plain VACUUM: beside the servers
        assert before > 0 and after <= before
        before, after = s.compact(full=True)
        assert after < before / 4, (before, after)
        assert s.get(items[0][0]) == items[0][1]
