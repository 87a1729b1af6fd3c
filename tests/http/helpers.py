"""Shared helpers of the HTTP tests (imported as ``tests.http.helpers``).

The HTTP contract is DESIGN.md section 3, in the Covia venue's shapes: ``POST
/api/v1/invoke`` replies with a job (200 when terminal, 202 + ``Location`` while
PENDING/STARTED): ``{id, jobId, op, operation, status, input, output, error,
errorCode, created, updated}`` (``error`` the message, ``errorCode`` the code);
rejections are ``{"error": message, "errorCode", "path"?, "hint"?}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, Awaitable, Callable

from tests.ops.helpers import answer  # noqa: F401  (the HTTP tests import it from here)

INVOKE = "/api/v1/invoke"
#: max_body of the `small_client` fixture
SMALL_BODY = 4096
JOB_ID = re.compile(r"^0x[0-9a-f]{32}$")
TERMINAL = {"COMPLETE", "FAILED", "CANCELLED", "TIMEOUT"}
JOB_KEYS = {"id", "jobId", "op", "operation", "status", "input", "output", "error", "errorCode", "created", "updated"}
#: fields a job carries where they apply: its error's pointer and hint, its agent (task and trigger jobs),
#: and why a wait ended with its agent stuck
JOB_EXTRAS = {"path", "hint", "agentId", "agent"}
#: the fields of a rejection's body
ERROR_KEYS = {"error", "errorCode", "path", "hint"}

ECHO = {"model": {"provider": "echo"}}
HANG = {"model": {"provider": "hang"}}


async def invoke(client, op: str, input: Any = None) -> tuple[int, dict]:
    """POST ``{"operation": op, "input": input}``; return (HTTP status, JSON body)."""
    status, body, _ = await invoke_full(client, op, input)
    return status, body


async def invoke_full(client, op: str, input: Any = None) -> tuple[int, dict, Any]:
    """Like :func:`invoke`, also returning the response headers."""
    payload: dict[str, Any] = {"operation": op}
    if input is not None:
        payload["input"] = input
    r = await client.post(INVOKE, json=payload)
    assert r.content_type == "application/json", (r.status, await r.text())
    return r.status, await r.json(), r.headers


async def ok(client, op: str, input: Any = None) -> Any:
    """Invoke, assert a COMPLETE job with HTTP 200, return its ``output``."""
    status, body = await invoke(client, op, input)
    assert status == 200, body
    assert_job_shape(body, op)
    assert body["status"] == "COMPLETE", body
    assert body["error"] is None, body
    return body["output"]


async def failed(client, op: str, input: Any, code: str) -> dict:
    """Invoke, assert a FAILED job (HTTP 200) with ``errorCode == code`` and a message in ``error``; return the job."""
    status, body = await invoke(client, op, input)
    assert status == 200, body
    assert_job_shape(body, op)
    assert body["status"] == "FAILED", body
    assert body["output"] is None, body
    assert body["errorCode"] == code, body
    assert isinstance(body["error"], str) and body["error"], body
    return body


def assert_job_shape(body: dict, op: str | None = None) -> None:
    """The job record: :data:`JOB_KEYS`, extras only from :data:`JOB_EXTRAS`, ``id`` = ``jobId``, ``op`` = ``operation``."""
    assert set(body) - JOB_EXTRAS == JOB_KEYS, body
    assert JOB_ID.match(body["jobId"]) and body["id"] == body["jobId"], body
    assert body["op"] == body["operation"], body
    assert (body["error"] is None) == (body["errorCode"] is None), body
    if op is not None:
        assert body["operation"] == op, body
    assert isinstance(body["created"], int) and isinstance(body["updated"], int), body
    assert body["updated"] >= body["created"]


def assert_rejection(status: int, body: dict, http: int, code: str, path: str | None = None) -> dict:
    """A rejection: the status, ``{"error": message, "errorCode": code, "path"?, "hint"?}``, a non-empty message.

    Returns the error as ``{code, message, path?, hint?}`` (what callers check further).
    """
    assert status == http, (status, body)
    assert {"error", "errorCode"} <= set(body) <= ERROR_KEYS, body
    assert body["errorCode"] == code, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    if path is not None:
        assert body.get("path") == path, body
    if "hint" in body:
        assert isinstance(body["hint"], str) and body["hint"], body
    return error_of(body)


def error_of(body: dict) -> dict:
    """A rejection body or a job's error fields as ``{code, message, path?, hint?}``."""
    out = {"code": body["errorCode"], "message": body["error"]}
    out.update({k: body[k] for k in ("path", "hint") if k in body})
    return out


async def get_job(client, job_id: str) -> tuple[int, dict]:
    r = await client.get(f"/api/v1/jobs/{job_id}")
    return r.status, await r.json()


async def wait_job(client, job_id: str, statuses=TERMINAL, timeout: float = 5.0) -> dict:
    """Poll ``GET /api/v1/jobs/<id>`` until its status is in ``statuses`` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        status, job = await get_job(client, job_id)
        assert status == 200, job
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout}s"
        await asyncio.sleep(0.01)


async def until(pred: Callable[[], Awaitable[Any]], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll an async predicate until it returns a truthy value (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = await pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def read(client, path: str, **kw: Any) -> dict:
    """``covia:read`` output."""
    return await ok(client, "covia:read", {"path": path, **kw})


async def value(client, path: str) -> Any:
    out = await read(client, path)
    assert out["exists"] is True, (path, out)
    return out["value"]


async def create(client, agent_id: str, config: Any = None, **kw: Any) -> dict:
    inp = {"agentId": agent_id, **kw}
    if config is not None:
        inp["config"] = config
    return await ok(client, "agent:create", inp)


async def info(client, agent_id: str) -> dict:
    return await ok(client, "agent:info", {"agentId": agent_id})


def snapshot(store) -> tuple[list, int]:
    """Every ref (name, digest) and the object count: equal before/after means nothing changed."""
    return list(store.refs("")), len(store)


class Reader:
    """Reads a text/event-stream response event by event (comments are counted, not returned).

    Args:
        resp: the response.
        raw: keep ``data`` as the text sent rather than its JSON value.
    """

    def __init__(self, resp, raw: bool = False):
        self.resp, self.raw, self.comments = resp, raw, 0

    async def next(self, timeout: float = 5.0) -> dict | None:
        """The next event ``{event, data, id}`` (the fields sent), or None at the end of the stream."""
        ev: dict = {}
        async with asyncio.timeout(timeout):
            while True:
                line = await self.resp.content.readline()
                if not line:
                    return None
                line = line.decode().rstrip("\n")
                if not line:
                    if ev:
                        return ev
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                field, _, val = line.partition(": ")
                ev[field] = json.loads(val) if field == "data" and not self.raw else val

    async def rest(self, timeout: float = 5.0) -> list[dict]:
        """Every event until the stream ends."""
        out = []
        while (ev := await self.next(timeout)) is not None:
            out.append(ev)
        return out


async def open_stream(client, path: str, headers: dict | None = None, raw: bool = False) -> Reader:
    """GET an event stream; assert it opened as one."""
    r = await client.get(path, headers={"Accept": "text/event-stream", **(headers or {})})
    assert r.status == 200, await r.text()
    assert r.content_type == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-cache"
    return Reader(r, raw)
