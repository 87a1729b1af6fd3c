"""Review of the inline commit path (LmdbStore.commit_now in the sync saver): failure paths."""

from __future__ import annotations

import functools
import threading
import time

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the test extra")

from langgraph.checkpoint.conformance.test_utils import generate_config  # noqa: E402

from lattice.errors import StoreError  # noqa: E402
from lattice.lmdb import LmdbStore  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from tests.langgraph.test_lg_tree import put  # noqa: E402
from ops.langgraph.naming import parse_ref  # noqa: E402


def _outcome(out: dict, name: str, fn) -> None:
    """Run ``fn`` (on a test's thread), keeping its result or exception in ``out[name]``."""
    try:
        out[name] = fn()
    except BaseException as e:  # noqa: BLE001
        out[name] = e


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
    run = functools.partial(_outcome, out)

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


def test_a_put_planned_on_writes_being_committed_does_not_land_before_them(tmp_path):
    """Writes that lingered in vain commit on their own thread; the next put, planned on their
    overlay, is queued meanwhile. Were it sent to the writer thread at once, it could land first:
    its compare-and-swap fails, it is planned again without the writes and lands, and the writes
    then rewrite a checkpoint that is no longer the leaf (a needless ``?`` version ref and a
    rewritten chain; 9 runs in 100 of a 40-turn chat graph did). It must wait for them."""
    store = LmdbStore(tmp_path / "db", durable=False)
    saver = LatticeSaver(store, linger=0)  # writes do not linger: they commit at once
    put(saver, "t", "c1")
    key = next(n for n, _ in store.refs("t/"))
    out: dict[str, BaseException | object] = {}
    run = functools.partial(_outcome, out)

    store._wlock.acquire()  # the writes' commit_now (and the writer thread) wait for it
    try:
        tw = threading.Thread(target=run, args=("writes", lambda: saver.put_writes(
            generate_config("t", checkpoint_id="c1"), [("ch", "w")], "task")), daemon=True)
        tw.start()
        _wait_until(lambda: key in saver._lanes.inline)  # committing on its own thread
        tp = threading.Thread(target=run, args=("put", lambda: put(saver, "t", "c2", "c1")), daemon=True)
        tp.start()
        _wait_until(lambda: len(saver._lanes.inline.get(key, ())) == 1)  # the put waits for it
    finally:
        store._wlock.release()
    tw.join(10)
    tp.join(10)
    assert out == {"writes": None, "put": out["put"]} and not isinstance(out["put"], BaseException)
    assert [parse_ref(n).kind for n, _ in store.refs("t/")] == ["head"]  # no version ref: no rewrite
    got = saver.get_tuple(generate_config("t", checkpoint_id="c1"))
    assert [w[1:] for w in got.pending_writes] == [("ch", "w")]
    assert saver.get_tuple(generate_config("t")).checkpoint["id"] == "c2"
    store.close()
