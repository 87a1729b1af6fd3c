"""The checkpoints of one namespace of a thread: a forest of commits, kept reachable by refs.

Each checkpoint is a lattice commit (:mod:`lattice.commits`) whose parent is
the commit of its LangGraph parent checkpoint, so a branch of the thread is a
commit chain with jump pointers and ``seq`` is the depth in the tree. The
commit's ``input`` is ``{"id": <checkpoint id>, "source"?, "step"?, "dis"?}``.

Refs (named by :mod:`ops.langgraph.naming`) keep every leaf reachable: the
*head* ref points at the leaf with the greatest checkpoint id (LangGraph's
"latest"), a *tip* ref at each other leaf. A put whose parent is a leaf moves
that leaf's ref; a put at an interior checkpoint (``update_state`` at an old
checkpoint, two writers after the same parent) starts a branch: a new leaf.

Lookups by checkpoint id descend a chain with the jump pointers in O(log n)
commit reads: LangGraph's ids (uuid6) grow along a chain. A commit whose id is
not greater than its parent's (a clock that went back, ids chosen by hand) is
marked ``dis`` and so is every descendant; below such a commit, lookups and
listings fall back to walking the chain, so they stay correct, only slower.

Changing a stored checkpoint (adding pending writes, removing checkpoints)
rewrites its commit and those above it up to every leaf that holds it; the
roots are shared, only the commit objects are new.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator

from lattice.codec import Link
from lattice.commits import Commit, read_commit, write_commit
from lattice.nodes import Tx
from lattice.store import RefUpdate, read_refs

from .naming import namespace_refs, parse_ref, tip_ref

__all__ = ["OP_CHECKPOINT", "OP_WRITES", "OP_VERSION", "CommitReader", "Forest", "cid_of", "commit_input", "find",
           "seek_below", "newest_first", "leaf_updates", "rebuild", "write_like"]

#: ``op`` of a checkpoint commit.
OP_CHECKPOINT = "langgraph:checkpoint"
#: ``op`` of a parked-writes commit.
OP_WRITES = "langgraph:writes"
#: ``op`` of a version commit (parentless; ``input`` ``{"n": <random hex>}``: fresh for every change).
OP_VERSION = "langgraph:version"


def cid_of(c: Commit) -> str:
    """The checkpoint id of a commit."""
    return c.input["id"]


def _dis(c: Commit) -> bool:
    return bool(c.input.get("dis"))


def commit_input(cid: str, parent: Commit | None, extra: dict | None = None) -> dict:
    """The ``input`` of a checkpoint commit with id ``cid`` under ``parent``."""
    out = {"id": cid, **(extra or {})}
    if parent is not None and (_dis(parent) or cid <= cid_of(parent)):
        out["dis"] = True
    return out


class CommitReader:
    """Decoded commits by digest (bounded LRU; commits are immutable, so one reader serves every store).

    Args:
        capacity: commits kept.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[bytes, Commit] = OrderedDict()

    def __call__(self, tx: Tx, d: bytes) -> Commit:
        c = self._cache.get(d)
        if c is None:
            c = read_commit(tx, d)
            self._cache[d] = c
            if len(self._cache) > self.capacity:
                try:
                    self._cache.popitem(last=False)
                except KeyError:  # emptied by another thread meanwhile
                    pass
        return c


class Forest:
    """The refs of one namespace of one thread, as read.

    Attributes:
        head_name: the head ref's name. head: its digest (None: no checkpoint).
        tips: ``ref name -> digest`` of the other leaves.
        parked: ``checkpoint id -> (ref name, digest)`` of parked writes.
        version: the digest of the namespace's version ref (None: never bumped).
    """

    __slots__ = ("head_name", "head", "tips", "parked", "version")

    def __init__(self, head_name: str, head: bytes | None, tips: dict[str, bytes],
                 parked: dict[str, tuple[str, bytes]], version: bytes | None = None) -> None:
        self.head_name, self.head, self.tips, self.parked = head_name, head, tips, parked
        self.version = version

    @classmethod
    def read(cls, store: Any, head_name: str) -> "Forest":
        """Read the refs of the namespace whose head ref is ``head_name``.

        One snapshot on every backend (:func:`lattice.store.read_refs`); on a store without
        one the version is read first: a change that bumps it after that read makes a plan
        on these refs lose its compare-and-swap (see :mod:`ops.langgraph.plans`)."""
        names, (tip, park) = namespace_refs(head_name)
        vname = names[0]
        got = read_refs(store, names, [tip, park])
        tips, parked = {}, {}
        for name, d in got.items():
            if name.startswith(tip):
                tips[name] = d
            elif name.startswith(park):
                p = parse_ref(name)
                if p is not None:
                    parked[p.key] = (name, d)
        return cls(head_name, got.get(head_name), tips, parked, got.get(vname))

    def leaves(self) -> list[tuple[str, bytes]]:
        """``(ref name, digest)`` of every leaf, the head first."""
        out = [] if self.head is None else [(self.head_name, self.head)]
        return out + sorted(self.tips.items())

    def leaf_ids(self, tx: Tx, rd: CommitReader) -> dict[str, bytes]:
        """``checkpoint id -> digest`` of every leaf."""
        return {cid_of(rd(tx, d)): d for _, d in self.leaves()}


def find(tx: Tx, rd: CommitReader, leaf: bytes, cid: str) -> tuple[bytes, Commit] | None:
    """The commit of checkpoint ``cid`` on the chain ending at ``leaf``, or None (O(log n) reads)."""
    d, c = leaf, rd(tx, leaf)
    while True:
        i = cid_of(c)
        if i == cid:
            return d, c
        if not _dis(c):
            if i < cid:
                return None
            if c.skip is not None:
                j = rd(tx, c.skip)
                if cid_of(j) >= cid:
                    d, c = c.skip, j
                    continue
        if c.parent is None:
            return None
        d = c.parent
        c = rd(tx, d)


def seek_below(tx: Tx, rd: CommitReader, leaf: bytes, bound: str) -> tuple[bytes, Commit] | None:
    """The newest commit with a checkpoint id below ``bound`` on the chain ending at ``leaf``
    (chains without ``dis`` only)."""
    d, c = leaf, rd(tx, leaf)
    while cid_of(c) >= bound:
        if c.skip is not None:
            j = rd(tx, c.skip)
            if cid_of(j) >= bound:
                d, c = c.skip, j
                continue
        if c.parent is None:
            return None
        d = c.parent
        c = rd(tx, d)
    return d, c


def _walk(tx: Tx, rd: CommitReader, d: bytes | None) -> Iterator[tuple[bytes, Commit]]:
    while d is not None:
        c = rd(tx, d)
        yield d, c
        d = c.parent


def newest_first(tx: Tx, rd: CommitReader, forest: Forest, before: str | None = None
                 ) -> Iterator[tuple[bytes, Commit]]:
    """Every checkpoint commit of the namespace, greatest id first, each once.

    Args:
        before: only ids below this one.
    """
    cursors: list[list] = []
    disordered = False
    for _, leaf in forest.leaves():
        c = rd(tx, leaf)
        disordered = disordered or _dis(c)
        cursors.append([leaf, c])
    if disordered:  # the rare slow path: collect, sort
        seen: dict[bytes, Commit] = {}
        for leaf, _ in cursors:
            for d, c in _walk(tx, rd, leaf):
                if d in seen:
                    break
                seen[d] = c
        items = [(d, c) for d, c in seen.items() if before is None or cid_of(c) < before]
        items.sort(key=lambda dc: cid_of(dc[1]), reverse=True)
        yield from items
        return
    if before is not None:
        sought = [seek_below(tx, rd, leaf, before) for leaf, _ in cursors]
        cursors = [list(s) for s in sought if s is not None]
    done: set[bytes] = set()
    while cursors:
        k = max(range(len(cursors)), key=lambda j: cid_of(cursors[j][1]))
        d, c = cursors[k]
        if d in done:  # another leaf's cursor yielded it and goes on below it
            cursors.pop(k)
            continue
        done.add(d)
        yield d, c
        if c.parent is None:
            cursors.pop(k)
        else:
            cursors[k] = [c.parent, rd(tx, c.parent)]


def leaf_updates(forest: Forest, leaves: dict[str, bytes], check_kept: bool = False) -> list[RefUpdate]:
    """Ref updates that make the refs point at exactly ``leaves`` (``checkpoint id -> digest``).

    The head ref goes to the greatest id, a tip ref to each other leaf. The
    head ref is always among the updates (expected = as read), so every change
    to a namespace is a compare-and-swap on its head.

    Args:
        check_kept: also compare-and-swap every leaf ref kept as read (expected = new = as
            read), for a plan that depends on the whole set of leaves: one read through a
            saver's overlay may hold a value another writer has replaced since, and a plan that
            keeps it must lose rather than land on refs that never were.
    """
    head_id = max(leaves) if leaves else None
    want = {forest.head_name: leaves[head_id]} if head_id is not None else {}
    for cid, d in leaves.items():
        if cid != head_id:
            want[tip_ref(forest.head_name, cid)] = d
    have = {forest.head_name: forest.head, **forest.tips}
    ups = [RefUpdate(forest.head_name, forest.head, want.get(forest.head_name))]
    for name in sorted((want.keys() | have.keys()) - {forest.head_name}):
        if have.get(name) != want.get(name) or check_kept:
            ups.append(RefUpdate(name, have.get(name), want.get(name)))
    return ups


def write_like(tx: Tx, rd: CommitReader, c: Commit, parent: bytes | None, root: Link) -> tuple[bytes, Commit]:
    """Buffer a copy of checkpoint commit ``c`` with another parent and/or root."""
    pc = rd(tx, parent) if parent is not None else None
    extra = {k: v for k, v in c.input.items() if k not in ("id", "dis")}
    return write_commit(tx, parent=parent, parent_commit=pc, root=root, ts=c.ts, op=c.op,
                        input=commit_input(cid_of(c), pc, extra), caller=c.caller)


def rebuild(tx: Tx, rd: CommitReader, forest: Forest, changes: dict[bytes, tuple[int, Link | None]]
            ) -> dict[str, bytes]:
    """The leaves after replacing or removing checkpoint commits.

    Args:
        changes: ``old commit digest -> (its seq, new root)``; a new root of
            ``None`` removes the checkpoint (its children move to its parent).

    Returns:
        ``checkpoint id -> digest`` of the new leaves (commits buffered in ``tx``).
        Only the chains that hold a changed commit are walked, down to the deepest
        change: replacing the head's checkpoint rewrites one commit.
    """
    leaves = forest.leaf_ids(tx, rd)
    if not changes:
        return leaves
    low = min(seq for seq, _ in changes.values())
    removing = any(root is None for _, root in changes.values())
    only = None
    if len(changes) == 1 and not removing:  # the common case: one checkpoint gains writes
        (d0,) = changes
        only = cid_of(rd(tx, d0))
    memo: dict[bytes, bytes | None] = {}
    out: dict[str, bytes] = {}
    for lid, leaf in leaves.items():
        if only is not None and (lid < only and not _dis(rd(tx, leaf)) or find(tx, rd, leaf, only) is None):
            out[lid] = leaf  # this chain does not hold the change
            continue
        chain = []
        base = None
        for d, c in _walk(tx, rd, leaf):
            if c.seq < low:
                base = d
                break
            chain.append((d, c))
        cur = base
        for d, c in reversed(chain):
            if d in memo:
                cur = memo[d]
                continue
            root = changes[d][1] if d in changes else c.root
            if root is None:
                memo[d] = cur
                continue
            if cur != c.parent or root != c.root:
                cur, _ = write_like(tx, rd, c, cur, root)
            else:
                cur = d
            memo[d] = cur
        if cur is not None:
            out[cid_of(rd(tx, cur))] = cur
    if removing:  # a removed leaf leaves its nearest kept ancestor: a leaf only if no other top holds it
        tops = list(out.items())
        out = {i: t for i, t in tops if not any(u != t and find(tx, rd, u, i) for _, u in tops)}
    return out
