"""The async Python client: one typed method per operation, job waiting, event streams (with resumption)."""

from __future__ import annotations

import asyncio
import inspect
import keyword
import re
import sys
from pathlib import Path

import msgspec
import pytest

from ops.domain import operations as O
from ops.surfaces.client import AgentVersion, Client, Job, JobFailed, Rejected, method_name
from ops.domain.contracts import REGISTRY
from tests.http.helpers import ECHO, HANG, snapshot


@pytest.fixture
async def server(start_app):
    """The app's server (heartbeats every 0.05 s)."""
    return (await start_app(heartbeat=0.05)).server


@pytest.fixture
async def lat(server):
    async with Client(str(server.make_url(""))) as c:
        yield c


def test_one_method_per_operation_typed_from_its_contract():
    for c in REGISTRY.values():
        m = getattr(Client, method_name(c))
        sig = inspect.signature(m)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        fields = msgspec.structs.fields(c.input)
        assert [p.name for p in params] == [f.name for f in fields], c.key
        for p, f in zip(params, fields, strict=True):
            assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.annotation == f.type
            assert (p.default is inspect.Parameter.empty) == f.required
            assert p.name.isidentifier() and not keyword.iskeyword(p.name)
        assert sig.return_annotation is Job
        assert c.summary in m.__doc__
    assert method_name(REGISTRY["agent:cancelTask"]) == "agent_cancel_task"


async def test_operations_end_to_end(lat, store):
    out = (await lat.agent_create(agentId="Alice", config=ECHO)).result()
    assert isinstance(out, O.CreateOutput) and out.created is True and out.status == "SLEEPING"

    job = await lat.agent_request(agentId="Alice", input="hello", wait=True)
    assert job.done and job.status == "COMPLETE" and job.output["output"] == "hello"  # a text answer, wrapped

    info = (await lat.agent_info(agentId="Alice")).result()
    assert isinstance(info, O.InfoOutput) and info.timelineLength == 1

    read = (await lat.covia_read(path="g/Alice/timeline")).result()
    assert isinstance(read, O.ReadOutput) and read.value[0]["taskResults"][job.jobId]["output"] == "hello"

    failed = await lat.agent_info(agentId="Nobody")
    assert failed.status == "FAILED" and failed.errorCode == "not_found" and "Nobody" in failed.error
    assert failed.id == failed.jobId and failed.op == failed.operation == "agent:info"
    with pytest.raises(JobFailed) as e:
        failed.result()
    assert e.value.code == "not_found" and "Nobody" in str(e.value)

    # input that violates the contract is refused before anything is sent
    before = snapshot(store)
    with pytest.raises(Rejected) as e:
        await lat.agent_create(agentId="a/b")
    assert e.value.status == 0 and e.value.code == "invalid_input" and e.value.path == "$.input.agentId"
    with pytest.raises(TypeError):
        await lat.agent_create(agentId="A", confg={})
    # a rejection by the server
    with pytest.raises(Rejected) as e:
        await lat.covia_read(path="q/nothing")
    assert e.value.status == 400 and e.value.code == "invalid_path"
    with pytest.raises(Rejected) as e:
        await lat.invoke("agent:nope", {})
    assert e.value.status == 404 and e.value.code == "unknown_operation" and "agent:" in e.value.hint
    assert snapshot(store) == before


async def test_wait_stream_and_cancel(lat):
    await lat.agent_create(agentId="E", config=ECHO)
    job = await lat.agent_request(agentId="E", input="later")
    done = await lat.wait(job)
    assert done.status == "COMPLETE" and done.output["output"] == "later"
    assert (await lat.job(job.jobId)) == done

    updates = [j async for j in lat.stream("agent:request", {"agentId": "E", "input": "s"})]
    assert updates[-1].status == "COMPLETE" and updates[-1].output["output"] == "s"

    await lat.agent_create(agentId="H", config=HANG)
    hung = await lat.agent_request(agentId="H", input="x")
    still = await lat.wait(hung.jobId, timeout=0.2)
    assert still.status == "STARTED"
    seen = []

    async def follow():
        async for j in lat.job_updates(hung.jobId):
            seen.append(j.status)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    cancelled = await lat.cancel(hung.jobId, reason="no longer needed")
    assert cancelled.status == "CANCELLED" and cancelled.errorCode == "cancelled"
    assert cancelled.error == "no longer needed"
    await asyncio.wait_for(follower, 5)
    assert seen == ["STARTED", "CANCELLED"]
    with pytest.raises(Rejected) as e:
        await lat.job("0x" + "0" * 32)
    assert e.value.status == 404


async def test_agent_events_resume_after_a_dropped_connection(lat, server):
    await lat.agent_create(agentId="E", config=ECHO)
    got: list[AgentVersion] = []
    stream = lat.agent_events("E", retry_delay=0.01)
    got.append(await anext(stream))
    assert got[0].seq == 0 and got[0].op == "agent:create" and len(got[0].id) == 64

    await lat.agent_message(agentId="E", message="one")
    got.append(await anext(stream))
    # the server drops every connection: the client reconnects with Last-Event-ID and misses nothing
    for proto in list(server.runner.server.connections):
        proto.force_close()
    await asyncio.sleep(0.05)  # let the client's pool see its keep-alive connections closed too
    for i in range(3):
        await lat.agent_update(agentId="E", state={"i": i})
    while got[-1].op != "agent:update" or len([v for v in got if v.op == "agent:update"]) < 3:
        got.append(await asyncio.wait_for(anext(stream), 5))
    assert [v.seq for v in got] == list(range(len(got)))
    await stream.aclose()

    # from a known point
    later = lat.agent_events("E", last_event_id=got[-2].seq)
    assert (await anext(later)).seq == got[-1].seq
    await later.aclose()

    # removal ends the stream
    ended = [v async for v in _until_removed(lat)]
    assert ended and ended[-1].seq == got[-1].seq


async def _until_removed(lat):
    stream = lat.agent_events("E")
    first = await anext(stream)
    await lat.agent_delete(agentId="E", remove=True)
    yield first
    async for v in stream:
        yield v


async def test_catalog_status_and_openapi(lat):
    ops = await lat.operations()
    assert [o["operation"] for o in ops] == list(REGISTRY)
    assert [o["name"] for o in ops] == [c.alias for c in REGISTRY.values()]
    assert all("output" in o and "input" in o and o["asset"] for o in ops)
    await lat.run("covia:write", {"path": "w/r", "value": 1})
    assert (await lat.run("v/ops/covia/read", {"path": "w/r"}))["value"] == 1
    page = await lat.jobs()
    assert page["total"] == len(page["items"]) >= 1 and page["offset"] == 0
    assert (await lat.status())["status"] == "ok"
    assert (await lat.openapi())["openapi"].startswith("3.1")


async def test_a_shared_session_is_not_closed(server):
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with Client(str(server.make_url("")), session=s) as c:
            assert (await c.agent_list()).result().agents == []
        assert not s.closed


async def test_readme_client_example_runs(server):
    """The README's Python client example, run as written (its URL pointed at the test server)."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text()
    section = text.split("## MCP, SSE, OpenAPI and the Python client", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[-1]
    code = code.replace("http://127.0.0.1:7770", str(server.make_url("")).rstrip("/"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=root, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[:4] == ["COMPLETE hello", "SLEEPING 1", "later", "agent:run"], lines
    assert [ln.split(" ", 1)[1] for ln in lines[4:]] == ["agent:message RUNNING", "agent:run SLEEPING"], lines


async def test_renamed_fields_travel_under_their_wire_names(lat):
    renamed = [(c, f) for c in REGISTRY.values() for f in msgspec.structs.fields(c.input) if f.name != f.encode_name]
    if not renamed:
        pytest.skip("no operation renames a field")
    assert all(f.name.isidentifier() and not keyword.iskeyword(f.name) for _, f in renamed)
    if "agent:diff" in REGISTRY:
        await lat.agent_create(agentId="E", config=ECHO)
        await lat.agent_update(agentId="E", state={"k": 1})
        job = await lat.agent_diff(agentId="E", from_=0)  # sent as {"from": 0}
        assert job.status == "COMPLETE", job
