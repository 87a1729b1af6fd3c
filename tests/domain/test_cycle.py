"""Tests of :mod:`ops.domain.cycle`: the pure tool-call loop of one run.

The :class:`~ops.domain.cycle.Cycle` is driven by hand with scripted model
replies (``tests/domain/helpers.py``: ``say``, ``call``, ``drive``): how a run
ends (final text, ``complete_task``, ``fail_task``, ``tool_loop_limit``), which
tool calls go back to the model as errors, and the context it is asked with
(system prompt, history window, the run's new user messages).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from ops.domain import agent as A
from ops.domain.cycle import Cycle, CycleError, build_context, render_input, rerun, tool_specs
from tests.domain.helpers import CALLER, T0, call, drive, new_tx, reopen, say, tid

TASK = A.Work(tid(1), {"input": {"q": "why"}, "caller": CALLER, "ts": T0}, [], [])


def agent(config: dict[str, Any] | None = None, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return A.new_agent(config or {}, {"history": history or []}, T0)


def cycle(config: dict[str, Any] | None = None, work: A.Work = TASK,
          history: list[dict[str, Any]] | None = None) -> Cycle:
    tx = new_tx()
    return Cycle(tx, reopen(tx, agent(config, history)), work)


# -- how a run ends -------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["the answer", "", "{\"json\": 1}"])
def test_final_text_ends_the_run(content: str) -> None:
    c = cycle()
    assert c.request() is not None
    assert c.reply(content, []) == []
    assert c.request() is None and c.finished and c.calls == 1
    assert (c.result, c.task_output, c.task_status, c.task_error) == (content, content, "COMPLETE", None)
    assert c.new[-1] == {"role": "assistant", "content": content}


def test_text_with_tool_calls_does_not_end_the_run() -> None:
    c = cycle()
    c.request()
    calls = c.reply("thinking", [call("covia_read", path="w/x")])
    assert [x.name for x in calls] == ["covia_read"] and not c.finished
    c.tool_result(calls[0], "1")
    assert c.request() is not None and c.calls == 2


@pytest.mark.parametrize("output", [{"answer": 42, "why": ["a", "b"]}, [1, 2], "text", 0, None, True])
def test_complete_task_output_becomes_the_task_output(output: Any) -> None:
    c = cycle()
    out = drive(c, [say("calling", call("complete_task", output=output))])
    assert (out.task_status, out.task_output, out.result, out.task_error) == ("COMPLETE", output, output, None)
    assert out.new_history[-1] == {"role": "tool", "toolCallId": "c1", "name": "complete_task",
                                   "content": "task completed"}
    assert len(out.llm) == 1 and c.request() is None


def test_complete_task_without_output_completes_with_none() -> None:
    out = drive(cycle(), [say(None, call("complete_task"))])
    assert (out.task_status, out.task_output) == ("COMPLETE", None)


@pytest.mark.parametrize("args, message", [
    ({"error": "cannot do it"}, "cannot do it"),
    ({}, "failed"),
    ({"error": 5}, "5"),
])
def test_fail_task(args: dict[str, Any], message: str) -> None:
    out = drive(cycle(), [say(None, call("fail_task", **args))])
    assert out.task_status == "FAILED" and out.task_output is None
    assert out.task_error == {"code": "task_failed", "message": message}
    assert out.result == {"error": message}
    assert out.new_history[-1]["content"] == "task failed"


@pytest.mark.parametrize("first, second, status", [
    ("complete_task", "fail_task", "COMPLETE"),
    ("fail_task", "complete_task", "FAILED"),
    ("complete_task", "complete_task", "COMPLETE"),
])
def test_first_finishing_call_of_a_reply_wins(first: str, second: str, status: str) -> None:
    args = {"complete_task": {"output": 1}, "fail_task": {"error": "e"}}
    out = drive(cycle(), [say(None, call(first, "c1", **args[first]), call(second, "c2", **{
        k: (2 if k == "output" else v) for k, v in args[second].items()}))])
    assert out.task_status == status and len(out.llm) == 1
    assert out.task_output == (1 if status == "COMPLETE" else None)
    assert [m["toolCallId"] for m in out.new_history if m["role"] == "tool"] == ["c1", "c2"]  # both answered


# -- tool calls answered with an error -------------------------------------------------------

ALL = ", ".join(sorted(A.BUILTIN_TOOLS))

PURE = [
    pytest.param({}, call("rm_rf"), f"error: unknown tool 'rm_rf'; available: {ALL}", id="unknown-tool"),
    pytest.param({"tools": ["complete_task"]}, call("covia_read", path="w/x"),
                 "error: unknown tool 'covia_read'; available: complete_task", id="tool-not-enabled"),
    pytest.param({}, call("covia_read", invalid="[1"), "error: the arguments are not a JSON object",
                 id="invalid-arguments"),
    pytest.param({}, call("rm_rf", invalid="[1"), f"error: unknown tool 'rm_rf'; available: {ALL}",
                 id="unknown-before-invalid"),
    pytest.param({}, call("covia_read"), "error: covia_read needs a string `path`", id="read-no-path"),
    pytest.param({}, call("covia_list", path=3), "error: covia_list needs a string `path`", id="list-path-int"),
    pytest.param({}, call("covia_write", value=1), "error: covia_write needs a string `path`", id="write-no-path"),
    pytest.param({}, call("agent_message", agentId="B"), "error: agent_message needs string agentId and message",
                 id="message-no-text"),
    pytest.param({}, call("agent_message", agentId=1, message="x"),
                 "error: agent_message needs string agentId and message", id="message-agentId-int"),
    pytest.param({}, call("complete_task", output=1), "task completed", id="complete_task"),
    pytest.param({}, call("fail_task", error="e"), "task failed", id="fail_task"),
    pytest.param({}, call("covia_read", path="w/x"), None, id="read-is-io"),
    pytest.param({}, call("covia_list", path="w/"), None, id="list-is-io"),
    pytest.param({}, call("covia_write", path="w/x", value=None), None, id="write-is-io"),
    pytest.param({}, call("agent_message", agentId="B", message="hi"), None, id="message-is-io"),
]


@pytest.mark.parametrize("config, tool_call, text", PURE)
def test_pure_tool_results(config: dict[str, Any], tool_call: Any, text: str | None) -> None:
    assert cycle(config).pure(tool_call) == text


@pytest.mark.parametrize("config, bad", [
    pytest.param({}, call("rm_rf", output=1), id="unknown-tool"),
    pytest.param({"tools": ["covia_read"]}, call("complete_task", output=1), id="complete_task-not-enabled"),
    pytest.param({}, call("complete_task", invalid="not json"), id="complete_task-invalid-arguments"),
    pytest.param({}, call("fail_task", invalid="{"), id="fail_task-invalid-arguments"),
    pytest.param({}, call("covia_read"), id="missing-path"),
])
def test_tool_errors_go_back_to_the_model_without_ending_the_run(config: dict[str, Any], bad: Any) -> None:
    c = cycle(config)
    c.request()
    (x,) = c.reply(None, [bad])
    text = c.pure(x)
    assert text.startswith("error: ")
    c.tool_result(x, text)
    assert not c.finished
    follow_up = c.request()  # the next request shows the model its error
    assert follow_up["messages"][-1] == {"role": "tool", "toolCallId": bad.id, "name": bad.name, "content": text}
    assert c.reply("recovered", []) == [] and c.request() is None
    assert (c.task_status, c.task_output, c.result, c.calls) == ("COMPLETE", "recovered", "recovered", 2)


def test_io_results_are_recorded_in_order() -> None:
    seen = []

    def io(c) -> str:
        seen.append(c.name)
        return f"result {len(seen)}"
    out = drive(cycle(), [say(None, call("covia_read", "a", path="w/x"), call("covia_write", "b", path="w/y", value=1)),
                          say(None, call("covia_list", "c", path="w/")), say("done")], io)
    assert seen == ["covia_read", "covia_write", "covia_list"]
    assert out.tools == ["result 1", "result 2", "result 3"]
    assert [m["content"] for m in out.new_history if m["role"] == "tool"] == out.tools


def test_assistant_tool_calls_are_recorded_in_history() -> None:
    out = drive(cycle(), [say("look", call("covia_read", "x1", path="w/a")), say("ok")])
    assert out.new_history[1] == {"role": "assistant", "content": "look",
                                  "toolCalls": [{"id": "x1", "name": "covia_read", "arguments": {"path": "w/a"}}]}


# -- tool_loop_limit ------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [1, 2, 5, 100])
def test_tool_loop_limit_after_max_iterations(limit: int) -> None:
    c = cycle({"maxIterations": limit})
    for _ in range(limit):
        assert c.request() is not None
        for x in c.reply(None, [call("covia_read", path="w/x")]):
            c.tool_result(x, "again")
    with pytest.raises(CycleError) as e:
        c.request()
    assert e.value.code == "tool_loop_limit" and str(limit) in e.value.message and c.calls == limit


@pytest.mark.parametrize("limit", [1, 3])
def test_finishing_on_the_last_allowed_call_is_not_a_limit(limit: int) -> None:
    replies = [say(None, call("covia_read", path="w/x"))] * (limit - 1) + [say(None, call("complete_task", output=7))]
    out = drive(cycle({"maxIterations": limit}), replies)
    assert out.task_output == 7 and len(out.llm) == limit


def test_default_limit_is_ten() -> None:
    with pytest.raises(CycleError):
        drive(cycle(), [say(None, call("covia_read", path="w/x"))] * 11)


# -- the context ----------------------------------------------------------------------------

def U(n: int) -> dict[str, Any]:
    return {"role": "user", "content": f"u{n}"}


def AS(n: int) -> dict[str, Any]:
    return {"role": "assistant", "content": f"a{n}"}


CALLING = {"role": "assistant", "content": None, "toolCalls": [{"id": "t", "name": "covia_read",
                                                                 "arguments": {"path": "w/"}}]}
TOOL = {"role": "tool", "toolCallId": "t", "name": "covia_read", "content": "r"}
HISTORY = [U(1), AS(1), U(2), CALLING, TOOL, TOOL, AS(2), U(3), AS(3)]


@pytest.mark.parametrize("window, expected", [
    (0, []),
    (1, [AS(3)]),
    (2, [U(3), AS(3)]),
    (3, [AS(2), U(3), AS(3)]),
    (4, [AS(2), U(3), AS(3)]),  # would start on a tool result: dropped
    (5, [AS(2), U(3), AS(3)]),  # two orphaned tool results dropped
    (6, [CALLING, TOOL, TOOL, AS(2), U(3), AS(3)]),  # the call and its results together
    (9, HISTORY),
    (64, HISTORY),
    (100_000, HISTORY),
])
def test_history_window(window: int, expected: list[dict[str, Any]]) -> None:
    c = cycle({"historyWindow": window}, history=HISTORY)
    assert c.prefix == expected
    assert c.request()["messages"] == expected + c.new


def test_history_window_ending_on_a_tool_result_can_be_empty() -> None:
    c = cycle({"historyWindow": 2}, history=[U(1), CALLING, TOOL, TOOL])
    assert c.prefix == []


def test_history_window_over_a_large_history() -> None:
    """History over 32 messages is a lazy vector in the store; the window reads only its tail."""
    history = [m for i in range(30) for m in (U(i), AS(i))]
    tx = new_tx()
    rec = reopen(tx, agent({"historyWindow": 3}, history))
    assert type(rec["state"]["history"]).__name__ == "Vec"
    assert Cycle(tx, rec, TASK).prefix == [AS(28), U(29), AS(29)]


@pytest.mark.parametrize("prompt", ["You are terse.", "x" * 1000])
def test_system_prompt_comes_first(prompt: str) -> None:
    c = cycle({"systemPrompt": prompt, "historyWindow": 2}, history=HISTORY)
    messages = c.request()["messages"]
    assert messages[0] == {"role": "system", "content": prompt}
    assert messages[1:] == [U(3), AS(3)] + c.new
    assert [m["role"] for m in messages].count("system") == 1


def test_no_system_message_without_a_prompt() -> None:
    assert all(m["role"] != "system" for m in cycle(history=HISTORY).request()["messages"])


@pytest.mark.parametrize("work, expected", [
    pytest.param(TASK, ['{"q":"why"}'], id="task"),
    pytest.param(A.Work(tid(1), {"input": "plain text"}, [], []), ["plain text"], id="text-task"),
    pytest.param(A.Work(tid(1), {"input": "t"}, [{"message": "ping", "caller": "bob", "ts": 1},
                                                 {"message": "pong", "caller": "agent:B", "ts": 2}], [tid(2)]),
                 ["[message from bob] ping", "[message from agent:B] pong", "t"], id="messages-then-task"),
    pytest.param(A.Work(None, None, [{"message": "hi", "caller": "bob", "ts": 1}], []), ["[message from bob] hi"],
                 id="message-only"),
    pytest.param(A.Work(None, None, [], [tid(2)]),
                 ["[trigger] No pending tasks or messages: act proactively or report idle."], id="trigger-only"),
    pytest.param(A.Work(None, None, [], []),
                 ["[trigger] No pending tasks or messages: act proactively or report idle."], id="nothing"),
])
def test_new_user_messages(work: A.Work, expected: list[str]) -> None:
    c = cycle(work=work)
    assert c.new == [{"role": "user", "content": t} for t in expected]


def test_request_shape_and_tools() -> None:
    c = cycle({"tools": ["fail_task", "complete_task"], "model": {"provider": "echo"}})
    req = c.request()
    assert set(req) == {"model", "messages", "tools"}
    assert req["model"] == {"provider": "echo", "model": "echo"}
    assert [t["name"] for t in req["tools"]] == ["fail_task", "complete_task"]  # as configured
    assert req["tools"][0] == {"name": "fail_task", **A.BUILTIN_TOOLS["fail_task"]}


def test_tool_specs_default_to_every_builtin() -> None:
    specs = tool_specs(A.check_config({}))
    assert [t["name"] for t in specs] == list(A.BUILTIN_TOOLS)
    assert tool_specs(A.check_config({"tools": []})) == []


def test_build_context_matches_the_cycle() -> None:
    tx = new_tx()
    rec = reopen(tx, agent({"systemPrompt": "s", "historyWindow": 2}, HISTORY))
    cfg, prefix, new, tools = build_context(tx, rec, TASK)
    c = Cycle(tx, rec, TASK)
    assert (cfg, prefix, new, tools) == (c.cfg, c.prefix, c.new, c.tools)


@pytest.mark.parametrize("config", [{"maxIterations": 0}, {"tools": ["nope"]}, {"model": {"provider": "x"}}])
def test_invalid_config_raises(config: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        cycle(config)


# -- render_input and rerun ------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    ("as is", "as is"),
    ("", ""),
    ('{"not": "parsed"}', '{"not": "parsed"}'),
    ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ({"z": {"y": 1, "x": [{"d": 0, "c": None}]}}, '{"z":{"x":[{"c":null,"d":0}],"y":1}}'),
    ([3, "x", True], '[3,"x",true]'),
    (None, "null"),
    (1.5, "1.5"),
    ({"é": "ü"}, '{"é":"ü"}'),
])
def test_render_input(value: Any, text: str) -> None:
    assert render_input(value) == text


def test_render_input_is_independent_of_key_order() -> None:
    assert render_input({"a": 1, "b": {"c": 1, "d": 2}}) == render_input({"b": {"d": 2, "c": 1}, "a": 1})


def test_rerun_gives_the_live_outcome() -> None:
    tx = new_tx()
    rec = reopen(tx, agent({"systemPrompt": "s"}, HISTORY))
    script = [say("step", call("covia_read", "r", path="w/x"), call("agent_message", "m", agentId="B", message="hi")),
              say(None, call("complete_task", "d", output={"ok": True}))]
    live = drive(Cycle(tx, rec, TASK), script, lambda c: f"io:{c.name}")
    again = rerun(tx, rec, TASK, live.llm, live.tools)
    assert (again.new_history, again.result, again.task_status, again.task_output, again.task_error) == (
        live.new_history, live.result, live.task_status, live.task_output, live.task_error)
    assert again.task_output == {"ok": True} and again.tools == ["io:covia_read", "io:agent_message"]


# -- a task's responseSchema (agent:request responseSchema / strict) -------------------------------

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def schema_task(strict: bool = False, schema: dict[str, Any] = SCHEMA) -> A.Work:
    return A.Work(tid(1), {"input": "q", "caller": CALLER, "ts": T0, "responseSchema": schema,
                           **({"strict": True} if strict else {})}, [], [])


def test_a_schema_asks_the_model_for_structured_output() -> None:
    c = cycle(work=schema_task())
    assert c.request()["responseFormat"] == {"name": "response", "schema": SCHEMA}
    assert "responseFormat" not in cycle().request()  # without a schema the request is as before


@pytest.mark.parametrize("strict", [False, True])
def test_a_json_answer_that_matches_is_kept_decoded(strict: bool) -> None:
    out = drive(cycle(work=schema_task(strict)), [say('{"n": 3}')])
    assert (out.task_status, out.task_output, out.task_error) == ("COMPLETE", {"n": 3}, None)
    assert out.result == '{"n": 3}'  # the run's result is what the model said


def test_a_mismatch_without_strict_completes_with_the_answer() -> None:
    out = drive(cycle(work=schema_task()), [say('{"n": "three"}')])
    assert (out.task_status, out.task_output, out.task_error) == ("COMPLETE", {"n": "three"}, None)


@pytest.mark.parametrize("answer, path, schema_path", [
    ('{"n": "three"}', "$.n", "#/properties/n/type"),
    ("not json", "$", "#/type"),
    ("{}", "$", "#/required"),
])
def test_a_strict_mismatch_fails_the_task_with_the_schema_path(answer: str, path: str, schema_path: str) -> None:
    out = drive(cycle(work=schema_task(strict=True)), [say(answer)])
    assert out.task_status == "FAILED" and out.task_output is None
    assert out.task_error["code"] == "schema_mismatch"
    assert (out.task_error["answerPath"], out.task_error["schemaPath"]) == (path, schema_path)
    assert out.task_error["path"] == "$.input.responseSchema" + schema_path[1:].replace("/", ".")
    assert schema_path in out.task_error["message"]


def test_complete_task_output_is_checked_too() -> None:
    out = drive(cycle(work=schema_task(strict=True)), [say(None, call("complete_task", output={"n": 1.5}))])
    assert out.task_status == "FAILED" and out.task_error["answerPath"] == "$.n"
    out = drive(cycle(work=schema_task(strict=True)), [say(None, call("complete_task", output={"n": 2}))])
    assert (out.task_status, out.task_output) == ("COMPLETE", {"n": 2})


def test_a_string_schema_keeps_a_numeric_looking_answer_as_text() -> None:
    out = drive(cycle(work=schema_task(strict=True, schema={"type": "string"})), [say("42")])
    assert (out.task_status, out.task_output) == ("COMPLETE", "42")


def test_messages_of_any_json_value_are_rendered_as_json() -> None:
    work = A.Work(None, None, [{"message": {"b": 1, "a": [2]}, "caller": "bob", "ts": T0},
                               {"message": "plain", "caller": "bob", "ts": T0}], [])
    new = cycle(work=work).new
    assert [m["content"] for m in new] == ['[message from bob] {"a":[2],"b":1}', "[message from bob] plain"]
