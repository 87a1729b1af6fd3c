"""An operation's input as JSON spells it, made ready for the contract's decoder.

Two gaps between JSON Schema (what the documents promise) and msgspec (what
:func:`ops.domain.contracts.decode_input` checks) are closed here, for REST and
MCP alike:

* JSON Schema's ``integer`` is a number without a fraction, so ``30.0`` is one;
  msgspec wants ``30``. Where the input wants an int (and no float), an integral
  float becomes an int. Free-form values (``Any``: task inputs, state, workspace
  values) are never touched: their encoding is their identity.
* Every integer, of an int field or in a free-form value, must fit in 64 bits
  (``-2**63`` .. ``2**64-1``), as the documents say (``JsonValue``, and each
  ``integer``'s bounds). One that does not is a 400 ``invalid_input`` with its
  path, whether or not the operation would reach the point of using it (an
  unknown agent, a read-only path).

And an inline ``config`` map is checked first, as the engine checks it (its keys, their
types, the model reference), for every operation that takes one: so a bad config is a 400
whatever the state, even where the operation would not read it (``agent:replay`` without
``into``).

These belong in the contract's decoder; they live in the surface until it has them.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec  # noqa: F401  (the doctests use it)
import msgspec.inspect as mi

from ..domain import agent as A
from ..domain.contracts import Contract
from ..domain.errors import Rejected
from ..engine.config import check_inline_config

__all__ = ["json_input", "integral_ints", "json_error", "INT_MIN", "INT_MAX"]

#: the integers a stored value may hold
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 64 - 1


def json_input(contract: Contract, raw: Any, where: str = "$.input") -> Any:
    """``raw`` (the decoded ``input``) ready for :func:`ops.domain.contracts.decode_input`.

    Args:
        contract: the operation.
        raw: its input, as decoded from JSON. Source: the caller (untrusted).
        where: where the input is in the request, for errors.

    Raises:
        Rejected: ``invalid_input``, a free-form value holds an integer outside 64 bits.
    """
    t = mi.type_info(contract.input)
    raw = _walk(t, raw, where)
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict):  # an inline config map: AgentConfig's types
        raw = {**raw, "config": _walk(mi.type_info(A.AgentConfig), raw["config"], f"{where}.config")}
        check_inline_config(raw["config"], f"{where}.config")
    return raw


_ESCAPE = re.compile(rb"(\\+)u([dD][89abAB][0-9a-fA-F]{2})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?|(\\+)u([dD][c-fC-F][0-9a-fA-F]{2})")


def json_error(body: bytes, err: Exception) -> str:
    r"""What is wrong with a request body that is not JSON, and where, for a 400 ``invalid_json``.

    msgspec reports a lone surrogate escape (``"\\ud800"``: half of a UTF-16 pair, which no
    character is) as "Input data was truncated", and bytes that are not UTF-8 without their
    place; both are named here, with their byte offset.

    >>> json_error(b'{"a": "x\\ud800"}', ValueError("Input data was truncated"))
    'lone surrogate \\ud800 at byte 8: a \\u escape of U+D800..U+DFFF must be a high one followed by a low one'
    >>> json_error(b'{"a": "\\ud83d\\ude00"}', ValueError("x")), json_error(b'{"a": 1', ValueError("truncated"))
    ('x', 'truncated')
    >>> json_error(b'{"a": "\xed\xa0\x80"}', ValueError("Invalid UTF-8"))
    'not UTF-8 at byte 7 (0xed)'
    """
    for m in _ESCAPE.finditer(body):
        slashes = m.group(1) or m.group(4)
        if len(slashes) % 2 == 0:
            continue  # an escaped backslash, then the letters `u` ...: not an escape
        lone = m.group(5) if m.group(4) else (None if m.group(3) else m.group(2))
        if lone is not None:
            at = m.start() + len(slashes) - 1
            return (f"lone surrogate \\u{lone.decode().lower()} at byte {at}: a \\u escape of U+D800..U+DFFF must "
                    f"be a high one followed by a low one")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 at byte {e.start} (0x{body[e.start]:02x})"
    return str(err)


def integral_ints(t: Any, value: Any) -> Any:
    """``value`` with each integral float an int where type ``t`` wants an int and no float.

    >>> import msgspec
    >>> class P(msgspec.Struct):
    ...     n: int
    ...     v: int | str | None = None
    ...     x: object = None
    >>> integral_ints(P, {"n": 3.0, "v": 2.0, "x": 1.0})
    {'n': 3, 'v': 2, 'x': 1.0}
    """
    return _walk(mi.type_info(t), value, "$")


def _bare(t: Any) -> Any:
    """The type under its ``Annotated`` metadata (a description, constraints)."""
    while isinstance(t, mi.Metadata):
        t = t.type
    return t


def _wants_int(t: Any) -> bool:
    if isinstance(t, mi.IntType):
        return True
    types = [_bare(x) for x in t.types] if isinstance(t, mi.UnionType) else []
    return any(isinstance(x, mi.IntType) for x in types) and not any(isinstance(x, mi.FloatType) for x in types)


def _walk(t: Any, v: Any, path: str) -> Any:
    t = _bare(t)
    if isinstance(t, mi.AnyType):
        _storable(v, path)
        return v
    if isinstance(v, float):
        v = int(v) if _wants_int(t) and math.isfinite(v) and v.is_integer() else v
    if isinstance(v, int) and not isinstance(v, bool) and not INT_MIN <= v <= INT_MAX:
        _storable(v, path)  # an int field is 64 bits too
    if isinstance(t, mi.UnionType):
        for x in t.types:
            if isinstance(x, (mi.StructType, mi.ListType, mi.DictType)):
                v = _walk(x, v, path)
        return v
    if isinstance(t, mi.StructType) and isinstance(v, dict):
        fields = {f.encode_name: f.type for f in t.fields}
        return {k: _walk(fields[k], x, f"{path}.{k}") if k in fields else x for k, x in v.items()}
    if isinstance(t, mi.ListType) and isinstance(v, list):
        return [_walk(t.item_type, x, f"{path}[{i}]") for i, x in enumerate(v)]
    if isinstance(t, mi.DictType) and isinstance(v, dict):
        return {k: _walk(t.value_type, x, f"{path}.{k}") for k, x in v.items()}
    return v


def _storable(value: Any, path: str) -> None:
    """Refuse an integer outside 64 bits anywhere in ``value`` (iterative: values nest up to 64 deep)."""
    stack = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, f"{p}.{k}") for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{p}[{i}]") for i, x in enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool) and not INT_MIN <= v <= INT_MAX:
            raise Rejected("invalid_input", f"integer out of range - at `{p}`", path=p,
                           hint="integers must fit in 64 bits (-2^63 .. 2^64-1); send a larger one as a string")
