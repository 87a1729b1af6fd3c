"""Real LangGraph graphs on LatticeSaver: the state API answers as it does with InMemorySaver.

No network, no LLM: nodes are plain Python. Each scenario runs once on
LangGraph's ``InMemorySaver`` and once on ours (memory, LMDB and PostgreSQL), and the
normalized transcripts (values, next, metadata, parents, tasks, interrupts of
``get_state`` and ``get_state_history``; checkpoint ids replaced by their rank)
must be equal.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph.graph", reason="needs langgraph (the test extra)")

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402

from lattice.codec import Link  # noqa: E402
from lattice.commits import read_commit  # noqa: E402
from lattice.history import versions  # noqa: E402
from lattice.nodes import VEC, Tx  # noqa: E402
from lattice.paths import read_path  # noqa: E402
from ops.langgraph import AsyncLatticeSaver, LatticeSaver  # noqa: E402
from ops.langgraph.naming import parse_ref  # noqa: E402



class Chat(TypedDict):
    messages: Annotated[list, add_messages]


def llm(state: Chat) -> dict:
    """The fake model: answers the last message reversed, with a stable id."""
    m = state["messages"][-1]
    return {"messages": [AIMessage(content=m.content[::-1], id=f"ai-{m.id}")]}


def chat_graph(saver: Any) -> Any:
    g = StateGraph(Chat)
    g.add_node("llm", llm)
    g.add_edge(START, "llm")
    g.add_edge("llm", END)
    return g.compile(checkpointer=saver)


def human(i: int, n: int = 60) -> HumanMessage:
    return HumanMessage(content=f"turn {i} " + "words " * n, id=f"h{i}")


def normalize(snaps: list) -> list[dict]:
    """Snapshots with checkpoint ids replaced by their rank of first appearance."""
    ids: dict[str, int] = {}

    def rank(cfg: Any) -> int | None:
        if not cfg:
            return None
        return ids.setdefault(cfg["configurable"]["checkpoint_id"], len(ids))

    for s in snaps:
        rank(s.config)
    return [{
        "id": rank(s.config), "parent": rank(s.parent_config), "values": s.values, "next": s.next,
        "source": s.metadata.get("source"), "step": s.metadata.get("step"),
        "ns": s.config["configurable"].get("checkpoint_ns", ""),
        "tasks": [(t.name, t.path, repr(t.error) if t.error else None, [i.value for i in t.interrupts], t.result)
                  for t in s.tasks],
        "interrupts": [i.value for i in s.interrupts],
    } for s in snaps]


def transcript(graph: Any, cfg: dict) -> list[dict]:
    return normalize([graph.get_state(cfg)]) + normalize(list(graph.get_state_history(cfg)))


@pytest.fixture
def ours(spec):
    with LatticeSaver.from_conn_string(spec) as s:
        yield s


def run_both(scenario: Any, ours: LatticeSaver) -> tuple[Any, Any]:
    return scenario(InMemorySaver()), scenario(ours)


def test_chat_matches_inmemory(ours):
    def scenario(saver):
        g = chat_graph(saver)
        cfg = {"configurable": {"thread_id": "chat"}}
        for i in range(40):  # past 32 messages: the channel becomes a vector
            g.invoke({"messages": [human(i)]}, cfg)
        return transcript(g, cfg)

    theirs, mine = run_both(scenario, ours)
    assert mine == theirs
    assert len(mine[0]["values"]["messages"]) == 80


def test_chat_is_a_commit_chain_readable_by_path(ours):
    g = chat_graph(ours)
    cfg = {"configurable": {"thread_id": "chat"}}
    for i in range(40):
        g.invoke({"messages": [human(i)]}, cfg)
    store = ours.store
    # One head: no branch, no parked writes. LangGraph may hand a step's writes over after the next
    # checkpoint (two threads of its executor race); they then join their checkpoint below the leaf
    # and the namespace gets a version ref, a lattice detail that changes no checkpoint.
    refs = {n: parse_ref(n).kind for n, _ in store.refs("t/")}
    assert "t/local/chat" in refs and set(refs.values()) <= {"head", "version"}, refs
    head = store.ref("t/local/chat")
    vs = versions(store, head, limit=1000)
    assert len(vs) == 120 and [c.seq for _, c in vs] == list(range(119, -1, -1))
    assert [c.input["id"] for _, c in vs] == [s.config["configurable"]["checkpoint_id"]
                                            for s in g.get_state_history(cfg)]
    tx = Tx(store)
    root = read_commit(store, head).root
    msgs = read_path(tx, root, ["channel_values", "messages"])
    assert type(msgs) is Link and msgs.code == VEC
    assert tx.materialize(read_path(tx, root, ["channel_values", "messages", "3", "content"])) == ("turn 1 " + "words " * 60)[::-1]
    assert tx.materialize(read_path(tx, root, ["metadata", "step"])) == 118  # the first is -1


def test_turn_adds_log_n_objects():
    """Memory store: objects per turn do not grow with the history (the vector is appended to)."""
    from lattice.memory import MemoryStore

    saver = LatticeSaver(MemoryStore())
    g = chat_graph(saver)
    cfg = {"configurable": {"thread_id": "t"}}
    per_turn = {}
    for i in range(300):
        n = len(saver.store)
        g.invoke({"messages": [human(i, n=80)]}, cfg)
        per_turn[i] = len(saver.store) - n
    assert max(per_turn[i] for i in range(250, 300)) <= max(per_turn[i] for i in range(40, 90)) + 2
    assert max(per_turn[i] for i in range(250, 300)) <= 24


def test_interrupt_and_resume_match_inmemory(ours):
    class S(TypedDict):
        draft: str
        approved: Annotated[list, operator.add]

    def write(state):
        return {"draft": "plan " + state["draft"]}

    def review(state):
        answer = interrupt({"question": "approve?", "draft": state["draft"]})
        return {"approved": [answer]}

    def scenario(saver):
        g = StateGraph(S)
        g.add_node("write", write)
        g.add_node("review", review)
        g.add_edge(START, "write")
        g.add_edge("write", "review")
        g.add_edge("review", END)
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "hitl"}}
        first = graph.invoke({"draft": "x", "approved": []}, cfg)
        paused = transcript(graph, cfg)
        final = graph.invoke(Command(resume="yes"), cfg)
        return first["__interrupt__"][0].value, paused, final, transcript(graph, cfg)

    theirs, mine = run_both(scenario, ours)
    assert mine == theirs
    assert mine[0] == {"question": "approve?", "draft": "plan x"}
    assert mine[1][0]["next"] == ("review",) and mine[1][0]["interrupts"] == [mine[0]]
    assert mine[2] == {"draft": "plan x", "approved": ["yes"]}


def test_time_travel_update_state_and_replay_match_inmemory(ours):
    def scenario(saver):
        g = chat_graph(saver)
        cfg = {"configurable": {"thread_id": "tt"}}
        for i in range(4):
            g.invoke({"messages": [human(i, n=2)]}, cfg)
        history = list(g.get_state_history(cfg))
        old = next(s for s in history if s.metadata["step"] == 4)  # after turn 2's reply
        fork = g.update_state(old.config, {"messages": [HumanMessage(content="what if", id="w1")]})
        g.invoke(None, fork)  # run on from the branch
        g.invoke({"messages": [human(9, n=2)]}, cfg)  # the thread goes on from the newest checkpoint
        replay_from = next(s for s in history if s.metadata["step"] == 1)
        g.invoke(None, replay_from.config)  # replay from an old checkpoint: another branch
        return transcript(g, cfg), [len(s.values.get("messages", [])) for s in g.get_state_history(cfg)]

    theirs, mine = run_both(scenario, ours)
    assert mine == theirs
    latest = mine[0][0]["values"]["messages"]
    assert [m.id for m in latest] == ["h0", "ai-h0"]  # the replay from step 1 is the newest branch
    assert any(m.id == "ai-h9" for s in mine[0] for m in s["values"].get("messages", []))  # the others stay
    tips = [n for n, _ in ours.store.refs("t/local/tt@")]
    assert tips, "the branches left behind keep tip refs"


def test_subgraphs_match_inmemory(ours):
    class Inner(TypedDict):
        messages: Annotated[list, add_messages]
        notes: Annotated[list, operator.add]

    def think(state):
        return {"notes": [f"saw {len(state['messages'])}"]}

    inner = StateGraph(Inner)
    inner.add_node("think", think)
    inner.add_node("llm", llm)
    inner.add_edge(START, "think")
    inner.add_edge("think", "llm")
    inner.add_edge("llm", END)
    sub = inner.compile()

    def scenario(saver):
        g = StateGraph(Inner)
        g.add_node("agent", sub)
        g.add_edge(START, "agent")
        g.add_edge("agent", END)
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "sub"}}
        for i in range(3):
            graph.invoke({"messages": [human(i, n=3)]}, cfg)
        state = graph.get_state(cfg, subgraphs=True)
        return transcript(graph, cfg), state.values

    theirs, mine = run_both(scenario, ours)
    assert mine == theirs
    assert mine[1]["notes"][:2] == ["saw 1", "saw 1"]  # the subgraph returns its whole state: operator.add repeats


def test_subgraph_interrupt_uses_namespace_refs(ours):
    class S(TypedDict):
        value: str

    def ask(state):
        return {"value": state["value"] + interrupt("more?")}

    inner = StateGraph(S)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)

    def scenario(saver):
        g = StateGraph(S)
        g.add_node("child", inner.compile())
        g.add_edge(START, "child")
        g.add_edge("child", END)
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "nested"}}
        graph.invoke({"value": "a"}, cfg)
        paused = graph.get_state(cfg, subgraphs=True)
        sub = paused.tasks[0].state
        sub_values = sub.values if sub is not None else None
        out = graph.invoke(Command(resume="b"), cfg)
        return sub_values, out, transcript(graph, cfg)

    theirs, mine = run_both(scenario, ours)
    assert mine == theirs
    assert mine[1] == {"value": "ab"}
    heads = [n for n, _ in ours.store.refs("t/local/nested")]
    assert any("#child:" in n for n in heads), heads


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_durability_modes_match_inmemory(ours, durability):
    def scenario(saver):
        g = chat_graph(saver)
        cfg = {"configurable": {"thread_id": "d"}}
        for i in range(5):
            g.invoke({"messages": [human(i, n=2)]}, cfg, durability=durability)
        return transcript(g, cfg)

    theirs, mine = run_both(scenario, ours)
    assert mine == theirs


async def test_async_graph_matches_inmemory(spec):
    async def scenario(saver):
        g = chat_graph(saver)
        cfg = {"configurable": {"thread_id": "a"}}
        for i in range(35):
            await g.ainvoke({"messages": [human(i, n=2)]}, cfg)
        hist = [s async for s in g.aget_state_history(cfg)]
        return normalize([await g.aget_state(cfg)]) + normalize(hist)

    theirs = await scenario(InMemorySaver())
    async with AsyncLatticeSaver.from_conn_string(spec) as saver:
        mine = await scenario(saver)
    assert mine == theirs


def test_lmdb_thread_survives_reopen(tmp_path):
    path = str(tmp_path / "lg")
    cfg = {"configurable": {"thread_id": "p"}}
    with LatticeSaver.from_conn_string(path) as saver:
        g = chat_graph(saver)
        for i in range(20):
            g.invoke({"messages": [human(i, n=2)]}, cfg)
    with LatticeSaver.from_conn_string(path) as saver:
        g = chat_graph(saver)
        for i in range(20, 40):
            g.invoke({"messages": [human(i, n=2)]}, cfg)
        mine = transcript(g, cfg)
    ref = InMemorySaver()
    g = chat_graph(ref)
    for i in range(40):
        g.invoke({"messages": [human(i, n=2)]}, cfg)
    assert mine == transcript(g, cfg)
