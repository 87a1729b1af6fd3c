"""Versions: resolve by seq or id, list, and diff by descending only into changed sub-trees."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lattice.commits import write_commit
from lattice.errors import InvalidValue, NotFound
from lattice.history import diff, resolve, versions
from lattice.memory import MemoryStore
from lattice.nodes import Tx
from lattice.paths import Missing
from lattice.store import RefUpdate


def chain(store: MemoryStore, ref: str, n: int) -> list[bytes]:
    """n commits on ``ref`` (the ref's name is in each commit, so two chains never share one)."""
    head = c = None
    out = []
    for i in range(n):
        tx = Tx(store)
        d, c = write_commit(tx, parent=head, parent_commit=c, root=tx.put_root({"n": i}), ts=i, op="t", input=ref,
                            caller="c")
        assert store.commit(tx.objects, [RefUpdate(ref, head, d)])
        head = d
        out.append(d)
    return out


def test_resolve_by_seq_and_id():
    store = MemoryStore()
    a = chain(store, "a", 50)
    b = chain(store, "b", 5)
    assert resolve(store, a[-1], 7)[0] == a[7]
    assert resolve(store, a[-1], a[7].hex())[1].seq == 7
    assert resolve(store, a[-1], "0x" + a[7].hex().upper())[0] == a[7]
    with pytest.raises(NotFound):
        resolve(store, a[-1], 50)
    with pytest.raises(NotFound):
        resolve(store, a[-1], b[2].hex())  # a version of another chain
    with pytest.raises(NotFound):
        resolve(store, a[10], a[20].hex())  # after the given head
    with pytest.raises(NotFound):
        resolve(store, a[-1], "00" * 32)  # no such commit
    for bad in ("xyz", "12", 1.5, None, True):
        with pytest.raises(InvalidValue):
            resolve(store, a[-1], bad)


def test_versions_page_newest_first():
    store = MemoryStore()
    a = chain(store, "a", 120)
    page = versions(store, a[-1], 50)
    assert [c.seq for _, c in page] == list(range(119, 69, -1))
    page2 = versions(store, a[-1], 50, before=70)
    assert [c.seq for _, c in page2] == list(range(69, 19, -1))
    assert [c.seq for _, c in versions(store, a[-1], 50, before=3)] == [2, 1, 0]
    assert versions(store, a[-1], 50, before=0) == []
    assert [d for d, _ in versions(store, a[-1], 3, before=1000)] == [a[119], a[118], a[117]]


# -- diff ------------------------------------------------------------------------------

def naive(a, b, path=""):
    """Reference diff on plain values: the semantics lattice.history.diff must have."""
    def j(p, s):
        return f"{p}/{s}" if p else str(s)
    if a is Missing and b is Missing:
        return []
    if a is Missing:
        return [(path, "added")]
    if b is Missing:
        return [(path, "removed")]
    if type(a) is dict and type(b) is dict:
        return [c for k in sorted(a.keys() | b.keys()) for c in naive(a.get(k, Missing), b.get(k, Missing), j(path, k))]
    if type(a) is list and type(b) is list:
        n = max(len(a), len(b))
        return [c for i in range(n) for c in naive(a[i] if i < len(a) else Missing, b[i] if i < len(b) else Missing,
                                                  j(path, i))]
    if type(a) is type(b) and a == b and repr(a) == repr(b):
        return []
    return [(path, "changed")]


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, -0.0, 0.0]),
                    st.text(max_size=3), st.text(alphabet="ab", min_size=300, max_size=301))
values = st.recursive(scalars, lambda ch: st.lists(ch, max_size=40) | st.dictionaries(
    st.sampled_from([f"k{i}" for i in range(40)]), ch, max_size=40), max_leaves=60)


def mutate(v, rnd: random.Random):
    if type(v) is dict and v and rnd.random() < 0.7:
        k = rnd.choice(sorted(v))
        out = dict(v)
        r = rnd.random()
        if r < 0.3:
            del out[k]
        elif r < 0.6:
            out[k] = mutate(v[k], rnd)
        else:
            out[f"new{rnd.randint(0, 9)}"] = rnd.randint(0, 9)
        return out
    if type(v) is list and v and rnd.random() < 0.7:
        out = list(v)
        r = rnd.random()
        if r < 0.3:
            out.append(rnd.randint(0, 9))
        elif r < 0.5:
            out.pop()
        else:
            i = rnd.randrange(len(out))
            out[i] = mutate(out[i], rnd)
        return out
    return rnd.choice([1, "x", None, [1], {"z": 2}, 1.0, True])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.integers(0, 10 ** 6), st.integers(1, 4))
def test_diff_agrees_with_a_naive_diff(a, seed, edits):
    rnd = random.Random(seed)
    b = a
    for _ in range(edits):
        b = mutate(b, rnd)
    tx = Tx(MemoryStore())
    sa, sb = tx.put_value(a), tx.put_value(b)
    changes, truncated = diff(tx, sa, sb, limit=10 ** 6, value_max=10 ** 9)
    assert not truncated
    assert [(c["path"], c["change"]) for c in changes] == naive(a, b)
    for c in changes:
        if c["change"] != "added":
            assert "before" in c
        if c["change"] != "removed":
            assert "after" in c
    assert diff(tx, sa, sa) == ([], False)


def test_diff_of_large_vectors_reads_only_the_changed_path():
    store = MemoryStore()
    tx = Tx(store)
    items = [{"i": i} for i in range(100_000)]
    a = tx.put_value(items)
    b = tx.put_value(items[:77_777] + [{"i": "changed"}] + items[77_778:] + [{"i": "new"}])
    store.commit(tx.objects, [])

    class Counting:
        gets = 0

        def get(self, d):
            Counting.gets += 1
            return store.get(d)
    tx2 = Tx(Counting())
    changes, _ = diff(tx2, a, b)
    assert [(c["path"], c["change"]) for c in changes] == [("77777/i", "changed"), ("100000", "added")]
    # two root-to-leaf paths in each vector (the VEC object, 5 levels of 8-link nodes, a leaf),
    # not 12,500 leaves
    assert Counting.gets <= 4 * 7


def test_diff_limits_and_bounds_values():
    tx = Tx(MemoryStore())
    a = tx.put_value({f"k{i}": i for i in range(100)})
    b = tx.put_value({f"k{i}": i + 1 for i in range(100)})
    changes, truncated = diff(tx, a, b, limit=10)
    assert truncated and len(changes) == 10
    big = tx.put_value("x" * 5000)
    (c,), _ = diff(tx, Missing, big)
    assert c == {"path": "", "change": "added", "afterSize": 5002}
