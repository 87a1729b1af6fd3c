"""One call's view of a caller's threads: reads, and plans of changes to commit.

A *plan* (:class:`Plan`) is what a saver call wants to commit: the new objects
are buffered in the view's :class:`~lattice.nodes.Tx`, the ref updates are
compare-and-swaps on what the view read. The savers (:mod:`ops.langgraph.saver`)
commit a plan and, on a lost race, make a new view and plan again.

Which refs a plan compare-and-swaps
-----------------------------------
A plan is valid only if the refs it read still hold when it lands. A plan
depends on the chains it extends or rewrites, and some plans on the whole set
of leaves; a compare-and-swap checks a ref's value, and a concurrent change may
leave every value it read unchanged and add a ref (a new branch tip). So:

* moving a leaf on (a put whose parent is a leaf, writes added to a leaf) swaps
  that leaf's ref: whatever rewrites the chain below changes that ref too;
* every other change (a new branch, writes added to an interior checkpoint,
  the same checkpoint put again, ``prune``, ``delete_for_runs``) also swaps the
  namespace's *version* ref (:func:`~ops.langgraph.naming.version_ref`) to a
  fresh commit; these are the changes that add a leaf, or rewrite chains whose
  leaves they must all find. Two of them exclude each other; a leaf moved on
  under one of them changes a ref it swaps;
* a change that rewrites chains also swaps each leaf it keeps as read (expected
  = new): a saver plans on its commits in flight (:mod:`ops.langgraph.pipeline`),
  and a value read through them may have been replaced in the store since; a
  plan keeping it must lose, not land on refs that never were together.

The common steps (a chat turn, its writes) leave the version alone: one ref.
Writes for a checkpoint not stored yet are parked beside it (swapping the head
as read, and the parked ref); if the checkpoint lands meanwhile, the parked
writes stay beside it and readers add them to its own (:meth:`View.tuple`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple, get_checkpoint_id, get_checkpoint_metadata,
)

from lattice.commits import Commit, write_commit
from lattice.nodes import Tx
from lattice.store import RefUpdate

from .naming import caller_prefix, head_ref, is_thread_ref, parked_ref, parse_ref, thread_base, version_ref
from .records import Records
from .tree import (
    OP_CHECKPOINT, OP_VERSION, OP_WRITES, CommitReader, Forest, cid_of, commit_input, find, leaf_updates, newest_first,
    rebuild, write_like,
)
from .values import entries

__all__ = ["Plan", "NOTHING", "View", "conf_of"]


class Plan(NamedTuple):
    """A change: ref updates (the objects are in the view's tx), the call's result, and
    ``(vector link, its items)`` to remember once committed."""

    updates: list
    result: Any = None
    remember: tuple = ()


NOTHING = Plan([])


def _ms(ts: Any) -> int:
    try:
        return int(datetime.fromisoformat(ts).timestamp() * 1000)
    except (TypeError, ValueError):
        return 0


def conf_of(config: RunnableConfig) -> dict:
    """``config["configurable"]``, checked to hold a ``thread_id``.

    Raises:
        ValueError: it does not.
    """
    try:
        conf = config["configurable"]
        conf["thread_id"]
    except (KeyError, TypeError):
        raise ValueError("config must hold configurable.thread_id") from None
    return conf


class View:
    """Reads and plans over the threads of ``caller`` in ``store``, through one transaction.

    Args:
        store: the store. caller: owner of the threads. rd: decoded-commit cache.
        rec: builds and reads checkpoint roots. tx: reads through the object cache, buffers new objects.
    """

    __slots__ = ("store", "caller", "rd", "rec", "tx")

    def __init__(self, store: Any, caller: str, rd: CommitReader, rec: Records, tx: Tx) -> None:
        self.store, self.caller, self.rd, self.rec, self.tx = store, caller, rd, rec, tx

    # ------------------------------------------------------------------ reading
    def forest(self, thread_id: Any, ns: str) -> Forest:
        """The refs of one namespace of a thread."""
        return Forest.read(self.store, head_ref(self.caller, thread_id, ns))

    def locate(self, forest: Forest, cid: str) -> tuple[bytes, Commit] | None:
        """``(digest, commit)`` of checkpoint ``cid`` in the namespace, or None."""
        for _, leaf in forest.leaves():
            hit = find(self.tx, self.rd, leaf, cid)
            if hit is not None:
                return hit
        return None

    def latest(self, forest: Forest) -> tuple[bytes, Commit] | None:
        """The checkpoint with the greatest id (the head, unless a chain is out of order)."""
        if forest.head is None:
            return None
        if any(self.rd(self.tx, d).input.get("dis") for _, d in forest.leaves()):
            return next(newest_first(self.tx, self.rd, forest), None)
        return forest.head, self.rd(self.tx, forest.head)

    def tuple(self, thread_id: Any, ns: str, commit: Commit, config: RunnableConfig | None,
              forest: Forest | None = None) -> CheckpointTuple:
        """The :class:`CheckpointTuple` of a checkpoint commit (``config`` as given, or built), with the
        writes parked for it in ``forest`` (parked while it was being stored) added to its own."""
        rec, tx = self.rec, self.tx
        root = rec.root(tx, commit.root)
        parked = forest.parked.get(cid_of(commit)) if forest is not None and forest.parked else None
        if parked is not None:
            extra = rec.root(tx, self.rd(tx, parked[1]).root).get("pending_writes")
            root = {**root, "pending_writes": rec.join_writes(tx, root.get("pending_writes"), extra)}
        checkpoint = rec.checkpoint(tx, root)
        pid = root.get("parent_checkpoint_id")
        parent = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": pid}} if pid else None
        cfg = config or {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                          "checkpoint_id": checkpoint["id"]}}
        return CheckpointTuple(cfg, checkpoint, rec.metadata(tx, root), parent, rec.pending_writes(tx, root))

    def namespaces(self, config: RunnableConfig | None) -> list[tuple[Any, str]]:
        """``(thread_id, checkpoint_ns)`` of the namespaces ``config`` selects (all the caller's if None)."""
        if config is None:
            found = []
            for name, _ in self.store.refs(caller_prefix(self.caller)):
                p = parse_ref(name)
                if p is not None and p.kind == "head":
                    found.append((p.thread_id, p.ns))
            return found
        conf = conf_of(config)
        tid, ns = conf["thread_id"], conf.get("checkpoint_ns")
        if ns is not None:
            return [(tid, ns)]
        base = thread_base(self.caller, tid)
        out = []
        for name, _ in self.store.refs(base):
            p = parse_ref(name)
            if p is not None and p.kind == "head" and is_thread_ref(name, base):
                out.append((tid, p.ns))
        return out

    def thread_refs(self, thread_id: Any) -> list[tuple[str, bytes]]:
        """Every ref of a thread (heads, tips, parked writes), one consistent read."""
        base = thread_base(self.caller, thread_id)
        return [(n, d) for n, d in self.store.refs(base) if is_thread_ref(n, base)]

    def checkpoints(self, config: RunnableConfig | None, filter: dict[str, Any] | None,
                    before: RunnableConfig | None, limit: int | None) -> Iterator[CheckpointTuple]:
        """What ``BaseCheckpointSaver.list`` yields (see :meth:`LatticeSaver.list`)."""
        cid = get_checkpoint_id(config) if config else None
        bound = get_checkpoint_id(before) if before else None
        left = limit
        rec, tx = self.rec, self.tx
        for tid, ns in self.namespaces(config):
            forest = self.forest(tid, ns)
            if cid:
                hit = self.locate(forest, cid)
                found: Any = [] if hit is None or (bound is not None and cid >= bound) else [hit]
            else:
                found = newest_first(tx, self.rd, forest, bound)
            for _, c in found:
                if filter:
                    md = rec.metadata(tx, rec.root(tx, c.root))
                    if not all(md.get(k) == v for k, v in filter.items()):
                        continue
                if left is not None:
                    if left <= 0:
                        return
                    left -= 1
                yield self.tuple(tid, ns, c, None, forest)

    # ------------------------------------------------------------------ plans
    def bump(self, forest: Forest) -> RefUpdate:
        """The swap of the namespace's version ref to a fresh commit (see the module docstring)."""
        d, _ = write_commit(self.tx, parent=None, parent_commit=None, root=self.tx.put_root({}),
                            ts=int(time.time() * 1000), op=OP_VERSION, input={"n": os.urandom(8).hex()},
                            caller=self.caller)
        return RefUpdate(version_ref(forest.head_name), forest.version, d)

    def parked_writes(self, forest: Forest, cid: str) -> tuple[Any, list]:
        """``(stored writes parked for cid or None, [the update removing their ref])``."""
        parked = forest.parked.get(cid)
        if parked is None:
            return None, []
        writes = self.rec.root(self.tx, self.rd(self.tx, parked[1]).root).get("pending_writes")
        return writes, [RefUpdate(parked[0], parked[1], None)]

    def plan_put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                 new_versions: ChannelVersions) -> Plan:
        """Store a checkpoint as a commit under its parent's commit (a new leaf, or a leaf moved on)."""
        conf = conf_of(config)
        tid, ns = conf["thread_id"], conf.get("checkpoint_ns", "")
        parent_id = conf.get("checkpoint_id")
        cid = checkpoint["id"]
        rd, rec, tx = self.rd, self.rec, self.tx
        forest = self.forest(tid, ns)
        md = get_checkpoint_metadata(config, metadata)
        parent = self.locate(forest, parent_id) if parent_id else None
        parent_root = rec.root(tx, parent[1].root) if parent is not None else None
        writes, extra = self.parked_writes(forest, cid)  # writes that arrived first join their checkpoint
        existing = self.locate(forest, cid) if forest.head is not None else None
        if existing is not None:  # the same checkpoint again: new contents, same place in the tree
            writes = rec.join_writes(tx, rec.root(tx, existing[1].root).get("pending_writes"), writes)
        root, remember = rec.build(tx, checkpoint, md, new_versions, parent_root, parent_id, writes)
        result = {"configurable": {"thread_id": tid, "checkpoint_ns": ns, "checkpoint_id": cid}}
        if existing is not None:
            leaves = rebuild(tx, rd, forest, {existing[0]: (existing[1].seq, root)})
            return Plan(leaf_updates(forest, leaves, check_kept=True) + extra + [self.bump(forest)], result,
                        tuple(remember))
        pd, pc = parent if parent is not None else (None, None)
        info = {k: md[k] for k in ("source", "step") if type(md.get(k)) in (str, int)}
        d, _ = write_commit(tx, parent=pd, parent_commit=pc, root=root, ts=_ms(checkpoint.get("ts")),
                            op=OP_CHECKPOINT, input=commit_input(cid, pc, info), caller=self.caller)
        old = forest.leaf_ids(tx, rd)
        leaves = {i: x for i, x in old.items() if x != pd}
        if len(leaves) == len(old) and old:  # a new branch beside the leaves, not a leaf moved on
            extra.append(self.bump(forest))
        leaves[cid] = d
        return Plan(leaf_updates(forest, leaves) + extra, result, tuple(remember))

    def plan_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                    task_path: str) -> Plan:
        """Add pending writes to their checkpoint (rewriting it and the commits above it), or park them."""
        conf = conf_of(config)
        cid = conf["checkpoint_id"]
        rd, rec, tx = self.rd, self.rec, self.tx
        forest = self.forest(conf["thread_id"], conf.get("checkpoint_ns", ""))
        hit = self.locate(forest, cid) if forest.head is not None else None
        if hit is not None:
            d, c = hit
            root = rec.root(tx, c.root)
            parked, extra = self.parked_writes(forest, cid)  # parked while it was being stored
            stored = rec.join_writes(tx, root.get("pending_writes"), parked)
            new = rec.merge_writes(tx, stored, writes, task_id, task_path)
            if new is None:
                if not extra:
                    return NOTHING
                new = stored
            link = tx.put_root({**root, "pending_writes": new})
            leaf = forest.head_name if d == forest.head else next((n for n, x in forest.tips.items() if x == d), None)
            if leaf is not None:
                # A leaf (the usual case: writes for the newest checkpoint): a change that gives it a
                # child, or rewrites its chain, moves its ref, so that ref alone guards the change.
                nd, _ = write_like(tx, rd, c, c.parent, link)
                return Plan([RefUpdate(leaf, d, nd)] + extra)
            return Plan(leaf_updates(forest, rebuild(tx, rd, forest, {d: (c.seq, link)}), check_kept=True) + extra
                        + [self.bump(forest)])
        # The checkpoint is not stored (yet): park the writes beside the head until it is.
        old = forest.parked.get(cid)
        old_writes = rec.root(tx, rd(tx, old[1]).root).get("pending_writes") if old else None
        new = rec.merge_writes(tx, old_writes, writes, task_id, task_path)
        if new is None:
            return NOTHING
        d, _ = write_commit(tx, parent=None, parent_commit=None, root=tx.put_root({"pending_writes": new}),
                            ts=int(time.time() * 1000), op=OP_WRITES, input={"id": cid}, caller=self.caller)
        return Plan([RefUpdate(forest.head_name, forest.head, forest.head),
                     RefUpdate(parked_ref(forest.head_name, cid), old[1] if old else None, d)])

    def plan_delete(self, thread_id: Any) -> Plan:
        """Remove every ref of a thread."""
        return Plan([RefUpdate(n, d, None) for n, d in self.thread_refs(thread_id)])

    def plan_copy(self, source: Any, target: Any) -> Plan:
        """New refs of ``target`` pointing where ``source``'s point.

        Raises:
            ValueError: ``target`` has refs already.
        """
        refs = self.thread_refs(source)
        if refs and self.thread_refs(target):
            raise ValueError(f"cannot copy thread {source!r} to {target!r}: the target has checkpoints")
        src, dst = thread_base(self.caller, source), thread_base(self.caller, target)
        return Plan([RefUpdate(dst + n[len(src):], None, d) for n, d in refs])

    def plan_keep_latest(self, thread_id: Any, ns: str) -> Plan:
        """Keep only the latest checkpoint of a namespace (and, for DeltaChannel, its ancestors back to
        the nearest stored value of each channel updated since its snapshot, so the channel reconstructs)."""
        forest = self.forest(thread_id, ns)
        latest = self.latest(forest)
        if latest is None:
            return NOTHING
        rd, rec, tx = self.rd, self.rec, self.tx
        chain = [latest]
        md = rec.metadata(tx, rec.root(tx, latest[1].root))
        need = set((md.get("counters_since_delta_snapshot") or {}).keys())
        while need:
            _, c = chain[-1]
            need -= set(entries(tx, rec.root(tx, c.root).get("channel_values", {})))
            if not need or c.parent is None:
                break
            chain.append((c.parent, rd(tx, c.parent)))
        keep = cid_of(latest[1])
        parked, _ = self.parked_writes(forest, keep)
        top = None
        for _, c in reversed(chain):
            root = c.root
            if parked is not None and c is latest[1]:
                r = rec.root(tx, root)
                root = tx.put_root({**r, "pending_writes": rec.join_writes(tx, r.get("pending_writes"), parked)})
            top, _ = write_like(tx, rd, c, top, root)
        ups = leaf_updates(forest, {keep: top})
        kept = {cid_of(c) for _, c in chain} - {keep}  # ancestors kept for DeltaChannel keep theirs
        ups += [RefUpdate(n, d, None) for cid, (n, d) in forest.parked.items() if cid <= keep and cid not in kept]
        return Plan(ups + [self.bump(forest)])

    def plan_drop_runs(self, thread_id: Any, ns: str, run_ids: set) -> Plan:
        """Remove the checkpoints of a namespace whose metadata ``run_id`` is in ``run_ids``."""
        forest = self.forest(thread_id, ns)
        rec, tx = self.rec, self.tx
        changes = {}
        for d, c in newest_first(tx, self.rd, forest):
            if rec.metadata(tx, rec.root(tx, c.root)).get("run_id") in run_ids:
                changes[d] = (c.seq, None)
        if not changes:
            return NOTHING
        dropped = {cid_of(self.rd(tx, d)) for d in changes}
        ups = [RefUpdate(n, d, None) for cid, (n, d) in forest.parked.items() if cid in dropped]
        return Plan(leaf_updates(forest, rebuild(tx, self.rd, forest, changes), check_kept=True) + ups
                    + [self.bump(forest)])
