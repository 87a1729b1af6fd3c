"""Review of the inline commit path (LmdbStore.commit_now in the sync saver): failure paths."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the test extra")

from langgraph.checkpoint.conformance.test_utils import generate_config  # noqa: E402

from lattice.errors import StoreError  # noqa: E402
from lattice.lmdb import LmdbStore  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from tests.langgraph.test_lg_tree import put  # noqa: E402


def _wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def test_lingering_writes_do_not_hang_when_their_batch_cannot_be_submitted(tmp_path):
    """A put commits on its own thread; writes planned on its overlay linger; the store is closed
    meanwhile. The put fails, ``landed`` sends the lingering batch to ``submit``, which raises
    (closed): the batch is never sent and its event never set. The writes' thread must end
    with the store's error, not wait for ever in ``batch.done.wait()`` (saver.py, _run)."""
    store = LmdbStore(tmp_path / "db", durable=False)
    saver = LatticeSaver(store, linger=2.0)
    put(saver, "t", "c1")
    key = next(n for n, _ in store.refs("t/") if not n.endswith("?"))
    out: dict[str, BaseException | object] = {}

    def run(name, fn):
        try:
            out[name] = fn()
        except BaseException as e:  # noqa: BLE001
            out[name] = e

    store._wlock.acquire()  # a long write transaction: the put's commit_now waits for it
    try:
        t1 = threading.Thread(target=run, args=("put", lambda: put(saver, "t", "c2", "c1")), daemon=True)
        t1.start()
        _wait_until(lambda: saver._lanes.pending.get(key) is not None)
        t2 = threading.Thread(target=run, args=("writes", lambda: saver.put_writes(
            generate_config("t", checkpoint_id="c2"), [("ch", "w")], "task")), daemon=True)
        t2.start()
        _wait_until(lambda: key in saver._lanes.held)  # the writes linger on the put's overlay
        closer = threading.Thread(target=store.close, daemon=True)
        closer.start()
        _wait_until(lambda: store._closed)
    finally:
        store._wlock.release()
    t1.join(10)
    assert isinstance(out.get("put"), StoreError)
    t2.join(10)
    assert not t2.is_alive(), "put_writes hangs: its batch was never sent and its event never set"
    assert isinstance(out.get("writes"), StoreError)
