"""`lattice copy` between LMDB and PostgreSQL (and back), and `lattice fsck --store URL`."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import psycopg

from lattice.lmdb import LmdbStore
from lattice.postgres import PostgresStore
from ops.engine.runtime import Runtime
from tests.scaleout.helpers import call
from tests.serve import BIN


def lattice(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lattice"), *args], capture_output=True, text=True, timeout=120)


async def fill(store) -> None:
    """Agents with history, a fork at an old version, a removed agent, workspace values."""
    rt = Runtime(store)
    await rt.start()
    try:
        await call(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}})
        for i in range(5):
            await call(rt, "agent:request", agentId="A", input=f"t{i} " + "x" * 500, wait=True)
        await call(rt, "agent:fork", sourceId="A", agentId="B", at=3)
        await call(rt, "agent:create", agentId="gone", config={"model": {"provider": "echo"}})
        await call(rt, "agent:delete", agentId="gone", remove=True)
        await call(rt, "covia:write", path="w/notes", value={"k": list(range(100))})
    finally:
        await rt.close()


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
