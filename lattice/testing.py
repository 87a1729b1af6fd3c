"""The store contract: one test suite that every backend of the store port runs.

This is a **test-support module**: it imports ``pytest`` (which the rest of
:mod:`lattice` does not need), so import it only from tests. As with dulwich's
``ObjectStoreTests`` mixin, a backend's test module subclasses
:class:`StoreContract` once and pytest collects every contract test for it::

    from lattice.testing import StoreContract

    class TestPostgresStore(StoreContract):
        def make_store(self, path):
            return PostgresStore(DSN)  # a new, empty store

The base class has no ``Test`` prefix, so pytest does not collect it on its
own; name the subclass ``Test...``. Backend-specific tests can live in the same
subclass. The suite needs only ``pytest`` (no pytest-asyncio: the tests of
``acommit`` drive their own event loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import threading
from pathlib import Path
from typing import Iterator

import pytest

from .digest import digest
from .errors import CorruptObject, InvalidValue, NotFound
from .store import RefUpdate, Store, read_refs

__all__ = ["StoreContract"]


def _obj(data: bytes) -> tuple[bytes, bytes]:
    return digest(data), data


class StoreContract:
    """The contract of :class:`lattice.store.Store`, as pytest tests a backend inherits.

    Hooks a subclass provides:

    * :meth:`make_store` (required): a new, empty store.
    * :meth:`reopen_store` (optional): open again, after it was closed, the
      store that ``make_store(path)`` made; the durability test needs it.
    * :meth:`corrupt_object` (optional): overwrite stored bytes behind the
      store's back; the re-hash-on-read test needs it.

    A test that needs an optional hook the subclass does not define is skipped,
    with the hook's name as the reason. Every store a hook returns is closed at
    teardown, possibly after the test (or a hook) closed it already: ``close``
    must be idempotent.

    Fixtures: ``store`` (from :meth:`make_store`) and ``store_path`` (a fresh,
    not yet existing directory, one per test; a backend that does not live in
    a directory ignores it).
    """

    # ------------------------------------------------------------ hooks

    def make_store(self, path: Path) -> Store:
        """Return a new, empty store (required).

        Args:
            path: a fresh directory path for this test (it does not exist yet);
                backends that do not live in a directory ignore it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define make_store(path)")

    def reopen_store(self, path: Path) -> Store:
        """Return the store ``make_store(path)`` made, opened again after it was closed (optional).

        Everything committed before the close must be readable from the
        returned store.
        """
        raise NotImplementedError

    def corrupt_object(self, store: Store, path: Path, d: bytes, data: bytes) -> Store:
        """Make the object stored under ``d`` hold ``data`` instead, bypassing every check (optional).

        Args:
            store: the open store (from ``make_store(path)``) holding ``d``.
            path: the path it was made with.
            d: the digest of a stored object.
            data: the bytes to store under ``d`` (they do not hash to ``d``).

        Returns:
            The store to read from afterwards: ``store`` itself, or (for a
            backend that must close to tamper) a reopened one.
        """
        raise NotImplementedError

    def _require(self, hook: str) -> None:
        """Skip the current test when the subclass does not define ``hook``."""
        if getattr(type(self), hook) is getattr(StoreContract, hook):
            pytest.skip(f"{type(self).__name__} does not provide {hook}()")

    def _track(self, store: Store) -> Store:
        self._stores.append(store)
        return store

    # ---------------------------------------------------------- fixtures

    @pytest.fixture
    def store_path(self, tmp_path: Path) -> Path:
        return tmp_path / "store"

    @pytest.fixture
    def store(self, store_path: Path) -> Iterator[Store]:
        self._stores: list[Store] = []
        try:
            yield self._track(self.make_store(store_path))
        finally:
            closed: set[int] = set()
            for s in reversed(self._stores):
                if id(s) not in closed:
                    closed.add(id(s))
                    s.close()

    # ----------------------------------------------------------- objects

    def test_implements_port(self, store):
        assert isinstance(store, Store)

    def test_put_get_round_trip(self, store):
        d1, b1 = _obj(b"hello")
        d2, b2 = _obj(b"")  # empty object is a valid object, distinct from "missing"
        d3, b3 = _obj(os.urandom(100_000))
        assert store.commit({d1: b1, d2: b2, d3: b3}, []) is True
        assert store.get(d1) == b1
        assert store.get(d2) == b""
        assert store.get(d3) == b3
        assert type(store.get(d1)) is bytes

    def test_recommitting_an_object_is_harmless(self, store):
        d, b = _obj(b"same")
        assert store.commit({d: b}, [])
        assert store.commit({d: b}, [])
        assert store.get(d) == b

    def test_get_missing_raises_not_found(self, store):
        with pytest.raises(NotFound):
            store.get(digest(b"never stored"))

    def test_has(self, store):
        d, b = _obj(b"x")
        assert not store.has(d)
        store.commit({d: b}, [])
        assert store.has(d)
        assert not store.has(digest(b"y"))

    def test_corrupt_object_detected_on_get(self, store, store_path):
        self._require("corrupt_object")
        d, b = _obj(b"precious")
        store.commit({d: b}, [])
        s = self._track(self.corrupt_object(store, store_path, d, b"tampered"))
        assert s.has(d)
        with pytest.raises(CorruptObject):
            s.get(d)

    def test_stored_bytes_are_immutable(self, store):
        buf = bytearray(b"original")
        d = digest(bytes(buf))
        store.commit({d: buf}, [])
        buf[:] = b"mutated!"
        assert store.get(d) == b"original"

    # ------------------------------------------------ validation of commit

    def test_wrong_digest_is_invalid_and_writes_nothing(self, store):
        good_d, good_b = _obj(b"good")
        bad_d = digest(b"other")
        with pytest.raises(InvalidValue):
            store.commit({good_d: good_b, bad_d: b"not other"}, [RefUpdate("r", None, good_d)])
        assert not store.has(good_d)
        assert not store.has(bad_d)
        assert store.ref("r") is None

    def test_short_digest_key_is_invalid(self, store):
        with pytest.raises(InvalidValue):
            store.commit({b"short": b"short"}, [])

    def test_empty_ref_name_is_invalid(self, store):
        d, b = _obj(b"v")
        with pytest.raises(InvalidValue):
            store.commit({d: b}, [RefUpdate("", None, d)])
        assert not store.has(d)

    def test_duplicate_ref_in_one_commit_is_invalid(self, store):
        d, b = _obj(b"v")
        with pytest.raises(InvalidValue):
            store.commit({d: b}, [RefUpdate("r", None, d), RefUpdate("r", None, d)])
        assert store.ref("r") is None
        assert not store.has(d)

    # -------------------------------------------------- refs and their CAS

    def test_cas_create_with_expected_none(self, store):
        d, b = _obj(b"v1")
        assert store.ref("main") is None
        assert store.commit({d: b}, [RefUpdate("main", None, d)]) is True
        assert store.ref("main") == d
        # creating again with expected=None fails: the ref exists now
        d2, b2 = _obj(b"v2")
        assert store.commit({d2: b2}, [RefUpdate("main", None, d2)]) is False
        assert store.ref("main") == d
        assert not store.has(d2)

    def test_cas_wrong_expected_writes_nothing(self, store):
        d1, b1 = _obj(b"v1")
        store.commit({d1: b1}, [RefUpdate("main", None, d1)])
        d2, b2 = _obj(b"v2")
        assert store.commit({d2: b2}, [RefUpdate("main", digest(b"stale"), d2), RefUpdate("other", None, d2)]) is False
        assert store.ref("main") == d1
        assert store.ref("other") is None
        assert not store.has(d2)
        # the right expected moves it
        assert store.commit({d2: b2}, [RefUpdate("main", d1, d2)]) is True
        assert store.ref("main") == d2

    def test_multi_ref_commit_is_all_or_none(self, store):
        d1, b1 = _obj(b"a")
        store.commit({d1: b1}, [RefUpdate("a", None, d1), RefUpdate("b", None, d1)])
        d2, b2 = _obj(b"b")
        # first update matches, second does not: neither applies
        ups = [RefUpdate("a", d1, d2), RefUpdate("b", d2, d2), RefUpdate("c", None, d2)]
        assert store.commit({d2: b2}, ups) is False
        assert (store.ref("a"), store.ref("b"), store.ref("c")) == (d1, d1, None)
        assert not store.has(d2)
        ups = [RefUpdate("a", d1, d2), RefUpdate("b", d1, d2), RefUpdate("c", None, d2)]
        assert store.commit({d2: b2}, ups) is True
        assert (store.ref("a"), store.ref("b"), store.ref("c")) == (d2, d2, d2)

    def test_delete_ref(self, store):
        d, b = _obj(b"v")
        store.commit({d: b}, [RefUpdate("gone", None, d)])
        assert store.commit({}, [RefUpdate("gone", d, None)]) is True
        assert store.ref("gone") is None
        assert list(store.refs()) == []
        assert store.has(d)  # objects are never deleted by ref updates
        # deleting with a wrong expected fails
        store.commit({}, [RefUpdate("kept", None, d)])
        assert store.commit({}, [RefUpdate("kept", None, None)]) is False
        assert store.ref("kept") == d

    def test_refs_prefix_order_and_boundary(self, store):
        d, b = _obj(b"v")
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

    def test_read_refs_reads_names_and_prefixes_at_once(self, store):
        d, b = _obj(b"v")
        e, c = _obj(b"w")
        names = ["t/x", "t/x@1", "t/x@2", "t/x!3", "t/x?", "t/x2", "t/x#n", "t/x_", "t/x%", "t/y"]
        store.commit({d: b, e: c}, [RefUpdate(n, None, e if n == "t/x?" else d) for n in names])
        got = read_refs(store, ["t/x?", "t/x", "t/missing", "t/x_"], ["t/x@", "t/x!", "t/z", "t/x%"])
        assert got == {"t/x?": e, "t/x": d, "t/x@1": d, "t/x@2": d, "t/x!3": d, "t/x_": d, "t/x%": d}
        assert read_refs(store, [], []) == {} and read_refs(store, ["nope"], ["_", "%"]) == {}
        assert hasattr(store, "read_refs")  # every backend reads them as one snapshot

    def test_refs_is_a_snapshot(self, store):
        d, b = _obj(b"v")
        store.commit({d: b}, [RefUpdate("p/1", None, d), RefUpdate("p/2", None, d)])
        it = store.refs("p/")
        assert next(it)[0] == "p/1"
        store.commit({}, [RefUpdate("p/2", d, None), RefUpdate("p/3", None, d)])
        assert [n for n, _ in it] == ["p/2"]

    def test_random_commits_agree_with_a_dict_model(self, store):
        """Seeded random commits (several objects and CAS updates each, some stale, some
        invalid) give the same results, refs and objects as a dict model."""
        rnd = random.Random(20240601)
        names = ["a", "a/1", "a/2", "ab", "b/\u00e9", "c/\U0001f600"]
        pool = [_obj(f"object {i}".encode() * (i + 1)) for i in range(24)]
        refs: dict[str, bytes] = {}
        stored: set[bytes] = set()
        for step in range(300):
            objects = dict(rnd.sample(pool, rnd.randint(0, 3)))
            updates = []
            for name in rnd.sample(names, rnd.randint(0, 3)):
                current = refs.get(name)
                expected = current if rnd.random() < 0.75 else rnd.choice([None, rnd.choice(pool)[0]])
                new = None if rnd.random() < 0.15 else rnd.choice(pool)[0]
                updates.append(RefUpdate(name, expected, new))
            invalid = rnd.random() < 0.05
            if invalid:
                objects[rnd.choice(pool)[0]] = b"not its bytes"
                with pytest.raises(InvalidValue):
                    store.commit(objects, updates)
            else:
                ok = all(refs.get(u.name) == u.expected for u in updates)
                assert store.commit(objects, updates) is ok, f"step {step}: {updates}"
                if ok:
                    stored.update(objects)
                    for u in updates:
                        if u.new is None:
                            refs.pop(u.name, None)
                        else:
                            refs[u.name] = u.new
            assert list(store.refs()) == sorted(refs.items()), f"step {step}"
            assert list(store.refs("a/")) == sorted((n, d) for n, d in refs.items() if n.startswith("a/"))
            assert {d for d, _ in pool if store.has(d)} == stored, f"step {step}"
        for d in stored:
            assert store.get(d) == dict(pool)[d]

    # --------------------------------------------------------- durability

    def test_data_survives_reopen(self, store, store_path):
        self._require("reopen_store")
        d, b = _obj(b"durable")
        store.commit({d: b}, [RefUpdate("main", None, d), RefUpdate("x/y", None, d)])
        store.close()
        s = self._track(self.reopen_store(store_path))
        assert s.get(d) == b
        assert s.ref("main") == d
        assert list(s.refs()) == [("main", d), ("x/y", d)]

    # ------------------------------------------------------- concurrency

    def test_acommit_on_event_loop(self, store):
        async def run():
            d, b = _obj(b"async")
            assert await store.acommit({d: b}, [RefUpdate("main", None, d)]) is True
            assert store.get(d) == b
            assert store.ref("main") == d
            assert await store.acommit({}, [RefUpdate("main", None, d)]) is False
            with pytest.raises(InvalidValue):
                await store.acommit({digest(b"x"): b"y"}, [])

        asyncio.run(run())

    def test_concurrent_acommits_on_one_ref_exactly_one_wins(self, store):
        async def run():
            base_d, base_b = _obj(b"base")
            assert await store.acommit({base_d: base_b}, [RefUpdate("head", None, base_d)])
            candidates = [_obj(f"candidate {i}".encode()) for i in range(50)]
            results = await asyncio.gather(
                *(store.acommit({d: b}, [RefUpdate("head", base_d, d)]) for d, b in candidates)
            )
            assert sum(results) == 1
            winner = candidates[results.index(True)][0]
            assert store.ref("head") == winner
            for (d, _), ok in zip(candidates, results):
                assert store.has(d) is ok  # losers wrote nothing

        asyncio.run(run())

    def test_threads_racing_on_one_ref_exactly_one_wins(self, store):
        base_d, base_b = _obj(b"base")
        store.commit({base_d: base_b}, [RefUpdate("head", None, base_d)])
        results = [None] * 16
        barrier = threading.Barrier(len(results))

        def run(i):
            d, b = _obj(f"thread {i}".encode())
            barrier.wait()
            results[i] = store.commit({d: b}, [RefUpdate("head", base_d, d)])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1

    def test_commits_from_many_threads_all_land(self, store):
        n_threads, per_thread = 8, 25
        barrier = threading.Barrier(n_threads)
        failures = []

        def run(t):
            barrier.wait()
            for i in range(per_thread):
                d, b = _obj(f"{t}/{i}".encode())
                if not store.commit({d: b}, [RefUpdate(f"t/{t}/{i:03}", None, d)]):
                    failures.append((t, i))

        threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert len(list(store.refs("t/"))) == n_threads * per_thread
        for t in range(n_threads):
            for i in range(per_thread):
                assert store.get(store.ref(f"t/{t}/{i:03}")) == f"{t}/{i}".encode()

    def test_submit_queues_in_order_and_resolves_to_the_commit_result(self, store):
        """``submit`` returns a future at once; commits submitted one after the other apply in
        that order, so a chain planned on top of commits still in flight lands whole."""
        d0, b0 = _obj(b"submitted 0")
        chain = [(d0, b0)] + [_obj(f"submitted {i}".encode()) for i in range(1, 12)]
        futures = [store.submit({d0: b0}, [RefUpdate("chain", None, d0)])]
        for (prev, _), (d, b) in zip(chain, chain[1:]):
            futures.append(store.submit({d: b}, [RefUpdate("chain", prev, d)]))
        stale_d, stale_b = _obj(b"planned on a head that moved")
        futures.append(store.submit({stale_d: stale_b}, [RefUpdate("chain", d0, stale_d)]))
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        assert [f.result(10) for f in futures] == [True] * len(chain) + [False]
        assert store.ref("chain") == chain[-1][0] and not store.has(stale_d)
        assert all(store.get(d) == b for d, b in chain)
        with pytest.raises(InvalidValue):  # refused at once: nothing queued
            store.submit({digest(b"x"): b"y"}, [RefUpdate("bad", None, d0)])
        assert store.ref("bad") is None

    # ------------------------------------------------- garbage collection
    # A backend that collects garbage (lattice.gc) has gc_begin, gc_sweep, objects and
    # generation; these tests are skipped for one that does not.

    def _gc(self, store):
        if not hasattr(store, "gc_sweep"):
            pytest.skip(f"{type(store).__name__} has no garbage collector")
        return store

    def test_gc_frees_exactly_what_no_ref_reaches(self, store):
        from .codec import Link, encode
        from .gc import collect
        from .layout import BLOB, NODE
        self._gc(store)
        leaf_d, leaf = _obj(b"leaf shared by both trees")
        node = encode({"a": Link(BLOB, leaf_d)})
        node_d = digest(node)
        other = encode({"b": Link(BLOB, leaf_d), "c": Link(NODE, node_d)})
        other_d = digest(other)
        lone_d, lone = _obj(b"reachable from nothing once its ref is gone")
        assert store.commit({leaf_d: leaf, node_d: node, other_d: other, lone_d: lone},
                            [RefUpdate("keep", None, node_d), RefUpdate("drop", None, lone_d),
                             RefUpdate("other", None, other_d)])
        assert store.commit({}, [RefUpdate("drop", lone_d, None), RefUpdate("other", other_d, None)])
        before = store.generation
        report = collect(store)
        assert (report.freed, report.freed_bytes) == (2, len(lone) + len(other))
        assert store.get(node_d) == node and store.get(leaf_d) == leaf  # reachable: kept
        for gone in (lone_d, other_d):
            assert not store.has(gone)
        assert store.generation == before + 1
        assert sorted(d for d, _ in store.objects()) == sorted([leaf_d, node_d])
        assert collect(store).freed == 0  # nothing more

    def test_a_commit_after_a_sweep_with_an_older_generation_is_refused(self, store):
        from .gc import collect
        self._gc(store)
        d, b = _obj(b"x")
        gen = store.generation
        collect(store)
        assert store.commit({d: b}, [RefUpdate("r", None, d)], generation=gen) is False
        assert store.ref("r") is None and not store.has(d)
        assert store.commit({d: b}, [RefUpdate("r", None, d)], generation=store.generation) is True
        assert asyncio.run(store.acommit({}, [RefUpdate("r", d, None)], generation=gen)) is False
        assert store.submit({}, [RefUpdate("r", d, None)], generation=gen).result(10) is False
        assert store.ref("r") == d
        assert store.submit({}, [RefUpdate("r", d, None)], generation=store.generation).result(10) is True

    def test_commits_during_a_collection_are_protected(self, store):
        """What lands between the barrier and the sweep survives it, even if the mark missed it."""
        from .codec import Link, encode
        from .gc import mark
        from .layout import BLOB
        self._gc(store)
        old_d, old = _obj(b"an object whose only ref goes away during the collection")
        assert store.commit({old_d: old}, [RefUpdate("old", None, old_d)])
        store.gc_begin()
        live = mark(store, [d for _, d in store.refs("")])
        # meanwhile: the old ref goes, and a new tree links to the old object (it was read
        # before the ref went), plus a ref to an existing object without writing anything
        new = encode({"x": Link(BLOB, old_d)})
        new_d = digest(new)
        assert store.commit({new_d: new}, [RefUpdate("old", old_d, None), RefUpdate("new", None, new_d)])
        freed, _ = store.gc_sweep(live)
        assert freed == 0 and store.get(old_d) == old and store.get(new_d) == new
        store.gc_begin()
        assert store.commit({}, [RefUpdate("alias", None, old_d)])  # a new name for an existing object
        assert store.commit({}, [RefUpdate("new", new_d, None)])
        store.gc_sweep(mark(store, []))  # a mark that saw nothing
        assert store.get(old_d) == old  # kept: the alias made it reachable during the collection
        assert not store.has(new_d)  # freed: unreachable, and nothing protected it

    def test_a_cancelled_collection_deletes_nothing(self, store):
        self._gc(store)
        d, b = _obj(b"orphan")
        assert store.commit({d: b}, [RefUpdate("r", None, d)])
        assert store.commit({}, [RefUpdate("r", d, None)])
        store.gc_begin()
        assert store.gc_sweep(None) == (0, 0)
        assert store.has(d)
