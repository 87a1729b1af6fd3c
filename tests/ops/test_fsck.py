"""fsck finds what is missing, corrupt or inconsistent, and passes a healthy store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lattice.commits import read_commit, write_commit
from lattice.fsck import fsck
from lattice.lmdb import LmdbStore
from tests.lattice.helpers import tamper_lmdb
from lattice.memory import MemoryStore
from lattice.nodes import Tx
from ops.domain.check import make_check_head
from ops.domain.contracts import decode_input, lookup
from ops.engine.runtime import Runtime

BIN = Path(sys.executable).parent


async def populate(store: Any) -> Runtime:
    rt = Runtime(store)
    await rt.start()

    async def call(op: str, **inp: Any) -> dict:
        c = lookup(op)
        return await rt.invoke(c, decode_input(c, inp), "local")
    await call("agent:create", agentId="A", config="vendor-assistant")
    for i in range(40):
        await call("agent:request", agentId="A", input=f"overdue {i} " + "x" * 300, wait=True)
    await call("agent:fork", sourceId="A", agentId="B", at=10)
    await call("agent:create", agentId="Q")
    await call("agent:suspend", agentId="Q")
    await call("agent:request", agentId="Q", input="queued")
    await call("covia:write", path="w/notes", value={"long": "y" * 400})
    await rt.close()
    return rt


def check(store: Any):
    return fsck(store, check_head=make_check_head(store))


async def test_healthy_store_passes() -> None:
    store = MemoryStore()
    await populate(store)
    report = check(store)
    assert report.ok, report.problems
    assert report.refs >= 40 and report.objects > 100


async def test_missing_and_corrupt_objects_are_reported() -> None:
    store = MemoryStore()
    await populate(store)
    tx = Tx(store)
    head = store.ref("g/local/A")
    history = tx.load_root(read_commit(store, head).root)["state"]["history"]  # a vector handle
    root_vnode = bytes(history.root.data)
    del store._objects[root_vnode]
    blob = next(d for d, n in store.objects() if n > 300 and store.get(d).startswith(b"\xda"))
    store._objects[blob] = store._objects[blob][:-1] + b"!"
    kinds = {(p.kind, p.ref.split("/")[0]) for p in check(store).problems}
    assert ("missing", "g") in kinds and (("corrupt", "g") in kinds or ("corrupt", "j") in kinds), kinds


async def test_inconsistent_records_are_reported() -> None:
    from lattice.store import RefUpdate
    store = MemoryStore()
    await populate(store)
    # forge a head: Q RUNNING with its task's job still PENDING, and a job record for another id
    for name, edit in (("g/local/Q", lambda r: {**r, "status": "RUNNING"}),
                       ("g/local/A", lambda r: {**r, "status": "BORED"})):
        tx = Tx(store)
        head = store.ref(name)
        c = read_commit(tx, head)
        rec = edit(tx.materialize(tx.raw_root(c.root)))
        d, _ = write_commit(tx, parent=head, parent_commit=c, root=tx.put_root(rec), ts=c.ts, op="forged",
                            input=None, caller="x")
        assert store.commit(tx.objects, [RefUpdate(name, head, d)])
    msgs = [p.message for p in check(store).problems if p.kind == "bad_record"]
    assert any("expected STARTED" in m for m in msgs), msgs
    assert any("'BORED'" in m for m in msgs), msgs


async def test_cli_fsck(tmp_path: Path) -> None:
    data = tmp_path / "db"
    store = LmdbStore(data)
    await populate(store)
    store.close()
    ok = subprocess.run([str(BIN / "lattice"), "fsck", "--data", str(data)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 problem(s)" in ok.stderr
    # corrupt one object on disk
    with LmdbStore(data) as s:
        key, value = next((d, s.get(d)) for d, n in s.objects() if n > 300)
    tamper_lmdb(data, key, value[:-1] + b"?")
    bad = subprocess.run([str(BIN / "lattice"), "fsck", "--data", str(data), "--quiet"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "corrupt" in bad.stdout and key.hex() in bad.stdout
    missing = subprocess.run([str(BIN / "lattice"), "fsck", "--data", str(tmp_path / "nope")], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr



async def test_a_task_recorded_twice_is_reported() -> None:
    """What a second server on the same data did: the in-flight task re-run and recorded again."""
    from lattice.nodes import seq_append, seq_iter
    from lattice.store import RefUpdate
    store = MemoryStore()
    await populate(store)
    tx = Tx(store)
    name, head = "g/local/A", store.ref("g/local/A")
    c = read_commit(tx, head)
    rec = tx.load_root(c.root)
    last = list(seq_iter(tx, rec["timeline"]))[-1]
    tid = next(iter(last["taskResults"]))
    forged = {**rec, "timeline": seq_append(tx, rec["timeline"], [{**last, "taskResults": {
        tid: {"status": "CANCELLED", "output": last["result"]}}}])}
    d, _ = write_commit(tx, parent=head, parent_commit=c, root=tx.put_root(forged), ts=c.ts, op="agent:run",
                        input=None, caller="local")
    assert store.commit(tx.objects, [RefUpdate(name, head, d)])
    msgs = [p.message for p in check(store).problems if p.kind == "bad_record"]
    assert any(f"task {tid} is recorded twice" in m for m in msgs), msgs


def test_a_second_writer_on_a_served_directory_is_refused(tmp_path: Path) -> None:
    from lattice.errors import ReadOnly, StoreLocked
    first = LmdbStore(tmp_path / "db")
    try:
        probe = subprocess.run([sys.executable, "-c", (
            "import sys\nfrom lattice.lmdb import LmdbStore\nfrom lattice.errors import StoreLocked\n"
            "try:\n    LmdbStore(sys.argv[1])\nexcept StoreLocked as e:\n    print(e.code, e.message); sys.exit(3)\n"
            "r = LmdbStore(sys.argv[1], readonly=True); print('reader', sum(1 for _ in r.refs(''))); r.close()\n"),
            str(tmp_path / "db")], capture_output=True, text=True, cwd=str(Path(__file__).parents[2]))
        assert probe.returncode == 3 and "store_locked" in probe.stdout and "is writing to" in probe.stdout, probe
        assert StoreLocked.code == "store_locked" and issubclass(ReadOnly, Exception)
    finally:
        first.close()
    reader = LmdbStore(tmp_path / "db", readonly=True)  # a reader takes no lock, and cannot write
    with pytest.raises(ReadOnly):
        reader.commit({}, [])
    reader.close()
    LmdbStore(tmp_path / "db").close()  # the lock went with the first writer


def test_two_servers_on_one_data_directory(tmp_path: Path) -> None:
    from tests.serve import free_port, serve
    data = str(tmp_path / "db")
    server = serve(free_port(), "--data", data)
    try:
        second = subprocess.run([str(BIN / "lattice"), "serve", "--data", data, "--port", str(free_port())],
                                capture_output=True, text=True, timeout=20)
        assert second.returncode != 0
        assert "another process" in second.stderr and "one server per data directory" in second.stderr, second.stderr
        beside = subprocess.run([str(BIN / "lattice"), "fsck", "--data", data], capture_output=True, text=True,
                                timeout=60)
        assert beside.returncode == 0, beside.stdout + beside.stderr  # fsck only reads: it runs beside the server
    finally:
        server.terminate()
        server.wait(10)
