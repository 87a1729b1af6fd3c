"""Authentication and isolation: bearer tokens name callers; a caller sees and touches only its own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ops.surfaces.auth import TokenFileError, Tokens
from ops.surfaces.client import Client, Rejected
from tests.serve import BIN, cli_env, free_port, serve

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-fedcba9876543210"


@pytest.fixture
async def client(start_app):
    """The app with two bearer tokens: alice's and bob's."""
    return await start_app(tokens=Tokens({ALICE: "alice", BOB: "bob"}))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def invoke(c: TestClient, token: str | None, op: str, **inp: Any) -> tuple[int, Any]:
    r = await c.post("/api/v1/invoke", json={"operation": op, "input": inp}, headers=auth(token) if token else {})
    return r.status, await r.json()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-00000000000"},
                                     {"Authorization": f"Basic {ALICE}"}, {"Authorization": "Bearer"},
                                     {"Authorization": f"Bearer {ALICE}x"}])
@pytest.mark.parametrize("method, path", [("POST", "/api/v1/invoke"), ("GET", "/api/v1/status"),
                                          ("GET", "/api/v1/jobs/0x" + "1" * 32), ("POST", "/mcp"),
                                          ("GET", "/api/v1/agents/A/events"), ("GET", "/api/v1/openapi.json")])
async def test_every_route_needs_a_valid_token(client, store, headers, method: str, path: str) -> None:
    before = list(store.refs(""))
    r = await client.request(method, path, headers=headers,
                             json={"operation": "agent:create", "input": {"agentId": "X"}} if method == "POST" else None)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    body = await r.json()
    assert body["errorCode"] == "unauthorized" and body["error"]
    assert list(store.refs("")) == before


async def test_two_callers_each_have_their_own_alice(client) -> None:
    for token in (ALICE, BOB):
        status, job = await invoke(client, token, "agent:create", agentId="Alice", state={"owner": token[:3]})
        assert status == 200 and job["output"]["created"] is True
    _, a_job = await invoke(client, ALICE, "agent:request", agentId="Alice", input="alice's secret", wait=True)
    assert a_job["output"]["output"] == "alice's secret"  # a string answer is wrapped
    await invoke(client, ALICE, "covia:write", path="w/notes", value="alice only")

    # bob sees his own Alice, and nothing of alice's
    _, read = await invoke(client, BOB, "covia:read", path="g/Alice/state/owner")
    assert read["output"] == {"exists": True, "value": "bob", "valueBytes": 5}
    _, tl = await invoke(client, BOB, "covia:read", path="g/Alice/timeline")
    assert tl["output"]["value"] == []
    _, listing = await invoke(client, BOB, "agent:list")
    assert [a["agentId"] for a in listing["output"]["agents"]] == ["Alice"]
    _, ws = await invoke(client, BOB, "covia:read", path="w/notes")
    assert ws["output"] == {"exists": False, "value": None}
    _, jobs = await invoke(client, BOB, "covia:read", path=f"j/{a_job['jobId']}")
    assert jobs["output"] == {"exists": False, "value": None}
    _, all_jobs = await invoke(client, BOB, "covia:read", path="j")
    assert a_job["jobId"] not in all_jobs["output"]["value"]  # his j/ holds only his own jobs
    assert all(j["operation"] != "agent:request" for j in all_jobs["output"]["value"].values())
    for method, path in (("GET", f"/api/v1/jobs/{a_job['jobId']}"), ("PUT", f"/api/v1/jobs/{a_job['jobId']}/cancel"),
                         ("GET", f"/api/v1/jobs/{a_job['jobId']}/sse")):
        r = await client.request(method, path, headers=auth(BOB))
        assert r.status == 404, (method, path)
    _, hist = await invoke(client, BOB, "agent:history", agentId="Alice")
    assert len(hist["output"]["versions"]) == 1  # only his creation
    # and cannot touch hers: his operations act on his namespace only
    _, fork = await invoke(client, BOB, "agent:fork", sourceId="Alice", agentId="Copy")
    _, copied = await invoke(client, BOB, "covia:read", path="g/Copy/state/owner")
    assert copied["output"]["value"] == "bob"
    _, still = await invoke(client, ALICE, "covia:read", path="g/Alice/timeline")
    assert len(still["output"]["value"]) == 1
    r = await client.get("/api/v1/status", headers=auth(ALICE))
    st = await r.json()
    assert st["agents"] == 1
    # no whole-store figures: equal values are stored once, so object counts would tell bob
    # whether alice stored the value he guesses; nor the server's data path
    assert st["store"] == {"backend": "MemoryStore"}, st


async def test_status_is_no_oracle_on_other_callers_data(start_app) -> None:
    """Bob cannot learn from the store's figures whether alice stored a value he guesses."""
    shared = await start_app("lmdb", tokens=Tokens({ALICE: "alice", BOB: "bob"}))
    single = await start_app("lmdb")
    guess = {"secret": "s" * 3000}
    for c, headers in ((shared, auth(BOB)), (single, {})):
        before = await (await c.get("/api/v1/status", headers=headers)).json()
        await c.post("/api/v1/invoke", json={"operation": "covia:write", "input": {"path": "w/g", "value": guess}},
                     headers=headers)
        after = await (await c.get("/api/v1/status", headers=headers)).json()
        if c is shared:
            assert before["store"] == after["store"] == {"backend": "LmdbStore"}  # nothing whole-store, no path
        else:  # one local caller: the whole store is its own
            assert {"path", "objects", "refs"} <= set(after["store"]) and after["store"]["objects"] > before["store"]["objects"]


async def test_the_python_client_sends_its_token(client) -> None:
    import aiohttp

    url = str(client.make_url("")).rstrip("/")
    async with Client(url, token=ALICE) as alice:
        assert (await alice.agent_create(agentId="A")).result().created is True
        updates = [j.status async for j in alice.stream("agent:list", {})]
        assert updates == ["COMPLETE"] and (await alice.status())["agents"] == 1
    async with aiohttp.ClientSession() as shared:  # a session of the caller's own carries the token too
        bob = Client(url, session=shared, token=BOB)
        assert (await bob.agent_list()).result().agents == []
    async with Client(url) as nobody:
        with pytest.raises(Rejected) as e:
            await nobody.agent_list()
        assert e.value.status == 401 and e.value.code == "unauthorized"


async def test_mcp_uses_the_same_authentication(client) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = await client.post("/mcp", json=init, headers={"Accept": "application/json, text/event-stream"})
    assert r.status == 401
    r = await client.post("/mcp", json=init, headers={**auth(BOB), "Accept": "application/json, text/event-stream"})
    assert r.status == 200
    sid = r.headers["Mcp-Session-Id"]
    await invoke(client, ALICE, "agent:create", agentId="OnlyAlice")
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "agent_list", "arguments": {}}}
    r = await client.post("/mcp", json=call, headers={**auth(BOB), "Accept": "application/json, text/event-stream",
                                                     "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
    assert "OnlyAlice" not in await r.text()


@pytest.mark.parametrize("origin, status", [("https://evil.example", 403), ("http://localhost:3000", 200),
                                            ("http://127.0.0.1:8080", 200)])
async def test_foreign_browser_origins_are_refused(client, origin: str, status: int) -> None:
    r = await client.post("/api/v1/invoke", json={"operation": "agent:list", "input": {}},
                          headers={**auth(ALICE), "Origin": origin})
    assert r.status == status
    if status == 403:
        assert (await r.json())["errorCode"] == "forbidden"


def test_token_file_validation(tmp_path: Path) -> None:
    for content, words in (("[]", "JSON object"), ("{", "not JSON"), ('{"short": "alice"}', "at least 16"),
                           ('{"0123456789abcdef": "a/b"}', "caller id"), ("{}", "no tokens")):
        f = tmp_path / "t.json"
        f.write_text(content)
        with pytest.raises(TokenFileError, match=words):
            Tokens.load(f)
    with pytest.raises(TokenFileError, match="cannot read"):
        Tokens.load(tmp_path / "missing.json")
    t = Tokens({ALICE: "alice"})
    assert ALICE not in repr(t) and t.caller(f"bearer {ALICE}") == "alice" and t.caller(None) is None


def test_serve_refuses_a_remote_bind_without_tokens(tmp_path: Path) -> None:
    p = subprocess.run([str(BIN / "lattice"), "serve", "--memory", "--host", "0.0.0.0", "--port", "1"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "--tokens" in p.stderr and "--insecure-remote" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": "y"}')
    p = subprocess.run([str(BIN / "lattice"), "serve", "--memory", "--tokens", str(bad), "--port", "1"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "at least 16" in p.stderr


def test_tokens_over_a_real_server_and_never_logged(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({ALICE: "alice", BOB: "bob"}))
    port = free_port()
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = serve(port, "--data", str(tmp_path / "d"), "--tokens", str(tokens), "--log-level", "debug", output=out)
        try:
            lattice = str(BIN / "lattice")
            p = subprocess.run([lattice, "invoke", "agent:list"], env=cli_env(port), capture_output=True, text=True)
            assert p.returncode == 2 and "unauthorized" in p.stderr
            p = subprocess.run([lattice, "invoke", "agent:create", '{"agentId": "A"}'],
                               env=cli_env(port, LATTICE_TOKEN=ALICE), capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
            p = subprocess.run([lattice, "read", "g/A/status"], env=cli_env(port, LATTICE_TOKEN=BOB),
                               capture_output=True, text=True)
            assert p.returncode == 1 and "nothing at g/A/status" in p.stderr
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    text = log.read_text()
    assert "POST /api/v1/invoke" in text and "2 bearer token(s)" in text
    assert ALICE not in text and BOB not in text
    for f in (tmp_path / "d").rglob("*"):
        assert ALICE.encode() not in f.read_bytes() and BOB.encode() not in f.read_bytes()


async def test_mcp_sessions_belong_to_their_caller(client) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    r = await client.post("/mcp", json=init, headers={**auth(ALICE), **accept})
    sid = r.headers["Mcp-Session-Id"]
    r = await client.delete("/mcp", headers={**auth(BOB), "Mcp-Session-Id": sid})
    assert r.status == 404  # bob cannot end alice's session
    ping = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    r = await client.post("/mcp", json=ping, headers={**auth(BOB), **accept, "Mcp-Session-Id": sid,
                                                     "MCP-Protocol-Version": "2025-06-18"})
    assert r.status == 404  # nor use it
    r = await client.post("/mcp", json=ping, headers={**auth(ALICE), **accept, "Mcp-Session-Id": sid,
                                                     "MCP-Protocol-Version": "2025-06-18"})
    assert r.status == 200


async def test_no_surface_shows_a_caller_the_servers_paths(start_app, tmp_path) -> None:
    """With tokens, nothing a caller can ask for (REST, the streams' first events, MCP in both eras, the documents,
    errors) names the server's data directory."""
    c = await start_app("lmdb", tokens=Tokens({ALICE: "alice", BOB: "bob"}))
    h = {**auth(BOB), "Accept": "application/json, text/event-stream"}
    seen: list[str] = []

    async def get(path: str, **kw) -> None:
        r = await c.get(path, headers={**auth(BOB), **kw.pop("headers", {})}, **kw)
        seen.append(await r.text() if r.content_type != "text/event-stream" else (await r.content.readline()).decode())
        r.close()

    await invoke(c, BOB, "agent:create", agentId="B")
    for op, inp in (("agent:info", {"agentId": "B"}), ("covia:read", {"path": "g"}), ("covia:list", {"path": "w"}),
                    ("agent:info", {"agentId": "Nobody"}), ("covia:read", {"path": "x"}), ("agent:context",
                                                                                           {"agentId": "B"})):
        seen.append(json.dumps(await invoke(c, BOB, op, **inp)))
    for path in ("/api/v1/status", "/api/v1/operations", "/api/v1/openapi.json", "/api/v1/jobs/0x" + "0" * 32):
        await get(path)
    await get("/api/v1/agents/B/events", headers={"Accept": "text/event-stream"})
    r = await c.post("/mcp", headers=h, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    seen.append(await r.text())
    sid = r.headers["Mcp-Session-Id"]
    for method, params in (("tools/list", {}), ("tools/call", {"name": "agent_info", "arguments": {"agentId": 1}})):
        r = await c.post("/mcp", headers={**h, "Mcp-Session-Id": sid},
                         json={"jsonrpc": "2.0", "id": 2, "method": method, "params": params})
        seen.append(await r.text())
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    r = await c.post("/mcp", headers={**h, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"},
                     json={"jsonrpc": "2.0", "id": 3, "method": "server/discover", "params": {"_meta": meta}})
    seen.append(await r.text())
    text = "\n".join(seen)
    assert str(tmp_path) not in text and "lmdb-" not in text, [s for s in seen if "lmdb-" in s or str(tmp_path) in s]
