"""Sessions and versions: compaction readable at earlier versions, forks of agents and of one
session at any version, verified and what-if replays, and questions against snapshots."""

from __future__ import annotations

from covia.models import AgentCompactSessionResult, AgentSessionReadResult

from ops.engine.handlers.sessions import SUMMARY_PROMPT
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out, read
from tests.ops.test_session_runtime import Recorder, chat


async def head_seq(rt: Runtime, aid: str = "A") -> int:
    return (await out(rt, "agent:history", agentId=aid, limit=1))["versions"][0]["seq"]


async def versions(rt: Runtime, aid: str = "A") -> int:
    return len((await out(rt, "agent:history", agentId=aid, limit=10_000))["versions"])


async def test_compaction_keeps_the_old_turns_readable_at_earlier_versions(rt: Runtime) -> None:
    recorder = Recorder()
    rt.adapter_factory = recorder
    await out(rt, "agent:create", agentId="A", config={"systemPrompt": "sys"})
    sid = (await chat(rt, "t0"))["sessionId"]
    for i in (1, 2):
        await chat(rt, f"t{i}", sid)
    full = await read(rt, f"g/A/sessions/{sid}/history")
    before = await head_seq(rt)
    c = await out(rt, "agent:compactSession", agentId="A", sessionId=sid, summary="we counted", keepTurns=1)
    AgentCompactSessionResult.model_validate(c)
    assert c["compacted"] is True and c["archivedTurns"] == 2 and c["turnCount"] == 1
    assert c["archivedAt"]["seq"] == before and len(c["archivedAt"]["id"]) == 64
    live = await read(rt, f"g/A/sessions/{sid}/history")
    assert live[0]["summary"] is True and live[0]["content"] == "we counted" and live[0]["turns"] == [0, 2]
    assert live[1:] == full[4:]  # the last turn as it was
    # the compacted turns: at the version named by archivedAt, with covia:read and with agent:sessionRead
    old = await out(rt, "covia:read", path=f"g/A/sessions/{sid}/history", at=c["archivedAt"]["seq"])
    assert old["value"] == full
    r = await out(rt, "agent:sessionRead", agentId="A", sessionId=sid, archiveDepth=1)
    AgentSessionReadResult.model_validate(r)
    assert r["compactedTurns"] == 2 and r["turnCount"] == 3 and r["messages"] == live
    assert r["archived"] == [{"turns": [0, 2], "version": c["archivedAt"], "messages": full[:4]}]
    # the next turn sees the summary, then the kept turn
    await chat(rt, "t3", sid)
    assert recorder.requests[-1] == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "Summary of the earlier turns of this conversation: we counted"},
        {"role": "user", "content": "t2"}, {"role": "assistant", "content": "t2"}, {"role": "user", "content": "t3"}]
    # a second compaction: both archives readable
    c2 = await out(rt, "agent:compactSession", agentId="A", sessionId=sid, summary="we counted to 3")
    assert c2["archivedTurns"] == 2 and c2["turnCount"] == 0
    r = await out(rt, "agent:sessionRead", agentId="A", sessionId=sid, archiveDepth=5)
    assert [a["turns"] for a in r["archived"]] == [[0, 2], [2, 4]]
    assert [m["content"] for m in r["archived"][1]["messages"]] == ["t2", "t2", "t3", "t3"]
    assert r["messages"] == [{**r["messages"][0], "content": "we counted to 3", "turns": [0, 4]}]
    # nothing left to compact: no change, no version
    n = await versions(rt)
    c3 = await out(rt, "agent:compactSession", agentId="A", sessionId=sid, summary="again")
    assert c3 == {"agentId": "A", "sessionId": sid, "compacted": False, "archivedTurns": 0, "turnCount": 0}
    assert await versions(rt) == n
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    # pruning: a version it keeps is still read (its id changed, its seq did not); one it squashed is
    # reported missing, not an error
    await out(rt, "agent:prune", agentId="A", before=c2["archivedAt"]["seq"] + 1)
    await rt.gc()
    r = await out(rt, "agent:sessionRead", agentId="A", sessionId=sid, archiveDepth=2)
    assert r["archived"][0] == {"turns": [0, 2], "version": c["archivedAt"], "missing": True}
    assert [m["content"] for m in r["archived"][1]["messages"]] == ["t2", "t2", "t3", "t3"]
    assert r["messages"][0]["content"] == "we counted to 3"
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_fork_copies_sessions_and_can_take_one_at_a_version(rt: Runtime) -> None:
    recorder = Recorder()
    rt.adapter_factory = recorder
    await out(rt, "agent:create", agentId="A")
    s1 = (await chat(rt, "s1-a"))["sessionId"]
    after_first = await head_seq(rt)
    await chat(rt, "s1-b", s1)
    s2 = (await chat(rt, "s2-a"))["sessionId"]
    # a plain fork: every session, nothing pending; its chats continue there, the source is untouched
    assert (await out(rt, "agent:fork", sourceId="A", agentId="B"))["status"] == "SLEEPING"
    assert set(await read(rt, "g/B/sessions")) == {s1, s2} and await read(rt, "g/B/sessionQueue") == []
    await chat(rt, "on B", s1, aid="B")
    assert [m["content"] for m in recorder.requests[-1]] == ["s1-a", "s1-a", "s1-b", "s1-b", "on B"]
    assert len(await read(rt, f"g/A/sessions/{s1}/history")) == 4
    # only one session, at the head or at a version
    o = await out(rt, "agent:fork", sourceId="A", agentId="C", sessionId=s2)
    assert o["sessionId"] == s2 and list(await read(rt, "g/C/sessions")) == [s2]
    await out(rt, "agent:fork", sourceId="A", agentId="D", sessionId=s1, at=after_first)
    assert [m["content"] for m in await read(rt, f"g/D/sessions/{s1}/history")] == ["s1-a", "s1-a"]
    job = await call(rt, "agent:fork", sourceId="A", agentId="E", sessionId=s2, at=after_first)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"  # s2 did not exist then
    assert await read(rt, "g/E") is None
    # into a new session of the same agent, at a version
    f = await out(rt, "agent:forkSession", agentId="A", sessionId=s1, at=after_first, title="retry")
    s3 = f["sessionId"]
    assert f["forkedFrom"]["sessionId"] == s1 and f["forkedFrom"]["seq"] == after_first and s3 not in (s1, s2)
    meta = await read(rt, f"g/A/sessions/{s3}/meta")
    assert meta["title"] == "retry" and meta["id"] == s3 and meta["turnCount"] == 1
    await chat(rt, "take two", s3)
    assert [m["content"] for m in recorder.requests[-1]] == ["s1-a", "s1-a", "take two"]
    assert len(await read(rt, f"g/A/sessions/{s1}/history")) == 4  # the original goes on as it was
    job = await call(rt, "agent:forkSession", agentId="A", sessionId="0x" + "12" * 16)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
    for aid in "ABCD":
        assert (await out(rt, "agent:replay", agentId=aid))["identical"] is True, aid
    # a prune keeps the version a session fork copied from (its id remapped): replays hold after a gc
    job = await call(rt, "agent:prune", agentId="A", before=after_first + 2)
    assert job["status"] == "FAILED" and job["error"]["code"] == "conflict" and "agent:forkSession" in \
        job["error"]["message"]
    assert (await out(rt, "agent:prune", agentId="A", before=after_first + 1))["base"] == after_first
    await rt.gc()
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    await chat(rt, "after the prune", s3)


async def test_what_if_replay_re_sends_chats_and_session_inputs(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    start = await head_seq(rt)
    s1 = (await chat(rt, "hello"))["sessionId"]
    await chat(rt, "more", s1)
    await out(rt, "agent:message", agentId="A", message="note", sessionId=s1)
    job = await call(rt, "agent:request", agentId="A", input="task", session={"title": "T"}, wait=True)
    s2 = job["sessionId"]
    await call(rt, "agent:request", agentId="A", input="again", sessionId=s2, wait=True)
    w = await out(rt, "agent:replay", agentId="A", **{"from": start}, into="W")
    assert w["diverged"] == [] and w["replayed"] == 5
    n1, n2 = await read(rt, "g/W/sessions")  # two sessions, opened anew (W was forked before either)
    assert not {n1, n2} & {s1, s2}
    contents = {sid: [m["content"] for m in await read(rt, f"g/W/sessions/{sid}/history")] for sid in (n1, n2)}
    assert sorted(contents.values()) == sorted([
        [m["content"] for m in await read(rt, f"g/A/sessions/{s}/history")] for s in (s1, s2)])
    assert {(await read(rt, f"g/W/sessions/{s}/meta"))["title"] for s in (n1, n2)} == {"", "T"}


async def test_query_and_summarise_commit_nothing(rt: Runtime) -> None:
    recorder = Recorder()
    rt.adapter_factory = recorder
    await out(rt, "agent:create", agentId="A", config={"systemPrompt": "sys"})
    sid = (await chat(rt, "first"))["sessionId"]
    at_first = await head_seq(rt)
    await chat(rt, "second", sid)
    n = await versions(rt)
    q = await out(rt, "agent:query", agentId="A", sessionId=sid, question="what did I say?")
    assert q["response"] == "what did I say?" and q["sessionId"] == sid and q["version"]["seq"] == n - 1
    assert recorder.requests[-1] == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "first"},
        {"role": "assistant", "content": "first"}, {"role": "user", "content": "second"},
        {"role": "assistant", "content": "second"}, {"role": "user", "content": "what did I say?"}]
    q = await out(rt, "agent:query", agentId="A", sessionId=sid, question={"q": 1}, at=at_first)
    assert q["version"]["seq"] == at_first and len(recorder.requests[-1]) == 4
    s = await out(rt, "agent:summarise", agentId="A", sessionId=sid)
    assert s["summary"] == SUMMARY_PROMPT and s["messages"] == 4
    assert recorder.requests[-1][-1]["content"] == SUMMARY_PROMPT
    own = await out(rt, "agent:query", agentId="A", question="no session")
    assert own["sessionId"] is None and recorder.requests[-1] == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "no session"}]
    assert await versions(rt) == n and (await read(rt, f"g/A/sessions/{sid}/meta"))["turnCount"] == 2
    # errors: an unknown session; a failing model fails the job and leaves the agent as it was
    job = await call(rt, "agent:query", agentId="A", sessionId="0x" + "34" * 16, question="?")
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found"
    await out(rt, "agent:update", agentId="A", config={"model": {"provider": "error", "message": "down"}})
    job = await call(rt, "agent:summarise", agentId="A", sessionId=sid)
    assert job["status"] == "FAILED" and job["error"] == {"code": "llm_error", "message": "down"}
    assert (await read(rt, "g/A"))["status"] == "SLEEPING"

    class Buggy:  # an adapter bug: its text (which could hold a secret) stays in the server log
        async def complete(self, request):
            raise RuntimeError("sk-secret")
    rt.adapter_factory = lambda model: Buggy()
    job = await call(rt, "agent:query", agentId="A", question="?")
    assert job["status"] == "FAILED" and job["error"]["code"] == "llm_error" and "sk-secret" not in str(job)
