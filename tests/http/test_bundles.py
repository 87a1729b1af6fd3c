"""Export an agent as a bundle, import it elsewhere (another server, under another id) and
replay it there; bad bundles (cut, changed, incomplete, not a bundle) write nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lattice.bundle import MAGIC, BundleError, read_bundle
from tests.http.helpers import invoke, ok
from tests.serve import BIN, free_port, serve

TOOLS = {"model": {"provider": "scripted", "rules": [
    {"when": "note", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/memo", "value": "n"}},
                                   {"name": "agent_message", "arguments": {"agentId": "Src", "message": "self"}}]},
    {"content": "ok"}]}}


async def make_agent(client) -> None:
    await ok(client, "agent:create", {"agentId": "Base", "config": TOOLS})
    for i in range(6):
        await ok(client, "agent:request", {"agentId": "Base", "input": f"note {i} " + "x" * 500, "wait": True})
    await ok(client, "agent:fork", {"sourceId": "Base", "agentId": "Src", "at": 6})
    for i in range(3):
        await ok(client, "agent:request", {"agentId": "Src", "input": f"note more {i}", "wait": True})
    await ok(client, "agent:suspend", {"agentId": "Src"})
    await invoke(client, "agent:request", {"agentId": "Src", "input": "still pending"})  # queued work travels too


async def export(client, aid: str, from_: int | None = None) -> bytes:
    r = await client.get(f"/api/v1/agents/{aid}/export", params=None if from_ is None else {"from": str(from_)})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "application/vnd.lattice.bundle"
    return await r.read()


async def do_import(client, aid: str, data: bytes) -> tuple[int, Any]:
    r = await client.post(f"/api/v1/agents/{aid}/import", data=data,
                          headers={"Content-Type": "application/vnd.lattice.bundle"})
    return r.status, await r.json()


async def refs(client) -> Any:
    return (await invoke(client, "covia:list", {"path": "g"}))[1]["output"]


async def test_round_trip_to_another_server_replays_identical(start_app) -> None:
    src = await start_app("lmdb")
    dst = await start_app("lmdb")
    await make_agent(src)
    data = await export(src, "Src")
    assert data.startswith(MAGIC) and len(data) > 6 * 500
    status, out = await do_import(dst, "Copy", data)
    assert status == 200, out
    assert out["agentId"] == "Copy" and out["fromAgentId"] == "Src" and out["status"] == "SUSPENDED"
    replay = await ok(dst, "agent:replay", {"agentId": "Copy"})
    assert replay["identical"] is True and replay["replayed"] == out["versions"], replay
    history = await ok(dst, "agent:history", {"agentId": "Copy", "limit": 1})
    assert history["versions"][0]["op"] == "agent:import"  # the audit trail says it was imported
    a = await ok(src, "covia:read", {"path": "g/Src/state/history"})
    b = await ok(dst, "covia:read", {"path": "g/Copy/state/history"})
    assert a == b
    info = await ok(dst, "agent:info", {"agentId": "Copy"})
    assert info["taskCount"] == 1
    await ok(dst, "agent:resume", {"agentId": "Copy"})  # its pending task runs on the new server
    done = await ok(dst, "agent:request", {"agentId": "Copy", "input": "after", "wait": True})
    assert done["output"] == "ok"  # a string answer is wrapped
    assert (await ok(dst, "agent:replay", {"agentId": "Copy"}))["identical"] is True
    status, again = await do_import(dst, "Copy", data)
    assert status == 409 and again["errorCode"] == "conflict"


async def test_export_from_a_version_imports_as_an_agent_whose_history_starts_there(start_app) -> None:
    """Every version an export can start from gives a bundle that imports as an agent whose
    history starts at that version (a pruned base), replays identical and fsck-clean; a start
    whose later run needs an older state is refused with conflict and its hint."""
    from lattice.fsck import fsck
    from ops.domain.check import make_check_head
    from ops.surfaces.common import RUNTIME
    src = await start_app("lmdb")
    await make_agent(src)
    versions = (await ok(src, "agent:history", {"agentId": "Src", "limit": 1000}))["versions"]
    first, top = versions[-1]["seq"], versions[0]["seq"]
    whole = await export(src, "Src")
    head_state = await ok(src, "covia:read", {"path": "g/Src/state/history"})
    imported = refused = 0
    for k in range(first + 1, top + 1):
        r = await src.get("/api/v1/agents/Src/export", params={"from": str(k)})
        if r.status == 409:
            err = (await r.json())["error"]
            assert err["code"] == "conflict" and "started from version" in err["message"], err
            assert int(err["hint"].split()[-2]) < k  # "export from N at most"
            refused += 1
            continue
        assert r.status == 200, await r.text()
        data = await r.read()
        header, _ = read_bundle([data])
        assert header["from"] == k and header["versions"] == top + 1
        assert len(data) < len(whole)
        dst = await start_app("lmdb")  # a server of its own: the agent's pending work travels with it
        status, out = await do_import(dst, f"Tail{k}", data)
        assert status == 200, out
        history = (await ok(dst, "agent:history", {"agentId": f"Tail{k}", "limit": 1000}))["versions"]
        assert [v["seq"] for v in history] == list(range(top + 1, k - 1, -1))  # its import on top
        assert history[-1]["op"] == "agent:prune"  # the base: version k's state, taken as given
        replay = await ok(dst, "agent:replay", {"agentId": f"Tail{k}"})
        assert replay["identical"] is True and replay["replayed"] == top + 2 - k, replay
        assert await ok(dst, "covia:read", {"path": f"g/Tail{k}/state/history"}) == head_state
        at_k = await ok(src, "covia:read", {"path": "g/Src/state/history", "at": k})
        assert await ok(dst, "covia:read", {"path": f"g/Tail{k}/state/history", "at": k}) == at_k
        status, old = await invoke(dst, "covia:read", {"path": f"g/Tail{k}/state", "at": k - 1})
        assert old["errorCode"] == "not_found", old  # not in the bundle
        store = dst.app[RUNTIME].store
        report = fsck(store, check_head=make_check_head(store))
        assert report.ok, report.problems[:5]
        imported += 1
    assert imported >= 2, (imported, refused)
    assert await ok(src, "agent:history", {"agentId": "Src", "limit": 1000}) == {"agentId": "Src",
                                                                              "versions": versions}  # unchanged


async def test_export_from_inside_a_run_is_refused_with_the_version_it_needs(start_app, monkeypatch) -> None:
    """A run that started from version a and committed at a + 2 (a message landed at a + 1
    meanwhile): its replay needs version a, so an export from a + 1 is refused; from a it works."""
    import asyncio

    from ops.llm.deterministic import EchoAdapter
    gate = asyncio.Event()
    real = EchoAdapter.complete

    async def slow(self, request):
        await gate.wait()
        return await real(self, request)
    monkeypatch.setattr(EchoAdapter, "complete", slow)
    src = await start_app("lmdb")
    await ok(src, "agent:create", {"agentId": "A", "config": {"model": {"provider": "echo"}}})
    assert (await invoke(src, "agent:request", {"agentId": "A", "input": "slow"}))[0] == 202  # accepted
    for _ in range(200):  # until the run has started from the accepting version
        if (await ok(src, "agent:info", {"agentId": "A"}))["status"] == "RUNNING":
            break
        await asyncio.sleep(0.01)
    accepted = (await ok(src, "agent:history", {"agentId": "A", "limit": 1}))["versions"][0]["seq"]
    await ok(src, "agent:message", {"agentId": "A", "message": "meanwhile"})
    gate.set()
    assert (await invoke(src, "agent:request", {"agentId": "A", "input": "after", "wait": True}))[0] == 200
    versions = (await ok(src, "agent:history", {"agentId": "A", "limit": 100}))["versions"]
    run = next(v for v in reversed(versions) if v["op"] == "agent:run")
    assert run["seq"] >= accepted + 2, versions  # the message landed between its start and its end
    r = await src.get("/api/v1/agents/A/export", params={"from": str(accepted + 1)})
    err = await r.json()
    assert r.status == 409 and err["errorCode"] == "conflict" and err["hint"] == f"export from {accepted} at most", err
    data = await export(src, "A", accepted)
    dst = await start_app("lmdb")
    status, out = await do_import(dst, "B", data)
    assert status == 200, out
    replay = await ok(dst, "agent:replay", {"agentId": "B"})
    assert replay["identical"] is True, replay


@pytest.mark.parametrize("query, status, code", [
    ("-1", 400, "invalid_input"), ("x", 400, "invalid_input"), ("1.5", 400, "invalid_input"),
    ("999", 404, "not_found"),
])
async def test_export_from_a_bad_version_is_refused(start_app, query, status, code) -> None:
    src = await start_app()
    await ok(src, "agent:create", {"agentId": "A"})
    r = await src.get("/api/v1/agents/A/export", params={"from": query})
    assert r.status == status and (await r.json())["errorCode"] == code


async def test_export_from_a_pruned_version_is_not_found(start_app) -> None:
    src = await start_app()
    await ok(src, "agent:create", {"agentId": "A", "config": {"model": {"provider": "echo"}}})
    for i in range(4):
        await ok(src, "agent:request", {"agentId": "A", "input": f"t{i}", "wait": True})
    pruned = await ok(src, "agent:prune", {"agentId": "A", "keepLast": 2})
    r = await src.get("/api/v1/agents/A/export", params={"from": str(pruned["base"] - 1)})
    body = await r.json()
    assert r.status == 404 and "squashed" in body["error"], body
    data = await export(src, "A", pruned["base"])  # the base itself: the chain as it is
    assert read_bundle([data])[0]["from"] == pruned["base"]


@pytest.mark.parametrize("from_", [None, "top"])
@pytest.mark.parametrize("damage, code", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:-3], "truncated"),
    (lambda b: b[:400] + bytes([b[400] ^ 1]) + b[401:], None),  # a flipped bit: corrupt_object or tampered
    (lambda b: b"not a bundle at all", "bad_format"),
    (lambda b: b"", "truncated"),
])
async def test_bad_bundles_write_nothing(start_app, damage, code, from_) -> None:
    src = await start_app("lmdb")
    await make_agent(src)
    top = (await ok(src, "agent:history", {"agentId": "Src", "limit": 1}))["versions"][0]["seq"]
    data = await export(src, "Src", None if from_ is None else top)
    dst = await start_app("lmdb")
    before = await refs(dst)
    status, out = await do_import(dst, "Bad", damage(data))
    assert status == 400, out
    assert out["errorCode"] == code if code else out["errorCode"] in ("corrupt_object", "tampered")
    assert await refs(dst) == before


def test_an_incomplete_bundle_is_refused() -> None:
    from lattice.bundle import write_bundle
    from lattice.memory import MemoryStore
    from lattice.nodes import Tx
    from lattice.commits import write_commit
    store = MemoryStore()
    tx = Tx(store)
    root = tx.put_root({"text": "x" * 1000})
    d, _ = write_commit(tx, parent=None, parent_commit=None, root=root, ts=1, op="agent:create", input=None,
                        caller="c")
    store.commit(tx.objects, [])
    blob = next(d for d, n in store.objects() if n > 900)
    chunks = list(write_bundle(lambda k: store.get(k) if k != blob else b"", d, {}))
    with pytest.raises(BundleError) as e:  # the object frame of the blob is empty: its digest does not match
        read_bundle(chunks)
    assert e.value.code == "corrupt_object"

    def skip_blob() -> list[bytes]:  # a writer that leaves the blob out, but is otherwise consistent
        import blake3
        import struct
        out, h, n = [], blake3.blake3(), 0
        for c in write_bundle(store.get, d, {}):
            if c[:1] == b"O" and c[5:37] == blob:
                continue
            if c[:1] == b"E":
                break
            out.append(c)
            h.update(c)
            n += c[:1] == b"O"
        end = h.digest() + n.to_bytes(8, "big")
        return out + [struct.pack(">cI", b"E", len(end)) + end]
    with pytest.raises(BundleError) as e:
        read_bundle(skip_blob())
    assert e.value.code == "incomplete" and blob.hex() in e.value.message


def test_cli_export_import(tmp_path: Path) -> None:
    port = free_port()
    server = serve(port, "--data", str(tmp_path / "a"))
    env = {**os.environ, "LATTICE_URL": f"http://127.0.0.1:{port}"}
    try:
        for body in ('{"agentId": "A"}', '{"agentId": "A", "input": "hi", "wait": true}'):
            op = "agent:create" if "input" not in body else "agent:request"
            assert subprocess.run([str(BIN / "lattice"), "invoke", op, body], env=env, capture_output=True).returncode == 0
        bundle = tmp_path / "A.lattice"
        ex = subprocess.run([str(BIN / "lattice"), "export", "A", "-o", str(bundle)], env=env, capture_output=True,
                            text=True)
        assert ex.returncode == 0 and bundle.stat().st_size > 0, ex.stderr
        im = subprocess.run([str(BIN / "lattice"), "import", str(bundle), "--as", "B"], env=env, capture_output=True,
                            text=True)
        assert im.returncode == 0 and '"fromAgentId": "A"' in im.stdout, im.stderr
        tail = tmp_path / "A-tail.lattice"
        ex = subprocess.run([str(BIN / "lattice"), "export", "A", "--from", "2", "-o", str(tail)], env=env,
                            capture_output=True, text=True)
        assert ex.returncode == 0 and 0 < tail.stat().st_size < bundle.stat().st_size, ex.stderr
        im = subprocess.run([str(BIN / "lattice"), "import", str(tail), "--as", "T"], env=env, capture_output=True,
                            text=True)
        assert im.returncode == 0 and '"fromAgentId": "A"' in im.stdout, im.stderr
        far = subprocess.run([str(BIN / "lattice"), "export", "A", "--from", "99", "-o", str(tmp_path / "far")],
                             env=env, capture_output=True, text=True)
        assert far.returncode == 2 and "not_found" in far.stderr and not (tmp_path / "far").exists()
        assert not (tmp_path / "far.part").exists()
        bundle.write_bytes(bundle.read_bytes()[:-10])
        bad = subprocess.run([str(BIN / "lattice"), "import", str(bundle), "--as", "C"], env=env, capture_output=True,
                             text=True)
        assert bad.returncode == 2 and "truncated" in bad.stderr
        missing = subprocess.run([str(BIN / "lattice"), "export", "Nope", "-o", str(tmp_path / "n")], env=env,
                                 capture_output=True, text=True)
        assert missing.returncode == 2 and "not_found" in missing.stderr and not (tmp_path / "n").exists()
    finally:
        server.terminate()
        server.wait(10)


async def test_a_bundle_larger_than_the_request_body_limit_imports(start_app) -> None:
    src = await start_app("lmdb")
    await ok(src, "agent:create", {"agentId": "Big"})
    for i in range(12):  # ~1.2 MB of distinct text, past the 1 MiB body limit of /invoke
        await ok(src, "agent:request", {"agentId": "Big", "input": f"{i} " + os.urandom(50_000).hex(), "wait": True})
    data = await export(src, "Big")
    assert len(data) > (1 << 20)
    dst = await start_app("lmdb")
    status, out = await do_import(dst, "Big", data)
    assert status == 200, out
    assert (await ok(dst, "agent:replay", {"agentId": "Big"}))["identical"] is True


def test_a_writer_reading_many_at_once_writes_the_same_bundle_content() -> None:
    """``write_bundle(get_many=...)`` (a layer at a time, for PostgreSQL) holds the same objects as the
    depth-first writer, reads back whole, and fails like ``get`` on an object it cannot read."""
    from lattice.commits import write_commit
    from lattice.errors import CorruptObject
    from lattice.memory import MemoryStore
    from lattice.nodes import Tx
    from lattice.bundle import write_bundle
    store = MemoryStore()
    tx = Tx(store)
    head, c = None, None
    for i in range(40):
        root = tx.put_root({"messages": [f"m{k} " + "y" * 50 for k in range(i * 3)], "i": i})
        head, c = write_commit(tx, parent=head, parent_commit=c, root=root, ts=i, op="agent:request",
                               input={"n": i}, caller="c")
    store.commit(tx.objects, [])
    calls = []

    def get_many(ds):
        calls.append(len(ds))
        return {d: store.get(d) for d in ds if store.has(d)}
    deep = read_bundle(list(write_bundle(store.get, head, {"x": 1})))
    wide = read_bundle(list(write_bundle(store.get, head, {"x": 1}, None, get_many)))
    assert deep[1] == wide[1] and deep[0] == wide[0] and len(wide[1]) > 100
    assert len(calls) < len(wide[1]) / 4  # many objects per read
    victim = next(d for d in wide[1] if d != head)

    def bad_get(d):
        if d == victim:
            raise CorruptObject("changed on disk")
        return store.get(d)
    with pytest.raises(CorruptObject):
        list(write_bundle(bad_get, head, {}, None, lambda ds: {d: store.get(d) for d in ds if d != victim}))
