"""Helpers of the Covia SDK tests: agent configs, unique names, error codes, polling, bounded event streams.

Imported as ``tests.covia.helpers`` (no module name clashes with other test dirs).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from covia import GridError

__all__ = ["SCRIPTED", "HANG", "FAILING", "ANSWER", "uid", "code_of", "eventually", "drain"]

T = TypeVar("T")

#: the answer of :data:`SCRIPTED` to a request that mentions "overdue" (a task output: an object)
ANSWER = {"answer": "Acme (INV-2026-017) is overdue."}

#: an offline, deterministic agent config: the `scripted` model's first rule whose `when` is in the last message answers
SCRIPTED: dict[str, Any] = {"systemPrompt": "You track vendor invoices.", "model": {"provider": "scripted", "rules": [
    {"when": "overdue", "toolCalls": [{"name": "complete_task", "arguments": {"output": ANSWER}}]},
    {"when": "refuse", "toolCalls": [{"name": "fail_task", "arguments": {"error": "I cannot do that."}}]},
    {"when": "weather", "content": "Sunny all day."},
    {"when": "name", "content": "I am Helper."},
    {"content": "Noted."}]}}

#: a model that never answers until its run is cancelled: work stays in flight
HANG: dict[str, Any] = {"model": {"provider": "hang"}}

#: a model whose every call fails: the run fails, the agent is suspended with the error
FAILING: dict[str, Any] = {"model": {"provider": "error", "message": "model unavailable"}}

def uid(prefix: str) -> str:
    """A name no other test uses on the shared server: ``<prefix>-<8 hex digits>``."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def code_of(exc: GridError) -> str | None:
    """The stable error code of a call the server refused: ``error.code`` of the body (``{"error": {code,
    message}}``), else its ``errorCode`` (the venue's ``{"error": "<message>", "errorCode": ...}``)."""
    body = exc.response_body
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("code")
    return body.get("errorCode") or body.get("code")


def eventually(get: Callable[[], T], ok: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Call ``get`` until ``ok`` holds for its result (every 20 ms); the last result, or AssertionError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r} after {timeout}s"
        time.sleep(0.02)


def drain(events: Iterator[Any], timeout: float = 20.0) -> list[Any]:
    """Every event of a stream until it ends, read in a thread so that a stream that never ends fails the test
    (AssertionError after ``timeout`` seconds) instead of hanging it."""
    got: list[Any] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            got.extend(events)
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            failure.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"the stream did not end within {timeout}s; events so far: {got}"
    if failure:
        raise failure[0]
    return got
