"""The hash array mapped trie (HAMT): the canonical form of a large map.

A dict of more than ``FANOUT`` keys is stored as a tree of ``MAP`` objects,
each ``[count, body]``: a leaf's body is ``{key: value}`` (at most 32 entries),
an interior node's body is 32 slots (a link or ``None``), split on 5 bits of
``blake3(key)`` per level. A node of at most 32 entries is always a leaf, so the
shape, and hence the digest, depends only on the entries, whatever the order of
the edits that produced them.

The ``map_*`` helpers work on either form of an opened dict: a plain ``dict``
or an :class:`HMap` handle. Handles are re-exported by :mod:`lattice.nodes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from blake3 import blake3

from .codec import Link
from .errors import InvalidValue
from .layout import BITS, FANOUT, MAP, MASK, MAX_DEPTH

if TYPE_CHECKING:
    from .nodes import Tx

__all__ = ["HMap", "map_get", "map_set", "map_delete", "map_keys", "map_len"]

def _slot(key: str, depth: int) -> int:
    h = int.from_bytes(blake3(key.encode()).digest(), "big")
    return (h >> (256 - BITS * (depth + 1))) & MASK


class HMap:
    """A persistent map handle over a canonical HAMT; every edit returns a new handle."""

    __slots__ = ("tx", "root")

    def __init__(self, tx: Tx, root: Link | None) -> None:
        self.tx, self.root = tx, root

    @classmethod
    def open(cls, tx: Tx, link: Link) -> "HMap":
        """Return the handle of the stored map ``link`` (a ``Link(MAP)``); reads nothing yet."""
        return cls(tx, link)

    @classmethod
    def build(cls, tx: Tx, entries: dict) -> "HMap":
        """Build the canonical map of normalized ``entries``."""
        return cls(tx, _build(tx, entries, 0) if entries else None)

    def store(self) -> Link:
        """Return the root ``Link(MAP)`` (already buffered by the edits that made it).

        Raises:
            InvalidValue: the map is empty (an empty map is stored inline).
        """
        if self.root is None:
            raise InvalidValue("an empty HMap is stored inline")
        return self.root

    @property
    def count(self) -> int:
        return 0 if self.root is None else self.tx.load(self.root)[0]

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"HMap(count={self.count})"

    def get_raw(self, key: str) -> Any:
        """Return the stored-form value of ``key``. Raises KeyError."""
        node, depth = self.root, 0
        while node is not None:
            _, body = self.tx.load(node)
            if type(body) is dict:
                return body[key]
            node = body[_slot(key, depth)]
            depth += 1
        raise KeyError(key)

    def items_raw(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(key, stored value)`` in trie order (sort for key order)."""
        if self.root is not None:
            yield from _items(self.tx, self.root)

    def set_raw(self, key: str, value: Any) -> "HMap":
        """Return a map with ``key`` set to the stored-form ``value``."""
        root, _ = _set(self.tx, self.root, 0, key, value)
        return HMap(self.tx, root)

    def delete(self, key: str) -> "HMap":
        """Return the map without ``key``. Raises KeyError when absent."""
        if self.root is None:
            raise KeyError(key)
        root, removed = _del(self.tx, self.root, 0, key)
        if not removed:
            raise KeyError(key)
        return HMap(self.tx, root)


def _build(tx: Tx, entries: dict, depth: int) -> Link:
    if len(entries) <= FANOUT or depth >= MAX_DEPTH:
        return tx.put_obj(MAP, [len(entries), entries])
    buckets: list[dict | None] = [None] * FANOUT
    for k, v in entries.items():
        i = _slot(k, depth)
        b = buckets[i]
        if b is None:
            buckets[i] = b = {}
        b[k] = v
    slots = [None if b is None else _build(tx, b, depth + 1) for b in buckets]
    return tx.put_obj(MAP, [len(entries), slots])


def _items(tx: Tx, node: Link) -> Iterator[tuple[str, Any]]:
    _, body = tx.load(node)
    if type(body) is dict:
        yield from body.items()
    else:
        for child in body:
            if child is not None:
                yield from _items(tx, child)


def _set(tx: Tx, node: Link | None, depth: int, key: str, value: Any) -> tuple[Link, bool]:
    if node is None:
        return tx.put_obj(MAP, [1, {key: value}]), True
    cnt, body = tx.load(node)
    if type(body) is dict:
        added = key not in body
        nb = dict(body)
        nb[key] = value
        if len(nb) > FANOUT and depth < MAX_DEPTH:
            return _build(tx, nb, depth), added
        return tx.put_obj(MAP, [len(nb), nb]), added
    i = _slot(key, depth)
    slots = list(body)
    slots[i], added = _set(tx, slots[i], depth + 1, key, value)
    return tx.put_obj(MAP, [cnt + added, slots]), added


def _del(tx: Tx, node: Link, depth: int, key: str) -> tuple[Link | None, bool]:
    cnt, body = tx.load(node)
    if type(body) is dict:
        if key not in body:
            return node, False
        nb = {k: v for k, v in body.items() if k != key}
        return (tx.put_obj(MAP, [len(nb), nb]) if nb else None), True
    i = _slot(key, depth)
    if body[i] is None:
        return node, False
    child, removed = _del(tx, body[i], depth + 1, key)
    if not removed:
        return node, False
    slots = list(body)
    slots[i] = child
    if cnt - 1 <= FANOUT:
        entries = {}
        for s in slots:
            if s is not None:
                entries.update(_items(tx, s))
        return tx.put_obj(MAP, [len(entries), entries]), True
    return tx.put_obj(MAP, [cnt - 1, slots]), True


# ---------------------------------------------------------------------------
# Helpers over opened maps (plain dict or handle)
# ---------------------------------------------------------------------------


def map_len(m: dict | HMap) -> int:
    """Number of keys of an opened dict or map."""
    return m.count if type(m) is HMap else len(m)


def map_get(tx: Tx, m: dict | HMap, key: str) -> Any:
    """Opened value of ``key``. Raises KeyError."""
    if type(m) is HMap:
        return tx.open(m.get_raw(key))
    return m[key]


def map_set(tx: Tx, m: dict | HMap, key: str, value: Any) -> dict | HMap:
    """Return ``m`` with ``key`` set (an HMap handle once it outgrows 32 keys)."""
    if type(m) is HMap:
        return m.set_raw(key, tx.put_value(value))
    out = dict(m)
    out[key] = value
    if len(out) > FANOUT:
        return HMap.build(tx, {k: tx.put_value(v) for k, v in out.items()})
    return out


def map_delete(tx: Tx, m: dict | HMap, key: str) -> dict | HMap:
    """Return ``m`` without ``key``. Raises KeyError."""
    if type(m) is HMap:
        m = m.delete(key)
        if m.count <= FANOUT:
            return {k: tx.open(v) for k, v in m.items_raw()}
        return m
    if key not in m:
        raise KeyError(key)
    return {k: v for k, v in m.items() if k != key}


def map_keys(m: dict | HMap) -> list[str]:
    """Sorted keys."""
    if type(m) is HMap:
        return sorted(k for k, _ in m.items_raw())
    return sorted(m)
