"""The SQLite backend through the command line: `lattice serve --store sqlite:FILE`, fsck beside it,
gc and compact once it stopped, `lattice copy` to LMDB and back."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request
from pathlib import Path

from lattice.lmdb import LmdbStore
from lattice.sqlite import SqliteStore
from ops.engine.runtime import Runtime
from tests.scaleout.helpers import call, fill, load_bundle
from tests.serve import free_port, lattice, serve


def invoke(port: int, op: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invoke", method="POST",
                                 data=json.dumps({"operation": op, "input": body}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def test_serve_on_a_sqlite_file_with_fsck_beside_it_then_gc_and_compact(tmp_path: Path) -> None:
    db = tmp_path / "data" / "lattice.db"  # its directory is made too
    spec = f"sqlite:{db}"
    port = free_port()
    server = serve(port, "--store", spec)
    try:
        assert invoke(port, "agent:create", {"agentId": "A", "config": {"model": {"provider": "echo"}}})["status"] \
            == "COMPLETE"
        for i in range(3):
            job = invoke(port, "agent:request", {"agentId": "A", "input": f"turn {i}", "wait": True})
            assert job["status"] == "COMPLETE", job
        invoke(port, "agent:create", {"agentId": "gone", "config": {"model": {"provider": "echo"}}})
        invoke(port, "agent:delete", {"agentId": "gone", "remove": True})
        ok = lattice("fsck", "--store", spec)  # reads only: beside the server
        assert ok.returncode == 0 and "0 problem(s)" in ok.stderr, ok.stdout + ok.stderr
        busy = lattice("gc", "--store", spec)
        assert busy.returncode == 1 and "stop the server first" in busy.stderr, busy.stderr
        assert (tmp_path / "data" / "lattice.db-venue.key").exists()  # the venue's identity, beside the file
        did = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/did.json", timeout=10))["id"]
    finally:
        server.terminate()
        server.wait(10)
    out = lattice("gc", "--store", spec, "--retain-jobs", "0s")
    assert out.returncode == 0 and out.stdout.startswith("freed "), out.stdout + out.stderr
    assert int(out.stdout.split()[1].replace(",", "")) > 0
    squeezed = lattice("compact", "--store", spec)
    assert squeezed.returncode == 0 and " -> " in squeezed.stdout, squeezed.stderr
    assert lattice("fsck", "--store", spec, "--quiet").returncode == 0
    server = serve(port, "--store", spec)  # the same identity, the history replays after the collection
    try:
        assert json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/did.json",
                                                timeout=10))["id"] == did
        assert invoke(port, "agent:replay", {"agentId": "A"})["output"]["identical"] is True
    finally:
        server.terminate()
        server.wait(10)


def test_fsck_finds_a_corrupt_object_and_bad_specs_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "lattice.db"
    with SqliteStore(db, durable=False) as s:
        asyncio.run(fill(s))
        head = s.ref("g/local/A")  # A's newest commit
    with sqlite3.connect(db) as c:
        c.execute("UPDATE lattice_log SET v = ? WHERE seq = (SELECT seq FROM lattice_index WHERE p = ?)",
                  (b"\0not the commit it was", int.from_bytes(head[:8], "big", signed=True)))
    bad = lattice("fsck", "--store", f"sqlite:{db}", "--quiet")
    assert bad.returncode == 1 and "corrupt" in bad.stdout, bad.stdout + bad.stderr
    missing = lattice("fsck", "--store", f"sqlite:{tmp_path / 'none.db'}")
    assert missing.returncode == 1 and "no store" in missing.stderr, missing.stderr
    assert not (tmp_path / "none.db").exists()
    empty = lattice("serve", "--store", "sqlite:")
    assert empty.returncode == 1 and "no file" in empty.stderr, empty.stderr
    for cmd in ("gc", "compact"):  # nothing is created for a file that is not there
        out = lattice(cmd, "--store", f"sqlite:{tmp_path / 'none.db'}")
        assert out.returncode == 1 and "no store" in out.stderr, out.stderr
    assert not (tmp_path / "none.db").exists()
    full = lattice("compact", "--store", f"sqlite:{db}", "--full")
    assert full.returncode == 2 and "--full is for a PostgreSQL store" in full.stderr


def test_copy_sqlite_to_lmdb_and_back(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    with SqliteStore(src, durable=False) as s:
        asyncio.run(fill(s))
        refs = list(s.refs(""))
    out = lattice("copy", "--from", f"sqlite:{src}", "--to", str(tmp_path / "lmdb"))
    assert out.returncode == 0 and "verified" in out.stdout, out.stderr
    with LmdbStore(tmp_path / "lmdb", readonly=True) as s:
        assert list(s.refs("")) == refs
    back = tmp_path / "back.db"
    out = lattice("copy", "--from", str(tmp_path / "lmdb"), "--to", f"sqlite:{back}")
    assert out.returncode == 0, out.stderr
    assert lattice("fsck", "--store", f"sqlite:{back}", "--quiet").returncode == 0

    async def replay() -> dict:
        with SqliteStore(back, durable=False) as s:
            rt = Runtime(s)
            await rt.start()
            try:
                return (await call(rt, "agent:replay", agentId="B"))["output"]
            finally:
                await rt.close()
    assert asyncio.run(replay())["identical"] is True
    gone = lattice("copy", "--from", f"sqlite:{tmp_path / 'missing.db'}", "--to", ":memory:")
    assert gone.returncode == 1 and "no store" in gone.stderr, gone.stderr


def test_bundles_between_sqlite_and_lmdb(tmp_path: Path) -> None:
    """An agent exported from a SQLite store (whole, and from a version on) imports into LMDB and back,
    replays identical, and both stores are fsck-clean."""
    from lattice.fsck import fsck
    from ops.domain.check import make_check_head
    from ops.engine.bundles import export_agent

    async def load(rt: Runtime, agent_id: str, data: bytes) -> dict:
        return await load_bundle(rt, agent_id, [data[i:i + 1000] for i in range(0, len(data), 1000)])

    async def run() -> None:
        sq, lm = SqliteStore(tmp_path / "a.db", durable=False), LmdbStore(tmp_path / "lmdb", durable=False)
        await fill(sq)
        a, b = Runtime(sq), Runtime(lm)
        await a.start()
        await b.start()
        try:
            top = (await call(a, "agent:history", agentId="A", limit=1))["output"]["versions"][0]["seq"]
            for name, since in (("Whole", None), ("Tail", top - 2)):
                data = b"".join(export_agent(a.engine, "local", "A", since)[1])
                assert (await load(b, name, data))["fromAgentId"] == "A"
                assert (await call(b, "agent:replay", agentId=name))["output"]["identical"] is True
            back = b"".join(export_agent(b.engine, "local", "Whole")[1])
            await load(a, "Back", back)
            assert (await call(a, "agent:replay", agentId="Back"))["output"]["identical"] is True
            assert (await call(a, "covia:read", path="g/Back/state/history"))["output"] == \
                (await call(a, "covia:read", path="g/A/state/history"))["output"]
        finally:
            await a.close()
            await b.close()
        for store in (sq, lm):
            report = fsck(store, check_head=make_check_head(store))
            assert report.ok, report.problems[:5]
            store.close()
    asyncio.run(run())
