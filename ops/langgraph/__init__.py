"""LangGraph checkpointers on the lattice: ``from ops.langgraph import LatticeSaver, AsyncLatticeSaver``.

Needs the ``langgraph`` extra (``pip install 'agent-lattice[langgraph]'``); the
core install imports only :mod:`ops.langgraph.naming` (the savers load on first use).

How a thread is stored
----------------------
A thread is a set of refs (see :mod:`ops.langgraph.naming`), ``<T>`` the
``%``-escaped thread id, ``<N>`` the escaped ``checkpoint_ns``::

    t/<caller>/<T>          head of the root graph's checkpoints (checkpoint_ns "")
    t/<caller>/<T>#<N>      head of a subgraph namespace
    <head>@<checkpoint id>  another branch tip (after update_state at an old checkpoint)
    <head>!<checkpoint id>  writes that arrived before their checkpoint (transient)
    <head>?                 the namespace's version: moved by each change that adds a branch
                            or rewrites one (absent from a thread that never branched)

``caller`` defaults to ``"local"``. Each checkpoint is a lattice commit
(:mod:`lattice.commits`): ``parent`` is the commit of its LangGraph parent
checkpoint, ``seq`` its depth, ``op`` ``"langgraph:checkpoint"``, ``input``
``{"id", "source", "step"}``, ``ts`` the checkpoint's time in ms. So the head
ref's chain is the thread's current branch, newest first, exactly the history
``get_state_history`` walks, and :func:`lattice.history.versions`,
:func:`lattice.history.resolve` (by ``seq`` or commit id) and
:func:`lattice.history.diff` work on it unchanged. Other branches hang off the
tree through their tip refs; every checkpoint is reachable from some ref's chain.

The root of a checkpoint commit (:mod:`ops.langgraph.records`)::

    {"v", "id", "ts",
     "channel_values":   {<channel>: <value>},     # messages: a vector of {"$lc": "human", "content", "id", ...}
     "channel_versions": {...}, "versions_seen": {...}, "updated_channels": [...],
     "metadata":         {"source", "step", "parents", "run_id"?, ...},
     "parent_checkpoint_id": "<id>",               # absent at the root of the tree
     "pending_writes":   [{"task_id", "channel", "value", "task_path", "idx"}...]}   # absent when none

Values are plain lattice data where they can be (:mod:`ops.langgraph.values`),
so a path reads into them: at version ``k`` of the head ref (its commit with
``seq`` k), ``channel_values/messages/3/content`` is the text of the fourth
message as of the k-th checkpoint of the current branch. A chat turn appends to
the ``messages`` vector: O(log n) new objects, the rest shared with the
previous checkpoint.

Pending writes join their checkpoint's root: ``put_writes`` rewrites that
commit (same parent and ``seq``) and the commits above it up to each leaf
holding it, usually just the head. Writes for a checkpoint not stored yet are
parked under ``<head>!<id>`` and join it when it arrives (or, if they were parked while it
landed, stay beside it: readers add them to its own, and the next writes of a saver that has seen
them fold them in). ``copy_thread``
writes new refs to the same commits and no object. ``delete_thread``,
``prune`` and ``delete_for_runs`` move or remove refs (and rewrite the commits
above a removed checkpoint); objects no ref reaches stay until a garbage
collection.

Writers: every change to a namespace is one atomic commit whose ref updates
are compare-and-swaps (:mod:`ops.langgraph.saver`): of the leaf it moves on,
and for a change that adds a branch or rewrites chains, of the version too
(:mod:`ops.langgraph.plans` says why that suffices); a lost race is planned
again on the new refs, so concurrent puts after the same parent become
branches, as LangGraph's own savers keep them.
"""

from typing import Any

__all__ = ["LatticeSaver", "AsyncLatticeSaver", "ConflictError", "open_store"]


def __getattr__(name: str) -> Any:
    """The savers, imported on first use: :mod:`ops.langgraph.naming` imports without the extra
    (the engine names threads with it for ``agent:history`` and ``agent:diff``)."""
    if name in __all__:
        from . import saver
        return getattr(saver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
