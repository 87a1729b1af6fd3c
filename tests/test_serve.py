"""A real `lattice serve`: the Host names it answers (--allow-host), and how it stops."""

from __future__ import annotations

import http.client
import json
import subprocess

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
        assert body["error"]["code"] == "forbidden" and "--allow-host" in body["error"]["hint"]


def test_serve_help_explains_allow_host() -> None:
    from tests.serve import BIN
    out = subprocess.run([str(BIN / "lattice"), "serve", "--help"], capture_output=True, text=True, timeout=20).stdout
    assert "--allow-host" in out and "DNS rebinding" in out
