"""Declarations of the session operations: ``agent:chat`` and the session family of the venue.

Sessions live in the agent record at ``g/<agentId>/sessions/<sid>/{meta, history, pending}``
(:mod:`ops.domain.sessions`), so ``covia:read``/``covia:list``/``covia:slice`` (with ``at``),
``agent:history``, ``agent:diff``, ``agent:replay`` and ``agent:fork`` cover them; the
operations here are the venue's conveniences on top, each edit a version of the agent.
Imported by :mod:`ops.domain` with :mod:`ops.domain.operations`.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from .contracts import Contract, declare
from .operations import AgentId, SessionId, Version, Wait
from .operations import _In, _Out  # the operations' input and output bases

__all__ = ["ChatInput", "ChatOutput", "SessionsInput", "SessionSummary", "SessionsOutput", "SessionReadInput",
           "SessionReadOutput", "RenameSessionInput", "RenameSessionOutput", "SessionInput", "DeleteSessionOutput",
           "CompactSessionInput", "CompactSessionOutput", "ReloadContextOutput", "QueryInput", "QueryOutput",
           "SummariseInput", "SummariseOutput", "ForkSessionInput", "ForkSessionOutput", "VersionRef"]

_Count = Annotated[int, Meta(ge=0)]


class VersionRef(_Out):
    """A version of an agent: its ``seq`` and commit ``id`` (hex)."""

    seq: int
    id: str


# -- inputs -------------------------------------------------------------------

class ChatInput(_In):
    agentId: AgentId
    message: Annotated[Any, Meta(description="the message: a string or any JSON value (not null)")]
    sessionId: SessionId | None = None
    wait: Wait = True


class SessionsInput(_In):
    agentId: AgentId
    offset: _Count = 0
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 100


class SessionReadInput(_In):
    agentId: AgentId
    sessionId: SessionId | None = None
    maxTurns: Annotated[int, Meta(ge=0, description="the last this many turns (default: all)")] | None = None
    maxChars: Annotated[int, Meta(ge=0, description="at most this many characters of messages JSON, oldest "
                                                    "cut first (default: 1 MiB)")] | None = None
    archiveDepth: Annotated[int, Meta(ge=0, le=100, description="also the turns of the last this many compactions, "
                                                                "read at the versions that hold them")] = 0
    at: Version | None = None


class RenameSessionInput(_In):
    agentId: AgentId
    sessionId: SessionId
    title: str | None = None


class SessionInput(_In):
    agentId: AgentId
    sessionId: SessionId


class CompactSessionInput(_In):
    agentId: AgentId
    sessionId: SessionId
    summary: Annotated[str, Meta(min_length=1)]
    keepTurns: Annotated[int, Meta(ge=0, description="the most recent turns kept as they are")] = 0


class QueryInput(_In):
    agentId: AgentId
    question: Annotated[Any, Meta(description="the question: a string or any JSON value (not null)")]
    sessionId: SessionId | None = None
    at: Version | None = None


class SummariseInput(_In):
    agentId: AgentId
    sessionId: SessionId | None = None
    at: Version | None = None


class ForkSessionInput(_In):
    agentId: AgentId
    sessionId: SessionId
    at: Version | None = None
    title: str | None = None


# -- outputs ------------------------------------------------------------------

class ChatOutput(_Out):
    agentId: str
    sessionId: str
    answered: list[str]
    response: Any = None


class SessionSummary(_Out):
    sessionId: str
    title: str
    created: int
    updated: int
    turnCount: int
    status: str
    parties: list[str]
    pending: int


class SessionsOutput(_Out):
    agentId: str
    sessions: list[SessionSummary]
    count: int
    total: int
    offset: int


class SessionReadOutput(_Out):
    found: bool
    agentId: str | None = None
    sessionId: str | None = None
    title: str | None = None
    created: int | None = None
    updated: int | None = None
    messages: list[dict[str, Any]] = []
    turnCount: int | None = None
    compactedTurns: int | None = None
    pending: int | None = None
    truncated: bool | None = None
    archived: list[dict[str, Any]] | None = None


class RenameSessionOutput(_Out):
    agentId: str
    sessionId: str
    title: str


class DeleteSessionOutput(_Out):
    agentId: str
    sessionId: str
    deleted: bool


class CompactSessionOutput(_Out):
    agentId: str
    sessionId: str
    compacted: bool
    archivedTurns: int
    turnCount: int
    archivedAt: VersionRef | None = None


class ReloadContextOutput(_Out):
    agentId: str
    sessionId: str
    reloaded: bool
    frames: int | None = None


class QueryOutput(_Out):
    agentId: str
    sessionId: str | None
    version: VersionRef
    response: Any = None


class SummariseOutput(_Out):
    agentId: str
    sessionId: str | None
    messages: Annotated[int, Meta(description="the conversation messages the model was given (its history window)")]
    version: VersionRef
    summary: Any = None


class ForkSessionOutput(_Out):
    agentId: str
    sessionId: str
    forkedFrom: dict[str, Any]


# -- declarations --------------------------------------------------------------

_V = "1.0.0"

declare(Contract("agent:chat", _V, "A synchronous turn: send a message on a session (a new one when sessionId is "
                 "omitted) and wait for the agent's reply; `answered` lists the messages the reply answered.",
                 ChatInput, ChatOutput, emits=("message.delivered",)))
declare(Contract("agent:sessions", _V, "List an agent's sessions, newest first (paged).",
                 SessionsInput, SessionsOutput))
declare(Contract("agent:sessionRead", _V, "Read a session's transcript (the most recently active one when "
                 "sessionId is omitted); at a version with `at`; compacted turns with `archiveDepth`.",
                 SessionReadInput, SessionReadOutput))
declare(Contract("agent:renameSession", _V, "Set a session's title.",
                 RenameSessionInput, RenameSessionOutput, emits=("session.updated",)))
declare(Contract("agent:deleteSession", _V, "Remove a session from the agent (earlier versions keep it); its "
                 "waiting chats are cancelled.", SessionInput, DeleteSessionOutput, emits=("session.deleted",)))
declare(Contract("agent:compactSession", _V, "Replace a session's older turns with a summary in the live "
                 "history; the replaced turns stay readable at the version named by `archivedAt`.",
                 CompactSessionInput, CompactSessionOutput, emits=("session.updated",)))
declare(Contract("agent:reloadContext", _V, "Check a session for the venue's context reload: a turn's context is "
                 "rebuilt from the lattice on every run here, so nothing is cached (reloaded: true, frames: 0).", SessionInput, ReloadContextOutput))
declare(Contract("agent:query", _V, "Ask the agent's model a question against a snapshot of a session (or of "
                 "the agent's own conversation) at its head or a version; no tools, nothing is written.",
                 QueryInput, QueryOutput))
declare(Contract("agent:summarise", _V, "Ask the agent's model for a summary of a session (or of the agent's own "
                 "conversation) at its head or a version, e.g. for agent:compactSession; nothing is written.",
                 SummariseInput, SummariseOutput))
declare(Contract("agent:forkSession", _V, "Copy a session, as it was at its head or a version, into a new session "
                 "of the same agent (to fork it into a new agent: agent:fork with sessionId).",
                 ForkSessionInput, ForkSessionOutput, emits=("session.created",)))
