"""Table tests of the commands in :mod:`ops.domain.decide`.

Each row is ``(starting record, request values) -> expected``, where expected
is the event the command decides (compared field by field, as a frozen
Struct), ``None`` for a no-op, or an :class:`Err` (the ``OpError`` code, and
its ``path`` where the command sets one). Starting records come from
``tests/domain/helpers.py``: built with the transitions, stored and reopened.
"""

from __future__ import annotations

from typing import Any, Callable

import msgspec
import pytest

from ops.domain import agent as A
from ops.domain import decide as D
from ops.domain.errors import OpError
from ops.domain.events import (Created, Forked, Messaged, Resumed, Suspended, TaskCancelled, TaskCompleted, TaskFailed,
                               TaskQueued, Terminated, Triggered, Updated)
from tests.domain.helpers import (AID, BUILDERS, SID, asleep_with_work, big, busy, failed, in_session, missing, new_tx,
                                  running, running_message, running_trigger, sleeping, suspended, suspended_with_work,
                                  terminated, terminated_with_inbox, tid)


class Err(msgspec.Struct, frozen=True):
    """An expected ``OpError``: its code and path (None: the command sets no path)."""

    code: str
    path: str | None = None
    hint: bool = False  # whether the error must carry a hint


NOT_FOUND = Err("not_found", "$.input.agentId", hint=True)
TERMINATED_ERR = Err("illegal_state", None)
LIVE = [sleeping, asleep_with_work, running, running_trigger, running_message, suspended, suspended_with_work, failed]
EVERY = [missing, *LIVE, terminated, terminated_with_inbox]


def check(decision: Callable[[], Any], expected: Any) -> None:
    """Run ``decision`` and compare with ``expected`` (an event, None or an :class:`Err`)."""
    if isinstance(expected, Err):
        with pytest.raises(OpError) as e:
            decision()
        assert (e.value.code, e.value.path) == (expected.code, expected.path), e.value.to_dict()
        assert e.value.message  # says what was expected, got and where
        if expected.hint:
            assert e.value.hint
        return
    got = decision()
    assert got == expected
    if expected is not None:
        assert type(got) is type(expected)


def rows(*table: tuple) -> list:
    """pytest params with ids ``<builder>-<label>``."""
    return [pytest.param(*row[1:], id="-".join(filter(None, (row[1].__name__, row[0])))) for row in table]


# -- create ---------------------------------------------------------------------------

CONFIG = {"systemPrompt": "be brief"}

CREATE = rows(
    *[("keep", b, False, None if b is not missing else Created(agentId=AID, config=CONFIG, state=1)) for b in EVERY],
    *[("overwrite", b, True, Created(agentId=AID, config=CONFIG, state=1, overwrite=True)) for b in EVERY],
)


@pytest.mark.parametrize("build, overwrite, expected", CREATE)
def test_create(build, overwrite, expected) -> None:
    tx = new_tx()
    check(lambda: D.create(build(tx), AID, CONFIG, 1, overwrite), expected)


# -- fork -----------------------------------------------------------------------------

def forked(config: Any = None, include: bool = False, at: Any = None) -> Forked:
    return Forked(sourceId="S", agentId=AID, source="ab" * 32, config=config, includeTimeline=include, at=at)


CONFLICT = Err("conflict", "$.input.agentId", hint=True)
BAD_CONFIG = Err("invalid_config", "$.input.config")

FORK = rows(
    ("new", missing, None, False, None, forked()),
    ("new-timeline-at", missing, None, True, 3, forked(include=True, at=3)),
    ("new-empty-config-not-checked", missing, {}, False, None, forked(config={})),
    ("new-valid-config", missing, {"maxIterations": 3, "tools": ["complete_task"]}, False, None,
     forked(config={"maxIterations": 3, "tools": ["complete_task"]})),
    ("maxIterations-0", missing, {"maxIterations": 0}, False, None, BAD_CONFIG),
    ("maxIterations-101", missing, {"maxIterations": 101}, False, None, BAD_CONFIG),
    ("historyWindow-negative", missing, {"historyWindow": -1}, False, None, BAD_CONFIG),
    ("unknown-tool", missing, {"tools": ["rm_rf"]}, False, None, BAD_CONFIG),
    ("unknown-provider", missing, {"model": {"provider": "nope"}}, False, None, BAD_CONFIG),
    ("secret-key-env", missing, {"model": {"provider": "openai", "model": "m", "apiKeyEnv": "AWS_SECRET"}},
     False, None, BAD_CONFIG),
    ("systemPrompt-not-str", missing, {"systemPrompt": 5}, False, None, BAD_CONFIG),
    *[("target-exists", b, None, False, None, CONFLICT) for b in EVERY if b is not missing],
    ("conflict-before-bad-config", sleeping, {"maxIterations": 0}, False, None, CONFLICT),
)


@pytest.mark.parametrize("target, config, include, at, expected", FORK)
def test_fork(target, config, include, at, expected) -> None:
    tx = new_tx()
    src = suspended_with_work(tx)
    check(lambda: D.fork(src, target(tx), "S", AID, "ab" * 32, config, include, at), expected)


@pytest.mark.parametrize("target, expected", rows(
    ("overwrite", missing, forked()),
    ("overwrite", terminated, forked()),
    ("overwrite", terminated_with_inbox, forked()),
    *[("overwrite", b, Err("conflict", "$.input.agentId", hint=True)) for b in LIVE],
))
def test_fork_overwrite_replaces_only_a_terminated_agent(target, expected) -> None:
    tx = new_tx()
    src = suspended_with_work(tx)
    check(lambda: D.fork(src, target(tx), "S", AID, "ab" * 32, None, False, None, overwrite=True), expected)


def test_fork_overwrite_says_why() -> None:
    tx = new_tx()
    with pytest.raises(OpError) as e:
        D.fork(sleeping(tx), running(tx), "S", AID, "00", None, False, None, overwrite=True)
    assert "RUNNING" in e.value.message and "TERMINATED" in e.value.message


def test_fork_checks_the_config_merged_over_the_source() -> None:
    tx = new_tx()
    src = A.new_agent({"tools": ["complete_task"], "maxIterations": 5}, None, 0)
    # valid alone, valid merged
    assert D.fork(src, None, "S", AID, "00", {"maxIterations": 7}, False, None).config == {"maxIterations": 7}
    # the source's own invalid config is not re-checked unless overridden
    bad_src = A.new_agent({"maxIterations": 0}, None, 0)
    assert D.fork(bad_src, missing(tx), "S", AID, "00", None, False, None) == Forked(
        sourceId="S", agentId=AID, source="00")
    with pytest.raises(OpError) as e:
        D.fork(bad_src, None, "S", AID, "00", {"systemPrompt": "x"}, False, None)
    assert e.value.code == "invalid_config" and "maxIterations" in e.value.message


# -- update ---------------------------------------------------------------------------

UPDATE = rows(
    ("config", missing, {"systemPrompt": "x"}, None, NOT_FOUND),
    ("config", terminated, {"systemPrompt": "x"}, None, TERMINATED_ERR),
    ("bad-config", terminated, {"maxIterations": 0}, None, TERMINATED_ERR),
    ("state", terminated_with_inbox, None, {"k": 1}, TERMINATED_ERR),
    *[("config", b, {"systemPrompt": "x"}, None, Updated(agentId=AID, config={"systemPrompt": "x"})) for b in LIVE],
    *[("state", b, None, {"k": 1}, Updated(agentId=AID, state={"k": 1})) for b in LIVE],
    *[("bad-config", b, {"maxIterations": 0}, None, BAD_CONFIG) for b in LIVE],
    ("bad-tools", sleeping, {"tools": "complete_task"}, None, BAD_CONFIG),
    ("nothing", sleeping, None, None, Updated(agentId=AID)),
    ("empty-config", running, {}, None, Updated(agentId=AID, config={})),
)


@pytest.mark.parametrize("build, config, state, expected", UPDATE)
def test_update(build, config, state, expected) -> None:
    tx = new_tx()
    check(lambda: D.update(build(tx), AID, config, state), expected)


# -- suspend / resume / delete ------------------------------------------------------------

SUSPEND = rows(
    ("", missing, NOT_FOUND),
    ("", terminated, TERMINATED_ERR),
    ("", terminated_with_inbox, TERMINATED_ERR),
    ("already", suspended, None),
    ("already", suspended_with_work, None),
    ("already", failed, None),
    *[("", b, Suspended(agentId=AID)) for b in (sleeping, asleep_with_work, running, running_trigger,
                                                  running_message)],
)


@pytest.mark.parametrize("build, expected", SUSPEND)
def test_suspend(build, expected) -> None:
    tx = new_tx()
    check(lambda: D.suspend(build(tx), AID), expected)


def _resumed(auto: bool) -> Resumed:
    return Resumed(agentId=AID, autoWake=auto)


RESUME = rows(
    *[(f"autoWake={w}", missing, w, NOT_FOUND) for w in (True, False)],
    *[(f"autoWake={w}", b, w, Err("illegal_state", None, hint=True)) for w in (True, False)
      for b in (terminated, terminated_with_inbox)],
    *[(f"autoWake={w}", b, w, None) for w in (True, False) for b in (running, running_trigger, running_message)],
    *[(f"autoWake={w}", sleeping, w, None) for w in (True, False)],
    ("autoWake=True-wakes", asleep_with_work, True, _resumed(True)),
    ("autoWake=False-nothing-to-do", asleep_with_work, False, None),
    *[(f"autoWake={w}", b, w, _resumed(w)) for w in (True, False)
      for b in (suspended, suspended_with_work, failed)],
)


@pytest.mark.parametrize("build, auto_wake, expected", RESUME)
def test_resume(build, auto_wake, expected) -> None:
    tx = new_tx()
    check(lambda: D.resume(build(tx), AID, auto_wake), expected)


DELETE = rows(
    ("", missing, NOT_FOUND),
    *[("", b, Terminated(agentId=AID)) for b in EVERY if b is not missing],
)


@pytest.mark.parametrize("build, expected", DELETE)
def test_delete(build, expected) -> None:
    """Deleting is never a no-op: a TERMINATED agent is terminated again (the handler may remove it)."""
    tx = new_tx()
    check(lambda: D.delete(build(tx), AID), expected)


# -- cancel_task ------------------------------------------------------------------------

TASK, TRIGGER, UNKNOWN = tid(1), tid(2), tid(99)
NO_TASK = Err("not_found", "$.input.taskId")

CANCEL = rows(
    *[("task", missing, TASK, r, NOT_FOUND) for r in (True, False)],
    ("task", running, TASK, True, TaskCancelled(agentId=AID, taskId=TASK)),
    ("task", running, TASK, False, TaskCancelled(agentId=AID, taskId=TASK)),
    ("task", asleep_with_work, TASK, True, TaskCancelled(agentId=AID, taskId=TASK)),
    ("task", failed, TASK, True, TaskCancelled(agentId=AID, taskId=TASK)),
    ("task", suspended_with_work, TASK, True, TaskCancelled(agentId=AID, taskId=TASK)),
    ("trigger", suspended_with_work, TRIGGER, True, TaskCancelled(agentId=AID, taskId=TRIGGER)),
    ("trigger", running_trigger, TRIGGER, False, TaskCancelled(agentId=AID, taskId=TRIGGER)),
    ("big-task-40", big, tid(40), True, TaskCancelled(agentId=AID, taskId=tid(40))),
    *[("unknown-required", b, UNKNOWN, True, NO_TASK) for b in EVERY if b is not missing],
    *[("unknown", b, UNKNOWN, False, None) for b in EVERY if b is not missing],
    ("dropped-by-terminate", terminated, TASK, True, NO_TASK),
    ("dropped-by-terminate", terminated, TRIGGER, False, None),
    ("big-unknown", big, UNKNOWN, True, NO_TASK),
)


@pytest.mark.parametrize("build, task_id, required, expected", CANCEL)
def test_cancel_task(build, task_id, required, expected) -> None:
    tx = new_tx()
    check(lambda: D.cancel_task(build(tx), AID, task_id, required), expected)


def test_cancel_task_records_a_reason_when_given() -> None:
    tx = new_tx()
    assert D.cancel_task(running(tx), AID, TASK, True, reason="stale") == TaskCancelled(agentId=AID, taskId=TASK,
                                                                                  reason="stale")


# -- finish_task (agent:completeTask / agent:failTask) -----------------------------------------

def _job(status: str, agent: str = AID) -> dict:
    return {"jobId": TASK, "status": status, "agentId": agent}


FINISH = rows(
    ("done", running, TASK, _job("STARTED"), TaskCompleted(agentId=AID, taskId=TASK, result=7)),
    ("done", suspended_with_work, TASK, _job("PENDING"), TaskCompleted(agentId=AID, taskId=TASK, result=7)),
    ("done", asleep_with_work, TASK, None, TaskCompleted(agentId=AID, taskId=TASK, result=7)),
    ("no-agent", missing, TASK, None, NOT_FOUND),
    ("unknown-task", running, UNKNOWN, None, Err("not_found", "$.input.taskId", hint=True)),
    ("a-trigger-is-no-task", running_trigger, TRIGGER, _job("PENDING"), Err("not_found", "$.input.taskId", hint=True)),
    *[(f"already-{st}", sleeping, TASK, _job(st), Err("illegal_state", "$.input.taskId", hint=True))
      for st in ("COMPLETE", "FAILED", "CANCELLED")],
    ("dropped-by-terminate", terminated, TASK, _job("CANCELLED"), Err("illegal_state", "$.input.taskId", hint=True)),
    ("another-agents-task", sleeping, TASK, _job("COMPLETE", "B"), Err("not_found", "$.input.taskId", hint=True)),
)


@pytest.mark.parametrize("build, task_id, job, expected", FINISH)
def test_finish_task(build, task_id, job, expected) -> None:
    tx = new_tx()
    check(lambda: D.finish_task(build(tx), AID, task_id, job, result=7), expected)


def test_fail_task_decides_a_failure() -> None:
    tx = new_tx()
    assert D.finish_task(running(tx), AID, TASK, None, error="no") == TaskFailed(agentId=AID, taskId=TASK, error="no")


# -- request / trigger / message and the work limit ------------------------------------------

LIMIT = Err("limit_exceeded", None, hint=True)
NEW = tid(50)

QUEUE_STATUS = rows(
    ("", missing, NOT_FOUND),
    ("", terminated, Err("illegal_state", None)),
    ("", terminated_with_inbox, Err("illegal_state", None)),
    *[("", b, "ok") for b in LIVE],
)

#: (label, builder, max_queued, allowed): tasks, messages and triggers all count
QUEUE_LIMIT = rows(
    ("empty-limit-1", busy(), 1, True),
    ("empty-limit-0", busy(), 0, False),
    ("2-tasks-limit-3", busy(tasks=2), 3, True),
    ("3-tasks-limit-3", busy(tasks=3), 3, False),
    ("mixed-3-limit-3", busy(tasks=1, messages=1, triggers=1), 3, False),
    ("mixed-3-limit-4", busy(tasks=1, messages=1, triggers=1), 4, True),
    ("messages-only", busy(messages=2), 2, False),
    ("triggers-only", busy(triggers=2), 2, False),
    ("suspended-counts-too", busy(tasks=2, status=A.SUSPENDED), 2, False),
    ("big-80-limit-80", big, 80, False),
    ("big-80-limit-81", big, 81, True),
)


def _commands(rec: Any, max_queued: int) -> dict[str, Callable[[], Any]]:
    return {
        "request": lambda: D.request(rec, AID, NEW, {"q": "why"}, max_queued),
        "trigger": lambda: D.trigger(rec, AID, NEW, max_queued),
        "message": lambda: D.message(rec, AID, "hello", max_queued),
    }


EXPECTED_EVENT = {
    "request": TaskQueued(taskId=NEW, agentId=AID, input={"q": "why"}),
    "trigger": Triggered(triggerId=NEW, agentId=AID),
    "message": Messaged(agentId=AID, message="hello"),
}


@pytest.mark.parametrize("command", ["request", "trigger", "message"])
@pytest.mark.parametrize("build, expected", QUEUE_STATUS)
def test_queue_by_status(command, build, expected) -> None:
    tx = new_tx()
    rec = build(tx)
    want = EXPECTED_EVENT[command] if expected == "ok" else expected
    if command == "request" and isinstance(want, Err) and want.code == "illegal_state":
        want = Err("illegal_state", None, hint=True)  # "fork it or create it again"
    check(_commands(rec, 100)[command], want)


@pytest.mark.parametrize("command", ["request", "trigger", "message"])
@pytest.mark.parametrize("build, max_queued, allowed", QUEUE_LIMIT)
def test_queue_limit(command, build, max_queued, allowed) -> None:
    tx = new_tx()
    check(_commands(build(tx), max_queued)[command], EXPECTED_EVENT[command] if allowed else LIMIT)


def test_status_is_checked_before_the_limit() -> None:
    """A TERMINATED agent is refused as illegal_state even with a zero limit (status first)."""
    tx = new_tx()
    check(lambda: D.request(terminated(tx), AID, NEW, 1, 0), Err("illegal_state", None, hint=True))
    check(lambda: D.message(missing(tx), AID, "x", 0), NOT_FOUND)


def test_a_session_request_keeps_its_options_and_a_forceless_trigger_checks_the_session() -> None:
    tx = new_tx()
    rec = in_session(tx)
    opts = {"responseSchema": {"type": "object"}, "strict": True}
    assert D.request(rec, AID, NEW, 1, 10, tx, SID, options=opts) == TaskQueued(taskId=NEW, agentId=AID, input=1,
                                                                                   sessionId=SID, **opts)
    assert D.trigger(rec, AID, NEW, 10, tx, SID, force=False) is None  # a known session, nothing to do
    check(lambda: D.trigger(rec, AID, NEW, 10, tx, tid(999), force=False), Err("not_found", "$.input.sessionId",
                                                                                 hint=True))


def test_request_records_only_the_options_given() -> None:
    tx = new_tx()
    opts = {"responseSchema": {"type": "object"}, "strict": True, "outputPath": "w/out"}
    assert D.request(sleeping(tx), AID, NEW, 1, 10, options=opts) == TaskQueued(taskId=NEW, agentId=AID, input=1,
                                                                                **opts)
    assert D.request(sleeping(tx), AID, NEW, 1, 10, options={}) == TaskQueued(taskId=NEW, agentId=AID, input=1)


def test_accept_events_name_their_agent_from_format_2_on(monkeypatch) -> None:
    """Format 2 records the agent in a request's and a trigger's event; under format 1's setting
    the events are as format 1 recorded them."""
    import lattice.commits
    tx = new_tx()
    assert D.request(sleeping(tx), AID, NEW, 1, 10).agentId == AID
    assert D.trigger(sleeping(tx), AID, NEW, 10).agentId == AID
    monkeypatch.setattr(lattice.commits, "FORMAT_VERSION", 1)
    assert D.request(sleeping(tx), AID, NEW, 1, 10) == TaskQueued(taskId=NEW, input=1)
    assert D.trigger(sleeping(tx), AID, NEW, 10) == Triggered(triggerId=NEW)


@pytest.mark.parametrize("build, expected", rows(
    ("idle", sleeping, None),
    ("idle", suspended, None),
    ("idle", failed, Triggered(triggerId=NEW, agentId=AID)),  # it has a task waiting
    ("work", running, Triggered(triggerId=NEW, agentId=AID)),
    ("work", asleep_with_work, Triggered(triggerId=NEW, agentId=AID)),
    ("work", suspended_with_work, Triggered(triggerId=NEW, agentId=AID)),
    ("", missing, NOT_FOUND),
    ("", terminated, Err("illegal_state", None)),
))
def test_trigger_without_force_runs_only_for_work(build, expected) -> None:
    tx = new_tx()
    check(lambda: D.trigger(build(tx), AID, NEW, 10, force=False), expected)


def test_message_takes_any_json_value() -> None:
    tx = new_tx()
    assert D.message(sleeping(tx), AID, {"alert": [1, 2]}, 10) == Messaged(agentId=AID, message={"alert": [1, 2]})


def test_room_for_work_counts_staged_messages() -> None:
    tx = new_tx()
    rec = busy(tasks=1)(tx)
    D.room_for_work(rec, AID, 3, staged=1)
    check(lambda: D.room_for_work(rec, AID, 3, staged=2), LIMIT)


def test_message_event_records_only_message() -> None:
    """The caller's message records ``{agentId, message}``: no ``messages``, no ``from``."""
    from ops.domain.events import encode
    event = D.message(sleeping(new_tx()), AID, "hello", 10)
    assert encode(event) == ("agent:message", {"agentId": AID, "message": "hello"})


# -- helpers and purity ---------------------------------------------------------------------

@pytest.mark.parametrize("build", [b for b in EVERY], ids=lambda b: b.__name__)
def test_exists_and_not_terminated(build) -> None:
    tx = new_tx()
    rec = build(tx)
    if rec is None:
        check(lambda: D.exists(rec, AID, "$.input.sourceId"), Err("not_found", "$.input.sourceId", hint=True))
        check(lambda: D.not_terminated(rec, AID), NOT_FOUND)
    elif rec["status"] == A.TERMINATED:
        assert D.exists(rec, AID) is rec
        with pytest.raises(OpError) as e:
            D.not_terminated(rec, AID, hint="h")
        assert (e.value.code, e.value.hint) == ("illegal_state", "h")
    else:
        assert D.exists(rec, AID) is rec and D.not_terminated(rec, AID) is rec


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_commands_do_not_change_the_record(name) -> None:
    """Every command is pure: the record it was given is the same afterwards."""
    tx = new_tx()
    rec = BUILDERS[name](tx)
    before = tx.materialize(rec)
    calls = [
        lambda: D.create(rec, AID, {}, None, True),
        lambda: D.fork(suspended(tx), rec, "S", AID, "00", {"systemPrompt": "x"}, True, None),
        lambda: D.update(rec, AID, {"systemPrompt": "x"}, {"k": 2}),
        lambda: D.suspend(rec, AID),
        lambda: D.resume(rec, AID, True),
        lambda: D.delete(rec, AID),
        lambda: D.cancel_task(rec, AID, TASK, True),
        lambda: D.finish_task(rec, AID, TASK, None, result=1),
        lambda: D.request(rec, AID, NEW, 1, 10),
        lambda: D.trigger(rec, AID, NEW, 10),
        lambda: D.trigger(rec, AID, NEW, 10, force=False),
        lambda: D.message(rec, AID, "m", 10),
    ]
    outcomes = []
    for c in calls:
        try:
            outcomes.append(c())
        except OpError as e:
            outcomes.append(e.code)
    assert tx.materialize(rec) == before
    assert len(outcomes) == len(calls)
