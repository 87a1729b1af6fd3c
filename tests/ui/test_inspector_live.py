"""The inspector in a real browser (Debian's Chromium, headless) against a real `lattice serve`: the agents list
live over the caller's event stream (and its fallback), a run's model exchanges shown exactly, and a large fork
family navigated by expanding it. Every page must end without a console error. Screenshots: test-artifacts/ui/.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.ui.browser import TOKEN_A, TOKEN_B, api, ok

#: a run of two model calls: covia_read of the workspace, then complete_task
TWO_CALLS = {"model": {"provider": "scripted", "rules": [
    {"when": "look", "toolCalls": [{"name": "covia_read", "arguments": {"path": "w/notes"}}]},
    {"when": "milk", "toolCalls": [{"name": "complete_task", "arguments": {"output": "noted"}}]}]},
    "systemPrompt": "Read before you answer."}


def test_the_agents_list_follows_the_event_stream(server, page_factory):
    ok(server, "agent:create", {"agentId": "Steady", "config": "echo"})
    p = page_factory(server)
    page = p.open()
    page.locator("section.agents[data-live=live]").wait_for()
    page.locator("a.agent[data-agent=Steady]").wait_for()
    # created by another client: it shows up without a reload
    ok(server, "agent:create", {"agentId": "Newcomer", "config": {"model": {"provider": "error", "message": "no"}}})
    newcomer = page.locator("a.agent[data-agent=Newcomer]")
    expect(newcomer).to_contain_text("SLEEPING")
    expect(newcomer).to_contain_text("0 tasks")
    # its run fails: suspended, with the error's code
    api(server, "agent:request", {"agentId": "Newcomer", "input": "x"})
    expect(newcomer.locator(".badge")).to_have_text("SUSPENDED")
    expect(newcomer.locator(".err-code")).to_have_text("llm_error")
    expect(newcomer).to_contain_text("1 task")  # the task waits for agent:resume
    p.shot("11-agents-live")
    # removed: gone from the list
    ok(server, "agent:delete", {"agentId": "Newcomer", "remove": True})
    expect(newcomer).to_have_count(0)
    assert p.invoked("agent:list") == []  # the stream brought all of it: no polling
    assert [r.url for r in p.requests if r.url.endswith("/api/v1/events")]
    assert p.errors == []


def test_without_the_event_stream_the_list_is_polled(server, page_factory):
    ok(server, "agent:create", {"agentId": "Polled", "config": "echo"})
    p = page_factory(server)
    p.page.route("**/api/v1/events", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": {"code": "unavailable", "message": "no streams today"}}'))
    page = p.open()
    page.locator("a.agent[data-agent=Polled]").wait_for()  # from agent:list
    expect(page.locator("section.agents")).to_have_attribute("data-live", "retrying")
    assert p.invoked("agent:list") and p.invoked("agent:list")[0] == {"includeTerminated": True}
    # the only console errors: the refused stream (Chromium logs each failed request)
    assert p.errors and all("status of 503" in e for e in p.errors), p.errors


def test_with_tokens_the_stream_sends_the_callers_agents_only(token_server, page_factory):
    ok(token_server, "agent:create", {"agentId": "Hers", "config": "echo"}, token=TOKEN_A)
    p = page_factory(token_server)
    page = p.open()
    page.get_by_label("Token").fill(TOKEN_A)
    page.get_by_role("button", name="Open").click()
    page.locator("section.agents[data-live=live] a.agent[data-agent=Hers]").wait_for()
    ok(token_server, "agent:create", {"agentId": "His", "config": "echo"}, token=TOKEN_B)
    ok(token_server, "agent:create", {"agentId": "HersToo", "config": "echo"}, token=TOKEN_A)
    page.locator("a.agent[data-agent=HersToo]").wait_for()
    assert [a.get_attribute("data-agent") for a in page.locator("a.agent").all()] == ["Hers", "HersToo"]
    events = [r for r in p.requests if r.url.endswith("/api/v1/events")]
    assert events and all(r.headers.get("authorization") == f"Bearer {TOKEN_A}" for r in events)
    assert p.errors == []


def test_a_runs_model_exchanges_exactly(server, page_factory):
    ok(server, "covia:write", {"path": "w/notes", "value": "buy milk"})
    ok(server, "agent:create", {"agentId": "Reader", "config": TWO_CALLS})
    done = ok(server, "agent:request", {"agentId": "Reader", "input": "look at the notes", "wait": True})
    assert done["output"] == "noted"  # a text answer, wrapped
    p = page_factory(server)
    page = p.open("#/agent/Reader/timeline")
    run = page.locator("li.run").first
    run.locator("summary").first.click()
    run.get_by_role("button", name="Show the model exchanges").click()
    exchanges = run.locator(".exchanges[data-ready=exchanges]")
    exchanges.wait_for()
    assert "2 model calls, as the model got them" in exchanges.inner_text()
    first, second = exchanges.locator("li.exchange").all()
    for call in (first, second):
        assert "✓ request verified" in call.inner_text()
    assert "look at the notes" in first.locator("ol.messages.new").inner_text()
    assert "covia_read" in first.locator("ol.reply").inner_text()
    assert "tools: complete_task, fail_task, covia_read" in first.inner_text()
    # the second call: what the first one sent folded, then the model's tool call and the tool's result
    assert "the 2 messages of call 1" in second.locator("details.context summary").inner_text()
    new = second.locator("ol.messages.new li.msg")
    assert [m.get_attribute("class") for m in new.all()] == ["msg role-assistant", "msg role-tool"]
    assert "buy milk" in new.nth(1).inner_text()
    assert "complete_task" in second.locator("ol.reply").inner_text()
    # the exact request, as JSON
    second.locator("details.expand summary").last.click()
    assert '"toolCallId"' in second.locator("details.expand pre").last.inner_text()
    p.shot("12-exchanges")
    assert p.errors == []


def test_a_large_fork_family_is_expanded_on_demand(server, page_factory):
    ok(server, "agent:create", {"agentId": "Root", "config": "echo"})
    ok(server, "agent:update", {"agentId": "Root", "state": {"step": 1}})
    for i in range(30):
        ok(server, "agent:fork", {"sourceId": "Root", "agentId": f"Kid-{i:02d}", "at": i % 2})
    for i in range(3):
        ok(server, "agent:fork", {"sourceId": "Kid-05", "agentId": f"Grandkid-{i}"})
    p = page_factory(server)
    page = p.open("#/agent/Root/versions")
    page.locator("[data-ready=graph]").wait_for()
    caption = page.locator("figcaption")
    expect(caption).to_contain_text("34 agents in this fork family, 9 shown")
    node = lambda key: page.locator(f'[data-node="{key}"]')  # noqa: E731
    # the forks taken at version 0 first, then at version 1: 8 of them drawn, the rest one click away
    assert [node(f"Kid-{i:02d}@0").count() for i in (0, 2, 4, 6, 8, 10, 12, 14, 1)] == [1] * 8 + [0]
    expect(node("Root#more")).to_contain_text("+ 22 more")
    expect(node("Kid-06#forks")).to_have_count(0)
    p.shot("13-family-collapsed")
    node("Root#more").click()
    expect(node("Kid-29@0")).to_have_count(1)
    expect(node("Root#more")).to_have_count(0)
    expect(caption).to_contain_text("31 shown")
    # Kid-05's own forks, by keyboard
    expect(node("Kid-05#forks")).to_contain_text("▸ 3 forks")
    node("Kid-05#forks").focus()
    page.keyboard.press("Enter")
    expect(node("Grandkid-2@0")).to_have_count(1)
    expect(caption).to_contain_text("34 agents in this fork family.")
    p.shot("14-family-expanded")
    # from a grandchild: its lineage is drawn (Root, Kid-05), and its fork point in Kid-05
    page.goto(f"http://127.0.0.1:{server}/ui#/agent/Grandkid-1/versions")
    page.locator("[data-ready=graph]").wait_for()
    for key in ("Root@0", "Kid-05@0", "Grandkid-1@0", "Grandkid-0@0"):
        expect(node(key)).to_have_count(1)
    assert p.invoked("agent:list")[-1] == {"includeTerminated": True, "includeForks": True}
    assert p.errors == []
