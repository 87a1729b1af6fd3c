"""Object kinds and shape constants of the stored lattice.

Every constant here is part of the stored format: changing one re-hashes
existing stores (see :data:`lattice.codec.FORMAT_VERSION` and the golden
tests). What each kind of object holds is tabled in :mod:`lattice.nodes`.
"""

from __future__ import annotations

__all__ = [
    "BLOB", "NODE", "VEC", "VNODE", "MAP",
    "BITS", "FANOUT", "MASK", "LEAF_BITS", "NODE_BITS", "BLOB_MIN", "NODE_MIN", "MAX_DEPTH",
]

#: Link kinds (the ``code`` of a :data:`lattice.codec.Link`).
BLOB, NODE, VEC, VNODE, MAP = 1, 2, 3, 4, 5
#: Bits of index (vector) or key hash (map) consumed per tree level.
BITS = 5
#: Most children of a tree node, and most entries of an inline collection.
FANOUT = 1 << BITS
MASK = FANOUT - 1
#: Bits of index consumed by a vector's leaf: leaves (and the tail) hold 8 items (format 2 on;
#: format 1's leaves held 32, see :mod:`lattice.vector`).
LEAF_BITS = 3
#: Bits of index consumed by a vector's interior node: 8 links (format 3; formats 1 and 2: 32).
NODE_BITS = 3
#: str/bytes whose encoding is longer than this are stored in their own object.
BLOB_MIN = 256
#: small containers whose encoding is longer than this are stored in their own object.
NODE_MIN = 128
#: HAMT depth at which leaves may hold more than FANOUT keys (the 256-bit hash is used up).
MAX_DEPTH = 256 // BITS
