"""Pure agent transitions: ``(record, inputs) -> new record``.

No clock, randomness or I/O here: times (``ts``, Unix ms) and ids are passed
in, and the only store access is reading immutable objects through a
:class:`lattice.nodes.Tx` (large collections are lazily loaded handles).

The agent record (the root of ref ``g/<caller>/<agentId>``)::

    {status, error, created, updated,
     state: {config, history, ...user keys},
     inbox: [{message, caller, ts}],
     tasks: {<jobId>: {input, caller, ts}},   # job ids sort by time: FIFO
     pending: {},                               # outbound jobs (reserved)
     timeline: [<entry>],
     triggers: [<jobId>],                       # agent:trigger jobs waiting for a run
     sessions?: {<sid>: {meta, history, pending}},  # conversations (:mod:`.sessions`), added
     sessionQueue?: [<sid>]}                    # with the first one; sessions with pending turns

Scheduling rule kept by :func:`settle`: work arriving at a ``SLEEPING`` agent
makes it ``RUNNING``; a ``RUNNING`` agent without work goes back to
``SLEEPING``. The one way to be ``SLEEPING`` with work is ``agent:resume
{autoWake: false}``, until the next wake-up (a request, message or trigger).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

import msgspec

from lattice.nodes import HMap, Tx, map_delete, map_keys, map_len, map_get, map_set, seq_append, seq_iter, seq_len, seq_plain

from . import sessions as S
from .models import EchoModel, ModelRef, ScriptedCall, ScriptedRule, check_key_env

__all__ = [
    "SLEEPING", "RUNNING", "SUSPENDED", "TERMINATED", "AGENT_STATUSES", "DEFAULT_OPERATION", "BUILTIN_TOOLS",
    "AgentConfig", "check_config", "FREE_CONFIG_KEYS", "unknown_config_key", "MANAGED_STATE_KEYS", "state_problem",
    "HistoryMessage", "check_history", "opened", "new_agent", "update", "fork",
    "enqueue_task", "add_message", "add_trigger", "cancel_task", "cancel_trigger", "suspend", "resume", "terminate",
    "settle", "has_task", "task_of", "queued", "has_work", "Work", "pick_work", "timeline_entry", "complete_cycle", "fail_cycle", "finish_run",
]

SLEEPING, RUNNING, SUSPENDED, TERMINATED = "SLEEPING", "RUNNING", "SUSPENDED", "TERMINATED"
AGENT_STATUSES = (SLEEPING, RUNNING, SUSPENDED, TERMINATED)
DEFAULT_OPERATION = "v/ops/lattice/chat"

BUILTIN_TOOLS: dict[str, dict[str, Any]] = {
    "complete_task": {
        "description": "Finish the current task; `output` becomes the task's result.",
        "parameters": {"type": "object", "properties": {"output": {"description": "the task's result (any JSON)"}},
                       "required": ["output"]},
    },
    "fail_task": {
        "description": "Fail the current task with an error message.",
        "parameters": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    },
    "covia_read": {
        "description": "Read a value from the owner's workspace (path starts with w/).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    "covia_write": {
        "description": "Write a value into the owner's workspace (path starts with w/).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "value": {}},
                       "required": ["path", "value"]},
    },
    "covia_list": {
        "description": "List the keys (or length) at a workspace path (path starts with w/).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    "agent_message": {
        "description": "Send a notification message to another agent of the same owner.",
        "parameters": {"type": "object", "properties": {"agentId": {"type": "string"}, "message": {"type": "string"}},
                       "required": ["agentId", "message"]},
    },
}


class AgentConfig(msgspec.Struct, kw_only=True, frozen=True):
    """The agent configuration keys the framework reads. A config given by a caller may also
    hold :data:`FREE_CONFIG_KEYS` (kept as given); any other key is refused
    (:func:`unknown_config_key`).

    Attributes:
        model: structured model reference ``{"provider": ...}`` (default: echo).
        systemPrompt: the system message.
        tools: names of built-in tools offered to the model (default: all).
        maxIterations: bound on LLM calls in one run (tool-call loop), 1..100.
        historyWindow: most recent history messages sent to the model, 0..100000.
        operation: the name recorded as ``op`` in timeline entries.
    """

    model: ModelRef = EchoModel()
    systemPrompt: str = ""
    tools: list[str] | None = None
    maxIterations: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    historyWindow: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 64
    operation: str = DEFAULT_OPERATION


def check_config(config: dict[str, Any]) -> AgentConfig:
    """Validate a config map.

    Raises:
        msgspec.ValidationError: a framework key has the wrong shape (the
            message says expected, got and where, e.g. ``$.model.provider``),
            ``tools`` names an unknown built-in tool, or ``model.apiKeyEnv``
            names a variable that does not end in ``_API_KEY``.
    """
    cfg = msgspec.convert(config, AgentConfig)
    for i, name in enumerate(cfg.tools or ()):
        if name not in BUILTIN_TOOLS:
            raise msgspec.ValidationError(
                f"Unknown tool {name!r}, expected one of {sorted(BUILTIN_TOOLS)} - at `$.tools[{i}]`")
    err = check_key_env(getattr(cfg.model, "apiKeyEnv", None))
    if err:
        raise msgspec.ValidationError(f"{err} - at `$.model.apiKeyEnv`")
    return cfg


#: config keys besides the framework's: free-form, kept as given (``definition``: where the
#: config came from, set by ``agent:create {definition}``)
FREE_CONFIG_KEYS = ("description", "metadata", "definition")
_MODEL_KEYS = {t.__struct_config__.tag: frozenset(t.__struct_fields__) | {"provider"} for t in ModelRef.__args__}
_RULE_KEYS = frozenset(ScriptedRule.__struct_fields__)
_CALL_KEYS = frozenset(ScriptedCall.__struct_fields__)


def _unknown(path: str, key: str, known: Any) -> tuple[str, str, str]:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(sorted(known))}"
    return f"{path}.{key}", f"unknown config key `{key}`", hint


def unknown_config_key(config: dict[str, Any]) -> tuple[str, str, str] | None:
    """The first key of a config map the framework does not know (a typo would otherwise
    be kept and silently ignored): ``(path below the config, message, hint)``, or None.

    Known: the :class:`AgentConfig` keys, :data:`FREE_CONFIG_KEYS`, each provider's model
    ref keys, and a scripted model's rule and tool call keys.

    >>> unknown_config_key({"systemPromt": "Be terse"})
    ('.systemPromt', 'unknown config key `systemPromt`', 'did you mean `systemPrompt`?')
    """
    known = frozenset(AgentConfig.__struct_fields__) | frozenset(FREE_CONFIG_KEYS)
    for k in config:
        if k not in known:
            return _unknown("", k, known)
    model = config.get("model")
    if not isinstance(model, dict) or model.get("provider") not in _MODEL_KEYS:
        return None
    for k in model:
        if k not in _MODEL_KEYS[model["provider"]]:
            return _unknown(".model", k, _MODEL_KEYS[model["provider"]])
    for i, rule in enumerate(model.get("rules") or []) if model["provider"] == "scripted" else ():
        for k in rule if isinstance(rule, dict) else ():
            if k not in _RULE_KEYS:
                return _unknown(f".model.rules[{i}]", k, _RULE_KEYS)
        calls = rule.get("toolCalls") if isinstance(rule, dict) else None
        for j, call in enumerate(calls if isinstance(calls, list) else []):
            for k in call if isinstance(call, dict) else ():
                if k not in _CALL_KEYS:
                    return _unknown(f".model.rules[{i}].toolCalls[{j}]", k, _CALL_KEYS)
    return None


#: ``state`` keys a caller may not set: the framework manages them (``config`` has its own parameter)
MANAGED_STATE_KEYS = ("config",)


def state_problem(state: Any) -> tuple[str, str, str] | None:
    """Why a caller-supplied ``state`` cannot be used: ``(path below state, message, hint)``, or None.
    ``state`` must be a map (or null) and must not set a framework-managed key."""
    if state is None:
        return None
    if not isinstance(state, dict):
        return "", f"`state` must be a map of your own keys, got {type(state).__name__}", \
            'wrap the value in a key, e.g. {"state": {"value": ...}}'
    for k in MANAGED_STATE_KEYS:
        if k in state:
            return f".{k}", f"`state.{k}` is framework-managed", \
                "change the configuration with the `config` parameter (merged into the current one)"
    return None


class HistoryMessage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One conversation history entry (the shape ``state.history`` must have)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    toolCalls: list[dict[str, Any]] | None = None
    toolCallId: str | None = None
    name: str | None = None


def check_history(history: Any) -> None:
    """Validate a user-supplied ``state.history``.

    Raises:
        msgspec.ValidationError: not a list of ``{role, content?, toolCalls?,
            toolCallId?, name?}`` maps (the message says where, e.g. ``$[3].role``).
    """
    msgspec.convert(history, list[HistoryMessage])


def opened(tx: Tx, rec: dict[str, Any]) -> dict[str, Any]:
    """Normalize an agent record opened from the store for the transitions here.

    ``tasks``, ``inbox``, ``timeline`` and ``state.history`` may be collection
    handles (the ``map_*``/``seq_*`` helpers take either); every other field,
    ``state`` itself and ``state.config`` are plain data whatever their size.
    """
    st = rec["state"]
    if type(st) is HMap:
        st = {k: tx.open(v) for k, v in st.items_raw()}
    st = {**st, "config": tx.plain(st.get("config", {}))}
    out = {**rec, "state": st, "error": tx.plain(rec.get("error")), "pending": tx.plain(rec.get("pending", {})),
           "triggers": tx.plain(rec.get("triggers", []))}
    if "sessionQueue" in rec:
        out["sessionQueue"] = tx.plain(rec["sessionQueue"])
    return out


def _user_state(state: Any) -> dict[str, Any]:
    if state is None:
        return {}
    if isinstance(state, dict):
        return {k: v for k, v in state.items() if k not in ("config", "history")}
    return {"value": state}


def new_agent(config: dict[str, Any], state: Any, ts: int) -> dict[str, Any]:
    """A new ``SLEEPING`` agent record. ``state`` that is not a map is kept under ``state/value``."""
    st = _user_state(state)
    history = state.get("history", []) if isinstance(state, dict) and isinstance(state.get("history"), list) else []
    return {"status": SLEEPING, "error": None, "created": ts, "updated": ts,
            "state": {**st, "config": config, "history": history},
            "inbox": [], "tasks": {}, "pending": {}, "timeline": [], "triggers": []}


def update(rec: dict[str, Any], config: dict[str, Any] | None, state: Any, ts: int) -> dict[str, Any]:
    """Merge ``config`` (top-level keys) and ``state`` (top-level keys) into the record."""
    st = dict(rec["state"])
    if state is not None:
        if isinstance(state, dict) and isinstance(state.get("history"), list):
            st["history"] = state["history"]
        st.update(_user_state(state))
    if config is not None:
        st["config"] = {**st["config"], **config}
    return {**rec, "state": st, "updated": ts}


def fork(src: dict[str, Any], config: dict[str, Any] | None, include_timeline: bool, ts: int,
         tx: Tx | None = None, session: str | None = None) -> dict[str, Any]:
    """A new ``SLEEPING`` agent from ``src``: state and history shared (O(1)), no work, no error.

    Sessions (when ``src`` has any) are copied with their history and nothing pending; with
    ``session``, only that one (``tx`` reads them). Raises KeyError when ``src`` has no
    session ``session``."""
    st = dict(src["state"])
    if config:
        st["config"] = {**st["config"], **config}
    out = {"status": SLEEPING, "error": None, "created": ts, "updated": ts, "state": st,
           "inbox": [], "tasks": {}, "pending": {}, "timeline": src["timeline"] if include_timeline else [],
           "triggers": []}
    if session is not None or "sessions" in src:
        out.update(S.for_fork(tx, src, session))
    return out


def enqueue_task(tx: Tx, rec: dict[str, Any], task_id: str, input: Any, caller: str, ts: int,
                 session_id: str | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add a task ``{input, caller, ts, sessionId?, ...options}`` (its id is the request's job id),
    bound to session ``session_id`` if given; ``options``: the request's ``responseSchema``,
    ``strict``, ``outputPath`` when given."""
    task = {"input": input, "caller": caller, "ts": ts}
    if session_id is not None:
        task["sessionId"] = session_id
    tasks = map_set(tx, rec["tasks"], task_id, {**task, **(options or {})})
    return {**rec, "tasks": tasks, "updated": ts}


def add_message(tx: Tx, rec: dict[str, Any], message: Any, caller: str, ts: int) -> dict[str, Any]:
    """Append a message (any JSON value) to the inbox."""
    return {**rec, "inbox": seq_append(tx, rec["inbox"], [{"message": message, "caller": caller, "ts": ts}]),
            "updated": ts}


def add_trigger(rec: dict[str, Any], job_id: str, ts: int) -> dict[str, Any]:
    """Record an ``agent:trigger`` job: the next run happens even without work."""
    return {**rec, "triggers": list(rec.get("triggers", [])) + [job_id], "updated": ts}


def cancel_task(tx: Tx, rec: dict[str, Any], task_id: str, ts: int) -> dict[str, Any]:
    """Remove a pending task (cancelled, or finished by ``agent:completeTask``/``failTask``).
    Raises KeyError when the agent has no such task."""
    return {**rec, "tasks": map_delete(tx, rec["tasks"], task_id), "updated": ts}


def suspend(rec: dict[str, Any], ts: int) -> dict[str, Any]:
    """Mark ``SUSPENDED`` (no further runs until resumed; work is kept)."""
    return {**rec, "status": SUSPENDED, "updated": ts}


def resume(rec: dict[str, Any], ts: int, auto_wake: bool = True) -> dict[str, Any]:
    """Clear the error and return to ``SLEEPING`` (``RUNNING`` via :func:`settle` when there is work)."""
    out = {**rec, "status": SLEEPING, "error": None, "updated": ts}
    return settle(out) if auto_wake else out


def terminate(rec: dict[str, Any], ts: int, tx: Tx | None = None) -> dict[str, Any]:
    """Mark ``TERMINATED``: the record, its timeline and its sessions stay; pending tasks, triggers
    and sessions' pending messages are dropped (``tx`` reads the sessions)."""
    if rec.get("sessionQueue"):
        rec = S.clear_pending(tx, rec)
    return {**rec, "status": TERMINATED, "tasks": {}, "triggers": [], "updated": ts}


def cancel_trigger(rec: dict[str, Any], job_id: str, ts: int) -> dict[str, Any]:
    """Drop a pending ``agent:trigger`` job."""
    return {**rec, "triggers": [t for t in rec["triggers"] if t != job_id], "updated": ts}


def has_task(rec: dict[str, Any], task_id: str) -> bool:
    """Whether ``task_id`` is one of the agent's pending tasks."""
    return bool(map_len(rec["tasks"])) and task_id in map_keys(rec["tasks"])


def task_of(tx: Tx, rec: dict[str, Any], task_id: str) -> dict[str, Any] | None:
    """The pending task ``{input, caller, ts}`` (plain data), or None."""
    return tx.plain(map_get(tx, rec["tasks"], task_id)) if has_task(rec, task_id) else None


def queued(rec: dict[str, Any], tx: Tx | None = None) -> int:
    """Pieces of work waiting: tasks + inbox messages + triggers + sessions' pending messages
    (``tx`` reads the sessions; required when some have pending messages)."""
    n = map_len(rec["tasks"]) + seq_len(rec["inbox"]) + len(rec["triggers"])
    if rec.get("sessionQueue"):
        if tx is None:
            raise ValueError("counting the pending messages of sessions needs a Tx")
        n += S.pending_count(tx, rec)
    return n


def has_work(rec: dict[str, Any]) -> bool:
    """Whether the agent has a task, a message, a trigger or a session's message waiting."""
    return bool(map_len(rec["tasks"]) or seq_len(rec["inbox"]) or rec.get("triggers") or rec.get("sessionQueue"))


def settle(rec: dict[str, Any]) -> dict[str, Any]:
    """Keep the scheduling invariant: SLEEPING with work -> RUNNING; RUNNING without -> SLEEPING."""
    st = rec["status"]
    if st == SLEEPING and has_work(rec):
        return {**rec, "status": RUNNING}
    if st == RUNNING and not has_work(rec):
        return {**rec, "status": SLEEPING}
    return rec


class Work(msgspec.Struct, frozen=True):
    """What one run consumes: the oldest task, every inbox message, every trigger; or, for a
    turn on a session, that session's pending messages (and the oldest task if it is bound to
    the session) and every trigger.

    Plain data (no collection handles): a task input of any size goes to the
    model as JSON and into the timeline as it came.

    Attributes:
        session: the session the run takes a turn on (None: the agent's own conversation,
            ``state.history``, and its inbox). pending: that session's pending entries it takes.
    """

    task_id: str | None
    task: dict[str, Any] | None
    messages: list[dict[str, Any]]
    triggers: list[str]
    session: str | None = None
    pending: list[dict[str, Any]] = []


def _focus(tx: Tx, rec: dict[str, Any], task_id: str | None, task: dict[str, Any] | None) -> str | None:
    """The session the next run takes a turn on: the first queued session when its oldest
    pending message is older than the oldest task (ids sort by time), else the oldest task's
    session (None: unbound, or its session was deleted)."""
    queue = rec.get("sessionQueue")
    if queue:
        first = seq_plain(tx, S.get(tx, rec, queue[0])["pending"], 0, 1)[0]["id"]
        if task_id is None or first < task_id:
            return queue[0]
    sid = task.get("sessionId") if task is not None else None
    return sid if sid is not None and S.get(tx, rec, sid) is not None else None


def pick_work(tx: Tx, rec: dict[str, Any]) -> Work:
    """The work of the next run. Without sessions: the oldest task (job ids sort by time), all
    inbox messages, all triggers. A turn on a session (see :func:`_focus`): all its pending
    messages, the oldest task if bound to it, all triggers; the inbox waits for an agent run."""
    tasks = rec["tasks"]
    task_id = map_keys(tasks)[0] if map_len(tasks) else None
    task = tx.plain(map_get(tx, tasks, task_id)) if task_id else None
    triggers = list(rec.get("triggers", []))
    sid = _focus(tx, rec, task_id, task) if "sessions" in rec else None
    if sid is None:
        return Work(task_id, task, seq_plain(tx, rec["inbox"]), triggers)
    if task is not None and task.get("sessionId") != sid:
        task_id, task = None, None
    return Work(task_id, task, [], triggers, session=sid, pending=seq_plain(tx, S.get(tx, rec, sid)["pending"]))


def timeline_entry(*, start: int, end: int, op: str, work: Work, result: Any,
                   task_status: str | None, task_output: Any) -> dict[str, Any]:
    """A timeline entry as in the Covia spec (times in Unix ms)."""
    task_results = {}
    if work.task_id is not None:
        task_results[work.task_id] = {"status": task_status, "output": task_output}
    entry = {"start": start, "end": end, "op": op,
             "tasks": [work.task["input"]] if work.task is not None else [],
             "messages": work.messages, "result": result, "taskResults": task_results}
    if work.session is not None:
        entry.update(sessionId=work.session, messages=work.pending)
    return entry


def complete_cycle(tx: Tx, rec: dict[str, Any], work: Work, *, new_history: list[dict[str, Any]],
                   entry: dict[str, Any], ts: int) -> dict[str, Any]:
    """Apply a successful run to the *current* head (a merge: work that arrived meanwhile stays).

    Removes the consumed task (if still there), the first ``len(work.messages)``
    inbox entries and the consumed triggers; appends history (a session's turn: to the
    session, :func:`ops.domain.sessions.take_turn`) and the timeline entry; clears
    ``error``; then :func:`settle`.
    """
    tasks = rec["tasks"]
    if work.task_id is not None:
        try:
            tasks = map_delete(tx, tasks, work.task_id)
        except KeyError:
            pass  # cancelled during the run
    inbox = rec["inbox"]
    if work.messages:
        inbox = list(seq_iter(tx, inbox, len(work.messages)))
    triggers = [t for t in rec.get("triggers", []) if t not in work.triggers]
    st = dict(rec["state"])
    if work.session is None:
        st["history"] = seq_append(tx, st["history"], new_history)
    out = {**rec, "tasks": tasks, "inbox": inbox, "triggers": triggers, "state": st,
           "timeline": seq_append(tx, rec["timeline"], [entry]), "error": None, "updated": ts}
    if work.session is not None:
        out = S.take_turn(tx, out, work.session, work.pending, work.task_id, new_history, ts)
    return settle(out)


def fail_cycle(rec: dict[str, Any], error: dict[str, Any], ts: int) -> dict[str, Any]:
    """A failed run: error recorded, SUSPENDED, tasks/inbox/pending kept, no timeline entry."""
    status = rec["status"] if rec["status"] == TERMINATED else SUSPENDED
    return {**rec, "status": status, "error": error, "updated": ts}


def finish_run(tx: Tx, rec: dict[str, Any], work: Work, *, new_history: list[dict[str, Any]], result: Any,
               task_status: str, task_output: Any, start: int, ts: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Apply a successful run to the agent's current record (not yet settled).

    Returns:
        ``(record, timeline entry, task status)``; the status is ``CANCELLED``
        when the task was cancelled while the run was being committed.
    """
    if work.task_id is not None and work.task_id not in map_keys(rec["tasks"]):
        task_status, task_output = "CANCELLED", None
    cfg = rec["state"]["config"]
    op = cfg.get("operation", DEFAULT_OPERATION) if isinstance(cfg, dict) else DEFAULT_OPERATION
    entry = timeline_entry(start=start, end=ts, op=op, work=work, result=result,
                           task_status=task_status if work.task_id else None, task_output=task_output)
    return complete_cycle(tx, rec, work, new_history=new_history, entry=entry, ts=ts), entry, task_status
