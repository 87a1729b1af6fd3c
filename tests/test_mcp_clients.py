"""Third-party clients against a real `lattice serve`: the official MCP SDKs (TypeScript 1.x and 2.x, Python 1.x and
2.x, in each protocol mode they offer), the MCP Inspector's CLI (`--strict`, `--protocol-era modern`) and a browser
`EventSource` (the `eventsource` package) on a finished job's stream.

The clients are pinned in tests/mcp_clients (package-lock.json; the Python SDK 1.x in install.sh) and installed by
`tests/mcp_clients/install.sh`, which .ci/run runs. Without them these tests skip, unless LATTICE_REQUIRE_MCP_CLIENTS=1
(CI), where a missing client is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ops.domain.contracts import REGISTRY
from ops.surfaces.mcp import tool_name
from tests.serve import free_port, serve

CLIENTS = Path(__file__).resolve().parent / "mcp_clients"
NODE_MODULES = CLIENTS / "node_modules"
PY_MCP1 = CLIENTS / "py-mcp1" / "bin" / "python"
REQUIRED = os.environ.get("LATTICE_REQUIRE_MCP_CLIENTS") == "1"
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"


def _need(path: Path) -> None:
    if not path.exists():
        message = f"{path} is missing: run tests/mcp_clients/install.sh"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = serve(port, "--memory")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(CLIENTS / "node_modules" / ".home"), "NO_COLOR": "1"}
    return subprocess.run(cmd, cwd=CLIENTS, capture_output=True, text=True, timeout=timeout, env=env)


#: (client, command after the URL, protocol version it must end up speaking)
SDKS = [
    ("typescript-sdk-1.x", ["node", "drive.mjs", "sdk1"], [], HANDSHAKE),
    ("typescript-client-2.x legacy", ["node", "drive.mjs", "sdk2"], ["legacy"], HANDSHAKE),
    ("typescript-client-2.x auto", ["node", "drive.mjs", "sdk2"], ["auto"], MODERN),
    ("typescript-client-2.x pinned", ["node", "drive.mjs", "sdk2"], [MODERN], MODERN),
    ("python-sdk-1.x", [str(PY_MCP1), "drive_py.py"], [], HANDSHAKE),
    ("python-sdk-2.x legacy", [sys.executable, "drive_py.py"], ["legacy"], HANDSHAKE),
    ("python-sdk-2.x auto", [sys.executable, "drive_py.py"], ["auto"], MODERN),
    ("python-sdk-2.x pinned", [sys.executable, "drive_py.py"], [MODERN], MODERN),
]


@pytest.mark.parametrize("client, cmd, args, version", SDKS, ids=[s[0] for s in SDKS])
def test_official_sdk_clients(server, client: str, cmd: list[str], args: list[str], version: str) -> None:
    """Initialize (or discover), list the tools, a call that succeeds, one whose job FAILED, one with invalid
    arguments: every result as the spec says, and every structuredContent the declared outputSchema (each client
    validates it, and throws otherwise)."""
    _need(NODE_MODULES if cmd[0] == "node" else Path(cmd[0]))
    p = _run([*cmd, f"{server}/mcp", *args])
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in report, report
    assert report["protocolVersion"] == version, report
    assert report["tools"] == [tool_name(c) for c in REGISTRY.values()]
    if client != "python-sdk-2.x pinned":  # a pinned version asks the server nothing before its first call
        assert report["server"] == "agent-lattice"
    create, request = report["create"], report["request"]
    assert create.get("isError") is False and create["structuredContent"]["output"]["created"] is True, create
    assert request.get("isError") is False and request["structuredContent"]["output"]["output"] == "hello", request
    # a job that ends FAILED: a result, isError, the job (conforming to the outputSchema) with its code
    failed = report["failed"]
    assert failed.get("isError") is True and failed["structuredContent"]["status"] == "FAILED", failed
    assert failed["structuredContent"]["errorCode"] == "not_found"
    # arguments that violate the input schema: isError, the error as text, and no structuredContent to reject
    invalid = report["invalid"]
    assert "thrown" not in invalid and invalid["isError"] is True and invalid["structuredContent"] is None, invalid
    err = json.loads(invalid["text"])
    assert err["errorCode"] == "invalid_input" and err["path"] == "$.arguments.agentId"


def _inspector(server: str, *args: str) -> subprocess.CompletedProcess:
    return _run([str(NODE_MODULES / ".bin" / "mcp-inspector"), "--cli", f"{server}/mcp", *args])


def test_inspector_strict_finds_no_portability_problem(server) -> None:
    _need(NODE_MODULES)
    p = _inspector(server, "--method", "tools/list", "--strict")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Warning" not in p.stderr and "Error" not in p.stderr, p.stderr[-5000:]  # 79 warnings before
    assert len(json.loads(p.stdout)["tools"]) == len(REGISTRY)


def test_inspector_modern_era(server) -> None:
    _need(NODE_MODULES)
    p = _inspector(server, "--protocol-era", "modern", "--method", "tools/call", "--tool-name", "agent_create",
                   "--tool-args-json", json.dumps({"agentId": "I", "config": {"model": {"provider": "echo"}}}),
                   "--format", "json")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    result = json.loads(p.stdout)["result"]
    assert result["structuredContent"]["output"]["created"] is True
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "agent-lattice"  # the 2026 stamp
    p = _inspector(server, "--protocol-era", "modern", "--method", "tools/call", "--tool-name", "agent_info",
                   "--tool-args-json", json.dumps({"agentId": 7}), "--format", "json")
    result = json.loads(p.stdout)["result"]  # exit 5: the tool answered isError, as it should
    assert result["isError"] is True and "structuredContent" not in result


def test_a_browser_eventsource_stops_after_a_finished_job(server) -> None:
    """The final job-update carries an id; EventSource reconnects with it (after its retry delay) and the 204
    closes it for good, instead of refetching the final update every 3 s."""
    _need(NODE_MODULES)

    def invoke(op: str, inp: dict) -> dict:
        req = urllib.request.Request(f"{server}/api/v1/invoke", json.dumps({"operation": op, "input": inp}).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    invoke("agent:create", {"agentId": "ES", "config": {"model": {"provider": "echo"}}})
    job = invoke("agent:request", {"agentId": "ES", "input": "x", "wait": True})
    p = _run(["node", "eventsource.mjs", f"{server}/api/v1/jobs/{job['jobId']}/sse"], timeout=30)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout)
    assert report == {"done": "closed", "opens": 1, "events": [{"id": "COMPLETE", "status": "COMPLETE"}]}, report
