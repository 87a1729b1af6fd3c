"""The README walkthrough, run as written against a real `lattice serve` process."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def walkthrough_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        cmds += [line.strip() for line in block.splitlines() if line.strip()]
    return cmds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    lattice = BIN / "lattice"
    proc = subprocess.Popen([str(lattice), "serve", "--data", str(tmp_path / "data"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 or proc.returncode == -15, out.decode()
    assert b"Traceback" not in out, out.decode()


def run(cmd: str, port: int) -> dict | list | str:
    env = {**os.environ, "LATTICE_URL": f"http://127.0.0.1:{port}", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = cmd.replace("localhost:7770", f"127.0.0.1:{port}")
    p = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


def test_walkthrough_runs_as_written(server: int) -> None:
    cmds = walkthrough_commands()
    assert len(cmds) == 9, cmds
    out = {}
    for cmd in cmds:
        words = shlex.split(cmd)
        key = words[2] if words[:2] == ["lattice", "invoke"] else " ".join(words[:3])
        if words[:3] == ["lattice", "read", "g/Alice/timeline"]:
            for _ in range(100):  # the message's run finishes within milliseconds
                value = run(cmd, server)
                if len(value) == 2:
                    break
                time.sleep(0.02)
            out[key] = value
        else:
            out[key] = run(cmd, server)

    assert out["agent:create"]["output"] == {"agentId": "Alice", "status": "SLEEPING", "created": True, "updated": False}
    req = out["agent:request"]
    assert req["status"] == "COMPLETE" and req["output"]["answer"].startswith("Three vendors are overdue: Acme")
    assert out["agent:message"]["output"] == {"agentId": "Alice", "delivered": True}
    timeline = out["lattice read g/Alice/timeline"]
    assert [e["tasks"] for e in timeline] == [[{"question": "What vendors are overdue?"}], []]
    assert timeline[0]["taskResults"] == {req["jobId"]: {"status": "COMPLETE", "output": req["output"]}}
    assert timeline[1]["messages"][0]["message"] == "New invoice uploaded to w/invoices/INV-2026-042"
    assert timeline[1]["result"] == "Noted: I will include the new invoice in the next review."
    assert out["agent:fork"]["output"] == {"agentId": "Alice-v2", "status": "SLEEPING", "forkedFrom": "Alice"}
    info = out["agent:info"]["output"]
    assert (info["status"], info["taskCount"], info["timelineLength"], info["error"]) == ("SLEEPING", 0, 2, None)
    assert out["agent:list"]["output"]["agents"] == [
        {"agentId": "Alice", "status": "SLEEPING", "taskCount": 0, "error": None},
        {"agentId": "Alice-v2", "status": "SLEEPING", "taskCount": 0, "error": None}]
    assert out["lattice read g/Alice-v2/state/history/0"] == {
        "role": "user", "content": '{"question":"What vendors are overdue?"}'}
    curl = out["curl -s localhost:7770/api/v1/invoke"]
    assert curl["status"] == "COMPLETE" and curl["output"] == {"exists": True, "value": "SLEEPING"}


def test_cli_reports_errors_with_exit_codes(server: int) -> None:
    env = {**os.environ, "LATTICE_URL": f"http://127.0.0.1:{server}"}
    lattice = str(BIN / "lattice")
    p = subprocess.run([lattice, "invoke", "agent:crate", "{}"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "unknown_operation" in p.stderr and "agent:create" in p.stderr
    p = subprocess.run([lattice, "invoke", "agent:info", '{"agentId": "Nobody"}'], env=env, capture_output=True, text=True)
    assert p.returncode == 1 and json.loads(p.stdout)["error"]["code"] == "not_found"
    p = subprocess.run([lattice, "invoke", "agent:info", "{not json"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "not valid JSON" in p.stderr
    p = subprocess.run([lattice, "read", "g/Nobody"], env=env, capture_output=True, text=True)
    assert p.returncode == 1 and "nothing at g/Nobody" in p.stderr
    p = subprocess.run([lattice, "read", "bad//path"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "invalid_path" in p.stderr
    p = subprocess.run([lattice, "read", "g/x", "--url", "http://127.0.0.1:9"], capture_output=True, text=True)
    assert p.returncode != 0 and "cannot reach" in p.stderr
