"""Property tests of the canonical codec (lattice.codec) and the lattice doctests."""

from __future__ import annotations

import doctest
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lattice.codec
import lattice.digest
import lattice.paths
from lattice.codec import Link, decode, encode
from lattice.errors import InvalidValue
from tests.lattice.helpers import INT64, scalar_strategy, strict_eq, value_strategy

scalars = scalar_strategy()
values = value_strategy()

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shuffled(v, rnd: random.Random):
    """The same value with every dict rebuilt in a random key order."""
    if type(v) is dict:
        keys = list(v)
        rnd.shuffle(keys)
        return {k: shuffled(v[k], rnd) for k in keys}
    if type(v) is list:
        return [shuffled(x, rnd) for x in v]
    return v


# ------------------------------------------------------------------ round trip


@SETTINGS
@given(values)
def test_round_trip(v):
    data = encode(v)
    assert type(data) is bytes
    back = decode(data)
    assert back == v
    assert strict_eq(back, v)
    assert encode(back) == data  # encoding is identity


@SETTINGS
@given(values, st.randoms(use_true_random=False))
def test_dict_key_order_never_changes_the_encoding(v, rnd):
    assert encode(shuffled(v, rnd)) == encode(v)


@SETTINGS
@given(st.dictionaries(st.text(max_size=10), INT64, min_size=2, max_size=40), st.randoms(use_true_random=False))
def test_reversed_and_shuffled_flat_dicts_encode_alike(d, rnd):
    rev = dict(reversed(list(d.items())))
    assert encode(rev) == encode(d)
    assert encode(shuffled(d, rnd)) == encode(d)


def test_long_strings_round_trip():
    for n in (255, 256, 257, 300, 301, 5000, 70_000):
        s = "é" * n
        assert decode(encode(s)) == s
        b = bytes(range(256)) * (n // 256 + 1)
        assert decode(encode(b)) == b


def test_int_range_edges():
    for n in (0, -1, 2**63 - 1, -(2**63), 2**64 - 1):
        assert decode(encode(n)) == n


def test_links_round_trip():
    link = Link(3, bytes(range(32)))
    back = decode(encode({"x": [link]}))["x"][0]
    assert type(back) is Link
    assert back.code == 3 and bytes(back.data) == bytes(range(32))


# ------------------------------------------------------------ invalid values


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({1: "a"}, id="dict-int-key"),
        pytest.param({"a": {2: "b"}}, id="nested-dict-int-key"),
        pytest.param({None: 1}, id="dict-none-key"),
        pytest.param({b"k": 1}, id="dict-bytes-key"),
        pytest.param({(1, 2): 3}, id="dict-tuple-key"),
        pytest.param(2**64, id="int-2**64"),
        pytest.param(2**70, id="int-2**70"),
        pytest.param(-(2**63) - 1, id="int-below-int64"),
        pytest.param([1, 2**65], id="nested-big-int"),
        pytest.param(object(), id="object"),
        pytest.param({"a": object()}, id="nested-object"),
        pytest.param(
            "\ud800",
            id="lone-surrogate",
        ),
        pytest.param(
            {"\udc80": 1},
            id="lone-surrogate-key",
        ),
    ],
)
def test_encode_rejects_values_outside_the_model(value):
    with pytest.raises(InvalidValue):
        encode(value)


@SETTINGS
@given(
    st.one_of(
        st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=3),
        st.integers(min_value=2**64),
        st.integers(max_value=-(2**63) - 1),
        st.dictionaries(st.floats(allow_nan=False), st.integers(), min_size=1, max_size=3),
    )
)
def test_encode_of_unsupported_values_raises_only_invalid_value(value):
    with pytest.raises(InvalidValue):
        encode(value)


@pytest.mark.parametrize("value", [{1, 2}, frozenset({1}), {"a": {3}}, [object()]], ids=["set", "frozenset", "nested-set", "object"])
def test_put_value_admits_only_the_data_model(value):
    # encode is the low-level encoder (msgspec would encode a set); values enter through put_value
    from lattice.memory import MemoryStore
    from lattice.nodes import Tx
    with pytest.raises(InvalidValue):
        Tx(MemoryStore()).put_value(value)


# ------------------------------------------------------------ garbage bytes

def _decode_only_invalid_value(data: bytes) -> None:
    try:
        decode(data)
    except InvalidValue:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_decode_garbage_raises_only_invalid_value(data):
    _decode_only_invalid_value(data)


@SETTINGS
@given(values, st.data())
def test_decode_of_mutated_encodings_raises_only_invalid_value(v, data):
    enc = bytearray(encode(v))
    i = data.draw(st.integers(0, len(enc) - 1))
    enc[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(enc)))
    for blob in (bytes(enc), bytes(enc[:cut]), bytes(enc) + b"\x00"):
        _decode_only_invalid_value(blob)


@pytest.mark.parametrize(
    "data",
    [b"\xa1\x80", b"\xda\x00\x01\x80", b"\x81\xa1\x80\x01", b"\x91\xa2\xed\xa0"],
    ids=["fixstr", "str16", "map-key", "nested"],
)
def test_decode_invalid_utf8_raises_invalid_value(data):
    with pytest.raises(InvalidValue):
        decode(data)


def test_decode_deeply_nested_garbage_raises_invalid_value():
    data = b"\x91" * 100_000 + b"\xc0"  # 100k nested one-element arrays
    with pytest.raises(InvalidValue):
        decode(data)


def test_decode_truncated_and_trailing():
    good = encode({"a": [1, 2, 3]})
    with pytest.raises(InvalidValue):
        decode(good[:-1])
    with pytest.raises(InvalidValue):
        decode(good + b"\x01")
    with pytest.raises(InvalidValue):
        decode(b"")
    with pytest.raises(InvalidValue):
        decode(b"\xc1")


# ------------------------------------------------------------------ doctests


@pytest.mark.parametrize("module", [lattice.codec, lattice.digest, lattice.paths], ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.failed == 0
    assert result.attempted > 0
