"""The persistent vector: a radix tree with a tail (as in Clojure), small leaves under wide nodes.

A list of more than ``FANOUT`` items is stored as a ``VEC`` object
``[count, shift, root, tail]``: ``root`` links a tree of ``VNODE`` objects
(interior nodes hold up to 32 links, leaves hold 8 items each), ``tail`` holds
the last 1..8 items inline. Append and index rewrite O(log n) nodes; the tail is
rewritten in place. :meth:`Vec.build` gives the same tree as any sequence of
appends, so the digest depends only on the items.

Why leaves of 8 under nodes of 32 (format 2): every append rewrites the ``VEC``
object with its tail, so the tail's size is paid on every step of a growing
history; with 32-item leaves that was 16 items on average (a chat history's
message maps: about 700 bytes a turn). Eight-item leaves cut it to 4, at the price
of rewriting the bottom interior node every 8 appends instead of every 32.

``shift`` is the bit position of the root's index digit: a root whose children
are leaves has ``shift = LEAF_BITS``, each level above adds ``BITS``. A vector
stored in format 1 (32-item leaves: ``shift`` a multiple of ``BITS``) is read as
it is; editing one rebuilds it in format 2 (once, O(n)).

The ``seq_*`` helpers work on either form of an opened list: a plain ``list``
or a :class:`Vec` handle. Handles are re-exported by :mod:`lattice.nodes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from .codec import Link
from .layout import BITS, FANOUT, LEAF_BITS, MASK, VEC, VNODE

if TYPE_CHECKING:
    from .nodes import Tx

__all__ = ["Vec", "seq_len", "seq_get", "seq_iter", "seq_plain", "seq_append", "seq_set"]


class Vec:
    """A persistent vector handle: immutable, every edit returns a new handle.

    Items are held in normalized (stored) form; use :func:`seq_get` /
    :func:`seq_append` for plain values. ``root`` is a ``Link(VNODE)`` or
    ``None``; ``tail`` holds the last 1..``leaf`` items. ``lb``: bits of index a
    leaf takes (:data:`LEAF_BITS`, or ``BITS`` for a vector stored in format 1).
    """

    __slots__ = ("tx", "count", "shift", "root", "tail", "link", "lb")

    def __init__(self, tx: Tx, count: int, shift: int, root: Link | None, tail: list,
                 link: Link | None = None) -> None:
        self.tx, self.count, self.shift, self.root, self.tail = tx, count, shift, root, tail
        self.link = link  # where this exact vector is stored, if it is
        self.lb = BITS if shift % BITS == 0 else LEAF_BITS

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Vec(count={self.count})"

    @property
    def leaf(self) -> int:
        """Items per leaf (and most items of the tail)."""
        return 1 << self.lb

    def child_level(self, level: int) -> int:
        """The level of the children of an interior node at ``level`` (0: they are leaves)."""
        return level - BITS if level > self.lb else 0

    @classmethod
    def open(cls, tx: Tx, link: Link) -> "Vec":
        """Return the handle of the stored vector ``link`` (a ``Link(VEC)``), reading its root object."""
        count, shift, root, tail = tx.load(link)
        return cls(tx, count, shift, root, tail, link)

    @classmethod
    def build(cls, tx: Tx, items: list) -> "Vec":
        """Build the canonical vector of normalized ``items`` bottom-up (no garbage nodes)."""
        n, lb = len(items), LEAF_BITS
        if n == 0:
            return cls(tx, 0, lb, None, [])
        size = 1 << lb
        tailoff = ((n - 1) >> lb) << lb
        nodes = [tx.put_obj(VNODE, items[i:i + size]) for i in range(0, tailoff, size)]
        shift, root = lb, None
        while nodes:
            parents = [tx.put_obj(VNODE, nodes[i:i + FANOUT]) for i in range(0, len(nodes), FANOUT)]
            if len(parents) == 1:
                root = parents[0]
                break
            nodes = parents
            shift += BITS
        return cls(tx, n, shift, root, items[tailoff:])

    def store(self) -> Link:
        """Buffer the root object (unless stored already); return ``Link(VEC, digest)``."""
        if self.link is None:
            self.link = self.tx.put_obj(VEC, [self.count, self.shift, self.root, self.tail])
        return self.link

    def _tailoff(self) -> int:
        return self.count - len(self.tail)

    def _leaf(self, i: int) -> list:
        node, level, load, lb = self.root, self.shift, self.tx.load, self.lb
        while level > 0:
            node = load(node)[(i >> level) & MASK]
            level = level - BITS if level > lb else 0
        return load(node)

    def get_raw(self, i: int) -> Any:
        """Return item ``i`` (0 <= i < count) in stored form. Raises IndexError."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        off = self._tailoff()
        if i >= off:
            return self.tail[i - off]
        return self._leaf(i)[i & (self.leaf - 1)]

    def iter_raw(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """Yield stored items ``start <= i < stop``: one walk down the tree, then one read per leaf."""
        stop = self.count if stop is None else min(stop, self.count)
        off = self._tailoff()
        i = max(start, 0)
        if i < stop and i < off:
            yield from self._iter_tree(i, min(stop, off))
            i = off
        while i < stop:
            yield self.tail[i - off]
            i += 1

    def _iter_tree(self, start: int, stop: int) -> Iterator[Any]:
        """Items ``start <= i < stop`` of the tree part, depth first, visiting only the nodes
        that hold some of them."""
        load, lb, size = self.tx.load, self.lb, self.leaf
        stack = [(self.root, self.shift, 0)]  # (node, its level, index of its first item)
        while stack:
            node, level, base = stack.pop()
            if level == 0:
                leaf = load(node)
                yield from leaf[max(start - base, 0):min(stop - base, size)]
                continue
            span = 1 << level  # items under each child
            first = max((start - base) >> level, 0)
            last = min((stop - 1 - base) >> level, MASK)
            children = load(node)
            child = level - BITS if level > lb else 0
            for j in range(min(last, len(children) - 1), first - 1, -1):
                stack.append((children[j], child, base + j * span))

    def _current(self) -> "Vec":
        """This vector in the current format (a format 1 vector is rebuilt)."""
        if self.lb == LEAF_BITS:
            return self
        return Vec.build(self.tx, list(self.iter_raw()))

    def append_raw(self, item: Any) -> "Vec":
        """Return a vector with the stored-form ``item`` appended."""
        if self.lb != LEAF_BITS:
            return self._current().append_raw(item)
        lb = self.lb
        if len(self.tail) < (1 << lb):
            return Vec(self.tx, self.count + 1, self.shift, self.root, self.tail + [item])
        tx = self.tx
        leaf = tx.put_obj(VNODE, self.tail)
        cnt = self.count  # items including the full tail
        if self.root is None:
            return Vec(tx, cnt + 1, lb, tx.put_obj(VNODE, [leaf]), [item])
        if (cnt >> lb) > (1 << (self.shift - lb + BITS)):  # the root is full: grow a level
            root = tx.put_obj(VNODE, [self.root, self._new_path(self.shift, leaf)])
            return Vec(tx, cnt + 1, self.shift + BITS, root, [item])
        return Vec(tx, cnt + 1, self.shift, self._push(self.shift, self.root, leaf, cnt), [item])

    def _push(self, level: int, parent: Link, leaf: Link, cnt: int) -> Link:
        children = list(self.tx.load(parent))
        sub = ((cnt - 1) >> level) & MASK
        if level == self.lb:
            insert = leaf
        elif sub < len(children):
            insert = self._push(level - BITS, children[sub], leaf, cnt)
        else:
            insert = self._new_path(level - BITS, leaf)
        if sub < len(children):
            children[sub] = insert
        else:
            children.append(insert)
        return self.tx.put_obj(VNODE, children)

    def _new_path(self, level: int, node: Link) -> Link:
        while level >= self.lb:
            node = self.tx.put_obj(VNODE, [node])
            level -= BITS
        return node

    def set_raw(self, i: int, item: Any) -> "Vec":
        """Return a vector with item ``i`` replaced (stored form). Raises IndexError."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        if self.lb != LEAF_BITS:
            return self._current().set_raw(i, item)
        off = self._tailoff()
        if i >= off:
            tail = list(self.tail)
            tail[i - off] = item
            return Vec(self.tx, self.count, self.shift, self.root, tail)
        return Vec(self.tx, self.count, self.shift, self._set(self.shift, self.root, i, item), self.tail)

    def _set(self, level: int, node: Link, i: int, item: Any) -> Link:
        children = list(self.tx.load(node))
        if level == 0:
            children[i & (self.leaf - 1)] = item
        else:
            sub = (i >> level) & MASK
            children[sub] = self._set(self.child_level(level), children[sub], i, item)
        return self.tx.put_obj(VNODE, children)


# ---------------------------------------------------------------------------
# Helpers over opened lists (plain list or handle)
# ---------------------------------------------------------------------------


def seq_len(seq: list | Vec) -> int:
    """Length of an opened list or vector."""
    return seq.count if type(seq) is Vec else len(seq)


def seq_get(tx: Tx, seq: list | Vec, i: int) -> Any:
    """Item ``i`` of an opened list or vector, opened. Raises IndexError."""
    if type(seq) is Vec:
        return tx.open(seq.get_raw(i))
    if i < 0:
        raise IndexError(i)
    return seq[i]


def seq_iter(tx: Tx, seq: list | Vec, start: int = 0, stop: int | None = None) -> Iterator[Any]:
    """Yield opened items ``start <= i < stop``."""
    if type(seq) is Vec:
        for x in seq.iter_raw(start, stop):
            yield tx.open(x)
    else:
        yield from seq[start:stop]


def seq_plain(tx: Tx, seq: list | Vec, start: int = 0, stop: int | None = None) -> list[Any]:
    """Items ``start <= i < stop`` as plain data (no collection handles), in one pass each."""
    if type(seq) is Vec:
        return [tx.materialize(x) for x in seq.iter_raw(start, stop)]
    return [tx.plain(x) for x in seq[start:stop]]


def seq_append(tx: Tx, seq: list | Vec, items: list) -> list | Vec:
    """Return ``seq`` with ``items`` appended (a vector handle once it outgrows 32)."""
    if type(seq) is not Vec and len(seq) + len(items) <= FANOUT:
        return list(seq) + list(items)
    if type(seq) is not Vec:
        return Vec.build(tx, [tx.put_value(x) for x in list(seq) + list(items)])
    for x in items:
        seq = seq.append_raw(tx.put_value(x))
    return seq


def seq_set(tx: Tx, seq: list | Vec, i: int, value: Any) -> list | Vec:
    """Return ``seq`` with item ``i`` replaced. Raises IndexError."""
    if type(seq) is Vec:
        return seq.set_raw(i, tx.put_value(value))
    if i < 0 or i >= len(seq):
        raise IndexError(i)
    out = list(seq)
    out[i] = value
    return out
