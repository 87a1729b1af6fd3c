"""The inspector's LangGraph threads, in a real browser against a real `lattice serve`.

A chat graph runs on a LatticeSaver over an LMDB directory; `lattice serve --data` that directory then shows
the thread: the Threads list (covia:list t), its checkpoints (agent:history with threadId), a diff between two
(agent:diff with threadId), a value over 1 KiB read on demand (covia:read t/... at).
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator, TypedDict

import pytest

pytest.importorskip("langgraph.graph", reason="needs langgraph (the test extra)")

from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402

from ops.langgraph import LatticeSaver  # noqa: E402
from tests.serve import free_port, serve  # noqa: E402

THREAD = "chat/1 é"  # a `/`, a space and a non-ASCII letter: escaped in the ref name


class Chat(TypedDict):
    messages: Annotated[list, add_messages]


def reply(state: Chat) -> dict:
    n = len(state["messages"])
    return {"messages": [("ai", f"echo {n} " + ("long " * 300 if n == 5 else ""))]}


@pytest.fixture(scope="module")
def threads_server(tmp_path_factory: Any) -> Iterator[int]:
    """A `lattice serve --data` over a store holding a chat thread of three turns: its port."""
    d = tmp_path_factory.mktemp("threads")
    g = StateGraph(Chat)
    g.add_node("reply", reply)
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    with LatticeSaver.from_conn_string(str(d / "data")) as saver:
        graph = g.compile(checkpointer=saver)
        for i in range(3):
            graph.invoke({"messages": [("human", f"turn {i}")]}, {"configurable": {"thread_id": THREAD}})
        # a thread with a branch: a tip ref and a version ref beside its head, neither a thread of its own
        other = {"configurable": {"thread_id": "branched"}}
        for i in range(2):
            graph.invoke({"messages": [("human", f"turn {i}")]}, other)
        first = list(graph.get_state_history(other))[-2].config
        graph.update_state(first, {"messages": [("human", "again")]})
    port = free_port()
    with open(d / "serve.log", "wb") as out:
        proc = serve(port, "--data", str(d / "data"), output=out)
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_a_thread_its_checkpoints_and_a_diff(threads_server, page_factory):
    p = page_factory(threads_server)
    page = p.open()
    page.get_by_role("navigation", name="sections").get_by_role("link", name="Threads").click()
    page.locator("ul.thread-list[data-ready=threads]").wait_for()
    assert page.locator("a.thread").evaluate_all("els => els.map(e => e.dataset.thread)") == ["branched", THREAD]
    page.locator(f'a.thread[data-thread="{THREAD}"]').click()
    table = page.locator("table.versions[data-ready=checkpoints]")
    table.wait_for()
    rows = table.locator("tbody tr")
    assert rows.count() == p_count(p)  # every checkpoint of the thread, newest first
    assert rows.first.locator("td").first.inner_text() == f"v{rows.count() - 1}"
    p.shot("threads-1-checkpoints")
    newest = rows.count() - 1
    rows.first.locator(f"a[data-diff='{newest}']").click()
    diff = page.locator("[data-ready=thread-diff]")
    diff.wait_for()
    assert "channel_values/messages/5" in diff.inner_text()
    assert p.invoked("agent:diff") == [{"threadId": THREAD, "from": newest - 1, "to": newest}]
    big = diff.locator("tr", has_text="channel_values/messages/5").get_by_role("button")
    big.click()  # the last reply is over 1 KiB: read on demand at the newest checkpoint
    diff.locator("tr", has_text="channel_values/messages/5").locator("details.expand").wait_for()
    reads = [i for i in p.invoked("covia:read") if i["path"].startswith("t/")]
    assert reads and reads[0]["path"] == "t/chat%2F1%20%C3%A9/channel_values/messages/5" and reads[0]["at"] == newest
    p.shot("threads-2-diff")
    assert p.errors == []


def p_count(p) -> int:
    """How many checkpoints agent:history reported to the page."""
    (hist,) = [r for r in p.requests if r.url.endswith("/api/v1/invoke") and r.post_data
               and '"agent:history"' in r.post_data]
    return len(hist.response().json()["output"]["versions"])
