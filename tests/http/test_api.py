"""Happy paths of every operation over HTTP (DESIGN.md sections 2-5, seed 002)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from ops.engine.config import templates
from tests.http.helpers import (ECHO, HANG, JOB_ID, answer, assert_job_shape, create, failed, get_job, info, invoke,
                                invoke_full, ok, read, until, value, wait_job)


async def timeline(client, aid: str) -> list:
    out = await read(client, f"g/{aid}/timeline")
    return out["value"] if out["exists"] else []


# ---------------------------------------------------------------- main flow (both backends)


async def test_main_flow_on_each_backend(any_client):
    c = any_client
    out = await create(c, "Alice", ECHO)
    assert out == {"agentId": "Alice", "status": "SLEEPING", "created": True, "updated": False}
    assert await value(c, "g/Alice/status") == "SLEEPING"

    # request, blocking: the job is the task, echo answers with the input
    status, job = await invoke(c, "agent:request", {"agentId": "Alice", "input": "hello", "wait": True})
    assert status == 200, job
    assert_job_shape(job, "agent:request")
    assert job["status"] == "COMPLETE" and answer(job) == "hello" and job["error"] is None
    tid = job["jobId"]
    # a string answer is wrapped: a request's output is an object, as the venue's
    assert job["output"] == {"id": tid, "jobId": tid, "agentId": "Alice", "status": "COMPLETE", "output": "hello"}

    # the job is stored at j/<jobId>
    stored = await value(c, f"j/{tid}")
    assert stored["jobId"] == tid and stored["status"] == "COMPLETE" and answer(stored) == "hello"
    assert stored["operation"] == "agent:request"

    # one timeline entry, the seed's shape
    tl = await timeline(c, "Alice")
    assert len(tl) == 1
    entry = tl[0]
    assert set(entry) == {"start", "end", "op", "tasks", "messages", "result", "taskResults"}
    assert entry["tasks"] == ["hello"] and entry["messages"] == [] and entry["result"] == "hello"
    assert entry["taskResults"] == {tid: {"status": "COMPLETE", "output": "hello"}}
    assert entry["end"] >= entry["start"] > 0
    assert await value(c, "g/Alice/state/history") == [
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello"}]

    # async request, polled to completion
    status, job, headers = await invoke_full(c, "agent:request", {"agentId": "Alice", "input": {"q": 1}})
    assert status == 202, job
    assert job["status"] in ("PENDING", "STARTED")
    assert headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    done = await wait_job(c, job["jobId"])
    assert done["status"] == "COMPLETE" and json.loads(answer(done)) == {"q": 1}  # the input rendered as text

    # fork copies the history
    out = await ok(c, "agent:fork", {"sourceId": "Alice", "agentId": "Bob"})
    assert out == {"agentId": "Bob", "status": "SLEEPING", "created": True, "forkedFrom": "Alice"}
    assert await value(c, "g/Bob/state/history") == await value(c, "g/Alice/state/history")

    inf = await info(c, "Alice")
    assert inf["timelineLength"] == 2 and inf["taskCount"] == 0 and inf["status"] == "SLEEPING"
    listed = await ok(c, "agent:list", {})
    assert [a["agentId"] for a in listed["agents"]] == ["Alice", "Bob"]

    out = await ok(c, "agent:delete", {"agentId": "Bob", "remove": True})
    assert out == {"agentId": "Bob", "status": "TERMINATED", "removed": True}
    assert (await read(c, "g/Bob"))["exists"] is False


# ---------------------------------------------------------------- agent:create


async def test_create_inline_config_and_state(client):
    cfg = {"model": {"provider": "echo"}, "systemPrompt": "be brief", "metadata": {"custom": [1, 2]}}
    out = await create(client, "A1", cfg, state={"notes": {"k": 1}, "n": 3})
    assert out == {"agentId": "A1", "status": "SLEEPING", "created": True, "updated": False}
    assert await value(client, "g/A1/state/config") == cfg
    st = await value(client, "g/A1/state")
    assert st["notes"] == {"k": 1} and st["n"] == 3
    assert st["config"] == cfg and st["history"] == []
    rec = await value(client, "g/A1")
    assert {"status", "error", "created", "updated", "state", "inbox", "tasks", "pending", "timeline"} <= set(rec)
    assert rec["status"] == "SLEEPING" and rec["error"] is None
    assert rec["inbox"] == [] and rec["tasks"] == {} and rec["pending"] == {} and rec["timeline"] == []


async def test_create_from_template(client):
    out = await create(client, "V", "vendor-assistant")
    assert out["created"] is True and out["status"] == "SLEEPING"
    cfg = await value(client, "g/V/state/config")
    assert cfg == templates()["vendor-assistant"]
    assert cfg["model"]["provider"] == "scripted"
    # the template's script answers the seed's example question
    status, job = await invoke(client, "agent:request", {
        "agentId": "V", "input": {"question": "What vendors are overdue?"}, "wait": True})
    assert status == 200 and job["status"] == "COMPLETE", job
    assert "overdue" in job["output"]["answer"]


async def test_create_from_workspace_path(client):
    cfg = {"model": {"provider": "echo"}, "systemPrompt": "from the workspace"}
    assert (await ok(client, "covia:write", {"path": "w/configs/a", "value": cfg}))["written"] is True
    out = await create(client, "W", "w/configs/a")
    assert out == {"agentId": "W", "status": "SLEEPING", "created": True, "updated": False}
    assert await value(client, "g/W/state/config") == cfg


async def test_create_twice_and_overwrite(client):
    await create(client, "A", ECHO, state={"v": 1})
    before = await value(client, "g/A")
    out = await create(client, "A", {"model": {"provider": "echo"}, "systemPrompt": "other"})
    assert out == {"agentId": "A", "status": "SLEEPING", "created": False, "updated": False}
    assert await value(client, "g/A") == before  # untouched
    out = await create(client, "A", {"model": {"provider": "echo"}, "systemPrompt": "new"}, overwrite=True)
    assert out == {"agentId": "A", "status": "SLEEPING", "created": False, "updated": True}
    assert (await value(client, "g/A/state/config"))["systemPrompt"] == "new"
    assert "v" not in await value(client, "g/A/state")


async def test_operation_alias(client):
    status, body = await invoke(client, "v/ops/agent/create", {"agentId": "Al", "config": ECHO})
    assert status == 200, body
    assert body["status"] == "COMPLETE" and body["operation"] == "agent:create"
    assert body["output"]["created"] is True
    status, body = await invoke(client, "v/ops/agent/info", {"agentId": "Al"})
    assert status == 200 and body["operation"] == "agent:info" and body["output"]["agentId"] == "Al"


# ---------------------------------------------------------------- agent:request and jobs


async def test_request_wait_timeout_then_cancel(client):
    await create(client, "H", HANG)
    t0 = time.monotonic()
    status, job, headers = await invoke_full(client, "agent:request", {"agentId": "H", "input": "x", "wait": 200})
    elapsed = time.monotonic() - t0
    assert status == 202, job
    assert job["status"] == "STARTED"
    assert headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    assert 0.15 <= elapsed < 3.0, elapsed
    inf = await info(client, "H")
    assert inf["status"] == "RUNNING" and inf["taskCount"] == 1

    r = await client.put(f"/api/v1/jobs/{job['jobId']}/cancel")
    assert r.status == 200
    cancelled = await r.json()
    assert_job_shape(cancelled, "agent:request")
    assert cancelled["jobId"] == job["jobId"] and cancelled["status"] == "CANCELLED"
    assert (await wait_job(client, job["jobId"]))["status"] == "CANCELLED"

    inf = await info(client, "H")
    assert inf["status"] == "SLEEPING" and inf["taskCount"] == 0 and inf["timelineLength"] == 0
    assert await value(client, "g/H/tasks") == {}
    # cancelling again is harmless: the job stays CANCELLED
    r = await client.put(f"/api/v1/jobs/{job['jobId']}/cancel")
    assert r.status == 200 and (await r.json())["status"] == "CANCELLED"


async def test_get_job_by_id_and_status_endpoint(client):
    await create(client, "A", ECHO)
    status, job = await invoke(client, "agent:request", {"agentId": "A", "input": "hi", "wait": True})
    st, got = await get_job(client, job["jobId"])
    assert st == 200 and got == job
    # job ids are accepted in any case and without 0x
    st, got = await get_job(client, job["jobId"][2:].upper())
    assert st == 200 and got["jobId"] == job["jobId"]

    r = await client.get("/api/v1/status")
    assert r.status == 200 and r.content_type == "application/json"
    body = await r.json()
    assert isinstance(body, dict) and body


async def test_unknown_job_is_404(client):
    for jid in ("0x" + "ab" * 16, "nonsense"):
        st, body = await get_job(client, jid)
        assert st == 404, body
        assert body["errorCode"] == "not_found" and body["error"]
    r = await client.put("/api/v1/jobs/0x" + "cd" * 16 + "/cancel")
    assert r.status == 404 and (await r.json())["errorCode"] == "not_found"


async def test_message_recorded_in_timeline(client):
    await create(client, "M", ECHO)
    out = await ok(client, "agent:message", {"agentId": "M", "message": "New invoice uploaded"})
    assert out == {"agentId": "M", "delivered": True}
    tl = await until(lambda: timeline(client, "M"), what="a timeline entry")
    assert len(tl) == 1
    msgs = tl[0]["messages"]
    assert len(msgs) == 1 and msgs[0]["message"] == "New invoice uploaded" and msgs[0]["caller"] == "local"
    assert tl[0]["tasks"] == [] and tl[0]["taskResults"] == {}
    await until(lambda: _status_is(client, "M", "SLEEPING"), what="SLEEPING")
    assert await value(client, "g/M/inbox") == []


async def _status_is(client, aid, status):
    return (await info(client, aid))["status"] == status


async def test_scripted_tools_complete_write_and_message(client):
    model = {"provider": "scripted", "rules": [
        {"when": "do-work", "toolCalls": [
            {"name": "covia_write", "arguments": {"path": "w/results/x", "value": {"v": 42}}},
            {"name": "agent_message", "arguments": {"agentId": "B", "message": "hello B"}}]},
        {"when": "delivered to", "toolCalls": [
            {"name": "complete_task", "arguments": {"output": {"answer": 42, "ok": True}}}]},
    ]}
    await create(client, "A", {"model": model})
    await create(client, "B", ECHO)
    status, job = await invoke(client, "agent:request", {"agentId": "A", "input": "please do-work", "wait": True})
    assert status == 200, job
    assert job["status"] == "COMPLETE" and job["output"] == {"answer": 42, "ok": True}, job
    assert await value(client, "w/results/x") == {"v": 42}

    tl_b = await until(lambda: timeline(client, "B"), what="B's run")
    assert tl_b[0]["messages"][0]["message"] == "hello B"
    assert tl_b[0]["messages"][0]["caller"] == "agent:A"

    tl_a = await timeline(client, "A")
    assert tl_a[0]["taskResults"][job["jobId"]] == {"status": "COMPLETE", "output": {"answer": 42, "ok": True}}
    roles = [m["role"] for m in await value(client, "g/A/state/history")]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool"]


async def test_fail_task(client):
    model = {"provider": "scripted", "rules": [
        {"toolCalls": [{"name": "fail_task", "arguments": {"error": "cannot do it"}}]}]}
    await create(client, "F", {"model": model})
    status, job = await invoke(client, "agent:request", {"agentId": "F", "input": "x", "wait": True})
    assert status == 200, job
    assert job["status"] == "FAILED" and job["output"] is None
    assert job["errorCode"] == "task_failed" and "cannot do it" in job["error"]
    # the run itself succeeded: agent fine, timeline entry recorded
    inf = await info(client, "F")
    assert inf["status"] == "SLEEPING" and inf["error"] is None and inf["timelineLength"] == 1
    tl = await timeline(client, "F")
    assert tl[0]["taskResults"][job["jobId"]]["status"] == "FAILED"


async def test_llm_error_suspends_then_update_and_resume(client):
    await create(client, "E", ECHO)
    await ok(client, "agent:request", {"agentId": "E", "input": "first", "wait": True})
    assert (await info(client, "E"))["timelineLength"] == 1

    out = await ok(client, "agent:update", {"agentId": "E", "config": {"model": {"provider": "error", "message": "boom"}}})
    assert out == {"agentId": "E", "status": "SLEEPING"}
    status, job, headers = await invoke_full(client, "agent:request", {"agentId": "E", "input": "second", "wait": True})
    assert status == 202, job  # returns early: the agent is SUSPENDED
    assert job["status"] == "PENDING" and job["error"] is None
    assert job["agent"]["status"] == "SUSPENDED" and job["agent"]["agentId"] == "E"  # why it is not done
    assert job["agent"]["error"]["code"] == "llm_error" and "boom" in job["agent"]["error"]["message"]
    assert "agent" not in (await get_job(client, job["jobId"]))[1]  # the job itself is unchanged
    assert headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    tid = job["jobId"]

    inf = await info(client, "E")
    assert inf["status"] == "SUSPENDED"
    assert inf["errorCode"] == "llm_error" and "boom" in inf["error"]
    assert inf["timelineLength"] == 1 and inf["taskCount"] == 1
    assert tid in await value(client, "g/E/tasks")
    assert (await get_job(client, tid))[1]["status"] == "PENDING"
    assert await value(client, "g/E/status") == "SUSPENDED"

    out = await ok(client, "agent:update", {"agentId": "E", "config": {"model": {"provider": "echo"}}})
    assert out == {"agentId": "E", "status": "SUSPENDED"}
    out = await ok(client, "agent:resume", {"agentId": "E"})
    assert out["agentId"] == "E" and out["status"] in ("RUNNING", "SLEEPING")
    done = await wait_job(client, tid)
    assert done["status"] == "COMPLETE" and answer(done) == "second"
    inf = await info(client, "E")
    assert inf["error"] is None and inf["timelineLength"] == 2 and inf["taskCount"] == 0


# ---------------------------------------------------------------- fork, suspend, delete, cancel


async def test_fork(client):
    await create(client, "S", {"model": {"provider": "echo"}, "systemPrompt": "orig", "description": "kept"}, state={"mem": "x"})
    await ok(client, "agent:request", {"agentId": "S", "input": "one", "wait": True})
    out = await ok(client, "agent:fork", {"sourceId": "S", "agentId": "S2", "config": {"systemPrompt": "new"}})
    assert out == {"agentId": "S2", "status": "SLEEPING", "created": True, "forkedFrom": "S"}
    assert await value(client, "g/S2/state/history") == await value(client, "g/S/state/history")
    assert len(await value(client, "g/S2/state/history")) == 2
    assert await value(client, "g/S2/state/config") == {"model": {"provider": "echo"}, "systemPrompt": "new", "description": "kept"}
    assert (await value(client, "g/S2/state"))["mem"] == "x"
    assert await value(client, "g/S2/timeline") == []
    rec = await value(client, "g/S2")
    assert rec["tasks"] == {} and rec["inbox"] == [] and rec["pending"] == {} and rec["status"] == "SLEEPING"
    # source unchanged
    assert (await value(client, "g/S/state/config"))["systemPrompt"] == "orig"

    await ok(client, "agent:fork", {"sourceId": "S", "agentId": "S3", "includeTimeline": True})
    assert await value(client, "g/S3/timeline") == await value(client, "g/S/timeline")
    assert len(await value(client, "g/S3/timeline")) == 1

    # the fork is an independent agent
    status, job = await invoke(client, "agent:request", {"agentId": "S2", "input": "two", "wait": True})
    assert job["status"] == "COMPLETE"
    assert len(await value(client, "g/S/state/history")) == 2

    body = await failed(client, "agent:fork", {"sourceId": "S", "agentId": "S2"}, "conflict")
    assert body["operation"] == "agent:fork"


async def test_suspend_queues_then_resume_autowake(client):
    await create(client, "Q", ECHO)
    assert await ok(client, "agent:suspend", {"agentId": "Q"}) == {"agentId": "Q", "status": "SUSPENDED"}
    status, job = await invoke(client, "agent:request", {"agentId": "Q", "input": "queued"})
    assert status == 202 and job["status"] == "PENDING"
    await asyncio.sleep(0.05)
    assert (await get_job(client, job["jobId"]))[1]["status"] == "PENDING"
    inf = await info(client, "Q")
    assert inf["status"] == "SUSPENDED" and inf["taskCount"] == 1 and inf["timelineLength"] == 0
    # wait:true on a suspended agent returns at once
    status, job2 = await invoke(client, "agent:request", {"agentId": "Q", "input": "queued2", "wait": True})
    assert status == 202 and job2["status"] == "PENDING"
    assert job2["agent"] == {"agentId": "Q", "status": "SUSPENDED", "error": None}

    out = await ok(client, "agent:resume", {"agentId": "Q", "autoWake": True})
    assert out == {"agentId": "Q", "status": "RUNNING"}
    assert answer(await wait_job(client, job["jobId"])) == "queued"
    assert answer(await wait_job(client, job2["jobId"])) == "queued2"
    await until(lambda: _status_is(client, "Q", "SLEEPING"), what="SLEEPING")
    tl = await timeline(client, "Q")
    assert [e["tasks"] for e in tl] == [["queued"], ["queued2"]]  # FIFO


async def test_resume_without_autowake(client):
    await create(client, "R", ECHO)
    await ok(client, "agent:suspend", {"agentId": "R"})
    status, job = await invoke(client, "agent:request", {"agentId": "R", "input": "later"})
    assert await ok(client, "agent:resume", {"agentId": "R", "autoWake": False}) == {"agentId": "R", "status": "SLEEPING"}
    await asyncio.sleep(0.05)
    assert (await get_job(client, job["jobId"]))[1]["status"] == "PENDING"
    # the next piece of work wakes it and the queued task runs first
    status, job2 = await invoke(client, "agent:request", {"agentId": "R", "input": "now", "wait": True})
    assert job2["status"] == "COMPLETE"
    assert answer(await wait_job(client, job["jobId"])) == "later"


async def test_delete_terminates_and_remove_frees_name(client):
    await create(client, "D", ECHO)
    await create(client, "K", ECHO)
    assert await ok(client, "agent:delete", {"agentId": "D"}) == {"agentId": "D", "status": "TERMINATED"}
    assert await value(client, "g/D/status") == "TERMINATED"
    listed = await ok(client, "agent:list", {})
    assert [a["agentId"] for a in listed["agents"]] == ["K"]
    listed = await ok(client, "agent:list", {"includeTerminated": True})
    assert {a["agentId"]: a["status"] for a in listed["agents"]} == {"D": "TERMINATED", "K": "SLEEPING"}
    # creating over a TERMINATED agent without overwrite does not revive it
    out = await create(client, "D", ECHO)
    assert out == {"agentId": "D", "status": "TERMINATED", "created": False, "updated": False}

    assert await ok(client, "agent:delete", {"agentId": "D", "remove": True}) == {"agentId": "D", "status": "TERMINATED",
                                                                                  "removed": True}
    assert await read(client, "g/D") == {"exists": False, "value": None}
    listed = await ok(client, "agent:list", {"includeTerminated": True})
    assert [a["agentId"] for a in listed["agents"]] == ["K"]
    out = await create(client, "D", ECHO)
    assert out == {"agentId": "D", "status": "SLEEPING", "created": True, "updated": False}
    assert await value(client, "g/D/timeline") == []


async def test_delete_cancels_pending_tasks(client):
    await create(client, "D", ECHO)
    await ok(client, "agent:suspend", {"agentId": "D"})
    _, job = await invoke(client, "agent:request", {"agentId": "D", "input": "x"})
    await ok(client, "agent:delete", {"agentId": "D"})
    assert (await wait_job(client, job["jobId"]))["status"] == "CANCELLED"


async def test_cancel_queued_task(client):
    await create(client, "C", ECHO)
    await ok(client, "agent:suspend", {"agentId": "C"})
    status, job = await invoke(client, "agent:request", {"agentId": "C", "input": "never"})
    assert status == 202
    tid = job["jobId"]
    assert list(await value(client, "g/C/tasks")) == [tid]
    out = await ok(client, "agent:cancelTask", {"agentId": "C", "taskId": tid})
    assert out == {"agentId": "C", "taskId": tid, "cancelled": True}
    st, got = await get_job(client, tid)
    assert st == 200 and got["status"] == "CANCELLED"
    assert await value(client, "g/C/tasks") == {}
    inf = await info(client, "C")
    assert inf["taskCount"] == 0 and inf["status"] == "SUSPENDED"
    # resuming finds no work
    assert await ok(client, "agent:resume", {"agentId": "C"}) == {"agentId": "C", "status": "SLEEPING"}
    assert (await info(client, "C"))["timelineLength"] == 0


# ---------------------------------------------------------------- inspection


async def test_info_and_list(client):
    cfg = {"model": {"provider": "echo"}, "systemPrompt": "p"}
    await create(client, "I", cfg)
    await create(client, "J", HANG)
    _, job = await invoke(client, "agent:request", {"agentId": "J", "input": "x"})
    await until(lambda: _status_is(client, "J", "RUNNING"), what="RUNNING")
    inf = await info(client, "I")
    assert inf == {"agentId": "I", "status": "SLEEPING", "config": cfg, "taskCount": 0, "tasks": 0, "timelineLength": 0,
                   "error": None, "errorCode": None}
    listed = await ok(client, "agent:list", {})
    assert await ok(client, "agent:list") == listed  # input may be omitted
    assert all(isinstance(a.pop("updated"), int) for a in listed["agents"])  # last activity, Unix ms
    assert listed == {"agents": [
        {"agentId": "I", "status": "SLEEPING", "taskCount": 0, "tasks": 0, "error": None, "errorCode": None},
        {"agentId": "J", "status": "RUNNING", "taskCount": 1, "tasks": 1, "error": None, "errorCode": None}]}
    r = await client.put(f"/api/v1/jobs/{job['jobId']}/cancel")
    assert (await r.json())["status"] == "CANCELLED"


async def test_context(client):
    await create(client, "X", {"model": {"provider": "echo"}, "systemPrompt": "You are X."})
    await ok(client, "agent:request", {"agentId": "X", "input": "earlier", "wait": True})
    ctx = await ok(client, "agent:context", {"agentId": "X"})
    assert set(ctx) == {"model", "messages", "tools", "entries"}
    assert ctx["model"]["provider"] == "echo"
    msgs = ctx["messages"]
    assert msgs[0] == {"role": "system", "content": "You are X."}
    assert msgs[1:3] == [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "earlier"}]
    assert msgs[-1]["role"] == "user" and len(msgs) == 4  # the idle/trigger prompt
    names = {t["name"] for t in ctx["tools"]}
    assert {"complete_task", "fail_task", "covia_read", "covia_write", "covia_list", "agent_message"} <= names
    for t in ctx["tools"]:
        assert isinstance(t["description"], str) and isinstance(t["parameters"], dict)
    assert ctx["entries"] and all(set(e) == {"name", "bytes"} for e in ctx["entries"])
    assert all(isinstance(e["name"], str) and isinstance(e["bytes"], int) and e["bytes"] >= 0 for e in ctx["entries"])

    task = {"invoice": "INV-2026-042", "amount": 3}
    ctx2 = await ok(client, "agent:context", {"agentId": "X", "task": task})
    last = ctx2["messages"][-1]
    assert last["role"] == "user"
    assert json.loads(last["content"]) == task
    assert ctx2["messages"][:3] == msgs[:3]
    ctx3 = await ok(client, "agent:context", {"agentId": "X", "task": "plain text task"})
    assert ctx3["messages"][-1] == {"role": "user", "content": "plain text task"}
    # inspecting changes nothing
    assert (await info(client, "X"))["timelineLength"] == 1


async def test_trigger_wait(client):
    await create(client, "T", ECHO)
    status, job = await invoke(client, "agent:trigger", {"agentId": "T", "wait": True})
    assert status == 200, job
    assert_job_shape(job, "agent:trigger")
    assert job["status"] == "COMPLETE"
    out = job["output"]
    assert set(out) == {"agentId", "status", "result", "taskResults"}
    assert out["agentId"] == "T" and out["status"] == "SLEEPING"
    assert isinstance(out["result"], str) and out["result"]
    assert out["taskResults"] == []
    inf = await info(client, "T")
    assert inf["timelineLength"] == 1 and inf["status"] == "SLEEPING"
    # default wait for a trigger is true
    status, job = await invoke(client, "agent:trigger", {"agentId": "T"})
    assert status == 200 and job["status"] == "COMPLETE"


async def test_trigger_no_wait(client):
    await create(client, "T", ECHO)
    status, job, headers = await invoke_full(client, "agent:trigger", {"agentId": "T", "wait": False})
    assert status in (200, 202)
    if status == 202:
        assert headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    done = await wait_job(client, job["jobId"])
    assert done["status"] == "COMPLETE" and done["output"]["agentId"] == "T"


# ---------------------------------------------------------------- lattice reads and writes


async def test_read_bounded_and_indexed(client):
    await ok(client, "covia:write", {"path": "w/big", "value": "x" * 100})
    out = await read(client, "w/big", maxSize=10)
    assert out == {"exists": True, "value": None, "truncated": True, "size": 102, "valueBytes": 102, "type": "string",
                   "convexType": "String"}
    out = await read(client, "w/big", maxSize=102)
    assert out == {"exists": True, "value": "x" * 100, "valueBytes": 102}
    assert await read(client, "w/nothing") == {"exists": False, "value": None}

    await create(client, "G", ECHO)
    await ok(client, "agent:request", {"agentId": "G", "input": "a", "wait": True})
    await ok(client, "agent:request", {"agentId": "G", "input": "b", "wait": True})
    e0 = await value(client, "g/G/timeline/0")
    e1 = await value(client, "g/G/timeline/1")
    assert e0["tasks"] == ["a"] and e1["tasks"] == ["b"]
    assert await value(client, "g/G/timeline/0/tasks/0") == "a"
    assert (await read(client, "g/G/timeline/2"))["exists"] is False
    assert await value(client, "g/G/status") == "SLEEPING"
    assert await value(client, "g/G/state/history/3") == {"role": "assistant", "content": "b"}
    assert (await read(client, "g/Nobody/status"))["exists"] is False


async def test_list_and_slice(client):
    await ok(client, "covia:write", {"path": "w/m", "value": {"d": 4, "b": 2, "a": 1, "c": 3}})
    out = await ok(client, "covia:list", {"path": "w/m"})
    assert out == {"exists": True, "type": "map", "convexType": "Map", "count": 4, "keys": ["a", "b", "c", "d"],
                   "offset": 0}
    out = await ok(client, "covia:list", {"path": "w/m", "offset": 1, "limit": 2})
    assert out == {"exists": True, "type": "map", "convexType": "Map", "count": 4, "keys": ["b", "c"], "offset": 1}
    out = await ok(client, "covia:list", {"path": "w/m", "offset": 10})
    assert out["keys"] == [] and out["count"] == 4

    await ok(client, "covia:write", {"path": "w/l", "value": [10, 20, 30, 40]})
    out = await ok(client, "covia:list", {"path": "w/l"})
    assert out["exists"] is True and out["type"] == "list" and out["count"] == 4
    assert await ok(client, "covia:list", {"path": "w/none"}) == {"exists": False, "type": "null", "convexType": "Nil"}

    out = await ok(client, "covia:slice", {"path": "w/l", "offset": 1, "limit": 2})
    assert out == {"exists": True, "type": "list", "convexType": "Vector", "count": 4, "values": [20, 30], "offset": 1}
    out = await ok(client, "covia:slice", {"path": "w/l"})
    assert out["values"] == [10, 20, 30, 40] and out["offset"] == 0
    out = await ok(client, "covia:slice", {"path": "w/l", "offset": 9})
    assert out["values"] == [] and out["count"] == 4

    # agents' lists: the timeline
    await create(client, "A", ECHO)
    for s in ("p", "q", "r"):
        await ok(client, "agent:request", {"agentId": "A", "input": s, "wait": True})
    out = await ok(client, "covia:list", {"path": "g/A/timeline"})
    assert out["type"] == "list" and out["count"] == 3
    out = await ok(client, "covia:slice", {"path": "g/A/timeline", "offset": 1, "limit": 1})
    assert out["count"] == 3 and [e["tasks"] for e in out["values"]] == [["q"]]
    out = await ok(client, "covia:list", {"path": "g/A"})
    assert out["type"] == "map"
    assert out["keys"] == sorted(out["keys"]) and {"status", "state", "timeline", "tasks", "inbox"} <= set(out["keys"])
    out = await ok(client, "covia:list", {"path": "g"})
    assert out["type"] == "map" and out["keys"] == ["A"]


async def test_write_append_delete(client):
    assert await ok(client, "covia:write", {"path": "w/notes/today", "value": {"t": "hi"}}) == {
        "written": True, "existed": False, "pathCreated": True}
    assert await value(client, "w/notes") == {"today": {"t": "hi"}}
    assert await ok(client, "covia:write", {"path": "w/notes/today/t", "value": "bye"}) == {"written": True,
                                                                                          "existed": True}
    assert await value(client, "w/notes/today/t") == "bye"

    assert await ok(client, "covia:append", {"path": "w/log", "value": 1}) == {"appended": True, "existed": False,
                                                                               "index": 0, "newSize": 1}
    assert await ok(client, "covia:append", {"path": "w/log", "value": {"two": 2}}) == {
        "appended": True, "existed": True, "index": 1, "newSize": 2}
    assert await value(client, "w/log") == [1, {"two": 2}]
    assert await ok(client, "covia:write", {"path": "w/log/0", "value": "one"}) == {"written": True, "existed": True}
    assert await value(client, "w/log") == ["one", {"two": 2}]

    assert await ok(client, "covia:delete", {"path": "w/notes/today"}) == {"deleted": True}
    assert await read(client, "w/notes/today") == {"exists": False, "value": None}
    assert await value(client, "w/notes") == {}
    assert await ok(client, "covia:delete", {"path": "w/log/0"}) == {"deleted": True}
    assert await value(client, "w/log") == [{"two": 2}]
    assert await ok(client, "covia:delete", {"path": "w/log/5"}) == {"deleted": False}  # nothing there: a no-op
    ws = await value(client, "w")
    assert ws == {"notes": {}, "log": [{"two": 2}]}


async def test_read_job_record(client):
    await create(client, "A", ECHO)
    _, job = await invoke(client, "agent:request", {"agentId": "A", "input": {"n": 1}, "wait": True})
    rec = await value(client, f"j/{job['jobId']}")
    assert rec["jobId"] == job["jobId"] and rec["status"] == "COMPLETE" and rec["operation"] == "agent:request"
    assert json.loads(answer(rec)) == {"n": 1} and rec["error"] is None
    assert await value(client, f"j/{job['jobId']}/status") == "COMPLETE"
    # the mutating operation's job is recorded too
    _, wjob = await invoke(client, "covia:write", {"path": "w/a", "value": 1})
    assert (await value(client, f"j/{wjob['jobId']}"))["output"] == {"written": True, "existed": False}
    assert JOB_ID.match(job["jobId"])


# ---------------------------------------------------------------- concurrency and running agents


async def test_concurrent_work_on_each_backend(any_client):
    c = any_client
    await create(c, "A", ECHO)
    res = await asyncio.gather(
        *[invoke(c, "agent:request", {"agentId": "A", "input": f"m{i}", "wait": True}) for i in range(20)],
        *[invoke(c, "agent:message", {"agentId": "A", "message": f"note{i}"}) for i in range(5)],
        *[invoke(c, "covia:append", {"path": "w/log", "value": i}) for i in range(10)])
    for i, (status, job) in enumerate(res[:20]):
        assert status == 200 and job["status"] == "COMPLETE" and answer(job) == f"m{i}", job
    assert all(s == 200 and j["status"] == "COMPLETE" for s, j in res[20:])
    await until(lambda: _status_is(c, "A", "SLEEPING"), what="SLEEPING")
    tl = await timeline(c, "A")
    assert sorted(t for e in tl for t in e["tasks"]) == sorted(f"m{i}" for i in range(20))
    assert sorted(m["message"] for e in tl for m in e["messages"]) == sorted(f"note{i}" for i in range(5))
    assert sorted(await value(c, "w/log")) == list(range(10))
    assert await value(c, "g/A/inbox") == [] and await value(c, "g/A/tasks") == {}


async def test_remove_running_agent_then_recreate(client):
    await create(client, "K", HANG)
    status, job = await invoke(client, "agent:request", {"agentId": "K", "input": "x", "wait": 30})
    assert status == 202 and job["status"] == "STARTED"
    assert await ok(client, "agent:delete", {"agentId": "K", "remove": True}) == {"agentId": "K", "status": "TERMINATED",
                                                                                  "removed": True}
    assert (await wait_job(client, job["jobId"]))["status"] == "CANCELLED"
    await create(client, "K", ECHO)
    status, job2 = await invoke(client, "agent:request", {"agentId": "K", "input": "y", "wait": 2000})
    assert status == 200 and job2["status"] == "COMPLETE" and answer(job2) == "y", job2


@pytest.mark.parametrize("terminate_first", [False, True], ids=["overwrite", "delete-then-overwrite"])
async def test_recreate_agent_with_run_in_flight(client, terminate_first):
    await create(client, "H", HANG)
    status, job = await invoke(client, "agent:request", {"agentId": "H", "input": "x", "wait": 30})
    assert status == 202 and job["status"] == "STARTED"
    if terminate_first:
        await ok(client, "agent:delete", {"agentId": "H"})
    out = await create(client, "H", ECHO, overwrite=True)
    assert out["updated"] is True
    assert (await wait_job(client, job["jobId"]))["status"] == "CANCELLED"
    status, job2 = await invoke(client, "agent:request", {"agentId": "H", "input": "y", "wait": 500})
    assert status == 200 and job2["status"] == "COMPLETE" and answer(job2) == "y", job2
