"""Declarations of every operation (the Covia agent protocol and the lattice operations).

Input types reject unknown fields, so a misspelt parameter is a 400 with the
field's path rather than a silently ignored option. Output types document
each job's ``output`` (DESIGN.md section 3).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from .contracts import Contract, declare

__all__ = ["AgentId", "Wait", "DEFAULT_MAX_SIZE", "SessionId", "MaybeSession", "MAX_STEP_REPLIES",
           "VENUE_REQUEST_TIMEOUT_MS"]

AgentId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,127}(?!\n)$",
                              description="agent identifier: 1-128 of A-Z a-z 0-9 _ . : @ + -, not starting with punctuation")]
Wait = Annotated[Union[bool, Annotated[float, Meta(ge=0, description="a timeout in milliseconds")]],
                 Meta(description="true: block until the job is done; false: answer at once; a number: wait at most "
                                  "that many milliseconds")]
Path = Annotated[str, Meta(description="lattice path, e.g. g/Alice/timeline or w/invoices")]
Limit = Annotated[int, Meta(ge=1, le=10_000)]
Offset = Annotated[int, Meta(ge=0)]
Version = Union[Annotated[int, Meta(ge=0)], Annotated[str, Meta(pattern=r"^(0x)?[0-9a-fA-F]{64}(?!\n)$")]]
"""A version of an agent: its ``seq`` (0 = creation) or a commit id (64 hex digits)."""
TaskId = Annotated[str, Meta(description="task Job ID (hex)")]
#: default ``covia:read`` bound on a value's JSON size, in bytes
DEFAULT_MAX_SIZE = 1 << 20
SessionId = Annotated[str, Meta(pattern=r"^(0x)?[0-9a-fA-F]{32}(?!\n)$",
                                description="a session id as the venue minted it (0x + 32 hex digits; agent:chat "
                                            "returns it)")]
#: an optional session (UNSET when not given: the job's recorded input is as without sessions)
MaybeSession = SessionId | None | UnsetType
#: most model replies one ``agent:step`` may supply
MAX_STEP_REPLIES = 100
#: the Covia venue's wait of an ``agent:request`` that gives neither ``wait`` nor ``timeout``, ms (its own
#: route, ``/api/v1/run``, applies it; through ``/api/v1/invoke`` such a request answers at once, as the seed's)
VENUE_REQUEST_TIMEOUT_MS = 5000


class _In(Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class _Out(Struct, kw_only=True):
    pass


# -- inputs -------------------------------------------------------------------

class CreateInput(_In):
    agentId: AgentId
    config: dict[str, Any] | str | None = None
    state: Any = None
    overwrite: bool = False
    definition: Annotated[str, Meta(description="an agent definition: a template name or a w/ path holding a "
                                                "config map or the venue's legacy {agent: {operation, config}}; "
                                                "`config` is merged on top")] | UnsetType = UNSET


class UpdateInput(_In):
    agentId: AgentId
    config: dict[str, Any] | None = None
    state: Any = None


class ForkInput(_In):
    sourceId: AgentId
    agentId: AgentId
    config: dict[str, Any] | str | None = None
    includeTimeline: bool = False
    at: Version | None = None
    sessionId: MaybeSession = UNSET  # the fork gets only this session of the source
    overwrite: Annotated[bool, Meta(description="replace an existing TERMINATED agent at agentId (default false)")] \
        | UnsetType = UNSET


class AgentInput(_In):
    agentId: AgentId


class InfoInput(_In):
    agentId: AgentId
    at: Version | None = None


class ResumeInput(_In):
    agentId: AgentId
    autoWake: bool = True


class DeleteInput(_In):
    agentId: AgentId
    remove: bool = False


class CancelTaskInput(_In):
    agentId: AgentId
    taskId: TaskId
    reason: Annotated[str, Meta(description="why: the cancelled job's error message")] | UnsetType = UNSET


class CompleteTaskInput(_In):
    agentId: AgentId | UnsetType = UNSET
    taskId: TaskId | UnsetType = UNSET
    result: Any = None


class FailTaskInput(_In):
    error: Annotated[str, Meta(description="why the task failed (the job's error message)")]
    agentId: AgentId | UnsetType = UNSET
    taskId: TaskId | UnsetType = UNSET


class ListInput(_In):
    includeTerminated: bool = False
    includeForks: Annotated[bool, Meta(description="also give each agent's `headSeq` and, for a fork, `forkedFrom` "
                                                   "(O(log n) reads per agent)")] = False


class ContextInput(_In):
    agentId: AgentId
    task: Any = None
    sessionId: MaybeSession = UNSET  # the context of the next turn on this session


class TriggerInput(_In):
    agentId: AgentId
    wait: Wait = True
    sessionId: MaybeSession = UNSET  # a known session, echoed (a trigger creates none)
    force: Annotated[bool, Meta(description="true (default): run even with no work; false: a no-op on an idle "
                                            "agent")] | UnsetType = UNSET


class RequestInput(_In):
    agentId: AgentId
    input: Any
    wait: Wait | UnsetType = UNSET
    sessionId: MaybeSession = UNSET  # bind the task to this known session
    session: Annotated[dict[str, Any], Meta(description="open a new session for the task: {title?: string} "
                                                        "(the job's sessionId says which)")] | None | UnsetType = UNSET
    timeout: Annotated[int, Meta(ge=0, description="milliseconds to wait for the answer (0: answer at once); "
                                                   "not with `wait`")] | UnsetType = UNSET
    responseSchema: Annotated[dict[str, Any], Meta(description="JSON Schema of the answer")] | UnsetType = UNSET
    strict: Annotated[bool, Meta(description="an answer that does not match responseSchema fails the task "
                                             "(default false)")] | UnsetType = UNSET
    outputPath: Annotated[str, Meta(description="w/ path the answer is written to when the task completes")] \
        | UnsetType = UNSET


class MessageInput(_In):
    agentId: AgentId
    message: Any  # the notification: any JSON value but null (a plain Any: the surfaces check its integers)
    sessionId: MaybeSession = UNSET  # to this known session's pending instead of the inbox


class StepToolCall(_In):
    name: str
    arguments: dict[str, Any] = {}
    id: str | UnsetType = UNSET


class StepReply(_In):
    content: str | None = None
    toolCalls: list[StepToolCall] = []


class StepInput(_In):
    agentId: AgentId
    replies: Annotated[list[StepReply], Meta(min_length=1, max_length=MAX_STEP_REPLIES,
                                             description="the model's replies, in the order the run asks")]
    at: Version | None = None
    task: Any = UNSET


class ReadInput(_In):
    path: Path
    maxSize: Offset = DEFAULT_MAX_SIZE
    at: Version | None = None


class WriteInput(_In):
    path: Path
    value: Any


class PathInput(_In):
    path: Path


class ListPathInput(_In):
    path: Path
    offset: Offset = 0
    limit: Limit = 100
    at: Version | None = None


class SliceInput(_In):
    path: Path
    offset: Offset = 0
    limit: Limit = 100
    at: Version | None = None


ThreadId = Annotated[str, Meta(min_length=1, max_length=400,
                               description="a LangGraph thread's `thread_id` (its checkpoints are versions: ops.langgraph)")]
CheckpointNs = Annotated[str, Meta(max_length=400, description="the thread's checkpoint namespace (a subgraph's "
                                                               "`checkpoint_ns`; default \"\": the root graph)")]


class HistoryInput(_In):
    agentId: AgentId | UnsetType = UNSET
    threadId: ThreadId | UnsetType = UNSET
    ns: CheckpointNs | UnsetType = UNSET
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 50
    before: Offset | None = None


class VersionInput(_In):
    agentId: AgentId
    at: Version
    maxSize: Annotated[int, Meta(ge=0, description="bound, in bytes of JSON, on `input` and on the exchanges' "
                                                   "requests; what is over it is left out (`truncated`)")] \
        = DEFAULT_MAX_SIZE


class DiffInput(_In):
    agentId: AgentId | UnsetType = UNSET
    threadId: ThreadId | UnsetType = UNSET
    ns: CheckpointNs | UnsetType = UNSET
    from_: Version | None = msgspec.field(default=None, name="from")
    to: Version | None = None
    otherAgentId: AgentId | None = None
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 1000


class ReplayInput(_In):
    agentId: AgentId
    from_: Version | None = msgspec.field(default=None, name="from")
    to: Version | None = None
    into: AgentId | None = None
    config: dict[str, Any] | None = None


class PruneInput(_In):
    agentId: AgentId
    before: Annotated[int, Meta(ge=1, description="squash the versions with a smaller seq into one base version")] \
        | None = None
    keepLast: Annotated[int, Meta(ge=1, description="keep this many newest versions; squash the older ones")] \
        | None = None


# -- outputs ------------------------------------------------------------------

class CreateOutput(_Out):
    agentId: str
    status: str
    created: bool
    updated: bool


class StatusOutput(_Out):
    agentId: str
    status: str
    removed: bool | None = None


class ForkOutput(_Out):
    agentId: str
    status: str
    created: bool
    forkedFrom: str


class TaskFinishedOutput(_Out):
    agentId: str
    taskId: str
    status: str


class CancelTaskOutput(_Out):
    agentId: str
    taskId: str
    cancelled: bool


class MessageOutput(_Out):
    agentId: str
    delivered: bool
    sessionId: str | None = None


class ForkOrigin(_Out):
    agentId: str
    id: str
    seq: int


class InfoOutput(_Out):
    agentId: str
    status: str
    config: dict[str, Any]
    taskCount: int
    tasks: int
    timelineLength: int
    error: str | None
    errorCode: str | None = None
    forkedFrom: ForkOrigin | None = None


class AgentSummary(_Out):
    agentId: str
    status: str
    taskCount: int
    tasks: int
    error: str | None
    updated: Annotated[int, Meta(description="the agent's last change (Unix ms)")]
    errorCode: str | None = None
    headSeq: Annotated[int, Meta(description="with includeForks: the seq of its head version")] | None = None
    forkedFrom: ForkOrigin | None = None


class ListOutput(_Out):
    agents: list[AgentSummary]


class TaskResult(_Out):
    taskId: str
    status: str | None
    output: Any = None


class TriggerOutput(_Out):
    agentId: str
    status: str
    result: Any = None
    taskResults: list[TaskResult] | None = None
    sessionId: str | None = None


class ContextEntry(_Out):
    name: str
    bytes: int


class ContextOutput(_Out):
    model: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    entries: list[ContextEntry]


class ReadOutput(_Out):
    exists: bool
    value: Any = None
    valueBytes: int | None = None
    truncated: bool | None = None
    size: int | None = None
    type: str | None = None
    convexType: str | None = None


class ListPathOutput(_Out):
    exists: bool
    type: str | None = None
    convexType: str | None = None
    count: int | None = None
    keys: list[str] | None = None
    offset: int | None = None


class SliceOutput(_Out):
    exists: bool
    type: str | None = None
    convexType: str | None = None
    count: int | None = None
    values: list[Any] | None = None
    offset: int | None = None


class VersionEntry(_Out):
    seq: int
    id: str
    op: str
    ts: int
    caller: str
    checkpointId: Annotated[str | None, Meta(description="a thread's version: LangGraph's checkpoint id")] = None


class Exchange(_Out):
    digest: Annotated[str, Meta(description="the recorded digest of the canonical request (hex)")]
    reply: dict[str, Any]
    verified: Annotated[bool, Meta(description="the rebuilt request has the recorded digest")]
    request: Annotated[dict[str, Any] | None, Meta(description="the request `{model, messages, tools}`, rebuilt "
                                                               "from the run's base version (null: over maxSize, "
                                                               "or it cannot be rebuilt)")] = None


class VersionOutput(_Out):
    agentId: str
    seq: int
    id: str
    op: str
    ts: int
    caller: str
    parent: str | None
    input: Annotated[Any, Meta(description="the recorded event input (digests as hex); null when over maxSize")]
    inputSize: Annotated[int, Meta(description="bytes of JSON of the recorded input")]
    exchanges: Annotated[list[Exchange] | None, Meta(description="a completed run's model exchanges, in call "
                                                                 "order (null for any other version)")] = None
    truncated: bool = False


class HistoryOutput(_Out):
    versions: list[VersionEntry]
    agentId: Annotated[str | None, Meta(description="the agent's (absent for a thread)")] = None
    threadId: Annotated[str | None, Meta(description="the thread's (absent for an agent)")] = None
    ns: Annotated[str | None, Meta(description="the thread's checkpoint namespace")] = None


class DiffChange(_Out):
    path: str
    change: str
    before: Any = None
    after: Any = None
    beforeSize: int | None = None
    afterSize: int | None = None


class DiffOutput(_Out):
    changes: list[DiffChange]
    truncated: bool


class Divergence(_Out):
    seq: int
    path: str
    expected: Any = None
    got: Any = None


class ReplayOutput(_Out):
    agentId: str
    replayed: int
    identical: bool | None = None
    divergence: Divergence | None = None
    diverged: list[int] | None = None


class PruneOutput(_Out):
    agentId: str
    squashed: int
    base: int
    head: int


class WrittenOutput(_Out):
    written: bool
    existed: bool
    pathCreated: bool | None = None


class AppendedOutput(_Out):
    appended: bool
    existed: bool
    index: int
    newSize: int
    pathCreated: bool | None = None


class DeletedOutput(_Out):
    deleted: bool


class StepCall(_Out):
    id: str
    name: str
    arguments: dict[str, Any]
    result: str
    io: bool


class StepEdit(_Out):
    path: str
    value: Any = None


class StepMessage(_Out):
    agentId: str
    message: str


class StepOutput(_Out):
    agentId: str
    seq: int
    id: str
    taskId: str | None
    messages: int
    triggers: int
    finished: bool
    repliesUsed: int
    calls: list[StepCall]
    newMessages: list[dict[str, Any]]
    result: Any = None
    taskResults: dict[str, Any] | None = None
    taskError: dict[str, Any] | None = None
    wsEdits: list[StepEdit] = []
    outbox: list[StepMessage] = []
    next: dict[str, Any] | None = None


# -- declarations --------------------------------------------------------------

_V = "1.0.0"

declare(Contract("agent:create", _V, "Create an agent (config: inline map, template name or w/ path).",
                 CreateInput, CreateOutput, emits=("agent.created",)))
declare(Contract("agent:update", _V, "Merge new config and/or state into an agent.",
                 UpdateInput, StatusOutput, emits=("agent.updated",)))
declare(Contract("agent:fork", _V, "Create an agent from another's state and history, at its head or a version (O(1)).",
                 ForkInput, ForkOutput, emits=("agent.created",)))
declare(Contract("agent:suspend", _V, "Pause an agent; an in-flight run completes first.",
                 AgentInput, StatusOutput, emits=("agent.suspended",)))
declare(Contract("agent:resume", _V, "Clear the error, return to SLEEPING and (autoWake) process pending work.",
                 ResumeInput, StatusOutput, emits=("agent.resumed",)))
declare(Contract("agent:delete", _V, "Terminate an agent (remove: delete the record and free the name).",
                 DeleteInput, StatusOutput, emits=("agent.terminated",)))
declare(Contract("agent:cancelTask", _V, "Remove a pending task; its job becomes CANCELLED.",
                 CancelTaskInput, CancelTaskOutput, emits=("task.cancelled",)))
declare(Contract("agent:completeTask", _V, "Finish a pending task with a result (agentId + taskId name it; a run's "
                 "model uses its complete_task tool).", CompleteTaskInput, TaskFinishedOutput,
                 emits=("task.completed",)))
declare(Contract("agent:failTask", _V, "Fail a pending task with an error message (agentId + taskId name it; a "
                 "run's model uses its fail_task tool).", FailTaskInput, TaskFinishedOutput, emits=("task.failed",)))
declare(Contract("agent:step", _V, "Dry run: drive one run of the agent (at its head or a version) with supplied model "
                 "replies; report its tool calls, messages and results. Nothing is committed.",
                 StepInput, StepOutput))
declare(Contract("agent:info", _V, "A lightweight summary of an agent (at a version with `at`).",
                 InfoInput, InfoOutput))
declare(Contract("agent:list", _V, "List the caller's agents.",
                 ListInput, ListOutput))
declare(Contract("agent:context", _V, "The exact LLM input the agent would receive (optionally for a task).",
                 ContextInput, ContextOutput))
declare(Contract("agent:trigger", _V, "Run the agent's transition loop even with no pending work.",
                 TriggerInput, TriggerOutput, emits=("agent.triggered",)))
declare(Contract("agent:request", _V, "Send a persistent task; the job is the task.",
                 RequestInput, msgspec.Raw, emits=("task.created",)))
declare(Contract("agent:message", _V, "Send a fire-and-forget notification to the agent's inbox.",
                 MessageInput, MessageOutput, emits=("message.delivered",)))
declare(Contract("covia:read", _V, "Read the value at a lattice path (bounded by maxSize bytes of JSON).",
                 ReadInput, ReadOutput))
declare(Contract("covia:list", _V, "List the keys (maps, sorted, paged) or the length (lists) at a path.",
                 ListPathInput, ListPathOutput))
declare(Contract("covia:slice", _V, "Read items offset..offset+limit of a list (or entries of a map).",
                 SliceInput, SliceOutput))
declare(Contract("covia:write", _V, "Write a value at a workspace path (w/ only).",
                 WriteInput, WrittenOutput, emits=("workspace.written",)))
declare(Contract("covia:append", _V, "Append a value to the list at a workspace path (w/ only).",
                 WriteInput, AppendedOutput, emits=("workspace.written",)))
declare(Contract("covia:delete", _V, "Delete the value at a workspace path (w/ only).",
                 PathInput, DeletedOutput, emits=("workspace.written",)))
declare(Contract("agent:history", _V, "List an agent's versions, newest first (page back with `before`); with "
                 "`threadId` instead of `agentId`, a LangGraph thread's checkpoints.",
                 HistoryInput, HistoryOutput))
declare(Contract("agent:version", _V, "One version of an agent: its commit (op, caller, time, recorded input) "
                 "and, for a completed run, the model exchanges it recorded, each request rebuilt and checked "
                 "against its recorded digest.", VersionInput, VersionOutput))
declare(Contract("agent:diff", _V, "What changed between two versions of an agent, or two agents' heads; with "
                 "`threadId` instead of `agentId`, between two checkpoints of a LangGraph thread.",
                 DiffInput, DiffOutput))
declare(Contract("agent:replay", _V, "Re-run an agent's recorded events and check every root digest; "
                 "with `into`, re-apply its inputs to a new agent forked at `from` (what-if).",
                 ReplayInput, ReplayOutput, emits=("agent.created",)))
declare(Contract("agent:prune", _V, "Squash an agent's versions older than a point into one base version (the "
                 "later versions keep their seq and state); its objects are freed at the next gc.",
                 PruneInput, PruneOutput, emits=("agent.pruned",)))
