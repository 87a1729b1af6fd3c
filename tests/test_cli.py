"""The `lattice` command line against a real server: job and cancel, versions said as a user types them, the
server's field names shown as the command's options, `wait` in milliseconds, and the exit codes."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.serve import BIN, cli_env, free_port, serve


@pytest.fixture(scope="module")
def port():
    p = free_port()
    proc = serve(p, "--memory")
    yield p
    proc.terminate()
    proc.wait(10)


def lattice(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lattice"), *args], capture_output=True, text=True, timeout=60,
                          env=cli_env(port))


def create(port: int, agent: str, provider: str) -> None:
    p = lattice(port, "invoke", "agent:create", json.dumps({"agentId": agent, "config": {"model": {"provider": provider}}}))
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("value", ["-1", "zz", "1.5", "0x12"])
def test_a_version_that_is_none_says_what_a_version_is(port, value: str) -> None:
    p = lattice(port, "read", "g/A/status", "--at", value)
    assert p.returncode == 2
    assert "seq (an integer >= 0" in p.stderr and "commit id (64 hex digits)" in p.stderr, p.stderr
    assert "regex" not in p.stderr and "(?!" not in p.stderr


def test_server_messages_name_the_options(port) -> None:
    create(port, "D", "echo")
    p = lattice(port, "diff", "D")
    assert p.returncode == 2 and "`--from`" in p.stderr and "`--other`" in p.stderr, p.stderr
    assert "otherAgentId" not in p.stderr and "$.input" not in p.stderr
    p = lattice(port, "diff", "D", "--from", "0", "--other", "D")
    assert p.returncode == 2 and "`--from` cannot be combined with `--other`" in p.stderr, p.stderr
    p = lattice(port, "read", "w/x", "--at", "1")
    assert p.returncode == 2 and "`--at` reads a version of an agent" in p.stderr, p.stderr
    p = lattice(port, "log", "Nobody")
    assert p.returncode == 1 and "no agent 'Nobody'" in p.stderr, p.stderr


def test_job_and_cancel(port) -> None:
    create(port, "H", "hang")
    p = lattice(port, "invoke", "agent:request", json.dumps({"agentId": "H", "input": "forever"}))
    job_id = json.loads(p.stdout)["jobId"]
    p = lattice(port, "job", job_id)
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "STARTED", p.stderr
    shown = json.loads(p.stdout)  # the job as the server has it: the venue's fields, extras only where they apply
    assert (shown["id"], shown["op"], shown["errorCode"], shown["agentId"]) == (job_id, "agent:request", None, "H")
    assert "hint" not in shown and "agent" not in shown
    p = lattice(port, "job", job_id, "--wait", "200")  # milliseconds: the job is printed as it is then
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "STARTED", p.stderr
    p = lattice(port, "cancel", job_id)
    assert p.returncode == 1 and json.loads(p.stdout)["status"] == "CANCELLED", p.stderr
    assert json.loads(p.stdout)["errorCode"] == "cancelled"
    p = lattice(port, "job", job_id.upper().replace("0X", "0x"), "--wait", "0")  # any case; finished: at once
    assert p.returncode == 1 and json.loads(p.stdout)["status"] == "CANCELLED"
    p = lattice(port, "job", "0x" + "0" * 32)
    assert p.returncode == 2 and "404 not_found" in p.stderr
    create(port, "E", "echo")
    done = json.loads(lattice(port, "invoke", "agent:request", json.dumps({"agentId": "E", "input": "hi",
                                                                           "wait": True})).stdout)
    p = lattice(port, "job", done["jobId"])
    assert p.returncode == 0 and json.loads(p.stdout)["output"]["output"] == "hi"  # a text answer, wrapped


def test_wait_is_said_to_be_milliseconds() -> None:
    for cmd in (["invoke", "--help"], ["job", "--help"]):
        out = subprocess.run([str(BIN / "lattice"), *cmd], capture_output=True, text=True, timeout=30).stdout
        assert "milliseconds" in out, (cmd, out)


def test_an_unreachable_server_exits_2() -> None:
    for cmd in (["job", "0x" + "1" * 32], ["cancel", "0x" + "1" * 32], ["read", "w/x"], ["diff", "A", "--from", "0"]):
        p = subprocess.run([str(BIN / "lattice"), *cmd, "--url", f"http://127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "cannot reach" in p.stderr, (cmd, p.stderr)
