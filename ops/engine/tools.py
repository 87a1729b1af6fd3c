"""The built-in I/O tools a run's model may call: the workspace and messages to agents.

The pure tools (``complete_task``, ``fail_task``, argument checks) are decided
by :class:`ops.domain.cycle.Cycle`; the ones here touch the store. Their side
effects are staged in the run's :class:`~ops.domain.cycle.Outcome` and commit
atomically with the run (:mod:`ops.engine.runs`); reads see the run's own
staged writes. Source of every call: the model (untrusted).
"""

from __future__ import annotations

from typing import Any

import msgspec

from lattice.errors import LatticeError
from lattice.nodes import HMap, Tx, Vec, map_keys, seq_len
from lattice.paths import Missing, kind_of, open_level, parse_path, read_path, write_path

from ..domain import decide
from ..domain.address import local_path
from ..domain.cycle import Outcome
from ..domain.errors import OpError
from ..domain.refs import ws_ref
from .context import Engine

__all__ = ["io_tool", "describe", "TOOL_TEXT_MAX"]

#: longest tool result text handed back to the model, characters
TOOL_TEXT_MAX = 16_384


def io_tool(engine: Engine, caller: str, call: Any, out: Outcome, agent_id: str = "", sandboxed: bool = False) -> str:
    """Run one I/O tool for a run; return its result text (errors as ``error: ...`` text).

    Args:
        call: the model's tool call (``name``, ``arguments``). out: the run's outcome so far.
        agent_id: the agent whose run it is. sandboxed: the run is a what-if replay's, whose
            messages to other agents are not delivered (the text says so).
    """
    name, args = call.name, call.arguments
    if name == "agent_message":
        target = args["agentId"]
        if sandboxed and target != agent_id:
            return (f"not delivered to {target}: this run is a what-if replay (agent:replay into), "
                    "which sends nothing outside the new agent")
        snap = engine.snapshot(caller, target)
        if snap is None:
            return f"error: no agent {target!r}"
        try:
            decide.room_for_work(snap[1], target, engine.limits.max_queued,
                                 sum(1 for t, _ in out.outbox if t == target), tx=snap[0])
        except OpError as e:
            return f"error: {e.message}"
        out.outbox.append((target, args["message"]))
        return f"delivered to {target} when this run completes"
    path = args["path"]
    try:
        ns, segs = parse_path(local_path(path, caller, engine.venue_did))  # /w/x and <own DID>/w/x too
        if ns != "w":
            return "error: tools may only use the owner's workspace (paths under w/)"
        tx = engine.tx()
        ws = engine.raw_root(tx, ws_ref(caller))
        for p, value in out.ws_edits:  # read your own writes
            ws = write_path(tx, {} if ws is Missing else ws, p, value)
        if name == "covia_write":
            if not segs:
                return "error: write below w/, e.g. w/notes"
            value = args.get("value")
            write_path(tx, {} if ws is Missing else ws, segs, value, where=("w",))  # fails now if it cannot apply
            out.ws_edits.append((segs, value))
            return "written"
        v = Missing if ws is Missing else read_path(tx, ws, segs)
        if name == "covia_read":
            text = "null (nothing at that path)" if v is Missing else \
                msgspec.json.encode(tx.materialize(v), order="sorted").decode()  # maps in key order, whatever their size
        else:
            text = msgspec.json.encode(describe(tx, v, 0, 1000)).decode()
        return text[:TOOL_TEXT_MAX]
    except (LatticeError, OpError) as e:  # a malformed path, another caller's DID
        return f"error: {e.message}"


def describe(tx: Tx, v: Any, offset: int, limit: int) -> dict[str, Any]:
    """The ``covia:list`` answer for a stored value (or ``Missing``): type, count, a page of keys."""
    if v is Missing:
        return {"exists": False}
    v = open_level(tx, v)
    t = type(v)
    if t is dict or t is HMap:
        keys = map_keys(v)
        return {"exists": True, "type": "map", "count": len(keys), "keys": keys[offset:offset + limit],
                "offset": offset}
    if t is list or t is Vec:
        return {"exists": True, "type": "list", "count": seq_len(v)}
    return {"exists": True, "type": kind_of(v)}
