"""What the Covia venue's REST surface asks of the engine beyond the operations: reads that
create no job, tallies and a bounded preview of a path, the caller's job ids, and job deletion.

* :func:`job_free`: run a read-only operation (``agent:info``, ``agent:list``, ``covia:read``,
  ``covia:list``, ``covia:slice``) without a job record: nothing is stored or remembered.
* :func:`count`: the entries ``depth`` levels below a path, optionally grouped by a field.
* :func:`inspect`: a JSON5-like render of the value at a path within a byte budget.
* :func:`job_ids`: every job id of a caller (stored and in memory), oldest first.
* :func:`delete_job`: drop a finished job's record (a stored one by compare-and-swap on its ref).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from lattice.errors import InvalidValue
from lattice.nodes import HMap, Tx, Vec, map_keys, map_len, seq_len
from lattice.paths import Missing, open_level, read_path
from lattice.store import RefUpdate

from ..domain import jobs as J
from ..domain.contracts import Contract
from ..domain.errors import OpError, Rejected
from ..domain.refs import job_ref
from .context import Engine
from .handlers import HANDLERS
from .handlers.lattice import value_at

__all__ = ["READ_ONLY", "job_free", "count", "inspect", "job_ids", "delete_job", "DEFAULT_BUDGET"]

#: the operations :func:`job_free` runs: they read and never write
READ_ONLY = frozenset({"agent:info", "agent:list", "covia:read", "covia:list", "covia:slice"})
#: the default byte budget of :func:`inspect`
DEFAULT_BUDGET = 500


async def job_free(engine: Engine, contract: Contract, inp: Any, caller: str) -> Any:
    """The output of a read-only operation run for ``caller`` with no job record (none is stored,
    none is remembered, no job id is used up).

    Raises:
        ValueError: the operation is not one of :data:`READ_ONLY`.
        OpError: the operation failed (``not_found``...), as its job would have.
        Rejected: the input cannot be served (``invalid_path``...).
    """
    if contract.key not in READ_ONLY:
        raise ValueError(f"{contract.key} is not a job-free read")
    job = J.job_record(None, contract.key, engine.clock())  # type: ignore[arg-type]  # jobId None: job-free
    try:
        done = await HANDLERS[contract.key](engine, caller, inp, job)
    except InvalidValue as e:
        raise Rejected("invalid_input", e.message, path="$.input") from None
    return done["output"]


def _children(tx: Tx, v: Any) -> Iterator[Any] | None:
    """The raw children of a collection (map values, list items), or None for anything else."""
    v = open_level(tx, v)
    t = type(v)
    if t is dict or t is list:
        return iter(v.values() if t is dict else v)
    if t is HMap:
        return (x for _, x in v.items_raw())
    if t is Vec:
        return v.iter_raw()
    return None


def _size(tx: Tx, v: Any) -> int | None:
    v = open_level(tx, v)
    t = type(v)
    if t is dict or t is HMap:
        return map_len(v)
    if t is list or t is Vec:
        return seq_len(v)
    return None


def _group_key(tx: Tx, entry: Any, segs: list[str]) -> str:
    v = read_path(tx, entry, segs) if segs else entry
    if v is Missing:
        return "null"
    v = tx.materialize(v)
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), sort_keys=True)


def count(engine: Engine, caller: str, path: str, depth: int = 1, group_by: str | None = None) -> dict[str, Any]:
    """The entries ``depth`` levels below ``path`` (1: its direct children; 2: their children...).

    Returns:
        ``{exists: false}`` for an absent path or a scalar; else ``{exists: true, count}`` (0 for an
        empty collection, or one without collections ``depth - 1`` levels down), and with ``group_by``
        (a field, or a relative path ``a/b``, of each entry) ``groups``: ``{value: {count}}``, an entry
        without the field under ``"null"``; the groups' counts add up to ``count``.

    Raises:
        Rejected: ``invalid_path`` (``path``, or ``group_by``).
    """
    tx = engine.tx()
    root = value_at(engine, tx, caller, path)
    if root is Missing or _size(tx, root) is None:
        return {"exists": False}
    segs = [s for s in (group_by or "").split("/") if s]
    if group_by is not None and not segs:
        raise Rejected("invalid_path", f"groupBy {group_by!r} names no field", path="$.query.groupBy")
    level: Iterator[Any] = iter([root])
    for _ in range(depth - 1):
        level = (c for v in level for c in (_children(tx, v) or ()))
    if group_by is None:
        return {"exists": True, "count": sum(_size(tx, v) or 0 for v in level)}
    groups: dict[str, int] = {}
    total = 0
    for v in level:
        for entry in _children(tx, v) or ():
            k = _group_key(tx, entry, segs)
            groups[k] = groups.get(k, 0) + 1
            total += 1
    return {"exists": True, "count": total, "groups": {k: {"count": n} for k, n in sorted(groups.items())}}


_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _key(k: str) -> str:
    return k if _IDENT.fullmatch(k) else json.dumps(k, ensure_ascii=False)


def _scalar(v: Any, budget: int) -> str:
    if isinstance(v, bytes):
        return f"/* {len(v)} bytes */"
    if isinstance(v, str) and len(v) > max(budget - 2, 8):
        return json.dumps(v[:max(budget - 3, 6)], ensure_ascii=False) + f" /* +{len(v) - max(budget - 3, 6)} chars */"
    return json.dumps(v, ensure_ascii=False)


def _render(tx: Tx, raw: Any, budget: int, compact: bool, indent: str) -> str:
    v = open_level(tx, raw)
    t = type(v)
    if t is dict or t is HMap:
        keys = map_keys(v)
        n, brackets, noun = len(keys), "{}", ("entry", "entries")
        items: Iterator[tuple[str, Any]] = ((f"{_key(k)}: ", v[k] if t is dict else v.get_raw(k)) for k in keys)
    elif t is list or t is Vec:
        n, brackets, noun = seq_len(v), "[]", ("item", "items")
        items = (("", x) for x in (v if t is list else v.iter_raw()))
    else:
        return _scalar(v, budget)
    if n == 0:
        return brackets
    inner = indent + "  "
    parts: list[str] = []
    used = 2  # the brackets
    limit = budget - (len(f"/* +{n} more */") + 2 if n > 1 else 0)  # room for the note of what is left out
    for i, (prefix, child) in enumerate(items):
        left = limit - used
        if left <= len(prefix) + 2:
            break
        room = min(max(left // max(1, min(n - i, 8)), 24), left) - len(prefix)  # a fair share of what is left
        text = prefix + _render(tx, child, room, compact, inner)
        if parts and used + len(text) + 2 > limit:
            break
        parts.append(text)
        used += len(text) + 2
    summary = f"{brackets[0]}/* {n} {noun[n != 1]} */{brackets[1]}"
    if not parts:
        return summary
    if n > len(parts):
        parts.append(f"/* +{n - len(parts)} more */")
    if compact:
        text = brackets[0] + ", ".join(parts) + brackets[1]
    else:
        text = brackets[0] + "\n" + ",\n".join(inner + p for p in parts) + "\n" + indent + brackets[1]
    return summary if len(text) > budget and len(summary) < len(text) else text


def inspect(engine: Engine, caller: str, path: str, budget: int = DEFAULT_BUDGET,
            compact: bool = True) -> dict[str, Any]:
    """The value at ``path`` rendered as JSON5 within about ``budget`` characters: whole when it
    fits, else with what is left out noted (``/* +15 more */``, ``/* 40 items */``).

    Returns:
        ``{exists, result}``: ``result`` the rendered text (single-line when ``compact``), None
        when nothing is at ``path``.

    Raises:
        Rejected: ``invalid_path``.
    """
    tx = engine.tx()
    v = value_at(engine, tx, caller, path)
    if v is Missing:
        return {"exists": False, "result": None}
    return {"exists": True, "result": _render(tx, v, budget, compact, "")}


def job_ids(engine: Engine, caller: str) -> list[str]:
    """Every job id of ``caller``, stored or kept in memory, oldest first (ids are time-ordered)."""
    prefix = f"j/{caller}/"
    ids = {name[len(prefix):] for name, _ in engine.store.refs(prefix)}
    ids.update(jid for jid, _ in engine.jobs.unstored(caller))
    return sorted(ids)


async def delete_job(engine: Engine, caller: str, job_id: str) -> bool:
    """Drop a finished job's record (a stored one, and one kept in memory); False when there is no
    such job. What the job changed stays: only its record goes (as :func:`~ops.engine.jobs_index.expire_jobs`
    drops old ones).

    Raises:
        OpError: ``conflict`` while the job is not finished (cancel it first).
    """
    jid = J.normalize_job_id(job_id)
    job = None if jid is None else engine.jobs.get(caller, jid)
    if job is None:
        return False
    if job["status"] not in J.TERMINAL:
        raise OpError("conflict", f"job {jid} is {job['status']}: only a finished job can be deleted",
                      hint="cancel it first (PUT /api/v1/jobs/<id>/cancel)")
    name = job_ref(caller, jid)
    while (d := engine.store.ref(name)) is not None:
        if await engine.store.acommit({}, [RefUpdate(name, d, None)]):
            break
    engine.jobs.forget(caller, jid)
    return True

