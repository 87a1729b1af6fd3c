"""Known refs (ops.langgraph.pipeline.KnownRefs): a saver plans the next change of a namespace on the
refs it last read or wrote, not on a fresh read of the store; another writer's change makes that
plan lose its compare-and-swap, and it is planned again on the store."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the test extra")

from langgraph.checkpoint.conformance.test_utils import generate_config, generate_metadata  # noqa: E402

from lattice.errors import NotFound  # noqa: E402
from lattice.fsck import fsck  # noqa: E402
from lattice.gc import collect  # noqa: E402
from lattice.memory import MemoryStore  # noqa: E402
from lattice.store import RefUpdate  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from ops.langgraph.pipeline import KnownRefs  # noqa: E402
from tests.langgraph.test_lg_tree import ids, put  # noqa: E402

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


class CountingStore(MemoryStore):
    """A memory store that counts the reads of a namespace's refs."""

    def __init__(self):
        super().__init__()
        self.ref_reads = 0

    def read_refs(self, names, prefixes=()):
        self.ref_reads += 1
        return super().read_refs(names, prefixes)


def test_known_refs_take_the_updates_of_commits_landed_in_order():
    known = KnownRefs()
    known.put("t/x", {"t/x": A})
    known.landed("t/x", {"t/x": (A, B), "t/x@1": (None, C), "t/y": (None, A)})  # t/y: another namespace
    assert known.get("t/x") == {"t/x": B, "t/x@1": C}
    known.landed("t/x", {"t/x": (A, B)})  # the same batch seen by its second waiter: nothing changes
    assert known.get("t/x") == {"t/x": B, "t/x@1": C}
    known.landed("t/x", {"t/x@1": (C, None)})
    assert known.get("t/x") == {"t/x": B}


def test_known_refs_forget_a_namespace_whose_commits_resolve_out_of_order():
    known = KnownRefs()
    known.put("t/x", {"t/x": A})
    known.landed("t/x", {"t/x": (B, C)})  # the second of two commits, seen first
    assert known.get("t/x") is None
    known.landed("t/x", {"t/x": (A, B)})  # nothing to update any more
    assert known.get("t/x") is None


def test_known_refs_are_bounded_and_forgotten_on_demand():
    known = KnownRefs(capacity=2)
    for k in ("t/1", "t/2", "t/3"):
        known.put(k, {k: A})
    assert known.get("t/1") is None and known.get("t/3") == {"t/3": A}
    known.forget("t/3")
    assert known.get("t/3") is None and known.get("t/2") is not None
    known.forget()
    assert known.get("t/2") is None


def test_a_chat_reads_its_namespace_refs_once():
    store = CountingStore()
    saver = LatticeSaver(store, linger=0)
    put(saver, "t", "c1")
    reads = store.ref_reads
    parent = "c1"
    for i in range(2, 8):
        saver.put_writes(generate_config("t", checkpoint_id=parent), [("ch", f"w{i}")], "task")
        put(saver, "t", f"c{i}", parent)
        parent = f"c{i}"
    assert store.ref_reads == reads  # every plan was made on the known refs
    assert ids(saver, "t") == [f"c{i}" for i in range(7, 0, -1)]
    assert saver.get_tuple(generate_config("t", checkpoint_id="c3")).pending_writes == [("task", "ch", "w4")]
    assert store.ref_reads > reads  # readers read the store


def test_a_head_another_saver_moved_is_planned_on_again():
    store = MemoryStore()
    a, b = LatticeSaver(store, linger=0), LatticeSaver(store, linger=0)
    put(a, "t", "c1")
    put(a, "t", "c2", "c1")
    put(b, "t", "c3", "c2")  # a still knows c2 as the head
    put(a, "t", "c4", "c3")  # planned on c2: loses, then lands on the store's c3
    assert ids(a, "t") == ids(b, "t") == ["c4", "c3", "c2", "c1"]
    put(b, "t", "c5", "c2")  # another writer branches at c2: a's head is unmoved, its version is not
    put(a, "t", "c6", "c4")
    assert sorted(ids(a, "t")) == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert fsck(store).ok


def test_writes_planned_on_refs_another_saver_changed_land_on_their_checkpoint():
    store = MemoryStore()
    a, b = LatticeSaver(store, linger=0), LatticeSaver(store, linger=0)
    put(a, "t", "c1")
    put(b, "t", "c2", "c1")  # a knows c1 as the head
    a.put_writes(generate_config("t", checkpoint_id="c2"), [("ch", "w")], "task")
    assert a.get_tuple(generate_config("t", checkpoint_id="c2")).pending_writes == [("task", "ch", "w")]
    assert ids(a, "t") == ["c2", "c1"]
    assert fsck(store).ok


def test_a_plan_on_a_thread_deleted_and_collected_elsewhere_is_made_again_on_the_store():
    store = MemoryStore()
    a, b = LatticeSaver(store, linger=0), LatticeSaver(store, linger=0)
    put(a, "t", "c1")
    put(a, "t", "c2", "c1")
    b.delete_thread("t")
    collect(store)  # c1 and c2 are gone from the store
    a._cache.clear()
    a._rd = type(a._rd)()  # a plan that reads them goes to the store
    with pytest.raises(NotFound):
        store.get(a._lanes.known.get("t/local/t")["t/local/t"])
    put(a, "t", "c3", "c2")  # its parent was deleted: a new thread, as on a fresh saver
    assert ids(a, "t") == ["c3"]
    assert fsck(store).ok


def test_prune_sees_parked_writes_another_saver_added():
    """prune and delete_for_runs read the namespace afresh: they must remove every ref they drop."""
    store = MemoryStore()
    a, b = LatticeSaver(store, linger=0), LatticeSaver(store, linger=0)
    put(a, "t", "c1")
    put(a, "t", "c2", "c1")
    b.put_writes(generate_config("t", checkpoint_id="c0"), [("ch", "w")], "task")  # parked: c0 not stored
    assert "t/local/t!c0" in dict(store.refs("t/"))
    a.prune(["t"], strategy="keep_latest")
    assert dict(store.refs("t/")).keys() <= {"t/local/t", "t/local/t?"}
    assert ids(a, "t") == ["c2"]
    assert fsck(store).ok


def test_run_ids_dropped_after_another_saver_moved_the_head():
    store = MemoryStore()
    a, b = LatticeSaver(store, linger=0), LatticeSaver(store, linger=0)
    put(a, "t", "c1")
    put(b, "t", "c2", "c1", md=generate_metadata(run_id="r"))
    a.delete_for_runs(["r"])
    assert ids(a, "t") == ["c1"]


def test_a_commit_that_loses_forgets_the_namespace():
    store = MemoryStore()
    a = LatticeSaver(store, linger=0)
    put(a, "t", "c1")
    assert a._lanes.known.get("t/local/t") is not None
    head = store.ref("t/local/t")
    store.commit({}, [RefUpdate("t/local/t", head, None)])  # the thread removed behind the saver's back
    put(a, "t", "c2", "c1")  # lost once on the known head, then planned on the store: a new thread
    assert ids(a, "t") == ["c2"]
    assert a._lanes.known.get("t/local/t") == dict(store.refs("t/local/t"))
