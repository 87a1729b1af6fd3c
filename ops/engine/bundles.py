"""Export an agent to a bundle, import a bundle as a new agent (see :mod:`lattice.bundle`).

An export is the agent's whole chain (every version) and every object it reaches,
including the source versions of forks (so that a replay can re-derive them),
as one content-addressed stream. An export *from a version* ``s`` holds the chain as
``agent:prune`` would leave it with ``before = s + 1``, made for the bundle only (the
agent in the store is not changed): version ``s`` becomes the base (its state, taken as
given; its event is an ``agent:prune`` one saying who exported it, when, from which
version), every later version keeps its seq, time, event and state (their commit ids
change, since their ancestry does; a run's recorded start follows), and nothing older
is in it. Imported, it is an agent whose history starts at ``s``, like a pruned one
(fsck and ``agent:replay`` take the base as given). An import re-hashes every object, checks the
bundle is whole, then commits in one unit: the objects, the ref (under the new id)
adopting the exported chain, one ``agent:import`` event on top of it (its audit
record: imported from which id, which bundle), and a job record for each task and
trigger the agent still holds. A bad bundle (cut, changed, incomplete, another
format) fails with its code and writes nothing. ``agent:replay`` verifies every
imported version (older events keep the id they had).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from lattice.bundle import BundleError, BundleReader, write_bundle
from lattice.commits import log, read_commit, squash
from lattice.errors import InvalidValue, NotFound

from ..domain import agent as A
from ..domain import jobs as J
from ..domain import operations as O
from ..domain.errors import OpError, Rejected
from ..domain.events import Imported
from ..domain.refs import agent_ref, job_ref
from .context import Engine
from .handlers.retention import run_base_remap, run_below
from .links import version_links
from .unit import Unit

__all__ = ["export_agent", "import_agent", "MAX_IMPORT"]

#: largest bundle accepted by default, bytes
MAX_IMPORT = 1 << 30


def export_agent(engine: Engine, caller: str, agent_id: str, from_seq: int | None = None
                 ) -> tuple[dict[str, Any], Iterator[bytes]]:
    """``(header, bytes)`` of a bundle of the agent's head (read when called: later commits are not in it).

    Args:
        from_seq: the first version in the bundle (see the module doc); None: every version.

    Returns:
        The header: ``{agentId, versions, exportedAt}`` (``versions``: the head's seq + 1),
        with ``from`` (the first version's seq) when ``from_seq`` is given.

    Raises:
        Rejected: ``invalid_input`` (a negative ``from_seq``).
        OpError: ``not_found`` (no such agent, or ``from_seq`` is past the head or was
            squashed by a prune), ``conflict`` (a version after ``from_seq`` was made by a
            run that started before it: its replay needs that state).
    """
    if from_seq is not None and from_seq < 0:
        raise Rejected("invalid_input", f"from must be a version (0 or more), got {from_seq}", path="$.from")
    head = engine.store.ref(agent_ref(caller, agent_id))
    if head is None:
        raise OpError("not_found", f"no agent {agent_id!r}", hint="agent:list shows your agents")
    c = read_commit(engine.store, head)
    header: dict[str, Any] = {"agentId": agent_id, "versions": c.seq + 1, "exportedAt": engine.clock()}
    get, get_many = engine.store.get, getattr(engine.store, "get_many", None)
    if from_seq is not None:
        header["from"] = from_seq
        head, get, get_many = _from_version(engine, caller, agent_id, head, from_seq, header["exportedAt"])
    return header, write_bundle(get, head, header, version_links, get_many)


def _from_version(engine: Engine, caller: str, agent_id: str, head: bytes, from_seq: int, ts: int
                  ) -> tuple[bytes, Callable[[bytes], bytes], Callable[[list[bytes]], dict[bytes, bytes]] | None]:
    """The head of the chain squashed below ``from_seq`` (in memory) and how to read its objects
    (``get``, and ``get_many`` when the store has it)."""
    tx = engine.tx()
    chain = list(log(tx, head))
    first, top = chain[-1][1].seq, chain[0][1].seq
    if from_seq > top:
        raise OpError("not_found", f"version {from_seq} does not exist: versions are {first}..{top}",
                      path="$.from", hint=f"export from a version in {first}..{top}")
    if from_seq < first:
        raise OpError("not_found", f"version {from_seq} was squashed into version {first} (the agent was pruned)",
                      path="$.from", hint=f"export from {first} or later")
    store_many = getattr(engine.store, "get_many", None)
    if from_seq == first:
        return head, engine.store.get, store_many  # the chain starts there already
    lost = run_below(tx, chain, from_seq + 1)
    if lost is not None:
        raise OpError("conflict", f"version {lost[0]} was made by a run that started from version {lost[1]}, "
                                  f"which a bundle from version {from_seq} would not hold",
                      path="$.from", hint=f"export from {lost[1]} at most")
    new_head, _ = squash(tx, head, from_seq + 1, ts=ts, op="agent:prune", caller=caller, remap=run_base_remap(tx),
                         input={"agentId": agent_id, "before": from_seq + 1, "squashed": from_seq + 1 - first,
                                "exported": True})
    made = dict(tx.objects)  # the rewritten commits (and inputs): in the bundle, not in the store

    def get(d: bytes) -> bytes:
        data = made.get(d)
        return data if data is not None else engine.store.get(d)

    def get_many(ds: list[bytes]) -> dict[bytes, bytes]:
        out = {d: made[d] for d in ds if d in made}
        return {**store_many([d for d in ds if d not in made]), **out} if store_many is not None else out
    return new_head, get, get_many


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
    borrowed: list[bytes] = []  # objects the bundle leaves out because this store has them

    def has(d: bytes) -> bool:
        found = engine.store.has(d)
        if found:
            borrowed.append(d)
        return found
    try:
        header, objects = reader.finish(has, version_links)
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
        # asked again inside the unit: a collection since the first look may have freed one
        # (one after this look refuses the unit's commit by its generation: it runs again)
        gone = next((d for d in borrowed if not engine.store.has(d)), None)
        if gone is not None:
            raise Rejected("incomplete", f"object {gone.hex()} is reachable from the head but not in the bundle")
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
        engine.sync_jobs(u, caller, rec, agent_id)
        return {"agentId": agent_id, "fromAgentId": old_id, "versions": u.heads[name][1].seq + 2,
                "objects": len(objects), "status": rec["status"]}
    async with engine.quotas.creating(caller):
        out = await engine.units.run(caller, fn)
    if out["status"] == A.RUNNING:
        engine.scheduler.ensure(caller, agent_id)  # its in-flight task re-runs here, as after a restart
    return out

