"""Channel values as lattice values: plain data stays plain, messages become small maps.

LangGraph hands a checkpointer arbitrary Python objects. :class:`ValueCodec`
stores each as a lattice value (see :mod:`lattice.nodes`):

=====================================  ==================================================
Python value                           stored as
=====================================  ==================================================
None, bool, int (64-bit), float,       itself
str, bytes
list                                   a list (a persistent vector past 32 items)
dict with str keys                     a map; ``{"$dict": map}`` if a key is reserved
a LangChain message of a core class    ``{"$lc": <type>, <field>: <value>, ...}``, fields
(``HumanMessage``, ``AIMessage``,      equal to their default left out (so a chat turn
``ToolMessage``, chunks, ...)          is ``{"$lc": "human", "content": ..., "id": ...}``)
anything else (tuples, sets,           ``{"$serde": [<type>, <bytes>]}``: the saver's
dataclasses, Send, _DeltaSnapshot...)  serde ``dumps_typed``
=====================================  ==================================================

The reserved keys are ``$lc``, ``$serde`` and ``$dict``; a plain dict holding
one is wrapped in ``{"$dict": ...}`` so decoding is unambiguous. Message text
over 256 bytes is a blob of its own, shared by every checkpoint, write and
thread that holds the same text.

A list channel that grows by appending (a ``messages`` channel under
``add_messages``) reuses the previous checkpoint's vector: :class:`ListMemo`
remembers which Python objects a stored vector holds, so the next checkpoint
appends only the new items (O(log n) new objects per turn). A list of 32 items
or fewer is one list node, new at each checkpoint, but its items are not
encoded again: the memo keeps their stored forms too. An item counts as
unchanged while it is the *same object*: LangGraph's reducers return new
objects for what they change (``add_messages`` replaces a message by id), and,
as with LangGraph's ``DeltaChannel``, an old item mutated in place is not seen.
Without a memo hit (another process, a list changed in the middle) every item
is encoded again; unchanged sub-trees come out with the same digests, so the
store still shares them and only the CPU cost is O(n).

Reading, :class:`LeafCache` keeps the decoded items of vector leaves, so the
next checkpoint of a growing chat decodes its tail, not its history. Those
objects are shared between reads; a shared message whose fields no longer
equal what was decoded (a caller changed it) is decoded afresh.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from typing import Any

from langchain_core.messages import (
    AIMessage, AIMessageChunk, BaseMessage, ChatMessage, ChatMessageChunk, FunctionMessage,
    FunctionMessageChunk, HumanMessage, HumanMessageChunk, RemoveMessage, SystemMessage,
    SystemMessageChunk, ToolMessage, ToolMessageChunk,
)

from lattice.codec import Link, encode
from lattice.nodes import BITS, BLOB, FANOUT, MAP, NODE, VEC, HMap, Tx, Vec

__all__ = ["RESERVED", "ValueCodec", "ListMemo", "LeafCache", "store_list", "entries", "items"]

RESERVED = frozenset({"$lc", "$serde", "$dict"})
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

#: LangChain message classes stored as maps, by their ``type`` field (as ``message_to_dict`` names them).
_MESSAGE_CLASSES: dict[str, type[BaseMessage]] = {
    "human": HumanMessage, "ai": AIMessage, "system": SystemMessage, "chat": ChatMessage,
    "function": FunctionMessage, "tool": ToolMessage, "remove": RemoveMessage,
    "AIMessageChunk": AIMessageChunk, "HumanMessageChunk": HumanMessageChunk,
    "FunctionMessageChunk": FunctionMessageChunk, "ToolMessageChunk": ToolMessageChunk,
    "SystemMessageChunk": SystemMessageChunk, "ChatMessageChunk": ChatMessageChunk,
}
_CLASS_TYPE = {cls: t for t, cls in _MESSAGE_CLASSES.items()}
_defaults_lock = threading.Lock()
_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type[BaseMessage]) -> dict[str, Any]:
    """Default value of every optional field of a message class (computed once per class)."""
    d = _DEFAULTS.get(cls)
    if d is None:
        with _defaults_lock:
            d = {name: f.get_default(call_default_factory=True)
                 for name, f in cls.model_fields.items() if not f.is_required()}
            _DEFAULTS[cls] = d
    return d


class ValueCodec:
    """Encode Python values into lattice values and back (see the module docstring).

    Args:
        serde: the saver's ``SerializerProtocol`` (``dumps_typed``/``loads_typed``),
            used only for values outside plain data and core messages.
        leaves: decoded vector leaves to reuse (see :class:`LeafCache`), or None.
    """

    def __init__(self, serde: Any, leaves: "LeafCache | None" = None) -> None:
        self.serde = serde
        self.leaves = leaves

    # -- encoding ------------------------------------------------------------
    def enc(self, v: Any) -> Any:
        """Return the lattice value (plain Python data) that stands for ``v``."""
        t = type(v)
        if v is None or t is str or t is bool or t is float or t is bytes:
            return v
        if t is int:
            return v if _INT_MIN <= v <= _INT_MAX else self._serde(v)
        if t is list:
            return [self.enc(x) for x in v]
        if t is dict:
            out = {}
            for k, x in v.items():
                if type(k) is not str:
                    return self._serde(v)
                out[k] = self.enc(x)
            return {"$dict": out} if not RESERVED.isdisjoint(out) else out
        mtype = _CLASS_TYPE.get(t)
        if mtype is not None:
            return self.enc_message(v, mtype)
        return self._serde(v)

    def enc_message(self, m: BaseMessage, mtype: str | None = None) -> dict:
        """``{"$lc": type, field: value...}`` of a core LangChain message (defaults left out)."""
        cls = type(m)
        defaults = _defaults(cls)
        out: dict[str, Any] = {"$lc": mtype or _CLASS_TYPE[cls]}
        for k, x in m.__dict__.items():
            if k in defaults:
                dv = defaults[k]
                if type(x) is type(dv) and x == dv:
                    continue
            out[k] = self.enc(x)
        return out

    def _serde(self, v: Any) -> dict:
        kind, data = self.serde.dumps_typed(v)
        return {"$serde": [kind, data]}

    # -- decoding ------------------------------------------------------------
    def dec(self, tx: Tx, v: Any) -> Any:
        """Return the Python value of stored value ``v`` (links are read through ``tx``)."""
        t = type(v)
        if t is Link:
            code = v.code
            if code == BLOB:
                return tx.load(v)
            if code == NODE:
                return self.dec(tx, tx.load(v))
            if code == VEC:
                return self.dec_vector(tx, v)
            if code == MAP:
                return self._dec_map(tx, dict(HMap.open(tx, v).items_raw()))
            raise ValueError(f"unexpected link kind {code} in a stored channel value")
        if t is list:
            return [self.dec(tx, x) for x in v]
        if t is dict:
            return self._dec_map(tx, v)
        return v

    def dec_vector(self, tx: Tx, link: Link) -> list:
        """Decode a stored vector, reusing the leaves in :attr:`leaves` that are still as decoded."""
        vec = Vec.open(tx, link)
        out: list = []
        cache = self.leaves
        for leaf in _leaf_links(tx, vec):
            d = bytes(leaf.data)
            hit = cache.get(d) if cache is not None else None
            if hit is not None and _still(hit):
                out += hit[0]
                continue
            items = [self.dec(tx, x) for x in tx.load(leaf)]
            if cache is not None:
                cache.put(d, items)
            out += items
        out += [self.dec(tx, x) for x in vec.tail]
        return out

    def _dec_map(self, tx: Tx, m: dict) -> Any:
        if "$lc" in m:
            cls = _MESSAGE_CLASSES.get(m["$lc"])
            if cls is None:
                raise ValueError(f"stored message has unknown type {m['$lc']!r}")
            return cls(**{k: self.dec(tx, x) for k, x in m.items() if k != "$lc"})
        if "$serde" in m:
            kind, data = items(tx, m["$serde"])
            data = self.dec(tx, data)
            return self.serde.loads_typed((kind, data))
        if "$dict" in m:
            return {k: self.dec(tx, x) for k, x in entries(tx, m["$dict"]).items()}
        return {k: self.dec(tx, x) for k, x in m.items()}


def _leaf_links(tx: Tx, vec: Vec) -> Any:
    """The links of a vector's full leaves, in order (the tail is not among them)."""
    if vec.root is None:
        return
    stack = [(vec.root, vec.shift)]
    while stack:
        node, level = stack.pop()
        if level == 0:
            yield node
        else:
            stack.extend((child, vec.child_level(level)) for child in reversed(tx.load(node)))


_getdict = operator.attrgetter("__dict__")
_MESSAGE_TYPES = frozenset(_CLASS_TYPE)
_IMMUTABLE = frozenset({type(None), str, int, float, bool, bytes})


def _still(entry: tuple) -> bool:
    """Whether the cached items of a leaf are as decoded (checked in C loops: this runs over a
    whole chat history at every read)."""
    items, fields = entry
    return fields is None or list(map(_getdict, items)) == fields


class LeafCache:
    """Decoded items of vector leaves by leaf digest (bounded LRU, thread-safe).

    Only leaves of immutable scalars or core messages are kept; for messages,
    a copy of each one's fields, to tell that a caller has changed it.

    Args:
        capacity: leaves kept (each up to 32 items).
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[list, list | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, d: bytes) -> tuple[list, list | None] | None:
        """``(items, fields or None)`` of leaf ``d``, or None."""
        with self._lock:
            e = self._entries.get(d)
            if e is not None:
                self._entries.move_to_end(d)
            return e

    def put(self, d: bytes, items: list) -> None:
        """Remember the decoded items of leaf ``d`` (if they are scalars or core messages)."""
        kinds = set(map(type, items))
        if kinds <= _IMMUTABLE:
            entry = (items, None)
        elif kinds <= _MESSAGE_TYPES:
            entry = (items, [dict(x.__dict__) for x in items])
        else:
            return
        with self._lock:
            self._entries[d] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def entries(tx: Tx, v: Any) -> dict:
    """The entries of a stored map (any layout), values in stored form."""
    if type(v) is Link:
        if v.code == NODE:
            v = tx.load(v)
        elif v.code == MAP:
            return dict(HMap.open(tx, v).items_raw())
    if type(v) is not dict:
        raise ValueError(f"expected a stored map, got {type(v).__name__}")
    return v


def items(tx: Tx, v: Any) -> list:
    """The items of a stored list (any layout), in stored form."""
    if type(v) is Link:
        if v.code == NODE:
            v = tx.load(v)
        elif v.code == VEC:
            return list(Vec.open(tx, v).iter_raw())
    if type(v) is not list:
        raise ValueError(f"expected a stored list, got {type(v).__name__}")
    return v


class ListMemo:
    """The items (Python objects) each recently stored list holds, by digest: for a vector, the list
    of items; for a list node (32 items at most), ``(items, their stored forms)``. Bounded LRU;
    thread-safe.

    Args:
        capacity: vectors remembered.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, list] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, d: bytes) -> list | tuple | None:
        """What list ``d`` holds (see the class), or ``None``."""
        with self._lock:
            e = self._entries.get(d)
            if e is not None:
                self._entries.move_to_end(d)
            return e

    def put(self, d: bytes, items: list | tuple) -> None:
        """Remember what list ``d`` holds (not copied: pass lists nobody changes)."""
        with self._lock:
            self._entries[d] = items
            self._entries.move_to_end(d)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def store_list(codec: ValueCodec, memo: ListMemo, tx: Tx, seq: list, base: Any) -> tuple[Any, list | None]:
    """Store list ``seq`` (a channel value), appending to ``base`` when it holds a prefix of it.

    Args:
        base: the channel's stored value in the parent checkpoint (any stored
            form), or ``None``.

    Returns:
        ``(stored, remember)``: the stored form (a ``Link(VEC)`` past 32 items)
        and what to remember it by once committed (see :class:`ListMemo`; None: nothing).
    """
    keep = list(seq)
    if type(base) is Link and base.code == NODE:  # a short list: reuse the stored forms of its items
        hit = memo.get(bytes(base.data))
        if type(hit) is tuple and len(keep) >= len(hit[0]) and all(map(operator.is_, keep, hit[0])):
            stored = hit[1] + [tx.put_value(codec.enc(x)) for x in keep[len(hit[0]):]]
            return _short_or_vector(tx, keep, stored)
    if len(keep) <= FANOUT:
        return _short_or_vector(tx, keep, [tx.put_value(codec.enc(x)) for x in keep])
    if type(base) is Link and base.code == VEC:
        old = memo.get(bytes(base.data))
        if old is not None and len(keep) >= len(old) and all(map(operator.is_, keep, old)):
            vec = Vec.open(tx, base)
            for x in keep[len(old):]:
                vec = vec.append_raw(tx.put_value(codec.enc(x)))
            return vec.store(), keep
        # No memo: compare the stored forms; append if the old vector is a prefix.
        prev = Vec.open(tx, base)
        if prev.count <= len(keep):
            stored = [tx.put_value(codec.enc(x)) for x in keep]
            if all(_same(a, b) for a, b in zip(prev.iter_raw(), stored)):
                vec = prev
                for x in stored[prev.count:]:
                    vec = vec.append_raw(x)
                return vec.store(), keep
            return Vec.build(tx, stored).store(), keep
    return tx.put_value(codec.enc(keep)), keep


def _short_or_vector(tx: Tx, keep: list, stored: list) -> tuple[Any, Any]:
    """The stored form of a list whose items are stored (``stored``), and what to remember it by: a
    list node is remembered with its items' stored forms, ``(keep, stored)``."""
    if len(stored) > FANOUT:
        return Vec.build(tx, stored).store(), keep
    s = tx.put_stored(stored)  # the items are stored forms already: only the list node is new
    return s, ((keep, stored) if type(s) is Link else None)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is Link or type(a) is str:
        return a == b
    return encode(a) == encode(b)
