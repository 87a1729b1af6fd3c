"""A LangGraph thread's checkpoints are versions: agent:history and agent:diff take `threadId`.

A real graph runs on the real :class:`LatticeSaver`; the engine then lists the
thread's checkpoints (they match LangGraph's own state history) and diffs two of
them with the same Merkle diff as an agent's versions.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph.graph", reason="needs langgraph (the test extra)")

from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402

from lattice.memory import MemoryStore  # noqa: E402
from ops.domain.errors import Rejected  # noqa: E402
from ops.engine.runtime import Runtime  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from tests.ops.helpers import call, out  # noqa: E402


class Chat(TypedDict):
    messages: Annotated[list, add_messages]


def reply(state: Chat) -> dict:
    return {"messages": [("ai", f"echo {len(state['messages'])}")]}


def chat(saver: Any) -> Any:
    g = StateGraph(Chat)
    g.add_node("reply", reply)
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    return g.compile(checkpointer=saver)


CFG = {"configurable": {"thread_id": "chat/1"}}  # a `/` in the id: escaped in the ref name


@pytest.fixture
async def threaded():
    """``(runtime, graph)``: a chat thread of three turns, and an agent ``A`` beside it."""
    store = MemoryStore()
    graph = chat(LatticeSaver(store))
    for i in range(3):
        graph.invoke({"messages": [("human", f"turn {i}")]}, CFG)
    rt = Runtime(store)
    await rt.start()
    await out(rt, "agent:create", agentId="A")
    yield rt, graph
    await rt.close()


async def test_history_lists_the_threads_checkpoints_as_langgraph_does(threaded) -> None:
    rt, graph = threaded
    h = await out(rt, "agent:history", threadId="chat/1")
    assert h["threadId"] == "chat/1" and h["ns"] == "" and "agentId" not in h
    theirs = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(CFG)]
    assert [v["checkpointId"] for v in h["versions"]] == theirs  # newest first, every checkpoint
    assert [v["seq"] for v in h["versions"]] == list(range(len(theirs) - 1, -1, -1))
    v = h["versions"][0]
    assert v["op"] == "langgraph:checkpoint" and v["caller"] == "local" and len(v["id"]) == 64 and v["ts"] > 0
    page = await out(rt, "agent:history", threadId="chat/1", limit=2, before=v["seq"])
    assert [x["seq"] for x in page["versions"]] == [v["seq"] - 1, v["seq"] - 2]
    agent = await out(rt, "agent:history", agentId="A")  # an agent's entries are as before
    assert set(agent) == {"agentId", "versions"} and set(agent["versions"][0]) == {"seq", "id", "op", "ts", "caller"}


async def test_diff_gives_the_path_changes_between_two_checkpoints(threaded) -> None:
    rt, _ = threaded
    h = (await out(rt, "agent:history", threadId="chat/1"))["versions"]
    last_turn = next(v for v in h[1:] if v["seq"] < h[0]["seq"])  # the checkpoint before the newest
    d = await out(rt, "agent:diff", threadId="chat/1", **{"from": last_turn["seq"]})  # `to`: the newest
    paths = {c["path"]: c for c in d["changes"]}
    assert d["truncated"] is False
    added = [c for p, c in paths.items() if p.startswith("channel_values/messages/") and c["change"] == "added"]
    assert [c["after"]["content"] for c in added if isinstance(c["after"], dict)] == ["echo 5"]
    assert "id" in paths and paths["id"]["before"] == last_turn["checkpointId"]
    assert paths["id"]["after"] == h[0]["checkpointId"]
    by_id = await out(rt, "agent:diff", threadId="chat/1", **{"from": last_turn["id"], "to": h[0]["id"]})
    assert by_id == d
    assert (await out(rt, "agent:diff", threadId="chat/1", **{"from": 2, "to": 2})) == {"changes": [],
                                                                                      "truncated": False}
    whole = await out(rt, "agent:diff", threadId="chat/1", **{"from": 0}, limit=1)
    assert whole["truncated"] is True and len(whole["changes"]) == 1


async def test_a_subgraph_namespace_is_listed_with_ns() -> None:
    class S(TypedDict):
        value: str

    def ask(state: S) -> dict:
        return {"value": state["value"] + interrupt("more?")}

    inner = StateGraph(S)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    g = StateGraph(S)
    g.add_node("child", inner.compile())
    g.add_edge(START, "child")
    g.add_edge("child", END)
    store = MemoryStore()
    graph = g.compile(checkpointer=LatticeSaver(store))
    cfg = {"configurable": {"thread_id": "nested"}}
    graph.invoke({"value": "a"}, cfg)
    ns = graph.get_state(cfg, subgraphs=True).tasks[0].state.config["configurable"]["checkpoint_ns"]
    assert ns.startswith("child:")
    rt = Runtime(store)
    await rt.start()
    try:
        sub = await out(rt, "agent:history", threadId="nested", ns=ns)
        root = await out(rt, "agent:history", threadId="nested")
        assert sub["ns"] == ns and sub["versions"] and root["versions"]
        assert {v["id"] for v in sub["versions"]}.isdisjoint(v["id"] for v in root["versions"])
        graph.invoke(Command(resume="b"), cfg)
        assert (await out(rt, "agent:history", threadId="nested"))["versions"][0]["seq"] > root["versions"][0]["seq"]
    finally:
        await rt.close()


async def snapshot(rt: Runtime) -> tuple:
    return list(rt.store.refs("")), len(rt.store)


@pytest.mark.parametrize("op, inp, code, path", [
    ("agent:history", {"agentId": "A", "threadId": "chat/1"}, "invalid_input", "$.input.threadId"),
    ("agent:history", {}, "invalid_input", "$.input.agentId"),
    ("agent:history", {"agentId": "A", "ns": "x"}, "invalid_input", "$.input.ns"),
    ("agent:history", {"threadId": "nope"}, "not_found", "$.input.threadId"),
    ("agent:history", {"threadId": "chat/1", "ns": "no:such"}, "not_found", "$.input.threadId"),
    ("agent:history", {"threadId": "é" * 100}, "invalid_input", "$.input.threadId"),  # escaped: too long a ref
    ("agent:diff", {"agentId": "A", "threadId": "chat/1", "from": 0}, "invalid_input", "$.input.threadId"),
    ("agent:diff", {"from": 0}, "invalid_input", "$.input.agentId"),
    ("agent:diff", {"threadId": "nope", "from": 0}, "not_found", "$.input.threadId"),
    ("agent:diff", {"threadId": "chat/1"}, "invalid_input", "$.input.from"),
    ("agent:diff", {"threadId": "chat/1", "from": 0, "otherAgentId": "A"}, "invalid_input", "$.input.otherAgentId"),
    ("agent:diff", {"threadId": "chat/1", "from": 3, "to": 1}, "invalid_range", "$.input.from"),
    ("agent:diff", {"threadId": "chat/1", "from": 99}, "not_found", "$.input.from"),
    ("agent:diff", {"threadId": "chat/1", "from": 0, "to": 99}, "not_found", "$.input.to"),
    ("agent:diff", {"threadId": "chat/1", "from": "ab" * 32}, "not_found", "$.input.from"),
])
async def test_bad_thread_inputs_fail_cleanly_and_change_nothing(threaded, op: str, inp: dict, code: str,
                                                                 path: str) -> None:
    """invalid_input is refused before a job exists (HTTP 400); the others fail the job."""
    rt, _ = threaded
    before = await snapshot(rt)
    if code == "invalid_input":
        with pytest.raises(Rejected) as e:
            await call(rt, op, **inp)
        error = {"code": e.value.code, "path": e.value.path, "message": e.value.message}
    else:
        job = await call(rt, op, **inp)
        assert job["status"] == "FAILED", job
        error = job["error"]
    assert error["code"] == code and error["path"] == path and error["message"], error
    assert await snapshot(rt) == before


@pytest.mark.parametrize("inp", [{"threadId": ""}, {"agentId": None}, {"threadId": 7}, {"threadId": "t", "ns": None}])
async def test_malformed_subjects_are_refused_by_the_contract(threaded, inp: dict) -> None:
    rt, _ = threaded
    with pytest.raises(Rejected) as e:
        await call(rt, "agent:history", **inp)
    assert e.value.code == "invalid_input"
