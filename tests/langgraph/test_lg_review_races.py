"""Races through a saver's overlay (its commits in flight, :mod:`ops.langgraph.pipeline`): a ref value
read through it may have been replaced in the store by another writer since (it stays in the overlay
until none of the saver's commits is in flight). A plan that keeps such a value as it is must lose its
compare-and-swap; one that emitted no update for it used to land on refs that never were together."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the test extra")

from langgraph.checkpoint.conformance.test_utils import generate_config, generate_metadata  # noqa: E402

from lattice.memory import MemoryStore  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from tests.langgraph.test_lg_tree import ids, put  # noqa: E402


class Gate:
    """A submit that queues commits; release() applies the oldest to the store (call order kept)."""

    def __init__(self, store):
        self.store, self.queue, self.lock = store, [], threading.Lock()

    def __call__(self, objects, updates, **kw):
        fut = concurrent.futures.Future()
        with self.lock:
            self.queue.append((dict(objects), list(updates), kw, fut))
        return fut

    def wait_for(self, n):
        for _ in range(2000):
            with self.lock:
                if len(self.queue) >= n:
                    return
            time.sleep(0.001)
        raise AssertionError(f"never {n} commits queued")

    def release(self):
        with self.lock:
            objects, updates, kw, fut = self.queue.pop(0)
        fut.set_result(self.store.commit(objects, updates, **kw))
        return fut.result()


def _thread(fn):
    t = threading.Thread(target=fn)
    t.start()
    return t


def test_delete_for_runs_on_a_stale_overlay_keeps_every_checkpoint():
    store = MemoryStore()
    a = LatticeSaver(store, linger=0)
    b = LatticeSaver(store, linger=0)  # another process
    for cid, parent in [("c1", None), ("c5", "c1"), ("c3", "c1")]:  # c5 head, c3 a tip
        put(a, "t", cid, parent)
    gate = Gate(store)
    a._lanes.submit = gate
    # saver a: writes for tip c3 (P1) and for head c5 (P2, planned on the overlay holding P1)
    t1 = _thread(lambda: a.put_writes(generate_config("t", checkpoint_id="c3"), [("ch", "w3")], "task"))
    gate.wait_for(1)
    t2 = _thread(lambda: a.put_writes(generate_config("t", checkpoint_id="c5"), [("ch", "w5")], "task"))
    gate.wait_for(2)
    assert gate.release() is True  # P1 durable: c3's writes acknowledged
    t1.join()
    assert "t/local/t" in a._lanes.pending  # P2 in flight: the overlay (with P1's tip@c3) stays
    # saver b moves tip c3 on (a move-on: tip@c3 goes, tip@c4 comes; head and version unchanged)
    put(b, "t", "c4", "c3", md=generate_metadata(run_id="r"))
    assert ids(b, "t") == ["c5", "c4", "c3", "c1"]
    # saver a drops run r, planned on the overlay: it still sees tip@c3, so c3 "stays a leaf" unchanged
    t3 = _thread(lambda: a.delete_for_runs(["r"]))
    gate.wait_for(2)
    assert gate.release() is True  # P2
    # the drop, planned keeping tip@c3 as the overlay had it: it must lose, then land planned again
    assert gate.release() is False
    gate.wait_for(1)
    assert gate.release() is True
    t2.join()
    t3.join()
    assert ids(a, "t") == ["c5", "c3", "c1"], (ids(a, "t"), sorted(dict(store.refs("t/"))))
    assert a.get_tuple(generate_config("t", checkpoint_id="c3")).pending_writes == [("task", "ch", "w3")]
