"""Merkle collections with structural sharing, and the transaction that builds them.

A lattice value is stored as a tree of immutable objects. Where a sub-value
lives is decided by its contents alone, so **equal contents give an equal
digest whatever the order of the edits that produced them**:

========  ==========================================================  ==============
kind      when                                                        object
========  ==========================================================  ==============
inline    scalars, and lists/dicts of at most 32 entries whose        (in parent)
          encoding is at most ``NODE_MIN`` bytes
``BLOB``  a str/bytes whose encoding exceeds ``BLOB_MIN`` bytes        the scalar
``NODE``  a list/dict of at most 32 entries, encoding > ``NODE_MIN``  the container
``VEC``   a list of more than 32 items: persistent vector root        ``[count, shift, root, tail]``
``VNODE`` a vector's interior (links) or leaf (items) node            ``[...]``
``MAP``   a dict of more than 32 keys: hash array mapped trie node    ``[count, {k: v}]`` or ``[count, [32 slots]]``
========  ==========================================================  ==============

The vector is a radix tree of fan-out 32 with a tail (as in Clojure): append and
index rewrite O(log32 n) nodes, the tail is rewritten in place. The map (HAMT)
splits on 5 bits of ``blake3(key)`` per level; a node of at most 32 entries is a
leaf, so its shape is canonical.

Transitions work on *opened* values: plain Python lists and dicts, with
:class:`Vec` and :class:`HMap` handles standing in for large collections.
The ``seq_*`` and ``map_*`` helpers accept either form.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import msgspec
from blake3 import blake3

from .codec import Link, decode, encode
from .digest import digest
from .errors import InvalidValue

__all__ = [
    "BLOB", "NODE", "VEC", "VNODE", "MAP",
    "FANOUT", "BLOB_MIN", "NODE_MIN",
    "ObjectCache", "Tx", "Vec", "HMap",
    "seq_len", "seq_get", "seq_iter", "seq_append", "seq_set",
    "map_get", "map_set", "map_delete", "map_keys", "map_len",
]

BLOB, NODE, VEC, VNODE, MAP = 1, 2, 3, 4, 5
BITS = 5
FANOUT = 1 << BITS
MASK = FANOUT - 1
#: str/bytes whose encoding is longer than this are stored in their own object.
BLOB_MIN = 256
#: small containers whose encoding is longer than this are stored in their own object.
NODE_MIN = 128
_MAX_DEPTH = 256 // BITS  # HAMT depth at which leaves may hold more than FANOUT keys


class ObjectCache(dict):
    """A bounded, process-wide cache of decoded objects (``digest -> object``).

    Objects are immutable and every reader copies before editing, so one cache
    can serve every transaction over the same store. When full, the oldest
    quarter is dropped.

    Args:
        capacity: most objects kept.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__()
        self.capacity = capacity
        self.sizes: dict[bytes, int] = {}  # digest -> JSON size of the value it holds

    def __setitem__(self, key: bytes, value: Any) -> None:
        if len(self.sizes) >= self.capacity:
            self.sizes.clear()
        self._set(key, value)

    def _set(self, key: bytes, value: Any) -> None:
        if len(self) >= self.capacity:
            for k in list(itertools.islice(iter(self), self.capacity // 4 or 1)):
                del self[k]
        super().__setitem__(key, value)


class Tx:
    """A read view of a store plus a buffer of new objects for one atomic commit.

    Reads look in the buffer first, then in the store; decoded objects are
    cached for the life of the transaction. Nothing reaches the store until the
    caller passes :attr:`objects` to ``Store.commit``.

    Args:
        store: any backend of :class:`lattice.store.Store`.
    """

    __slots__ = ("store", "objects", "_cache", "_memo", "_sizes")

    def __init__(self, store: Any, cache: "ObjectCache | None" = None) -> None:
        self.store = store
        self.objects: dict[bytes, bytes] = {}
        self._cache: dict[bytes, Any] = {} if cache is None else cache
        # id(opened container) -> (container, stored form): an opened container that the
        # (pure) caller did not replace is stored again as what it was, without re-encoding.
        self._memo: dict[int, tuple[Any, Any]] = {}
        self._sizes: dict[bytes, int] = cache.sizes if isinstance(cache, ObjectCache) else {}

    # -- raw objects -------------------------------------------------------
    def get(self, d: bytes) -> bytes:
        """Return the bytes of object ``d`` (buffer first). Raises NotFound, CorruptObject."""
        data = self.objects.get(d)
        return data if data is not None else self.store.get(d)

    def put(self, data: bytes) -> bytes:
        """Buffer ``data`` and return its digest."""
        d = digest(data)
        self.objects.setdefault(d, data)
        return d

    def load(self, link: Link) -> Any:
        """Return the decoded object a link points at (children stay links)."""
        d = link.data
        if type(d) is not bytes:
            d = bytes(d)
        try:
            return self._cache[d]
        except KeyError:
            pass
        obj = decode(self.get(d))
        self._cache[d] = obj
        return obj

    def put_obj(self, kind: int, obj: Any) -> Link:
        """Encode ``obj`` (already normalized), buffer it, return ``Link(kind, digest)``."""
        d = self.put(encode(obj))
        self._cache[d] = obj
        return Link(kind, d)

    # -- values ------------------------------------------------------------
    def put_value(self, v: Any) -> Any:
        """Normalize a value for storage: return its inline form (with links).

        Args:
            v: a lattice value; may contain :class:`Vec`/:class:`HMap` handles
                and links (already stored).

        Raises:
            InvalidValue: ``v`` is outside the data model.
        """
        t = type(v)
        if v is None or t is bool or t is int or t is float:
            return v
        if t is str or t is bytes:
            n = len(v)
            if n > BLOB_MIN or (n * (4 if t is str else 1) + 5 > BLOB_MIN):
                enc = encode(v)
                if len(enc) > BLOB_MIN:
                    d = self.put(enc)
                    self._cache[d] = v
                    return Link(BLOB, d)
            return v
        if t is Link:
            return v
        if t is list or t is dict:
            m = self._memo.get(id(v))
            if m is not None and m[0] is v:
                return m[1]
        if t is list or t is tuple:
            items = [self.put_value(x) for x in v]
            if len(items) > FANOUT:
                return Vec.build(self, items).store()
            return self._small(items)
        if t is dict:
            out = {}
            for k, x in v.items():
                if type(k) is not str:
                    raise InvalidValue(f"map keys must be str, got {type(k).__name__} {k!r}")
                out[k] = self.put_value(x)
            if len(out) > FANOUT:
                return HMap.build(self, out).store()
            return self._small(out)
        if t is Vec:
            if v.count <= FANOUT:
                return self._small(list(v.iter_raw()))
            return v.store()
        if t is HMap:
            if v.count <= FANOUT:
                return self._small(dict(v.items_raw()))
            return v.store()
        if t is bytearray or t is memoryview:
            return self.put_value(bytes(v))
        raise InvalidValue(f"unsupported type {t.__name__}: expected None, bool, int, float, str, bytes, list or dict")

    def _small(self, c: list | dict) -> Any:
        enc = encode(c)
        if len(enc) > NODE_MIN:
            d = self.put(enc)
            self._cache[d] = c
            return Link(NODE, d)
        return c

    def put_root(self, value: Any) -> Link:
        """Store ``value`` as a root; return its link (never inline).

        A map, small list or scalar root is a ``NODE`` object; a large list,
        large map or long string root is its ``VEC``/``MAP``/``BLOB`` link.
        """
        n = self.put_value(value)
        if type(n) is Link:
            return n
        d = self.put(encode(n))
        self._cache[d] = n
        return Link(NODE, d)

    def raw_root(self, root: Link) -> Any:
        """The stored form of a root: a NODE's decoded object, else the link itself."""
        return self.load(root) if root.code == NODE else root

    def open(self, v: Any) -> Any:
        """Return ``v`` with blobs and small nodes loaded, large collections as handles.

        ``v`` may be in stored form or already (partly) opened.
        """
        t = type(v)
        if t is Link:
            return self._open_link(v)
        if t is list:
            return [self.open(x) for x in v]
        if t is dict:
            return {k: self.open(x) for k, x in v.items()}
        return v

    def _open_link(self, v: Link) -> Any:
        code = v.code
        if code == BLOB:
            return self.load(v)
        if code == NODE:
            out = self._open_stored(self.load(v))
            self._memo[id(out)] = (out, v)
            return out
        if code == VEC:
            return Vec.open(self, v)
        if code == MAP:
            return HMap.open(self, v)
        raise InvalidValue(f"unexpected link kind {code} in a value")

    def _open_stored(self, v: Any) -> Any:
        """:meth:`open` for a decoded object: each container opened is memoized with its stored form,
        so storing it again unchanged costs no encoding."""
        t = type(v)
        if t is Link:
            return self._open_link(v)
        if t is list:
            out: Any = [self._open_stored(x) for x in v]
        elif t is dict:
            out = {k: self._open_stored(x) for k, x in v.items()}
        else:
            return v
        self._memo[id(out)] = (out, v)
        return out

    def materialize(self, v: Any) -> Any:
        """Return ``v`` as plain Python data, loading every linked object."""
        t = type(v)
        if t is Link:
            code = v.code
            if code == BLOB:
                return self.load(v)
            if code == NODE:
                return self.materialize(self.load(v))
            if code == VEC:
                return [self.materialize(x) for x in Vec.open(self, v).iter_raw()]
            if code == MAP:
                h = HMap.open(self, v)
                return {k: self.materialize(x) for k, x in sorted(h.items_raw())}
            raise InvalidValue(f"unexpected link kind {code} in a value")
        if t is Vec:
            return [self.materialize(x) for x in v.iter_raw()]
        if t is HMap:
            return {k: self.materialize(x) for k, x in sorted(v.items_raw())}
        if t is list:
            return [self.materialize(x) for x in v]
        if t is dict:
            return {k: self.materialize(x) for k, x in v.items()}
        return v

    def json_size(self, v: Any) -> int:
        """Bytes of the JSON encoding of ``materialize(v)``, computed without building it.

        Memory stays O(depth); sizes of linked objects are memoized by digest
        (objects are immutable), so a repeated read of a large value is cheap.
        """
        t = type(v)
        if t is Link:
            d = bytes(v.data)
            n = self._sizes.get(d)
            if n is None:
                if v.code == VEC:
                    h = Vec.open(self, v)
                    n = self._seq_size(h.iter_raw(), h.count)
                elif v.code == MAP:
                    h = HMap.open(self, v)
                    n = self._map_size(h.items_raw(), h.count)
                else:  # BLOB, NODE
                    n = self.json_size(self.load(v))
                self._sizes[d] = n
            return n
        if t is list:
            return self._seq_size(v, len(v))
        if t is dict:
            return self._map_size(v.items(), len(v))
        if t is Vec:
            return self._seq_size(v.iter_raw(), v.count)
        if t is HMap:
            return self._map_size(v.items_raw(), v.count)
        return len(_json_encode(v))

    def _seq_size(self, items: Any, n: int) -> int:
        return 2 + max(n - 1, 0) + sum(self.json_size(x) for x in items)

    def _map_size(self, items: Any, n: int) -> int:
        return 2 + max(n - 1, 0) + sum(len(_json_encode(k)) + 1 + self.json_size(x) for k, x in items)

    def plain(self, v: Any) -> Any:
        """``v`` itself if it holds no collection handles, else :meth:`materialize` of it."""
        return v if _is_plain(v) else self.materialize(v)

    def load_root(self, root: Link) -> Any:
        """Return the opened value of a root (see :meth:`put_root`)."""
        if root.code == NODE:
            return self._open_stored(self.load(root))
        return self._open_link(root)


_json_encode = msgspec.json.encode


def _is_plain(v: Any) -> bool:
    t = type(v)
    if t is dict:
        return all(_is_plain(x) for x in v.values())
    if t is list:
        return all(_is_plain(x) for x in v)
    return t is not Vec and t is not HMap and t is not Link


# ---------------------------------------------------------------------------
# Persistent vector
# ---------------------------------------------------------------------------


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
# Hash array mapped trie
# ---------------------------------------------------------------------------


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
        return cls(tx, link)

    @classmethod
    def build(cls, tx: Tx, entries: dict) -> "HMap":
        """Build the canonical map of normalized ``entries``."""
        return cls(tx, _build(tx, entries, 0) if entries else None)

    def store(self) -> Link:
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
    if len(entries) <= FANOUT or depth >= _MAX_DEPTH:
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
        if len(nb) > FANOUT and depth < _MAX_DEPTH:
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
# Helpers over opened values (plain list/dict or handle)
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


def map_len(m: dict | HMap) -> int:
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


