"""One run's tool-call loop as a pure state machine, and its re-run from a record.

A run (``agent:run``) consumes :class:`ops.domain.agent.Work`: the model is
asked with the context :func:`build_context` assembles, answers with text or
tool calls, and the loop goes on until a final answer, ``complete_task`` or
``fail_task``. :class:`Cycle` is that loop with every I/O taken out: the
engine drives it live (replies from an adapter, I/O tool results from the
store); :func:`rerun` drives it from the replies and tool results a run's
commit recorded. Both produce the same :class:`Outcome`, which is how a replay
recomputes exactly what a run did.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lattice.nodes import Tx, seq_len, seq_plain

from . import sessions as S
from .agent import BUILTIN_TOOLS, AgentConfig, Work, check_config
from .answers import check_answer
from .models import LlmReply

__all__ = ["render_input", "tool_specs", "build_context", "CycleError", "Cycle", "Outcome", "ReplayError", "rerun"]


def render_input(value: Any) -> str:
    """Task input as the text of a user message (JSON for anything but a string)."""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value, order="sorted").decode()


def _cycle_user_messages(work: Work) -> list[dict[str, Any]]:
    if work.session is not None:  # a session's turn: its messages as they came, then its task
        out = [{"role": "user", "content": render_input(m["message"])} for m in work.pending]
        if work.task is not None:
            out.append({"role": "user", "content": render_input(work.task["input"])})
        return out
    out = [{"role": "user", "content": f"[message from {m['caller']}] {render_input(m['message'])}"}
           for m in work.messages]
    if work.task is not None:
        out.append({"role": "user", "content": render_input(work.task["input"])})
    if not out:
        out.append({"role": "user", "content": "[trigger] No pending tasks or messages: act proactively or report idle."})
    return out


def tool_specs(cfg: AgentConfig) -> list[dict[str, Any]]:
    """The built-in tools offered to the model: ``[{name, description, parameters}]``."""
    names = list(BUILTIN_TOOLS) if cfg.tools is None else cfg.tools
    return [{"name": n, **BUILTIN_TOOLS[n]} for n in names]


def _window(tx: Tx, history: Any, n: int) -> list[dict[str, Any]]:
    total = seq_len(history)
    msgs = seq_plain(tx, history, max(0, total - n), total) if n else []
    while msgs and msgs[0].get("role") == "tool":  # never start on an orphaned tool result
        msgs.pop(0)
    return msgs


def build_context(tx: Tx, rec: dict[str, Any], work: Work) -> tuple[AgentConfig, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The exact LLM input of the run that would consume ``work``.

    A turn on a session composes the agent's config (model, system prompt, tools,
    ``historyWindow``) with that session's own history only: its compaction summary (if
    any, always kept), then its most recent ``historyWindow`` messages; the agent's
    ``state.history`` and other sessions are not part of it.

    Returns:
        ``(config, prefix, new, tools)``: ``prefix`` is the system prompt and
        the history window, ``new`` the user messages this run adds to history.
    """
    config = rec["state"]["config"]
    cfg = check_config(config)
    prefix = []
    if cfg.systemPrompt:
        prefix.append({"role": "system", "content": cfg.systemPrompt})
    if work.session is not None:
        prefix.extend(S.window(tx, S.get(tx, rec, work.session)["history"], cfg.historyWindow))
    else:
        prefix.extend(_window(tx, rec["state"]["history"], cfg.historyWindow))
    return cfg, prefix, _cycle_user_messages(work), tool_specs(cfg)


class CycleError(Exception):
    """A run that cannot finish (e.g. ``tool_loop_limit``); the agent is suspended with it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Cycle:
    """One run's tool-call loop as a pure state machine.

    The shell drives it: ``request()`` gives the next LLM request (None when
    the run is over), ``reply()`` takes the model's answer and returns the tool
    calls to resolve in order, ``pure(call)`` answers the tools decided here
    (``complete_task``, ``fail_task``, unknown tools, bad arguments) or None
    for an I/O tool whose text the shell supplies to ``tool_result``. Live,
    replies come from the adapter; in a replay, from the commit's record; the
    machine is the same, so a replay recomputes exactly what the run did.

    Args:
        tx: reads the agent's state. rec: the agent record the run starts from.
        work: what the run consumes.

    Raises:
        msgspec.ValidationError: the agent's config is invalid.
    """

    def __init__(self, tx: Tx, rec: dict[str, Any], work: Work):
        self.cfg, self.prefix, self.new, self.tools = build_context(tx, rec, work)
        self.model = msgspec.to_builtins(self.cfg.model)
        self.enabled = {t["name"] for t in self.tools}
        self.calls = 0
        self.finished = False
        self.result: Any = None
        self.task_status = "COMPLETE"
        self.task_output: Any = None
        self.task_error: dict[str, Any] | None = None
        task = work.task or {}
        self.schema: dict[str, Any] | None = task.get("responseSchema")
        self.strict = bool(task.get("strict"))

    def request(self) -> dict[str, Any] | None:
        """The next LLM request ``{model, messages, tools}`` (plus ``responseFormat: {name, schema}``
        when the task asks for a ``responseSchema``), or None when the run is over.

        Raises:
            CycleError: ``tool_loop_limit`` after ``config.maxIterations`` calls.
        """
        if self.finished:
            return None
        if self.calls >= self.cfg.maxIterations:
            raise CycleError("tool_loop_limit", f"no final answer after {self.cfg.maxIterations} LLM calls "
                                                f"(config.maxIterations)")
        self.calls += 1
        request = {"model": self.model, "messages": self.prefix + self.new, "tools": self.tools}
        if self.schema is not None:
            request["responseFormat"] = {"name": "response", "schema": self.schema}
        return request

    def _answer(self, answer: Any) -> Any:
        """The task's output for the model's answer: checked against the task's ``responseSchema``
        (a JSON text decoded); with ``strict``, a mismatch fails the task with ``schema_mismatch``."""
        if self.schema is None:
            return answer
        shaped, error = check_answer(self.schema, answer)
        if error is not None and self.strict:
            self.task_status, self.task_error = "FAILED", error
            return None
        return shaped

    def reply(self, content: str | None, calls: list[Any]) -> list[Any]:
        """Take the model's reply; return its tool calls (to resolve in order). Source: the model."""
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            msg["toolCalls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
        self.new.append(msg)
        if not calls:
            self.result = content
            self.task_output = self._answer(content)
            self.finished = True
        return list(calls)

    def pure(self, call: Any) -> str | None:
        """The result text of a tool decided here, or None for an I/O tool the shell must run."""
        name, args = call.name, call.arguments
        if name not in self.enabled:
            return f"error: unknown tool {name!r}; available: {', '.join(sorted(self.enabled))}"
        if call.invalid is not None:
            return "error: the arguments are not a JSON object"
        if name == "complete_task":
            return "task completed"
        if name == "fail_task":
            return "task failed"
        if name == "agent_message":
            if not isinstance(args.get("agentId"), str) or not isinstance(args.get("message"), str):
                return "error: agent_message needs string agentId and message"
            return None
        if not isinstance(args.get("path"), str):
            return f"error: {name} needs a string `path`"
        return None

    def tool_result(self, call: Any, text: str) -> None:
        """Record a tool's result; ``complete_task``/``fail_task`` (the first one) end the run."""
        self.new.append({"role": "tool", "toolCallId": call.id, "name": call.name, "content": text})
        if self.finished or call.name not in self.enabled or call.invalid is not None:
            return
        if call.name == "complete_task":
            self.finished = True
            self.result = call.arguments.get("output")
            self.task_output = self._answer(self.result)
        elif call.name == "fail_task":
            self.finished = True
            message = str(call.arguments.get("error", "failed"))
            self.task_status, self.task_output = "FAILED", None
            self.task_error = {"code": "task_failed", "message": message}
            self.result = {"error": message}


class Outcome(msgspec.Struct):
    """What a run produced: the history it adds, its result and its task's fate, and
    the record of its exchanges (``llm``, ``tools``) and staged side effects.

    Attributes:
        new_history: messages the run appends to ``state.history``.
        result: the run's result (timeline entry ``result``).
        task_status / task_output / task_error: the consumed task's job outcome.
        llm: ``[{request: digest of the canonical request, reply}]`` in call order.
        tools: result texts of the I/O tool calls, in order.
        ws_edits: ``covia_write`` calls ``(segments below w/, value)``, in order.
        outbox: ``agent_message`` calls ``(agentId, message)``, in order.
    """

    new_history: list[dict[str, Any]]
    result: Any = None
    task_status: str = "COMPLETE"
    task_output: Any = None
    task_error: dict[str, Any] | None = None
    llm: list[dict[str, Any]] = []
    tools: list[str] = []
    ws_edits: list[tuple[list[str], Any]] = []
    outbox: list[tuple[str, str]] = []

    def finish(self, cycle: "Cycle") -> "Outcome":
        """Copy the cycle's final result and task fate into this outcome; return it."""
        self.result, self.task_status = cycle.result, cycle.task_status
        self.task_output, self.task_error = cycle.task_output, cycle.task_error
        return self


class ReplayError(Exception):
    """A recorded run that cannot be re-run: fewer recorded replies or tool results than it asks for."""


def rerun(tx: Tx, base: dict[str, Any], work: Work, llm: list[dict[str, Any]], tools: list[str]) -> Outcome:
    """Drive a :class:`Cycle` from a run's recorded replies and tool results.

    Args:
        tx: reads the agent's state. base: the record the run started from.
        work: what it consumed. llm: the recorded exchanges ``[{request, reply}]``.
        tools: the recorded I/O tool results.

    Raises:
        ReplayError: the run asks for more replies or tool results than were recorded.
        CycleError: the run hits ``tool_loop_limit``.
        msgspec.ValidationError: the config or a recorded reply is malformed.
    """
    cycle = Cycle(tx, base, work)
    replies, results = iter(llm), iter(tools)
    while cycle.request() is not None:
        try:
            reply = msgspec.convert(next(replies)["reply"], LlmReply)
        except StopIteration:
            raise ReplayError(f"the run asks for LLM call {cycle.calls}, but only {len(llm)} were recorded") from None
        for call in cycle.reply(reply.content, reply.toolCalls):
            text = cycle.pure(call)
            if text is None:
                try:
                    text = next(results)
                except StopIteration:
                    raise ReplayError(f"tool call {call.name!r} has no recorded result") from None
            cycle.tool_result(call, text)
    return Outcome(cycle.new, llm=llm, tools=tools).finish(cycle)
