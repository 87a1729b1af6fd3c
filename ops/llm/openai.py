"""An adapter for OpenAI-compatible chat-completions endpoints.

Speaks the ``POST {baseUrl}/chat/completions`` wire format (non-streaming),
which OpenAI, vLLM, Ollama, llama.cpp's server and LiteLLM all accept. The
internal message shape (see :mod:`ops.llm.base`) is converted to the wire
shape on the way out and the reply is decoded with a lenient typed schema on
the way back.

The API key is read from the environment at call time (the model ref only
names the variable) and is scrubbed from every error message, so it never
reaches logs, events or exceptions.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import os
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import msgspec

from ..domain.models import MAX_RETRY_WAIT, LlmError, LlmReply, LlmRequest, OpenAIModel, ToolCall

__all__ = ["OpenAIAdapter", "RETRY_STATUSES"]

_EXCERPT_CHARS = 300
_INVALID_ARGS_CHARS = 1000
_REDACTED = "[REDACTED]"


#: statuses worth another attempt: rate limited, or the server side failed
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Transient(LlmError):
    """A failure worth retrying: the connection dropped or the reply was cut off."""


# --- reply schema (lenient: unknown fields are ignored) ---------------------


class _WireFunction(msgspec.Struct):
    name: str
    arguments: Any = None


class _WireToolCall(msgspec.Struct):
    function: _WireFunction
    id: str | None = None
    type: str | None = "function"


class _WireMessage(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_WireToolCall] | None = None


class _WireChoice(msgspec.Struct):
    message: _WireMessage


class _WireReply(msgspec.Struct):
    choices: list[_WireChoice] | None = None
    error: Any = None


_reply_decoder = msgspec.json.Decoder(_WireReply)
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class OpenAIAdapter:
    """Calls an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: The model ref.
        session: An ``aiohttp.ClientSession`` to reuse (the caller owns and
            closes it). When None, each call opens and closes its own session.
        environ: Where to look up ``model.apiKeyEnv``; defaults to
            ``os.environ``, read at call time.
    """

    def __init__(
        self,
        model: OpenAIModel,
        *,
        session: aiohttp.ClientSession | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.model = model
        self._session = session
        self._environ = environ

    def __repr__(self) -> str:
        return f"OpenAIAdapter(model={self.model.model!r}, baseUrl={self.model.baseUrl!r})"

    @property
    def url(self) -> str:
        """The chat-completions URL this adapter posts to."""
        return self.model.baseUrl.rstrip("/") + "/chat/completions"

    async def complete(self, request: LlmRequest) -> LlmReply:
        """Send ``request`` to the endpoint and return the model's reply.

        ``request.model`` is not consulted; the adapter's own model ref wins.

        Args:
            request: Messages and tools in the internal shape.

        Returns:
            The reply. Source: the model endpoint (untrusted). Tool-call
            arguments that are not a JSON object come back as ``{}`` with the
            raw text (at most 1000 characters) in ``ToolCall.invalid``.

        Transient failures (see ``OpenAIModel.maxRetries``) are retried with
        backoff; timeouts, other statuses and malformed replies are not (the
        run loop suspends the agent with the error, and ``agent:resume`` retries).

        Raises:
            LlmError: ``llm_config`` when the API key variable is not set or the
                URL is invalid; ``llm_timeout`` when no full answer arrived
                within ``model.timeout``; ``llm_error`` for connection
                failures and retryable statuses once the retries are spent,
                other non-2xx statuses and malformed replies. The message
                never contains the API key.
        """
        key = self._api_key()
        try:
            return await self._complete(request, key)
        except LlmError as exc:
            # Defence in depth: whatever path built the message, scrub it.
            raise LlmError(_scrub(exc.message, key), exc.code) from None

    # --- internals ---------------------------------------------------------

    def _api_key(self) -> str | None:
        name = self.model.apiKeyEnv
        if name is None:
            return None
        environ = os.environ if self._environ is None else self._environ
        key = environ.get(name)
        if key is None:
            raise LlmError(f"environment variable {name} is not set", "llm_config")
        if not key.strip():
            raise LlmError(f"environment variable {name} is empty", "llm_config")
        return key

    def _payload(self, request: LlmRequest) -> bytes:
        body: dict[str, Any] = {
            "model": self.model.model,
            "messages": [_wire_message(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.get("name"),
                        "description": t.get("description", ""),
                        "parameters": t.get("parameters", {"type": "object", "properties": {}}),
                    },
                }
                for t in request.tools
            ]
        if request.responseFormat is not None:  # structured output; our own check enforces `strict`
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.responseFormat.get("name", "response"),
                "schema": request.responseFormat.get("schema", {}), "strict": False}}
        if self.model.temperature is not None:
            body["temperature"] = self.model.temperature
        if self.model.maxTokens is not None:
            body["max_tokens"] = self.model.maxTokens
        try:
            return _encoder.encode(body)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise LlmError(f"cannot encode request: {exc}", "llm_error") from None

    async def _complete(self, request: LlmRequest, key: str | None) -> LlmReply:
        payload = self._payload(request)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        attempt = 0
        while True:
            wait = None
            try:
                if self._session is not None:
                    status, body, wait = await self._post(self._session, payload, headers)
                else:
                    async with aiohttp.ClientSession() as session:
                        status, body, wait = await self._post(session, payload, headers)
            except _Transient as exc:
                error = exc
            else:
                if 200 <= status < 300:
                    return _parse_reply(body)
                if 300 <= status < 400:  # never followed: the request and its key go to the declared host only
                    raise LlmError(f"model endpoint {self.url} answered {status} (a redirect); redirects are not "
                                   "followed: configure the endpoint's final URL", "llm_error")
                error = LlmError(_status_message(status, body, key), "llm_error")
                if status not in RETRY_STATUSES:
                    raise error
            if attempt >= self.model.maxRetries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise LlmError(error.message + tries, "llm_error")
            delay = self.model.retryBackoff * (2 ** attempt) if wait is None else wait
            await asyncio.sleep(min(delay, MAX_RETRY_WAIT))
            attempt += 1

    async def _post(
        self, session: aiohttp.ClientSession, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, float | None]:
        url = self.url
        timeout = aiohttp.ClientTimeout(total=self.model.timeout)
        try:
            async with session.post(url, data=payload, headers=headers, timeout=timeout,
                                    allow_redirects=False) as resp:
                parts, size = [], 0
                while chunk := await resp.content.read(1 << 16):  # up to EOF: a read returns what has arrived
                    parts.append(chunk)
                    size += len(chunk)
                    if size > MAX_REPLY_BYTES:
                        raise LlmError(f"model endpoint {url} sent a reply over {MAX_REPLY_BYTES} bytes", "llm_error")
                body = b"".join(parts)
                if resp.content_length is not None and len(body) < resp.content_length:
                    raise _Transient(f"reply from {url} was cut off after {len(body)} of "
                                     f"{resp.content_length} bytes", "llm_error")
                return resp.status, body, _retry_after(resp.headers.get("Retry-After"))
        except (asyncio.TimeoutError, TimeoutError):
            raise LlmError(
                f"model endpoint {url} did not answer within {self.model.timeout:g} s",
                "llm_timeout",
            ) from None
        except aiohttp.InvalidURL:
            raise LlmError(f"invalid model endpoint URL {url!r}", "llm_config") from None
        except aiohttp.ClientPayloadError as exc:
            raise _Transient(f"reply from {url} was cut off: {type(exc).__name__}", "llm_error") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Transient(
                f"cannot reach model endpoint {url}: {type(exc).__name__}: {exc}", "llm_error"
            ) from None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


#: largest reply body read from a model endpoint, bytes
MAX_REPLY_BYTES = 16 << 20


# --- conversion helpers -----------------------------------------------------


def _wire_message(msg: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one internal message to the chat-completions wire shape."""
    role = msg.get("role")
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
        calls = msg.get("toolCalls") or []
        if calls:
            out["tool_calls"] = [_wire_tool_call(c) for c in calls]
        return out
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": msg.get("toolCallId"),
            "content": msg.get("content", ""),
        }
    return dict(msg)


def _wire_tool_call(call: Any) -> dict[str, Any]:
    if isinstance(call, ToolCall):
        cid, name, args = call.id, call.name, call.arguments
    else:
        cid, name, args = call.get("id"), call.get("name"), call.get("arguments", {})
    return {
        "id": cid,
        "type": "function",
        "function": {"name": name, "arguments": _encoder.encode(args or {}).decode()},
    }


def _parse_reply(body: bytes) -> LlmReply:
    try:
        wire = _reply_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise LlmError(f"malformed reply: {exc}", "llm_error") from None
    if not wire.choices:
        if wire.error is not None:
            detail = _error_detail(wire.error) or "error without message"
            raise LlmError(f"model endpoint error: {_excerpt(detail)}", "llm_error")
        raise LlmError("malformed reply: no choices", "llm_error")
    message = wire.choices[0].message
    calls = [
        _tool_call(c, i)
        for i, c in enumerate(message.tool_calls or [])
        if c.type in (None, "function")
    ]
    return LlmReply(content=message.content, toolCalls=calls)


def _tool_call(call: _WireToolCall, index: int) -> ToolCall:
    cid = call.id or f"call_{index}"
    name = call.function.name
    raw = call.function.arguments
    if raw is None:
        return ToolCall(id=cid, name=name, arguments={})
    if isinstance(raw, dict):  # some servers send an object instead of a string
        return ToolCall(id=cid, name=name, arguments=raw)
    if isinstance(raw, str):
        if not raw.strip():  # no-argument calls from some local servers
            return ToolCall(id=cid, name=name, arguments={})
        try:
            args = _any_decoder.decode(raw)
        except msgspec.DecodeError:
            args = None
        if isinstance(args, dict):
            return ToolCall(id=cid, name=name, arguments=args)
        text = raw
    else:
        text = _encoder.encode(raw).decode()
    return ToolCall(id=cid, name=name, arguments={}, invalid=text[:_INVALID_ARGS_CHARS])


def _error_detail(error: Any) -> str | None:
    """The human message of an error value (``{"message": ...}`` or a string)."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        msg = error.get("message")
        if isinstance(msg, str) and msg:
            return msg
        if isinstance(error.get("error"), (str, dict)):
            return _error_detail(error["error"])
    return None


def _status_message(status: int, body: bytes, key: str | None) -> str:
    detail: str | None = None
    try:
        doc = _any_decoder.decode(body)
    except msgspec.DecodeError:
        doc = None
    if isinstance(doc, dict):
        detail = _error_detail(doc)
    if detail is None:
        detail = body.decode("utf-8", errors="replace")
    detail = _excerpt(_scrub(detail, key))
    return f"model endpoint returned HTTP {status}" + (f": {detail}" if detail else "")


def _excerpt(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 3] + "..."
    return text


def _scrub(text: str, key: str | None) -> str:
    if key:
        text = text.replace(key, _REDACTED)
    return text
