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
           "MAX_RETRY_WAIT", "DEFAULT_BASE_URL", "DEFAULT_KEY_ENV", "check_key_env", "Connection", "Connections",
           "ModelPolicyError"]


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
    """What an adapter is asked: the model ref (no secrets), messages and tools, and (when the
    task asks for structured output) ``responseFormat: {name, schema}`` with its JSON Schema."""

    model: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = []
    responseFormat: dict[str, Any] | None = None


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
#: an ``openai`` model ref's endpoint and key variable when it names neither
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class OpenAIModel(msgspec.Struct, frozen=True, tag="openai", tag_field="provider", forbid_unknown_fields=False):
    """A model ref for an OpenAI-compatible endpoint (no secrets).

    Attributes:
        model: The model name sent as ``model`` on the wire.
        baseUrl: The API root; ``/chat/completions`` is appended.
        apiKeyEnv: Name of the environment variable holding the API key, or
            ``None`` to send no ``Authorization`` header (local servers).
        connection: The name of a connection the operator declared
            (:class:`Connection`): the server then supplies ``baseUrl`` and
            ``apiKeyEnv``, and the config must not give them.
        timeout: Total seconds allowed per call; must be finite and > 0.
        temperature: Sampling temperature, omitted from the request if None.
        maxTokens: Sent as ``max_tokens``, omitted if None.
        maxRetries: Further attempts after a transient failure (429, 500, 502,
            503, 504, a dropped connection or a reply cut off mid-body), 0..10.
        retryBackoff: Seconds before the first retry, doubled for each next one
            (a 429's or 503's ``Retry-After`` wins); every wait is capped at 30 s.
    """

    model: str
    baseUrl: str = DEFAULT_BASE_URL
    apiKeyEnv: str | None = DEFAULT_KEY_ENV
    connection: str | None = None
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


# -- model connections the operator declares ------------------------------------------

class Connection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An endpoint the operator declared (``lattice serve --models FILE``), named by agents'
    ``model.connection``. Source: the operator's file (trusted).

    Attributes:
        baseUrl: the API root. apiKeyEnv: the environment variable holding its key
            (None: no key). provider: the wire protocol (``openai``).
    """

    baseUrl: str
    apiKeyEnv: str | None = None
    provider: str = "openai"

    def __post_init__(self) -> None:
        if self.provider != "openai":
            raise ValueError(f"provider {self.provider!r} is not one of: openai")
        err = check_key_env(self.apiKeyEnv)
        if err:
            raise ValueError(err)


class ModelPolicyError(Exception):
    """A model ref the server will not serve: ``code`` (``forbidden``, ``invalid_config``),
    ``message``, ``path`` (below the config) and ``hint``."""

    def __init__(self, code: str, message: str, path: str, hint: str):
        super().__init__(message)
        self.code, self.message, self.path, self.hint = code, message, path, hint


def _norm(url: str) -> str:
    return url.rstrip("/")


class Connections:
    """The declared connections, and the rule a model ref must follow.

    With ``strict`` (the server has several callers: tokens are on), model requests go only
    to declared endpoints and each key only to the endpoint declared with it: an ``openai``
    ref names a ``connection``, or its ``baseUrl`` and ``apiKeyEnv`` (defaults included) are
    exactly a declared pair. Without ``strict`` (one local user), inline endpoints work too.

    Args:
        declared: ``{name: Connection}``. strict: see above.

    >>> c = Connections({"oa": Connection(baseUrl="https://api.openai.com/v1", apiKeyEnv="OPENAI_API_KEY")}, True)
    >>> c.check({"provider": "openai", "model": "m", "connection": "oa"}) is None
    True
    >>> c.check({"provider": "openai", "model": "m", "baseUrl": "http://evil.example/v1"}).code
    'forbidden'
    """

    def __init__(self, declared: dict[str, Connection] | None = None, strict: bool = False):
        self.declared, self.strict = dict(declared or {}), strict

    @classmethod
    def parse(cls, data: Any, strict: bool) -> "Connections":
        """From the operator's JSON object ``{name: {baseUrl, apiKeyEnv?, provider?}}``.

        Raises:
            msgspec.ValidationError: the shape is wrong (the message says where).
        """
        return cls(msgspec.convert(data, dict[str, Connection]), strict)

    def names(self) -> str:
        return ", ".join(sorted(self.declared)) or "none declared (lattice serve --models FILE)"

    def check(self, model: Any) -> ModelPolicyError | None:
        """Why the server will not serve the raw model ref ``model`` (a config's ``model`` map), or None."""
        if not isinstance(model, dict) or model.get("provider") != "openai":
            return None
        name = model.get("connection")
        if name is not None:
            if name not in self.declared:
                return ModelPolicyError("invalid_config", f"no model connection {name!r}", ".model.connection",
                                        f"declared connections: {self.names()}")
            inline = [k for k in ("baseUrl", "apiKeyEnv") if k in model]
            if inline:
                return ModelPolicyError("invalid_config", f"give either `connection` or `{inline[0]}`, not both",
                                        f".model.{inline[0]}", "the connection supplies the endpoint and its key")
            return None
        if not self.strict:
            return None
        base, key = _norm(model.get("baseUrl", DEFAULT_BASE_URL)), model.get("apiKeyEnv", DEFAULT_KEY_ENV)
        if any(_norm(c.baseUrl) == base and c.apiKeyEnv == key for c in self.declared.values()):
            return None
        where = "baseUrl" if "baseUrl" in model or "apiKeyEnv" not in model else "apiKeyEnv"
        return ModelPolicyError("forbidden", f"this server sends model requests only to the endpoints its operator "
                                             f"declared, each with its own key: {base} with {key} is not one",
                                f".model.{where}",
                                f'name a declared connection instead, e.g. {{"connection": "<name>"}}; '
                                f"declared: {self.names()}")

    def resolve(self, model: OpenAIModel) -> OpenAIModel:
        """``model`` with its connection's endpoint and key variable filled in (a declared
        connection wins over anything inline).

        Raises:
            LlmError: ``llm_config`` when the ref is not allowed (see :meth:`check`), e.g. an
                agent created before the operator turned tokens on or changed the connections.
        """
        if model.connection is not None:
            c = self.declared.get(model.connection)
            if c is None:
                raise LlmError(f"no model connection {model.connection!r} (declared: {self.names()})", "llm_config")
            return msgspec.structs.replace(model, baseUrl=c.baseUrl, apiKeyEnv=c.apiKeyEnv)
        err = self.check(_explicit(model))
        if err is not None:
            raise LlmError(f"{err.message} ({err.hint})", "llm_config")
        return model


def _explicit(model: OpenAIModel) -> dict[str, Any]:
    return {"provider": "openai", "baseUrl": model.baseUrl, "apiKeyEnv": model.apiKeyEnv}
