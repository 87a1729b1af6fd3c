"""The operations' venue inputs and outputs over HTTP (issue 11): what the Covia SDK sends and
validates. The engine-level cases are in ``tests/ops/test_venue_ops.py``; here, the wire: statuses,
rejections versus FAILED jobs, and each output against the SDK's pydantic model."""

from __future__ import annotations

from covia import models as M

from tests.http.helpers import (ECHO, HANG, answer, assert_rejection, create, failed, info, invoke, invoke_full, ok,
                                read, snapshot, value)

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


async def test_request_timeout_over_http(client):
    await create(client, "A", ECHO)
    status, job = await invoke(client, "agent:request", {"agentId": "A", "input": "hi", "timeout": 5000})
    assert status == 200 and job["status"] == "COMPLETE" and answer(job) == "hi"
    assert M.AgentRequestResult.model_validate(job["output"]).id == job["jobId"]
    await create(client, "H", HANG)
    status, job, headers = await invoke_full(client, "agent:request", {"agentId": "H", "input": "x", "timeout": 0})
    assert status == 202 and headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    snap = M.AgentRequestResult.model_validate(job)  # the job carries the venue's snapshot fields
    assert (snap.id, snap.status, snap.agentId) == (job["jobId"], job["status"], "H")
    r = await client.post("/api/v1/run", json={"operation": "v/ops/agent/request",  # the SDK's path
                                               "input": {"agentId": "H", "input": "y", "timeout": 0}})
    body = await r.json()
    assert r.status == 202 and M.AgentRequestResult.model_validate(body).agentId == "H"
    r = await client.post("/api/v1/run", json={"operation": "v/ops/agent/request",
                                               "input": {"agentId": "A", "input": "z", "timeout": 5000}})
    assert r.status == 200 and M.AgentRequestResult.model_validate(await r.json()).output == "z"
    # neither wait nor timeout: through the venue's route, the venue's wait (up to 5 s); through invoke, none
    r = await client.post("/api/v1/run", json={"operation": "v/ops/agent/request", "input": {"agentId": "A",
                                                                                           "input": "w"}})
    body = await r.json()
    assert r.status == 200 and body["output"] == "w"
    status, job = await invoke(client, "agent:request", {"agentId": "H", "input": "v"})
    assert status == 202 and job["input"] == {"agentId": "H", "input": "v"}
    status, body = await invoke(client, "agent:request", {"agentId": "A", "input": "x", "wait": False, "timeout": 10})
    assert_rejection(status, body, 400, "invalid_input", "$.input.timeout")
    status, body = await invoke(client, "agent:request", {"agentId": "A", "input": "x", "timeout": -1})
    assert_rejection(status, body, 400, "invalid_input", "$.input.timeout")


async def test_response_schema_and_output_path_over_http(client, store):
    await create(client, "A", ECHO)
    job = await failed(client, "agent:request", {"agentId": "A", "input": '{"n": "x"}', "responseSchema": SCHEMA,
                                                 "strict": True, "wait": True}, "schema_mismatch")
    assert "#/properties/n/type" in job["error"] and job["path"] == "$.input.responseSchema.properties.n.type"
    assert "$.n" in job["hint"]  # where in the answer
    out = await ok(client, "agent:request", {"agentId": "A", "input": '{"n": 2}', "responseSchema": SCHEMA,
                                             "strict": True, "outputPath": "w/answers/n", "wait": True})
    assert out == {"n": 2} and await value(client, "w/answers/n") == {"n": 2}
    before = snapshot(store)
    await failed(client, "agent:request", {"agentId": "A", "input": "x", "responseSchema": {"type": 7}},
                 "invalid_input")
    await failed(client, "agent:request", {"agentId": "A", "input": "x", "outputPath": "g/A/x"}, "forbidden")
    status, body = await invoke(client, "agent:request", {"agentId": "A", "input": "x", "strict": True})
    assert_rejection(status, body, 400, "invalid_input", "$.input.strict")
    status, body = await invoke(client, "agent:request", {"agentId": "A", "input": "x", "outputPath": "w/a//b"})
    assert_rejection(status, body, 400, "invalid_path", "$.input.outputPath")
    assert snapshot(store) == before


async def test_create_definition_and_fork_overwrite_over_http(client):
    await ok(client, "covia:write", {"path": "w/defs/d", "value": {"agent": {"config": ECHO}}})
    M.AgentCreateResult.model_validate(await ok(client, "agent:create", {"agentId": "A", "definition": "w/defs/d"}))
    assert (await info(client, "A"))["config"] == {**ECHO, "definition": "w/defs/d"}
    await failed(client, "agent:create", {"agentId": "B", "definition": "/a/" + "0" * 64}, "not_supported")
    await create(client, "T", ECHO)
    await failed(client, "agent:fork", {"sourceId": "A", "agentId": "T", "overwrite": True}, "conflict")
    await ok(client, "agent:delete", {"agentId": "T"})
    out = await ok(client, "agent:fork", {"sourceId": "A", "agentId": "T", "overwrite": True})
    assert M.AgentForkResult.model_validate(out).created is True


async def test_info_list_trigger_cancel_message_fit_the_sdk(client):
    await create(client, "E", {"model": {"provider": "error", "message": "boom"}})
    await invoke(client, "agent:request", {"agentId": "E", "input": "x", "wait": True})
    i = M.AgentInfoResult.model_validate(await info(client, "E"))
    assert i.tasks == 1 and "boom" in i.error and i.model_dump()["errorCode"] == "llm_error"
    entry = M.AgentListResult.model_validate(await ok(client, "agent:list", {})).agents[0]
    assert entry.tasks == 1 and entry.model_dump()["error"] == i.error
    await create(client, "A", ECHO)
    t = M.AgentTriggerResult.model_validate(await ok(client, "agent:trigger", {"agentId": "A", "force": False}))
    assert t.taskResults == [] and t.status == "SLEEPING"
    status, task = await invoke(client, "agent:request", {"agentId": "E", "input": "y"})
    c = await ok(client, "agent:cancelTask", {"agentId": "E", "taskId": task["jobId"], "reason": "enough"})
    assert M.AgentCancelTaskResult.model_validate(c).cancelled is True
    m = await ok(client, "agent:message", {"agentId": "A", "message": {"kind": "alert", "level": 3}})
    assert M.AgentMessageResult.model_validate(m).delivered is True
    status, body = await invoke(client, "agent:message", {"agentId": "A", "message": None})
    assert_rejection(status, body, 400, "invalid_input", "$.input.message")


async def test_workspace_outputs_over_http(client, store):
    w = M.WorkspaceWriteResult.model_validate(await ok(client, "covia:write", {"path": "w/x/y", "value": [1]}))
    assert (w.existed, w.pathCreated) == (False, True)
    a = M.WorkspaceAppendResult.model_validate(await ok(client, "covia:append", {"path": "w/x/y", "value": 2}))
    assert (a.existed, a.index, a.newSize, a.pathCreated) == (True, 1, 2, None)
    r = M.WorkspaceReadResult.model_validate(await read(client, "w/x/y", maxSize=2))
    assert (r.truncated, r.valueBytes, r.type, r.model_dump()["convexType"]) == (True, 5, "list", "Vector")
    lst = M.WorkspaceListResult.model_validate(await ok(client, "covia:list", {"path": "w/x"}))
    assert (lst.type, lst.keys, lst.count) == ("map", ["y"], 1)
    sl = M.WorkspaceSliceResult.model_validate(await ok(client, "covia:slice", {"path": "w/x/y"}))
    assert (sl.values, sl.count, sl.offset) == ([1, 2], 2, 0)
    before = snapshot(store)
    d = M.WorkspaceDeleteResult.model_validate(await ok(client, "covia:delete", {"path": "w/nothing/here"}))
    assert d.deleted is False and snapshot(store) == before
    assert M.WorkspaceDeleteResult.model_validate(await ok(client, "covia:delete", {"path": "w/x"})).deleted is True


async def test_complete_and_fail_task_over_http(client, store):
    await create(client, "A", ECHO)
    await ok(client, "agent:suspend", {"agentId": "A"})
    _, t1 = await invoke(client, "agent:request", {"agentId": "A", "input": "one"})
    _, t2 = await invoke(client, "agent:request", {"agentId": "A", "input": "two"})
    before = snapshot(store)
    job = await failed(client, "agent:completeTask", {"result": 1}, "no_task_in_scope")  # as the SDK sends it
    assert "no task in scope" in job["error"] and job["hint"]
    status, body = await invoke(client, "agent:completeTask", {"agentId": "A", "taskId": "nope"})
    assert_rejection(status, body, 400, "invalid_input", "$.input.taskId")
    await failed(client, "agent:failTask", {"agentId": "A", "taskId": "0x" + "2" * 32, "error": "e"}, "not_found")
    assert snapshot(store) == before
    c = await ok(client, "agent:completeTask", {"agentId": "A", "taskId": t1["jobId"], "result": {"ok": True}})
    assert M.AgentCompleteTaskResult.model_validate(c).status == "COMPLETE"
    f = await ok(client, "agent:failTask", {"agentId": "A", "taskId": t2["jobId"], "error": "not today"})
    assert M.AgentFailTaskResult.model_validate(f).status == "FAILED"
    assert (await info(client, "A"))["tasks"] == 0
    r = await client.get(f"/api/v1/jobs/{t1['jobId']}")
    assert (await r.json())["output"] == {"ok": True}
    r = await client.get(f"/api/v1/jobs/{t2['jobId']}")
    j2 = await r.json()
    assert j2["status"] == "FAILED" and (j2["error"], j2["errorCode"]) == ("not today", "task_failed")
    await failed(client, "agent:completeTask", {"agentId": "A", "taskId": t1["jobId"]}, "illegal_state")


async def test_step_over_http_changes_nothing(client, store):
    await create(client, "A", ECHO)
    before = snapshot(store)
    out = await ok(client, "agent:step", {"agentId": "A", "task": "q", "replies": [
        {"toolCalls": [{"name": "covia_write", "arguments": {"path": "w/s", "value": {"v": 1}}}]},
        {"content": "done"}]})
    assert snapshot(store) == before
    assert out["finished"] and out["wsEdits"] == [{"path": "w/s", "value": {"v": 1}}] and out["result"] == "done"
    status, body = await invoke(client, "agent:step", {"agentId": "A", "replies": []})
    assert_rejection(status, body, 400, "invalid_input", "$.input.replies")
    await failed(client, "agent:step", {"agentId": "Nobody", "replies": [{"content": "x"}]}, "not_found")
