"""The README walkthrough, run as written against a real `lattice serve` process."""

from __future__ import annotations

import json
import re
import shlex
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serve import BIN, cli_env, free_port, serve

ROOT = Path(__file__).resolve().parent.parent


def section_commands(heading: str) -> list[str]:
    """The shell commands of a README section (``#`` comments dropped)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        cmds += [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]
    return cmds


def walkthrough_commands() -> list[str]:
    return section_commands("Walkthrough")


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    proc = serve(port, "--data", str(tmp_path / "data"))
    yield port
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 or proc.returncode == -15, out.decode()
    assert b"Traceback" not in out, out.decode()


def run(cmd: str, port: int) -> dict | list | str:
    cmd = cmd.replace("localhost:7770", f"127.0.0.1:{port}")
    p = subprocess.run(cmd, shell=True, env=cli_env(port), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
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
    assert out["agent:fork"]["output"] == {"agentId": "Alice-v2", "status": "SLEEPING", "created": True,
                                           "forkedFrom": "Alice"}
    info = out["agent:info"]["output"]
    assert (info["status"], info["taskCount"], info["tasks"], info["timelineLength"], info["error"],
            info["errorCode"]) == ("SLEEPING", 0, 0, 2, None, None)
    agents = out["agent:list"]["output"]["agents"]
    assert all(isinstance(a.pop("updated"), int) for a in agents)  # last activity, Unix ms
    assert agents == [
        {"agentId": "Alice", "status": "SLEEPING", "taskCount": 0, "tasks": 0, "error": None, "errorCode": None},
        {"agentId": "Alice-v2", "status": "SLEEPING", "taskCount": 0, "tasks": 0, "error": None, "errorCode": None}]
    assert out["lattice read g/Alice-v2/state/history/0"] == {
        "role": "user", "content": '{"question":"What vendors are overdue?"}'}
    curl = out["curl -s localhost:7770/api/v1/invoke"]
    assert curl["status"] == "COMPLETE" and curl["output"] == {"exists": True, "value": "SLEEPING", "valueBytes": 10}

    # the Versions section continues from there
    cmds = section_commands("Versions")
    assert len(cmds) == 6, cmds
    results = [subprocess.run(c, shell=True, env=cli_env(server), capture_output=True, text=True, timeout=30) for c in cmds]
    for c, p in zip(cmds, results):
        assert p.returncode == 0, (c, p.stdout, p.stderr)
    log_lines = results[0].stdout.splitlines()
    assert log_lines[-1].split()[0] == "0" and "agent:create" in log_lines[-1]
    assert len(json.loads(results[1].stdout)) == 1  # version 2: the request's run, before the message's
    assert "+ timeline/1" in results[2].stdout
    assert json.loads(results[3].stdout)["output"]["forkedFrom"] == "Alice"
    assert json.loads(results[4].stdout)["identical"] is True
    assert json.loads(results[5].stdout)["agentId"] == "Alice-brief"


def test_cli_reports_errors_with_exit_codes(server: int) -> None:
    env = cli_env(server)
    lattice = str(BIN / "lattice")
    p = subprocess.run([lattice, "invoke", "agent:crate", "{}"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "unknown_operation" in p.stderr and "agent:create" in p.stderr
    p = subprocess.run([lattice, "invoke", "agent:info", '{"agentId": "Nobody"}'], env=env, capture_output=True, text=True)
    assert p.returncode == 1 and json.loads(p.stdout)["errorCode"] == "not_found"
    p = subprocess.run([lattice, "invoke", "agent:info", "{not json"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "not valid JSON" in p.stderr
    p = subprocess.run([lattice, "read", "g/Nobody"], env=env, capture_output=True, text=True)
    assert p.returncode == 1 and "nothing at g/Nobody" in p.stderr
    p = subprocess.run([lattice, "read", "bad//path"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "invalid_path" in p.stderr
    p = subprocess.run([lattice, "read", "g/x", "--url", "http://127.0.0.1:9"], capture_output=True, text=True)
    assert p.returncode == 2 and "cannot reach" in p.stderr


def test_serve_defaults_are_the_ones_that_apply() -> None:
    """`lattice serve --help` shows the limits' and the app's own defaults, not copies of them."""
    from click.testing import CliRunner

    from ops.engine.runtime import Limits
    from ops.surfaces.app import DEFAULT_MAX_BODY
    from ops.surfaces.cli import main, serve

    defaults = {p.name: p.default for p in serve.params}
    assert defaults["max_agents"] == Limits().max_agents and defaults["max_queued"] == Limits().max_queued
    assert defaults["max_body"] == DEFAULT_MAX_BODY
    text = " ".join(CliRunner().invoke(main, ["serve", "--help"], terminal_width=200).output.split())
    assert f"[default: {DEFAULT_MAX_BODY};" in text and f"[default: {Limits().max_agents};" in text


def test_cli_version_commands(server: int) -> None:
    env = cli_env(server)
    lattice = str(BIN / "lattice")

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess:
        p = subprocess.run([lattice, *args], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == code, (args, p.stdout, p.stderr)
        return p
    run("invoke", "agent:create", '{"agentId": "A"}')
    for i in range(3):
        run("invoke", "agent:request", json.dumps({"agentId": "A", "input": f"q{i}", "wait": True}))
    lines = run("log", "A").stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["6", "5", "4", "3", "2", "1", "0"]
    assert json.loads(run("log", "A", "--json", "--limit", "2").stdout)["versions"][0]["op"] == "agent:run"
    assert run("read", "g/A/timeline/0/result", "--at", "2").stdout.strip() == '"q0"'
    assert run("read", "g/A/timeline", "--at", "0").stdout.strip() == "[]"
    changes = run("diff", "A", "--from", "4", "--to", "6").stdout.splitlines()
    assert any(c.startswith("+ timeline/2 ") for c in changes)
    result = json.loads(run("replay", "A", "--chunk", "3").stdout)
    assert result == {"agentId": "A", "replayed": 7, "identical": True, "divergence": None}
    what_if = json.loads(run("replay", "A", "--from", "2", "--into", "B").stdout)
    assert what_if == {"agentId": "B", "replayed": 2, "diverged": []}
    assert "invalid_range" in run("diff", "A", "--from", "5", "--to", "1", code=1).stderr
    assert "version 99 does not exist" in run("read", "g/A", "--at", "99", code=1).stderr
    assert "--into needs --from" in run("replay", "A", "--into", "C", code=2).stderr


def test_the_langgraph_example_runs_as_written(tmp_path: Path) -> None:
    """The "Using it from LangGraph" section's Python block, run in a fresh interpreter."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it from LangGraph", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "you said: hello"
