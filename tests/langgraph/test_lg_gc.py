"""Garbage collection beside the saver: graphs keep running while ``lattice.gc.collect`` sweeps in a
loop (on PostgreSQL from another store, as ``lattice gc`` from another process would); deleted and
pruned threads make garbage. Nothing a thread reaches is ever freed, every turn lands, fsck is clean."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("langgraph.graph", reason="needs langgraph (the test extra)")

from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from lattice.fsck import fsck  # noqa: E402
from lattice.gc import collect  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from tests.langgraph.test_lg_graphs import chat_graph, human, transcript  # noqa: E402


def test_graphs_run_on_while_garbage_is_collected(backend, spec):
    with LatticeSaver.from_conn_string(spec) as saver:
        if backend == "postgres":
            from lattice.postgres import PostgresStore
            collector = PostgresStore(spec, pool_size=2)
        else:
            collector = saver.store
        reports, errors = [], []
        stop = threading.Event()

        def collect_in_a_loop() -> None:
            try:
                while not stop.is_set():
                    reports.append(collect(collector))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        t = threading.Thread(target=collect_in_a_loop)
        t.start()
        try:
            g = chat_graph(saver)
            for i in range(24):
                g.invoke({"messages": [human(i, n=20)]}, {"configurable": {"thread_id": "kept"}})
                g.invoke({"messages": [human(i, n=20)]}, {"configurable": {"thread_id": f"gone{i}"}})
                saver.delete_thread(f"gone{i}")  # garbage for the collector
                if i % 8 == 7:
                    saver.prune(["kept"], strategy="keep_latest")
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        assert len(reports) >= 2 and sum(r.freed for r in reports) > 0, reports[-2:]
        final = collect(collector)
        assert final.live == sum(1 for _ in saver.store.objects())  # nothing unreachable left
        assert fsck(saver.store).ok
        state = g.get_state({"configurable": {"thread_id": "kept"}})
        assert [m.id for m in state.values["messages"]] == [x for i in range(24) for x in (f"h{i}", f"ai-h{i}")]
        assert saver.get_tuple({"configurable": {"thread_id": "gone0"}}) is None
        if collector is not saver.store:
            collector.close()


def test_a_thread_reads_the_same_after_a_collection(spec):
    """The transcript of a thread (state and history) is the same before and after a collection."""
    with LatticeSaver.from_conn_string(spec) as saver:
        g = chat_graph(saver)
        cfg = {"configurable": {"thread_id": "t"}}
        for i in range(36):
            g.invoke({"messages": [human(i, n=4)]}, cfg)
        before = transcript(g, cfg)
        g.invoke({"messages": [human(0, n=4)]}, {"configurable": {"thread_id": "other"}})
        saver.delete_thread("other")
        assert collect(saver.store).freed > 0
        assert transcript(g, cfg) == before
        ref = chat_graph(InMemorySaver())
        for i in range(36):
            ref.invoke({"messages": [human(i, n=4)]}, cfg)
        assert transcript(ref, cfg) == before
