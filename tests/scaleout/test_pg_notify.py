"""PgNotifier (ops/engine/pg.py): commits announced across processes by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import json

import psycopg

from ops.engine.pg import PAYLOAD_BYTES, PgNotifier, payloads


def test_payloads_are_split_under_the_limit() -> None:
    refs = [f"g/caller/agent-{i:05d}" for i in range(2000)]
    out = payloads("p", refs)
    assert len(out) > 1 and all(len(p.encode()) <= PAYLOAD_BYTES for p in out)
    assert [r for p in out for r in json.loads(p)["r"]] == refs


async def test_a_commit_wakes_the_other_process_and_survives_a_lost_connection(postgres_url: str) -> None:
    a = PgNotifier(postgres_url, origin="a", poll=60)  # poll far away: only NOTIFY can wake in time
    b = PgNotifier(postgres_url, origin="b", poll=60)
    heard: list[str | None] = []
    b.remote.append(heard.append)
    await a.start()
    await b.start()
    try:
        ev = b.watch("g/x/A")
        a.notify("g/x/A")
        a.notify("j/x/0x01")
        await asyncio.wait_for(ev.wait(), 5)
        for _ in range(100):
            if "j/x/0x01" in heard:
                break
            await asyncio.sleep(0.01)
        assert heard[:2] == ["g/x/A", "j/x/0x01"]
        own = a.watch("g/x/B")
        b.notify("g/x/B")
        await asyncio.wait_for(own.wait(), 5)
        # b's LISTEN connection is killed: it reconnects, wakes every watcher (it may have missed
        # commits) and tells its listeners that anything may have moved, then hears again
        pid = b._listen.info.backend_pid
        stale = b.watch("g/x/C")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await asyncio.wait_for(stale.wait(), 10)
        assert None in heard
        again = b.watch("g/x/D")
        a.notify("g/x/D")
        await asyncio.wait_for(again.wait(), 5)
    finally:
        await a.close()
        await b.close()


async def test_a_subscription_hears_the_other_processes_commits(postgres_url: str) -> None:
    """The caller-wide event stream's seam: a subscription to a prefix gets the refs another process moved under
    it (not the others), and 'anything may have moved' (None) after a lost connection or at the poll."""
    a = PgNotifier(postgres_url, origin="a", poll=60)
    b = PgNotifier(postgres_url, origin="b", poll=60)
    await a.start()
    await b.start()
    try:
        with b.subscribe("g/alice/") as sub:
            a.notify("g/alice/A")
            a.notify("g/bob/A")
            a.notify("j/alice/0x01")
            a.notify("g/alice/B")
            await asyncio.wait_for(sub.changed.wait(), 5)
            for _ in range(100):  # both may come in one notification or two
                if sub._moved is not None and len(sub._moved) == 2:
                    break
                await asyncio.sleep(0.01)
            assert sub.take() == ["g/alice/A", "g/alice/B"]
            assert not sub.changed.is_set()
            pid = b._listen.info.backend_pid
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await asyncio.wait_for(sub.changed.wait(), 10)
            assert sub.take() is None  # notifications may have been lost while it reconnected
            b.poll = 0.05
            b._tasks.append(asyncio.get_running_loop().create_task(b._ticker()))
            await asyncio.wait_for(sub.changed.wait(), 5)
            assert sub.take() is None
        assert b.subscriptions() == 0
    finally:
        await a.close()
        await b.close()
