"""The operations' inputs and outputs as the Covia venue defines them (issue 11), through the runtime:
request ``timeout``/``responseSchema``/``strict``/``outputPath``, ``create {definition}``, ``fork
{overwrite}``, ``info``/``list`` (``tasks``, ``error`` as a message), ``trigger {force}``,
``cancelTask {reason}``, any JSON ``message``, the workspace outputs, ``agent:completeTask``,
``agent:failTask`` and the ``agent:step`` dry run. Each output is also validated with the official
SDK's pydantic model (``covia.models``), as the SDK does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from covia import models as M

from lattice.commits import read_commit
from lattice.memory import MemoryStore
from ops.domain.jobs import public_job
from ops.domain.errors import Rejected
from ops.engine.runtime import Runtime
from tests.ops.helpers import CALLER, answer, call, out, read, scripted, until

ECHO = {"model": {"provider": "echo"}}
HANG = {"model": {"provider": "hang"}}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def state(rt: Runtime) -> tuple[dict, int]:
    """Every ref and the object count: equal before and after means nothing was stored."""
    return {n: d for n, d in rt.store.refs("")}, len(rt.store)


async def rejected(rt: Runtime, op: str, code: str, path: str, **inp: Any) -> Rejected:
    before = state(rt)
    with pytest.raises(Rejected) as e:
        await call(rt, op, **inp)
    assert (e.value.code, e.value.path) == (code, path), e.value.to_dict()
    assert e.value.message and state(rt) == before
    return e.value


async def failed(rt: Runtime, op: str, code: str, **inp: Any) -> dict:
    job = await call(rt, op, **inp)
    assert job["status"] == "FAILED" and job["error"]["code"] == code and job["error"]["message"], job
    return job


async def idle(rt: Runtime, aid: str = "A") -> None:
    await rt.idle(CALLER, aid)


def commit_of(rt: Runtime, ref: str):
    tx = rt.engine.tx()
    return read_commit(tx, rt.store.ref(ref))


# -- agent:request: timeout, the answer's shape -------------------------------------------------

async def test_a_string_answer_is_wrapped_and_a_map_answer_is_the_output(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    job = await call(rt, "agent:request", agentId="A", input="hi", timeout=5000)
    assert job["status"] == "COMPLETE" and job["output"] == "hi"  # stored as the agent answered
    shown = public_job(job)["output"]  # every surface shows the venue's request result
    assert shown == {"id": job["jobId"], "jobId": job["jobId"], "agentId": "A", "status": "COMPLETE", "output": "hi"}
    r = M.AgentRequestResult.model_validate(shown)
    assert (r.id, r.agentId, r.output) == (job["jobId"], "A", "hi")
    await out(rt, "agent:create", agentId="S", config=scripted(
        {"toolCalls": [{"name": "complete_task", "arguments": {"output": {"answer": 42}}}]}))
    job = await call(rt, "agent:request", agentId="S", input="q", timeout=5000)
    assert job["output"] == public_job(job)["output"] == {"answer": 42}  # the agent's structured response itself
    assert M.AgentRequestResult.model_validate(job["output"]).model_dump()["answer"] == 42


async def test_timeout_zero_answers_at_once_with_the_snapshot(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=HANG)
    job = await call(rt, "agent:request", agentId="A", input="x", timeout=0)
    assert job["status"] in ("PENDING", "STARTED") and job["output"] is None
    snap = public_job(job)  # what /run answers (202) for a job still waiting: the venue's snapshot fields
    assert (snap["id"], snap["jobId"], snap["status"], snap["agentId"]) == (job["jobId"], job["jobId"],
                                                                            job["status"], "A")
    r = M.AgentRequestResult.model_validate(snap)
    assert (r.id, r.agentId) == (job["jobId"], "A")


async def test_timeout_bounds_the_wait(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=HANG)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    job = await call(rt, "agent:request", agentId="A", input="x", timeout=150)
    took = loop.time() - t0
    assert job["status"] == "STARTED" and 0.1 <= took < 3, (job, took)
    assert rt.get_job(CALLER, job["jobId"])["status"] == "STARTED"  # still working: poll the job


async def test_wait_and_timeout_together_are_refused(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    err = await rejected(rt, "agent:request", "invalid_input", "$.input.timeout", agentId="A", input="x", wait=True,
                         timeout=10)
    assert "not both" in err.message


async def test_the_seed_default_still_answers_at_once(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=HANG)
    job = await call(rt, "agent:request", agentId="A", input="x")
    assert job["status"] in ("PENDING", "STARTED")


# -- agent:request: responseSchema, strict, outputPath ------------------------------------------

async def test_strict_without_a_schema_is_refused(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    err = await rejected(rt, "agent:request", "invalid_input", "$.input.strict", agentId="A", input="x", strict=True)
    assert "responseSchema" in err.message


@pytest.mark.parametrize("schema, words", [
    ({"type": "objekt"}, "not a JSON Schema"),
    ({"properties": {"n": {"minimum": "x"}}}, "properties/n/minimum"),
    ({"$ref": "https://example.com/s"}, "$ref"),
])
async def test_a_response_schema_that_is_none_fails_and_changes_nothing(rt: Runtime, schema: dict,
                                                                         words: str) -> None:
    """What makes a JSON Schema valid is more than the input's own schema says: a FAILED job."""
    await out(rt, "agent:create", agentId="A", config=ECHO)
    before = state(rt)
    job = await failed(rt, "agent:request", "invalid_input", agentId="A", input="x", responseSchema=schema)
    assert words in job["error"]["message"] and job["error"]["path"] == "$.input.responseSchema"
    assert state(rt) == before


async def test_strict_mismatch_fails_the_task_with_the_schema_path(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    job = await call(rt, "agent:request", agentId="A", input='{"n": "x"}', responseSchema=SCHEMA, strict=True,
                     wait=True)
    assert job["status"] == "FAILED" and job["output"] is None
    assert job["error"]["code"] == "schema_mismatch" and job["error"]["schemaPath"] == "#/properties/n/type"
    job = await call(rt, "agent:request", agentId="A", input='{"n": 5}', responseSchema=SCHEMA, strict=True, wait=True)
    assert job["status"] == "COMPLETE" and job["output"] == {"n": 5}  # the JSON text, decoded
    job = await call(rt, "agent:request", agentId="A", input='{"n": "x"}', responseSchema=SCHEMA, wait=True)
    assert job["status"] == "COMPLETE" and job["output"] == {"n": "x"}  # not strict: kept
    assert (await out(rt, "agent:info", agentId="A"))["status"] == "SLEEPING"
    tasks = await read(rt, "g/A/timeline")
    assert [list(e["taskResults"].values())[0]["status"] for e in tasks] == ["FAILED", "COMPLETE", "COMPLETE"]


async def test_output_path_is_written_in_the_commit_of_the_run(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    job = await call(rt, "agent:request", agentId="A", input="the answer", outputPath="w/results/latest", wait=True)
    assert job["status"] == "COMPLETE" and await read(rt, "w/results/latest") == "the answer"
    ws, agent, jc = commit_of(rt, f"w/{CALLER}"), commit_of(rt, f"g/{CALLER}/A"), commit_of(rt, f"j/{CALLER}/{job['jobId']}")
    assert ws.op == agent.op == "agent:run" and ws.ts == agent.ts == jc.ts  # one unit: one commit time
    tx = rt.engine.tx()
    assert tx.materialize(ws.input) == {"agentId": "A", "paths": ["w/results/latest"]}


async def test_output_path_outside_the_workspace_is_forbidden(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    before = state(rt)
    job = await failed(rt, "agent:request", "forbidden", agentId="A", input="x", outputPath="g/A/state/x")
    assert job["error"]["path"] == "$.input.outputPath"
    assert state(rt)[0] == before[0]  # no task queued
    await rejected(rt, "agent:request", "invalid_path", "$.input.outputPath", agentId="A", input="x", outputPath="w")
    await rejected(rt, "agent:request", "invalid_path", "$.input.outputPath", agentId="A", input="x",
                   outputPath="w//x")


async def test_an_unwritable_output_path_fails_the_task_not_the_agent(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "covia:write", path="w/scalar", value=5)
    job = await call(rt, "agent:request", agentId="A", input="x", outputPath="w/scalar/deeper", wait=True)
    assert job["status"] == "FAILED" and job["error"]["code"] == "invalid_path"
    assert "outputPath" in job["error"]["message"] and await read(rt, "w/scalar") == 5
    assert (await out(rt, "agent:info", agentId="A"))["status"] == "SLEEPING"


async def test_a_failed_task_writes_nothing_to_its_output_path(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=scripted(
        {"toolCalls": [{"name": "fail_task", "arguments": {"error": "no"}}]}))
    job = await call(rt, "agent:request", agentId="A", input="x", outputPath="w/out", wait=True)
    assert job["status"] == "FAILED" and await read(rt, "w/out") is None


# -- agent:create {definition}, agent:fork {overwrite} ---------------------------------------------

async def test_create_from_a_template_definition(rt: Runtime) -> None:
    o = await out(rt, "agent:create", agentId="A", definition="echo", config={"systemPrompt": "mine"})
    M.AgentCreateResult.model_validate(o)
    info = await out(rt, "agent:info", agentId="A")
    assert info["config"]["systemPrompt"] == "mine" and info["config"]["model"] == {"provider": "echo"}
    assert info["config"]["definition"] == "echo"


async def test_create_from_a_legacy_definition_in_the_workspace(rt: Runtime) -> None:
    await out(rt, "covia:write", path="w/defs/helper", value={
        "name": "Helper", "agent": {"operation": "v/ops/llmagent/chat",
                                    "config": {"systemPrompt": "help", "model": {"provider": "echo"}}}})
    await out(rt, "agent:create", agentId="A", definition="w/defs/helper")
    cfg = (await out(rt, "agent:info", agentId="A"))["config"]
    assert cfg == {"systemPrompt": "help", "model": {"provider": "echo"}, "operation": "v/ops/llmagent/chat",
                   "definition": "w/defs/helper"}
    assert answer(await call(rt, "agent:request", agentId="A", input="yo", wait=True)) == "yo"


@pytest.mark.parametrize("definition", ["/a/" + "ab" * 32, "ab" * 32, "did:web:example.com:a:1"])
async def test_an_asset_definition_is_not_supported(rt: Runtime, definition: str) -> None:
    before = state(rt)
    job = await failed(rt, "agent:create", "not_supported", agentId="A", definition=definition)
    assert job["error"]["hint"] and job["error"]["path"] == "$.input.definition" and state(rt) == before


@pytest.mark.parametrize("value, code", [
    (None, "not_found"),  # nothing at the path
    ("text", "invalid_config"),
    ({"agent": {"config": {"model": "gpt-4o"}}}, "invalid_config"),  # the venue's model string is no model ref here
    ({"agent": {"config": [1]}}, "invalid_config"),
])
async def test_bad_definitions(rt: Runtime, value: Any, code: str) -> None:
    if value is not None:
        await out(rt, "covia:write", path="w/def", value=value)
    job = await failed(rt, "agent:create", code, agentId="A", definition="w/def")
    assert job["error"]["path"].startswith("$.input.definition")
    assert await read(rt, "g/A") is None
    await failed(rt, "agent:create", "not_found", agentId="A", definition="no-such-template")


async def test_fork_overwrite_replaces_only_a_terminated_agent(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="S", config=ECHO)
    await out(rt, "agent:create", agentId="T", config=ECHO)
    await failed(rt, "agent:fork", "conflict", sourceId="S", agentId="T", overwrite=True)  # T is SLEEPING
    await failed(rt, "agent:fork", "conflict", sourceId="S", agentId="T")
    await out(rt, "agent:delete", agentId="T")
    await failed(rt, "agent:fork", "conflict", sourceId="S", agentId="T")  # TERMINATED, but no overwrite
    o = await out(rt, "agent:fork", sourceId="S", agentId="T", overwrite=True)
    assert o == {"agentId": "T", "status": "SLEEPING", "created": True, "forkedFrom": "S"}
    M.AgentForkResult.model_validate(o)
    versions = (await out(rt, "agent:history", agentId="T"))["versions"]
    assert [v["op"] for v in versions][:3] == ["agent:fork", "agent:delete", "agent:create"]  # its chain goes on
    assert answer(await call(rt, "agent:request", agentId="T", input="back", wait=True)) == "back"


async def test_fork_says_created(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="S", config=ECHO)
    M.AgentForkResult.model_validate(await out(rt, "agent:fork", sourceId="S", agentId="F"))


# -- agent:info / agent:list / lifecycle outputs -------------------------------------------------

async def test_info_and_list_give_tasks_and_the_error_as_a_message(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="E", config={"model": {"provider": "error", "message": "boom"}})
    await call(rt, "agent:request", agentId="E", input="x", wait=True)
    await call(rt, "agent:request", agentId="E", input="y")
    info = await out(rt, "agent:info", agentId="E")
    assert (info["tasks"], info["taskCount"], info["status"]) == (2, 2, "SUSPENDED")
    assert info["errorCode"] == "llm_error" and "boom" in info["error"]
    r = M.AgentInfoResult.model_validate(info)
    assert r.tasks == 2 and "boom" in r.error
    agents = await out(rt, "agent:list")
    [entry] = agents["agents"]
    assert (entry["tasks"], entry["taskCount"], entry["errorCode"]) == (2, 2, "llm_error")
    M.AgentListResult.model_validate(agents)
    await out(rt, "agent:resume", agentId="E", autoWake=False)
    info = await out(rt, "agent:info", agentId="E")
    assert (info["error"], info["errorCode"]) == (None, None)


async def test_lifecycle_outputs_fit_the_sdk_models(rt: Runtime) -> None:
    M.AgentCreateResult.model_validate(await out(rt, "agent:create", agentId="A", config=ECHO))
    assert await out(rt, "agent:update", agentId="A", config={"systemPrompt": "x"}) == {"agentId": "A",
                                                                                         "status": "SLEEPING"}
    M.AgentSuspendResult.model_validate(await out(rt, "agent:suspend", agentId="A"))
    M.AgentSuspendResult.model_validate(await out(rt, "agent:resume", agentId="A"))
    M.AgentMessageResult.model_validate(await out(rt, "agent:message", agentId="A", message="m"))
    M.AgentDeleteResult.model_validate(await out(rt, "agent:delete", agentId="A"))
    removed = await out(rt, "agent:delete", agentId="A", remove=True)
    assert removed == {"agentId": "A", "status": "TERMINATED", "removed": True}
    M.AgentDeleteResult.model_validate(removed)


# -- agent:trigger {force}, taskResults as a list -----------------------------------------------

async def test_trigger_without_force_is_a_no_op_on_an_idle_agent(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    before = state(rt)
    o = await out(rt, "agent:trigger", agentId="A", force=False)
    assert o == {"agentId": "A", "status": "SLEEPING", "result": None, "taskResults": []}
    assert state(rt) == before
    M.AgentTriggerResult.model_validate(o)
    o = await out(rt, "agent:trigger", agentId="A")  # force: true by default
    assert o["result"].startswith("[trigger]") and o["taskResults"] == []
    M.AgentTriggerResult.model_validate(o)


async def test_trigger_task_results_are_a_list(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await out(rt, "agent:suspend", agentId="A")
    task = await call(rt, "agent:request", agentId="A", input="t")
    await out(rt, "agent:resume", agentId="A", autoWake=False)
    o = await out(rt, "agent:trigger", agentId="A", force=False)  # there is work: it runs
    assert o["taskResults"] == [{"taskId": task["jobId"], "status": "COMPLETE", "output": "t"}]
    M.AgentTriggerResult.model_validate(o)


# -- agent:cancelTask {reason}, agent:message of any JSON value ---------------------------------

async def test_cancel_task_reason(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=HANG)
    await out(rt, "agent:suspend", agentId="A")
    task = await call(rt, "agent:request", agentId="A", input="x")
    o = await out(rt, "agent:cancelTask", agentId="A", taskId=task["jobId"], reason="not needed any more")
    assert o == {"agentId": "A", "taskId": task["jobId"], "cancelled": True}
    M.AgentCancelTaskResult.model_validate(o)
    done = rt.get_job(CALLER, task["jobId"])
    assert done["status"] == "CANCELLED" and done["error"]["message"] == "not needed any more"
    c = commit_of(rt, f"g/{CALLER}/A")
    assert rt.engine.tx().materialize(c.input)["reason"] == "not needed any more"


async def test_a_message_may_be_any_json_value(rt: Runtime) -> None:
    seen = []

    class Spy:
        async def complete(self, request):
            from ops.llm import LlmReply
            seen.append(request.messages[-1]["content"])
            return LlmReply(content="ok")
    rt.adapter_factory = lambda m: Spy()
    await out(rt, "agent:create", agentId="A")
    o = await out(rt, "agent:message", agentId="A", message={"alert": "disk", "pct": 91})
    M.AgentMessageResult.model_validate(o)
    await until(lambda: _async(bool(seen)))
    assert seen == ['[message from local] {"alert":"disk","pct":91}']
    await idle(rt)
    assert (await read(rt, "g/A/timeline"))[0]["messages"][0]["message"] == {"alert": "disk", "pct": 91}
    await rejected(rt, "agent:message", "invalid_input", "$.input.message", agentId="A", message=None)


async def _async(v: Any) -> Any:
    return v


# -- workspace outputs ------------------------------------------------------------------------

async def test_workspace_outputs(rt: Runtime) -> None:
    w = await out(rt, "covia:write", path="w/a/b/c", value={"x": 1})
    assert w == {"written": True, "existed": False, "pathCreated": True}
    M.WorkspaceWriteResult.model_validate(w)
    assert await out(rt, "covia:write", path="w/a/b/c", value=2) == {"written": True, "existed": True}
    assert await out(rt, "covia:write", path="w/a/b/d", value=3) == {"written": True, "existed": False}
    a = await out(rt, "covia:append", path="w/log/today", value="one")
    assert a == {"appended": True, "existed": False, "index": 0, "newSize": 1, "pathCreated": True}
    M.WorkspaceAppendResult.model_validate(a)
    assert await out(rt, "covia:append", path="w/log/today", value="two") == {
        "appended": True, "existed": True, "index": 1, "newSize": 2}
    r = await out(rt, "covia:read", path="w/a/b/c")
    assert r == {"exists": True, "value": 2, "valueBytes": 1}
    M.WorkspaceReadResult.model_validate(r)
    big = await out(rt, "covia:read", path="w/log/today", maxSize=3)
    assert big == {"exists": True, "value": None, "truncated": True, "size": 13, "valueBytes": 13, "type": "list",
                   "convexType": "Vector"}
    M.WorkspaceReadResult.model_validate(big)
    lst = await out(rt, "covia:list", path="w/a/b")
    assert (lst["type"], lst["convexType"], lst["count"], lst["keys"]) == ("map", "Map", 2, ["c", "d"])
    M.WorkspaceListResult.model_validate(lst)
    missing = await out(rt, "covia:list", path="w/nope")
    assert missing == {"exists": False, "type": "null", "convexType": "Nil"}
    M.WorkspaceListResult.model_validate(missing)
    sl = await out(rt, "covia:slice", path="w/log/today")
    assert (sl["type"], sl["convexType"], sl["values"], sl["count"], sl["offset"]) == ("list", "Vector",
                                                                                          ["one", "two"], 2, 0)
    M.WorkspaceSliceResult.model_validate(sl)
    d = await out(rt, "covia:delete", path="w/a/b/d")
    assert d == {"deleted": True}
    M.WorkspaceDeleteResult.model_validate(d)
    before = state(rt)
    assert await out(rt, "covia:delete", path="w/a/b/d") == {"deleted": False}  # idempotent: a no-op
    assert state(rt) == before


@pytest.mark.parametrize("value, kind, convex", [
    ("s", "string", "String"), (7, "integer", "Long"), (1.5, "number", "Double"), (True, "boolean", "Boolean"),
    (None, "null", "Nil"), ([1], "list", "Vector"), ({"k": 1}, "map", "Map")])
async def test_type_names_ours_and_the_venues(rt: Runtime, value: Any, kind: str, convex: str) -> None:
    await out(rt, "covia:write", path="w/v", value=value)
    lst = await out(rt, "covia:list", path="w/v")
    assert (lst["type"], lst["convexType"]) == (kind, convex)


# -- agent:completeTask / agent:failTask ------------------------------------------------------

async def pending_task(rt: Runtime, config: dict = ECHO, **opts: Any) -> str:
    """An agent A, suspended, with one pending task; its id."""
    await out(rt, "agent:create", agentId="A", config=config)
    await out(rt, "agent:suspend", agentId="A")
    return (await call(rt, "agent:request", agentId="A", input="x", **opts))["jobId"]


async def test_complete_task_from_outside(rt: Runtime) -> None:
    tid = await pending_task(rt, outputPath="w/out")
    o = await out(rt, "agent:completeTask", agentId="A", taskId=tid, result={"answer": 1})
    assert o == {"agentId": "A", "taskId": tid, "status": "COMPLETE"}
    M.AgentCompleteTaskResult.model_validate(o)
    job = rt.get_job(CALLER, tid)
    assert job["status"] == "COMPLETE" and job["output"] == {"answer": 1}
    assert await read(rt, "w/out") == {"answer": 1} and await read(rt, "g/A/tasks") == {}
    c = commit_of(rt, f"g/{CALLER}/A")
    assert c.op == "agent:completeTask" and commit_of(rt, f"w/{CALLER}").ts == c.ts
    await failed(rt, "agent:completeTask", "illegal_state", agentId="A", taskId=tid, result=2)  # already finished
    await failed(rt, "agent:failTask", "illegal_state", agentId="A", taskId=tid, error="late")


async def test_fail_task_from_outside(rt: Runtime) -> None:
    tid = await pending_task(rt)
    o = await out(rt, "agent:failTask", agentId="A", taskId=tid.upper().replace("0X", "0x"), error="gave up")
    assert o == {"agentId": "A", "taskId": tid, "status": "FAILED"}
    M.AgentFailTaskResult.model_validate(o)
    job = rt.get_job(CALLER, tid)
    assert job["status"] == "FAILED" and job["error"] == {"code": "task_failed", "message": "gave up"}
    assert (await out(rt, "agent:info", agentId="A"))["status"] == "SUSPENDED"  # the agent itself is untouched


async def test_complete_task_stops_the_run_working_on_it(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=HANG)
    tid = (await call(rt, "agent:request", agentId="A", input="x"))["jobId"]
    await until(lambda: _async(rt.engine.scheduler.works_on(CALLER, "A", tid)))
    await out(rt, "agent:completeTask", agentId="A", taskId=tid, result="done by hand")
    await idle(rt)
    assert answer(rt.get_job(CALLER, tid)) == "done by hand"
    assert await read(rt, "g/A/status") == "SLEEPING" and await read(rt, "g/A/timeline") == []


async def test_a_strict_schema_holds_for_a_result_given_from_outside(rt: Runtime) -> None:
    tid = await pending_task(rt, responseSchema=SCHEMA, strict=True)
    before = state(rt)
    job = await failed(rt, "agent:completeTask", "schema_mismatch", agentId="A", taskId=tid, result={"n": "x"})
    assert job["error"]["path"] == "$.input.result.n"
    assert state(rt)[0] == before[0]  # the task still waits
    await out(rt, "agent:completeTask", agentId="A", taskId=tid, result='{"n": 3}')
    assert rt.get_job(CALLER, tid)["output"] == {"n": 3}


@pytest.mark.parametrize("inp, path", [
    ({}, "$.input.taskId"),  # no task in scope (the SDK's complete_task(result) sends only the result)
    ({"result": 1}, "$.input.taskId"),
    ({"agentId": "A"}, "$.input.taskId"),
    ({"taskId": "0x" + "1" * 32}, "$.input.agentId"),
])
async def test_complete_task_needs_a_task_in_scope(rt: Runtime, inp: dict, path: str) -> None:
    await pending_task(rt)
    before = state(rt)
    job = await failed(rt, "agent:completeTask", "no_task_in_scope", **inp)
    assert job["error"]["path"] == path
    if not inp or inp == {"result": 1}:
        assert "no task in scope" in job["error"]["message"] and "complete_task" in job["error"]["hint"]
    job = await failed(rt, "agent:failTask", "no_task_in_scope", error="e",
                       **{k: v for k, v in inp.items() if k != "result"})
    assert job["error"]["path"] == path and state(rt) == before


async def test_a_task_id_that_is_no_job_id_is_refused(rt: Runtime) -> None:
    await pending_task(rt)
    await rejected(rt, "agent:completeTask", "invalid_input", "$.input.taskId", agentId="A", taskId="42")
    await rejected(rt, "agent:failTask", "invalid_input", "$.input.taskId", agentId="A", taskId="42", error="e")


async def test_complete_task_of_no_such_task(rt: Runtime) -> None:
    tid = await pending_task(rt)
    await failed(rt, "agent:completeTask", "not_found", agentId="A", taskId="0x" + "1" * 32)
    await failed(rt, "agent:completeTask", "not_found", agentId="B", taskId=tid)
    await out(rt, "agent:create", agentId="B", config=ECHO)
    await failed(rt, "agent:completeTask", "not_found", agentId="B", taskId=tid)  # another agent's task
    trig = await call(rt, "agent:trigger", agentId="A", wait=False)
    await failed(rt, "agent:completeTask", "not_found", agentId="A", taskId=trig["jobId"])  # a trigger is no task


# -- agent:step: a dry run ----------------------------------------------------------------------

REPLIES = [
    {"content": "writing", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/n", "value": 7}}]},
    {"toolCalls": [{"id": "r1", "name": "covia_read", "arguments": {"path": "w/n"}},
                   {"name": "agent_message", "arguments": {"agentId": "B", "message": "hi"}}]},
    {"toolCalls": [{"name": "complete_task", "arguments": {"output": {"n": 7}}}]},
]


async def test_step_reports_what_a_run_would_commit_and_commits_nothing(rt: Runtime) -> None:
    tid = await pending_task(rt)
    await out(rt, "agent:create", agentId="B", config=ECHO)
    before = state(rt)
    o = await out(rt, "agent:step", agentId="A", replies=REPLIES)
    assert state(rt) == before  # no ref moved, no object stored (not even this job)
    assert (o["agentId"], o["taskId"], o["finished"], o["repliesUsed"], o["next"]) == ("A", tid, True, 3, None)
    assert [(c["name"], c["result"], c["io"]) for c in o["calls"]] == [
        ("covia_write", "written", True), ("covia_read", "7", True),
        ("agent_message", "delivered to B when this run completes", True), ("complete_task", "task completed", False)]
    assert o["calls"][1]["id"] == "r1" and o["calls"][0]["id"] == "step0-0"
    assert o["taskResults"] == {tid: {"status": "COMPLETE", "output": {"n": 7}}} and o["result"] == {"n": 7}
    assert o["wsEdits"] == [{"path": "w/n", "value": 7}] and o["outbox"] == [{"agentId": "B", "message": "hi"}]
    assert o["newMessages"][0] == {"role": "user", "content": "x"} and o["newMessages"][-1]["role"] == "tool"
    assert await read(rt, "w/n") is None and await read(rt, "g/B/inbox") == []
    assert o["seq"] == (await out(rt, "agent:history", agentId="A"))["versions"][0]["seq"]


async def test_step_with_too_few_replies_shows_the_next_request(rt: Runtime) -> None:
    await pending_task(rt)
    o = await out(rt, "agent:step", agentId="A", replies=REPLIES[:1])
    assert not o["finished"] and o["repliesUsed"] == 1 and o["taskResults"] is None
    assert o["next"]["messages"][-1] == {"role": "tool", "toolCallId": "step0-0", "name": "covia_write",
                                         "content": "written"}


async def test_step_at_a_version_and_with_a_simulated_task(rt: Runtime) -> None:
    tid = await pending_task(rt, responseSchema=SCHEMA, strict=True)
    await out(rt, "agent:cancelTask", agentId="A", taskId=tid)
    o = await out(rt, "agent:step", agentId="A", at=2, replies=[{"content": "{\"n\": \"x\"}"}])
    assert o["seq"] == 2 and o["taskId"] == tid
    assert o["taskResults"][tid]["status"] == "FAILED" and o["taskError"]["code"] == "schema_mismatch"
    o = await out(rt, "agent:step", agentId="A", task={"q": 1}, replies=[{"content": "fine"}])
    assert o["taskId"] == "(simulated)" and o["newMessages"][0]["content"] == '{"q":1}'


async def test_step_failures(rt: Runtime) -> None:
    await failed(rt, "agent:step", "not_found", agentId="Nobody", replies=[{"content": "x"}])
    await out(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}, "maxIterations": 1})
    job = await failed(rt, "agent:step", "tool_loop_limit", agentId="A", replies=[
        {"toolCalls": [{"name": "covia_read", "arguments": {"path": "w/x"}}]}, {"content": "late"}])
    assert job["error"]["path"] == "$.input.replies[1]"
    await failed(rt, "agent:step", "not_found", agentId="A", at=99, replies=[{"content": "x"}])


async def test_the_new_events_replay_identical(rt: Runtime) -> None:
    """A chain holding schema-checked runs, tasks finished from outside, a cancel with a reason, a JSON
    message and a fork over a TERMINATED agent re-runs to the same digests."""
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await call(rt, "agent:request", agentId="A", input='{"n": "x"}', responseSchema=SCHEMA, strict=True, wait=True)
    await call(rt, "agent:request", agentId="A", input='{"n": 1}', responseSchema=SCHEMA, outputPath="w/o", wait=True)
    await out(rt, "agent:message", agentId="A", message=[1, {"k": "v"}])
    await idle(rt)
    await out(rt, "agent:suspend", agentId="A")
    t1 = (await call(rt, "agent:request", agentId="A", input="a"))["jobId"]
    t2 = (await call(rt, "agent:request", agentId="A", input="b"))["jobId"]
    t3 = (await call(rt, "agent:request", agentId="A", input="c"))["jobId"]
    await out(rt, "agent:completeTask", agentId="A", taskId=t1, result={"r": 1})
    await out(rt, "agent:failTask", agentId="A", taskId=t2, error="no")
    await out(rt, "agent:cancelTask", agentId="A", taskId=t3, reason="why not")
    await out(rt, "agent:create", agentId="T", config=ECHO)
    await out(rt, "agent:delete", agentId="T")
    await out(rt, "agent:fork", sourceId="A", agentId="T", overwrite=True)
    for aid in ("A", "T"):
        r = await out(rt, "agent:replay", agentId=aid)
        assert r["identical"] is True and r["divergence"] is None, (aid, r)


async def test_a_what_if_replay_keeps_the_requests_schema(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    await call(rt, "agent:request", agentId="A", input='{"n": "x"}', responseSchema=SCHEMA, strict=True, wait=True)
    await call(rt, "agent:request", agentId="A", input='{"n": 1}', responseSchema=SCHEMA, strict=True, wait=True)
    r = await out(rt, "agent:replay", agentId="A", **{"from": 0}, into="W")
    assert r["replayed"] == 2 and r["diverged"] == []
    statuses = [[x["status"] for x in e["taskResults"].values()] for e in await read(rt, "g/W/timeline")]
    assert statuses == [["FAILED"], ["COMPLETE"]]  # strict held on the what-if agent too


async def test_a_session_bound_request_with_a_schema_and_an_output_path(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ECHO)
    first = await call(rt, "agent:request", agentId="A", input="one", session={"title": "t"}, wait=True)
    sid = first["sessionId"]
    assert public_job(first)["output"]["sessionId"] == sid  # the wrapped text answer says its session
    job = await call(rt, "agent:request", agentId="A", input='{"n": 3}', sessionId=sid, responseSchema=SCHEMA,
                     strict=True, outputPath="w/s/n", wait=True)
    assert job["status"] == "COMPLETE" and job["output"] == {"n": 3} and await read(rt, "w/s/n") == {"n": 3}
    o = await out(rt, "agent:trigger", agentId="A", sessionId=sid, force=False)
    assert o["sessionId"] == sid and o["taskResults"] == []
