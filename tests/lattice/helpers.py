"""Shared helpers of the lattice tests."""

from __future__ import annotations

from typing import Any


def strict_eq(a: Any, b: Any) -> bool:
    """Equality that also compares types (so True != 1, 1 != 1.0, 0.0 != -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(strict_eq(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(strict_eq(a[k], b[k]) for k in a)
    if type(a) is float:
        return repr(a) == repr(b)
    return a == b
