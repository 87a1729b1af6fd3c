"""Tests of lattice paths: parsing, path-local reads, and writes/deletes against a dict model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lattice.errors import InvalidPath
from lattice.memory import MemoryStore
from lattice.nodes import HMap, Tx, Vec
from lattice.paths import (
    MAX_DEPTH,
    NAMESPACES,
    MAX_SEGMENT,
    Missing,
    delete_path,
    parse_path,
    read_path,
    write_path,
)

# ---------------------------------------------------------------- parse_path


@pytest.mark.parametrize(
    "path, expected",
    [
        ("g/Alice", ("g", ["Alice"])),
        ("g/Alice/timeline/3", ("g", ["Alice", "timeline", "3"])),
        ("w", ("w", [])),
        ("j/0123abcd", ("j", ["0123abcd"])),
        ("w/ünïcödé/ 空 白 /x.y-z_", ("w", ["ünïcödé", " 空 白 ", "x.y-z_"])),
        ("w/" + "a" * MAX_SEGMENT, ("w", ["a" * MAX_SEGMENT])),
        ("w" + "/s" * (MAX_DEPTH - 1), ("w", ["s"] * (MAX_DEPTH - 1))),
    ],
    ids=["agent", "deep", "namespace-only", "job", "unicode", "longest-segment", "most-segments"],
)
def test_parse_path_accepts_valid_paths(path, expected):
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "//",
        "g//a",
        "a/b",
        "x",
        "G/Alice",
        "/g/Alice",
        "g/Alice/",
        "g/",
        "w/" + "a" * (MAX_SEGMENT + 1),
        "w" + "/s" * MAX_DEPTH,
        "g/a\x00b",
        "g/a\nb",
        "g/\t",
        "g/a\x1f",
        None,
        42,
        b"g/Alice",
    ],
    ids=[
        "empty", "slash", "double-slash-only", "double-slash", "unknown-namespace", "bare-unknown", "case",
        "leading-slash", "trailing-slash", "namespace-trailing-slash", "segment-too-long", "too-many-segments",
        "nul", "newline", "tab", "unit-separator", "none", "int", "bytes",
    ],
)
def test_parse_path_rejects_garbage(path):
    with pytest.raises(InvalidPath) as e:
        parse_path(path)
    assert e.value.code == "invalid_path"
    assert e.value.message


@pytest.mark.parametrize("path", ["g/a\x7fb", "g/a\x85", "g/\x9b1m"], ids=["DEL", "NEL", "CSI"])
def test_parse_path_rejects_other_control_characters(path):
    with pytest.raises(InvalidPath):
        parse_path(path)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet="gwj/ab\x00\x7f", max_size=30))
def test_parse_path_raises_only_invalid_path(text):
    try:
        ns, segs = parse_path(text)
    except InvalidPath:
        return
    assert ns in NAMESPACES
    assert "/".join([ns, *segs]) == text
    assert all(s and len(s) <= MAX_SEGMENT and all(ord(c) >= 32 for c in s) for s in segs)
    assert len(segs) < MAX_DEPTH


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from("gwj"),
    st.lists(st.text(st.characters(min_codepoint=32, exclude_characters="/", exclude_categories=("Cc", "Cs")), min_size=1, max_size=20), max_size=10),
)
def test_parse_path_accepts_generated_valid_paths(ns, segs):
    assert parse_path("/".join([ns, *segs])) == (ns, segs)


# ------------------------------------------------------- reads touch the path only


class CountingStore:
    """Wraps a store and counts object reads."""

    def __init__(self, inner):
        self.inner = inner
        self.gets = 0

    def get(self, d):
        self.gets += 1
        return self.inner.get(d)

    def has(self, d):
        return self.inner.has(d)


def _store_root(value) -> tuple[MemoryStore, bytes]:
    store = MemoryStore()
    tx = Tx(store)
    root = tx.put_root(value)
    assert store.commit(dict(tx.objects), [])
    return store, root


@pytest.fixture(scope="module")
def big_vector_root():
    n = 100_000
    return n, _store_root({"items": [{"i": i, "name": f"n{i}"} for i in range(n)]})


@pytest.fixture(scope="module")
def big_map_root():
    n = 5_000
    return n, _store_root({"index": {f"key-{i}": {"i": i, "tag": "t" * (i % 7)} for i in range(n)}})


def test_read_path_in_large_vector_reads_only_the_path(big_vector_root):
    n, (store, root) = big_vector_root
    assert len(store) > n // 32  # the vector is really spread over many objects
    counting = CountingStore(store)
    tx = Tx(counting)
    value = tx.raw_root(root)
    got = read_path(tx, value, ["items", "77777", "name"])
    assert got == "n77777"
    # the record, the VEC object, 5 levels of 8-link nodes (12,500 leaves), the leaf
    assert counting.gets <= 8, f"{counting.gets} object reads for one path"
    # and the other edge cases, still path-local
    counting.gets = 0
    tx = Tx(counting)
    value = tx.raw_root(root)
    assert read_path(tx, value, ["items", str(n - 1), "i"]) == n - 1  # in the tail
    assert read_path(tx, value, ["items", "0", "i"]) == 0
    assert read_path(tx, value, ["items", str(n)]) is Missing
    assert read_path(tx, value, ["items", "77777", "absent"]) is Missing
    assert read_path(tx, value, ["items", "-1"]) is Missing
    assert read_path(tx, value, ["items", "077"]) is Missing
    assert counting.gets <= 16


def test_read_path_via_load_root_reads_only_the_path(big_vector_root):
    n, (store, root) = big_vector_root
    counting = CountingStore(store)
    tx = Tx(counting)
    rec = tx.load_root(root)
    assert type(rec["items"]) is Vec
    assert read_path(tx, rec, ["items", "77777", "i"]) == 77777
    assert counting.gets <= 8  # as above


def test_read_path_in_large_map_reads_only_the_path(big_map_root):
    n, (store, root) = big_map_root
    counting = CountingStore(store)
    tx = Tx(counting)
    value = tx.raw_root(root)
    assert read_path(tx, value, ["index", "key-4321", "i"]) == 4321
    assert counting.gets <= 6, f"{counting.gets} object reads for one path"
    counting.gets = 0
    assert read_path(tx, value, ["index", "key-absent", "i"]) is Missing
    assert read_path(tx, value, ["index", "key-17", "tag"]) == "ttt"
    assert counting.gets <= 8


def test_write_path_in_large_vector_buffers_few_objects(big_vector_root):
    n, (store, root) = big_vector_root
    counting = CountingStore(store)
    tx = Tx(counting)
    value = tx.raw_root(root)
    new = write_path(tx, value, ["items", "77777", "name"], "renamed")
    new = write_path(tx, new, ["items", str(n)], {"i": n})
    new_root = tx.put_root(new)
    assert counting.gets <= 16  # two paths of 8 (see the read test)
    assert len(tx.objects) <= 16
    tx2 = Tx(_Overlay(store, tx.objects))
    v2 = tx2.raw_root(new_root)
    assert read_path(tx2, v2, ["items", "77777", "name"]) == "renamed"
    assert read_path(tx2, v2, ["items", str(n), "i"]) == n
    assert read_path(tx2, v2, ["items", "77776", "name"]) == "n77776"


class _Overlay:
    def __init__(self, store, objects):
        self.store, self.objects = store, objects

    def get(self, d):
        return self.objects[d] if d in self.objects else self.store.get(d)


# ------------------------------------------------------ documented errors


def test_write_below_a_scalar_raises_invalid_path():
    tx = Tx(MemoryStore())
    for scalar in (1, "text", "x" * 400, True, 2.5, b"raw"):
        with pytest.raises(InvalidPath):
            write_path(tx, {"a": scalar}, ["a", "b"], 1)
        with pytest.raises(InvalidPath):
            write_path(tx, tx.put_value({"a": scalar}), ["a", "b", "c"], 1)


def test_write_out_of_range_list_position_raises_invalid_path():
    tx = Tx(MemoryStore())
    for lst in ([], [1, 2, 3], list(range(100))):
        for value in (lst, tx.put_value(lst), tx.open(tx.put_value(lst))):
            n = len(lst)
            with pytest.raises(InvalidPath):
                write_path(tx, {"l": value}, ["l", str(n + 1)], 0)
            with pytest.raises(InvalidPath):
                write_path(tx, {"l": value}, ["l", "-1"], 0)
            with pytest.raises(InvalidPath):
                write_path(tx, {"l": value}, ["l", "key"], 0)
            with pytest.raises(InvalidPath):
                write_path(tx, {"l": value}, ["l", "01"], 0)
            # position == length appends
            out = write_path(tx, {"l": value}, ["l", str(n)], "end")
            assert tx.materialize(out) == {"l": lst + ["end"]}


def test_append_to_a_non_list_raises_invalid_path():
    tx = Tx(MemoryStore())
    for target in ({"k": 1}, 5, "s"):
        with pytest.raises(InvalidPath):
            write_path(tx, {"a": target}, ["a"], 1, append=True)
    assert write_path(tx, {}, ["new"], 1, append=True) == {"new": [1]}
    assert write_path(tx, {"n": None}, ["n"], 1, append=True) == {"n": [1]}


def test_missing_maps_are_created():
    tx = Tx(MemoryStore())
    assert write_path(tx, Missing, ["a", "b", "c"], 1) == {"a": {"b": {"c": 1}}}
    assert write_path(tx, {"a": None}, ["a", "b"], 1) == {"a": {"b": 1}}


def test_delete_path_reports_whether_it_existed():
    tx = Tx(MemoryStore())
    v = {"a": {"b": [1, {"c": 2}]}, "s": 3}
    assert delete_path(tx, v, ["zz"]) == (v, False)
    assert delete_path(tx, v, ["s", "x"]) == (v, False)
    assert delete_path(tx, v, ["a", "b", "5"]) == (v, False)
    assert delete_path(tx, v, ["a", "b", "x"]) == (v, False)
    out, found = delete_path(tx, v, ["a", "b", "1", "c"])
    assert found and tx.materialize(out) == {"a": {"b": [1, {}]}, "s": 3}
    out, found = delete_path(tx, v, ["a", "b", "0"])
    assert found and tx.materialize(out) == {"a": {"b": [{"c": 2}]}, "s": 3}
    assert v == {"a": {"b": [1, {"c": 2}]}, "s": 3}  # the input is not mutated


@pytest.mark.parametrize("op", ["read", "write", "delete"])
def test_superscript_digit_segment_on_a_list(op):
    tx = Tx(MemoryStore())
    v = {"l": [1, 2, 3]}
    if op == "read":
        assert read_path(tx, v, ["l", "²"]) is Missing
    elif op == "write":
        with pytest.raises(InvalidPath):
            write_path(tx, v, ["l", "²"], 0)
    else:
        assert delete_path(tx, v, ["l", "²"]) == (v, False)


def test_non_ascii_digits_do_not_index_lists():
    tx = Tx(MemoryStore())
    assert read_path(tx, [10, 20, 30, 40], ["٣"]) is Missing


# ------------------------------------------------ writes/deletes vs a dict model


class ModelError(Exception):
    pass


def _m_index(seg: str):
    if seg.isascii() and seg.isdigit() and (seg == "0" or seg[0] != "0"):
        return int(seg)
    return None


def m_read(v, segs):
    for s in segs:
        if type(v) is dict:
            if s not in v:
                return Missing
            v = v[s]
        elif type(v) is list:
            i = _m_index(s)
            if i is None or i >= len(v):
                return Missing
            v = v[i]
        else:
            return Missing
    return v


def m_write(cur, segs, new, append):
    if not segs:
        if append:
            if cur is Missing or cur is None:
                return [new]
            if type(cur) is not list:
                raise ModelError
            return cur + [new]
        return new
    s, rest = segs[0], segs[1:]
    if cur is Missing or cur is None:
        cur = {}
    if type(cur) is dict:
        out = dict(cur)
        out[s] = m_write(cur.get(s, Missing), rest, new, append)
        return out
    if type(cur) is list:
        i = _m_index(s)
        if i is None or i > len(cur):
            raise ModelError
        if i == len(cur):
            return cur + [m_write(Missing, rest, new, append)]
        out = list(cur)
        out[i] = m_write(cur[i], rest, new, append)
        return out
    raise ModelError


def m_delete(cur, segs):
    s, rest = segs[0], segs[1:]
    if type(cur) is dict:
        if s not in cur:
            return cur, False
        if not rest:
            return {k: v for k, v in cur.items() if k != s}, True
        child, found = m_delete(cur[s], rest)
        if not found:
            return cur, False
        out = dict(cur)
        out[s] = child
        return out, True
    if type(cur) is list:
        i = _m_index(s)
        if i is None or i >= len(cur):
            return cur, False
        if not rest:
            return cur[:i] + cur[i + 1:], True
        child, found = m_delete(cur[i], rest)
        if not found:
            return cur, False
        out = list(cur)
        out[i] = child
        return out, True
    return cur, False


KEYS = ["a", "b", "c", "d"] + [f"k{i}" for i in range(40)]
SEGMENTS = st.sampled_from(KEYS[:4]) | st.sampled_from(KEYS) | st.sampled_from(["0", "1", "2", "3", "33", "34", "40", "01", "x"])

leaf_values = (
    st.integers(-5, 5)
    | st.none()
    | st.text(max_size=4)
    | st.just("long " * 80)
    | st.builds(lambda n: list(range(n)), st.integers(0, 45))
    | st.builds(lambda n: {f"k{i}": i for i in range(n)}, st.integers(0, 45))
)

ops = st.one_of(
    st.tuples(st.just("write"), st.lists(SEGMENTS, min_size=1, max_size=4), leaf_values),
    st.tuples(st.just("append"), st.lists(SEGMENTS, min_size=1, max_size=3), leaf_values),
    st.tuples(st.just("delete"), st.lists(SEGMENTS, min_size=1, max_size=4), st.none()),
    st.tuples(st.just("persist"), st.just([]), st.none()),
)


def _run_model(operations, probes):
    store = MemoryStore()
    tx = Tx(store)
    value = {}  # the value under test: opened or stored form
    model = {}
    for op, segs, new in operations:
        if op == "persist":
            stored = tx.put_value(value)
            assert store.commit(dict(tx.objects), [])
            tx = Tx(store)
            value = stored  # continue from the stored form (links)
            continue
        if op in ("write", "append"):
            append = op == "append"
            try:
                expected = m_write(model, segs, new, append)
            except ModelError:
                with pytest.raises(InvalidPath):
                    write_path(tx, value, segs, new, append=append)
                continue
            value = write_path(tx, value, segs, new, append=append)
            model = expected
        else:
            expected, found = m_delete(model, segs)
            value, got_found = delete_path(tx, value, segs)
            assert got_found == found
            model = expected
        assert tx.materialize(value) == model
    assert tx.materialize(value) == model
    # canonical: the edited value stores exactly like the plain model
    assert tx.put_value(value) == tx.put_value(model)
    for segs in probes:
        got = read_path(tx, value, segs)
        exp = m_read(model, segs)
        if exp is Missing:
            assert got is Missing
        else:
            assert tx.materialize(got) == exp


@settings(
    max_examples=120,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(ops, max_size=40), st.lists(st.lists(SEGMENTS, min_size=1, max_size=4), max_size=8))
def test_write_and_delete_agree_with_a_dict_model(operations, probes):
    """Every value kind, including blobs and collections large enough to become handles."""
    _run_model(operations, probes)


small_leaf_values = st.integers(-5, 5) | st.none() | st.text(max_size=4) | st.lists(st.integers(0, 9), max_size=6)
small_ops = st.one_of(
    st.tuples(st.just("write"), st.lists(SEGMENTS, min_size=1, max_size=4), small_leaf_values),
    st.tuples(st.just("append"), st.lists(SEGMENTS, min_size=1, max_size=3), small_leaf_values),
    st.tuples(st.just("delete"), st.lists(SEGMENTS, min_size=1, max_size=4), st.none()),
    st.tuples(st.just("persist"), st.just([]), st.none()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(small_ops, max_size=25), st.lists(st.lists(SEGMENTS, min_size=1, max_size=4), max_size=8))
def test_write_and_delete_agree_with_a_dict_model_small_values(operations, probes):
    """The same model with values that stay inline (no blobs, no handles): path semantics only."""
    _run_model(operations, probes)


def test_write_path_result_stores_canonically():
    tx = Tx(MemoryStore())
    v = write_path(tx, {}, ["a", "a"], "x" * 400)
    v = write_path(tx, v, ["b"], None)
    assert tx.put_value(v) == tx.put_value({"a": {"a": "x" * 400}, "b": None})


def test_write_path_on_a_loaded_record_with_a_large_nested_list():
    store = MemoryStore()
    tx = Tx(store)
    rec = {"state": {"history": [{"role": "user", "content": "hi"}] * 40}, "status": "SLEEPING"}
    root = tx.put_root(rec)
    assert store.commit(dict(tx.objects), [])
    tx = Tx(store)
    w = write_path(tx, tx.load_root(root), ["status"], "RUNNING")
    new_root = tx.put_root(w)  # currently raises InvalidValue: "Encoding objects of type Vec is unsupported"
    assert tx.materialize(tx.load_root(new_root)) == {**rec, "status": "RUNNING"}


def test_delete_in_a_large_list_then_write_elsewhere_stores_canonically():
    tx = Tx(MemoryStore())
    v = {"log": list(range(40)), "idx": {}}
    v, found = delete_path(tx, v, ["log", "0"])
    assert found
    v = write_path(tx, v, ["idx", "k"], 1)
    assert tx.put_value(v) == tx.put_value({"log": list(range(1, 40)), "idx": {"k": 1}})


def test_write_path_grows_lists_and_maps_into_handles():
    store = MemoryStore()
    tx = Tx(store)
    v = {}
    for i in range(40):
        v = write_path(tx, v, ["log"], {"n": i}, append=True)
        v = write_path(tx, v, ["idx", f"k{i}"], i)
    assert type(v["log"]) is Vec and type(v["idx"]) is HMap
    model = {"log": [{"n": i} for i in range(40)], "idx": {f"k{i}": i for i in range(40)}}
    assert tx.materialize(v) == model
    v = write_path(tx, v, ["log", "39", "n"], "last")
    v = write_path(tx, v, ["idx", "k3"], {"nested": True})
    v = write_path(tx, v, ["idx", "k3", "deeper"], 1)
    model["log"][39]["n"] = "last"
    model["idx"]["k3"] = {"nested": True, "deeper": 1}
    assert tx.materialize(v) == model
    v, found = delete_path(tx, v, ["log", "0"])
    assert found
    del model["log"][0]
    v, found = delete_path(tx, v, ["idx", "k0"])
    assert found
    del model["idx"]["k0"]
    assert tx.materialize(v) == model
    # (canonical storage of this result: see test_delete_in_a_large_list_then_write_elsewhere_stores_canonically)


@pytest.mark.parametrize("value, segs, message", [
    ({"a": {"x": 5}}, ["a", "x", "b"], "cannot write below 'w/a/x': it holds an integer, not a map or a list"),
    ({"a": {"x": "s"}}, ["a", "x", "b", "c"], "cannot write below 'w/a/x': it holds a string, not a map or a list"),
    ({"l": [1, 2]}, ["l", "7"], "list position 7 of 'w/l' is out of range (length 2; 2 appends)"),
    ({"l": [1, 2]}, ["l", "zz"], "'w/l' is a list: 'zz' is not a position (0..2)"),
])
def test_write_errors_name_the_segment_that_is_in_the_way(value, segs, message) -> None:
    from lattice.errors import InvalidPath
    from lattice.memory import MemoryStore
    from lattice.nodes import Tx
    from lattice.paths import write_path
    with pytest.raises(InvalidPath) as e:
        write_path(Tx(MemoryStore()), value, segs, 1, where=("w",))
    assert e.value.message == message
