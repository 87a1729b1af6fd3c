"""Digests: blake3-256 of canonical bytes.

>>> to_hex(digest(b"")).startswith("af1349b9")
True
"""

from __future__ import annotations

from blake3 import blake3

__all__ = ["DIGEST_SIZE", "digest", "to_hex", "from_hex"]

DIGEST_SIZE = 32


def digest(data: bytes) -> bytes:
    """Return the 32-byte blake3 digest of ``data``."""
    return blake3(data).digest()


def to_hex(d: bytes) -> str:
    """Return the lowercase hex form (64 chars) of a digest."""
    return d.hex()


def from_hex(text: str) -> bytes:
    """Parse a 64-char hex digest (an optional ``0x`` prefix is allowed).

    Raises:
        ValueError: when ``text`` is not 64 hex characters.
    """
    if text.startswith(("0x", "0X")):
        text = text[2:]
    if len(text) != 2 * DIGEST_SIZE:
        raise ValueError(f"expected {2 * DIGEST_SIZE} hex characters, got {len(text)}")
    d = bytes.fromhex(text)
    if len(d) != DIGEST_SIZE:  # fromhex skips whitespace
        raise ValueError(f"expected {2 * DIGEST_SIZE} hex characters, got whitespace in {text!r}")
    return d
