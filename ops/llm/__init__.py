"""LLM adapters behind one async interface, chosen by an agent's ``config.model``.

``config.model`` is a structured reference ``{"provider": ..., ...}`` decoded
into :data:`ModelRef`; :func:`make_adapter` returns the adapter for it.
"""

from __future__ import annotations

import re
from typing import Any, Union


from .base import Adapter, LlmError, LlmReply, LlmRequest, ToolCall
from .deterministic import (EchoAdapter, EchoModel, ErrorAdapter, ErrorModel, HangAdapter, HangModel,
                            ScriptedAdapter, ScriptedModel)
from .openai import OpenAIAdapter, OpenAIModel

__all__ = ["ModelRef", "PROVIDERS", "KEY_ENV", "check_key_env", "make_adapter", "Adapter", "LlmError", "LlmReply",
           "LlmRequest", "ToolCall"]

#: every provider's model reference, a union tagged by ``provider``
ModelRef = Union[EchoModel, ScriptedModel, ErrorModel, HangModel, OpenAIModel]
PROVIDERS = ("echo", "scripted", "error", "hang", "openai")

_ADAPTERS = {EchoModel: EchoAdapter, ScriptedModel: ScriptedAdapter, ErrorModel: ErrorAdapter,
             HangModel: HangAdapter, OpenAIModel: OpenAIAdapter}




#: names ``apiKeyEnv`` may take: an agent config must not be able to send an arbitrary
#: server secret (``AWS_SECRET_ACCESS_KEY``, ...) to an endpoint of its choosing
KEY_ENV = re.compile(r"^[A-Z][A-Z0-9_]*_API_KEY$")


def check_key_env(name: str | None) -> str | None:
    """Return an error message when ``name`` is not an allowed ``apiKeyEnv``, else None."""
    if name is None or KEY_ENV.match(name):
        return None
    return f"apiKeyEnv {name!r} is not allowed: it must name a variable ending in _API_KEY (e.g. OPENAI_API_KEY)"


def make_adapter(model: ModelRef, **kwargs: Any) -> Adapter:
    """Return the adapter serving ``model`` (``kwargs`` go to the OpenAI adapter).

    Raises:
        LlmError: ``llm_config`` when the model's ``apiKeyEnv`` is not allowed.
    """
    cls = _ADAPTERS[type(model)]
    if cls is OpenAIAdapter:
        err = check_key_env(model.apiKeyEnv)
        if err:
            raise LlmError(err, "llm_config")
        return cls(model, **kwargs)
    return cls(model)
