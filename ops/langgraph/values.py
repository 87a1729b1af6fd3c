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
``add_messages``) reuses the previous checkpoint's list: :class:`ListMemo`
remembers which Python objects a stored list (a vector, or a small list node)
holds, so the next checkpoint encodes only the new items (O(log n) new objects
per turn). An item counts as
unchanged while it is the *same object*: LangGraph's reducers return new
objects for what they change (``add_messages`` replaces a message by id), and,
as with LangGraph's ``DeltaChannel``, an old item mutated in place is not seen.
Without a memo hit (another process, a list changed in the middle) every item
is encoded again; unchanged sub-trees come out with the same digests, so the
store still shares them and only the CPU cost is O(n).

Reading, a list the memo knows is not decoded at all: its items are handed
out again (in a new list) while each is still as stored, and :class:`LeafCache`
keeps the decoded items of vector leaves, so the next checkpoint of a growing
chat decodes its tail, not its history. Such shared items are immutable scalars
or core messages only, each with a snapshot of its fields (dicts and lists in
them copied, see :func:`snapshot`) taken when it was encoded or decoded; a
shared message whose fields no longer equal the snapshot (a caller changed
it, in place or deep inside) is decoded afresh. Other objects inside a field
(a model in ``additional_kwargs``) are compared with ``==`` only.
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

__all__ = ["RESERVED", "UNKNOWN", "ValueCodec", "ListMemo", "LeafCache", "snapshot", "store_list", "entries",
           "items"]

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
        return self.dec_list(tx, link)[0]

    def dec_list(self, tx: Tx, v: Any) -> tuple[list, Any]:
        """Decode a stored list (any layout; vector leaves reused as :meth:`dec_vector` does).

        Returns:
            ``(items, fields)``: ``fields`` is :func:`snapshot` of the items, taken as they were
            decoded (:data:`UNKNOWN` when they are not all immutable scalars or core messages).
        """
        if type(v) is not Link or v.code != VEC:
            out = [self.dec(tx, x) for x in items(tx, v)]
            return out, snapshot(out)
        vec = Vec.open(tx, v)
        out: list = []
        parts = []
        cache = self.leaves
        for leaf in _leaf_links(tx, vec):
            d = bytes(leaf.data)
            hit = cache.get(d) if cache is not None else None
            if hit is None or not _still(hit):
                leaf_items = [self.dec(tx, x) for x in tx.load(leaf)]
                hit = (leaf_items, snapshot(leaf_items))
                if cache is not None:
                    cache.put(d, *hit)
            out += hit[0]
            parts.append((len(hit[0]), hit[1]))
        tail = [self.dec(tx, x) for x in vec.tail]
        out += tail
        parts.append((len(tail), snapshot(tail)))
        return out, _join(parts)

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


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


#: :func:`snapshot` of items that cannot be shared (or whose snapshot was not taken).
UNKNOWN: Any = _Unknown()


def _copy(v: Any) -> Any:
    t = type(v)
    if t is dict:
        return {k: _copy(x) for k, x in v.items()}
    if t is list:
        return [_copy(x) for x in v]
    return v


def snapshot(seq: list) -> Any:
    """What tells later whether items are still as now: None if all are immutable scalars, the
    fields of each if all are core messages (``__dict__`` with the dicts and lists in it copied),
    else :data:`UNKNOWN` (such items are never shared)."""
    kinds = set(map(type, seq))
    if kinds <= _IMMUTABLE:
        return None
    if kinds <= _MESSAGE_TYPES:
        return [{k: _copy(x) for k, x in m.__dict__.items()} for m in seq]
    return UNKNOWN


def _join(parts: list[tuple[int, Any]]) -> Any:
    """The snapshot of consecutive runs of items from ``(how many, their snapshot)`` of each run."""
    kinds = {UNKNOWN if f is UNKNOWN else type(f) for n, f in parts if n}
    if not kinds or kinds == {type(None)}:
        return None
    if kinds != {list}:
        return UNKNOWN  # some cannot be shared, or scalars and messages mixed
    return [x for n, f in parts if n for x in f]


def _still(entry: tuple) -> bool:
    """Whether shared items are as their snapshot says (checked in C loops: this runs over a
    whole chat history at every read)."""
    seq, fields = entry
    return fields is None or (fields is not UNKNOWN and list(map(_getdict, seq)) == fields)


class LeafCache:
    """Decoded items of vector leaves by leaf digest (bounded LRU, thread-safe).

    Only leaves of immutable scalars or core messages are kept, with their
    :func:`snapshot`, to tell that a caller has changed one.

    Args:
        capacity: leaves kept (each up to 32 items).
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[list, list | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, d: bytes) -> tuple[list, list | None] | None:
        """``(items, snapshot)`` of leaf ``d``, or None."""
        with self._lock:
            e = self._entries.get(d)
            if e is not None:
                self._entries.move_to_end(d)
            return e

    def put(self, d: bytes, items: list, fields: Any = UNKNOWN) -> None:
        """Remember the decoded items of leaf ``d`` (if they are scalars or core messages).

        Args:
            fields: their :func:`snapshot` if taken already (taken here if :data:`UNKNOWN`).
        """
        if fields is UNKNOWN:
            fields = snapshot(items)
            if fields is UNKNOWN:
                return
        with self._lock:
            self._entries[d] = (items, fields)
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
    """The items (Python objects) each recently stored list holds, by the digest of its vector or
    node, with their :func:`snapshot`. Bounded LRU; thread-safe.

    Args:
        capacity: lists remembered.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[list, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, d: bytes) -> list | None:
        """The items of list ``d`` (to compare by identity, not to hand out), or ``None``."""
        e = self.entry(d)
        return None if e is None else e[0]

    def entry(self, d: bytes) -> tuple[list, Any] | None:
        """``(items, snapshot)`` of list ``d``, or ``None``."""
        with self._lock:
            e = self._entries.get(d)
            if e is not None:
                self._entries.move_to_end(d)
            return e

    def current(self, d: bytes) -> list | None:
        """A new list of the items of list ``d`` if they may be handed out (immutable scalars, or core
        messages whose fields still equal their snapshot), else ``None``."""
        e = self.entry(d)
        return list(e[0]) if e is not None and _still(e) else None

    def put(self, d: bytes, items: list, fields: Any = UNKNOWN) -> None:
        """Remember that list ``d`` holds ``items`` (not copied: pass a list nobody changes).

        Args:
            fields: their :func:`snapshot` taken when they were encoded or decoded
                (:data:`UNKNOWN`: never handed out by :meth:`current`).
        """
        with self._lock:
            self._entries[d] = (items, fields)
            self._entries.move_to_end(d)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def store_list(codec: ValueCodec, memo: ListMemo, tx: Tx, seq: list, base: Any) -> tuple[Any, tuple | None]:
    """Store list ``seq`` (a channel value), appending to ``base`` when it holds a prefix of it.

    Args:
        base: the channel's stored value in the parent checkpoint (any stored
            form), or ``None``.

    Returns:
        ``(stored, held)``: the stored form (a ``Link(VEC)`` past 32 items, a
        ``Link(NODE)`` or an inline list below), and ``(items, snapshot)`` to
        :meth:`ListMemo.put` once committed (None: nothing to remember).
    """
    keep = list(seq)
    if type(base) is Link and (base.code == VEC or base.code == NODE):
        old = memo.entry(bytes(base.data))
        if old is not None and len(keep) >= len(old[0]) and all(map(operator.is_, keep, old[0])):
            n = len(old[0])
            new = keep[n:]
            added = [tx.put_value(codec.enc(x)) for x in new]
            fields = _join([(n, old[1]), (len(new), snapshot(new))])
            if base.code == VEC:
                vec = Vec.open(tx, base)
                for x in added:
                    vec = vec.append_raw(x)
                return vec.store(), (keep, fields)
            held = tx.load(base)
            if type(held) is not list:
                raise ValueError(f"expected a stored list, got {type(held).__name__}")
            stored = held + added  # a node only grows: its encoding stays over NODE_MIN
            if len(stored) > FANOUT:
                return Vec.build(tx, stored).store(), (keep, fields)
            return (tx.put_obj(NODE, stored) if added else base), (keep, fields)
    if len(keep) <= FANOUT:
        s = tx.put_value(codec.enc(keep))
        return s, ((keep, snapshot(keep)) if type(s) is Link else None)
    if type(base) is Link and base.code == VEC:
        # No memo: compare the stored forms; append if the old vector is a prefix.
        prev = Vec.open(tx, base)
        if prev.count <= len(keep):
            stored = [tx.put_value(codec.enc(x)) for x in keep]
            if all(_same(a, b) for a, b in zip(prev.iter_raw(), stored)):
                vec = prev
                for x in stored[prev.count:]:
                    vec = vec.append_raw(x)
                return vec.store(), (keep, snapshot(keep))
            return Vec.build(tx, stored).store(), (keep, snapshot(keep))
    return tx.put_value(codec.enc(keep)), (keep, snapshot(keep))


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is Link or type(a) is str:
        return a == b
    return encode(a) == encode(b)
