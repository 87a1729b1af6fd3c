"""Export an agent to a bundle, import a bundle as a new agent (see :mod:`lattice.bundle`).

An export is the agent's whole chain (every version) and every object it reaches,
including the source versions of forks (so that a replay can re-derive them),
as one content-addressed stream. An import re-hashes every object, checks the
bundle is whole, then commits in one unit: the objects, the ref (under the new id)
adopting the exported chain, one ``agent:import`` event on top of it (its audit
record: imported from which id, which bundle), and a job record for each task and
trigger the agent still holds. A bad bundle (cut, changed, incomplete, another
format) fails with its code and writes nothing. ``agent:replay`` verifies every
imported version (older events keep the id they had).
"""

from __future__ import annotations

from typing import Any, Iterator

from lattice.bundle import BundleError, BundleReader, write_bundle
from lattice.commits import read_commit
from lattice.errors import InvalidValue, NotFound

from ..domain import agent as A
from ..domain import jobs as J
from ..domain import operations as O
from ..domain.errors import OpError, Rejected
from ..domain.events import Imported
from ..domain.refs import agent_ref, job_ref
from .context import Engine
from .links import version_links
from .unit import Unit

__all__ = ["export_agent", "import_agent", "MAX_IMPORT"]

#: largest bundle accepted by default, bytes
MAX_IMPORT = 1 << 30


def export_agent(engine: Engine, caller: str, agent_id: str) -> tuple[dict[str, Any], Iterator[bytes]]:
    """``(header, bytes)`` of a bundle of the agent's head (read when called: later commits are not in it).

    Raises:
        OpError: ``not_found``.
    """
    head = engine.store.ref(agent_ref(caller, agent_id))
    if head is None:
        raise OpError("not_found", f"no agent {agent_id!r}", hint="agent:list shows your agents")
    c = read_commit(engine.store, head)
    header = {"agentId": agent_id, "versions": c.seq + 1, "exportedAt": engine.clock()}
    return header, write_bundle(engine.store.get, head, header, version_links)


def _check_id(agent_id: str) -> None:
    try:
        import msgspec
        msgspec.convert({"agentId": agent_id}, O.AgentInput)
    except Exception:
        raise Rejected("invalid_input", f"{agent_id!r} is not an agent id", path="$.agentId",
                       hint="1-128 of A-Z a-z 0-9 _ . : @ + -, not starting with punctuation") from None


async def import_agent(engine: Engine, caller: str, agent_id: str, reader: BundleReader) -> dict[str, Any]:
    """Load a fed :class:`BundleReader` as agent ``agent_id``; ``{agentId, fromAgentId, versions, objects, status}``.

    Raises:
        Rejected: ``invalid_input`` (a bad id), the bundle's code (``bad_format``,
            ``truncated``, ``corrupt_object``, ``tampered``, ``incomplete``).
        OpError: ``conflict`` (the id exists, or a job id of its pending work does),
            ``limit_exceeded``.
    """
    _check_id(agent_id)
    try:
        header, objects = reader.finish(engine.store.has, version_links)
    except BundleError as e:
        raise Rejected(e.code, e.message, hint=e.hint) from None
    head = header["head"]
    bundle_id = bytes(header["head"]).hex()
    name = agent_ref(caller, agent_id)

    def fn(u: Unit) -> dict[str, Any]:
        if u.read(name) is not None:
            raise OpError("conflict", f"agent {agent_id!r} already exists", path="$.agentId",
                          hint="import it under another id (--as), or agent:delete it with remove: true")
        engine.quotas.room_for_agent(caller)
        u.tx.objects.update(objects)
        try:
            u.adopt(name, head)
            rec = A.opened(u.tx, u.tx.load_root(u.heads[name][1].root))
        except (NotFound, InvalidValue) as e:
            raise Rejected("bad_format", f"the bundle's head is not an agent version: {e}") from None
        first = rec
        old_id = str(header.get("agentId") or agent_id)
        for tid in J.work_job_ids(first):
            if u.read(job_ref(caller, tid)) is not None:
                raise OpError("conflict", f"the agent's pending work {tid} already exists here",
                              hint="let the source agent finish its work first, or import into another namespace")
        event = Imported(agentId=agent_id, fromAgentId=old_id, bundle=bundle_id)
        rec = engine.commit_event(u, caller, agent_id, first, event)
        for i, tid in enumerate(J.work_job_ids(rec)):
            task = A.task_of(u.tx, rec, tid)
            op = "agent:request" if task is not None else "agent:trigger"
            job = J.job_record(tid, op, u.ts, input=None if task is None else task.get("input"), agent_id=agent_id)
            u.write(job_ref(caller, tid), job, op)
        engine.sync_jobs(u, caller, rec)
        return {"agentId": agent_id, "fromAgentId": old_id, "versions": u.heads[name][1].seq + 2,
                "objects": len(objects), "status": rec["status"]}
    async with engine.quotas.creating(caller):
        out = await engine.units.run(caller, fn)
    if out["status"] == A.RUNNING:
        engine.scheduler.ensure(caller, agent_id)  # its in-flight task re-runs here, as after a restart
    return out

