"""Tests of :mod:`ops.domain.events`: encoding, decoding and the one :func:`apply`.

* every event type round-trips through ``encode``/``decode`` (and the store's
  codec) and records exactly its keys;
* ``apply``'s effect on a record, table-driven: status after, how much work,
  timeline and history it holds, its error and ``updated``;
* a recorded run re-derives (``rerun``) to the same record as the live outcome;
* malformed commits raise ``UnknownEvent``;
* structurally, ``apply`` has exactly one ``case`` per event type.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

import msgspec
import pytest

from lattice.nodes import map_len, seq_iter, seq_len
from ops.domain import agent as A
from ops.domain import events as E
from ops.domain.cycle import Cycle, CycleError, ReplayError
from ops.domain.events import (ChatQueued, Created, Forked, Messaged, Resumed, RunCompleted, RunFailed,
                               SessionCompacted, SessionDeleted, SessionForked, SessionRenamed, Suspended, TaskCancelled,
                               TaskCompleted, TaskFailed, TaskQueued, Terminated, Triggered, Updated)
from tests.domain.helpers import (AID, CALLER, SID, TS, asleep_with_work, call, chatting, ctx, drive, failed,
                                  in_session, missing, new_tx, reopen, running, running_message, running_trigger, say,
                                  session_suspended, sleeping, suspended, suspended_with_work, terminated, tid)

DIGEST = bytes(range(32))  # stands for a recorded request digest (kept as bytes)
ERROR = {"code": "llm_error", "message": "boom"}

# -- (a) encode / decode -------------------------------------------------------------------

ROUND_TRIP = [
    pytest.param(Created(agentId=AID, config={"systemPrompt": "x"}, state={"k": [1, 2]}, overwrite=True),
                 {"agentId", "config", "state", "overwrite"}, id="Created"),
    pytest.param(Created(agentId=AID), {"agentId", "config", "state", "overwrite"}, id="Created-defaults"),
    pytest.param(Forked(sourceId="S", agentId=AID, source="ab" * 32, config={"maxIterations": 2},
                        includeTimeline=True, at=-1),
                 {"sourceId", "agentId", "source", "config", "includeTimeline", "at"}, id="Forked"),
    pytest.param(Updated(agentId=AID, state="plain"), {"agentId", "config", "state"}, id="Updated"),
    pytest.param(Suspended(agentId=AID), {"agentId"}, id="Suspended"),
    pytest.param(Resumed(agentId=AID, autoWake=False), {"agentId", "autoWake"}, id="Resumed"),
    pytest.param(Terminated(agentId=AID), {"agentId", "remove"}, id="Terminated"),
    pytest.param(TaskCancelled(agentId=AID, taskId=tid(1)), {"agentId", "taskId"}, id="TaskCancelled"),
    pytest.param(TaskCancelled(agentId=AID, taskId=tid(1), reason="stale"), {"agentId", "taskId", "reason"},
                 id="TaskCancelled-reason"),
    pytest.param(TaskQueued(taskId=tid(1), input={"q": [1, None, "x"]}), {"taskId", "input"}, id="TaskQueued"),
    pytest.param(TaskQueued(taskId=tid(1), input="q", responseSchema={"type": "object"}, strict=True,
                            outputPath="w/out"), {"taskId", "input", "responseSchema", "strict", "outputPath"},
                 id="TaskQueued-options"),
    pytest.param(TaskCompleted(agentId=AID, taskId=tid(1), result={"a": 1}), {"agentId", "taskId", "result"},
                 id="TaskCompleted"),
    pytest.param(TaskFailed(agentId=AID, taskId=tid(1), error="no"), {"agentId", "taskId", "error"}, id="TaskFailed"),
    pytest.param(Triggered(triggerId=tid(2)), {"triggerId"}, id="Triggered"),
    # format 2: the accept events of requests and triggers name their agent
    pytest.param(TaskQueued(taskId=tid(1), agentId=AID, input="q"), {"taskId", "agentId", "input"},
                 id="TaskQueued-agent"),
    pytest.param(Triggered(triggerId=tid(2), agentId=AID), {"triggerId", "agentId"}, id="Triggered-agent"),
    pytest.param(Messaged(agentId=AID, message="hi"), {"agentId", "message"}, id="Messaged-message"),
    pytest.param(Messaged(agentId=AID, message={"alert": [1, 2]}), {"agentId", "message"}, id="Messaged-json"),
    pytest.param(E.Imported(agentId=AID, fromAgentId="Old", bundle="ab" * 32), {"agentId", "fromAgentId", "bundle"},
                 id="Imported"),
    pytest.param(Messaged(agentId=AID, messages=["a", "b"], sender="agent:B"), {"agentId", "messages", "from"},
                 id="Messaged-messages-from"),
    pytest.param(Messaged(agentId=AID, messages=["a"]), {"agentId", "messages"}, id="Messaged-messages"),
    pytest.param(RunFailed(error=ERROR), {"error"}, id="RunFailed"),
    pytest.param(RunCompleted(taskId=tid(1), task={"q": 1}, messages=2, triggers=[tid(2)], start=5, base="cd" * 32,
                              llm=[{"request": DIGEST, "reply": {"content": "done"}}], tools=["42"],
                              outbox=[["B", "hello"]]),
                 {"taskId", "task", "messages", "triggers", "start", "base", "llm", "tools", "outbox"},
                 id="RunCompleted"),
    pytest.param(RunCompleted(), {"taskId", "task", "messages", "triggers", "start", "base", "llm", "tools", "outbox"},
                 id="RunCompleted-defaults"),
    # sessions: their fields are recorded only when a session is involved
    pytest.param(Forked(sourceId="S", agentId=AID, source="ab" * 32, sessionId=SID),
                 {"sourceId", "agentId", "source", "config", "includeTimeline", "at", "sessionId"}, id="Forked-session"),
    pytest.param(TaskQueued(taskId=tid(1), input="x", sessionId=SID), {"taskId", "input", "sessionId"},
                 id="TaskQueued-session"),
    pytest.param(TaskQueued(taskId=tid(1), sessionId=SID, minted=True, title="t"),
                 {"taskId", "input", "sessionId", "minted", "title"}, id="TaskQueued-new-session"),
    pytest.param(Messaged(agentId=AID, message="hi", sessionId=SID, messageId=tid(3)),
                 {"agentId", "message", "sessionId", "messageId"}, id="Messaged-session"),
    pytest.param(RunFailed(error=ERROR, sessionId=SID, dropped=[tid(3)]), {"error", "sessionId", "dropped"},
                 id="RunFailed-session"),
    pytest.param(RunCompleted(sessionId=SID, pending=2),
                 {"taskId", "task", "messages", "triggers", "start", "base", "llm", "tools", "outbox", "sessionId",
                  "pending"}, id="RunCompleted-session"),
    pytest.param(TaskCancelled(agentId=AID, taskId=tid(1), sessionId=SID), {"agentId", "taskId", "sessionId"},
                 id="TaskCancelled-chat"),
    pytest.param(ChatQueued(agentId=AID, sessionId=SID, messageId=tid(3), message={"any": ["json"]}, minted=True),
                 {"agentId", "sessionId", "messageId", "message", "minted"}, id="ChatQueued"),
    pytest.param(SessionRenamed(agentId=AID, sessionId=SID, title="t"), {"agentId", "sessionId", "title"},
                 id="SessionRenamed"),
    pytest.param(SessionDeleted(agentId=AID, sessionId=SID), {"agentId", "sessionId"}, id="SessionDeleted"),
    pytest.param(SessionCompacted(agentId=AID, sessionId=SID, summary="s", keepTurns=1, before="ab" * 32, beforeSeq=4),
                 {"agentId", "sessionId", "summary", "keepTurns", "before", "beforeSeq"}, id="SessionCompacted"),
    pytest.param(SessionForked(agentId=AID, sessionId=SID, newSessionId=tid(4), source="ab" * 32, at=3, title="t"),
                 {"agentId", "sessionId", "newSessionId", "source", "at", "title"}, id="SessionForked"),
]


@pytest.mark.parametrize("event, keys", ROUND_TRIP)
def test_encode_decode_round_trip(event: E.Event, keys: set[str]) -> None:
    op, input = E.encode(event)
    assert op == type(event).op
    assert set(input) == keys  # UNSET fields absent, `sender` recorded as `from`
    assert E.decode(op, input) == event
    assert type(E.decode(op, input)) is type(event)
    assert E.encode(E.decode(op, input)) == (op, input)


@pytest.mark.parametrize("event, keys", ROUND_TRIP)
def test_round_trip_through_the_store(event: E.Event, keys: set[str]) -> None:
    """An input stored as a commit records it (canonical codec, digests as bytes) decodes to the same event."""
    tx = new_tx()
    op, input = E.encode(event)
    stored = tx.materialize(tx.load_root(tx.put_root(input)))
    assert stored == input
    assert E.decode(op, stored) == event


def test_round_trip_table_covers_every_event_type() -> None:
    assert {type(p.values[0]) for p in ROUND_TRIP} == set(E.EVENT_TYPES)


def test_ops_are_distinct_except_the_two_run_outcomes() -> None:
    ops = [t.op for t in E.EVENT_TYPES]
    assert len(E.EVENT_TYPES) == 20
    assert sorted(t.__name__ for t in E.EVENT_TYPES if t.op == "agent:run") == ["RunCompleted", "RunFailed"]
    assert len(set(ops)) == len(ops) - 1


def test_encode_keeps_digests_as_bytes() -> None:
    _, input = E.encode(RunCompleted(llm=[{"request": DIGEST, "reply": {}}]))
    assert input["llm"][0]["request"] == DIGEST and type(input["llm"][0]["request"]) is bytes


def test_messaged_texts() -> None:
    assert Messaged(agentId=AID, message="x").texts() == ["x"]
    assert Messaged(agentId=AID, messages=["a", "b"], sender="s").texts() == ["a", "b"]


# -- (d) malformed commits ------------------------------------------------------------------

@pytest.mark.parametrize("op", ["agent:info", "agent:list", "agent:runs", "job:finish", "", "AGENT:CREATE"])
def test_decode_unknown_op(op: str) -> None:
    with pytest.raises(E.UnknownEvent, match="no agent event"):
        E.decode(op, {"agentId": AID})


@pytest.mark.parametrize("op, input", [
    pytest.param("agent:create", {}, id="create-no-agentId"),
    pytest.param("agent:create", "A", id="create-not-a-map"),
    pytest.param("agent:create", None, id="create-null"),
    pytest.param("agent:create", {"agentId": "A", "overwrite": "yes"}, id="create-overwrite-str"),
    pytest.param("agent:fork", {"agentId": "A", "source": "00"}, id="fork-no-sourceId"),
    pytest.param("agent:fork", {"agentId": "A", "sourceId": "S", "source": 1}, id="fork-source-int"),
    pytest.param("agent:update", {"config": {}}, id="update-no-agentId"),
    pytest.param("agent:suspend", {"agentId": 5}, id="suspend-agentId-int"),
    pytest.param("agent:resume", {"agentId": "A", "autoWake": "true"}, id="resume-autoWake-str"),
    pytest.param("agent:delete", [], id="delete-list"),
    pytest.param("agent:cancelTask", {"agentId": "A"}, id="cancelTask-no-taskId"),
    pytest.param("agent:request", {"input": 1}, id="request-no-taskId"),
    pytest.param("agent:trigger", {"triggerId": None}, id="trigger-null-id"),
    pytest.param("agent:message", {"agentId": "A", "message": 3, "messages": [3]}, id="message-and-messages"),
    pytest.param("agent:completeTask", {"agentId": "A"}, id="completeTask-no-taskId"),
    pytest.param("agent:failTask", {"agentId": "A", "taskId": tid(1)}, id="failTask-no-error"),
    pytest.param("agent:request", {"taskId": tid(1), "strict": "yes"}, id="request-strict-str"),
    pytest.param("agent:message", {"agentId": "A", "messages": "hi"}, id="messages-str"),
    pytest.param("agent:message", {"agentId": "A", "messages": ["a"], "from": 1}, id="from-int"),
    pytest.param("agent:run", {"error": "boom"}, id="run-error-str"),
    pytest.param("agent:run", "done", id="run-not-a-map"),
    pytest.param("agent:run", {"messages": "1"}, id="run-messages-str"),
    pytest.param("agent:run", {"triggers": [1]}, id="run-trigger-int"),
    pytest.param("agent:run", {"llm": {}}, id="run-llm-map"),
    pytest.param("agent:run", {"outbox": [[1, 2]]}, id="run-outbox-ints"),
    pytest.param("agent:message", {"agentId": "A"}, id="message-without-text"),
    pytest.param("agent:message", {"agentId": "A", "message": "x", "sessionId": SID}, id="message-session-no-id"),
    pytest.param("agent:message", {"agentId": "A", "messages": ["x"], "sessionId": SID, "messageId": "m"},
                 id="messages-session"),
    pytest.param("agent:chat", {"agentId": "A", "messageId": "m"}, id="chat-no-session"),
    pytest.param("agent:compactSession", {"agentId": "A", "sessionId": SID}, id="compact-no-summary"),
    pytest.param("agent:forkSession", {"agentId": "A", "sessionId": SID, "source": "00"}, id="forkSession-no-new-id"),
])
def test_decode_malformed(op: str, input: Any) -> None:
    with pytest.raises(E.UnknownEvent, match=op.split(":")[1]):
        E.decode(op, input)


def test_run_outcome_is_told_by_the_error_key() -> None:
    assert type(E.decode("agent:run", {"error": ERROR})) is RunFailed
    assert type(E.decode("agent:run", {})) is RunCompleted
    assert type(E.decode("agent:run", {"taskId": tid(1), "llm": []})) is RunCompleted


# -- (b) apply, table-driven ------------------------------------------------------------------

class After(msgspec.Struct, frozen=True, kw_only=True):
    """The record after an event, summarized: status and sizes; error as recorded."""

    status: str
    tasks: int = 0
    inbox: int = 0
    triggers: int = 0
    timeline: int = 0
    history: int = 0
    error: Any = None


def summary(rec: dict[str, Any]) -> After:
    return After(status=rec["status"], tasks=map_len(rec["tasks"]), inbox=seq_len(rec["inbox"]),
                 triggers=len(rec["triggers"]), timeline=seq_len(rec["timeline"]),
                 history=seq_len(rec["state"]["history"]), error=rec["error"])


REPLY = [{"request": DIGEST, "reply": {"content": "done"}}]
HIST = {"history": [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"}]}
S, R, P, T = A.SLEEPING, A.RUNNING, A.SUSPENDED, A.TERMINATED


def run(**kw: Any) -> RunCompleted:
    return RunCompleted(llm=REPLY, start=TS - 5, **kw)


#: (id, record before, event, source for ctx.load (Forked), record after)
APPLY = [
    ("create-first", missing, Created(agentId=AID), None, After(status=S)),
    ("create-with-history", missing, Created(agentId=AID, state=HIST), None, After(status=S, history=2)),
    ("create-overwrite-running", running, Created(agentId=AID, overwrite=True), None, After(status=S)),
    ("create-overwrite-terminated", terminated, Created(agentId=AID, overwrite=True), None, After(status=S)),
    ("fork", missing, Forked(sourceId="S", agentId=AID, source="00"), suspended_with_work, After(status=S)),
    ("fork-failed-source", missing, Forked(sourceId="S", agentId=AID, source="00", includeTimeline=True), failed,
     After(status=S)),
    ("update-sleeping", sleeping, Updated(agentId=AID, config={"systemPrompt": "x"}), None, After(status=S)),
    ("update-history", sleeping, Updated(agentId=AID, state=HIST), None, After(status=S, history=2)),
    ("update-running", running, Updated(agentId=AID, state=1), None, After(status=R, tasks=1)),
    ("update-failed-keeps-error", failed, Updated(agentId=AID, state=1), None, After(status=P, tasks=1, error=ERROR)),
    ("update-asleep-does-not-wake", asleep_with_work, Updated(agentId=AID), None, After(status=S, tasks=1)),
    ("suspend-sleeping", sleeping, Suspended(agentId=AID), None, After(status=P)),
    ("suspend-running", running, Suspended(agentId=AID), None, After(status=P, tasks=1)),
    ("suspend-asleep", asleep_with_work, Suspended(agentId=AID), None, After(status=P, tasks=1)),
    ("resume-empty", suspended, Resumed(agentId=AID), None, After(status=S)),
    ("resume-wakes", suspended_with_work, Resumed(agentId=AID), None,
     After(status=R, tasks=1, inbox=1, triggers=1)),
    ("resume-no-autoWake", suspended_with_work, Resumed(agentId=AID, autoWake=False), None,
     After(status=S, tasks=1, inbox=1, triggers=1)),
    ("resume-clears-error", failed, Resumed(agentId=AID), None, After(status=R, tasks=1)),
    ("resume-asleep", asleep_with_work, Resumed(agentId=AID), None, After(status=R, tasks=1)),
    ("terminate-running", running, Terminated(agentId=AID), None, After(status=T)),
    ("terminate-keeps-inbox", suspended_with_work, Terminated(agentId=AID), None, After(status=T, inbox=1)),
    ("terminate-failed-keeps-error", failed, Terminated(agentId=AID), None, After(status=T, error=ERROR)),
    ("terminate-again", terminated, Terminated(agentId=AID), None, After(status=T)),
    ("cancel-last-task", running, TaskCancelled(agentId=AID, taskId=tid(1)), None, After(status=S)),
    ("cancel-last-trigger", running_trigger, TaskCancelled(agentId=AID, taskId=tid(2)), None, After(status=S)),
    ("cancel-task-suspended", suspended_with_work, TaskCancelled(agentId=AID, taskId=tid(1)), None,
     After(status=P, inbox=1, triggers=1)),
    ("cancel-trigger-suspended", suspended_with_work, TaskCancelled(agentId=AID, taskId=tid(2)), None,
     After(status=P, tasks=1, inbox=1)),
    ("cancel-asleep", asleep_with_work, TaskCancelled(agentId=AID, taskId=tid(1)), None, After(status=S)),
    ("request-wakes", sleeping, TaskQueued(taskId=tid(5), input="go"), None, After(status=R, tasks=1)),
    ("request-running", running, TaskQueued(taskId=tid(5), input="go"), None, After(status=R, tasks=2)),
    ("request-suspended", suspended, TaskQueued(taskId=tid(5)), None, After(status=P, tasks=1)),
    ("request-failed", failed, TaskQueued(taskId=tid(5)), None, After(status=P, tasks=2, error=ERROR)),
    ("request-asleep-wakes", asleep_with_work, TaskQueued(taskId=tid(5)), None, After(status=R, tasks=2)),
    ("complete-last-task", running, TaskCompleted(agentId=AID, taskId=tid(1), result=1), None, After(status=S)),
    ("complete-task-suspended", suspended_with_work, TaskCompleted(agentId=AID, taskId=tid(1)), None,
     After(status=P, inbox=1, triggers=1)),
    ("fail-last-task", running, TaskFailed(agentId=AID, taskId=tid(1), error="x"), None, After(status=S)),
    ("fail-task-keeps-other-work", suspended_with_work, TaskFailed(agentId=AID, taskId=tid(1), error="x"), None,
     After(status=P, inbox=1, triggers=1)),
    ("trigger-wakes", sleeping, Triggered(triggerId=tid(5)), None, After(status=R, triggers=1)),
    ("trigger-suspended", suspended, Triggered(triggerId=tid(5)), None, After(status=P, triggers=1)),
    ("message-wakes", sleeping, Messaged(agentId=AID, message="hi"), None, After(status=R, inbox=1)),
    ("messages-from", sleeping, Messaged(agentId=AID, messages=["a", "b"], sender="agent:B"), None,
     After(status=R, inbox=2)),
    ("message-suspended", suspended, Messaged(agentId=AID, message="hi"), None, After(status=P, inbox=1)),
    ("imported-keeps-state", suspended, E.Imported(agentId=AID, fromAgentId="Old"), None, After(status=P)),
    ("run-failed", running, RunFailed(error=ERROR), None, After(status=P, tasks=1, error=ERROR)),
    ("run-failed-keeps-all-work", suspended_with_work, RunFailed(error=ERROR), None,
     After(status=P, tasks=1, inbox=1, triggers=1, error=ERROR)),
    ("run-failed-terminated", terminated, RunFailed(error=ERROR), None, After(status=T, error=ERROR)),
    ("run-task", running, run(taskId=tid(1), task={"q": 1}), None, After(status=S, timeline=1, history=2)),
    ("run-trigger", running_trigger, run(triggers=[tid(2)]), None, After(status=S, timeline=1, history=2)),
    ("run-message", running_message, run(messages=1), None, After(status=S, timeline=1, history=2)),
    ("run-all-work-while-suspended", suspended_with_work, run(taskId=tid(1), task="do it", messages=1,
                                                               triggers=[tid(2)]), None,
     After(status=P, timeline=1, history=3)),
    ("run-clears-error", failed, run(taskId=tid(1), task="do it"), None, After(status=P, timeline=1, history=2)),
    ("run-message-to-self", running, run(taskId=tid(1), task={"q": 1}, outbox=[[AID, "note"], ["B", "x"]]), None,
     After(status=R, inbox=1, timeline=1, history=2)),
    # sessions (their contents: tests/domain/test_sessions.py)
    ("chat-mints-and-wakes", sleeping, ChatQueued(agentId=AID, sessionId=tid(7), messageId=tid(5), message="hi",
                                                  minted=True), None, After(status=R)),
    ("chat-suspended", session_suspended, ChatQueued(agentId=AID, sessionId=SID, messageId=tid(5)), None,
     After(status=P, timeline=1)),
    ("session-message-wakes", in_session, Messaged(agentId=AID, message="x", sessionId=SID, messageId=tid(5)), None,
     After(status=R, timeline=1)),
    ("request-session", in_session, TaskQueued(taskId=tid(5), input="go", sessionId=SID), None,
     After(status=R, tasks=1, timeline=1)),
    ("request-new-session", sleeping, TaskQueued(taskId=tid(5), sessionId=tid(6), minted=True, title="t"), None,
     After(status=R, tasks=1)),
    ("fork-one-session", missing, Forked(sourceId="S", agentId=AID, source="00", sessionId=SID), chatting,
     After(status=S)),
    ("rename-session", in_session, SessionRenamed(agentId=AID, sessionId=SID, title="x"), None,
     After(status=S, timeline=1)),
    ("delete-session-sleeps", chatting, SessionDeleted(agentId=AID, sessionId=SID), None, After(status=S, timeline=1)),
    ("compact-session", in_session, SessionCompacted(agentId=AID, sessionId=SID, summary="s", before="ab" * 32,
                                                     beforeSeq=3), None, After(status=S, timeline=1)),
    ("fork-session", in_session, SessionForked(agentId=AID, sessionId=SID, newSessionId=tid(7), source="00"),
     in_session, After(status=S, timeline=1)),
    ("run-failed-session-drops-chats", chatting, RunFailed(error=ERROR, sessionId=SID, dropped=[tid(102)]), None,
     After(status=P, timeline=1, error=ERROR)),
    ("run-failed-session-keeps-messages", session_suspended, RunFailed(error=ERROR, sessionId=SID,
                                                                       dropped=[tid(102)]), None,
     After(status=P, timeline=1, error=ERROR)),
    ("cancel-chat-sleeps", chatting, TaskCancelled(agentId=AID, taskId=tid(102), sessionId=SID), None,
     After(status=S, timeline=1)),
    ("run-session-turn", chatting, run(sessionId=SID, pending=1), None, After(status=S, timeline=2)),
    ("terminate-drops-session-pending", chatting, Terminated(agentId=AID), None, After(status=T, timeline=1)),
]


@pytest.mark.parametrize("build, event, source, after", [pytest.param(*r[1:], id=r[0]) for r in APPLY])
def test_apply(build, event, source, after) -> None:
    tx = new_tx()
    rec = build(tx)
    before = None if rec is None else tx.materialize(rec)
    src = source(tx) if source is not None else None
    out = E.apply(tx, rec, event, ctx(load=(lambda h: src) if src is not None else None))
    assert summary(out) == after
    assert out["updated"] == TS
    if rec is None or isinstance(event, Created):
        assert out["created"] == TS
    else:
        assert out["created"] == rec["created"]
        assert tx.materialize(rec) == before  # apply does not change the record it was given
    # the settle rule: RUNNING means work; SLEEPING with work only right after resume {autoWake: false}
    assert out["status"] != R or A.has_work(out)
    if out["status"] == S and A.has_work(out):
        assert (rec is not None and rec["status"] == S and A.has_work(rec)
                or isinstance(event, Resumed) and not event.autoWake)
    reopen(tx, out)  # the result can be stored


def test_apply_table_covers_every_event_type() -> None:
    assert {type(r[2]) for r in APPLY} == set(E.EVENT_TYPES)


def test_created_and_forked_records() -> None:
    tx = new_tx()
    rec = E.apply(tx, None, Created(agentId=AID, config={"systemPrompt": "x"}, state=7), ctx())
    assert rec["state"] == {"value": 7, "config": {"systemPrompt": "x"}, "history": []}
    src = E.apply(tx, running_trigger(tx), run(triggers=[tid(2)]), ctx(ts=TS - 1))
    seen = []

    def load(h: str) -> dict[str, Any]:
        seen.append(h)
        return src
    fork = E.apply(tx, None, Forked(sourceId="S", agentId="F", source="ee" * 32, config={"systemPrompt": "y"},
                                    includeTimeline=True), ctx(load=load))
    assert seen == ["ee" * 32]
    assert fork["state"]["config"] == {"systemPrompt": "y"} and fork["state"]["note"] == "hi"
    assert seq_len(fork["timeline"]) == 1 and seq_len(fork["state"]["history"]) == 2
    assert fork["error"] is None and fork["pending"] == {}


def test_updated_merges_config_and_state() -> None:
    tx = new_tx()
    rec = E.apply(tx, None, Created(agentId=AID, config={"systemPrompt": "a", "maxIterations": 3},
                                    state={"k": 1, "history": [{"role": "user", "content": "x"}]}), ctx())
    out = E.apply(tx, rec, Updated(agentId=AID, config={"systemPrompt": "b"}, state={"j": 2}), ctx(ts=TS + 1))
    assert out["state"]["config"] == {"systemPrompt": "b", "maxIterations": 3}
    assert (out["state"]["k"], out["state"]["j"], len(out["state"]["history"])) == (1, 2, 1)


def test_queued_task_and_messages_record_their_callers() -> None:
    tx = new_tx()
    rec = E.apply(tx, sleeping(tx), TaskQueued(taskId=tid(5), input={"q": 2}), ctx(caller="carol"))
    assert rec["tasks"][tid(5)] == {"input": {"q": 2}, "caller": "carol", "ts": TS}
    rec = E.apply(tx, rec, Messaged(agentId=AID, message="a"), ctx(caller="dave"))
    rec = E.apply(tx, rec, Messaged(agentId=AID, messages=["b"], sender="agent:B"), ctx(caller="dave"))
    assert [(m["message"], m["caller"]) for m in seq_iter(tx, rec["inbox"])] == [("a", "dave"), ("b", "agent:B")]


def test_queued_task_keeps_its_options() -> None:
    tx = new_tx()
    ev = TaskQueued(taskId=tid(5), input="q", responseSchema={"type": "integer"}, strict=True, outputPath="w/a")
    rec = E.apply(tx, sleeping(tx), ev, ctx(caller="carol"))
    assert rec["tasks"][tid(5)] == {"input": "q", "caller": "carol", "ts": TS, "responseSchema": {"type": "integer"},
                                    "strict": True, "outputPath": "w/a"}
    assert TaskQueued(taskId=tid(5), input="q").options() == {}


def test_a_replayed_run_uses_the_tasks_schema() -> None:
    """The work a recorded run rebuilds for a replay carries its task's responseSchema and strict."""
    tx = new_tx()
    rec = E.apply(tx, sleeping(tx), TaskQueued(taskId=tid(5), input="q", responseSchema={"type": "integer"},
                                               strict=True), ctx())
    work = E.run_work(tx, reopen(tx, rec), RunCompleted(taskId=tid(5), task="q"))
    assert work.task == {"input": "q", "responseSchema": {"type": "integer"}, "strict": True}
    out = E.apply(tx, rec, RunCompleted(taskId=tid(5), task="q", base=None, start=TS - 1,
                                        llm=[{"request": DIGEST, "reply": {"content": "seven"}}]), ctx())
    entry = next(seq_iter(tx, out["timeline"]))
    assert entry["taskResults"] == {tid(5): {"status": "FAILED", "output": None}}  # strict: "seven" is no integer


def test_cancelled_id_that_is_task_and_trigger_drops_both() -> None:
    tx = new_tx()
    rec = A.add_trigger(running(tx), tid(1), TS - 1)
    out = E.apply(tx, rec, TaskCancelled(agentId=AID, taskId=tid(1)), ctx())
    assert summary(out) == After(status=S)


@pytest.mark.parametrize("build, event", [
    pytest.param(sleeping, TaskCancelled(agentId=AID, taskId=tid(9)), id="cancel-unknown"),
    pytest.param(running, TaskCancelled(agentId=AID, taskId=tid(9)), id="cancel-unknown-running"),
    pytest.param(sleeping, Messaged(agentId=AID, messages=[]), id="no-messages"),
    pytest.param(in_session, TaskCancelled(agentId=AID, taskId=tid(9), sessionId=SID), id="cancel-chat-not-waiting"),
    pytest.param(in_session, SessionCompacted(agentId=AID, sessionId=SID, summary="s", keepTurns=1),
                 id="compact-nothing-older"),
])
def test_no_op_events_leave_the_record_and_its_time(build, event) -> None:
    """Events that change nothing (only a replay applies them: decide returns None instead)
    leave the record as it was, ``updated`` included."""
    tx = new_tx()
    rec = build(tx)
    out = E.apply(tx, rec, event, ctx())
    assert tx.materialize(out) == tx.materialize(rec) and out["updated"] != TS


# -- (c) a recorded run re-derives to the same record -----------------------------------------

def _io(c) -> str:
    return {"covia_read": "42", "covia_list": "[]", "covia_write": "written", "agent_message": "sent"}[c.name]


SCRIPTS = {
    "read-then-answer": [say(None, call("covia_read", path="w/x")), say("the answer is 42")],
    "text-and-calls-then-complete": [say("let me look", call("covia_list", "c1", path="w/"),
                                         call("covia_write", "c2", path="w/y", value=[1])),
                                     say(None, call("complete_task", output={"n": 42}))],
    "bad-call-then-fail": [say(None, call("nope"), call("covia_read", "c2", invalid="{oops")),
                           say(None, call("fail_task", error="cannot"))],
    "message-self-and-other": [say(None, call("agent_message", "c1", agentId=AID, message="remember"),
                                   call("agent_message", "c2", agentId="B", message="hi B")),
                               say("done")],
    "final-at-once": [say("nothing to do")],
}


def _base_and_work(tx, config: dict[str, Any] | None = None):
    rec = A.new_agent(config or {"systemPrompt": "sys", "historyWindow": 3}, HIST, TS - 100)
    rec = A.add_message(tx, rec, "fyi", "bob", TS - 90)
    rec = A.settle(A.enqueue_task(tx, rec, tid(1), {"q": "why"}, CALLER, TS - 80))
    rec = A.add_trigger(rec, tid(2), TS - 70)
    rec = reopen(tx, rec)
    return rec, A.pick_work(tx, rec)


def _event(work: A.Work, out, base: str | None = None) -> RunCompleted:
    return RunCompleted(taskId=work.task_id, task=work.task["input"] if work.task else None,
                        messages=len(work.messages), triggers=work.triggers, start=TS - 50, base=base,
                        llm=out.llm, tools=out.tools, outbox=[list(m) for m in out.outbox])


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_recorded_run_replays_to_the_live_record(script: str) -> None:
    tx = new_tx()
    base, work = _base_and_work(tx)
    out = drive(Cycle(tx, base, work), SCRIPTS[script], _io)
    assert len(out.llm) == len(SCRIPTS[script])
    event = _event(work, out)
    # the event as recorded: through encode/decode
    event = E.decode(*E.encode(event))
    live = E.apply(tx, base, event, ctx(), outcome=out)
    replayed = E.apply(tx, base, event, ctx())
    assert tx.materialize(live) == tx.materialize(replayed)
    entry = tx.materialize(live["timeline"])[-1]
    assert entry["result"] == out.result and entry["taskResults"] == {
        tid(1): {"status": out.task_status, "output": out.task_output}}
    assert entry["tasks"] == [{"q": "why"}] and [m["message"] for m in entry["messages"]] == ["fyi"]
    assert (entry["start"], entry["end"], entry["op"]) == (TS - 50, TS, A.DEFAULT_OPERATION)
    assert seq_len(live["state"]["history"]) == 2 + len(out.new_history)
    self_msgs = [t for a, t in out.outbox if a == AID]
    assert [m["message"] for m in seq_iter(tx, live["inbox"])] == self_msgs
    assert all(m["caller"] == f"agent:{AID}" for m in seq_iter(tx, live["inbox"]))
    assert live["status"] == (R if self_msgs else S) and live["triggers"] == [] and map_len(live["tasks"]) == 0


def test_replay_merges_into_a_head_that_moved_since_the_base() -> None:
    """A run's base is loaded by commit id; work that arrived meanwhile stays on the head."""
    tx = new_tx()
    base, work = _base_and_work(tx)
    out = drive(Cycle(tx, base, work), SCRIPTS["read-then-answer"], _io)
    head = A.settle(A.add_message(tx, base, "later", "carol", TS - 10))
    head = reopen(tx, A.settle(A.enqueue_task(tx, head, tid(3), "next", CALLER, TS - 9)))
    event = _event(work, out, base="ba" * 32)
    load = {"ba" * 32: base}.__getitem__
    live = E.apply(tx, head, event, ctx(load=load), outcome=out)
    replayed = E.apply(tx, head, event, ctx(load=load))
    assert tx.materialize(live) == tx.materialize(replayed)
    assert [m["message"] for m in seq_iter(tx, replayed["inbox"])] == ["later"]
    assert list(replayed["tasks"]) == [tid(3)] and replayed["status"] == R


def test_replay_of_a_run_whose_task_was_cancelled_meanwhile() -> None:
    tx = new_tx()
    base, work = _base_and_work(tx)
    out = drive(Cycle(tx, base, work), SCRIPTS["final-at-once"], _io)
    head = E.apply(tx, base, TaskCancelled(agentId=AID, taskId=tid(1)), ctx(ts=TS - 1))
    event = _event(work, out, base="ba" * 32)
    rec = E.apply(tx, head, event, ctx(load=lambda h: base))
    entry = tx.materialize(rec["timeline"])[-1]
    assert entry["taskResults"] == {tid(1): {"status": "CANCELLED", "output": None}}
    assert rec["status"] == S and not A.has_work(rec)


@pytest.mark.parametrize("script", ["read-then-answer", "text-and-calls-then-complete", "message-self-and-other"])
def test_replay_with_too_few_recorded_replies(script: str) -> None:
    tx = new_tx()
    base, work = _base_and_work(tx)
    out = drive(Cycle(tx, base, work), SCRIPTS[script], _io)
    short = msgspec.structs.replace(_event(work, out), llm=out.llm[:-1])
    with pytest.raises(ReplayError, match="LLM call 2"):
        E.apply(tx, base, short, ctx())
    no_tools = msgspec.structs.replace(_event(work, out), tools=[])
    with pytest.raises(ReplayError, match="no recorded result"):
        E.apply(tx, base, no_tools, ctx())


def test_replay_that_hits_the_tool_loop_limit() -> None:
    tx = new_tx()
    base, work = _base_and_work(tx, {"maxIterations": 1})
    event = RunCompleted(taskId=tid(1), task={"q": "why"}, messages=1, triggers=[tid(2)], llm=[
        {"request": DIGEST, "reply": {"toolCalls": [{"id": "c", "name": "covia_read", "arguments": {"path": "w/"}}]}},
        {"request": DIGEST, "reply": {"content": "late"}}], tools=["1"])
    with pytest.raises(CycleError) as e:
        E.apply(tx, base, event, ctx())
    assert e.value.code == "tool_loop_limit"


def test_run_work_rebuilds_the_work_from_the_base() -> None:
    tx = new_tx()
    base, work = _base_and_work(tx)
    event = _event(work, drive(Cycle(tx, base, work), SCRIPTS["final-at-once"]))
    assert E.run_work(tx, base, event) == A.Work(tid(1), {"input": {"q": "why"}}, work.messages, [tid(2)])


# -- (e) every event type has exactly one apply case ------------------------------------------

def test_every_event_type_has_exactly_one_apply_case() -> None:
    tree = ast.parse(inspect.getsource(E))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "apply")
    matches = [n for n in ast.walk(fn) if isinstance(n, ast.Match)]
    assert len(matches) == 1
    assert isinstance(matches[0].subject, ast.Name) and matches[0].subject.id == "event"
    names = []
    for case in matches[0].cases:
        assert isinstance(case.pattern, ast.MatchClass), ast.dump(case.pattern)  # no wildcard, no or-pattern
        assert isinstance(case.pattern.cls, ast.Name)
        assert case.guard is None
        names.append(case.pattern.cls.id)
    assert sorted(names) == sorted(t.__name__ for t in E.EVENT_TYPES)
    assert len(names) == len(set(names))
