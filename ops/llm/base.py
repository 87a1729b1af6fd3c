"""The LLM adapter interface: one async call from a request to a reply.

The exchanged types live in :mod:`ops.domain.models` (the pure core uses them);
they are re-exported here for adapters.

Messages use one internal shape, close to the OpenAI chat format but with
camelCase keys as in the rest of the lattice:

* ``{"role": "system" | "user", "content": str}``
* ``{"role": "assistant", "content": str | None, "toolCalls"?: [{"id", "name", "arguments": dict}]}``
* ``{"role": "tool", "toolCallId": str, "name": str, "content": str}``

Tools are ``{"name": str, "description": str, "parameters": <JSON Schema object>}``.
"""

from __future__ import annotations

from typing import Protocol

from ..domain.models import LlmError, LlmReply, LlmRequest, ToolCall

__all__ = ["ToolCall", "LlmRequest", "LlmReply", "LlmError", "Adapter"]


class Adapter(Protocol):
    """One model endpoint. ``complete`` may be cancelled at any await point."""

    async def complete(self, request: LlmRequest) -> LlmReply:
        """Return the model's reply to ``request``.

        Raises:
            LlmError: the call failed; the message never contains a credential.
        """
