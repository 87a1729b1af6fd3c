"""The persistent vector: a radix tree of fan-out 32 with a tail (as in Clojure).

A list of more than ``FANOUT`` items is stored as a ``VEC`` object
``[count, shift, root, tail]``: ``root`` links a tree of ``VNODE`` objects
(interior nodes hold links, leaves hold 32 items each), ``tail`` holds the last
1..32 items inline. Append and index rewrite O(log32 n) nodes; the tail is
rewritten in place. :meth:`Vec.build` gives the same tree as any sequence of
appends, so the digest depends only on the items.

The ``seq_*`` helpers work on either form of an opened list: a plain ``list``
or a :class:`Vec` handle. Handles are re-exported by :mod:`lattice.nodes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from .codec import Link
from .layout import BITS, FANOUT, MASK, VEC, VNODE

if TYPE_CHECKING:
    from .nodes import Tx

__all__ = ["Vec", "seq_len", "seq_get", "seq_iter", "seq_plain", "seq_append", "seq_set"]


class Vec:
    """A persistent vector handle: immutable, every edit returns a new handle.

    Items are held in normalized (stored) form; use :func:`seq_get` /
    :func:`seq_append` for plain values. ``root`` is a ``Link(VNODE)`` or
    ``None``; ``tail`` holds the last 1..32 items.
    """

    __slots__ = ("tx", "count", "shift", "root", "tail", "link")

    def __init__(self, tx: Tx, count: int, shift: int, root: Link | None, tail: list,
                 link: Link | None = None) -> None:
        self.tx, self.count, self.shift, self.root, self.tail = tx, count, shift, root, tail
        self.link = link  # where this exact vector is stored, if it is

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Vec(count={self.count})"

    @classmethod
    def open(cls, tx: Tx, link: Link) -> "Vec":
        """Return the handle of the stored vector ``link`` (a ``Link(VEC)``), reading its root object."""
        count, shift, root, tail = tx.load(link)
        return cls(tx, count, shift, root, tail, link)

    @classmethod
    def build(cls, tx: Tx, items: list) -> "Vec":
        """Build the canonical vector of normalized ``items`` bottom-up (no garbage nodes)."""
        n = len(items)
        if n == 0:
            return cls(tx, 0, BITS, None, [])
        tailoff = ((n - 1) >> BITS) << BITS
        nodes = [tx.put_obj(VNODE, items[i:i + FANOUT]) for i in range(0, tailoff, FANOUT)]
        shift, root = BITS, None
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
        node, level, load = self.root, self.shift, self.tx.load
        while level > 0:
            node = load(node)[(i >> level) & MASK]
            level -= BITS
        return load(node)

    def get_raw(self, i: int) -> Any:
        """Return item ``i`` (0 <= i < count) in stored form. Raises IndexError."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        off = self._tailoff()
        if i >= off:
            return self.tail[i - off]
        return self._leaf(i)[i & MASK]

    def iter_raw(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """Yield stored items ``start <= i < stop``, one leaf read per 32 items."""
        stop = self.count if stop is None else min(stop, self.count)
        off = self._tailoff()
        i = max(start, 0)
        while i < stop and i < off:
            leaf = self._leaf(i)
            j = i & MASK
            end = min(FANOUT, j + (stop - i))
            yield from leaf[j:end]
            i += end - j
        while i < stop:
            yield self.tail[i - off]
            i += 1

    def append_raw(self, item: Any) -> "Vec":
        """Return a vector with the stored-form ``item`` appended."""
        if len(self.tail) < FANOUT:
            return Vec(self.tx, self.count + 1, self.shift, self.root, self.tail + [item])
        tx = self.tx
        leaf = tx.put_obj(VNODE, self.tail)
        cnt = self.count  # items including the full tail
        if self.root is None:
            return Vec(tx, cnt + 1, BITS, tx.put_obj(VNODE, [leaf]), [item])
        if (cnt >> BITS) > (1 << self.shift):
            root = tx.put_obj(VNODE, [self.root, self._new_path(self.shift, leaf)])
            return Vec(tx, cnt + 1, self.shift + BITS, root, [item])
        return Vec(tx, cnt + 1, self.shift, self._push(self.shift, self.root, leaf, cnt), [item])

    def _push(self, level: int, parent: Link, leaf: Link, cnt: int) -> Link:
        children = list(self.tx.load(parent))
        sub = ((cnt - 1) >> level) & MASK
        if level == BITS:
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
        while level > 0:
            node = self.tx.put_obj(VNODE, [node])
            level -= BITS
        return node

    def set_raw(self, i: int, item: Any) -> "Vec":
        """Return a vector with item ``i`` replaced (stored form). Raises IndexError."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        off = self._tailoff()
        if i >= off:
            tail = list(self.tail)
            tail[i - off] = item
            return Vec(self.tx, self.count, self.shift, self.root, tail)
        return Vec(self.tx, self.count, self.shift, self._set(self.shift, self.root, i, item), self.tail)

    def _set(self, level: int, node: Link, i: int, item: Any) -> Link:
        children = list(self.tx.load(node))
        if level == 0:
            children[i & MASK] = item
        else:
            sub = (i >> level) & MASK
            children[sub] = self._set(level - BITS, children[sub], i, item)
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
