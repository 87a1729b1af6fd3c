"""Shared helpers of the lattice tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


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


INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def scalar_strategy(small: int = 20) -> st.SearchStrategy:
    """Lattice scalars, including str/bytes large enough to be stored as blobs."""
    return (st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=small) | st.binary(max_size=small)
            | st.text(min_size=301, max_size=340) | st.binary(min_size=260, max_size=300))


def value_strategy(width: int = 6, leaves: int = 25, small: int = 20, keys: int = 8) -> st.SearchStrategy:
    """Nested lattice values; ``width`` above 32 makes vectors and maps."""
    return st.recursive(scalar_strategy(small), lambda c: st.lists(c, max_size=width)
                        | st.dictionaries(st.text(max_size=keys), c, max_size=width), max_leaves=leaves)


def tamper_lmdb(path: Any, d: bytes, data: bytes) -> None:
    """Replace, on disk, the bytes of the object with digest ``d`` in the closed LMDB store at ``path``
    by ``data`` (stored raw), or store ``data`` under ``d`` if it is absent: what a damaged disk does."""
    import lmdb

    from lattice.digest import digest
    from lattice.lmdb_layout import MAX_DBS, RAW, Layout, seq_key

    env = lmdb.open(str(path), max_dbs=MAX_DBS)
    try:
        layout = Layout(env, False)
        with env.begin(write=True) as txn:
            layout.begin(txn)
            # d's own entry: others may share its prefix (tests that shorten the prefix)
            seq = next((q for q, stored in layout.candidates(txn, d) if digest(stored) == d), None)
            if seq is None:
                seq = layout.next_seq
                layout.put(txn, d, data)
            txn.put(seq_key(seq), bytes((RAW,)) + data, db=layout.log)
    finally:
        env.close()


def truncate_logged(path: Any, seq: int = 1, cut: int = 3) -> bytes:
    """Cut the last ``cut`` bytes off the log value at ``seq`` in the closed LMDB store at ``path``
    (a damaged zstd frame); return the value as it was."""
    import lmdb

    from lattice.lmdb_layout import LOG_DB, MAX_DBS, seq_key

    env = lmdb.open(str(path), max_dbs=MAX_DBS)
    try:
        with env.begin(write=True, db=env.open_db(LOG_DB, create=False)) as txn:
            v = bytes(txn.get(seq_key(seq)))
            txn.put(seq_key(seq), v[:-cut])
    finally:
        env.close()
    return v
