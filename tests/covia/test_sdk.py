"""The official Covia SDK (`covia`, pinned) against a real `lattice serve` without authentication, driven as its
README shows: agents (create, request with and without a timeout, message, chat over several turns, sessions, fork,
trigger, update, suspend, resume, context, cancel_task, delete, info, list), the workspace (read, write, append,
list, slice, delete, count, with and without a leading ``/``), jobs (invoke, wait, get, cancel, list, the event
stream, a failing operation's error and code), the catalogue, and the async API.

Every manager call validates the reply with the SDK's typed models (``AgentCreateResult``, ``WorkspaceReadResult``,
``JobData``...), so a shape the SDK cannot parse fails here. Bearer tokens and Ed25519 identities:
``test_sdk_auth.py``; the SDK's own integration tests: ``test_sdk_integration.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from covia import Grid, GridError, JobData, JobFailedError, JobNotFoundError, JobStatus, Venue
from covia.async_api import AsyncGrid

from tests.covia.helpers import ANSWER, FAILING, HANG, SCRIPTED, code_of, drain, eventually, uid

NO_JOB = "0x" + "f" * 32


@pytest.fixture
def venue(open_url: str) -> Iterator[Venue]:
    with Grid.connect(open_url, timeout=30) as v:
        yield v


# ---------------------------------------------------------------- the venue


def test_status_names_the_venue_and_its_did(venue: Venue) -> None:
    status = venue.wait_until_ready(timeout=5)
    assert status.status.upper() == "OK" and status.version
    assert status.did and status.did.startswith("did:")
    assert venue.did == status.did
    doc = venue.did_document()
    assert doc.id == status.did


def test_mcp_discovery_points_at_the_mcp_endpoint(venue: Venue) -> None:
    found = json.dumps(venue.mcp_discovery().model_dump(exclude={"description"}))
    assert "/mcp" in found, found


def test_operations_catalogue_lists_the_venue_names(venue: Venue) -> None:
    names = {op.name for op in venue.list_operations()}
    for name in ("v/ops/agent/create", "v/ops/agent/request", "v/ops/agent/chat", "v/ops/agent/cancel-task",
                 "v/ops/agent/sessions", "v/ops/covia/read", "v/ops/covia/write"):
        assert name in names, name
    request = venue.get_operation("v/ops/agent/request")
    assert request.name == "v/ops/agent/request" and request.asset
    assert {"agentId", "input", "timeout", "sessionId"} <= set(request.input["properties"])
    with pytest.raises(GridError) as e:
        venue.get_operation("v/ops/agent/no-such-op")
    assert e.value.status_code == 404


def test_adapter_catalogue_lists_an_adapters_operations(venue: Venue) -> None:
    agent = venue.get_adapter_operations("agent")
    assert agent["v/ops/agent/request"]["operation"]["adapter"] == "agent:request"
    assert {"agent:chat", "agent:cancelTask", "agent:query"} <= {m["operation"]["adapter"] for m in agent.values()}
    assert venue.get_adapter_operations("covia")["v/ops/covia/read"]["operation"]["adapter"] == "covia:read"
    with pytest.raises(GridError) as e:
        venue.get_adapter_operations("langchain")
    assert (e.value.status_code, code_of(e.value)) == (404, "not_found")


# ---------------------------------------------------------------- agents


def test_create_request_info_list(venue: Venue) -> None:
    a = uid("Alice")
    created = venue.agents.create(a, config=SCRIPTED)
    assert (created.agentId, created.status, created.created) == (a, "SLEEPING", True)

    reply = venue.agents.request(a, {"question": "Which vendors are overdue?"})  # the venue waits up to 5 s
    assert reply.model_extra["answer"] == ANSWER["answer"]
    assert reply.sessionId is None  # a plain request opens no session here (README: departures from the venue)

    info = venue.agents.info(a)
    assert (info.agentId, info.status, info.tasks, info.timelineLength, info.error) == (a, "SLEEPING", 0, 1, None)
    assert info.config["model"]["provider"] == "scripted"
    assert venue.agent(a).info().timelineLength == 1
    assert a in [e.agentId for e in venue.agents.list().agents]

    with pytest.raises(GridError) as e:
        venue.agents.info(uid("Nobody"))
    assert e.value.status_code == 404 and code_of(e.value) == "not_found"
    with pytest.raises(GridError) as e:
        venue.agents.create("bad name!", config=SCRIPTED)
    assert e.value.status_code == 400


def test_request_timeout_answers_a_snapshot_and_cancel_task_ends_it(venue: Venue) -> None:
    h = uid("Hang")
    venue.agents.create(h, config=HANG)
    snap = venue.agents.request(h, {"task": "think forever"}, timeout=0.3)
    assert (snap.agentId, snap.status) == (h, "STARTED") and snap.id
    queued = venue.agents.request(h, {"task": "and then this"}, wait=False)  # timeout 0: the snapshot at once
    assert queued.agentId == h and queued.id and queued.id != snap.id and queued.status in ("PENDING", "STARTED")
    info = venue.agents.info(h)
    assert (info.status, info.tasks) == ("RUNNING", 2)

    cancelled = venue.agents.cancel_task(h, snap.id, reason="no longer needed")
    assert (cancelled.cancelled, cancelled.agentId, cancelled.taskId) == (True, h, snap.id)
    job = venue.get_job(snap.id)
    assert job.status == JobStatus.CANCELLED and isinstance(job.error, str)
    assert venue.agent(h).cancel_task(queued.id).cancelled is True
    eventually(lambda: venue.agents.info(h), lambda i: (i.tasks, i.status) == (0, "SLEEPING"))

    with pytest.raises(GridError) as e:
        venue.agents.cancel_task(h, NO_JOB)
    assert code_of(e.value) == "not_found"


def test_message_and_trigger(venue: Venue) -> None:
    m = uid("Mia")
    venue.agents.create(m, config=SCRIPTED)
    delivered = venue.agents.message(m, "New invoice uploaded to w/invoices/INV-2026-042")
    assert (delivered.agentId, delivered.delivered) == (m, True)
    eventually(lambda: venue.agents.info(m), lambda i: i.timelineLength == 1 and i.status == "SLEEPING")

    triggered = venue.agents.trigger(m)  # blocks until the cycle quiesces
    assert (triggered.agentId, triggered.status) == (m, "SLEEPING")
    assert triggered.taskResults is None or isinstance(triggered.taskResults, list)
    assert venue.workspace.read(f"g/{m}/status").value == "SLEEPING"
    with pytest.raises(GridError) as e:
        venue.agents.message(uid("Nobody"), "hello")
    assert code_of(e.value) == "not_found"


def test_chat_over_several_turns_and_sessions(venue: Venue) -> None:
    c = uid("Chatty")
    venue.agents.create(c, config=SCRIPTED)
    chat = venue.agent(c).chat_session()
    assert chat.session_id is None
    turns = [("What's the weather?", "Sunny all day."), ("What is your name?", "I am Helper."), ("thanks", "Noted.")]
    for message, response in turns:
        reply = chat.send(message)
        assert (reply.agentId, reply.response) == (c, response)
        assert reply.sessionId == chat.session_id and chat.session_id
        assert reply.answered is not None and len(reply.answered) == 1
    other = venue.agents.chat(c, "weather, again?")  # no session id: a new session
    assert other.response == "Sunny all day." and other.sessionId != chat.session_id

    listed = {s.sessionId: s for s in venue.agents.sessions(c).sessions}
    assert set(listed) == {chat.session_id, other.sessionId}
    assert (listed[chat.session_id].turnCount, listed[other.sessionId].turnCount) == (3, 1)

    read = chat.read()
    assert (read.found, read.sessionId, read.turnCount) == (True, chat.session_id, 3)
    text = json.dumps(read.messages)
    positions = [text.index(s) for pair in turns for s in pair]
    assert positions == sorted(positions), text  # every turn, in order

    renamed = chat.rename("Weather and names")
    assert (renamed.agentId, renamed.sessionId, renamed.title) == (c, chat.session_id, "Weather and names")
    titles = {s.sessionId: s.title for s in venue.agents.sessions(c).sessions}
    assert titles[chat.session_id] == "Weather and names" and chat.read().title == "Weather and names"

    compacted = chat.compact("Asked about the weather and my name.")
    assert (compacted.sessionId, compacted.compacted) == (chat.session_id, True)
    after = chat.read()
    assert after.found and "Asked about the weather and my name." in json.dumps(after.messages)
    assert chat.send("thanks again").response == "Noted."  # the session goes on after compaction

    deleted = chat.delete()
    assert (deleted.sessionId, deleted.deleted) == (chat.session_id, True)
    assert [s.sessionId for s in venue.agents.sessions(c).sessions] == [other.sessionId]
    assert venue.agents.read_session(c, chat.session_id).found is False
    with pytest.raises(GridError):  # an unknown session is refused, never minted
        venue.agents.chat(c, "hello?", session_id=chat.session_id)


def test_fork_update_suspend_resume_context_delete(venue: Venue) -> None:
    s = uid("Src")
    venue.agents.create(s, config=SCRIPTED)
    venue.agents.request(s, {"question": "anything overdue?"})
    f = uid("Fork")
    forked = venue.agents.fork(s, f)
    assert (forked.agentId, forked.status, forked.created, forked.forkedFrom) == (f, "SLEEPING", True, s)
    assert venue.agents.info(f).timelineLength == 0
    with pytest.raises(GridError) as e:  # the target exists
        venue.agents.fork(s, f)
    assert 400 <= e.value.status_code < 500
    with_timeline = venue.agent(s).fork(uid("Fork"), include_timeline=True)
    assert with_timeline.info().timelineLength == 1

    updated = venue.agents.update(f, config={"systemPrompt": "Answer briefly."}, state={"owner": "ops"})
    assert updated["agentId"] == f
    assert venue.agents.info(f).config["systemPrompt"] == "Answer briefly."
    assert venue.workspace.read(f"g/{f}/state/owner").value == "ops"

    assert venue.agents.suspend(f).status == "SUSPENDED"
    assert venue.agents.info(f).status == "SUSPENDED"
    assert venue.agents.resume(f, auto_wake=False).status == "SLEEPING"

    context = venue.agents.context(s, {"question": "Is Globex overdue?"})
    assert isinstance(context, dict)  # the seed's object (the venue renders the same as JSON text)
    text = json.dumps(context)
    assert "You track vendor invoices." in text and "Is Globex overdue?" in text
    assert {"model", "messages", "tools"} <= set(context)

    gone = venue.agents.delete(f)
    assert (gone.agentId, gone.status) == (f, "TERMINATED")
    assert f not in [e.agentId for e in venue.agents.list().agents]
    assert f in [e.agentId for e in venue.agents.list(include_terminated=True).agents]
    revived = venue.agents.fork(s, f, overwrite=True)  # overwrite replaces a TERMINATED agent
    assert (revived.created, revived.status) == (True, "SLEEPING")
    removed = venue.agents.delete(f, remove=True)
    assert (removed.agentId, removed.removed) == (f, True)
    with pytest.raises(GridError) as e:
        venue.agents.info(f)
    assert e.value.status_code == 404


def test_a_failed_run_suspends_with_an_error_string(venue: Venue) -> None:
    e_id = uid("Broken")
    venue.agents.create(e_id, config=FAILING)
    snap = venue.agents.request(e_id, {"task": "try"}, timeout=0)
    info = eventually(lambda: venue.agents.info(e_id), lambda i: i.status == "SUSPENDED")
    assert isinstance(info.error, str) and "model unavailable" in info.error
    assert info.tasks == 1  # the work is kept
    assert venue.agents.cancel_task(e_id, snap.id).cancelled is True
    assert venue.agents.resume(e_id).status == "SLEEPING"
    assert venue.agents.info(e_id).error is None


def test_complete_and_fail_task_need_a_task_in_scope(venue: Venue) -> None:
    """Outside an agent's run (where the `complete_task` / `fail_task` tools call them) there is no task to end."""
    for name, call in (("complete-task", lambda: venue.agents.complete_task({"done": True})),
                       ("fail-task", lambda: venue.agents.fail_task("no"))):
        assert venue.get_operation(f"v/ops/agent/{name}").name == f"v/ops/agent/{name}"
        with pytest.raises(GridError) as e:
            call()
        assert 400 <= e.value.status_code < 500 and code_of(e.value) not in (None, "not_found", "unknown_operation")


# ---------------------------------------------------------------- workspace


@pytest.mark.parametrize("lead", ["", "/"], ids=["bare", "leading-slash"])
def test_workspace_roundtrip(venue: Venue, lead: str) -> None:
    ws = venue.workspace
    base = f"{lead}w/sdk/{uid('ws')}"
    other = base.lstrip("/") if lead else "/" + base  # the same path in the other spelling
    assert ws.write(f"{base}/note", {"text": "call Acme"}).existed is False
    assert ws.write(f"{other}/note", {"text": "call Acme today"}).existed is True
    read = ws.read(f"{base}/note")
    assert (read.exists, read.value) == (True, {"text": "call Acme today"}) and read.valueBytes > 0
    assert ws.read(f"{other}/note").value == read.value
    assert ws.read(f"{base}/absent").exists is False
    cut = ws.read(f"{base}/note", max_size=4)
    assert (cut.exists, cut.value, cut.truncated) == (True, None, True) and cut.valueBytes == read.valueBytes

    for i, item in enumerate(["a", "b", "c"]):
        appended = ws.append(f"{base}/log", item)
        assert (appended.existed, appended.index, appended.newSize) == (i > 0, i, i + 1)
    page = ws.slice(f"{other}/log", offset=1, limit=1)
    assert (page.exists, page.values, page.count, page.offset) == (True, ["b"], 3, 1)
    listing = ws.list(base)
    assert (listing.exists, listing.keys, listing.count) == (True, ["log", "note"], 2)
    assert ws.count(base).model_dump(include={"exists", "count"}) == {"exists": True, "count": 2}
    assert ws.count(f"{other}/log").count == 3
    assert ws.count(f"{base}/absent").exists is False

    assert ws.delete(f"{base}/note").deleted is True
    assert ws.delete(f"{other}/note").deleted is False
    assert ws.read(f"{base}/note").exists is False


def test_workspace_refuses_bad_paths(venue: Venue) -> None:
    with pytest.raises(GridError) as e:
        venue.workspace.read("w//double")
    assert (e.value.status_code, code_of(e.value)) == (400, "invalid_path")
    with pytest.raises(GridError) as e:
        venue.workspace.write("g/someone/state", 1)  # agents change through their operations only
    assert 400 <= e.value.status_code < 500


# ---------------------------------------------------------------- jobs


def test_invoke_wait_get_list_and_run(venue: Venue) -> None:
    a = uid("Jobs")
    venue.agents.create(a, config=SCRIPTED)
    job = venue.invoke("v/ops/agent/request", {"agentId": a, "input": {"question": "overdue?"}})
    assert job.id and job.data.model_extra.get("jobId") == job.id  # the seed's jobId stays beside the venue's id
    assert job.data.op in ("v/ops/agent/request", "agent:request")
    job.wait(timeout=10)
    assert job.status == JobStatus.COMPLETE and job.output["answer"] == ANSWER["answer"]
    got = venue.get_job(job.id)
    assert (got.id, got.status, got.output, got.error) == (job.id, JobStatus.COMPLETE, job.output, None)
    assert job.id in venue.list_jobs()
    assert venue.invoke("agent:info", {"agentId": a}).result(timeout=10)["agentId"] == a  # the seed's names too
    assert venue.run("v/ops/agent/info", {"agentId": a})["agentId"] == a
    with pytest.raises(JobNotFoundError):
        venue.get_job(NO_JOB)


def test_stream_and_cancel_a_job(venue: Venue) -> None:
    h = uid("Hang")
    venue.agents.create(h, config=HANG)
    job = venue.invoke("v/ops/agent/request", {"agentId": h, "input": {"task": "forever"}})
    assert job.id and not job.is_finished
    events = job.stream()
    first = next(events)
    assert first.event == "job-update"
    assert JobData.model_validate_json(first.data).status in (JobStatus.PENDING, JobStatus.STARTED)

    job.cancel(reason="superseded")
    assert job.status == JobStatus.CANCELLED and "superseded" in job.error  # the reason is the job's error
    rest = [JobData.model_validate_json(e.data) for e in drain(events)]
    assert rest and rest[-1].status == JobStatus.CANCELLED and rest[-1].id == job.id
    assert venue.get_job(job.id).status == JobStatus.CANCELLED
    assert venue.cancel_job(job.id).status == JobStatus.CANCELLED  # cancelling a finished job changes nothing
    with pytest.raises(JobNotFoundError):
        venue.cancel_job(NO_JOB)


def test_a_failing_operation_has_an_error_message_and_code(venue: Venue) -> None:
    nobody = uid("Nobody")
    job = venue.invoke("v/ops/agent/info", {"agentId": nobody})
    job.wait(timeout=10)
    assert job.status == JobStatus.FAILED
    assert isinstance(job.error, str) and nobody in job.error and job.data.errorCode == "not_found"
    with pytest.raises(JobFailedError) as failed:
        job.output
    assert failed.value.job_data.errorCode == "not_found"

    a = uid("Refuser")
    venue.agents.create(a, config=SCRIPTED)
    task = venue.invoke("v/ops/agent/request", {"agentId": a, "input": {"question": "please refuse"}})
    task.wait(timeout=10)
    assert (task.status, task.data.errorCode) == (JobStatus.FAILED, "task_failed")
    assert "I cannot do that." in task.error
    assert venue.get_job(task.id).error == task.error

    with pytest.raises(GridError) as e:  # /run answers the failure itself
        venue.run("v/ops/agent/info", {"agentId": nobody})
    assert code_of(e.value) == "not_found" and nobody in str(e.value)
    with pytest.raises(GridError) as e:
        venue.invoke("v/ops/agent/no-such-op", {})
    assert e.value.status_code == 404 and code_of(e.value) == "unknown_operation"


@pytest.mark.parametrize("call", [
    pytest.param(lambda v: v.list_assets(), id="list_assets"),
    pytest.param(lambda v: v.get_asset("ab" * 32), id="get_asset"),
    pytest.param(lambda v: v.register({"name": "data"}), id="register"),
    pytest.param(lambda v: v.list_secrets(), id="list_secrets"),
    pytest.param(lambda v: v.secrets.set("OPENAI_API_KEY", "sk-x"), id="secret_set"),
])
def test_what_is_not_here_is_not_supported_not_missing(venue: Venue, call) -> None:
    """Assets, secrets and UCANs are the venue's, not this project's: a clear 501, not a 404 on an unknown route."""
    with pytest.raises(GridError) as e:
        call(venue)
    assert (e.value.status_code, code_of(e.value)) == (501, "not_supported"), e.value


def test_ucans_are_refused_clearly(venue: Venue) -> None:
    """A non-empty ``ucans`` list is schema-invalid here (``maxItems: 0`` in the OpenAPI document): a 400 that says
    UCANs are not supported, and nothing runs."""
    with pytest.raises(GridError) as e:
        venue.run("v/ops/covia/write", {"path": "w/ucan-probe", "value": 1}, ucans=["a.b.c"])
    assert (e.value.status_code, code_of(e.value)) == (400, "invalid_input"), e.value
    assert "not supported" in str(e.value)
    assert venue.workspace.read("w/ucan-probe").exists is False


# ---------------------------------------------------------------- async API


async def test_the_async_api(open_url: str) -> None:
    async with AsyncGrid.connect(open_url, timeout=30) as venue:
        assert (await venue.status()).did
        a = uid("Async")
        assert (await venue.agents.create(a, config=SCRIPTED)).created is True
        assert (await venue.agents.request(a, {"question": "overdue?"})).model_extra["answer"] == ANSWER["answer"]
        chat = venue.agent(a).chat_session()
        assert (await chat.send("weather?")).response == "Sunny all day."
        assert (await chat.send("name?")).sessionId == chat.session_id
        path = f"/w/sdk/{uid('async')}"
        assert (await venue.workspace.write(path, [1, 2])).existed is False
        assert (await venue.workspace.read(path)).value == [1, 2]
        job = await venue.invoke("v/ops/covia/read", {"path": path})
        assert (await job.result(timeout=10))["value"] == [1, 2]
        assert (await venue.get_job(job.id)).status == JobStatus.COMPLETE
