"""``agent:prune``: squash an agent's oldest versions into one base version.

The versions before the prune point ``p`` become one base version with seq ``p - 1``
and that version's state (its root digest unchanged); every later version keeps its
seq, time, event and state digest (their commit ids change, since their ancestry
does). The base commit's event is ``agent:prune`` with who pruned and what: the
audit trail says the agent was pruned, when and by whom. What the squashed versions
alone held is freed by the next ``gc``.

What a squash keeps and loses: kept, every version from ``p - 1`` on (readable, forkable,
diffable, replayable: a replay takes the base as given); lost, the versions before
``p - 1``, their events and their times (``at`` naming one is ``not_found``).

Refused, with ``conflict``: an agent a run is working on (``RUNNING``: its run started
from a version that the squash would rewrite; wait, or suspend it); a point below a
version another agent was forked from (the fork needs it); a point above the version a
later run started from, or a later ``agent:forkSession`` copied its session from (their
replays need that state).

A waiting job folded into a commit of the chain, or a finished one folded into the run
commit that completed it (:mod:`ops.domain.jobs`), gets its record in the same unit, on a chain
of its own: no job ref keeps a squashed version alive (or points at a commit that is no longer
its agent's).
"""

from __future__ import annotations

from typing import Any, Callable

from lattice.commits import Commit, log, squash
from lattice.digest import from_hex
from lattice.nodes import Tx

from ...domain import agent as A
from ...domain import jobs as J
from ...domain import operations as O
from ...domain import sessions as S
from ...domain.errors import OpError, Rejected
from ...domain.refs import agent_prefix, agent_ref, job_ref
from ..context import Engine
from ..unit import Unit

__all__ = ["HANDLERS", "prune_point", "run_below", "run_base_remap"]

#: events that name an earlier version of their own chain, and the field naming it (commit id, hex)
_FROM = {"agent:run": "base", "agent:forkSession": "source"}


def prune_point(first: int, top: int, before: int | None, keep_last: int | None) -> int:
    """The first version kept whole: ``before``, or ``top - keep_last + 1``.

    Raises:
        Rejected: ``invalid_input`` (neither or both given).
        OpError: ``invalid_range`` (nothing to squash: the point is not in ``first + 2..top``).
    """
    if (before is None) == (keep_last is None):
        raise Rejected("invalid_input", "give exactly one of `before` and `keepLast`", path="$.input.before",
                       hint="before: a seq; versions below it are squashed. keepLast: how many newest to keep")
    p = before if before is not None else top - keep_last + 1
    if not first + 2 <= p <= top:
        raise OpError("invalid_range", f"the agent has versions {first}..{top}: squashing below {p} changes nothing "
                                       f"or removes the head",
                      path="$.input.before" if before is not None else "$.input.keepLast",
                      hint=f"choose a point in {first + 2}..{top}")
    return p


async def prune(engine: Engine, caller: str, inp: O.PruneInput, job: dict) -> dict:
    name = agent_ref(caller, inp.agentId)

    def fn(u: Unit) -> dict[str, Any]:
        rec = engine.agent(u, caller, inp.agentId)
        if rec["status"] == A.RUNNING:
            raise OpError("conflict", f"agent {inp.agentId!r} is RUNNING: a run works from one of its versions",
                          hint="wait until it sleeps, or agent:suspend it first")
        head, hc = u.head(name)
        chain = list(log(u.tx, head))
        by_id = {d: c.seq for d, c in chain}
        p = prune_point(chain[-1][1].seq, hc.seq, inp.before, inp.keepLast)
        lost = run_below(u.tx, chain, p)  # a later run's replay needs the state it started from
        if lost is not None:
            raise OpError("conflict", f"version {lost[0]} was made by a run that started from version {lost[1]}"
                                      if lost[2] == "agent:run" else
                                      f"version {lost[0]} was made by {lost[2]} from version {lost[1]}",
                          path="$.input.before", hint=f"prune before {lost[1] + 1} at most")
        _check_forks(engine, u, caller, inp.agentId, by_id, p)
        new_head, _ = squash(u.tx, head, p, ts=u.ts, op="agent:prune", caller=caller, remap=run_base_remap(u.tx),
                             input={"agentId": inp.agentId, "before": p, "squashed": p - chain[-1][1].seq})
        u.point(name, new_head)
        _materialize(u, caller, inp.agentId, rec, by_id)
        engine.keep_finished_jobs(u, caller, chain, inp.agentId)
        return {"agentId": inp.agentId, "squashed": p - chain[-1][1].seq, "base": p - 1, "head": hc.seq}
    return await engine.sync(caller, job, fn)


def _materialize(u: Unit, caller: str, aid: str, rec: dict[str, Any], chain: dict[bytes, int]) -> None:
    """Give every waiting job of the agent folded into a commit of ``chain`` its own record."""
    for jid in J.work_job_ids(rec) + S.chat_ids(u.tx, rec):
        name = job_ref(caller, jid)
        d, _ = u.head(name)
        if d in chain:
            jr = u.read(name, aid)
            if jr is not None:
                u.write(name, jr, jr["operation"])


def run_below(tx: Tx, chain: list[tuple[bytes, Commit]], p: int) -> tuple[int, int, str] | None:
    """``(seq of a run, seq of the version it started from, op)`` for the first run (or session fork,
    ``op``: ``agent:forkSession``, from the version it copied) at or above ``p`` (in ``chain``, newest
    first) that started below ``p - 1``, the base a squash at ``p`` keeps; None when there is none
    (every later run can be replayed from what the squash keeps)."""
    by_id = {d: c.seq for d, c in chain}
    for _, c in chain:
        if c.seq >= p and c.op in _FROM:
            base = tx.materialize(c.input).get(_FROM[c.op])
            seq = by_id.get(from_hex(base)) if isinstance(base, str) else None
            if seq is not None and seq < p - 1:
                return c.seq, seq, c.op
    return None


def run_base_remap(tx: Tx) -> Callable[[str, Any, dict[bytes, bytes]], Any]:
    """The ``remap`` of :func:`lattice.commits.squash` for agent chains: a run's recorded ``base``
    (the commit id it started from), and a session fork's ``source``, follow the squash to their
    new commit ids."""
    def remap(op: str, stored: Any, ids: dict[bytes, bytes]) -> Any:
        if op not in _FROM:
            return stored
        value = tx.materialize(stored)
        base = value.get(_FROM[op]) if isinstance(value, dict) else None
        if not isinstance(base, str) or from_hex(base) not in ids:
            return stored
        return tx.put_value({**value, _FROM[op]: ids[from_hex(base)].hex()})
    return remap


def _check_forks(engine: Engine, u: Unit, caller: str, aid: str, by_id: dict[bytes, int], p: int) -> None:
    """Refuse when another agent was forked from a version the squash would lose."""
    prefix = agent_prefix(caller)
    for ref, head in engine.store.refs(prefix):
        if ref == agent_ref(caller, aid):
            continue
        *_, (_, first) = log(u.tx, head)  # the chain's first commit: its creation
        if first.op != "agent:fork":
            continue
        source = u.tx.materialize(first.input).get("source")
        seq = by_id.get(from_hex(source)) if isinstance(source, str) else None
        if seq is not None and seq < p - 1:
            raise OpError("conflict", f"agent {ref[len(prefix):]!r} was forked from version {seq}, which the squash "
                                      f"would lose", path="$.input.before", hint=f"prune before {seq + 1} at most")


HANDLERS = {"agent:prune": prune}
