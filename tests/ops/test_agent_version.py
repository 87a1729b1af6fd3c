"""agent:version: one version's commit (op, caller, time, recorded input) and a completed run's model exchanges,
each request rebuilt from the run's base version and checked against the digest the run recorded; agent:list's
``updated`` and ``includeForks``."""

from __future__ import annotations

import msgspec
import pytest

from ops.domain.errors import Rejected
from ops.domain.events import decode
from ops.engine.handlers.versions import run_requests
from ops.engine.runs import request_digest
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out, scripted

#: a run of two model calls: covia_read of the workspace, then complete_task with what it read
TOOLS = scripted({"when": "look", "toolCalls": [{"name": "covia_read", "arguments": {"path": "w/notes"}}]},
                 {"when": "remember", "toolCalls": [{"name": "complete_task", "arguments": {"output": "done"}}]})


async def _run_version(rt: Runtime, aid: str) -> int:
    """The seq of the agent's latest ``agent:run`` version."""
    versions = (await out(rt, "agent:history", agentId=aid))["versions"]
    return next(v["seq"] for v in versions if v["op"] == "agent:run")


async def test_a_runs_exchanges_are_rebuilt_exactly(rt: Runtime) -> None:
    await out(rt, "covia:write", path="w/notes", value="remember the milk")
    await out(rt, "agent:create", agentId="A", config={**TOOLS, "systemPrompt": "Be useful."})
    assert (await out(rt, "agent:request", agentId="A", input="look at the notes", wait=True)) == "done"
    seq = await _run_version(rt, "A")
    v = await out(rt, "agent:version", agentId="A", at=seq)
    head = (await out(rt, "agent:history", agentId="A", limit=1))["versions"][0]
    assert {k: v[k] for k in ("seq", "op", "caller")} == {"seq": seq, "op": "agent:run", "caller": "local"}
    assert v["id"] == head["id"] and v["ts"] == head["ts"] and len(v["parent"]) == 64
    assert v["truncated"] is False and v["inputSize"] == len(msgspec.json.encode(v["input"]))
    assert v["input"]["task"] == "look at the notes" and v["input"]["tools"] == ['"remember the milk"']
    first, second = v["exchanges"]
    assert first["verified"] and second["verified"]
    # the requests as the model got them: each hashes to the digest recorded (also given, in hex)
    for ex, rec in zip(v["exchanges"], v["input"]["llm"]):
        assert ex["digest"] == rec["request"] and len(ex["digest"]) == 64
        assert request_digest(ex["request"]).hex() == ex["digest"]
        assert ex["reply"] == rec["reply"]
    assert [m["role"] for m in first["request"]["messages"]] == ["system", "user"]
    assert first["request"]["messages"][1]["content"] == "look at the notes"
    assert first["request"]["model"]["provider"] == "scripted"
    assert {t["name"] for t in first["request"]["tools"]} >= {"covia_read", "complete_task"}
    assert first["reply"]["toolCalls"][0]["name"] == "covia_read"
    # the second request: the first, the model's tool call and the tool's result
    msgs = second["request"]["messages"]
    assert msgs[:2] == first["request"]["messages"] and [m["role"] for m in msgs[2:]] == ["assistant", "tool"]
    assert msgs[3]["content"] == '"remember the milk"'  # covia_read answers JSON
    assert second["reply"]["toolCalls"][0]["name"] == "complete_task"


async def test_a_later_run_sees_the_history_of_the_earlier_ones(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="E", config={"model": {"provider": "echo"}})
    for text in ("one", "two"):
        await out(rt, "agent:request", agentId="E", input=text, wait=True)
    v = await out(rt, "agent:version", agentId="E", at=await _run_version(rt, "E"))
    (ex,) = v["exchanges"]
    assert ex["verified"] and [m["content"] for m in ex["request"]["messages"]] == ["one", "one", "two"]
    assert ex["reply"] == {"content": "two"}


async def test_other_versions_give_their_event_and_no_exchanges(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="B", config={"model": {"provider": "echo"}}, state={"k": 1})
    job = await call(rt, "agent:request", agentId="B", input={"q": 1}, wait=True)
    v0 = await out(rt, "agent:version", agentId="B", at=0)
    assert v0["op"] == "agent:create" and v0["parent"] is None and v0["exchanges"] is None
    assert v0["input"]["agentId"] == "B" and v0["input"]["state"] == {"k": 1}
    v1 = await out(rt, "agent:version", agentId="B", at=1)
    assert v1["op"] == "agent:request" and v1["input"] == {"agentId": "B", "taskId": job["jobId"], "input": {"q": 1}}
    assert v1["parent"] == v0["id"] and v1["exchanges"] is None
    by_id = await out(rt, "agent:version", agentId="B", at="0x" + v1["id"].upper())
    assert by_id == v1


async def test_a_failed_run_records_its_error_and_no_exchanges(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="F", config={"model": {"provider": "error", "message": "boom"}})
    await call(rt, "agent:request", agentId="F", input="x", wait=True)
    v = await out(rt, "agent:version", agentId="F", at=await _run_version(rt, "F"))
    assert v["input"]["error"]["message"] == "boom" and v["exchanges"] is None


async def test_max_size_leaves_big_parts_out(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="S", config={"model": {"provider": "echo"}})
    await out(rt, "agent:request", agentId="S", input="y" * 3000, wait=True)
    seq = await _run_version(rt, "S")
    small = await out(rt, "agent:version", agentId="S", at=seq, maxSize=1000)
    assert small["truncated"] is True and small["input"] is None and small["inputSize"] > 1000
    (ex,) = small["exchanges"]
    assert ex["request"] is None and ex["verified"] is True and ex["reply"]["content"] == "y" * 3000
    full = await out(rt, "agent:version", agentId="S", at=seq)
    assert full["truncated"] is False and full["inputSize"] == small["inputSize"]


async def test_requests_that_cannot_be_rebuilt_are_none(rt: Runtime) -> None:
    """A record that stops short (a tool result missing) or a base version that cannot be read: the requests
    rebuilt so far, then None (agent:version then says `verified: false` and still gives the replies)."""
    await out(rt, "covia:write", path="w/notes", value="remember the milk")
    await out(rt, "agent:create", agentId="A", config=TOOLS)
    await out(rt, "agent:request", agentId="A", input="look at the notes", wait=True)
    tx = rt.engine.tx()
    _, c = rt.engine.at_version(tx, "local", "A", await _run_version(rt, "A"))
    event = decode(c.op, tx.materialize(c.input))
    assert [request_digest(r) for r in run_requests(rt.engine, tx, c, event)] == [x["request"] for x in event.llm]
    first, second = run_requests(rt.engine, tx, c, msgspec.structs.replace(event, tools=[]))
    assert request_digest(first) == event.llm[0]["request"] and second is None
    assert run_requests(rt.engine, tx, c, msgspec.structs.replace(event, base="00" * 32)) == [None, None]


@pytest.mark.parametrize("inp, code, path", [
    ({"agentId": "Nobody", "at": 0}, "not_found", "$.input.agentId"),
    ({"agentId": "V", "at": 99}, "not_found", "$.input.at"),
    ({"agentId": "V", "at": "0x" + "ab" * 32}, "not_found", "$.input.at"),
])
async def test_unknown_agents_and_versions(rt: Runtime, inp: dict, code: str, path: str) -> None:
    await out(rt, "agent:create", agentId="V")
    job = await call(rt, "agent:version", **inp)
    assert job["status"] == "FAILED" and job["error"]["code"] == code and job["error"]["path"] == path, job


async def test_another_callers_agent_is_not_found(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="Mine")
    job = await call(rt, "agent:version", caller="bob", agentId="Mine", at=0)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"


async def test_list_gives_updated_and_with_include_forks_the_lineage(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="R")
    await out(rt, "agent:update", agentId="R", state={"a": 1})
    await out(rt, "agent:fork", sourceId="R", agentId="R2", at=1)
    await out(rt, "agent:fork", sourceId="R2", agentId="R3")
    plain = {a["agentId"]: a for a in (await out(rt, "agent:list"))["agents"]}
    assert set(plain["R"]) == {"agentId", "status", "taskCount", "tasks", "error", "errorCode", "updated"}
    for aid in ("R", "R2", "R3"):
        head = (await out(rt, "agent:history", agentId=aid, limit=1))["versions"][0]
        assert plain[aid]["updated"] == head["ts"]
    rich = {a["agentId"]: a for a in (await out(rt, "agent:list", includeForks=True))["agents"]}
    assert rich["R"]["headSeq"] == 1 and "forkedFrom" not in rich["R"]
    r_at_1 = (await out(rt, "agent:history", agentId="R", limit=1))["versions"][0]["id"]
    assert rich["R2"]["forkedFrom"] == {"agentId": "R", "id": r_at_1, "seq": 1} and rich["R2"]["headSeq"] == 0
    assert rich["R3"]["forkedFrom"]["agentId"] == "R2" and rich["R3"]["forkedFrom"]["seq"] == 0
    assert rich["R2"]["forkedFrom"] == (await out(rt, "agent:info", agentId="R2"))["forkedFrom"]
    with pytest.raises(Rejected) as e:
        await call(rt, "agent:list", includeForks="yes")
    assert e.value.code == "invalid_input" and e.value.path == "$.input.includeForks"
