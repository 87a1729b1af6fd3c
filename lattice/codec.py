"""Canonical encoding: msgpack with sorted map keys, links as msgpack ext types.

A stored object is the canonical msgpack encoding of a lattice value in which
some sub-values are replaced by **links**: ``msgspec.msgpack.Ext(kind, digest)``
where ``kind`` says what the linked object is (see :mod:`lattice.nodes`).
The encoding of a value never changes between runs or versions ("encoding is
identity"): maps are written with sorted keys and no Struct is ever encoded
into an object.

>>> encode({"b": 1, "a": [True, None]}) == encode({"a": [True, None], "b": 1})
True
>>> decode(encode({"x": Link(1, bytes(32))}))["x"].code
1
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import InvalidValue

__all__ = ["Link", "encode", "decode", "links", "FORMAT_VERSION"]

#: Version of the stored format (this canonical encoding plus the object layout
#: of :mod:`lattice.nodes`); carried in every commit. Bump it, with a migration,
#: whenever the canonical bytes of any value change: the golden tests
#: (``tests/lattice/test_golden.py``) pin the digests of version N and fail
#: loudly on any change that would re-hash existing stores. Format 2: vectors of
#: 8-item leaves; format 3: their interior nodes hold 8 links (:mod:`lattice.vector`).
FORMAT_VERSION = 3

#: A link to another object: ``Link(kind, digest)``.
Link = msgspec.msgpack.Ext

_encoder = msgspec.msgpack.Encoder(order="sorted")
_decoder = msgspec.msgpack.Decoder()


def encode(value: Any) -> bytes:
    """Return the canonical bytes of ``value``.

    This is the low-level encoder: it does not police the data model (msgspec
    would also encode a set or a datetime). Values enter the lattice through
    :meth:`lattice.nodes.Tx.put_value`, which accepts only the data model.

    Args:
        value: None, bool, int, float, str, bytes, list, dict with str keys, or Link.

    Raises:
        InvalidValue: the value cannot be encoded (a dict with non-str keys,
            an int outside int64/uint64, a str with a lone surrogate, ...).
    """
    try:
        return _encoder.encode(value)
    except (TypeError, OverflowError, UnicodeEncodeError, msgspec.EncodeError) as e:
        raise InvalidValue(f"value cannot be stored: {e}") from e


def decode(data: bytes) -> Any:
    """Decode canonical bytes (links come back as :data:`Link`).

    Raises:
        InvalidValue: the bytes are not valid msgpack (or nest too deeply, or
            hold invalid UTF-8).
    """
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidValue(f"undecodable object: {e}") from e


def links(obj: Any) -> list[Link]:
    """Every :class:`Link` inside a decoded object (lists and maps walked, iteratively)."""
    out: list[Link] = []
    stack = [obj]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is Link:
            out.append(v)
        elif t is list:
            stack.extend(v)
        elif t is dict:
            stack.extend(v.values())
    return out
