"""Pipelined and lingering commits: the overlay, the batches, and that a graph step shares commits."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra")

from lattice.digest import digest  # noqa: E402
from lattice.memory import MemoryStore  # noqa: E402
from lattice.store import RefUpdate  # noqa: E402
from ops.langgraph.pipeline import Lanes, OverlayStore, Pending, Signal, submitter  # noqa: E402

A, B, C = digest(b"a"), digest(b"b"), digest(b"c")


class FakeSubmit:
    def __init__(self):
        self.calls = []
        self.kws = []

    def __call__(self, objects, updates, **kw):
        fut = concurrent.futures.Future()
        self.calls.append((dict(objects), list(updates), fut))
        self.kws.append(kw)
        return fut


class FakeCommitNow:
    """A store's commit_now: records the calls, answers ``result`` (or raises it)."""

    def __init__(self, result=True):
        self.calls = []
        self.result = result

    def __call__(self, objects, updates, **kw):
        self.calls.append((dict(objects), list(updates), kw))
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def test_a_change_with_nothing_in_flight_commits_on_the_calling_thread():
    submit, now = FakeSubmit(), FakeCommitNow()
    lanes = Lanes(submit, Signal, now)
    batch, p = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False, generation=3)
    assert submit.calls == [] and now.calls == [] and not batch.done.is_set()  # left to this thread
    assert lanes.take(batch) and not lanes.take(batch)  # taken once
    lanes.commit(batch)  # (without the namespace's lock)
    assert now.calls == [({A: b"a"}, [RefUpdate("k", None, A)], {"generation": 3})]
    assert batch.done.is_set() and batch.fut.result() is True
    lanes.landed("k", p, True)
    assert "k" not in lanes.pending


def test_lingering_writes_and_the_put_that_joins_them_commit_on_the_putting_thread():
    submit, now = FakeSubmit(), FakeCommitNow()
    lanes = Lanes(submit, Signal, now)
    w, pw = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=True)
    assert not w.done.is_set() and now.calls == []
    p, _ = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False)
    assert p is w and lanes.take(p) and submit.calls == []
    lanes.commit(p)
    assert w.done.is_set() and w.fut.result() is True
    (objects, updates, _), = now.calls
    assert objects == {A: b"a", B: b"b"} and updates == [RefUpdate("k", None, B)]


def test_a_change_planned_on_a_commit_in_flight_is_queued_behind_it():
    """Only the writer thread keeps commits in order: a change planned on the overlay of a queued
    commit must not land before it."""
    submit, now = FakeSubmit(), FakeCommitNow()
    lanes = Lanes(submit, Signal, None)  # the first goes to the queue (e.g. an async saver's)
    lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False)
    lanes.commit_now = now
    second, _ = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False)
    assert now.calls == [] and len(submit.calls) == 2 and second.fut is submit.calls[1][2]
    assert not lanes.take(second)
    other, _ = lanes.enqueue("other", {C: b"c"}, [RefUpdate("other", None, C)], linger=False)
    assert lanes.take(other)  # another namespace is not held back
    lanes.commit(other)
    assert len(now.calls) == 1 and other.fut.result() is True


def test_writes_arriving_during_a_commit_on_the_calling_thread_linger_on_its_overlay():
    """The thread commits without the lock: writes planned meanwhile see its values (the overlay),
    linger, and go with the next put once it has landed."""
    submit, now = FakeSubmit(), FakeCommitNow()
    lanes = Lanes(submit, Signal, now)
    first, p1 = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False)
    assert lanes.take(first)
    assert lanes.view(MemoryStore(), "k").ref("k") == A  # while it commits
    w, pw = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=True)
    assert w is not first and not lanes.take(w) and not w.done.is_set()
    lanes.commit(first)
    lanes.release("k")
    lanes.landed("k", p1, True)
    assert "k" in lanes.pending and lanes.held["k"] is w  # the writes still linger
    put, _ = lanes.enqueue("k", {C: b"c"}, [RefUpdate("k", B, C)], linger=False)
    assert put is w and lanes.take(w)
    lanes.commit(w)
    assert [c[1] for c in now.calls] == [[RefUpdate("k", None, A)], [RefUpdate("k", A, C)]] and submit.calls == []


def test_a_batch_sent_during_a_commit_on_the_calling_thread_is_queued_once_it_ends():
    """The writer thread must not land a change before the commit on a caller's thread it was
    planned on: it waits for :meth:`Lanes.release`, then is queued, in the order sent."""
    submit, now = FakeSubmit(), FakeCommitNow()
    lanes = Lanes(submit, Signal, now)
    first, p1 = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False)
    assert lanes.take(first)
    second, _ = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False)
    third, _ = lanes.enqueue("k", {C: b"c"}, [RefUpdate("k", B, C)], linger=True)
    lanes.expire("k", third)  # lingered in vain
    assert submit.calls == [] and not second.done.is_set() and not third.done.is_set()
    assert not lanes.take(second) and not lanes.take(third)
    other, _ = lanes.enqueue("other", {C: b"c"}, [RefUpdate("other", None, C)], linger=False)
    assert lanes.take(other)  # another namespace is not held back
    lanes.commit(first)
    assert submit.calls == []  # still waiting: the committing thread has not released
    lanes.release("k")
    assert [c[1] for c in submit.calls] == [[RefUpdate("k", A, B)], [RefUpdate("k", B, C)]]
    assert second.done.is_set() and third.done.is_set() and second.fut is submit.calls[0][2]
    lanes.landed("k", p1, True)
    nxt, _ = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", C, A)], linger=False)
    assert not lanes.take(nxt) and len(submit.calls) == 3  # two still in flight: queued behind them


def test_batches_waiting_for_a_failed_commit_on_the_calling_thread_are_still_sent():
    submit = FakeSubmit()
    lanes = Lanes(submit, Signal, FakeCommitNow(OSError("disk gone")))
    first, p1 = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False)
    assert lanes.take(first)
    second, p2 = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False)
    lanes.commit(first)
    lanes.release("k")
    lanes.landed("k", p1, False)
    assert second.done.is_set() and len(submit.calls) == 1  # sent: its compare-and-swap decides
    assert "k" not in lanes.pending and "k" not in lanes.inline


def test_an_error_of_a_commit_on_the_calling_thread_comes_from_result():
    lanes = Lanes(FakeSubmit(), Signal, FakeCommitNow(OSError("disk gone")))
    batch, p = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False)
    assert lanes.take(batch)
    lanes.commit(batch)
    assert batch.done.is_set()
    with pytest.raises(OSError, match="disk gone"):
        batch.fut.result()
    lanes.landed("k", p, False)
    assert "k" not in lanes.pending  # the overlay is dropped, as for a lost commit


def test_a_batch_the_store_refuses_to_queue_reports_the_error_to_every_waiter():
    """submit raising (the store closed, a ref name it cannot hold) must still settle the batch: the
    lingering writes waiting on it get the error instead of waiting for ever."""
    def refuse(objects, updates, **kw):
        raise OSError("closed")

    lanes = Lanes(refuse, Signal, None)
    w, pw = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=True)
    p, _ = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False)
    assert p is w and w.done.is_set() and not lanes.take(w)
    with pytest.raises(OSError, match="closed"):
        w.fut.result()
    lanes.landed("k", pw, False)
    assert "k" not in lanes.pending and "k" not in lanes.held


def test_signal_waits_until_set_or_the_timeout():
    sig = Signal()
    assert not sig.is_set() and sig.wait(0.01) is False
    woke = []
    waiters = [threading.Thread(target=lambda: woke.append(sig.wait(5))) for _ in range(3)]
    for t in waiters:
        t.start()
    sig.set()
    sig.set()  # a second set is a no-op
    for t in waiters:
        t.join(5)
    assert woke == [True] * 3 and sig.is_set() and sig.wait() is True


def test_overlay_shows_the_store_as_it_will_be():
    store = MemoryStore()
    store.commit({A: b"a"}, [RefUpdate("t/x", None, A), RefUpdate("t/x@1", None, A)])
    p = Pending()
    p.add({B: b"b"}, [RefUpdate("t/x", A, B), RefUpdate("t/x@1", A, None), RefUpdate("t/x@2", None, B)])
    view = OverlayStore(store, p)
    assert view.ref("t/x") == B and view.get(B) == b"b" and view.get(A) == b"a" and view.has(B)
    assert list(view.refs("t/x@")) == [("t/x@2", B)]
    assert store.ref("t/x") == A  # the store itself is untouched


def test_lingering_writes_join_the_next_put_in_one_commit():
    submit = FakeSubmit()
    lanes = Lanes(submit, threading.Event)
    w, pw = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=True)
    assert not w.done.is_set() and submit.calls == []
    assert lanes.view(MemoryStore(), "k").ref("k") == A  # the next plan sees the held writes
    p, pp = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B), RefUpdate("k@x", None, A)], linger=False)
    assert p is w and w.done.is_set() and pw is pp and pw.count == 2
    (objects, updates, fut), = submit.calls
    assert objects == {A: b"a", B: b"b"}
    assert sorted(updates) == sorted([RefUpdate("k", None, B), RefUpdate("k@x", None, A)])
    fut.set_result(True)
    lanes.landed("k", pw, True)
    lanes.landed("k", pp, True)
    assert "k" not in lanes.pending


def test_writes_that_linger_in_vain_commit_alone_and_linger_less():
    submit = FakeSubmit()
    lanes = Lanes(submit, threading.Event)
    w, _ = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=True)
    lanes.expire("k", w)
    assert w.done.is_set() and len(submit.calls) == 1
    lanes.expire("k", w)  # a second expiry of a batch already gone does nothing
    assert len(submit.calls) == 1
    for _ in range(2):  # the next two writes do not wait
        b, _ = lanes.enqueue("k", {}, [RefUpdate("k", A, A)], linger=True)
        assert b.done.is_set()
    b, _ = lanes.enqueue("k", {}, [RefUpdate("k", A, A)], linger=True)
    assert not b.done.is_set()


def test_a_lost_commit_drops_the_overlay():
    lanes = Lanes(FakeSubmit(), threading.Event)
    _, p1 = lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=False)
    _, p2 = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False)
    lanes.landed("k", p1, False)
    assert "k" not in lanes.pending  # plans start again from the store
    lanes.landed("k", p2, False)
    assert "k" not in lanes.pending


def test_every_store_submits_through_the_port(tmp_path):
    """The saver submits through the store port's ``submit``: queued on LMDB (the future resolves
    later), at once on the memory store; a store without one commits at once through the helper."""
    from lattice.digest import digest
    from lattice.lmdb import LmdbStore

    mem = MemoryStore()
    assert submitter(mem) == mem.submit
    with LmdbStore(tmp_path / "s") as s:
        assert submitter(s) == s.submit
        d = digest(b"x")
        assert submitter(s)({d: b"x"}, [RefUpdate("k", None, d)]).result(5) is True
        assert s.ref("k") == d

    class CommitOnly:  # a store with commit and no submit
        def __init__(self):
            self.inner = MemoryStore()

        def commit(self, objects, updates, **kw):
            return self.inner.commit(objects, updates, **kw)
    c = CommitOnly()
    fut = submitter(c)({A: b"a"}, [RefUpdate("k", None, A)], generation=0)
    assert fut.done() and fut.result() is True and c.inner.ref("k") == A
    fut = submitter(c)({}, [RefUpdate("k", None, A)], generation=0)
    assert fut.result() is False


def test_a_batch_carries_the_oldest_generation_of_its_changes():
    submit = FakeSubmit()
    lanes = Lanes(submit, threading.Event)
    lanes.enqueue("k", {A: b"a"}, [RefUpdate("k", None, A)], linger=True, generation=4)
    lanes.enqueue("k", {B: b"b"}, [RefUpdate("k", A, B)], linger=False, generation=5)
    assert len(submit.calls) == 1 and submit.kws == [{"generation": 4}]
    lanes.enqueue("j", {C: b"c"}, [RefUpdate("j", None, C)], linger=False)
    assert submit.kws[-1] == {}  # a store without a collector: no generation


def test_a_graph_step_takes_three_commits_on_lmdb(tmp_path, monkeypatch):
    """put(-1); put_writes(-1) with put(0); put_writes(0) with put(1): three durable commits a turn
    (write transactions, whether the writer thread or the saver's own thread makes them)."""
    import lattice.lmdb as lm
    from tests.langgraph.test_lg_graphs import chat_graph, human
    from ops.langgraph import LatticeSaver

    groups = []
    orig = lm.LmdbStore._commit_group
    monkeypatch.setattr(lm.LmdbStore, "_commit_group", lambda self, g: groups.append(len(g)) or orig(self, g))
    with LatticeSaver.from_conn_string(str(tmp_path / "lg"), linger=0.05) as saver:
        g = chat_graph(saver)
        cfg = {"configurable": {"thread_id": "t"}}
        g.invoke({"messages": [human(0, n=2)]}, cfg)
        groups.clear()
        g.invoke({"messages": [human(1, n=2)]}, cfg)
        assert len(groups) == 3, groups
        assert len(g.get_state(cfg).values["messages"]) == 4


def test_a_lost_commit_sends_the_held_batch_alone():
    """Writes held for lingering were planned on the overlay a lost commit drops. A change planned
    after that, on the store, must not join them: the batch keeps each ref's first expected value, so
    its stale head would undo the writes with no check (two savers lost acknowledged writes so)."""
    submit = FakeSubmit()
    lanes = Lanes(submit, threading.Event)
    _, p1 = lanes.enqueue("k", {B: b"b"}, [RefUpdate("k@2", None, B)], linger=False)  # in flight, will lose
    held, ph = lanes.enqueue("k", {C: b"c"}, [RefUpdate("k", A, C)], linger=True)  # writes: k moves A -> C
    assert not held.done.is_set() and ph is p1
    lanes.landed("k", p1, False)
    assert held.done.is_set() and "k" not in lanes.pending and "k" not in lanes.held
    (_, first, _), (_, sent, _) = submit.calls
    assert sent == [RefUpdate("k", A, C)]
    # planned on the store (k is A there), the next change is a batch of its own, checked after the writes
    later, _ = lanes.enqueue("k", {}, [RefUpdate("k", A, A)], linger=False)
    assert later is not held and len(submit.calls) == 3 and submit.calls[2][1] == [RefUpdate("k", A, A)]


def test_the_overlay_reads_refs_as_they_will_be():
    store = MemoryStore()
    store.commit({A: b"a"}, [RefUpdate("t/x", None, A), RefUpdate("t/x@1", None, A), RefUpdate("t/x!2", None, A)])
    p = Pending()
    p.add({B: b"b"}, [RefUpdate("t/x", A, B), RefUpdate("t/x@1", A, None), RefUpdate("t/x@3", None, B),
                      RefUpdate("t/x?", None, B), RefUpdate("t/y", None, B)])
    got = OverlayStore(store, p).read_refs(["t/x?", "t/x"], ["t/x@", "t/x!"])
    assert got == {"t/x?": B, "t/x": B, "t/x@3": B, "t/x!2": A}
