"""Versions: history, reads at a version, fork at a version, diff, replay and what-if replay."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.codec import decode, encode
from lattice.commits import read_commit
from lattice.digest import digest
from lattice.memory import MemoryStore
from lattice.nodes import Tx
from lattice.store import RefUpdate
from ops.domain.contracts import decode_input, lookup
from ops.domain.errors import Rejected
from ops.engine.runtime import Runtime
from tests.ops.helpers import CALLER, call, out

TOOLS_MODEL = {"provider": "scripted", "rules": [
    {"when": "note", "toolCalls": [{"name": "covia_write", "arguments": {"path": "w/memo/last", "value": "done"}},
                                   {"name": "covia_read", "arguments": {"path": "w/memo"}}]},
    {"when": "ping", "toolCalls": [{"name": "agent_message", "arguments": {"agentId": "Peer", "message": "pong"}}]},
    {"when": "fail", "toolCalls": [{"name": "fail_task", "arguments": {"error": "cannot"}}]},
    {"when": "done", "toolCalls": [{"name": "complete_task", "arguments": {"output": {"ok": True}}}]},
    {"when": "delivered", "content": "sent"},
    {"content": "fine"}]}


async def idle(rt: Runtime, *agents: str) -> None:
    for a in agents:
        await rt.idle(CALLER, a)


@pytest.fixture
async def test_reads_at_a_version_see_what_a_read_then_saw(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A", config={"model": TOOLS_MODEL}, state={"k": 1})
    seen = {}
    for step in ["hello", "note this", "again", "fail now"]:
        await call(rt, "agent:request", agentId="A", input=step, wait=True)
        await idle(rt, "A")
        versions = (await out(rt, "agent:history", agentId="A", limit=1))["versions"]
        seq = versions[0]["seq"]
        seen[seq] = {p: await out(rt, "covia:read", path=p) for p in ("g/A", "g/A/timeline", "g/A/state/history/0")}
        seen[seq]["info"] = await out(rt, "agent:info", agentId="A")
    await out(rt, "agent:update", agentId="A", state={"k": 2})
    for seq, reads in seen.items():
        for p in ("g/A", "g/A/timeline", "g/A/state/history/0"):
            assert await out(rt, "covia:read", path=p, at=seq) == reads[p]
        assert await out(rt, "agent:info", agentId="A", at=seq) == reads["info"]
    head = (await out(rt, "agent:history", agentId="A", limit=1))["versions"][0]
    assert await out(rt, "covia:read", path="g/A/state/k", at=head["id"]) == {"exists": True, "value": 2}
    listing = await out(rt, "covia:list", path="g/A/timeline", at=head["seq"])
    assert listing["count"] == 4
    sl = await out(rt, "covia:slice", path="g/A/timeline", at=3, offset=0, limit=5)
    assert sl["count"] == 1


async def test_history_lists_newest_first_and_pages(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    for i in range(30):
        await out(rt, "agent:message", agentId="A", message=f"m{i}")
        await idle(rt, "A")
    page = (await out(rt, "agent:history", agentId="A", limit=10))["versions"]
    seqs = [v["seq"] for v in page]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 10 and seqs[-1] == seqs[0] - 9
    older = (await out(rt, "agent:history", agentId="A", limit=10, before=seqs[-1]))["versions"]
    assert older[0]["seq"] == seqs[-1] - 1
    first = (await out(rt, "agent:history", agentId="A", limit=5, before=1))["versions"]
    assert [(v["seq"], v["op"], v["caller"]) for v in first] == [(0, "agent:create", CALLER)]
    assert all(len(v["id"]) == 64 for v in page)


async def test_fork_at_a_version_diverges_without_changing_the_source(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    for i in range(5):
        await out(rt, "agent:request", agentId="A", input=f"q{i}", wait=True)
    head_before = rt.store.ref("g/local/A")
    await out(rt, "agent:fork", sourceId="A", agentId="B", at=4)  # after the second run
    assert len(await out(rt, "covia:read", path="g/B/state/history")) and \
        len((await out(rt, "covia:read", path="g/B/state/history"))["value"]) == 4
    await out(rt, "agent:request", agentId="B", input="only-b", wait=True)
    assert rt.store.ref("g/local/A") == head_before
    assert len((await out(rt, "covia:read", path="g/A/state/history"))["value"]) == 10
    hist_b = (await out(rt, "covia:read", path="g/B/state/history"))["value"]
    assert [m["content"] for m in hist_b] == ["q0", "q0", "q1", "q1", "only-b", "only-b"]
    assert (await out(rt, "agent:replay", agentId="B"))["identical"] is True


async def test_diff(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    await out(rt, "agent:request", agentId="A", input="x", wait=True)
    same = await out(rt, "agent:diff", agentId="A", **{"from": 2, "to": 2})
    assert same == {"changes": [], "truncated": False}
    d = await out(rt, "agent:diff", agentId="A", **{"from": 0})
    paths = {(c["path"], c["change"]) for c in d["changes"]}
    assert ("timeline/0", "added") in paths and ("state/history/0", "added") in paths
    await out(rt, "agent:fork", sourceId="A", agentId="B")
    d2 = await out(rt, "agent:diff", agentId="A", otherAgentId="B")
    assert not [c for c in d2["changes"] if c["path"].startswith("state")]  # the state is shared: no change
    assert ("timeline/0", "removed") in {(c["path"], c["change"]) for c in d2["changes"]}  # B's timeline starts empty
    big = await out(rt, "agent:diff", agentId="A", **{"from": 0}, limit=1)
    assert big["truncated"] is True and len(big["changes"]) == 1


async def snapshot(rt: Runtime) -> tuple:
    return list(rt.store.refs("")), len(rt.store)


@pytest.mark.parametrize("op, inp, code", [
    ("covia:read", {"path": "g/A", "at": 99}, "not_found"),
    ("agent:info", {"agentId": "A", "at": "ab" * 32}, "not_found"),
    ("agent:fork", {"sourceId": "A", "agentId": "F", "at": 50}, "not_found"),
    ("agent:diff", {"agentId": "A", "from": 2, "to": 1}, "invalid_range"),
    ("agent:diff", {"agentId": "A", "from": 0, "to": 99}, "not_found"),
    ("agent:replay", {"agentId": "A", "from": 2, "to": 0}, "invalid_range"),
    ("agent:history", {"agentId": "Nobody"}, "not_found"),
    ("agent:replay", {"agentId": "A", "from": 1, "into": "Other"}, "conflict"),
])
async def test_bad_versions_fail_cleanly_and_change_nothing(rt: Runtime, op: str, inp: dict, code: str) -> None:
    await out(rt, "agent:create", agentId="A")
    await out(rt, "agent:create", agentId="Other")
    await out(rt, "agent:request", agentId="A", input="x", wait=True)
    before = await snapshot(rt)
    job = await call(rt, op, **inp)
    assert job["status"] == "FAILED" and job["error"]["code"] == code, job
    assert job["error"]["message"]
    assert await snapshot(rt) == before


async def test_a_version_of_another_agent_is_not_found(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    await out(rt, "agent:create", agentId="B", state={"other": True})
    b0 = (await out(rt, "agent:history", agentId="B"))["versions"][0]["id"]
    before = await snapshot(rt)
    job = await call(rt, "covia:read", path="g/A", at=b0)
    assert job["status"] == "FAILED" and job["error"]["code"] == "not_found" and job["error"]["path"] == "$.input.at"
    assert await snapshot(rt) == before


@pytest.mark.parametrize("op, inp, path", [
    ("covia:read", {"path": "w/x", "at": 1}, "$.input.at"),
    ("covia:read", {"path": "g/A", "at": "not-hex"}, "$.input.at"),
    ("covia:read", {"path": "g/A", "at": -1}, "$.input.at"),
    ("agent:diff", {"agentId": "A"}, "$.input.from"),
    ("agent:replay", {"agentId": "A", "into": "B"}, "$.input.from"),
])
async def test_malformed_versions_are_rejected(rt: Runtime, op: str, inp: dict, path: str) -> None:
    await out(rt, "agent:create", agentId="A")
    before = await snapshot(rt)
    c = lookup(op)
    with pytest.raises(Rejected) as e:
        await rt.invoke(c, decode_input(c, inp), CALLER)
    assert e.value.path == path and e.value.code == "invalid_input"
    assert await snapshot(rt) == before


async def test_replay_detects_a_tampered_reply(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    for q in ("one", "two", "three"):
        await out(rt, "agent:request", agentId="A", input=q, wait=True)
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    # forge the head: same root, but the recorded reply says something else
    head = rt.store.ref("g/local/A")
    obj = decode(rt.store.get(head))
    assert obj["op"] == "agent:run"
    tx = Tx(rt.store)
    inp = tx.materialize(obj["input"])
    inp["llm"][0]["reply"]["content"] = "tampered"
    obj["input"] = tx.put_value(inp)
    forged = encode(obj)
    assert rt.store.commit({**tx.objects, digest(forged): forged}, [RefUpdate("g/local/A", head, digest(forged))])
    r = await out(rt, "agent:replay", agentId="A")
    seq = read_commit(rt.store, digest(forged)).seq
    assert r["identical"] is False and r["replayed"] == seq + 1
    assert r["divergence"]["seq"] == seq
    assert r["divergence"]["path"] == "state/history/5/content"
    assert (r["divergence"]["expected"], r["divergence"]["got"]) == ("three", "tampered")
    # a range before the forgery still replays identical
    assert (await out(rt, "agent:replay", agentId="A", to=seq - 1))["identical"] is True


async def test_what_if_replay(rt: Runtime) -> None:
    cfg = {"model": TOOLS_MODEL, "systemPrompt": "v1"}
    await out(rt, "agent:create", agentId="Peer")
    await out(rt, "agent:suspend", agentId="Peer")
    await out(rt, "agent:create", agentId="A", config=cfg)
    jobs = []
    for q in ("hello", "note this", "ping"):
        jobs.append(await call(rt, "agent:request", agentId="A", input=q, wait=True))
    await out(rt, "agent:message", agentId="A", message="fyi")
    await idle(rt, "A")
    head = rt.store.ref("g/local/A")
    # same config: every request is byte-identical to a recorded one, nothing is called live, until the
    # "ping" run messages Peer: in the what-if its agent_message tool answers truthfully that nothing was
    # delivered, so that run's next request and the later runs (whose context holds it) are called live
    same = await out(rt, "agent:replay", agentId="A", **{"from": 0}, into="Same")
    seqs = {c["op"]: c["seq"] for c in (await out(rt, "agent:history", agentId="A"))["versions"]
            if c["op"] in ("agent:message",)}
    ping = [c["seq"] for c in reversed((await out(rt, "agent:history", agentId="A"))["versions"])
            if c["op"] == "agent:request"][2]
    assert same == {"agentId": "Same", "replayed": 4, "diverged": [ping, seqs["agent:message"]]}
    tl_a = (await out(rt, "covia:read", path="g/A/timeline"))["value"]
    tl_s = (await out(rt, "covia:read", path="g/Same/timeline"))["value"]
    assert [e["result"] for e in tl_s] == [e["result"] for e in tl_a]
    # another system prompt: every request differs, so each input diverged
    other = await out(rt, "agent:replay", agentId="A", **{"from": 0}, into="Other", config={"systemPrompt": "v2"})
    assert other["diverged"] == [c["seq"] for c in reversed((await out(rt, "agent:history", agentId="A"))["versions"])
                                 if c["op"] in ("agent:request", "agent:message")]
    assert rt.store.ref("g/local/A") == head  # the source is untouched
    for j in jobs:  # and its jobs are not re-completed
        assert rt.get_job(CALLER, j["jobId"])["updated"] == j["updated"]
    assert (await out(rt, "covia:read", path="g/Other/state/config/systemPrompt"))["value"] == "v2"
    assert (await out(rt, "agent:replay", agentId="Other"))["identical"] is True


# -- the property: replay from the first version reproduces every recorded root ------------

OPS = st.sampled_from(["request", "request-note", "request-ping", "request-fail", "message", "fork", "update",
                       "suspend", "resume", "trigger", "cancel", "create-overwrite"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(OPS, st.integers(0, 3)), min_size=1, max_size=25))
def test_replay_reproduces_every_root(ops: list[tuple[str, int]]) -> None:
    asyncio.run(_run_ops(ops))


async def _run_ops(ops: list[tuple[str, int]]) -> None:
    rt = Runtime(MemoryStore())
    await rt.start()
    try:
        agents = ["A0"]
        await out(rt, "agent:create", agentId="Peer", config={"model": TOOLS_MODEL})
        await out(rt, "agent:create", agentId="A0", config={"model": TOOLS_MODEL})
        pending: list[tuple[str, str]] = []
        for op, n in ops:
            a = agents[n % len(agents)]
            match op:
                case "request" | "request-note" | "request-ping" | "request-fail":
                    text = {"request": "hi", "request-note": "note it", "request-ping": "ping", "request-fail": "fail"}[op]
                    j = await call(rt, "agent:request", agentId=a, input=f"{text} {n}", wait=n % 2 == 0)
                    pending.append((a, j["jobId"]))
                case "message":
                    await call(rt, "agent:message", agentId=a, message=f"note {n}")
                case "fork":
                    new = f"A{len(agents)}"
                    head = (await out(rt, "agent:history", agentId=a, limit=1))["versions"][0]["seq"]
                    await out(rt, "agent:fork", sourceId=a, agentId=new, at=head // 2, includeTimeline=n % 2 == 1,
                              config={"systemPrompt": f"fork {n}"})
                    agents.append(new)
                case "update":
                    await call(rt, "agent:update", agentId=a, state={"n": n}, config={"systemPrompt": f"u{n}"})
                case "suspend":
                    await call(rt, "agent:suspend", agentId=a)
                case "resume":
                    await call(rt, "agent:resume", agentId=a, autoWake=n != 3)
                case "trigger":
                    await call(rt, "agent:trigger", agentId=a, wait=False)
                case "cancel":
                    if pending:
                        agent, jid = pending.pop(n % len(pending))
                        await call(rt, "agent:cancelTask", agentId=agent, taskId=jid)
                case "create-overwrite":
                    await call(rt, "agent:create", agentId=a, overwrite=True, config={"model": TOOLS_MODEL})
            if n == 0:
                await asyncio.sleep(0)  # sometimes let runs interleave with the next operation
        for a in agents + ["Peer"]:
            await call(rt, "agent:resume", agentId=a)
        await idle(rt, *agents, "Peer")
        for a in agents + ["Peer"]:
            r = await out(rt, "agent:replay", agentId=a)
            assert r["identical"] is True, (a, r, ops)
            assert r["replayed"] == (await out(rt, "agent:history", agentId=a, limit=1))["versions"][0]["seq"] + 1
    finally:
        await rt.close()


@pytest.mark.parametrize("field", ["from", "to"])
async def test_diff_of_two_agents_takes_no_version(rt: Runtime, field: str) -> None:
    from ops.domain.errors import Rejected
    await out(rt, "agent:create", agentId="A")
    await out(rt, "agent:create", agentId="B")
    with pytest.raises(Rejected) as e:
        await call(rt, "agent:diff", agentId="A", otherAgentId="B", **{field: 0})
    assert e.value.code == "invalid_input" and e.value.path == f"$.input.{field}" and e.value.hint


async def test_a_what_if_run_says_its_messages_are_not_delivered(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="Peer")
    await out(rt, "agent:suspend", agentId="Peer")
    await out(rt, "agent:create", agentId="A", config={"model": TOOLS_MODEL})
    await out(rt, "agent:request", agentId="A", input="ping", wait=True)
    source_tool = [m for m in (await out(rt, "covia:read", path="g/A/state/history"))["value"] if m["role"] == "tool"]
    assert source_tool[-1]["content"] == "delivered to Peer when this run completes"
    await out(rt, "agent:replay", agentId="A", **{"from": 0}, into="A2")
    tool = [m for m in (await out(rt, "covia:read", path="g/A2/state/history"))["value"] if m["role"] == "tool"]
    assert tool[-1]["content"].startswith("not delivered to Peer: this run is a what-if replay")
    inbox = (await out(rt, "covia:read", path="g/Peer/inbox"))["value"]
    assert [m["message"] for m in inbox] == ["pong"]  # the source's message only


async def test_info_says_where_a_fork_came_from(rt: Runtime) -> None:
    await out(rt, "agent:create", agentId="A")
    for i in range(3):
        await out(rt, "agent:request", agentId="A", input=f"t{i}", wait=True)
    await out(rt, "agent:fork", sourceId="A", agentId="F", at=2)
    await out(rt, "agent:fork", sourceId="A", agentId="H")
    hist = {v["seq"]: v["id"] for v in (await out(rt, "agent:history", agentId="A"))["versions"]}
    assert (await out(rt, "agent:info", agentId="F"))["forkedFrom"] == {"agentId": "A", "id": hist[2], "seq": 2}
    assert (await out(rt, "agent:info", agentId="H"))["forkedFrom"]["seq"] == max(hist)
    assert "forkedFrom" not in await out(rt, "agent:info", agentId="A")
