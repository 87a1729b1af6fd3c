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


async def export(client, aid: str) -> bytes:
    r = await client.get(f"/api/v1/agents/{aid}/export")
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
    assert done == "ok"
    assert (await ok(dst, "agent:replay", {"agentId": "Copy"}))["identical"] is True
    status, again = await do_import(dst, "Copy", data)
    assert status == 409 and again["errorCode"] == "conflict"


@pytest.mark.parametrize("damage, code", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:-3], "truncated"),
    (lambda b: b[:400] + bytes([b[400] ^ 1]) + b[401:], None),  # a flipped bit: corrupt_object or tampered
    (lambda b: b"not a bundle at all", "bad_format"),
    (lambda b: b"", "truncated"),
])
async def test_bad_bundles_write_nothing(start_app, damage, code) -> None:
    src = await start_app("lmdb")
    await make_agent(src)
    data = await export(src, "Src")
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
