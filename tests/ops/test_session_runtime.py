"""Sessions at runtime: chat turns, concurrent chats, the intake operations with ``sessionId``,
failures, the session family (list, read, rename, delete, reload) and the SDK's result models."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from covia.models import (AgentChatResult, AgentDeleteSessionResult, AgentMessageResult, AgentRenameSessionResult,
                          AgentSessionReadResult, AgentSessionsResult, AgentTriggerResult)

from ops.domain.jobs import public_job
from ops.engine.runtime import Runtime
from ops.llm import make_adapter
from tests.ops.helpers import CALLER, answer, call, out, read, until

ERROR_MODEL = {"model": {"provider": "error", "message": "boom"}}


class Recorder:
    """An adapter factory: the agent's own model answers, every request's messages are recorded,
    and (when ``gated``) each call waits until the test opens the gate."""

    def __init__(self, gated: bool = False) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        if not gated:
            self.release.set()

    def __call__(self, model: Any) -> Any:
        rec, inner = self, make_adapter(model)

        class _A:
            async def complete(self, request):
                rec.requests.append(request.messages)
                rec.entered.set()
                await rec.release.wait()
                return await inner.complete(request)
        return _A()


async def idle(rt: Runtime, aid: str = "A") -> None:
    async def done() -> bool:
        return (await read(rt, f"g/{aid}/status")) != "RUNNING"
    await until(done)


async def chat(rt: Runtime, message: Any, sid: str | None = None, aid: str = "A", **kw: Any) -> dict:
    """A completed chat's output (validated by the SDK's model)."""
    o = await out(rt, "agent:chat", agentId=aid, message=message, **({"sessionId": sid} if sid else {}), **kw)
    AgentChatResult.model_validate(o)
    return o


async def test_chat_over_several_turns_keeps_the_session_conversation(rt: Runtime) -> None:
    recorder = Recorder()
    rt.adapter_factory = recorder
    await out(rt, "agent:create", agentId="A", config={"systemPrompt": "be brief"},
              state={"history": [{"role": "user", "content": "agent-level"}]})
    first = await call(rt, "agent:chat", agentId="A", message="hello")
    assert first["status"] == "COMPLETE", first
    o = first["output"]
    sid = o["sessionId"]
    assert o == {"agentId": "A", "sessionId": sid, "response": "hello", "answered": [first["jobId"]]}
    assert sid.startswith("0x") and len(sid) == 34 and sid != first["jobId"]
    o2 = await chat(rt, {"ask": ["any", "json"]}, sid)
    assert o2["sessionId"] == sid and o2["response"] == '{"ask":["any","json"]}'
    o3 = await chat(rt, "third", sid.upper().replace("0X", ""))  # ids are accepted in any case, with or without 0x
    assert o3["sessionId"] == sid
    # the third turn's model input: the system prompt, the session's turns, the new message; not the agent's history
    assert recorder.requests[-1] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": '{"ask":["any","json"]}'}, {"role": "assistant", "content": '{"ask":["any","json"]}'},
        {"role": "user", "content": "third"}]
    session = await read(rt, f"g/A/sessions/{sid}")
    meta = session["meta"]
    assert meta["id"] == sid and meta["parties"] == [CALLER] and meta["turnCount"] == 3 and meta["status"] == "active"
    assert meta["title"] == "" and meta["started"] <= meta["lastActivity"]
    assert session["pending"] == [] and [m["turn"] for m in session["history"]] == [0, 0, 1, 1, 2, 2]
    assert session["history"][0]["id"] == first["jobId"] and session["history"][0]["caller"] == CALLER
    assert await read(rt, "g/A/state/history") == [{"role": "user", "content": "agent-level"}]  # untouched
    timeline = await read(rt, "g/A/timeline")
    assert [e["sessionId"] for e in timeline] == [sid] * 3 and timeline[0]["messages"][0]["message"] == "hello"
    # a new chat without sessionId opens another session
    other = await chat(rt, "hi again")
    assert other["sessionId"] != sid and recorder.requests[-1][1:] == [{"role": "user", "content": "hi again"}]
    # each chat and each run is a version of the agent
    versions = (await out(rt, "agent:history", agentId="A"))["versions"]
    assert [v["op"] for v in versions[::-1]] == ["agent:create"] + ["agent:chat", "agent:run"] * 4
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_the_history_window_applies_to_a_session(rt: Runtime) -> None:
    recorder = Recorder()
    rt.adapter_factory = recorder
    await out(rt, "agent:create", agentId="A", config={"historyWindow": 2})
    sid = (await chat(rt, "one"))["sessionId"]
    await chat(rt, "two", sid)
    await chat(rt, "three", sid)
    assert recorder.requests[-1] == [{"role": "user", "content": "two"}, {"role": "assistant", "content": "two"},
                                     {"role": "user", "content": "three"}]


async def test_concurrent_chats_on_one_session_report_what_they_answered(rt: Runtime) -> None:
    recorder = Recorder(gated=True)
    rt.adapter_factory = recorder
    await out(rt, "agent:create", agentId="A")
    first = asyncio.create_task(call(rt, "agent:chat", agentId="A", message="one"))
    await asyncio.wait_for(recorder.entered.wait(), 2)
    (sid,) = (await read(rt, "g/A/sessions")).keys()
    # while the first turn is at the model, two more chats arrive on the same session
    second = asyncio.create_task(call(rt, "agent:chat", agentId="A", message="two", sessionId=sid))
    third = asyncio.create_task(call(rt, "agent:chat", agentId="A", message="three", sessionId=sid))

    async def both_pending() -> bool:  # the first one leaves pending when its turn commits
        return len(await read(rt, f"g/A/sessions/{sid}/pending")) == 3
    await until(both_pending)
    recorder.release.set()
    j1, j2, j3 = await asyncio.gather(first, second, third)
    assert [j["status"] for j in (j1, j2, j3)] == ["COMPLETE"] * 3
    assert j1["output"]["answered"] == [j1["jobId"]] and j1["output"]["response"] == "one"
    # one turn answered both: each job says so, with the same reply
    assert j2["output"]["answered"] == j3["output"]["answered"] == [j2["jobId"], j3["jobId"]]
    assert j2["output"]["response"] == j3["output"]["response"] == "three"
    assert len(recorder.requests) == 2 and recorder.requests[1][-2:] == [
        {"role": "user", "content": "two"}, {"role": "user", "content": "three"}]
    meta = await read(rt, f"g/A/sessions/{sid}/meta")
    assert meta["turnCount"] == 2
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_chat_errors(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    unknown = "0x" + "ab" * 16
    job = await call(rt, "agent:chat", agentId="A", message="x", sessionId=unknown)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
    assert job["error"]["path"] == "$.input.sessionId" and "omit sessionId" in job["error"]["hint"]
    job = await call(rt, "agent:chat", agentId="nobody", message="x")
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
    for bad, path in [({"sessionId": "s-1"}, "$.input.sessionId"), ({"message": None}, "$.input.message"),
                      ({"loads": {}}, "$.input.loads")]:
        with pytest.raises(Exception) as e:
            await call(rt, "agent:chat", **{"agentId": "A", "message": "x", **bad})
        assert e.value.code == "invalid_input" and e.value.path == path
    for op, kw in [("agent:chat", {"message": [2 ** 64]}), ("agent:query", {"question": {"n": 2 ** 64}})]:
        with pytest.raises(Exception) as e:  # a value the lattice cannot hold, even where nothing is stored
            await call(rt, op, agentId="nobody", **kw)
        assert e.value.code == "invalid_input", op
    assert await read(rt, "g/A/sessions") is None  # nothing was stored: no sessions key at all
    await out(rt, "agent:delete", agentId="A")
    job = await call(rt, "agent:chat", agentId="A", message="x")
    assert job["status"] == "FAILED" and job["error"]["code"] == "illegal_state"


async def test_a_failing_model_fails_the_chat_and_suspends_the_agent(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config=ERROR_MODEL)
    job = await call(rt, "agent:chat", agentId="A", message="hello")
    assert job["status"] == "FAILED" and job["error"] == {"code": "llm_error", "message": "boom"}
    rec = await read(rt, "g/A")
    assert rec["status"] == "SUSPENDED" and rec["error"] == {"code": "llm_error", "message": "boom"}
    (sid,) = rec["sessions"].keys()
    assert rec["sessions"][sid]["pending"] == [] and rec["sessionQueue"] == []  # the failed chat's message dropped
    # while suspended: a fire-and-forget message on the session waits; a chat waits too (its job is not done)
    msg = await out(rt, "agent:message", agentId="A", message="fyi", sessionId=sid)
    AgentMessageResult.model_validate(msg)
    assert msg == {"agentId": "A", "delivered": True, "sessionId": sid}
    waiting = await call(rt, "agent:chat", agentId="A", message="still there?", sessionId=sid)
    assert waiting["status"] == "PENDING" and waiting["agent"]["status"] == "SUSPENDED"
    await out(rt, "agent:update", agentId="A", config={"model": {"provider": "echo"}})
    await out(rt, "agent:resume", agentId="A")

    async def answered() -> bool:
        return rt.get_job(CALLER, waiting["jobId"])["status"] == "COMPLETE"
    await until(answered)
    done = rt.get_job(CALLER, waiting["jobId"])["output"]
    assert done["answered"] == [msg_id(await read(rt, f"g/A/sessions/{sid}/history"), "fyi"), waiting["jobId"]]
    history = await read(rt, f"g/A/sessions/{sid}/history")
    assert [m["content"] for m in history] == ["fyi", "still there?", "still there?"]
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


def msg_id(history: list[dict], content: str) -> str:
    return next(m["id"] for m in history if m["role"] == "user" and m["content"] == content)


async def test_message_request_and_trigger_with_a_session(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    sid = (await chat(rt, "start"))["sessionId"]
    # agent:message without sessionId: the inbox, as before
    assert await out(rt, "agent:message", agentId="A", message="inbox") == {"agentId": "A", "delivered": True}
    await idle(rt)
    assert (await read(rt, "g/A/state/history"))[0]["content"] == "[message from local] inbox"
    # agent:request bound to the session: its turn goes to the session's history
    job = await call(rt, "agent:request", agentId="A", input={"q": 1}, sessionId=sid, wait=True)
    assert job["status"] == "COMPLETE" and answer(job) == '{"q":1}' and job["sessionId"] == sid
    assert public_job(job)["output"]["sessionId"] == sid  # the wrapped text answer says its session
    turn = (await read(rt, f"g/A/sessions/{sid}/history"))[-2:]
    assert turn[0]["taskId"] == job["jobId"] and turn[0]["content"] == '{"q":1}' and turn[1]["role"] == "assistant"
    assert (await read(rt, f"j/{job['jobId']}"))["sessionId"] == sid
    # agent:request opening a new session (the venue's `session: {title}`)
    job = await call(rt, "agent:request", agentId="A", input="new", session={"title": "Pipeline"}, wait=True)
    new = job["sessionId"]
    assert job["status"] == "COMPLETE" and new != sid
    assert (await read(rt, f"g/A/sessions/{new}/meta"))["title"] == "Pipeline"
    # agent:trigger echoes a known session (and creates none)
    trig = await out(rt, "agent:trigger", agentId="A", sessionId=sid)
    AgentTriggerResult.model_validate({**trig, "taskResults": None})
    assert trig["sessionId"] == sid and trig["agentId"] == "A"
    assert len(await read(rt, "g/A/sessions")) == 2
    # unknown sessions are errors; giving both is refused
    unknown = "0x" + "cd" * 16
    for op, kw in [("agent:message", {"message": "x"}), ("agent:request", {"input": "x"}), ("agent:trigger", {})]:
        job = await call(rt, op, agentId="A", sessionId=unknown, **kw)
        assert job["status"] == "FAILED" and job["error"]["code"] == "not_found", op
    for kw, path in [({"sessionId": sid, "session": {}}, "$.input.session"),
                     ({"session": {"titel": "x"}}, "$.input.session.titel"),
                     ({"session": {"title": 5}}, "$.input.session.title")]:
        with pytest.raises(Exception) as e:
            await call(rt, "agent:request", agentId="A", input="x", **kw)
        assert e.value.code == "invalid_input" and e.value.path == path
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_turn_order_sessions_tasks_and_inbox(rt: Runtime) -> None:
    """The oldest waiting item picks the next turn; the inbox waits for a turn of the agent's own."""
    await out(rt, "agent:create", agentId="A")
    sid = (await chat(rt, "open"))["sessionId"]
    await out(rt, "agent:suspend", agentId="A")
    c1 = await call(rt, "agent:chat", agentId="A", message="c1", sessionId=sid, wait=False)
    r1 = await call(rt, "agent:request", agentId="A", input="r1", sessionId=sid)
    r2 = await call(rt, "agent:request", agentId="A", input="r2")
    await out(rt, "agent:message", agentId="A", message="m")
    assert await read(rt, "g/A/sessionQueue") == [sid]
    await out(rt, "agent:resume", agentId="A")
    await idle(rt)
    tl = (await read(rt, "g/A/timeline"))[1:]
    assert [(e.get("sessionId"), e["tasks"], [m["message"] for m in e["messages"]]) for e in tl] == [
        (sid, ["r1"], ["c1"]), (None, ["r2"], ["m"])]
    assert rt.get_job(CALLER, c1["jobId"])["output"]["answered"] == [c1["jobId"]]
    assert rt.get_job(CALLER, r1["jobId"])["status"] == rt.get_job(CALLER, r2["jobId"])["status"] == "COMPLETE"


async def test_session_queue_counts_towards_the_work_limit() -> None:
    from lattice.memory import MemoryStore
    from ops.engine.limits import Limits
    rt = Runtime(MemoryStore(), limits=Limits(max_queued=2))
    await rt.start()
    try:
        await out(rt, "agent:create", agentId="A")
        await out(rt, "agent:suspend", agentId="A")
        j = await call(rt, "agent:chat", agentId="A", message="1", wait=False)
        sid = j["sessionId"]
        await out(rt, "agent:message", agentId="A", message="2", sessionId=sid)
        job = await call(rt, "agent:chat", agentId="A", message="3", sessionId=sid, wait=False)
        assert job["status"] == "FAILED" and job["error"]["code"] == "limit_exceeded"
    finally:
        await rt.close()


async def test_sessions_list_read_rename_and_delete(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    empty = await out(rt, "agent:sessionRead", agentId="A")
    assert AgentSessionReadResult.model_validate(empty).found is False and "sessionId" not in empty
    sids = [(await chat(rt, f"s{i}"))["sessionId"] for i in range(3)]
    for i in range(3):
        await chat(rt, f"s0 turn {i}", sids[0])  # s0 is now the most recently active
    listed = await out(rt, "agent:sessions", agentId="A", limit=2)
    AgentSessionsResult.model_validate(listed)
    assert [s["sessionId"] for s in listed["sessions"]] == [sids[2], sids[1]]  # newest first
    assert (listed["count"], listed["total"], listed["offset"]) == (2, 3, 0)
    page2 = await out(rt, "agent:sessions", agentId="A", offset=2, limit=2)
    assert [s["sessionId"] for s in page2["sessions"]] == [sids[0]] and page2["sessions"][0]["turnCount"] == 4
    # read: the most recently active by default; bounded by turns and characters
    r = await out(rt, "agent:sessionRead", agentId="A")
    assert AgentSessionReadResult.model_validate(r).sessionId == sids[0] and r["turnCount"] == 4
    assert len(r["messages"]) == 8 and r["truncated"] is False and r["pending"] == 0
    r = await out(rt, "agent:sessionRead", agentId="A", sessionId=sids[0], maxTurns=1)
    assert [m["content"] for m in r["messages"]] == ["s0 turn 2"] * 2 and r["truncated"] is True
    r = await out(rt, "agent:sessionRead", agentId="A", sessionId=sids[0], maxChars=150)
    assert 0 < len(r["messages"]) < 8 and r["truncated"] is True and r["messages"][-1]["content"] == "s0 turn 2"
    assert (await out(rt, "agent:sessionRead", agentId="A", sessionId="0x" + "00" * 16))["found"] is False
    # rename: a version; the same title again changes nothing
    n = len((await out(rt, "agent:history", agentId="A"))["versions"])
    ren = await out(rt, "agent:renameSession", agentId="A", sessionId=sids[1], title="Second")
    AgentRenameSessionResult.model_validate(ren)
    assert ren == {"agentId": "A", "sessionId": sids[1], "title": "Second"}
    await out(rt, "agent:renameSession", agentId="A", sessionId=sids[1], title="Second")
    assert len((await out(rt, "agent:history", agentId="A"))["versions"]) == n + 1
    assert (await read(rt, f"g/A/sessions/{sids[1]}/meta"))["title"] == "Second"
    # delete: gone from the head, still at the version before
    head = (await out(rt, "agent:history", agentId="A", limit=1))["versions"][0]["seq"]
    d = await out(rt, "agent:deleteSession", agentId="A", sessionId=sids[1])
    AgentDeleteSessionResult.model_validate(d)
    assert d == {"agentId": "A", "sessionId": sids[1], "deleted": True}
    assert sids[1] not in await read(rt, "g/A/sessions")
    old = await out(rt, "covia:read", path=f"g/A/sessions/{sids[1]}/meta/title", at=head)
    assert old["exists"] is True and old["value"] == "Second"
    for op, kw in [("agent:deleteSession", {}), ("agent:renameSession", {"title": "x"}),
                   ("agent:compactSession", {"summary": "s"})]:
        job = await call(rt, op, agentId="A", sessionId=sids[1], **kw)
        assert job["status"] == "FAILED" and job["error"]["code"] == "not_found", op
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_deleting_a_session_or_the_agent_cancels_waiting_chats(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    sid = (await chat(rt, "open"))["sessionId"]
    await out(rt, "agent:suspend", agentId="A")
    c1 = await call(rt, "agent:chat", agentId="A", message="waits", sessionId=sid, wait=False)
    await out(rt, "agent:deleteSession", agentId="A", sessionId=sid)
    assert rt.get_job(CALLER, c1["jobId"])["status"] == "CANCELLED"
    assert await read(rt, "g/A/sessionQueue") == []
    c2 = await call(rt, "agent:chat", agentId="A", message="waits too", wait=False)
    await out(rt, "agent:delete", agentId="A")
    assert rt.get_job(CALLER, c2["jobId"])["status"] == "CANCELLED"
    assert (await read(rt, f"g/A/sessions/{c2['sessionId']}/pending")) == []


async def test_a_waiting_chat_can_be_cancelled(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    sid = (await chat(rt, "open"))["sessionId"]
    await out(rt, "agent:suspend", agentId="A")
    c1 = await call(rt, "agent:chat", agentId="A", message="one", sessionId=sid, wait=False)
    c2 = await call(rt, "agent:chat", agentId="A", message="two", sessionId=sid, wait=False)
    assert (await rt.cancel_job(CALLER, c1["jobId"]))["status"] == "CANCELLED"  # PUT /jobs/{id}/cancel
    cancelled = await out(rt, "agent:cancelTask", agentId="A", taskId=c2["jobId"])
    assert cancelled["cancelled"] is True and rt.get_job(CALLER, c2["jobId"])["status"] == "CANCELLED"
    assert await read(rt, f"g/A/sessions/{sid}/pending") == [] and await read(rt, "g/A/sessionQueue") == []
    job = await call(rt, "agent:cancelTask", agentId="A", taskId=c2["jobId"])  # no longer waiting
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_reload_context_checks_the_session_and_reloads_nothing(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    sid = (await chat(rt, "open"))["sessionId"]
    versions = (await out(rt, "agent:history", agentId="A"))["versions"]
    assert await out(rt, "agent:reloadContext", agentId="A", sessionId=sid) == {
        "agentId": "A", "sessionId": sid, "reloaded": True, "frames": 0}
    job = await call(rt, "agent:reloadContext", agentId="A", sessionId="0x" + "ab" * 16)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found" and job["error"]["path"] == "$.input.sessionId"
    job = await call(rt, "agent:reloadContext", agentId="B", sessionId=sid)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
    assert (await out(rt, "agent:history", agentId="A"))["versions"] == versions  # nothing committed


async def test_context_of_the_next_turn_on_a_session(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config={"systemPrompt": "sys"})
    sid = (await chat(rt, "one"))["sessionId"]
    ctx = await out(rt, "agent:context", agentId="A", sessionId=sid, task={"next": 1})
    assert ctx["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "one"},
                               {"role": "assistant", "content": "one"}, {"role": "user", "content": '{"next":1}'}]
    job = await call(rt, "agent:context", agentId="A", sessionId="0x" + "ee" * 16)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
