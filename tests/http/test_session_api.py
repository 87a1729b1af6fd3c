"""Sessions over HTTP: chat turns on a session, the session operations, compacted turns read at a
version, and the errors (a rejection before any job, or a FAILED job with a stable code)."""

from __future__ import annotations

from covia.models import (AgentChatResult, AgentCompactSessionResult, AgentSessionReadResult,
                          AgentSessionsResult)

from tests.http.helpers import ECHO, assert_rejection, create, failed, invoke, ok, read, snapshot, value


async def test_chat_turns_sessions_and_compaction(client):
    await create(client, "A", {**ECHO, "systemPrompt": "sys"})
    first = await ok(client, "agent:chat", {"agentId": "A", "message": "hello"})
    AgentChatResult.model_validate(first)
    sid = first["sessionId"]
    status, job = await invoke(client, "v/ops/agent/chat", {"agentId": "A", "message": {"n": 2}, "sessionId": sid})
    assert status == 200 and job["operation"] == "agent:chat" and job["status"] == "COMPLETE", job
    second = job["output"]
    assert second["sessionId"] == sid and second["response"] == '{"n":2}' and len(second["answered"]) == 1
    listed = await ok(client, "agent:sessions", {"agentId": "A"})
    assert AgentSessionsResult.model_validate(listed).sessions[0].turnCount == 2
    r = await ok(client, "agent:sessionRead", {"agentId": "A", "sessionId": sid})
    assert AgentSessionReadResult.model_validate(r).found and [m["content"] for m in r["messages"]] == [
        "hello", "hello", '{"n":2}', '{"n":2}']
    c = await ok(client, "agent:compactSession", {"agentId": "A", "sessionId": sid, "summary": "greetings"})
    assert AgentCompactSessionResult.model_validate(c).archivedTurns == 2
    assert [m["content"] for m in await value(client, f"g/A/sessions/{sid}/history")] == ["greetings"]
    old = await read(client, f"g/A/sessions/{sid}/history", at=c["archivedAt"]["seq"])
    assert old["value"] == r["messages"]
    # every step is a version of the agent, and replays identically
    ops = [v["op"] for v in (await ok(client, "agent:history", {"agentId": "A"}))["versions"]]
    assert ops[:1] == ["agent:compactSession"] and ops.count("agent:chat") == 2
    assert (await ok(client, "agent:replay", {"agentId": "A"}))["identical"] is True


async def test_session_errors(client, store):
    await create(client, "A", ECHO)
    before = snapshot(store)
    status, body = await invoke(client, "agent:chat", {"agentId": "A", "message": "x", "sessionId": "sess-1"})
    assert_rejection(status, body, 400, "invalid_input", "$.input.sessionId")
    status, body = await invoke(client, "agent:chat", {"agentId": "A", "message": None})
    assert_rejection(status, body, 400, "invalid_input", "$.input.message")
    status, body = await invoke(client, "agent:chat", {"agentId": "A", "message": [2 ** 64]})
    assert_rejection(status, body, 400, "invalid_input")
    status, body = await invoke(client, "agent:request", {"agentId": "A", "input": 1, "session": {"title": 1}})
    assert_rejection(status, body, 400, "invalid_input", "$.input.session.title")
    assert snapshot(store) == before  # a rejection changes nothing
    unknown = "0x" + "ab" * 16
    job = await failed(client, "agent:chat", {"agentId": "A", "message": "x", "sessionId": unknown}, "not_found")
    assert job["path"] == "$.input.sessionId"
    await failed(client, "agent:sessionRead", {"agentId": "nobody"}, "not_found")
    await failed(client, "agent:reloadContext", {"agentId": "A", "sessionId": unknown}, "not_found")
    assert (await ok(client, "agent:sessionRead", {"agentId": "A", "sessionId": unknown})) == {
        "found": False, "agentId": "A"}
