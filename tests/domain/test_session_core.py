"""Tests of sessions in the pure core: :mod:`ops.domain.sessions`, the session events' effect on
a record, the turn a run takes (:func:`ops.domain.agent.pick_work`), the context it composes, a
recorded session turn re-derived, and the session commands of :mod:`ops.domain.decide`."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lattice.nodes import seq_len
from ops.domain import agent as A
from ops.domain import decide as D
from ops.domain import events as E
from ops.domain import sessions as S
from ops.domain.cycle import Cycle, build_context
from ops.domain.errors import OpError
from ops.domain.events import (ChatQueued, Messaged, RunCompleted, RunFailed, SessionCompacted, SessionDeleted,
                               SessionForked, SessionRenamed, TaskQueued, Terminated)
from tests.domain.helpers import (AID, CALLER, SID, T0, TS, chat_entry, chatting, ctx, drive, in_session, new_tx,
                                  reopen, running, say, session_suspended, sleeping, tid)

NO_SESSIONS = ("sessions", "sessionQueue")


def plain(tx, rec: dict[str, Any]) -> dict[str, Any]:
    return tx.materialize(rec)


# -- records without sessions keep their shape ------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda tx: A.new_agent({}, None, T0),
    lambda tx: A.fork(running(tx), None, True, TS, tx),
    lambda tx: A.terminate(running(tx), TS, tx),
    lambda tx: E.apply(tx, running(tx), RunFailed(error={"code": "x", "message": "y"}), ctx()),
    lambda tx: E.apply(tx, sleeping(tx), TaskQueued(taskId=tid(5), input=1), ctx()),
    lambda tx: E.apply(tx, sleeping(tx), Messaged(agentId=AID, message="m"), ctx()),
], ids=["new", "fork", "terminate", "run-failed", "request", "message"])
def test_no_session_keys_until_a_first_session(make) -> None:
    """Agents that never had a session store what they stored before sessions existed."""
    tx = new_tx()
    assert not set(NO_SESSIONS) & set(make(tx))


def test_ids_normalize() -> None:
    assert S.normalize_id("0x" + "AB" * 16) == "0x" + "ab" * 16 == S.normalize_id("ab" * 16)
    assert S.normalize_id("s-1") is None and S.normalize_id(None) is None and S.normalize_id("ab" * 17) is None


# -- the session events ------------------------------------------------------------------------

def test_chat_opens_a_session_and_queues_its_message() -> None:
    tx = new_tx()
    rec = E.apply(tx, sleeping(tx), ChatQueued(agentId=AID, sessionId=SID, messageId=tid(5), message={"a": 1},
                                              minted=True), ctx(caller="carol"))
    session = plain(tx, rec)["sessions"][SID]
    assert session["meta"] == {"id": SID, "parties": ["carol"], "title": "", "status": "active", "started": TS,
                               "lastActivity": TS, "turnCount": 0}
    assert session["pending"] == [{"id": tid(5), "op": "agent:chat", "message": {"a": 1}, "caller": "carol", "ts": TS}]
    assert session["history"] == [] and rec["sessionQueue"] == [SID] and rec["status"] == A.RUNNING
    # a second party joins; a second message keeps the queue as it was
    rec = E.apply(tx, rec, Messaged(agentId=AID, message="fyi", sessionId=SID, messageId=tid(6)),
                  ctx(caller="dave", ts=TS + 1))
    session = plain(tx, rec)["sessions"][SID]
    assert session["meta"]["parties"] == ["carol", "dave"] and session["meta"]["lastActivity"] == TS + 1
    assert [e["op"] for e in session["pending"]] == ["agent:chat", "agent:message"] and rec["sessionQueue"] == [SID]
    assert seq_len(rec["inbox"]) == 0


def test_a_task_bound_to_a_session_and_one_opening_it() -> None:
    tx = new_tx()
    rec = E.apply(tx, in_session(tx), TaskQueued(taskId=tid(5), input="go", sessionId=SID), ctx())
    assert rec["tasks"][tid(5)] == {"input": "go", "caller": CALLER, "ts": TS, "sessionId": SID}
    rec = E.apply(tx, sleeping(tx), TaskQueued(taskId=tid(5), sessionId=tid(6), minted=True, title="T"), ctx())
    assert plain(tx, rec)["sessions"][tid(6)]["meta"]["title"] == "T" and rec["sessionQueue"] == []


def test_rename_delete_and_their_errors() -> None:
    tx = new_tx()
    rec = E.apply(tx, in_session(tx), SessionRenamed(agentId=AID, sessionId=SID, title="New"), ctx())
    assert S.get(tx, rec, SID)["meta"]["title"] == "New"
    rec = E.apply(tx, chatting(tx), SessionDeleted(agentId=AID, sessionId=SID), ctx())
    assert plain(tx, rec)["sessions"] == {} and rec["sessionQueue"] == [] and rec["status"] == A.SLEEPING
    for event in (SessionRenamed(agentId=AID, sessionId=tid(9), title="x"), SessionDeleted(agentId=AID, sessionId=tid(9)),
                  SessionCompacted(agentId=AID, sessionId=tid(9), summary="s")):
        with pytest.raises(KeyError):  # a replay reports it as a divergence
            E.apply(tx, in_session(tx), event, ctx())


def _turns(tx, n: int) -> dict[str, Any]:
    """An agent whose session ``SID`` had ``n`` turns (``u<i>``/``a<i>``)."""
    rec = S.open_session(tx, A.new_agent({}, None, T0), SID, CALLER, T0)
    for i in range(n):
        rec = S.enqueue(tx, rec, SID, chat_entry(200 + i, f"u{i}"), T0 + i)
        work = A.pick_work(tx, A.settle(rec))
        rec = S.take_turn(tx, rec, SID, work.pending, None, [{"role": "user", "content": f"u{i}"},
                                                             {"role": "assistant", "content": f"a{i}"}], T0 + i)
    return reopen(tx, A.settle(rec))


def test_compaction_replaces_the_oldest_turns_with_a_summary() -> None:
    tx = new_tx()
    rec = _turns(tx, 40)  # 80 messages: the history is a vector handle
    out = E.apply(tx, rec, SessionCompacted(agentId=AID, sessionId=SID, summary="sum", keepTurns=3,
                                            before="ab" * 32, beforeSeq=80), ctx())
    session = plain(tx, out)["sessions"][SID]
    assert session["history"][0] == {"role": "system", "content": "sum", "summary": True, "turns": [0, 37], "ts": TS}
    assert [m["content"] for m in session["history"][1:]] == ["u37", "a37", "u38", "a38", "u39", "a39"]
    assert session["meta"]["compactedTurns"] == 37 and session["meta"]["turnCount"] == 40
    assert session["meta"]["archives"] == [{"turns": [0, 37], "id": "ab" * 32, "seq": 80, "sessionId": SID}]
    assert S.live_turns(session["meta"]) == 3
    # the model sees the summary (always) and the window of what follows
    assert S.window(tx, S.get(tx, out, SID)["history"], 2) == [
        {"role": "system", "content": S.summary_text("sum")}, {"role": "user", "content": "u39"},
        {"role": "assistant", "content": "a39"}]
    again = E.apply(tx, out, SessionCompacted(agentId=AID, sessionId=SID, summary="all", before="cd" * 32,
                                              beforeSeq=81), ctx(ts=TS + 1))
    meta = S.get(tx, again, SID)["meta"]
    assert meta["compactedTurns"] == 40 and [a["turns"] for a in meta["archives"]] == [[0, 37], [37, 40]]
    assert tx.materialize(S.get(tx, again, SID)["history"]) == [
        {"role": "system", "content": "all", "summary": True, "turns": [0, 40], "ts": TS + 1}]
    # nothing older than keepTurns: unchanged
    same = E.apply(tx, out, SessionCompacted(agentId=AID, sessionId=SID, summary="x", keepTurns=3), ctx())
    assert plain(tx, same) == plain(tx, out)


def test_read_messages_by_turns_and_characters() -> None:
    tx = new_tx()
    history = S.get(tx, _turns(tx, 5), SID)["history"]
    msgs, cut = S.read_messages(tx, history, None, None)
    assert len(msgs) == 10 and cut is False
    msgs, cut = S.read_messages(tx, history, 2, None)
    assert [m["content"] for m in msgs] == ["u3", "a3", "u4", "a4"] and cut is True
    msgs, cut = S.read_messages(tx, history, 0, None)
    assert msgs == [] and cut is True
    one = len(msgspec.json.encode(tx.materialize(S.get(tx, _turns(tx, 5), SID)["history"])[-1]))
    msgs, cut = S.read_messages(tx, history, None, one)
    assert [m["content"] for m in msgs] == ["a4"] and cut is True


def test_fork_copies_sessions_without_their_pending_messages() -> None:
    tx = new_tx()
    src = chatting(tx)
    fork = A.fork(src, None, False, TS, tx)
    assert plain(tx, fork)["sessions"][SID]["pending"] == [] and fork["sessionQueue"] == []
    assert seq_len(S.get(tx, fork, SID)["history"]) == 2 and not A.has_work(fork)
    only = A.fork(src, None, False, TS, tx, SID)
    assert list(plain(tx, only)["sessions"]) == [SID]
    with pytest.raises(KeyError):
        A.fork(src, None, False, TS, tx, tid(9))
    copied = E.apply(tx, in_session(tx), SessionForked(agentId=AID, sessionId=SID, newSessionId=tid(7), source="00",
                                                       title="copy"), ctx(load=lambda h: src))
    meta = S.get(tx, copied, tid(7))["meta"]
    assert (meta["id"], meta["title"], meta["turnCount"], meta["started"]) == (tid(7), "copy", 1, TS)
    assert seq_len(S.get(tx, copied, tid(7))["pending"]) == 0 and copied["sessionQueue"] == []


def test_terminate_drops_the_sessions_pending_messages_and_keeps_their_history() -> None:
    tx = new_tx()
    out = E.apply(tx, chatting(tx), Terminated(agentId=AID), ctx())
    session = plain(tx, out)["sessions"][SID]
    assert session["pending"] == [] and len(session["history"]) == 2 and out["sessionQueue"] == []


def test_a_failed_turn_drops_its_chats_and_keeps_messages() -> None:
    tx = new_tx()
    rec = session_suspended(tx)
    out = E.apply(tx, rec, RunFailed(error={"code": "llm_error", "message": "x"}, sessionId=SID,
                                     dropped=[tid(102)]), ctx())
    assert [e["id"] for e in plain(tx, out)["sessions"][SID]["pending"]] == [tid(103)]
    assert out["sessionQueue"] == [SID] and out["status"] == A.SUSPENDED
    assert S.chat_ids(tx, rec) == [tid(102)] and S.chat_ids(tx, out) == []


# -- the turn a run takes, and its context ----------------------------------------------------------

def test_pick_work_takes_the_oldest_item_and_its_scope() -> None:
    tx = new_tx()
    rec = A.suspend(in_session(tx), T0 + 10)
    rec = S.enqueue(tx, rec, SID, chat_entry(300), T0 + 11)             # a chat on SID
    rec = A.enqueue_task(tx, rec, tid(301), "bound", CALLER, T0 + 12, SID)  # a task on SID
    rec = A.enqueue_task(tx, rec, tid(302), "free", CALLER, T0 + 13)        # a task of the agent
    rec = A.add_message(tx, rec, "inbox", "bob", T0 + 14)
    rec = A.add_trigger(rec, tid(303), T0 + 15)
    w = A.pick_work(tx, reopen(tx, rec))
    assert (w.session, w.task_id, [e["id"] for e in w.pending], w.messages, w.triggers) == (
        SID, tid(301), [tid(300)], [], [tid(303)])
    # a task older than the session's first message goes first; an unbound one is a turn of the agent
    rec2 = A.enqueue_task(tx, A.suspend(in_session(tx), T0), tid(299), "older", CALLER, T0)
    rec2 = S.enqueue(tx, rec2, SID, chat_entry(300), T0 + 1)
    w = A.pick_work(tx, reopen(tx, rec2))
    assert (w.session, w.task_id, [m["message"] for m in w.messages]) == (None, tid(299), [])
    # a task bound to a deleted session is a turn of the agent
    rec3 = A.enqueue_task(tx, A.suspend(in_session(tx), T0), tid(299), "orphan", CALLER, T0, tid(9))
    assert A.pick_work(tx, reopen(tx, rec3)).session is None


def test_a_session_turn_composes_config_and_the_session_history() -> None:
    tx = new_tx()
    rec = A.update(chatting(tx), {"systemPrompt": "sys", "historyWindow": 1}, {"history": [
        {"role": "user", "content": "agent-level"}]}, TS)
    work = A.pick_work(tx, rec)
    cfg, prefix, new, tools = build_context(tx, rec, work)
    assert prefix == [{"role": "system", "content": "sys"}, {"role": "assistant", "content": "hi there"}]
    assert new == [{"role": "user", "content": "again"}] and tools


def test_a_recorded_session_turn_replays_to_the_live_record() -> None:
    tx = new_tx()
    base = A.settle(A.enqueue_task(tx, A.suspend(chatting(tx), T0 + 6), tid(150), {"t": 1}, CALLER, T0 + 7, SID))
    base = reopen(tx, A.resume(base, T0 + 8))
    work = A.pick_work(tx, base)
    assert work.session == SID and work.task_id == tid(150) and len(work.pending) == 1
    out = drive(Cycle(tx, base, work), [say("answered")])
    event = E.decode(*E.encode(RunCompleted(taskId=work.task_id, task={"t": 1}, triggers=[], start=TS - 5, llm=out.llm,
                                            tools=out.tools, sessionId=SID, pending=1)))
    assert E.run_work(tx, base, event) == A.Work(tid(150), {"input": {"t": 1}}, [], [], session=SID,
                                                 pending=work.pending)
    live = E.apply(tx, base, event, ctx(), outcome=out)
    assert plain(tx, live) == plain(tx, E.apply(tx, base, event, ctx()))
    session = plain(tx, live)["sessions"][SID]
    assert [(m["role"], m["turn"]) for m in session["history"][2:]] == [("user", 1), ("user", 1), ("assistant", 1)]
    assert session["history"][2]["id"] == tid(102) and session["history"][3]["taskId"] == tid(150)
    assert session["pending"] == [] and live["sessionQueue"] == [] and live["tasks"] == {}
    entry = plain(tx, live)["timeline"][-1]
    assert entry["sessionId"] == SID and entry["tasks"] == [{"t": 1}] and entry["messages"][0]["id"] == tid(102)
    # a message that arrived during the turn stays pending, its session queued again
    head = S.enqueue(tx, base, SID, chat_entry(160, "late"), TS - 1)
    merged = E.apply(tx, head, msgspec.structs.replace(event, base="ba" * 32), ctx(load=lambda h: base))
    assert [e["id"] for e in plain(tx, merged)["sessions"][SID]["pending"]] == [tid(160)]
    assert merged["sessionQueue"] == [SID] and merged["status"] == A.RUNNING
    # the session deleted during the turn: the turn is kept in no session
    gone = E.apply(tx, base, SessionDeleted(agentId=AID, sessionId=SID), ctx(ts=TS - 1))
    after = E.apply(tx, gone, msgspec.structs.replace(event, base="ba" * 32), ctx(load=lambda h: base))
    assert plain(tx, after)["sessions"] == {} and seq_len(after["timeline"]) == 2


# -- the commands ---------------------------------------------------------------------------------

def code_of(fn) -> str:
    with pytest.raises(OpError) as e:
        fn()
    return e.value.code


def test_session_commands_and_their_errors() -> None:
    tx = new_tx()
    rec = in_session(tx)
    assert D.chat(tx, rec, AID, None, tid(7), tid(8), "m", 10) == ChatQueued(
        agentId=AID, sessionId=tid(7), messageId=tid(8), message="m", minted=True)
    assert D.chat(tx, rec, AID, SID, "", tid(8), "m", 10).minted is False
    assert code_of(lambda: D.chat(tx, rec, AID, tid(9), "", tid(8), "m", 10)) == "not_found"
    assert code_of(lambda: D.chat(tx, None, AID, None, tid(7), tid(8), "m", 10)) == "not_found"
    assert code_of(lambda: D.chat(tx, A.terminate(rec, TS, tx), AID, SID, "", tid(8), "m", 10)) == "illegal_state"
    assert code_of(lambda: D.chat(tx, chatting(tx), AID, SID, "", tid(8), "m", 1)) == "limit_exceeded"
    assert code_of(lambda: D.message(rec, AID, "m", 10, tx, tid(9), tid(8))) == "not_found"
    assert code_of(lambda: D.request(rec, AID, tid(8), "x", 10, tx, tid(9))) == "not_found"
    assert code_of(lambda: D.trigger(rec, AID, tid(8), 10, tx, tid(9))) == "not_found"
    assert D.request(rec, AID, tid(8), "x", 10, tx, tid(9), "new").minted is True
    assert D.rename_session(tx, rec, AID, SID, "") is None  # already so: nothing to commit
    assert D.compact_session(tx, rec, AID, SID, "s", 1, "", 0) is None  # one turn, one kept
    assert D.compact_session(tx, rec, AID, SID, "s", 0, "ab", 3).beforeSeq == 3
    assert D.fork_session(tx, rec, rec, AID, SID, tid(7), "00", None, None).title == ""
    assert code_of(lambda: D.fork_session(tx, sleeping(tx), rec, AID, SID, tid(7), "00", 1, None)) == "not_found"
    assert code_of(lambda: D.fork(rec, None, "S", "F", "00", None, False, None, tx, tid(9))) == "not_found"
    assert code_of(lambda: D.delete_session(tx, rec, AID, tid(9))) == "not_found"
    with pytest.raises(ValueError, match="needs a Tx"):
        A.queued(chatting(tx))
