"""A LangGraph thread on the lattice is a path: covia:read reads its checkpoints at any version."""

from __future__ import annotations

from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from lattice.memory import MemoryStore
from ops.engine.runtime import Runtime
from ops.langgraph import LatticeSaver
from tests.ops.helpers import call, out


class Chat(TypedDict):
    messages: Annotated[list, add_messages]


def reply(state: Chat) -> dict:
    return {"messages": [("ai", f"echo {len(state['messages'])}")]}


async def test_a_thread_reads_at_any_checkpoint_through_covia_read() -> None:
    store = MemoryStore()
    saver = LatticeSaver(store)
    g = StateGraph(Chat)
    g.add_node("reply", reply)
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    graph = g.compile(checkpointer=saver)
    cfg = {"configurable": {"thread_id": "chat-1"}}
    for i in range(3):
        graph.invoke({"messages": [("human", f"turn {i}")]}, cfg)
    rt = Runtime(store)
    await rt.start()
    head = await out(rt, "covia:read", path="t/chat-1/channel_values/messages")
    assert [m["content"] for m in head["value"]] == ["turn 0", "echo 1", "turn 1", "echo 3", "turn 2", "echo 5"]
    listed = await out(rt, "covia:list", path="t/chat-1/channel_values/messages")
    assert listed["count"] == 6
    first = await out(rt, "covia:read", path="t/chat-1/channel_values/messages", at=2)  # an early checkpoint
    assert len(first["value"]) < 6
    missing = await call(rt, "covia:read", path="t/nope/channel_values", at=0)
    assert missing["status"] == "FAILED" and missing["error"]["code"] == "not_found"
    assert (await out(rt, "covia:read", path="t/nope"))["exists"] is False
    await rt.close()
