"""`lattice copy` between LMDB and PostgreSQL (and back), and `lattice fsck --store URL`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from lattice.lmdb import LmdbStore
from lattice.postgres import PostgresStore
from ops.engine.runtime import Runtime
from tests.scaleout.helpers import call, fill
from tests.serve import lattice


def test_copy_lmdb_to_postgres_and_back(tmp_path: Path, postgres_url: str) -> None:
    src = tmp_path / "src"
    with LmdbStore(src, durable=False) as s:
        asyncio.run(fill(s))
        refs = list(s.refs(""))
    out = lattice("copy", "--from", str(src), "--to", postgres_url)
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout
    with PostgresStore(postgres_url, pool_size=1) as pg:
        assert list(pg.refs("")) == refs
    assert lattice("fsck", "--store", postgres_url, "--quiet").returncode == 0
    again = lattice("copy", "--from", str(src), "--to", postgres_url)  # the target is not empty now
    assert again.returncode == 1 and "not empty" in again.stderr
    back = tmp_path / "back"
    out = lattice("copy", "--from", postgres_url, "--to", str(back))
    assert out.returncode == 0, out.stderr
    with LmdbStore(back, readonly=True) as s:
        assert list(s.refs("")) == refs
    assert lattice("fsck", "--data", str(back), "--quiet").returncode == 0
    # the copy replays: the fork's source version came along (it is not on the fork's own chain)
    async def replay() -> dict:
        with LmdbStore(back, durable=False) as s:
            rt = Runtime(s)
            await rt.start()
            try:
                return (await call(rt, "agent:replay", agentId="B"))["output"]
            finally:
                await rt.close()
    assert asyncio.run(replay())["identical"] is True


def test_fsck_store_url_finds_a_corrupt_object(postgres_url: str) -> None:
    with PostgresStore(postgres_url, pool_size=1) as s:
        asyncio.run(fill(s))
    assert lattice("fsck", "--store", postgres_url, "--quiet").returncode == 0
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE lattice_objects SET data = data || '\\x00'::bytea WHERE digest = "
                     "(SELECT digest FROM lattice_objects ORDER BY length(data) DESC LIMIT 1)")
    bad = lattice("fsck", "--store", postgres_url, "--quiet")
    assert bad.returncode == 1 and "corrupt" in bad.stdout, bad.stdout + bad.stderr
    unreachable = lattice("fsck", "--store", "postgresql://nobody@127.0.0.1:1/none")
    assert unreachable.returncode == 1 and "cannot open store" in unreachable.stderr


def test_gc_and_compact_with_a_postgres_url_beside_a_server(postgres_url: str) -> None:
    """`lattice gc --store URL` collects from the command line while a `lattice serve` on the same
    database keeps working; `lattice compact --store URL [--full]` vacuums; fsck stays clean."""
    from tests.serve import free_port, serve
    with PostgresStore(postgres_url, pool_size=1) as s:
        asyncio.run(fill(s))  # "gone" was removed: its objects are garbage
        objects = s.stats()["objects"]
    port = free_port()
    server = serve(port, "--store", postgres_url)
    try:
        import json
        import urllib.request

        def invoke(op: str, body: dict) -> dict:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invoke", method="POST",
                                         data=json.dumps({"operation": op, "input": body}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        out = lattice("gc", "--store", postgres_url, "--retain-jobs", "0s")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("freed ") and "finished jobs dropped" in out.stdout, out.stdout
        freed = int(out.stdout.split()[1].replace(",", ""))
        assert freed > 0 and "marking refs" in out.stderr and "sweeping" in out.stderr, out.stderr
        # the server goes on, on the collected store
        job = invoke("agent:request", {"agentId": "A", "input": "after the collection", "wait": True})
        assert job["status"] == "COMPLETE", job
        assert invoke("agent:replay", {"agentId": "A"})["output"]["identical"] is True
        again = lattice("gc", "--store", postgres_url, "--quiet")
        assert again.returncode == 0 and again.stderr == "", again.stderr
        vacuum = lattice("compact", "--store", postgres_url)
        assert vacuum.returncode == 0 and " -> " in vacuum.stdout and "(VACUUM)" in vacuum.stdout, vacuum.stderr
    finally:
        server.terminate()
        server.wait(10)
    full = lattice("compact", "--store", postgres_url, "--full")
    assert full.returncode == 0 and "(VACUUM FULL)" in full.stdout, full.stderr
    assert lattice("fsck", "--store", postgres_url, "--quiet").returncode == 0
    with PostgresStore(postgres_url, pool_size=1) as s:
        assert s.stats()["objects"] < objects + 20
    bad = lattice("gc", "--store", postgres_url, "--url", "http://127.0.0.1:1")
    assert bad.returncode == 2 and "not both" in bad.stderr
    lmdb_full = lattice("compact", "--data", "/nonexistent", "--full")
    assert lmdb_full.returncode == 2 and "--full is for a PostgreSQL store" in lmdb_full.stderr
