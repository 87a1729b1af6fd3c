"""Property and model tests of the Merkle collections (lattice.nodes)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from lattice.codec import Link, decode, encode
from lattice.errors import InvalidValue
from lattice.memory import MemoryStore
from lattice.nodes import (
    BLOB,
    BLOB_MIN,
    FANOUT,
    MAP,
    NODE,
    NODE_MIN,
    VEC,
    HMap,
    Tx,
    Vec,
    map_delete,
    map_get,
    map_keys,
    map_len,
    map_set,
    seq_append,
    seq_get,
    seq_iter,
    seq_len,
    seq_set,
)
from tests.lattice.helpers import INT64, scalar_strategy, strict_eq, value_strategy

scalars = scalar_strategy()
values = value_strategy(width=40, leaves=60, small=12, keys=6)

# items for collections: cheap, but some are blobs and some are small containers
items = (
    st.integers(-1000, 1000)
    | st.text(max_size=6)
    | st.text(alphabet="xyz", min_size=300, max_size=305)
    | st.dictionaries(st.sampled_from("abc"), st.integers(0, 9), max_size=3)
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def persist(tx: Tx, store: MemoryStore, v):
    """Store ``v`` (opened form) and return ``(fresh tx, reopened v, stored form)``."""
    stored = tx.put_value(v)
    assert store.commit(dict(tx.objects), []) is True
    tx2 = Tx(store)
    return tx2, tx2.open(stored), stored


# ------------------------------------------------- canonical form: maps


@FAST
@given(st.data())
def test_map_digest_is_independent_of_edit_order(data):
    keys = data.draw(st.lists(st.text(max_size=6), unique=True, max_size=200), label="keys")
    final = {k: data.draw(items | INT64, label=f"v[{k!r}]") for k in keys}
    order_a = data.draw(st.permutations(keys), label="order_a")
    order_b = data.draw(st.permutations(keys), label="order_b")
    extra = data.draw(st.lists(st.text(min_size=7, max_size=9), unique=True, max_size=60), label="transient keys")
    rnd = data.draw(st.randoms(use_true_random=False), label="rnd")

    tx = Tx(MemoryStore())
    plain = tx.put_value(dict(final))

    # order A: straight inserts
    m = {}
    for k in order_a:
        m = map_set(tx, m, k, final[k])
    assert tx.put_value(m) == plain

    # order B: with transient keys, overwritten values and deletions in between
    m = {}
    pending = list(order_b)
    transient = list(extra)
    present_transient: list[str] = []
    while pending or transient or present_transient:
        r = rnd.random()
        if pending and r < 0.5:
            k = pending.pop()
            if rnd.random() < 0.2:
                m = map_set(tx, m, k, "placeholder")  # overwritten below
            m = map_set(tx, m, k, final[k])
        elif transient and r < 0.75:
            k = transient.pop()
            m = map_set(tx, m, k, rnd.randint(0, 9))
            present_transient.append(k)
        elif present_transient:
            k = present_transient.pop(rnd.randrange(len(present_transient)))
            m = map_delete(tx, m, k)
        elif pending:
            k = pending.pop()
            m = map_set(tx, m, k, final[k])
        else:
            k = transient.pop()
            m = map_set(tx, m, k, 0)
            present_transient.append(k)
    assert map_len(m) == len(final)
    assert tx.put_value(m) == plain
    assert tx.materialize(tx.put_value(m)) == final


def test_map_shrinking_back_below_fanout_is_canonical():
    tx = Tx(MemoryStore())
    keys = [f"k{i}" for i in range(200)]
    m = {}
    for k in keys:
        m = map_set(tx, m, k, k.upper())
    assert type(m) is HMap
    for k in keys[10:]:
        m = map_delete(tx, m, k)
    survivors = {k: k.upper() for k in keys[:10]}
    assert tx.put_value(m) == tx.put_value(survivors)
    assert tx.materialize(m) == survivors


# ---------------------------------------------- canonical form: vectors

VEC_SIZES = [0, 1, 31, 32, 33, 63, 64, 65, 1023, 1024, 1025, 1056, 1057, 1088, 1089, 2080, 32800, 32801]


def _items_for(n: int) -> list:
    if n > 3000:
        return list(range(n))
    out = []
    for i in range(n):
        if i % 97 == 5:
            out.append(f"long-{i}-" + "x" * 300)  # a blob
        elif i % 13 == 0:
            out.append({"i": i})
        else:
            out.append(i)
    return out


def _check_vector_forms(plain_items: list, rnd: random.Random) -> None:
    tx = Tx(MemoryStore())
    expected = tx.put_value(list(plain_items))

    # one seq_append at a time
    v = []
    for x in plain_items:
        v = seq_append(tx, v, [x])
    assert seq_len(v) == len(plain_items)
    assert tx.put_value(v) == expected

    # random chunks
    v, i = [], 0
    while i < len(plain_items):
        k = rnd.randint(1, 70)
        v = seq_append(tx, v, plain_items[i:i + k])
        i += k
    assert tx.put_value(v) == expected

    # Vec.build of normalized items
    built = Vec.build(tx, [tx.put_value(x) for x in plain_items])
    assert len(built) == len(plain_items)
    assert tx.put_value(built) == expected

    assert tx.materialize(expected) == plain_items
    if len(plain_items) > FANOUT:
        assert type(expected) is Link and expected.code == VEC
    else:
        assert type(expected) is not Link or expected.code == NODE


@pytest.mark.parametrize("n", VEC_SIZES)
def test_vector_digest_is_independent_of_construction(n):
    _check_vector_forms(_items_for(n), random.Random(n))


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 3000), st.randoms(use_true_random=False))
def test_vector_digest_random_sizes(n, rnd):
    _check_vector_forms(_items_for(n), rnd)


@settings(max_examples=15, deadline=None)
@given(st.integers(33, 1500), st.data())
def test_vector_set_then_restore_gives_original_digest(n, data):
    tx = Tx(MemoryStore())
    base = list(range(n))
    expected = tx.put_value(base)
    v = tx.open(expected)
    idx = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10))
    for i in idx:
        v = seq_set(tx, v, i, "changed")
    assert tx.put_value(v) != expected
    for i in idx:
        v = seq_set(tx, v, i, base[i])
    assert tx.put_value(v) == expected


# ---------------------------------------------------- model-based: Vec


class VecMachine(RuleBasedStateMachine):
    """A vector (plain list or Vec handle) behaves like a Python list, across persistence."""

    @initialize(n=st.integers(0, 1200))
    def init(self, n):
        self.store = MemoryStore()
        self.tx = Tx(self.store)
        self.model = list(range(n))
        self.v = seq_append(self.tx, [], list(self.model))

    @rule(x=items)
    def append(self, x):
        self.v = seq_append(self.tx, self.v, [x])
        self.model.append(x)

    @rule(n=st.integers(1, 100))
    def extend(self, n):
        new = [f"e{len(self.model) + k}" for k in range(n)]
        self.v = seq_append(self.tx, self.v, new)
        self.model.extend(new)

    @precondition(lambda self: self.model)
    @rule(i=st.integers(0, 10**6), x=items)
    def set(self, i, x):
        i %= len(self.model)
        self.v = seq_set(self.tx, self.v, i, x)
        self.model[i] = x

    @rule(i=st.integers(0, 10**6))
    def get(self, i):
        if not self.model:
            with pytest.raises(IndexError):
                seq_get(self.tx, self.v, 0)
            return
        i %= len(self.model) + 1
        if i == len(self.model):
            with pytest.raises(IndexError):
                seq_get(self.tx, self.v, i)
        else:
            assert self.tx.materialize(seq_get(self.tx, self.v, i)) == self.model[i]
            if type(self.v) is Vec:
                assert self.tx.materialize(self.v.get_raw(i)) == self.model[i]

    @rule(start=st.integers(0, 1400), length=st.integers(0, 200))
    def iter_slice(self, start, length):
        start = min(start, len(self.model) + 2)
        stop = start + length
        expected = self.model[start:stop]
        got = [self.tx.materialize(x) for x in seq_iter(self.tx, self.v, start, stop)]
        assert got == expected
        if type(self.v) is Vec:
            assert [self.tx.materialize(x) for x in self.v.iter_raw(start, stop)] == expected
            assert [self.tx.materialize(x) for x in self.v.iter_raw(start)] == self.model[start:]

    @rule()
    def reopen(self):
        self.tx, self.v, _ = persist(self.tx, self.store, self.v)

    @rule()
    def canonical(self):
        assert self.tx.put_value(self.v) == self.tx.put_value(list(self.model))

    @invariant()
    def length(self):
        assert seq_len(self.v) == len(self.model)
        if len(self.model) > FANOUT:
            assert type(self.v) is Vec

    def teardown(self):
        if hasattr(self, "tx"):
            assert self.tx.materialize(self.v) == self.model
            tx, v, _ = persist(self.tx, self.store, self.v)
            assert tx.materialize(v) == self.model


VecMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestVecModel = VecMachine.TestCase


# ---------------------------------------------------- model-based: HMap

KEY_POOL = [f"key{i}" for i in range(90)] + ["", "é", "a/b", "0"]


class MapMachine(RuleBasedStateMachine):
    """A map (plain dict or HMap handle) behaves like a dict, across persistence."""

    @initialize(n=st.integers(0, 80))
    def init(self, n):
        self.store = MemoryStore()
        self.tx = Tx(self.store)
        self.m = {}
        self.model = {}
        for k in KEY_POOL[:n]:
            self.m = map_set(self.tx, self.m, k, len(k))
            self.model[k] = len(k)

    @rule(k=st.sampled_from(KEY_POOL), x=items)
    def set(self, k, x):
        self.m = map_set(self.tx, self.m, k, x)
        self.model[k] = x

    @rule(base=st.integers(0, 90), n=st.integers(1, 40))
    def bulk_set(self, base, n):
        for k in KEY_POOL[base:base + n]:
            self.m = map_set(self.tx, self.m, k, k * 2)
            self.model[k] = k * 2

    @rule(k=st.sampled_from(KEY_POOL))
    def delete(self, k):
        if k in self.model:
            self.m = map_delete(self.tx, self.m, k)
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                map_delete(self.tx, self.m, k)

    @rule(n=st.integers(1, 40))
    def bulk_delete(self, n):
        for k in sorted(self.model)[:n]:
            self.m = map_delete(self.tx, self.m, k)
            del self.model[k]

    @rule(k=st.sampled_from(KEY_POOL + ["absent"]))
    def get(self, k):
        if k in self.model:
            assert self.tx.materialize(map_get(self.tx, self.m, k)) == self.model[k]
        else:
            with pytest.raises(KeyError):
                map_get(self.tx, self.m, k)
        if type(self.m) is HMap:
            assert (k in dict(self.m.items_raw())) == (k in self.model)

    @rule()
    def reopen(self):
        self.tx, self.m, _ = persist(self.tx, self.store, self.m)

    @rule()
    def canonical(self):
        assert self.tx.put_value(self.m) == self.tx.put_value(dict(self.model))

    @invariant()
    def keys_and_len(self):
        assert map_len(self.m) == len(self.model)
        assert map_keys(self.m) == sorted(self.model)
        if len(self.model) > FANOUT:
            assert type(self.m) is HMap

    def teardown(self):
        if hasattr(self, "tx"):
            assert self.tx.materialize(self.m) == self.model
            tx, m, _ = persist(self.tx, self.store, self.m)
            assert tx.materialize(m) == self.model


MapMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestMapModel = MapMachine.TestCase


# ---------------------------------------------------- structural sharing


def _stored_vector(n: int):
    store = MemoryStore()
    tx = Tx(store)
    link = tx.put_value(list(range(n)))
    assert store.commit(dict(tx.objects), [])
    return store, link


@pytest.mark.parametrize("n", [10_000, 10_016, 8 ** 5 + 8])  # tail partly full, tail full, root overflow
def test_append_to_large_vector_buffers_few_objects(n):
    store, link = _stored_vector(n)
    assert len(store) > n // 32
    tx = Tx(store)
    v = tx.open(link)
    assert type(v) is Vec
    v2 = seq_append(tx, v, ["new"])
    new_link = tx.put_value(v2)
    # the VEC object, the full tail as a leaf and the path above it: 4 nodes of 8 links, or 5 when
    # the root overflows (8 ** 5 + 8: the tree is full, the tail too)
    assert len(tx.objects) <= 7, f"append buffered {len(tx.objects)} objects"
    assert new_link != link
    assert seq_get(tx, v2, n) == "new" and seq_get(tx, v2, n - 1) == n - 1
    assert seq_len(tx.open(link)) == n  # the old version is untouched


@pytest.mark.parametrize("i", [0, 5_000, 9_983, 9_999])  # first leaf, middle, last tree item, tail
def test_set_in_large_vector_buffers_few_objects(i):
    store, link = _stored_vector(10_000)
    tx = Tx(store)
    v = seq_set(tx, tx.open(link), i, "changed")
    tx.put_value(v)
    assert len(tx.objects) <= 6, f"set buffered {len(tx.objects)} objects"
    assert seq_get(tx, v, i) == "changed"
    assert seq_get(tx, tx.open(link), i) == i


def test_edit_in_large_map_buffers_few_objects():
    store = MemoryStore()
    tx = Tx(store)
    link = tx.put_value({f"k{i}": i for i in range(10_000)})
    assert type(link) is Link and link.code == MAP
    assert store.commit(dict(tx.objects), [])
    for op in ("set-existing", "set-new", "delete"):
        tx = Tx(store)
        m = tx.open(link)
        if op == "set-existing":
            m = map_set(tx, m, "k1234", "changed")
        elif op == "set-new":
            m = map_set(tx, m, "brand-new", 1)
        else:
            m = map_delete(tx, m, "k4321")
        tx.put_value(m)
        assert len(tx.objects) <= 6, f"{op} buffered {len(tx.objects)} objects"


def test_large_string_used_twice_is_stored_once():
    tx = Tx(MemoryStore())
    s = "shared message body " * 30
    assert len(s) > 300
    stored = tx.put_value({"history": [{"role": "user", "content": s}], "timeline": [{"messages": [s]}]})
    blobs = [d for d, data in tx.objects.items() if decode(data) == s]
    assert len(blobs) == 1
    assert tx.objects[blobs[0]] == encode(s)
    assert len(tx.objects) == 1  # the containers are small enough to stay inline
    h = stored["history"][0]["content"]
    t = stored["timeline"][0]["messages"][0]
    assert type(h) is Link and h.code == BLOB and h == t


def test_thresholds():
    tx = Tx(MemoryStore())
    # the largest inline string and the smallest blob
    small = "a" * (BLOB_MIN - 3)  # str8 header: 2 bytes -> encoding of BLOB_MIN - 1
    assert len(encode(small)) <= BLOB_MIN and tx.put_value(small) == small
    big = "a" * (BLOB_MIN + 1)
    link = tx.put_value(big)
    assert type(link) is Link and link.code == BLOB
    assert tx.put_value(b"b" * (BLOB_MIN - 3)) == b"b" * (BLOB_MIN - 3)
    assert tx.put_value(b"b" * BLOB_MIN).code == BLOB
    # multi-byte characters count in bytes, not characters
    wide = "é" * 200  # 400 bytes encoded
    assert tx.put_value(wide).code == BLOB
    # containers
    assert tx.put_value({"a": 1}) == {"a": 1}
    node = tx.put_value({"k": "v" * (NODE_MIN + 10)})
    assert type(node) is Link and node.code == NODE
    assert tx.put_value(list(range(FANOUT))) == list(range(FANOUT))  # 32 small ints stay inline
    assert tx.put_value(list(range(FANOUT + 1))).code == VEC
    assert tx.put_value({str(i): 0 for i in range(FANOUT + 1)}).code == MAP


# --------------------------------------------------------- materialize


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values)
def test_materialize_put_value_round_trip(v):
    store = MemoryStore()
    tx = Tx(store)
    stored = tx.put_value(v)
    assert strict_eq(tx.materialize(stored), v)
    # the stored form encodes, and survives a store round trip with a fresh Tx
    encode(stored)
    assert store.commit(dict(tx.objects), [])
    tx2 = Tx(store)
    assert strict_eq(tx2.materialize(stored), v)
    assert strict_eq(tx2.materialize(tx2.open(stored)), v)
    # put_value is idempotent on stored form and deterministic
    assert tx2.put_value(stored) == stored
    assert Tx(MemoryStore()).put_value(v) == stored


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.dictionaries(st.text(max_size=6), values, max_size=40))
def test_put_root_load_root_round_trip(v):
    store = MemoryStore()
    tx = Tx(store)
    d = tx.put_root(v)
    assert store.commit(dict(tx.objects), [])
    tx2 = Tx(store)
    assert tx2.materialize(tx2.load_root(d)) == v


@pytest.mark.parametrize(
    "value",
    [["x" * 300], [list(range(40))], [{str(i): i for i in range(40)}]],
    ids=["list-of-one-blob", "list-of-one-vector", "list-of-one-map"],
)
def test_put_root_load_root_one_item_list(value):
    store = MemoryStore()
    tx = Tx(store)
    d = tx.put_root(value)
    assert Tx(store).materialize(tx.load_root(d)) == value


@pytest.mark.parametrize(
    "value",
    [
        {1: "a"},
        {None: 1},
        {"ok": {b"k": 1}},
        [{"a": 1}, {2: 3}],
        {**{str(i): i for i in range(40)}, 7: "int key in a large map"},
        {1, 2},
        object(),
        {"a": frozenset()},
    ],
    ids=["int-key", "none-key", "nested-bytes-key", "key-in-list", "large-map-int-key", "set", "object", "nested-frozenset"],
)
def test_put_value_rejects_values_outside_the_model(value):
    with pytest.raises(InvalidValue):
        Tx(MemoryStore()).put_value(value)


@pytest.mark.parametrize("n", [0, 5, 40])
def test_map_set_normalizes_large_values(n):
    # on a plain dict or a large handle, a large value reads back and stores as a blob
    tx = Tx(MemoryStore())
    m = {f"k{i}": i for i in range(n)}
    m = tx.open(tx.put_value(m))
    m = map_set(tx, m, "big", "y" * 400)
    assert map_get(tx, m, "big") == "y" * 400
    assert tx.materialize(tx.put_value(m))["big"] == "y" * 400


# ------------------------------------------------- open / put_value identity


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values)
def test_put_value_of_an_opened_value_is_its_stored_form(v):
    store = MemoryStore()
    tx = Tx(store)
    stored = tx.put_value(v)
    assert store.commit(dict(tx.objects), [])
    for t in (tx, Tx(store)):
        assert t.put_value(t.open(stored)) == stored


@pytest.mark.parametrize(
    "make",
    [
        lambda tx: {"a": list(range(40))},  # an opened (plain) list of more than 32 items
        lambda tx: {"s": "x" * 300},  # an opened blob
        lambda tx: {"v": tx.open(tx.put_value(list(range(50))))},  # a Vec handle
        lambda tx: {"outer": {"m": tx.open(tx.put_value({str(i): i for i in range(40)}))}},  # a nested HMap handle
    ],
    ids=["plain-large-list", "large-string", "vec-handle", "nested-hmap-handle"],
)
def test_put_value_of_a_reopened_opened_value(make):
    tx = Tx(MemoryStore())
    opened = make(tx)
    expected = tx.put_value(opened)
    again = tx.open(opened)  # open() of a value that is already open (paths.write_path does this)
    assert tx.materialize(again) == tx.materialize(opened)
    assert tx.put_value(again) == expected
