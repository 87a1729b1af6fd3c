"""The checkpoint tree on refs: branches, races, parked writes, rewrites, prune, copy, and the store stays whole."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the test extra")

from langgraph.checkpoint.conformance.test_utils import (  # noqa: E402
    generate_checkpoint, generate_config, generate_metadata,
)

from lattice.commits import read_commit  # noqa: E402
from lattice.fsck import fsck  # noqa: E402
from lattice.history import diff, resolve  # noqa: E402
from lattice.memory import MemoryStore  # noqa: E402
from lattice.nodes import Tx  # noqa: E402
from ops.langgraph import ConflictError, LatticeSaver  # noqa: E402
from ops.langgraph import saver as saver_module  # noqa: E402


def put(saver, tid, cid, parent=None, values=None, md=None, ns="", new=None):
    values = values or {}
    versions = {k: 1 for k in values}
    cp = generate_checkpoint(checkpoint_id=cid, channel_values=values, channel_versions=versions)
    return saver.put(generate_config(tid, checkpoint_ns=ns, checkpoint_id=parent), cp, md or generate_metadata(),
                     versions if new is None else new)


def ids(saver, tid, **kw):
    return [t.checkpoint["id"] for t in saver.list(generate_config(tid), **kw)]


def refs(store, prefix="t/"):
    return dict(store.refs(prefix))


def test_a_fork_is_a_branch_with_a_tip_ref(saver):
    for cid, parent in [("c1", None), ("c2", "c1"), ("c3", "c1")]:
        put(saver, "t", cid, parent)
    # a new branch also moves the namespace's version (see ops.langgraph.plans)
    assert set(refs(saver.store)) == {"t/local/t", "t/local/t@c2", "t/local/t?"}
    assert saver.get_tuple(generate_config("t")).checkpoint["id"] == "c3"
    assert ids(saver, "t") == ["c3", "c2", "c1"]
    version = saver.store.ref("t/local/t?")
    put(saver, "t", "c4", "c2")  # going on from the old branch: a leaf moved on, the version stays
    assert set(refs(saver.store)) == {"t/local/t", "t/local/t@c3", "t/local/t?"}
    assert saver.store.ref("t/local/t?") == version
    head = saver.store.ref("t/local/t")
    assert [read_commit(saver.store, d).input["id"] for d in _chain(saver.store, head)] == ["c4", "c2", "c1"]
    assert ids(saver, "t") == ["c4", "c3", "c2", "c1"]
    assert ids(saver, "t", before=generate_config("t", checkpoint_id="c3")) == ["c2", "c1"]
    assert fsck(saver.store).ok


def _chain(store, d):
    while d is not None:
        yield d
        d = read_commit(store, d).parent


class RacingStore:
    """A store whose next commit is preceded by ``hook()`` (another writer), or that always loses."""

    def __init__(self, inner, always_lose=False):
        self.inner, self.hook, self.always_lose, self.commits = inner, None, always_lose, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def commit(self, objects, updates, **kw):
        self.commits += 1
        if self.always_lose:
            return False
        if self.hook is not None:
            h, self.hook = self.hook, None
            h()
        return self.inner.commit(objects, updates, **kw)

    def submit(self, objects, updates, **kw):
        from lattice.store import submit_by_commit
        return submit_by_commit(self, objects, updates, **kw)


def test_two_writers_after_the_same_parent_both_land():
    store = MemoryStore()
    other = LatticeSaver(store)
    racing = RacingStore(store)
    mine = LatticeSaver(racing)
    put(other, "t", "c1")
    racing.hook = lambda: put(other, "t", "c3", "c1", values={"who": "other"})
    put(mine, "t", "c2", "c1", values={"who": "mine"})  # loses the race once, re-applies on the new head
    assert racing.commits == 2
    assert ids(mine, "t") == ["c3", "c2", "c1"]
    assert mine.get_tuple(generate_config("t", checkpoint_id="c2")).checkpoint["channel_values"] == {"who": "mine"}
    assert set(refs(store)) == {"t/local/t", "t/local/t@c2", "t/local/t?"}
    assert fsck(store).ok


def test_a_writer_that_always_loses_gets_a_conflict(monkeypatch):
    monkeypatch.setattr(saver_module, "MAX_RETRIES", 3)
    s = LatticeSaver(RacingStore(MemoryStore(), always_lose=True))
    with pytest.raises(ConflictError, match="3 lost"):
        put(s, "t", "c1")
    assert ConflictError.code == "conflict"


def test_writes_before_their_checkpoint_are_parked_then_joined(saver):
    put(saver, "t", "c1")
    cfg = generate_config("t", checkpoint_id="c2")
    saver.put_writes(cfg, [("ch", "early")], "task-1")
    assert "t/local/t!c2" in refs(saver.store)
    assert saver.get_tuple(cfg) is None
    put(saver, "t", "c2", "c1")
    assert saver.get_tuple(cfg).pending_writes == [("task-1", "ch", "early")]
    assert "t/local/t!c2" not in refs(saver.store)
    saver.put_writes(cfg, [("ch", "again")], "task-1")  # same (task, index): kept as first written
    saver.put_writes(cfg, [("__error__", "boom")], "task-1")
    saver.put_writes(cfg, [("__error__", "boom 2")], "task-1")  # a special write replaces
    assert saver.get_tuple(cfg).pending_writes == [("task-1", "__error__", "boom 2"), ("task-1", "ch", "early")]


def test_writes_on_a_checkpoint_with_children_rewrite_the_chain(saver):
    put(saver, "t", "c1")
    put(saver, "t", "c2", "c1")
    put(saver, "t", "c3", "c1")  # c2 is now a tip: both chains hold c1
    saver.put_writes(generate_config("t", checkpoint_id="c1"), [("x", 1)], "late", task_path="~a")
    assert saver.get_tuple(generate_config("t", checkpoint_id="c1")).pending_writes == [("late", "x", 1)]
    store = saver.store
    tx = Tx(store)
    for name in ("t/local/t", "t/local/t@c2"):
        top = read_commit(store, store.ref(name))
        base = read_commit(store, top.parent)
        assert base.input["id"] == "c1" and "pending_writes" in tx.load(base.root)
    assert read_commit(store, store.ref("t/local/t")).parent == read_commit(store, store.ref("t/local/t@c2")).parent
    assert saver.get_tuple(generate_config("t")).parent_config["configurable"]["checkpoint_id"] == "c1"
    assert fsck(store).ok


def test_delete_for_runs_moves_children_to_the_parent(saver):
    put(saver, "t", "c1", md=generate_metadata(run_id="a"))
    put(saver, "t", "c2", "c1", md=generate_metadata(run_id="b"))
    put(saver, "t", "c3", "c2", md=generate_metadata(run_id="a"))
    put(saver, "u", "d1", md=generate_metadata(run_id="a"))
    saver.delete_for_runs(["a"])
    assert ids(saver, "t") == ["c2"] and ids(saver, "u") == []
    c2 = saver.get_tuple(generate_config("t"))
    assert c2.parent_config["configurable"]["checkpoint_id"] == "c1"  # as LangGraph's savers keep it
    assert saver.get_tuple(c2.parent_config) is None
    assert read_commit(saver.store, saver.store.ref("t/local/t")).seq == 0
    assert "t/local/u" not in refs(saver.store)


def test_prune_keep_latest_keeps_delta_channel_ancestors(saver):
    put(saver, "t", "c1", values={"m": "snapshot"})
    md2 = generate_metadata(counters_since_delta_snapshot={"m": [1, 1]})
    put(saver, "t", "c2", "c1", md=md2, new={})
    put(saver, "t", "c3", "c2", md=generate_metadata(counters_since_delta_snapshot={"m": [2, 2]}), new={})
    put(saver, "t", "b1", "c1")  # a branch, pruned away
    put(saver, "p", "x1")
    put(saver, "p", "x2", "x1")
    saver.prune(["t", "p"], strategy="keep_latest")
    assert ids(saver, "t") == ["c3", "c2", "c1"]  # back to the checkpoint that stores m
    assert ids(saver, "p") == ["x2"]
    assert read_commit(saver.store, saver.store.ref("t/local/p")).parent is None
    saver.prune(["t"], strategy="delete")
    assert ids(saver, "t") == []
    with pytest.raises(ValueError, match="unknown prune strategy"):
        saver.prune(["p"], strategy="everything")


def test_copy_thread_writes_refs_only(saver):
    put(saver, "src", "c1", values={"a": "x" * 1000})
    put(saver, "src", "c2", "c1")
    put(saver, "src", "c3", "c1")
    put(saver, "src", "s1", ns="child:1")
    before = refs(saver.store)
    objects = _object_count(saver.store)
    saver.copy_thread("src", "dst")
    assert _object_count(saver.store) == objects
    after = refs(saver.store)
    assert {k.replace("/dst", "/src"): v for k, v in after.items() if k.startswith("t/local/dst")} == before
    every = [[t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": t}})] for t in ("src", "dst")]
    assert every[0] == every[1] == ["c3", "c2", "c1", "s1"]
    with pytest.raises(ValueError, match="has checkpoints"):
        saver.copy_thread("src", "dst")
    saver.copy_thread("missing", "dst2")
    assert ids(saver, "dst2") == []


def _object_count(store):
    return len(store) if isinstance(store, MemoryStore) else store.stats()["objects"]


def test_ids_out_of_order_still_found_and_listed(saver):
    put(saver, "t", "m")
    put(saver, "t", "b", "m")  # smaller than its parent: marked, lookups walk
    put(saver, "t", "z", "b")
    put(saver, "t", "a", "z")
    for cid in "mbza":
        assert saver.get_tuple(generate_config("t", checkpoint_id=cid)).checkpoint["id"] == cid
    assert saver.get_tuple(generate_config("t", checkpoint_id="q")) is None
    assert ids(saver, "t") == ["z", "m", "b", "a"]
    assert saver.get_tuple(generate_config("t")).checkpoint["id"] == "z"
    assert ids(saver, "t", before=generate_config("t", checkpoint_id="m")) == ["b", "a"]


def test_the_same_checkpoint_twice_is_replaced_in_place(saver):
    put(saver, "t", "c1")
    put(saver, "t", "c2", "c1", values={"v": 1})
    saver.put_writes(generate_config("t", checkpoint_id="c2"), [("w", 1)], "task")
    put(saver, "t", "c2", "c1", values={"v": 2})
    assert ids(saver, "t") == ["c2", "c1"]
    t = saver.get_tuple(generate_config("t"))
    assert t.checkpoint["channel_values"] == {"v": 2} and t.pending_writes == [("task", "w", 1)]


def test_versions_resolve_and_diff_work_on_a_thread_ref(saver):
    put(saver, "t", "c1", values={"messages": ["m0"]})
    put(saver, "t", "c2", "c1", values={"messages": ["m0", "m1"]}, new={"messages": 2})
    store = saver.store
    head = store.ref("t/local/t")
    d0, c0 = resolve(store, head, 0)
    assert c0.input["id"] == "c1"
    changes, _ = diff(Tx(store), c0.root, read_commit(store, head).root)
    paths = {c["path"] for c in changes}
    assert "channel_values/messages/1" in paths and "id" in paths


def test_unchanged_channels_reuse_the_parent_value(saver):
    big = {"doc": "y" * 5000}
    put(saver, "t", "c1", values={"big": big, "n": 1})
    n = len(saver.store) if isinstance(saver.store, MemoryStore) else None
    cp = generate_checkpoint(checkpoint_id="c2", channel_values={"big": big, "n": 2},
                             channel_versions={"big": 1, "n": 2})
    saver.put(generate_config("t", checkpoint_id="c1"), cp, generate_metadata(), {"n": 2})
    t = saver.get_tuple(generate_config("t"))
    assert t.checkpoint["channel_values"] == {"big": big, "n": 2}
    if n is not None:
        assert len(saver.store) - n <= 3  # commit, root, nothing of the big value


def test_with_allowlist_copy_shares_the_store(saver):
    clone = saver.with_allowlist([("my_module", "MyType")])
    put(clone, "t", "c1", values={"s": {1, 2}})
    assert saver.get_tuple(generate_config("t")).checkpoint["channel_values"] == {"s": {1, 2}}


def test_list_across_threads_and_namespaces(saver):
    put(saver, "a", "a1", md=generate_metadata(source="input"))
    put(saver, "a", "a2", "a1")
    put(saver, "a", "n1", ns="sub:1")
    put(saver, "b", "b1", md=generate_metadata(source="input"))
    every = [t.checkpoint["id"] for t in saver.list(None)]
    assert sorted(every) == ["a1", "a2", "b1", "n1"]
    assert [t.checkpoint["id"] for t in saver.list(None, filter={"source": "input"})] == ["a1", "b1"]
    assert [t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": "a"}})] == ["a2", "a1", "n1"]
    assert [t.checkpoint["id"] for t in saver.list(None, limit=2)] == ["a2", "a1"]
    sub = saver.get_tuple(generate_config("a", checkpoint_ns="sub:1"))
    assert sub.config["configurable"]["checkpoint_ns"] == "sub:1"


def test_open_store_specs(tmp_path):
    from ops.langgraph import open_store

    from lattice.errors import StoreError
    with pytest.raises(StoreError, match="PostgreSQL open of postgresql://127.0.0.1:1/db failed"):
        open_store("postgresql://127.0.0.1:1/db")  # a PostgreSQL URL opens a PostgresStore (none listens here)
    with pytest.raises(ValueError, match="scheme 'mysql'"):
        open_store("mysql://h/x")
    with pytest.raises(ValueError, match="no file"):
        open_store("sqlite:")
    with pytest.raises(ValueError):
        open_store("")
    from lattice.sqlite import SqliteStore
    with open_store(f"sqlite://{tmp_path / 'lg.db'}") as s:
        assert type(s) is SqliteStore and s.path == str(tmp_path / "lg.db") and s.durable
    s = open_store(f"lmdb://{tmp_path / 'x'}")
    s.close()
    assert isinstance(open_store(":memory:"), MemoryStore)
