"""Each checkpointer's own cost per call, without LangGraph: ``bench/langgraph_saver.py --calls K``.

The chat graph of ``bench/langgraph_saver.py`` runs K new threads of 10 turns on LangGraph's
``InMemorySaver``, which records every ``put`` and ``put_writes`` call it gets: a copy of the
arguments (:func:`snapshot`) that keeps the message objects themselves, as LangGraph passes the
same ones from step to step (a saver may rely on that: ours appends to the stored list instead of
encoding it again). The calls are then replayed, in order, on one thread, on a fresh saver of
each series: for each call, every saver makes it in turn (the order rotates), so the machine's
drift falls on all of them alike. A step's latency in the main bench is LangGraph's own work
plus these calls, some of them overlapped; here they are alone.

Lattice savers replay with ``linger=0``: calls one after the other never share a commit, so
each ``put_writes`` is its own commit, as on SQLite. ``Lattice (memory)`` is the saver on the
memory store: the planning, encoding and hashing of a call, with no store behind it.

Per saver and method: wall time and this thread's CPU time (``time.thread_time``, the kernel's
share of a commit included; a wait for the disk is not CPU), ms, p50.
"""

from __future__ import annotations

import copy
import time
from statistics import median
from collections.abc import Sequence
from typing import Any

__all__ = ["snapshot", "capture", "replay", "report_calls"]

#: the methods recorded and replayed
METHODS = ("put", "put_writes")


def snapshot(x: Any) -> Any:
    """A copy of a call's argument: dicts, lists and tuples copied, LangChain messages kept (the
    same objects, as LangGraph passes them again in later steps), anything else deep-copied."""
    from langchain_core.messages import BaseMessage

    if isinstance(x, BaseMessage):
        return x
    t = type(x)
    if t is dict:
        return {k: snapshot(v) for k, v in x.items()}
    if t is list:
        return [snapshot(v) for v in x]
    if t is tuple:
        return tuple(snapshot(v) for v in x)
    return copy.deepcopy(x)


def capture(build_graph: Any, state_type: Any, threads: int, turns: int, texts: Sequence[str],
            durability: str = "sync") -> list[tuple]:
    """``(method, args, kwargs)`` of every checkpointer call of ``threads`` new threads of ``turns``
    turns of the chat graph, invoked in LangGraph's ``durability`` mode, in the order the calls
    came in (LangGraph makes them from background threads; a saver parks writes that arrive
    before their checkpoint, so the order a replay keeps need not be stricter)."""
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    calls: list[tuple] = []
    for name in METHODS:
        fn = getattr(saver, name)

        def record(*a: Any, _fn: Any = fn, _name: str = name, **k: Any) -> Any:
            calls.append((_name, snapshot(a), snapshot(k)))
            return _fn(*a, **k)
        setattr(saver, name, record)
    graph = build_graph(state_type, saver)
    for t in range(threads):
        cfg = {"configurable": {"thread_id": f"calls-{t}"}}
        for turn in range(turns):
            graph.invoke({"messages": [HumanMessage(content=texts[turn], id=f"h{turn}")]}, cfg, durability=durability)
    return calls


def replay(calls: list[tuple], savers: dict[str, Any]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Make each call on every saver in turn; ``{saver: {method: [(wall ms, cpu ms), ...]}}``."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {n: {m: [] for m in METHODS} for n in savers}
    items = list(savers.items())
    for i, (method, a, k) in enumerate(calls):
        j = i % len(items)
        for name, saver in items[j:] + items[:j]:
            fn = getattr(saver, method)
            c, t = time.thread_time(), time.perf_counter()
            fn(*a, **k)
            out[name][method].append(((time.perf_counter() - t) * 1e3, (time.thread_time() - c) * 1e3))
    return out


def report_calls(res: dict[str, dict[str, list[tuple[float, float]]]], ours: str, threads: int, turns: int) -> None:
    """Print the table: per method, each saver's wall / CPU p50, and each other saver's wall over ours."""
    names = list(res)
    others = [n for n in names if n != ours]
    n_calls = {m: len(res[ours][m]) for m in METHODS if res[ours][m]}  # exit mode makes no put_writes
    print(f"#### Each saver's own cost per call, ms, p50 wall / CPU: the calls of {threads} threads x {turns} turns "
          f"({', '.join(f'{v} {m}' for m, v in n_calls.items())}), replayed on one thread without LangGraph\n")
    head = ["call"] + names + [f"{n} / {ours} (wall)" for n in others]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for m in n_calls:
        walls = {n: median([w for w, _ in res[n][m]]) for n in names}
        cells = [m] + [f"{walls[n]:.3f} / {median([c for _, c in res[n][m]]):.3f}" for n in names]
        cells += [f"{walls[n] / walls[ours]:.1f}x" if walls[ours] > 0 else "-" for n in others]
        print("| " + " | ".join(cells) + " |")
    print()
