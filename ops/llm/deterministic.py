"""Deterministic LLM providers, built in for offline use, tests and demos.

========== ===============================================================
provider   behaviour
========== ===============================================================
echo       replies with the content of the last user message
scripted   the first rule whose ``when`` is a substring of the last user or
           tool message (a rule without ``when`` always matches) gives the
           reply; stateless, so replays are exact
error      every call fails with an adapter error (``message`` optional)
hang       never answers until cancelled
========== ===============================================================
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..domain.models import (EchoModel, ErrorModel, HangModel, LlmError, LlmReply, LlmRequest, ScriptedModel,
                             ToolCall)

__all__ = ["EchoAdapter", "ScriptedAdapter", "ErrorAdapter", "HangAdapter"]


def _last(messages: list[dict[str, Any]], roles: tuple[str, ...]) -> str:
    for m in reversed(messages):
        if m.get("role") in roles:
            c = m.get("content")
            return c if isinstance(c, str) else ""
    return ""


class EchoAdapter:
    """Replies with the last user message's content."""

    def __init__(self, model: EchoModel):
        self.model = model

    async def complete(self, request: LlmRequest) -> LlmReply:
        return LlmReply(content=_last(request.messages, ("user",)))


class ScriptedAdapter:
    """Replies by the first matching rule; tool call ids are derived from the message count."""

    def __init__(self, model: ScriptedModel):
        self.model = model

    async def complete(self, request: LlmRequest) -> LlmReply:
        text = _last(request.messages, ("user", "tool"))
        for rule in self.model.rules:
            if rule.when is None or rule.when in text:
                n = len(request.messages)
                calls = [ToolCall(id=f"call_{n}_{i}", name=c.name, arguments=dict(c.arguments))
                         for i, c in enumerate(rule.toolCalls)]
                return LlmReply(content=rule.content, toolCalls=calls)
        raise LlmError(f"no scripted rule matched the last message {text[:80]!r}")


class ErrorAdapter:
    """Always fails with ``LlmError(message)``."""

    def __init__(self, model: ErrorModel):
        self.model = model

    async def complete(self, request: LlmRequest) -> LlmReply:
        raise LlmError(self.model.message)


class HangAdapter:
    """Never answers; the call ends only when cancelled."""

    def __init__(self, model: HangModel):
        self.model = model

    async def complete(self, request: LlmRequest) -> LlmReply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover
