"""The LLM adapter interface: one async call from a request to a reply.

Messages use one internal shape, close to the OpenAI chat format but with
camelCase keys as in the rest of the lattice:

* ``{"role": "system" | "user", "content": str}``
* ``{"role": "assistant", "content": str | None, "toolCalls"?: [{"id", "name", "arguments": dict}]}``
* ``{"role": "tool", "toolCallId": str, "name": str, "content": str}``

Tools are ``{"name": str, "description": str, "parameters": <JSON Schema object>}``.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

__all__ = ["ToolCall", "LlmRequest", "LlmReply", "LlmError", "Adapter"]


class ToolCall(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tool call the model asked for.

    ``arguments`` is the decoded JSON object. When the model sent arguments
    that are not a JSON object, ``arguments`` is ``{}`` and ``invalid`` holds
    the raw text (the run loop reports that back to the model as a tool error).
    """

    id: str
    name: str
    arguments: dict[str, Any] = {}
    invalid: str | None = None


class LlmRequest(msgspec.Struct, frozen=True):
    """What an adapter is asked: the model ref (no secrets), messages and tools."""

    model: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = []


class LlmReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a model answered. Source: the model (untrusted)."""

    content: str | None = None
    toolCalls: list[ToolCall] = []


class LlmError(Exception):
    """An adapter failure: the run loop suspends the agent with ``code`` and ``message``.

    Codes: ``llm_error`` (the provider failed or answered garbage),
    ``llm_timeout`` (no answer in time), ``llm_config`` (bad model ref or
    missing credentials).
    """

    def __init__(self, message: str, code: str = "llm_error"):
        super().__init__(message)
        self.code = code
        self.message = message


class Adapter(Protocol):
    """One model endpoint. ``complete`` may be cancelled at any await point."""

    async def complete(self, request: LlmRequest) -> LlmReply:
        """Return the model's reply to ``request``.

        Raises:
            LlmError: the call failed; the message never contains a credential.
        """
