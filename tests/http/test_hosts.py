"""DNS rebinding: without tokens, a request whose ``Host`` is not this server's name is refused (403 ``forbidden``)
on every surface (REST, the event streams, MCP); loopback names and ``--allow-host`` names are answered; with tokens
every ``Host`` is (the token is the protection)."""

from __future__ import annotations

import pytest

from ops.surfaces.auth import Tokens
from ops.surfaces.common import host_name
from tests.http.helpers import ECHO, create

TOKEN = "host-test-token-0123456789"
MCP_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}


async def _get(client, host: str, what: str, headers: dict | None = None):
    """One request of each surface with ``Host: host``: ``(status, JSON body)``."""
    h = {"Host": host, **(headers or {})}
    if what == "rest":
        r = await client.get("/api/v1/status", headers=h)
    elif what == "invoke":
        r = await client.post("/api/v1/invoke", json={"operation": "agent:list"}, headers=h)
    elif what == "events":
        r = await client.get("/api/v1/agents/A/events", headers={**h, "Accept": "text/event-stream"})
    elif what == "openapi":
        r = await client.get("/api/v1/openapi.json", headers=h)
    else:
        r = await client.post("/mcp", json=MCP_INIT, headers={**h, "Accept": "application/json, text/event-stream"})
    body = await r.json() if r.content_type == "application/json" else None
    r.close()
    return r.status, body


SURFACES = ["rest", "invoke", "events", "openapi", "mcp"]


@pytest.mark.parametrize("what", SURFACES)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:7770", "127.0.0.1.evil.example", "localhost.evil",
                                  "[::2]:80", "127.0.0.2", "0.0.0.0", "", "\u00e9vil"])
async def test_a_foreign_host_is_refused_without_tokens(start_app, store, host: str, what: str) -> None:
    client = await start_app()
    await create(client, "A", ECHO)
    before = list(store.refs(""))
    status, body = await _get(client, host, what)
    assert status == 403, (status, body)
    if what == "mcp":
        assert body["error"]["code"] == -32600 and "Host" in body["error"]["message"]
    else:
        assert body["errorCode"] == "forbidden" and "--allow-host" in body["hint"]
    assert list(store.refs("")) == before


@pytest.mark.parametrize("what", SURFACES)
@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:7770", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:7770"])
async def test_loopback_names_are_answered(start_app, host: str, what: str) -> None:
    client = await start_app()
    await create(client, "A", ECHO)
    assert (await _get(client, host, what))[0] == 200


@pytest.mark.parametrize("what", SURFACES)
async def test_allowed_hosts_are_answered(start_app, what: str) -> None:
    client = await start_app(allowed_hosts=frozenset({"Lattice.Internal", "10.0.0.7:7770"}))
    await create(client, "A", ECHO)
    for host in ("lattice.internal", "lattice.internal:80", "10.0.0.7", "localhost"):
        assert (await _get(client, host, what))[0] == 200, host
    assert (await _get(client, "other.internal", what))[0] == 403
    anyone = await start_app(allowed_hosts=frozenset({"*"}))
    await create(anyone, "A", ECHO)
    assert (await _get(anyone, "evil.example", what))[0] == 200


@pytest.mark.parametrize("what", SURFACES)
async def test_with_tokens_any_host_is_answered(start_app, what: str) -> None:
    client = await start_app(tokens=Tokens({TOKEN: "alice"}))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = await client.post("/api/v1/invoke", headers=auth, json={"operation": "agent:create",
                                                                "input": {"agentId": "A", "config": ECHO}})
    assert r.status == 200
    assert (await _get(client, "evil.example", what, auth))[0] == 200
    assert (await _get(client, "evil.example", what))[0] == 401  # the token still is required


def test_host_name_parsing() -> None:
    assert host_name("LOCALHOST:7770") == "localhost"
    assert host_name("[::1]:7770") == host_name("[::1]") == "::1"
    assert host_name("127.0.0.1:") == "127.0.0.1:"  # no port after the colon: not a name
    assert host_name("[::1]x") == "[::1]x" and host_name("[::1]:x") == "[::1]:x"
    assert host_name("::1") == "::1"
