"""What the collector and bundles must keep besides a chain: the other versions its events need."""

from __future__ import annotations

from typing import Any, Callable

from lattice.codec import Link, decode
from lattice.digest import from_hex

from ..domain.events import needed_versions

__all__ = ["version_links"]


def version_links(op: str, stored_input: Any, get: Callable[[bytes], bytes | None]) -> list[bytes]:
    """For the collector: the other versions a commit's event needs (a fork's or a session
    fork's source version), so that deleting a fork's source frees only what the fork does not need."""
    if op not in ("agent:fork", "agent:forkSession"):
        return []
    inp = stored_input
    if isinstance(inp, Link):
        data = get(bytes(inp.data))
        inp = decode(data) if data is not None else None
    out = []
    for h in needed_versions(op, inp if isinstance(inp, dict) else {}):
        try:
            out.append(from_hex(h))
        except ValueError:
            pass
    return out
