"""Tests of commits (lattice.commits): the event log of a ref, and that every version stays readable."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.codec import FORMAT_VERSION, Link, encode
from lattice.commits import Commit, find, log, read_commit, write_commit
from lattice.digest import digest
from lattice.errors import InvalidValue, NotFound
from lattice.memory import MemoryStore
from lattice.nodes import BLOB, Tx, map_delete, map_set
from lattice.store import RefUpdate


def _commit_chain(store: MemoryStore, ref: str, states: list, *, op: str = "test:step") -> list[tuple[bytes, Commit]]:
    """Commit each state in turn on ``ref`` (compare-and-swap); return ``[(digest, commit)]`` oldest first."""
    out = []
    head, head_c = None, None
    for i, state in enumerate(states):
        tx = Tx(store)
        root = tx.put_root(state)
        d, c = write_commit(tx, parent=head, parent_commit=head_c, root=root, ts=1_000 + i, op=op,
                            input={"step": i}, caller="tester")
        assert store.commit(dict(tx.objects), [RefUpdate(ref, head, d)]) is True
        out.append((d, c))
        head, head_c = d, c
    return out


def test_write_read_round_trip():
    store = MemoryStore()
    tx = Tx(store)
    root = tx.put_root({"status": "SLEEPING"})
    d, c = write_commit(tx, parent=None, parent_commit=None, root=root, ts=1234, op="agent:create",
                        input={"agentId": "Alice"}, caller="u1")
    assert type(d) is bytes and len(d) == 32
    assert d == digest(tx.objects[d])
    assert c == Commit(None, root, 0, 1234, "agent:create", {"agentId": "Alice"}, "u1", FORMAT_VERSION)
    # readable through the tx buffer before it is committed
    assert read_commit(tx, d) == c
    assert store.commit(dict(tx.objects), [])
    got = read_commit(store, d)
    assert got == c
    assert got.parent is None and got.seq == 0 and got.root == root and got.format == FORMAT_VERSION
    assert Tx(store).materialize(Tx(store).load_root(got.root)) == {"status": "SLEEPING"}


def test_seq_increments_along_the_chain():
    store = MemoryStore()
    chain = _commit_chain(store, "a/Alice", [{"n": i} for i in range(5)])
    for i, (d, c) in enumerate(chain):
        assert c.seq == i
        assert c.ts == 1_000 + i
        assert c.parent == (None if i == 0 else chain[i - 1][0])
        assert read_commit(store, d) == c
    assert store.ref("a/Alice") == chain[-1][0]
    tx = Tx(store)
    d, c = write_commit(tx, parent=chain[-1][0], parent_commit=chain[-1][1], root=chain[-1][1].root, ts=0, op="x",
                        input=None, caller="c")
    assert c.seq == 5


def test_commit_digest_is_deterministic():
    tx1, tx2 = Tx(MemoryStore()), Tx(MemoryStore())
    args = dict(parent=None, parent_commit=None, root=bytes(32), ts=5, op="op", input={"b": 1, "a": [1, 2]}, caller="c")
    assert write_commit(tx1, **args)[0] == write_commit(tx2, **args)[0]
    other = dict(args, ts=6)
    assert write_commit(tx1, **other)[0] != write_commit(tx2, **args)[0]


def test_large_input_is_stored_as_a_shared_blob():
    store = MemoryStore()
    tx = Tx(store)
    body = "a long message body " * 30
    root = tx.put_root({"inbox": [{"message": body}]})
    n_before = len(tx.objects)
    d, c = write_commit(tx, parent=None, parent_commit=None, root=root, ts=1, op="agent:message",
                        input={"message": body}, caller="u")
    assert len(tx.objects) == n_before + 1  # only the commit object: the body blob is shared with the state
    link = c.input["message"]
    assert type(link) is Link and link.code == BLOB
    assert store.commit(dict(tx.objects), [])
    assert Tx(store).materialize(read_commit(store, d).input) == {"message": body}


def test_log_walks_newest_first_with_limit():
    store = MemoryStore()
    chain = _commit_chain(store, "a/Bob", [{"n": i} for i in range(10)])
    head = store.ref("a/Bob")
    entries = list(log(store, head))
    assert [d for d, _ in entries] == [d for d, _ in reversed(chain)]
    assert [c.seq for _, c in entries] == list(range(9, -1, -1))
    assert [c.seq for _, c in log(store, head, limit=3)] == [9, 8, 7]
    assert list(log(store, head, limit=0)) == []
    assert len(list(log(store, head, limit=100))) == 10
    assert list(log(store, None)) == []
    # from the middle of the chain
    assert [c.seq for _, c in log(store, chain[4][0])] == [4, 3, 2, 1, 0]


def test_log_is_lazy():
    store = MemoryStore()
    chain = _commit_chain(store, "a/Lazy", [{"n": i} for i in range(3)])
    it = log(store, chain[-1][0])
    assert next(it)[1].seq == 2


def test_log_with_a_missing_parent_raises_not_found():
    store = MemoryStore()
    tx = Tx(store)
    root = tx.put_root({"x": 1})
    missing = digest(b"never stored")
    ghost = Commit(None, root, 0, 0, "o", None, "c")
    d, _ = write_commit(tx, parent=missing, parent_commit=ghost, root=root, ts=1, op="o", input=None, caller="c")
    assert store.commit(dict(tx.objects), [])
    it = log(store, d)
    assert next(it)[1].seq == 1
    with pytest.raises(NotFound):
        next(it)


def test_read_commit_of_a_missing_digest_raises_not_found():
    with pytest.raises(NotFound):
        read_commit(MemoryStore(), digest(b"nothing"))
    with pytest.raises(NotFound):
        read_commit(Tx(MemoryStore()), digest(b"nothing"))


@pytest.mark.parametrize(
    "obj",
    [
        {"status": "SLEEPING"},
        [1, 2, 3],
        "a string",
        None,
        {"root": bytes(32)},  # has root but no seq
        {"seq": 0},
    ],
    ids=["state-map", "list", "str", "nil", "root-only", "seq-only"],
)
def test_read_commit_of_a_non_commit_object_raises_invalid_value(obj):
    store = MemoryStore()
    tx = Tx(store)
    d = tx.put(encode(obj))
    assert store.commit(dict(tx.objects), [])
    with pytest.raises(InvalidValue):
        read_commit(store, d)


def test_read_commit_of_a_state_root_raises_invalid_value():
    store = MemoryStore()
    tx = Tx(store)
    root = tx.put_root({"status": "RUNNING", "timeline": list(range(50))})
    assert store.commit(dict(tx.objects), [])
    with pytest.raises(InvalidValue):
        read_commit(store, bytes(root.data))


def test_read_commit_of_undecodable_bytes_raises_invalid_value():
    store = MemoryStore()
    data = b"\xc1 not msgpack"
    assert store.commit({digest(data): data}, [])
    with pytest.raises(InvalidValue):
        read_commit(store, digest(data))


def test_read_commit_of_a_map_that_only_looks_like_a_commit():
    store = MemoryStore()
    tx = Tx(store)
    d = tx.put(encode({"root": 1, "seq": 2}))
    assert store.commit(dict(tx.objects), [])
    with pytest.raises(InvalidValue):
        read_commit(store, d)


def test_every_version_stays_readable():
    store = MemoryStore()
    ref = "a/History"
    head, head_c = None, None
    expected: list[tuple[bytes, dict]] = []
    model: dict = {}
    for i in range(50):
        tx = Tx(store)
        # edit the previous version (opened from the store), not a fresh copy
        m = {} if head is None else tx.load_root(read_commit(tx, head).root)
        key = f"k{i % 45}"
        m = map_set(tx, m, key, {"i": i, "text": f"value {i} " * (i % 5 * 10)})
        model[key] = {"i": i, "text": f"value {i} " * (i % 5 * 10)}
        if i % 7 == 6:
            victim = sorted(model)[0]
            m = map_delete(tx, m, victim)
            del model[victim]
        root = tx.put_root(m)
        d, c = write_commit(tx, parent=head, parent_commit=head_c, root=root, ts=i, op="test:edit",
                            input={"i": i}, caller="t")
        assert store.commit(dict(tx.objects), [RefUpdate(ref, head, d)]) is True
        head, head_c = d, c
        expected.append((d, {k: dict(v) for k, v in model.items()}))

    # walk back from the head: each commit's root still materializes to the value it had
    seen = list(log(store, store.ref(ref)))
    assert len(seen) == 50
    for (d, c), (exp_d, exp_value) in zip(seen, reversed(expected)):
        assert d == exp_d
        tx = Tx(store)
        assert tx.materialize(tx.load_root(c.root)) == exp_value
        # and the root stores canonically: the same digest as building the value from scratch
        assert Tx(MemoryStore()).put_root(exp_value) == c.root
        assert Tx(store).materialize(c.input) == {"i": c.seq}

    # a stale compare-and-swap changes nothing
    tx = Tx(store)
    root = tx.put_root({"stale": True})
    d, _ = write_commit(tx, parent=expected[0][0], parent_commit=read_commit(store, expected[0][0]), root=root, ts=99,
                        op="o", input=None, caller="c")
    assert store.commit(dict(tx.objects), [RefUpdate(ref, expected[0][0], d)]) is False
    assert store.ref(ref) == head


def test_old_versions_survive_large_vector_edits():
    store = MemoryStore()
    states = []
    value = {"timeline": []}
    for i in range(6):
        value = {"timeline": value["timeline"] + [{"run": i, "n": k} for k in range(300)], "last": i}
        states.append(value)
    chain = _commit_chain(store, "a/Vec", states)
    for (d, c), st in zip(chain, states):
        tx = Tx(store)
        assert tx.materialize(tx.load_root(read_commit(store, d).root)) == st


class CountingStore:
    def __init__(self, inner):
        self.inner, self.gets = inner, 0

    def get(self, d):
        self.gets += 1
        return self.inner.get(d)


def test_find_reaches_any_version_in_logarithmic_reads():
    store = MemoryStore()
    chain = _commit_chain(store, "a/Long", [{"n": i % 3} for i in range(3000)])
    head = chain[-1][0]
    counting = CountingStore(store)
    worst = 0
    for seq in list(range(0, 3000, 97)) + [0, 1, 2998, 2999]:
        counting.gets = 0
        d, c = find(counting, head, seq)
        assert (d, c) == chain[seq]
        worst = max(worst, counting.gets)
    assert worst <= 40  # ~2 log2(3000); walking parents would take up to 3000
    with pytest.raises(NotFound):
        find(store, head, 3000)
    with pytest.raises(NotFound):
        find(store, head, -1)


def test_jump_pointers_are_stored_only_where_they_skip():
    store = MemoryStore()
    chain = _commit_chain(store, "a/J", [{"n": i} for i in range(64)])
    skips = [c for _, c in chain if c.skip is not None]
    assert 0 < len(skips) < 64
    for c in skips:
        assert c.skipSeq < c.seq - 1 and read_commit(store, c.skip).seq == c.skipSeq


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 200), st.data())
def test_find_agrees_with_walking_parents(n, data):
    """For any chain length and any target, find returns the commit a parent walk reaches, in O(log n) reads."""
    store = MemoryStore()
    chain = _commit_chain(store, "a/P", [None] * n)
    head = chain[-1][0]
    counting = CountingStore(store)
    for seq in data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)) + [0, n - 1]:
        counting.gets = 0
        assert find(counting, head, seq) == chain[seq]
        assert counting.gets <= 2 * math.log2(n + 1) + 6  # a parent walk would take up to n
    for _, c in chain:  # every jump lands on an ancestor
        j, js = c.jump()
        assert js <= max(c.seq - 1, 0) and (j is None or read_commit(store, j).seq == js)


@pytest.mark.parametrize("inputs", [
    [{"step": 0}],
    [{"step": i, "text": "x" * (300 * i)} for i in range(12)],  # skip pointers, and an input stored as a link
    [None, [1, 2, "three"], {"nested": {"a": [b"\x00" * 40]}}],
])
def test_a_written_commit_is_cached_as_read_commit_would_decode_it(inputs):
    """write_commit leaves the commit in the transaction's cache, so the next read of a new head
    needs no store read; what it leaves must equal what read_commit decodes from the store."""
    store = MemoryStore()
    cache: dict = {}
    head, head_c, written = None, None, []
    for i, inp in enumerate(inputs):
        tx = Tx(store, cache)
        d, c = write_commit(tx, parent=head, parent_commit=head_c, root=tx.put_root({"i": i}), ts=i, op="t:step",
                            input=inp, caller="u")
        assert store.commit(dict(tx.objects), [RefUpdate("r", head, d)])
        written.append((d, c))
        head, head_c = d, c
    for d, c in written:
        assert read_commit(Tx(store, cache), d) is c  # served from the cache
        assert read_commit(Tx(store), d) == c  # decoded afresh: the same commit
