"""Property tests of Tx's read helpers (json_size, plain) and of the ObjectCache."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.memory import MemoryStore
from lattice.nodes import ObjectCache, Tx
from tests.lattice.helpers import strict_eq, value_strategy

values = value_strategy(width=40, leaves=60, small=12, keys=6)
SLOW_OK = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _json_len(v) -> int:
    return len(msgspec.json.encode(v))


@SLOW_OK
@given(values)
def test_json_size_is_the_length_of_the_json_of_the_materialized_value(v):
    """json_size agrees with encoding the materialized value, for stored, opened and reopened forms."""
    store = MemoryStore()
    tx = Tx(store, ObjectCache())
    want = _json_len(v)
    assert tx.json_size(v) == want
    stored = tx.put_value(v)
    assert tx.json_size(stored) == want
    assert tx.json_size(stored) == want  # the memoized size of a linked object is the same
    assert store.commit(dict(tx.objects), [])
    tx2 = Tx(store)
    opened = tx2.open(stored)  # Vec/HMap handles for large collections
    assert tx2.json_size(opened) == want
    root = tx2.put_root(v)
    assert tx2.json_size(tx2.load_root(root)) == want


@SLOW_OK
@given(values)
def test_plain_of_an_opened_value_is_its_materialized_value(v):
    store = MemoryStore()
    tx = Tx(store)
    stored = tx.put_value(v)
    assert store.commit(dict(tx.objects), [])
    tx2 = Tx(store)
    opened = tx2.open(stored)
    assert strict_eq(tx2.plain(opened), v)
    assert strict_eq(tx2.materialize(opened), v)
    assert tx2.plain(v) is v  # plain data comes back as is


@given(st.integers(1, 64), st.lists(st.binary(min_size=1, max_size=4), max_size=300))
def test_object_cache_stays_within_capacity(capacity, keys):
    cache = ObjectCache(capacity)
    for i, k in enumerate(keys):
        cache[k] = i
        cache.sizes[k] = i
        assert len(cache) <= capacity
        assert len(cache.sizes) <= capacity
        assert cache[k] == i  # the newest entry is never the one evicted


@SLOW_OK
@given(st.lists(values, max_size=32))
def test_put_stored_of_stored_items_is_put_value_of_the_list(items):
    """Items already in stored form: put_stored stores the same list node, objects and digest
    as put_value of the whole list (which normalizes each item again)."""
    a, b = Tx(MemoryStore(), ObjectCache()), Tx(MemoryStore(), ObjectCache())
    stored = [a.put_value(x) for x in items]
    for x in items:
        b.put_value(x)
    assert strict_eq(a.put_stored(list(stored)), b.put_value(list(stored)))
    assert a.objects == b.objects


def test_put_stored_takes_a_short_list_only():
    tx = Tx(MemoryStore(), ObjectCache())
    with pytest.raises(ValueError, match="at most 32"):
        tx.put_stored(list(range(33)))
    assert tx.objects == {}
