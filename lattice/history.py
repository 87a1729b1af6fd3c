"""Versions of a ref: resolve, list, and diff them.

A *version* is a commit on a ref's chain, named by its ``seq`` (an int, 0 for
the first) or its ``id`` (the commit digest in hex). Resolving either costs
O(log n) reads (jump pointers, see :mod:`lattice.commits`).

:func:`diff` compares two stored values by descending only into sub-trees
whose digests differ, so its cost follows the size of the change, not of the
values: two versions of a 100,000-entry timeline one append apart differ in
one leaf (or tail), found in O(log n) node reads.
"""

from __future__ import annotations

from typing import Any, Iterator

from .codec import Link, encode
from .commits import Commit, find, read_commit
from .digest import from_hex
from .errors import InvalidValue, NotFound
from .nodes import HMap, Tx, Vec
from .paths import Missing, open_level

__all__ = ["resolve", "versions", "diff", "Change"]


def resolve(store: Any, head: bytes, at: int | str) -> tuple[bytes, Commit]:
    """The commit named by ``at`` on the chain ending at ``head``.

    Args:
        at: a ``seq`` (int) or a commit id (64 hex digits, ``0x`` optional).
            Source: the caller (untrusted).

    Raises:
        NotFound: no such version on this chain (a seq after the head, an id
            of another ref's chain, an id of no commit).
        InvalidValue: ``at`` is neither an int nor a commit id.
    """
    if isinstance(at, bool) or not isinstance(at, (int, str)):
        raise InvalidValue(f"a version is a seq (integer) or a commit id (hex), got {type(at).__name__}")
    if isinstance(at, int):
        return find(store, head, at)
    try:
        d = from_hex(at)
    except ValueError as e:
        raise InvalidValue(f"version id {at!r} is not a commit id: {e}") from None
    try:
        c = read_commit(store, d)
    except (NotFound, InvalidValue):
        raise NotFound(f"no version {at}") from None
    head_c = read_commit(store, head)
    if c.seq > head_c.seq or find(store, head, c.seq)[0] != d:
        raise NotFound(f"version {at} is not on this chain")
    return d, c


def versions(store: Any, head: bytes, limit: int, before: int | None = None) -> list[tuple[bytes, Commit]]:
    """Up to ``limit`` versions, newest first, with ``seq < before`` when given."""
    top = read_commit(store, head).seq
    start = top if before is None else min(before - 1, top)
    if start < 0 or limit <= 0:
        return []
    d, c = find(store, head, start)
    out = [(d, c)]
    while len(out) < limit and c.parent is not None:
        d = c.parent
        c = read_commit(store, d)
        out.append((d, c))
    return out


Change = dict  # {"path", "change": "added" | "removed" | "changed", "before"?, "after"?, ...}


class _Limit(Exception):
    pass


class _Differ:
    def __init__(self, tx: Tx, limit: int, value_max: int):
        self.tx, self.limit, self.value_max = tx, limit, value_max
        self.changes: list[Change] = []

    def emit(self, path: str, change: str, before: Any = Missing, after: Any = Missing) -> None:
        if len(self.changes) >= self.limit:
            raise _Limit
        entry: Change = {"path": path, "change": change}
        for name, v in (("before", before), ("after", after)):
            if v is Missing:
                continue
            size = self.tx.json_size(v)
            if size <= self.value_max:
                entry[name] = self.tx.materialize(v)
            else:
                entry[name + "Size"] = size  # too large to include
        self.changes.append(entry)

    def value(self, a: Any, b: Any, path: str) -> None:
        if _same(a, b):
            return  # equal stored forms: equal values (links compare by digest)
        if a is Missing:
            return self.emit(path, "added", after=b)
        if b is Missing:
            return self.emit(path, "removed", before=a)
        oa, ob = open_level(self.tx, a), open_level(self.tx, b)
        ta, tb = type(oa), type(ob)
        if ta in (dict, HMap) and tb in (dict, HMap):
            if ta is HMap and tb is HMap:
                return self.hamt(oa.root, ob.root, 0, path)
            return self.entries(_entries(oa), _entries(ob), path)
        if ta in (list, Vec) and tb in (list, Vec):
            if ta is Vec and tb is Vec:
                return self.vec(oa, ob, path)
            return self.items(list(_items(oa)), list(_items(ob)), 0, path)
        self.emit(path, "changed", before=a, after=b)

    def entries(self, ea: dict, eb: dict, path: str) -> None:
        for k in sorted(ea.keys() | eb.keys()):
            self.value(ea.get(k, Missing), eb.get(k, Missing), _join(path, k))

    def items(self, ia: list, ib: list, base: int, path: str) -> None:
        for i in range(max(len(ia), len(ib))):
            self.value(ia[i] if i < len(ia) else Missing, ib[i] if i < len(ib) else Missing, _join(path, base + i))

    def hamt(self, a: Link | None, b: Link | None, depth: int, path: str) -> None:
        if a == b:
            return
        na = self.tx.load(a) if a is not None else [0, {}]
        nb = self.tx.load(b) if b is not None else [0, {}]
        if type(na[1]) is list and type(nb[1]) is list:  # both interior: pair the slots
            for sa, sb in zip(na[1], nb[1]):
                self.hamt(sa, sb, depth + 1, path)
            return
        self.entries(dict(_hamt_items(self.tx, a)), dict(_hamt_items(self.tx, b)), path)

    def vec(self, a: Vec, b: Vec, path: str) -> None:
        common_tree = min(a.count - len(a.tail), b.count - len(b.tail))
        if a.geometry != b.geometry:  # stored in other formats: their trees differ, compare items
            common_tree = 0
        if common_tree > 0:
            ra, rb, sa, sb = a.root, b.root, a.shift, b.shift
            while sa < sb:  # the larger tree's leftmost spine covers the smaller tree's range
                rb, sb = self.tx.load(rb)[0], sb - b.nb
            while sb < sa:
                ra, sa = self.tx.load(ra)[0], sa - a.nb
            self.walk(a, ra, rb, sa, 0, common_tree, path)
        rest_a = list(a.iter_raw(common_tree))  # at most a tail's worth, plus what only one side has
        rest_b = list(b.iter_raw(common_tree))
        self.items(rest_a, rest_b, common_tree, path)

    def walk(self, v: Vec, a: Link, b: Link, shift: int, lo: int, end: int, path: str) -> None:
        """Compare two nodes of vectors of ``v``'s geometry covering the same indices, below ``end``."""
        if a == b:
            return
        ca, cb = self.tx.load(a), self.tx.load(b)
        if shift == 0:
            n = min(v.leaf, end - lo)
            return self.items(ca[:n], cb[:n], lo, path)
        step = 1 << shift
        for j in range(1 << v.nb):
            sub = lo + j * step
            if sub >= end:
                break
            self.walk(v, ca[j], cb[j], v.child_level(shift), sub, end, path)


def diff(tx: Tx, a: Any, b: Any, *, limit: int = 1000, value_max: int = 1024) -> tuple[list[Change], bool]:
    """The changes from stored value ``a`` to ``b`` (either may be :data:`Missing`).

    Args:
        limit: most changes returned.
        value_max: largest ``before``/``after`` value included, in bytes of
            JSON; a larger one is replaced by ``beforeSize``/``afterSize``.

    Returns:
        ``(changes, truncated)``: changes sorted by path (list positions in
        numeric order), paths ``/``-joined below the compared values;
        ``truncated`` when more than ``limit`` changes exist (then the first
        ``limit`` found, in trie order, are returned, sorted).
    """
    d = _Differ(tx, limit, value_max)
    truncated = False
    try:
        d.value(a, b, "")
    except _Limit:
        truncated = True
    d.changes.sort(key=_path_key)  # a large map is walked in hash order
    return d.changes, truncated


def _path_key(change: Change) -> tuple:
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in change["path"].split("/"))


def _same(a: Any, b: Any) -> bool:
    """Equal stored forms (``1 == 1.0`` and ``True == 1`` in Python, but not here)."""
    if type(a) is not type(b):
        return False
    if type(a) in (Link, str, bytes, int, bool) or a is None or a is Missing:
        return a == b
    return encode(a) == encode(b)


def _join(path: str, seg: Any) -> str:
    return f"{path}/{seg}" if path else str(seg)


def _entries(m: Any) -> dict:
    return dict(m.items_raw()) if type(m) is HMap else m


def _items(s: Any) -> Iterator[Any]:
    return s.iter_raw() if type(s) is Vec else iter(s)


def _hamt_items(tx: Tx, node: Link | None) -> Iterator[tuple[str, Any]]:
    if node is None:
        return iter(())
    return HMap(tx, node).items_raw()

