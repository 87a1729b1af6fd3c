"""Errors of the lattice layer, each with a stable snake_case ``code``.

Every error raised by :mod:`lattice` is a :class:`LatticeError`; callers map
``code`` to their own surface (the HTTP layer maps it to a status).
"""

from __future__ import annotations

__all__ = [
    "LatticeError",
    "NotFound",
    "CorruptObject",
    "InvalidPath",
    "InvalidValue",
    "StoreError", "StoreLocked", "ReadOnly", "GcRunning",
]


class LatticeError(Exception):
    """Base error: ``code`` is stable, ``message`` says expected, got and where.

    Args:
        message: human-readable text.
        path: optional pointer into the caller's input (``$.input.path``).
        hint: optional advice on how to fix the request.
    """

    code = "lattice_error"

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.hint = hint


class NotFound(LatticeError):
    """An object, ref or path that does not exist."""

    code = "not_found"


class CorruptObject(LatticeError):
    """Stored bytes whose blake3 digest differs from the key they are stored under."""

    code = "corrupt_object"


class InvalidPath(LatticeError):
    """A lattice path that is empty, malformed or indexes the wrong type."""

    code = "invalid_path"


class InvalidValue(LatticeError):
    """A value outside the lattice data model (e.g. a dict with a non-str key)."""

    code = "invalid_value"


class StoreError(LatticeError):
    """A backend failure (I/O, environment) wrapped with ``raise ... from e``."""

    code = "store_error"


class StoreLocked(StoreError):
    """Another process writes to the store (one writer per LMDB directory)."""

    code = "store_locked"


class ReadOnly(StoreError):
    """A write to a store opened read-only."""

    code = "read_only"


class GcRunning(StoreError):
    """A garbage collection was asked for while another one runs on the same store (one at a time)."""

    code = "gc_running"
