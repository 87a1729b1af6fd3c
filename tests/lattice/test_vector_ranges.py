"""Vector reads by range (:meth:`lattice.vector.Vec.iter_raw`): every slice of vectors of both
geometries (format 3's 8-item leaves under 8-link nodes, format 2's under 32-link nodes, format 1's
32-item leaves) equals the list's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lattice.memory import MemoryStore
from lattice.nodes import Tx, Vec
from tests.lattice.test_golden import build_in


@pytest.fixture(scope="module")
def vectors():
    tx = Tx(MemoryStore())
    out = {}
    for n in (33, 40, 257, 1000, 8200, 33000):
        items = list(range(n))
        out[("f3", n)] = (Vec.build(tx, items), items)
        out[("f2", n)] = (build_in(2, tx, items), items)
        out[("f1", n)] = (build_in(1, tx, items), items)
    return out


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from([(f, n) for f in ("f1", "f2", "f3") for n in (33, 40, 257, 1000, 8200, 33000)]),
       a=st.integers(-5, 34000), b=st.integers(0, 34000) | st.none())
def test_every_slice(vectors, key, a, b):
    vec, items = vectors[key]
    assert list(vec.iter_raw(a, b)) == items[max(a, 0):b]


def test_appended_vector_reads_like_built(vectors):
    tx = Tx(MemoryStore())
    v = Vec.build(tx, list(range(40)))
    for i in range(40, 1100):
        v = v.append_raw(i)
    assert list(v.iter_raw()) == list(range(1100)) and list(v.iter_raw(517, 1033)) == list(range(517, 1033))
