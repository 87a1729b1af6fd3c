"""The `lattice` command line against a real server: job and cancel, versions said as a user types them, the
server's field names shown as the command's options, `wait` in milliseconds, and the exit codes; `log` and `diff`
of a LangGraph thread (`--thread`, `--ns`) written by real graphs on a LatticeSaver over the served store."""

from __future__ import annotations

import json
import socket
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


# -- LangGraph threads: `lattice log --thread`, `lattice diff --thread` ------------------------------------------

THREAD = "chat/1"  # a `/` in the id: escaped in the ref name, not in the command


@pytest.fixture(scope="module")
def threads(tmp_path_factory):
    """``(port, checkpoint ids of THREAD newest first, ns of the subgraph of thread "nested")``: a `lattice serve
    --data` over an LMDB store where real LangGraph graphs ran on a LatticeSaver (a chat of three turns, and a
    graph whose subgraph is interrupted)."""
    pytest.importorskip("langgraph.graph", reason="needs langgraph (the test extra)")
    from typing import Annotated, TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.types import interrupt

    from ops.langgraph import LatticeSaver

    Chat = TypedDict("Chat", {"messages": Annotated[list, add_messages]})  # not a class: no string annotations
    S = TypedDict("S", {"value": str})
    chat = StateGraph(Chat)
    chat.add_node("reply", lambda s: {"messages": [("ai", f"echo {len(s['messages'])}")]})
    chat.add_edge(START, "reply")
    chat.add_edge("reply", END)
    inner = StateGraph(S)
    inner.add_node("ask", lambda s: {"value": s["value"] + interrupt("more?")})
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(S)
    outer.add_node("child", inner.compile())
    outer.add_edge(START, "child")
    outer.add_edge("child", END)
    data = tmp_path_factory.mktemp("threads") / "data"
    with LatticeSaver.from_conn_string(str(data)) as saver:
        graph = chat.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": THREAD}}
        for i in range(3):
            graph.invoke({"messages": [("human", f"turn {i}")]}, cfg)
        ids = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(cfg)]
        nested = outer.compile(checkpointer=saver)
        ncfg = {"configurable": {"thread_id": "nested"}}
        nested.invoke({"value": "a"}, ncfg)
        ns = nested.get_state(ncfg, subgraphs=True).tasks[0].state.config["configurable"]["checkpoint_ns"]
    p = free_port()
    proc = serve(p, "--data", str(data))
    yield p, ids, ns
    proc.terminate()
    proc.wait(10)


def test_log_lists_a_threads_checkpoints_with_their_ids(threads) -> None:
    port, ids, ns = threads
    p = lattice(port, "log", "--thread", THREAD)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()]
    assert [r[0] for r in rows] == [str(n) for n in range(len(ids) - 1, -1, -1)]  # seq: the depth, newest first
    assert [r[3] for r in rows] == ids  # LangGraph's checkpoint ids, as its own state history lists them
    shown = json.loads(lattice(port, "log", "--thread", THREAD, "--json", "--limit", "2", "--before", "5").stdout)
    assert (shown["threadId"], shown["ns"]) == (THREAD, "") and "agentId" not in shown
    assert [(v["seq"], v["checkpointId"]) for v in shown["versions"]] == [(4, ids[-5]), (3, ids[-4])]
    assert all(r[4] == v["id"][:16] for r, v in zip(rows[-5:], shown["versions"]))
    sub = json.loads(lattice(port, "log", "--thread", "nested", "--ns", ns, "--json").stdout)
    root = json.loads(lattice(port, "log", "--thread", "nested", "--json").stdout)
    assert sub["ns"] == ns and sub["versions"] and root["versions"]
    assert {v["id"] for v in sub["versions"]}.isdisjoint(v["id"] for v in root["versions"])
    p = lattice(port, "log", "--thread", "nope")
    assert p.returncode == 1 and "no thread 'nope'" in p.stderr, p.stderr
    p = lattice(port, "log", "--thread", "nested", "--ns", "no:such")
    assert p.returncode == 1 and "no:such" in p.stderr, p.stderr


def test_diff_compares_two_checkpoints_of_a_thread(threads) -> None:
    port, ids, _ = threads
    newest = len(ids) - 1
    p = lattice(port, "diff", "--thread", THREAD, "--from", str(newest - 1))  # --to: the newest
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    added = [json.loads(line.split("  ", 1)[1])["after"] for line in lines if line.startswith("+ channel_values/messages/")]
    assert [a["content"] for a in added if isinstance(a, dict)] == ["echo 5"]
    assert any(line.startswith("~ id  ") and ids[1] in line and ids[0] in line for line in lines), lines
    versions = json.loads(lattice(port, "log", "--thread", THREAD, "--json").stdout)["versions"]
    by_id = lattice(port, "diff", "--thread", THREAD, "--from", versions[1]["id"], "--to", versions[0]["id"])
    assert by_id.returncode == 0 and by_id.stdout == p.stdout, by_id.stderr
    same = lattice(port, "diff", "--thread", THREAD, "--from", "2", "--to", "2")
    assert same.returncode == 0 and same.stdout == "", same.stderr
    p = lattice(port, "diff", "--thread", THREAD, "--from", "3", "--to", "1")
    assert p.returncode == 1 and "invalid_range" in p.stderr and "`--from`" in p.stderr, p.stderr
    p = lattice(port, "diff", "--thread", THREAD, "--from", "99")
    assert p.returncode == 1 and "not_found" in p.stderr, p.stderr


@pytest.mark.parametrize("args, says", [
    (["log"], "give AGENT, or --thread ID"),
    (["log", "A", "--ns", "child:1"], "--ns is a checkpoint namespace of a LangGraph thread: it needs --thread"),
    (["log", "A", "--thread", THREAD], "give AGENT or --thread, not both"),
    (["diff", "--from", "0"], "give AGENT, or --thread ID"),
    (["diff", "A", "--from", "0", "--ns", "child:1"], "it needs --thread"),
    (["diff", "A", "--thread", THREAD, "--from", "0"], "give AGENT or --thread, not both"),
    (["diff", "--thread", THREAD, "--from", "0", "--other", "A"], "--other compares two agents' heads: it cannot "
                                                                  "be combined with --thread"),
    (["diff", "--thread", THREAD], "--thread needs --from"),
])
def test_a_bad_combination_is_a_usage_error_and_sends_nothing(args: list[str], says: str) -> None:
    with socket.socket() as listener:  # a server that is listening: any request would connect
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        p = lattice(listener.getsockname()[1], *args)
        assert p.returncode == 2 and "Usage: lattice" in p.stderr and says in p.stderr, p.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection was made
