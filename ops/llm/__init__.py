"""LLM adapters behind one async interface, chosen by an agent's ``config.model``.

``config.model`` is a structured reference ``{"provider": ..., ...}`` decoded
into :data:`ModelRef`; :func:`make_adapter` returns the adapter for it.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from .base import Adapter, LlmError, LlmReply, LlmRequest, ToolCall
from .deterministic import (EchoAdapter, EchoModel, ErrorAdapter, ErrorModel, HangAdapter, HangModel,
                            ScriptedAdapter, ScriptedModel)
from .openai import OpenAIAdapter, OpenAIModel

__all__ = ["ModelRef", "PROVIDERS", "parse_model", "make_adapter", "Adapter", "LlmError", "LlmReply",
           "LlmRequest", "ToolCall"]

#: every provider's model reference, a union tagged by ``provider``
ModelRef = Union[EchoModel, ScriptedModel, ErrorModel, HangModel, OpenAIModel]
PROVIDERS = ("echo", "scripted", "error", "hang", "openai")

_ADAPTERS = {EchoModel: EchoAdapter, ScriptedModel: ScriptedAdapter, ErrorModel: ErrorAdapter,
             HangModel: HangAdapter, OpenAIModel: OpenAIAdapter}


def parse_model(value: Any) -> ModelRef:
    """Decode a model reference.

    Raises:
        msgspec.ValidationError: unknown provider or bad fields (message says where).
    """
    return msgspec.convert(value, ModelRef)


def make_adapter(model: ModelRef, **kwargs: Any) -> Adapter:
    """Return the adapter serving ``model`` (``kwargs`` go to the OpenAI adapter)."""
    cls = _ADAPTERS[type(model)]
    return cls(model, **kwargs) if cls is OpenAIAdapter else cls(model)
