"""A real `lattice serve`: the Host names it answers (--allow-host), and how it stops."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time

import pytest

from tests.serve import free_port, serve


def _status(port: int, host: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", "/api/v1/status", skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def allow_host_server():
    port = free_port()
    proc = serve(port, "--memory", "--allow-host", "box.example", "--allow-host", "[fd00::1]:7770")
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("host, status", [("localhost:1", 200), ("127.0.0.1", 200), ("[::1]:7770", 200),
                                          ("box.example", 200), ("BOX.example:8080", 200), ("[fd00::1]", 200),
                                          ("evil.example", 403), ("box.example.evil", 403)])
def test_serve_answers_its_own_names_and_allowed_hosts(allow_host_server, host: str, status: int) -> None:
    got, body = _status(allow_host_server, host)
    assert got == status, body
    if status == 403:
        assert body["errorCode"] == "forbidden" and "--allow-host" in body["hint"]


def test_serve_help_explains_allow_host() -> None:
    from tests.serve import BIN
    out = subprocess.run([str(BIN / "lattice"), "serve", "--help"], capture_output=True, text=True, timeout=20).stdout
    assert "--allow-host" in out and "DNS rebinding" in out


def _open(port: int, raw: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(raw)
    return s


def _post(port: int, path: str, body: dict, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    return conn.getresponse()


def _request(path: str, body: dict | None = None, headers: dict | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = [f"{'GET' if body is None else 'POST'} {path} HTTP/1.1", "Host: 127.0.0.1",
            *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def _read_all(s: socket.socket) -> bytes:
    out = b""
    s.settimeout(5)
    while chunk := s.recv(65536):
        out += chunk
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_within_two_seconds_with_streams_and_waits_open(sig: signal.Signals) -> None:
    port = free_port()
    proc = serve(port, "--memory")
    try:
        for agent, model in (("A", "echo"), ("H", "hang")):
            assert _post(port, "/api/v1/invoke", {"operation": "agent:create", "input": {
                "agentId": agent, "config": {"model": {"provider": model}}}}).status == 200
        job = json.loads(_post(port, "/api/v1/invoke", {"operation": "agent:request", "input": {
            "agentId": "H", "input": "forever"}}).read())["jobId"]
        r = _post(port, "/mcp", {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
            {"Accept": "application/json, text/event-stream"})
        sid = r.getheader("Mcp-Session-Id")
        mcp = {"Accept": "application/json, text/event-stream", "Mcp-Session-Id": sid}
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "agent_request", "arguments": {"agentId": "H", "input": "x", "wait": True}}}
        clients = {
            "agent events": _open(port, _request("/api/v1/agents/A/events", headers={"Accept": "text/event-stream"})),
            "job events": _open(port, _request(f"/api/v1/jobs/{job}/sse", headers={"Accept": "text/event-stream"})),
            "invoke wait": _open(port, _request("/api/v1/invoke", {"operation": "agent:request", "input": {
                "agentId": "H", "input": "y", "wait": True}})),
            "mcp call": _open(port, _request("/mcp", call, mcp)),
        }
        time.sleep(0.5)  # every request is in: the streams have sent their first event
        start = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=5)
        took = time.monotonic() - start
        assert took < 2.0, f"exit took {took:.2f}s"
        assert proc.returncode == 0, proc.stdout.read().decode() if proc.stdout else ""
        got = {name: _read_all(s) for name, s in clients.items()}
        for name in ("agent events", "job events"):  # each stream ended cleanly: its last chunk was sent
            assert got[name].startswith(b"HTTP/1.1 200") and got[name].endswith(b"\r\n0\r\n\r\n"), (name, got[name])
        assert got["invoke wait"].startswith(b"HTTP/1.1 503") and b'"unavailable"' in got["invoke wait"]
        assert got["mcp call"].startswith(b"HTTP/1.1 ") and b"-32603" in got["mcp call"]
        assert b"shutting down" in got["mcp call"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
