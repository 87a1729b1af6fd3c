"""The persistent vector: a radix tree with a tail (as in Clojure), small leaves under small nodes.

A list of more than ``FANOUT`` items is stored as a ``VEC`` object
``[count, shift, root, tail, bits]``: ``root`` links a tree of ``VNODE`` objects
(interior nodes hold up to ``2**bits`` links, leaves hold 8 items each), ``tail`` holds
the last 1..8 items inline. Append and index rewrite O(log n) nodes; the tail is
rewritten in place. :meth:`Vec.build` gives the same tree as any sequence of
appends, so the digest depends only on the items (and the format).

``shift`` is the bit position of the root's index digit: a root whose children
are leaves has a ``shift`` of the leaf's bits, and each level above adds ``bits``; so the
leaf's bits are ``shift % bits`` (or ``bits`` when that is 0).

The geometry of each format (:data:`GEOMETRY`, leaf bits and interior bits):

- format 1: leaves of 32 under nodes of 32, stored ``[count, shift, root, tail]``
  (``shift`` a multiple of 5);
- format 2: leaves of 8 under nodes of 32, the same four fields (``shift % 5 == 3``). Every
  append rewrites the ``VEC`` object with its tail, so the tail's size is paid on every step of
  a growing history; with 32-item leaves that was 16 items on average (a chat history's message
  maps: about 700 bytes a turn), with 8 it is 4;
- format 3: leaves of 8 under nodes of 8, with the fifth field ``bits = 3``. Each full leaf
  rewrites the path above it: with nodes of 32 that path averages 16 links a level (a 34-byte
  link each), with nodes of 8 it averages 4 a level over a third more levels. Measured on
  ``bench/vs_langgraph.py``'s chat (two 8-item pushes every 4 and 8 turns): 150 fewer bytes a
  turn between 400 and 1,000 turns.

A vector of another format is read as it is. Editing it writes it in the transaction's
format (:attr:`lattice.nodes.Tx.format`, the current one unless a replay sets a commit's
own): when that differs, the first edit rebuilds it (once, O(n)).

The ``seq_*`` helpers work on either form of an opened list: a plain ``list``
or a :class:`Vec` handle. Handles are re-exported by :mod:`lattice.nodes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from .codec import Link
from .codec import FORMAT_VERSION
from .errors import InvalidValue
from .layout import BITS, FANOUT, LEAF_BITS, NODE_BITS, VEC, VNODE

if TYPE_CHECKING:
    from .nodes import Tx

__all__ = ["GEOMETRY", "geometry", "Vec", "seq_len", "seq_get", "seq_iter", "seq_plain", "seq_append", "seq_set"]

#: Per format, the geometry of the vectors it writes: (leaf bits, interior bits).
GEOMETRY: dict[int, tuple[int, int]] = {1: (BITS, BITS), 2: (LEAF_BITS, BITS), 3: (LEAF_BITS, NODE_BITS)}


def geometry(tx: "Tx") -> tuple[int, int]:
    """(leaf bits, interior bits) of the vectors ``tx`` writes: its format's (:data:`GEOMETRY`);
    for the current format, this module's :data:`LEAF_BITS` and :data:`NODE_BITS` (which tests of
    older formats' pins set to those formats' values)."""
    fmt = getattr(tx, "format", None)
    if fmt is None or fmt == FORMAT_VERSION or fmt not in GEOMETRY:
        return LEAF_BITS, NODE_BITS
    return GEOMETRY[fmt]


class Vec:
    """A persistent vector handle: immutable, every edit returns a new handle.

    Items are held in normalized (stored) form; use :func:`seq_get` /
    :func:`seq_append` for plain values. ``root`` is a ``Link(VNODE)`` or
    ``None``; ``tail`` holds the last 1..``leaf`` items. ``nb``: bits of index an
    interior node takes (its links: ``2**nb``); ``lb``: bits a leaf takes, ``shift % nb``
    (or ``nb`` when that is 0).
    """

    __slots__ = ("tx", "count", "shift", "root", "tail", "link", "lb", "nb", "mask")

    def __init__(self, tx: Tx, count: int, shift: int, root: Link | None, tail: list,
                 link: Link | None = None, *, nb: int) -> None:
        self.tx, self.count, self.shift, self.root, self.tail = tx, count, shift, root, tail
        self.link = link  # where this exact vector is stored, if it is
        self.nb, self.mask = nb, (1 << nb) - 1
        self.lb = shift % nb or nb

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Vec(count={self.count})"

    @property
    def leaf(self) -> int:
        """Items per leaf (and most items of the tail)."""
        return 1 << self.lb

    @property
    def geometry(self) -> tuple[int, int]:
        """(leaf bits, interior bits)."""
        return self.lb, self.nb

    def child_level(self, level: int) -> int:
        """The level of the children of an interior node at ``level`` (0: they are leaves)."""
        return level - self.nb if level > self.lb else 0

    @classmethod
    def open(cls, tx: Tx, link: Link) -> "Vec":
        """Return the handle of the stored vector ``link`` (a ``Link(VEC)``), reading its root object.

        Raises:
            InvalidValue: the object is not a vector root of a known shape.
        """
        obj = tx.load(link)
        if type(obj) is not list or len(obj) not in (4, 5):
            raise InvalidValue(f"vector {bytes(link.data).hex()}: not a [count, shift, root, tail(, bits)] object")
        nb = obj[4] if len(obj) == 5 else BITS
        if type(nb) is not int or not 1 <= nb <= BITS or type(obj[1]) is not int or obj[1] < 1:
            raise InvalidValue(f"vector {bytes(link.data).hex()}: bad geometry (shift {obj[1]!r}, bits {nb!r})")
        return cls(tx, obj[0], obj[1], obj[2], obj[3], link, nb=nb)

    @classmethod
    def build(cls, tx: Tx, items: list) -> "Vec":
        """Build the canonical vector of normalized ``items`` bottom-up (no garbage nodes), in
        ``tx``'s geometry (:func:`geometry`)."""
        n, (lb, nb) = len(items), geometry(tx)
        if n == 0:
            return cls(tx, 0, lb, None, [], nb=nb)
        size, width = 1 << lb, 1 << nb
        tailoff = ((n - 1) >> lb) << lb
        nodes = [tx.put_obj(VNODE, items[i:i + size]) for i in range(0, tailoff, size)]
        shift, root = lb, None
        while nodes:
            parents = [tx.put_obj(VNODE, nodes[i:i + width]) for i in range(0, len(nodes), width)]
            if len(parents) == 1:
                root = parents[0]
                break
            nodes = parents
            shift += nb
        return cls(tx, n, shift, root, items[tailoff:], nb=nb)

    def store(self) -> Link:
        """Buffer the root object (unless stored already); return ``Link(VEC, digest)``. Nodes of
        32 (formats 1 and 2) keep the four-field form those formats wrote."""
        if self.link is None:
            obj = [self.count, self.shift, self.root, self.tail]
            if self.nb != BITS:
                obj.append(self.nb)
            self.link = self.tx.put_obj(VEC, obj)
        return self.link

    def _tailoff(self) -> int:
        return self.count - len(self.tail)

    def _leaf(self, i: int) -> list:
        node, level, load, lb, nb, mask = self.root, self.shift, self.tx.load, self.lb, self.nb, self.mask
        while level > 0:
            node = load(node)[(i >> level) & mask]
            level = level - nb if level > lb else 0
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
        load, lb, nb, size = self.tx.load, self.lb, self.nb, self.leaf
        stack = [(self.root, self.shift, 0)]  # (node, its level, index of its first item)
        while stack:
            node, level, base = stack.pop()
            if level == 0:
                leaf = load(node)
                yield from leaf[max(start - base, 0):min(stop - base, size)]
                continue
            span = 1 << level  # items under each child
            first = max((start - base) >> level, 0)
            last = min((stop - 1 - base) >> level, self.mask)
            children = load(node)
            child = level - nb if level > lb else 0
            for j in range(min(last, len(children) - 1), first - 1, -1):
                stack.append((children[j], child, base + j * span))

    def _current(self) -> "Vec":
        """This vector in its transaction's geometry (one of another format is rebuilt, O(n))."""
        if self.geometry == geometry(self.tx):
            return self
        return Vec.build(self.tx, list(self.iter_raw()))

    def append_raw(self, item: Any) -> "Vec":
        """Return a vector with the stored-form ``item`` appended."""
        if self.geometry != geometry(self.tx):
            return self._current().append_raw(item)
        lb, nb = self.lb, self.nb
        if len(self.tail) < (1 << lb):
            return Vec(self.tx, self.count + 1, self.shift, self.root, self.tail + [item], nb=nb)
        tx = self.tx
        leaf = tx.put_obj(VNODE, self.tail)
        cnt = self.count  # items including the full tail
        if self.root is None:
            return Vec(tx, cnt + 1, lb, tx.put_obj(VNODE, [leaf]), [item], nb=nb)
        if (cnt >> lb) > (1 << (self.shift - lb + nb)):  # the root is full: grow a level
            root = tx.put_obj(VNODE, [self.root, self._new_path(self.shift, leaf)])
            return Vec(tx, cnt + 1, self.shift + nb, root, [item], nb=nb)
        return Vec(tx, cnt + 1, self.shift, self._push(self.shift, self.root, leaf, cnt), [item], nb=nb)

    def _push(self, level: int, parent: Link, leaf: Link, cnt: int) -> Link:
        children = list(self.tx.load(parent))
        sub = ((cnt - 1) >> level) & self.mask
        if level == self.lb:
            insert = leaf
        elif sub < len(children):
            insert = self._push(level - self.nb, children[sub], leaf, cnt)
        else:
            insert = self._new_path(level - self.nb, leaf)
        if sub < len(children):
            children[sub] = insert
        else:
            children.append(insert)
        return self.tx.put_obj(VNODE, children)

    def _new_path(self, level: int, node: Link) -> Link:
        while level >= self.lb:
            node = self.tx.put_obj(VNODE, [node])
            level -= self.nb
        return node

    def set_raw(self, i: int, item: Any) -> "Vec":
        """Return a vector with item ``i`` replaced (stored form). Raises IndexError."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        if self.geometry != geometry(self.tx):
            return self._current().set_raw(i, item)
        off = self._tailoff()
        if i >= off:
            tail = list(self.tail)
            tail[i - off] = item
            return Vec(self.tx, self.count, self.shift, self.root, tail, nb=self.nb)
        return Vec(self.tx, self.count, self.shift, self._set(self.shift, self.root, i, item), self.tail,
                   nb=self.nb)

    def _set(self, level: int, node: Link, i: int, item: Any) -> Link:
        children = list(self.tx.load(node))
        if level == 0:
            children[i & (self.leaf - 1)] = item
        else:
            sub = (i >> level) & self.mask
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
