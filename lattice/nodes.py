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
``VEC``   a list of more than 32 items: persistent vector root        ``[count, shift, root, tail, bits]``
``VNODE`` a vector's interior (links) or leaf (items) node            ``[...]``
``MAP``   a dict of more than 32 keys: hash array mapped trie node    ``[count, {k: v}]`` or ``[count, [32 slots]]``
========  ==========================================================  ==============

The vector (:mod:`lattice.vector`) is a radix tree of fan-out 32 with a tail
(as in Clojure): append and index rewrite O(log32 n) nodes, the tail is
rewritten in place. The map (:mod:`lattice.hamt`) splits on 5 bits of
``blake3(key)`` per level; a node of at most 32 entries is a leaf, so its shape
is canonical. The constants live in :mod:`lattice.layout`.

Transitions work on *opened* values: plain Python lists and dicts, with
:class:`Vec` and :class:`HMap` handles standing in for large collections.
The ``seq_*`` and ``map_*`` helpers accept either form. This module is the
public surface: it re-exports the handles, the helpers and the constants.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from .codec import Link, decode, encode
from .digest import digest
from .errors import InvalidValue
from .hamt import HMap, map_delete, map_get, map_keys, map_len, map_set
from .layout import BITS, BLOB, BLOB_MIN, FANOUT, MAP, MASK, NODE, NODE_MIN, VEC, VNODE  # noqa: F401 (re-exported)
from .vector import Vec, seq_append, seq_get, seq_iter, seq_len, seq_plain, seq_set

__all__ = [
    "BLOB", "NODE", "VEC", "VNODE", "MAP",
    "FANOUT", "BLOB_MIN", "NODE_MIN",
    "ObjectCache", "Tx", "Vec", "HMap",
    "seq_len", "seq_get", "seq_iter", "seq_plain", "seq_append", "seq_set",
    "map_get", "map_set", "map_delete", "map_keys", "map_len",
]

#: types whose values are their own stored form (put_value returns them as they are)
_SELF = frozenset((type(None), bool, int, float, Link))
#: str and bytes up to this length stay inline without being measured (see Tx.put_value)
_SHORT = {str: (BLOB_MIN - 5) // 4, bytes: BLOB_MIN - 5}


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

    ``format``: the stored format new collections are written in; None, the current one
    (:data:`lattice.codec.FORMAT_VERSION`). A verified replay sets a commit's own, so it
    re-derives the state that commit recorded (only vectors' geometry differs, see
    :mod:`lattice.vector`).
    """

    __slots__ = ("store", "objects", "format", "_cache", "_memo", "_sizes")

    def __init__(self, store: Any, cache: "ObjectCache | None" = None) -> None:
        self.store = store
        self.format: int | None = None
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
            items = [x if type(x) in _SELF else self.put_value(x) for x in v]
            if len(items) > FANOUT:
                return Vec.build(self, items).store()
            return self._small(items)
        if t is dict:
            out = {}
            for k, x in v.items():
                if type(k) is not str:
                    raise InvalidValue(f"map keys must be str, got {type(k).__name__} {k!r}")
                tx = type(x)
                # scalars, links and short strings are their own stored form: no call for them
                out[k] = x if tx in _SELF or (tx in _SHORT and len(x) <= _SHORT[tx]) else self.put_value(x)
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

    def put_stored(self, items: list) -> Any:
        """Store a short list (at most ``FANOUT`` items) whose items are stored forms already (as
        :meth:`put_value` returns them): only the list itself is encoded, inline or as a ``NODE``.
        The same as ``put_value(items)``, without normalizing each item again.

        Raises:
            ValueError: more than ``FANOUT`` items (build a :class:`Vec` instead).
        """
        if len(items) > FANOUT:
            raise ValueError(f"put_stored takes at most {FANOUT} items, got {len(items)}")
        return self._small(items)

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
