"""The inspector in a real browser (Debian's Chromium, headless) against a real `lattice serve`.

Agents and forks are made through the API; the page is driven as a person would (clicks and keys) and
what it shows is checked: agent -> timeline -> version -> state -> diff -> replay, jobs, live updates,
a narrow window, tokens. Every page must end without a console error. Screenshots: test-artifacts/ui/.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.ui.browser import TOKEN_A, TOKEN_B, api, ok

QUESTION = {"question": "What vendors are overdue?"}


@pytest.fixture(scope="module")
def alice(server):
    """Alice (three runs: a task, a message, a trigger; seven versions), Alice-early forked at version 2, Alice-v2 forked at the head."""
    ok(server, "agent:create", {"agentId": "Alice", "config": "vendor-assistant"})
    ok(server, "agent:request", {"agentId": "Alice", "input": QUESTION, "wait": True})
    ok(server, "agent:message", {"agentId": "Alice", "message": "New invoice uploaded to w/invoices/INV-2026-042"})
    ok(server, "agent:trigger", {"agentId": "Alice", "wait": True})
    ok(server, "agent:fork", {"sourceId": "Alice", "agentId": "Alice-early", "at": 2})
    ok(server, "agent:fork", {"sourceId": "Alice", "agentId": "Alice-v2", "config": {"systemPrompt": "Be brief."}})
    return server


def test_agent_timeline_version_state_diff_replay(alice, page_factory):
    p = page_factory(alice)
    page = p.open()
    # agents: the list, then one agent
    page.locator("a.agent[data-agent=Alice]").click()
    timeline = page.locator(".timeline[data-ready=timeline]")
    timeline.wait_for()
    assert "3 in all" in timeline.locator("h3").inner_text()
    runs = page.locator("li.run")
    assert runs.count() == 3
    # the oldest run: its task, result, task result and the model exchanges it recorded
    first = runs.nth(2)
    first.locator("summary").first.click()
    body = first.locator(".run-body")
    assert "What vendors are overdue?" in body.inner_text()
    assert "Three vendors are overdue" in body.inner_text()
    assert body.locator(".task-results .badge").inner_text() == "COMPLETE"
    body.get_by_role("button", name="Show the model exchanges").click()
    exchanges = body.locator(".exchanges[data-ready=exchanges]")
    exchanges.wait_for()
    assert "v2" in exchanges.inner_text()  # the run is version 2 (create, request, run)
    assert p.invoked("agent:version") == [{"agentId": "Alice", "at": 2, "maxSize": 1 << 20}]
    (call,) = exchanges.locator("li.exchange").all()  # one model call, exactly as recorded
    assert "✓ request verified" in call.inner_text()
    assert "1 message of context" in call.locator("details.context summary").inner_text()  # the system prompt
    new = call.locator("ol.messages.new li.msg")
    assert new.count() == 1 and "What vendors are overdue?" in new.inner_text()  # the task, as the model got it
    assert "complete_task" in call.locator("ol.reply").inner_text()  # its reply: the tool call
    p.shot("1-timeline")

    # versions: the graph across agents, with both forks from the versions they were taken at
    page.locator("[data-tab=versions]").click()
    page.locator("[data-ready=graph]").wait_for()
    for node in ("Alice@0", "Alice@2", "Alice-early@0", "Alice-v2@0"):
        assert page.locator(f'[data-node="{node}"]').count() == 1, node
    assert page.locator(".edge.fork").count() == 2
    assert "3 agents in this fork family" in page.locator("figcaption").inner_text()
    page.locator("table.versions[data-ready=versions]").wait_for()
    assert page.locator("table.versions tbody tr").count() == 7
    p.shot("2-versions")

    # a version of the graph (by keyboard): its state tree, read lazily
    page.locator('[data-node="Alice@2"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**#/agent/Alice/state?at=2")
    page.locator('button.toggle[data-path="g/Alice/state"]').click()
    page.locator('button.toggle[data-path="g/Alice/state/history"]').click()
    items = page.locator("ol.items > li")
    items.first.wait_for()
    assert items.count() == 3  # at version 2: the first run's three messages
    page.locator('button.toggle[data-path="g/Alice/status"]').click()
    expect(page.locator('button.toggle[data-path="g/Alice/status"] + .children')).to_contain_text("SLEEPING")
    p.shot("3-state")

    # diff: from the state view's link, version 1 -> 2
    page.get_by_role("link", name="diff with v1").click()
    page.locator("[data-ready=diff]").wait_for()
    paths = page.locator("table.changes td.path").all_inner_texts()
    assert "state/history/0" in paths and "timeline/0" in paths and "status" in paths
    row = page.locator("table.changes tr", has=page.locator("td.path", has_text="status"))
    assert "RUNNING" in row.inner_text() and "SLEEPING" in row.inner_text()
    # two agents: Alice against her fork with another system prompt
    page.get_by_label("another agent").check()
    page.locator("#diff-other").select_option("Alice-v2")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**other=Alice-v2**")
    page.locator("[data-ready=diff]").wait_for()
    expect(page.locator("table.changes")).to_contain_text("state/config/systemPrompt")
    p.shot("4-diff")

    # replay: verify, then a what-if from version 0 with another config, then a fork from version 1
    page.locator("[data-tab=replay]").click()
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("[data-result=identical]")).to_contain_text("Identical: 7 versions re-derived")
    page.locator("#whatif-from").fill("0")
    page.locator("#whatif-into").fill("Alice-what-if")
    page.locator("#whatif-config").fill('{"systemPrompt": "Answer in one line."}')
    page.get_by_role("button", name="Run what-if").click()
    result = page.locator("[data-result=whatif]")
    expect(result).to_contain_text("Alice-what-if")
    assert result.locator("a.diverged").count() >= 1  # another prompt: the model was called live
    page.locator("#fork-at").fill("1")
    page.locator("#fork-into").fill("Alice-at-1")
    page.get_by_role("button", name="Fork").click()
    expect(page.locator("[data-result=fork]")).to_contain_text("Alice-at-1")
    assert ok(alice, "agent:history", {"agentId": "Alice-at-1"})["versions"][0]["op"] == "agent:fork"
    p.shot("5-replay")

    # the graph now shows the what-if, its source versions marked, and the new fork
    page.locator("[data-tab=versions]").click()
    expect(page.locator('[data-node="Alice-what-if@0"]')).to_have_count(1)
    assert page.locator('[data-node="Alice-at-1@0"]').count() == 1
    assert page.locator(".vnode.diverged").count() >= 1
    p.shot("6-graph-after-replay")
    assert p.errors == []


def test_a_divergence_is_shown_with_its_path(alice, page_factory):
    """A verify that finds a divergence (served canned here: the store cannot be corrupted through the API)."""
    p = page_factory(alice)
    page = p.page
    divergence = {"seq": 3, "path": "state/history/2", "expected": {"role": "tool"}, "got": {"role": "user"}}

    def fake(route):
        body = json.loads(route.request.post_data)
        if body["operation"] != "agent:replay":
            return route.continue_()
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "jobId": "0x" + "0" * 32, "operation": "agent:replay", "status": "COMPLETE", "error": None,
            "output": {"agentId": "Alice", "replayed": 2, "identical": False, "divergence": divergence},
            "created": 0, "updated": 0}))

    page.route("**/api/v1/invoke", fake)
    p.open("#/agent/Alice/replay")
    page.get_by_role("button", name="Verify").click()
    shown = page.locator("[data-result=diverged]")
    expect(shown).to_contain_text("Diverged at version v3")
    assert shown.locator(".div-path code").inner_text() == "state/history/2"
    assert shown.get_by_role("link", name="diff v2 → v3").count() == 1
    p.shot("7-divergence")
    assert p.errors == []


def test_live_updates_arrive_over_the_event_stream(alice, page_factory):
    ok(alice, "agent:create", {"agentId": "Live", "config": "vendor-assistant"})
    p = page_factory(alice)
    page = p.open("#/agent/Live/timeline")
    page.locator(".timeline[data-ready=timeline]").wait_for()
    expect(page.locator(".live")).to_have_text("● live")
    assert page.locator("li.run").count() == 0
    ok(alice, "agent:request", {"agentId": "Live", "input": QUESTION, "wait": True})
    page.locator("li.run").first.wait_for()  # no reload: the agent-version events brought it
    expect(page.locator(".timeline h3")).to_contain_text("1 in all")
    expect(page.locator(".agent-head .facts a").first).to_have_text("v2")
    expect(page.locator("a.agent[data-agent=Live]")).to_contain_text("ago")
    assert any(r.url.endswith("/api/v1/agents/Live/events") for r in p.requests)
    assert p.errors == []


def test_a_job_and_its_live_stream(alice, page_factory):
    ok(alice, "agent:create", {"agentId": "Stuck", "config": {"model": {"provider": "hang"}}})
    assert api(alice, "agent:request", {"agentId": "Stuck", "input": "first"})["status"] == "STARTED"  # hangs
    second = api(alice, "agent:request", {"agentId": "Stuck", "input": "second"})
    assert second["status"] == "PENDING"
    p = page_factory(alice)
    page = p.open("#/jobs")
    page.locator("table.job-table[data-ready=jobs]").wait_for()
    row = page.locator("table.job-table tbody tr").first
    assert "agent:request" in row.inner_text() and "PENDING" in row.inner_text()
    row.locator("a").first.click()
    page.locator("[data-ready=job]").wait_for()
    expect(page.locator(".job")).to_contain_text("following its event stream")
    expect(page.locator(".job .json pre").first).to_contain_text('"second"')
    page.get_by_role("button", name="Cancel").click()
    page.locator(".job .badge", has_text="CANCELLED").wait_for()
    expect(page.locator(".job .error code")).to_have_text("cancelled")  # the job's error (its code), as sent
    assert api(alice, "covia:read", {"path": f"j/{second['jobId']}"})["output"]["value"]["status"] == "CANCELLED"
    p.shot("8-job")
    assert p.errors == []


def test_a_long_history_is_read_a_page_at_a_time(alice, page_factory):
    history = [{"role": "user", "content": f"message {i}"} for i in range(2000)]
    ok(alice, "agent:create", {"agentId": "Long", "config": "echo", "state": {"history": history}})
    p = page_factory(alice)
    page = p.open("#/agent/Long/state?path=state/history")
    items = page.locator("ol.items > li")
    items.first.wait_for()
    assert items.count() == 50
    expect(page.locator(".pager")).to_contain_text("0–49 of 2,000")
    page.get_by_role("button", name="last »").click()
    page.locator(".pager", has_text="1,950–1999 of 2,000").wait_for()
    expect(items.last).to_contain_text("message 1999")
    page.locator(".pager input").fill("1234")
    page.get_by_role("button", name="go", exact=True).click()
    page.locator(".pager", has_text="1,200–1249").wait_for()
    slices = [i for i in p.invoked("covia:slice") if i["path"] == "g/Long/state/history"]
    assert slices and all(i["limit"] <= 50 for i in slices)
    assert not [i for i in p.invoked("covia:read") if i["path"].startswith("g/Long/state")]
    assert p.errors == []


def test_keyboard_only(alice, page_factory):
    p = page_factory(alice)
    page = p.open()
    page.locator("a.agent").first.wait_for()
    page.keyboard.press("/")
    page.keyboard.type("Alice-ear")
    page.keyboard.press("Tab")  # to the only agent left
    assert page.evaluate("document.activeElement.dataset.agent") == "Alice-early"
    page.keyboard.press("Enter")
    page.wait_for_url("**#/agent/Alice-early/timeline")
    page.locator('[data-tab=timeline]').focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**#/agent/Alice-early/versions")
    page.locator("[data-ready=graph]").wait_for()
    assert page.evaluate("document.activeElement.dataset.tab") == "versions"
    page.locator('[data-node="Alice@2"]').focus()  # the fork point, in the source agent
    page.keyboard.press("Enter")
    page.wait_for_url("**#/agent/Alice/state?at=2")
    page.locator('button.toggle[data-path="g/Alice/timeline"]').focus()
    page.keyboard.press("Enter")
    assert page.locator('button.toggle[data-path="g/Alice/timeline"]').get_attribute("aria-expanded") == "true"
    assert p.errors == []


READY = {"timeline": ".timeline[data-ready=timeline]", "versions": "[data-ready=graph]",
         "state": 'button.toggle[data-path="g/Alice/state"]', "diff?from=0": "[data-ready=diff]",
         "replay": "#whatif-config"}


@pytest.mark.parametrize("view", list(READY))
def test_readable_in_a_narrow_window(alice, page_factory, view):
    p = page_factory(alice, width=400, height=800)
    page = p.open(f"#/agent/Alice/{view}")
    page.locator(READY[view]).wait_for()
    # nothing wider than the window: the version graph and long values scroll in their own boxes
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"{view}: the page is {width} px wide"
    assert page.locator("a.agent[data-agent=Alice]").is_visible()
    assert page.locator("[data-tab=replay]").is_visible()
    p.shot(f"9-narrow-{view.split('?')[0]}")
    assert p.errors == []


def test_with_tokens_the_page_asks_for_one_and_sends_it(token_server, page_factory):
    ok(token_server, "agent:create", {"agentId": "Mine", "config": "echo"}, token=TOKEN_A)
    ok(token_server, "agent:create", {"agentId": "Theirs", "config": "echo"}, token=TOKEN_B)
    ok(token_server, "agent:request", {"agentId": "Mine", "input": "hello", "wait": True}, token=TOKEN_A)
    p = page_factory(token_server)
    page = p.open("#/agent/Mine/timeline")
    page.get_by_label("Token").wait_for()
    assert p.requests == []  # nothing asked of the API before there is a token
    p.shot("10-token-prompt")
    page.get_by_label("Token").fill(TOKEN_A)
    page.get_by_role("button", name="Open").click()
    page.locator("li.run").first.wait_for()
    expect(page.locator(".live")).to_have_text("● live")  # the event stream, read with fetch and the token
    assert [a.get_attribute("data-agent") for a in page.locator("a.agent").all()] == ["Mine"]  # alice's only
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN_A}" for r in p.requests)
    assert page.evaluate("sessionStorage.getItem('lattice.token')") == TOKEN_A
    page.reload()  # the token is kept for the tab
    page.locator("li.run").first.wait_for()
    page.get_by_role("button", name="Forget token").click()
    page.get_by_label("Token").wait_for()
    assert page.evaluate("sessionStorage.getItem('lattice.token')") is None
    assert p.errors == []


def test_a_refused_token_brings_the_prompt_back(token_server, page_factory):
    p = page_factory(token_server)
    page = p.open()
    page.get_by_label("Token").fill("not-a-valid-token-at-all")
    page.get_by_role("button", name="Open").click()
    page.locator(".error", has_text="refused").wait_for()
    assert page.evaluate("sessionStorage.getItem('lattice.token')") is None
