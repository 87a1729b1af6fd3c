"""Async Python client of the HTTP API (aiohttp), generated from the operation contracts.

One method per operation, named after its key in snake case (``agent:create``
-> :meth:`Client.agent_create`, ``agent:cancelTask`` -> ``agent_cancel_task``),
whose keyword arguments are the fields of the contract's input Struct (checked
locally against it before anything is sent) and whose result is the operation's
:class:`Job`, its ``output`` decoded into the contract's output Struct when the
job is COMPLETE. Plus job waiting (:meth:`Client.wait`, over the job's event
stream), event streams (:meth:`Client.job_updates`, :meth:`Client.stream`,
:meth:`Client.agent_events` which resumes by itself after a dropped
connection), and the catalog, status and OpenAPI document.

Example::

    async with Client("http://127.0.0.1:7770") as lat:
        await lat.agent_create(agentId="Alice", config="vendor-assistant")
        job = await lat.agent_request(agentId="Alice", input={"question": "Overdue?"}, wait=True)
        print(job.status, job.output)
        info = (await lat.agent_info(agentId="Alice")).result()   # InfoOutput, or raises JobFailed
        print(info.timelineLength)

Errors: a request refused by the server raises :class:`Rejected` (HTTP status,
code, message, path, hint: the body's ``errorCode``, ``error``, ``path``, ``hint``);
input that violates the contract raises it before sending (status 0, code
``invalid_input``); :meth:`Job.result` raises :class:`JobFailed` for a job that
did not complete.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote

import aiohttp
import msgspec

from ..domain import operations as _operations  # noqa: F401  (declares every operation)
from ..domain.contracts import REGISTRY, Contract, decode_input, lookup
from ..domain.errors import Rejected as _ServerRejected
from ..domain.jobs import TERMINAL

__all__ = ["Client", "Job", "AgentVersion", "Rejected", "JobFailed", "method_name", "DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:7770"


class Rejected(Exception):
    """A request refused before any job existed (HTTP 4xx/5xx; status 0: refused locally).

    Attributes:
        status: the HTTP status (0 when the client refused the input itself).
        code: stable snake_case code (``invalid_input``, ``not_found``...).
        message: what was expected, what was found, and where.
        path: pointer into the request, when there is one.
        hint: how to fix it, when there is one.
    """

    def __init__(self, status: int, code: str, message: str, path: str | None = None, hint: str | None = None):
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status, self.code, self.message, self.path, self.hint = status, code, message, path, hint


class JobFailed(Exception):
    """:meth:`Job.result` of a job that ended FAILED, CANCELLED or TIMEOUT (or is not finished).

    Attributes:
        job: the job. code: its ``errorCode`` (or its status in lower case).
    """

    def __init__(self, job: "Job"):
        text = f"{job.errorCode}: {job.error}" if job.error else f"job is {job.status}"
        super().__init__(f"{job.operation} {job.jobId} {job.status}: {text}")
        self.job = job
        self.code = job.errorCode or job.status.lower()


class Job(msgspec.Struct, kw_only=True):
    """A job, as the server returns it (the Covia venue's record: ``id``, ``op``, ``error`` the message,
    ``errorCode``; and ``jobId``, ``operation``); ``output`` is the contract's output Struct once COMPLETE."""

    id: str
    jobId: str
    op: str
    operation: str
    status: str
    input: Any = None
    output: Any = None
    error: str | None = None
    errorCode: str | None = None
    created: int
    updated: int
    path: str | None = None
    hint: str | None = None
    agentId: str | None = None
    agent: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the status is terminal (COMPLETE, FAILED, CANCELLED, TIMEOUT)."""
        return self.status in TERMINAL

    def result(self) -> Any:
        """The output of a COMPLETE job.

        Raises:
            JobFailed: the job is not COMPLETE.
        """
        if self.status != "COMPLETE":
            raise JobFailed(self)
        return self.output


class AgentVersion(msgspec.Struct, kw_only=True):
    """One version of an agent, from :meth:`Client.agent_events`."""

    agentId: str
    seq: int
    id: str
    op: str
    status: str | None
    ts: int


def method_name(contract: Contract) -> str:
    """The client method of an operation: ``agent:cancelTask`` -> ``agent_cancel_task``."""
    return contract.snake_name


def _decode_job(data: Any) -> Job:
    job = msgspec.convert(data, Job)
    if job.status == "COMPLETE" and job.output is not None and job.operation in REGISTRY:
        out_type = REGISTRY[job.operation].output
        if isinstance(out_type, type) and issubclass(out_type, msgspec.Struct):
            job.output = msgspec.convert(job.output, out_type)
    return job


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str, str | None]]:
    """Parse a ``text/event-stream`` body: yield ``(event, data, id)``; comments are skipped.

    Source: the server's response (trusted to be an event stream, not to be well formed).
    """
    event, data, eid = "message", [], None
    async for raw in resp.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data), eid
            event, data, eid = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            eid = value


class Client:
    """Async client of a running ``lattice serve``.

    Args:
        url: the server's base URL (default ``http://127.0.0.1:7770``).
        session: an aiohttp session to use (default: one of its own, closed by :meth:`close`).
        headers: headers sent with every request (on a given session too).
        token: a bearer token (for a server run with ``--tokens``), sent as
            ``Authorization: Bearer <token>`` with every request; None: none.

    Use it as an async context manager, or call :meth:`close`. A server that
    cannot be reached raises :class:`aiohttp.ClientError` (as from aiohttp).
    """

    def __init__(self, url: str = DEFAULT_URL, *, session: aiohttp.ClientSession | None = None,
                 headers: dict[str, str] | None = None, token: str | None = None):
        self.url = url.rstrip("/")
        self._own = session is None
        self._session = session
        self._headers = dict(headers or {})
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session requests go through (created at first use unless one was given)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the session, if it is the client's own."""
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- plumbing --------------------------------------------------------------------
    @staticmethod
    async def _check(resp: aiohttp.ClientResponse) -> Any:
        if resp.status >= 400:
            try:
                err = await resp.json(content_type=None)
                raise Rejected(resp.status, err["errorCode"], err["error"], err.get("path"), err.get("hint"))
            except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
                raise Rejected(resp.status, "http_error", (await resp.text())[:500]) from None
        return await resp.json(content_type=None)

    async def _get(self, path: str) -> Any:
        async with self.session.get(self.url + path, headers=self._headers) as r:
            return await self._check(r)

    # -- operations ------------------------------------------------------------------
    async def invoke(self, operation: str, input: dict[str, Any] | None = None) -> Job:
        """Invoke any operation by key (or ``v/ops/...`` alias) with a JSON input; return its job.

        Raises:
            Rejected: the server refused the request.
        """
        return _decode_job(await self.invoke_json(operation, input))

    async def invoke_json(self, operation: str, input: Any = None) -> dict[str, Any]:
        """Like :meth:`invoke`, but the job is returned as the JSON the server sent (nothing decoded).

        Args:
            operation: the operation's key or alias.
            input: the input, sent as it is (None: ``{}``).

        Raises:
            Rejected: the server refused the request.
        """
        body = {"operation": operation, "input": {} if input is None else input}
        async with self.session.post(self.url + "/api/v1/invoke", json=body, headers=self._headers) as r:
            return await self._check(r)

    async def stream(self, operation: str, input: dict[str, Any] | None = None) -> AsyncIterator[Job]:
        """Invoke with ``Accept: text/event-stream``: yield the job at each update until it is terminal.

        Raises:
            Rejected: the server refused the request.
        """
        body = {"operation": operation, "input": {} if input is None else input}
        async with self.session.post(self.url + "/api/v1/invoke", json=body,
                                     headers={**self._headers, "Accept": "text/event-stream"}) as r:
            if r.status >= 400:
                await self._check(r)
            async for event, data, _ in _events(r):
                if event == "job-update":
                    yield _decode_job(msgspec.json.decode(data))

    async def job(self, job_id: str) -> Job:
        """``GET /api/v1/jobs/<jobId>``. Raises :class:`Rejected` (404) for an unknown job."""
        return _decode_job(await self._get(f"/api/v1/jobs/{job_id}"))

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a task or trigger job (``reason``: its error message); the job after cancelling."""
        body = None if reason is None else {"reason": reason}
        async with self.session.put(f"{self.url}/api/v1/jobs/{job_id}/cancel", json=body,
                                    headers=self._headers) as r:
            return _decode_job(await self._check(r))

    async def run(self, operation: str, input: Any = None, *, private: bool = False) -> Any:
        """``POST /api/v1/run``: the operation's output (as JSON); a job its operation left waiting
        comes back as the job's JSON (HTTP 202).

        Raises:
            Rejected: the request was refused, or its job did not complete (the job's code and message).
        """
        body: dict[str, Any] = {"operation": operation, "input": {} if input is None else input}
        if private:
            body["private"] = True
        async with self.session.post(self.url + "/api/v1/run", json=body, headers=self._headers) as r:
            return await self._check(r)

    async def jobs(self, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        """A page of the caller's job ids, oldest first: ``{items, total, offset, limit}``."""
        return await self._get(f"/api/v1/jobs?offset={offset}&limit={limit}")

    async def job_updates(self, job_id: str) -> AsyncIterator[Job]:
        """Yield the job now and at each change, until it is terminal (``/api/v1/jobs/<id>/sse``)."""
        async with self.session.get(f"{self.url}/api/v1/jobs/{job_id}/sse",
                                    headers={**self._headers, "Accept": "text/event-stream"}) as r:
            if r.status >= 400:
                await self._check(r)
            async for event, data, _ in _events(r):
                if event == "job-update":
                    yield _decode_job(msgspec.json.decode(data))

    async def wait(self, job: Job | str, timeout: float | None = None) -> Job:
        """Wait until a job is terminal and return it (it is returned as last seen after ``timeout`` seconds).

        Args:
            job: a :class:`Job` or a job id.
            timeout: seconds, or None to wait as long as it takes.
        """
        last = job if isinstance(job, Job) else None
        if last is not None and last.done:
            return last
        job_id = job.jobId if isinstance(job, Job) else job
        try:
            async with asyncio.timeout(timeout):
                async for update in self.job_updates(job_id):
                    last = update
        except TimeoutError:
            pass
        return last if last is not None else await self.job(job_id)

    async def agent_events(self, agent_id: str, *, last_event_id: int | None = None,
                           reconnect: bool = True, retry_delay: float = 0.5) -> AsyncIterator[AgentVersion]:
        """Yield each version of an agent (``/api/v1/agents/<id>/events``), resuming after a dropped connection.

        Args:
            agent_id: the agent.
            last_event_id: the ``seq`` already seen (every later version is yielded);
                None: start with the current version.
            reconnect: reconnect with ``Last-Event-ID`` when the connection drops.
            retry_delay: seconds before reconnecting.

        Ends when the agent is removed. Raises :class:`Rejected` (404) for an unknown agent.
        """
        last = last_event_id
        while True:
            headers = {**self._headers, "Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                async with self.session.get(f"{self.url}/api/v1/agents/{agent_id}/events", headers=headers) as r:
                    if r.status >= 400:
                        await self._check(r)
                    async for event, data, _ in _events(r):
                        if event == "agent-removed":
                            return
                        if event == "agent-version":
                            v = msgspec.json.decode(data, type=AgentVersion)
                            last = v.seq
                            yield v
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError):
                if not reconnect:
                    raise
            if not reconnect:
                return
            await asyncio.sleep(retry_delay)

    async def operations(self) -> list[dict[str, Any]]:
        """The operation catalog, as the Covia venue lists it: ``[{name, asset, description, input, output,
        operation (the key), version, summary, ...}]``."""
        return await self._get("/api/v1/operations")

    async def status(self) -> dict[str, Any]:
        """Server and store summary."""
        return await self._get("/api/v1/status")

    async def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI 3.1 document."""
        return await self._get("/api/v1/openapi.json")

    async def export_agent(self, agent_id: str, from_seq: int | None = None) -> AsyncIterator[bytes]:
        """The agent's bundle (its whole history, or from version ``from_seq`` on), in pieces as they arrive.

        Raises:
            Rejected: ``not_found``, ``invalid_input``, ``conflict``.
        """
        params = None if from_seq is None else {"from": str(from_seq)}
        async with self.session.get(f"{self.url}/api/v1/agents/{quote(agent_id, safe='')}/export",
                                    headers=self._headers, params=params) as r:
            if r.status >= 400:
                await self._check(r)
            async for chunk in r.content.iter_chunked(1 << 16):
                yield chunk

    async def import_agent(self, agent_id: str, bundle: Any) -> dict[str, Any]:
        """Load ``bundle`` (bytes, a file object or an async iterable of bytes) as agent ``agent_id``:
        ``{agentId, fromAgentId, versions, objects, status}``.

        Raises:
            Rejected: a bad bundle (its code), ``conflict``, ``limit_exceeded``.
        """
        headers = {**(self._headers or {}), "Content-Type": "application/vnd.lattice.bundle"}
        async with self.session.post(f"{self.url}/api/v1/agents/{quote(agent_id, safe='')}/import", data=bundle,
                                     headers=headers) as r:
            return await self._check(r)

    async def collect_garbage(self, retain_jobs_ms: int | None = None) -> dict[str, Any]:
        """Have the server collect garbage (an operator route): ``{refs, live, freed, freedBytes,
        jobsRemoved, markSeconds, sweepSeconds}``.

        Raises:
            Rejected: ``forbidden`` when the caller is not one of the server's admins.
        """
        body = {} if retain_jobs_ms is None else {"retainJobs": retain_jobs_ms}
        async with self.session.post(self.url + "/api/v1/admin/gc", json=body, headers=self._headers) as r:
            return await self._check(r)


# -- one method per operation, generated from the contracts ---------------------------

def _field_params(t: type) -> tuple[list[inspect.Parameter], dict[str, str]]:
    """Keyword parameters of an input Struct, and ``{python name: wire name}``."""
    params, names = [], {}
    for f in msgspec.structs.fields(t):
        default = inspect.Parameter.empty if f.required else (
            f.default if f.default is not msgspec.NODEFAULT else None)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type))
        names[f.name] = f.encode_name
    return params, names


def _make_method(contract: Contract) -> Callable[..., Any]:
    params, names = _field_params(contract.input)
    key = contract.key

    async def method(self: Client, **kwargs: Any) -> Job:
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"{method_name(contract)}() got an unexpected keyword argument {unknown[0]!r}")
        wire = {names[k]: v for k, v in kwargs.items()}
        try:
            decode_input(lookup(key), wire)  # the same check as the server's, before sending
        except _ServerRejected as e:
            raise Rejected(0, e.code, e.message, e.path, e.hint) from None
        return await self.invoke(key, msgspec.to_builtins(wire))

    name = method_name(contract)
    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *params], return_annotation=Job)
    out = getattr(contract.output, "__name__", "Any")
    method.__doc__ = (f"{contract.summary}\n\nInvokes ``{key}``; returns its :class:`Job` "
                      f"(``output``: ``{out}`` when COMPLETE).")
    return method


def _install() -> None:
    for c in REGISTRY.values():
        name = method_name(c)
        if not re.match(r"^[a-z_][a-z0-9_]*$", name) or (hasattr(Client, name) and name not in _GENERATED):
            raise ValueError(f"operation {c.key} cannot become Client.{name}")
        setattr(Client, name, _make_method(c))
        _GENERATED.add(name)


_GENERATED: set[str] = set()
_install()
