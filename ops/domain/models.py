"""Model references and the model exchange: plain Structs, no adapter and no I/O.

An agent's ``config.model`` is a structured reference ``{"provider": ..., ...}``
decoded into :data:`ModelRef` (a union tagged by ``provider``). The adapters
that serve them live in :mod:`ops.llm`; the pure core only needs the shapes:
what a run asks (:class:`LlmRequest`), what a model answers (:class:`LlmReply`,
:class:`ToolCall`) and how a model call fails (:class:`LlmError`).

Messages use one internal shape, close to the OpenAI chat format but with
camelCase keys as in the rest of the lattice:

* ``{"role": "system" | "user", "content": str}``
* ``{"role": "assistant", "content": str | None, "toolCalls"?: [{"id", "name", "arguments": dict}]}``
* ``{"role": "tool", "toolCallId": str, "name": str, "content": str}``

Tools are ``{"name": str, "description": str, "parameters": <JSON Schema object>}``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Union

import msgspec

__all__ = ["ToolCall", "LlmRequest", "LlmReply", "LlmError", "EchoModel", "ScriptedCall", "ScriptedRule",
           "ScriptedModel", "ErrorModel", "HangModel", "OpenAIModel", "ModelRef", "PROVIDERS", "KEY_ENV",
           "MAX_RETRY_WAIT", "check_key_env"]


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


# -- the built-in deterministic providers (DESIGN section 4) -----------------------

class EchoModel(msgspec.Struct, frozen=True, tag="echo", tag_field="provider"):
    """Replies with the content of the last user message."""

    model: str = "echo"


class ScriptedCall(msgspec.Struct, frozen=True):
    name: str
    arguments: dict[str, Any] = {}


class ScriptedRule(msgspec.Struct, frozen=True, omit_defaults=True):
    when: str | None = None
    content: str | None = None
    toolCalls: list[ScriptedCall] = []


class ScriptedModel(msgspec.Struct, frozen=True, tag="scripted", tag_field="provider"):
    """The first rule whose ``when`` is a substring of the last user or tool message answers."""

    rules: list[ScriptedRule]
    model: str = "scripted"


class ErrorModel(msgspec.Struct, frozen=True, tag="error", tag_field="provider"):
    """Every call fails with ``message``."""

    message: str = "the error provider always fails"
    model: str = "error"


class HangModel(msgspec.Struct, frozen=True, tag="hang", tag_field="provider"):
    """Never answers until cancelled."""

    model: str = "hang"


#: longest wait before a retry, seconds (a longer Retry-After is cut to this)
MAX_RETRY_WAIT = 30.0


class OpenAIModel(msgspec.Struct, frozen=True, tag="openai", tag_field="provider", forbid_unknown_fields=False):
    """A model ref for an OpenAI-compatible endpoint (no secrets).

    Attributes:
        model: The model name sent as ``model`` on the wire.
        baseUrl: The API root; ``/chat/completions`` is appended.
        apiKeyEnv: Name of the environment variable holding the API key, or
            ``None`` to send no ``Authorization`` header (local servers).
        timeout: Total seconds allowed per call; must be finite and > 0.
        temperature: Sampling temperature, omitted from the request if None.
        maxTokens: Sent as ``max_tokens``, omitted if None.
        maxRetries: Further attempts after a transient failure (429, 500, 502,
            503, 504, a dropped connection or a reply cut off mid-body), 0..10.
        retryBackoff: Seconds before the first retry, doubled for each next one
            (a 429's or 503's ``Retry-After`` wins); every wait is capped at 30 s.
    """

    model: str
    baseUrl: str = "https://api.openai.com/v1"
    apiKeyEnv: str | None = "OPENAI_API_KEY"
    timeout: float = 60.0
    temperature: float | None = None
    maxTokens: int | None = None
    maxRetries: int = 2
    retryBackoff: float = 0.5

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError("timeout must be a finite number of seconds > 0")
        if not 0 <= self.maxRetries <= 10:
            raise ValueError("maxRetries must be between 0 and 10")
        if not (0 <= self.retryBackoff <= MAX_RETRY_WAIT and math.isfinite(self.retryBackoff)):
            raise ValueError(f"retryBackoff must be between 0 and {MAX_RETRY_WAIT:g} seconds")


#: every provider's model reference, a union tagged by ``provider``
ModelRef = Union[EchoModel, ScriptedModel, ErrorModel, HangModel, OpenAIModel]
PROVIDERS = ("echo", "scripted", "error", "hang", "openai")

#: names ``apiKeyEnv`` may take: an agent config must not be able to send an arbitrary
#: server secret (``AWS_SECRET_ACCESS_KEY``, ...) to an endpoint of its choosing
KEY_ENV = re.compile(r"^[A-Z][A-Z0-9_]*_API_KEY$")


def check_key_env(name: str | None) -> str | None:
    """Return an error message when ``name`` is not an allowed ``apiKeyEnv``, else None.

    >>> check_key_env("OPENAI_API_KEY") is None
    True
    """
    if name is None or KEY_ENV.match(name):
        return None
    return f"apiKeyEnv {name!r} is not allowed: it must name a variable ending in _API_KEY (e.g. OPENAI_API_KEY)"
