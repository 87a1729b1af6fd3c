"""LLM adapters behind one async interface, chosen by an agent's ``config.model``.

``config.model`` is a structured reference ``{"provider": ..., ...}`` decoded
into :data:`ops.domain.models.ModelRef`; :func:`make_adapter` returns the
adapter for it. This package holds adapters only: the shapes they exchange are
in :mod:`ops.domain.models`.
"""

from __future__ import annotations

from typing import Any

from ..domain.models import (EchoModel, ErrorModel, HangModel, LlmError, LlmReply, LlmRequest, ModelRef, OpenAIModel,
                             ScriptedModel, ToolCall, check_key_env)
from .base import Adapter
from .deterministic import EchoAdapter, ErrorAdapter, HangAdapter, ScriptedAdapter
from .openai import OpenAIAdapter

__all__ = ["make_adapter", "Adapter", "LlmError", "LlmReply", "LlmRequest", "ToolCall"]

_ADAPTERS = {EchoModel: EchoAdapter, ScriptedModel: ScriptedAdapter, ErrorModel: ErrorAdapter,
             HangModel: HangAdapter, OpenAIModel: OpenAIAdapter}


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
