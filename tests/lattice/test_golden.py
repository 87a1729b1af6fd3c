"""Golden digests: the stored identity of a fixed set of values, pinned.

"Encoding is identity": a value's digest never changes between runs or
versions, because every store, every commit id and every fork names state by
digest. These tests pin, in hex, the root digest (:meth:`lattice.nodes.Tx.put_root`)
of values covering each storage form (inline scalars, blobs, small nodes,
persistent vectors with tail and levels, HAMT maps) and the head of a commit
chain with jump pointers. They were computed by the code of format version
``PINNED_FORMAT`` (:data:`lattice.codec.FORMAT_VERSION`).

**A failure here means stored data would re-hash.** Do not update a pin to
make it pass. To change the canonical encoding or the layout on purpose: bump
:data:`lattice.codec.FORMAT_VERSION`, ship a migration for stores of the old
version, then recompute the pins (run this module as a script:
``python -m tests.lattice.test_golden`` prints ``GOLDEN`` and ``HEAD_OF_20``)
and set ``PINNED_FORMAT`` to the new version, in the same commit.
"""

from __future__ import annotations

from typing import Any

import pytest

from lattice.codec import FORMAT_VERSION, Link
from lattice.errors import InvalidValue
from lattice.commits import Commit, read_commit, write_commit
from lattice.memory import MemoryStore
from lattice.history import diff
from lattice.nodes import BLOB, MAP, NODE, VEC, VNODE, Tx, Vec
from lattice.store import RefUpdate
from lattice.vector import GEOMETRY

#: The format version the pins below were computed with.
PINNED_FORMAT = 3

_LONG = "The quick brown fox jumps over the lazy dog. " * 7  # 315 chars: a blob


def golden_values() -> dict[str, Any]:
    """The pinned values, by name (built fresh on every call)."""
    return {
        "none": None,
        "true": True,
        "false": False,
        "zero": 0,
        "minus_one": -1,
        "int64_max": 2**63 - 1,
        "int64_min": -(2**63),
        "uint64_max": 2**64 - 1,
        "float": 1.5,
        "float_neg_zero": -0.0,
        "str_empty": "",
        "str_short": "hello, lattice",
        "str_300": "x" * 300,
        "str_unicode": "héllo wörld \u2603 \U0001f600",
        "bytes_short": b"\x00\x01\x02\xff",
        "bytes_300": bytes(range(256)) + bytes(44),
        "list_empty": [],
        "list_small": [1, "two", 3.0, None, True, b"six"],
        "list_33": list(range(33)),
        "list_1000": list(range(1000)),
        "list_100000": list(range(100_000)),
        "map_empty": {},
        "map_small": {"b": 2, "a": 1, "c": [1, 2, 3]},
        "map_node": {"k": "v" * 150},  # small but too large to stay inline
        "list_of_nodes": [{"k": "v" * 150}, {"k": "w" * 150}, "inline"],  # NODE links inside a NODE
        "map_1000": {f"key-{i:04}": i for i in range(1000)},
        "map_unicode_keys": {"é": 1, "e": 2, "\u2603": 3, "\U0001f600": 4, "": 5, "Z": 6, "a b": 7},
        "nested": {
            "status": "SLEEPING",
            "config": {"model": "echo", "temperature": 0.25, "tools": ["a", "b"]},
            "history": [{"role": "user", "content": _LONG}, {"role": "assistant", "content": "ok"}] * 20,
            "timeline": [{"seq": i, "messages": [{"content": _LONG}] if i % 7 == 0 else []} for i in range(50)],
            "inbox": {f"msg-{i}": {"from": "Bob", "n": i, "blob": bytes([i]) * 300} for i in range(40)},
            "empty": {"list": [], "map": {}},
        },
    }


#: name -> (link kind of the root, hex digest of the root object).
GOLDEN: dict[str, tuple[int, str]] = {
    "none": (2, "af2edc674154ff129d9e826727ada0828d3ba480924bbed84bf6dcae2e1f1db2"),
    "true": (2, "189a74b37b4c29fe3bc409128ff5960e8d8de4f6603e6abd13fdd3af9876c11d"),
    "false": (2, "c3394925d29912a01c8a102535f1189f5dc0fc0a1356386b28f656e378675dce"),
    "zero": (2, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
    "minus_one": (2, "99d44d377bc5936d8cb7f5df90713d84c7587739b4724d3d2f9af1ee0e4c8efd"),
    "int64_max": (2, "310f021b6a7df064076ff7bd1ce48f140049c289ef0ca34d60d10722816d23f6"),
    "int64_min": (2, "f86b8528cb5c9e78b079d25e7a873a03ce67bd670de718652ad50644c4319d26"),
    "uint64_max": (2, "3b9f6552145487b299f1e824a3912d90e9621f806a85597a856c6c661239221e"),
    "float": (2, "a6b8a44b0fcce35fad25b5d51b0843b01c17378efc353f141825eb29b69b3ef9"),
    "float_neg_zero": (2, "8afe05f80d6126492b909bfffdaeac8fd95261746eb6613bfb434d344ae3385c"),
    "str_empty": (2, "1f94cbf313b3ce23257a7251ea0fc95a24556ea611e4f8f475e549971baedb02"),
    "str_short": (2, "7be17a70223695d1708a1caef91c55ad5b7edfea153546ed4272db0a8be4ab3b"),
    "str_300": (1, "9a43a75c10016344b0ddef2ec9c3cdb196e43b6e11b00677c0f659410ccda7e2"),
    "str_unicode": (2, "13c5799129466d1f4b92da31e8a7fca2b2026a9d0474ca54dfee015d0010f927"),
    "bytes_short": (2, "9e0d92db2eab656300760902cf9060bf5bfbd23edd9015b9126224f1487b70ec"),
    "bytes_300": (1, "d0cb52e935dfbf564b3b6d6f16bc1c37abedca8c0f53e893cc2ddf187c9fa226"),
    "list_empty": (2, "2ba82451e7edbf091af9674a911051229b0452ba7b9276d5159d482a65517d17"),
    "list_small": (2, "a66126bda0717ea2c6760b6dd78e19a6d61ac5e080082c7665530cfa3d3d00c6"),
    "list_33": (3, "b103cedb954eaca60c67d277d9358b5c4a3806a1c82d07b22e0cb79a68b2f89d"),
    "list_1000": (3, "b712ba72de6004bc29194b1668a28f6b0fffb54174c9d8864ad25ff227259ab0"),
    "list_100000": (3, "7c817c16e213d686a656edba7047ac9ccc1a387a05974e848880d8be36937005"),
    "map_empty": (2, "bbe6a9f5a0146a1f4d0381e9b0ed1ac2f1a979ce9d5ad84e46ff0b58f36b5f46"),
    "map_small": (2, "bee28c878d68c7ad76672011d4cde7dee815fdc2241b0d39ea822a4e72f7699c"),
    "map_node": (2, "b9de6418944a85e23051671af2171f40be4651c3d28fb632b8189df4df9f0417"),
    "list_of_nodes": (2, "149935cdfa334f8e7c0936fe71daae877236ea498c7d4631eb21b97a4de6bb87"),
    "map_1000": (5, "ee6f883f9f0264c4be8496a410f70ecce2eb5f86a57e2c7b06879fe47166968a"),
    "map_unicode_keys": (2, "4166232bab8bc83508b5f065a1395d86aafb3deda49a1a2f9600e5aa89df7d54"),
    "nested": (2, "dc38ab67bd1a3a19b36bdb2e2c6062582f8501f1a29809349d00b4a1f314893f"),
}

#: Format 2's digests of the values whose storage changed in format 3 (vectors: interior nodes of
#: 32 links, see :mod:`lattice.vector`), and format 1's of those that changed in format 2 (32-item
#: leaves and tail). Stores of older formats are read as they are: a vector built in an old
#: geometry must still hash to these and read back its items (:func:`test_older_format_vectors`).
GOLDEN_FORMAT2: dict[str, str] = {
    "list_33": "51328ac4064fc2f4fd08e0831364c71269997e1e14cf6d59da429bef68e86a64",
    "list_1000": "d829b84a596cdd2075d4aaf3e178da966d1e484c8a2585af69284ce3151ec017",
    "list_100000": "bcbeb0a9957963b044495b436c97a0095238818f3bcb88980beb7e790f83441c",
    "nested": "de73ead38cc825bfa3d14e4f100d1196558c1d459e8cf2cee3db4df70d2c498a",
}
GOLDEN_FORMAT1: dict[str, str] = {
    "list_33": "d1185c65b090b1717cb3f2ff3e57501d21f86794f5e570cb371a2700c1d9a6fc",
    "list_1000": "b5796169ef04cf36cb87dfebd48c211a862ae7e5515a0950a66449d9f49fbab1",
    "list_100000": "9ae290ffd73793da8cc7577409cb760084bfa353e38eead0b6af26d7b9ffe314",
}

#: Hex digest of the 20th commit of the chain built by :func:`commit_chain` (format 3: its
#: commits say so, and its states' item lists from 33 on are vectors).
HEAD_OF_20 = "7060b41c0c1ef699df0a2d82a604034847ef00c087011fd8b17ff46f0d4ea004"


def root_of(value: Any) -> Link:
    """The root link of ``value`` stored in a fresh transaction."""
    return Tx(MemoryStore()).put_root(value)


def commit_chain(n: int) -> tuple[MemoryStore, list[tuple[bytes, Commit]]]:
    """Commit ``n`` fixed states on one ref (ts, op, input and caller all fixed); oldest first."""
    store = MemoryStore()
    chain: list[tuple[bytes, Commit]] = []
    head, head_c = None, None
    for i in range(n):
        tx = Tx(store)
        root = tx.put_root({"n": i, "items": list(range(i * 3)), "note": _LONG if i % 5 == 0 else "short"})
        d, c = write_commit(tx, parent=head, parent_commit=head_c, root=root, ts=1_700_000_000_000 + 1000 * i,
                            op="golden:step", input={"step": i, "text": _LONG}, caller="golden")
        assert store.commit(dict(tx.objects), [RefUpdate("golden/chain", head, d)])
        chain.append((d, c))
        head, head_c = d, c
    return store, chain


def test_format_version_is_the_pinned_one():
    """Bumping FORMAT_VERSION without recomputing the pins (or vice versa) fails here."""
    assert FORMAT_VERSION == PINNED_FORMAT


def test_every_value_is_pinned():
    assert sorted(golden_values()) == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_root_digest(name):
    link = root_of(golden_values()[name])
    assert (link.code, bytes(link.data).hex()) == GOLDEN[name], f"{name}: stored identity changed"


def test_pins_cover_every_storage_form():
    kinds = {code for code, _ in GOLDEN.values()}
    assert {NODE, BLOB, VEC, MAP} <= kinds


def test_commit_chain_head_digest():
    store, chain = commit_chain(20)
    head, head_c = chain[-1]
    assert head.hex() == HEAD_OF_20
    assert head_c.seq == 19
    assert any(c.skip is not None for _, c in chain)  # the pin covers jump pointers
    assert read_commit(store, head) == head_c


def build_format1(tx: Tx, items: list) -> Vec:
    """The vector of ``items`` as format 1 stored it: 32-item leaves and tail, ``shift`` a multiple of 5."""
    n = len(items)
    tailoff = ((n - 1) >> 5) << 5
    nodes = [tx.put_obj(VNODE, items[i:i + 32]) for i in range(0, tailoff, 32)]
    shift, root = 5, None
    while nodes:
        parents = [tx.put_obj(VNODE, nodes[i:i + 32]) for i in range(0, len(nodes), 32)]
        if len(parents) == 1:
            root = parents[0]
            break
        nodes, shift = parents, shift + 5
    return Vec(tx, n, shift, root, items[tailoff:], nb=5)


def build_in(fmt: int, tx: Tx, items: list) -> Vec:
    """The vector of ``items`` as format ``fmt`` (1 or 2) stored it."""
    if fmt == 1:
        return build_format1(tx, items)
    tx.format = fmt
    try:
        return Vec.build(tx, items)
    finally:
        tx.format = None


@pytest.mark.parametrize("name", sorted(GOLDEN_FORMAT2))
def test_format2_roots(name):
    """A transaction in format 2 (a verified replay of a format 2 commit) stores each value whose
    storage changed in format 3 as format 2 did."""
    tx = Tx(MemoryStore())
    tx.format = 2
    assert bytes(tx.put_root(golden_values()[name]).data).hex() == GOLDEN_FORMAT2[name]


@pytest.mark.parametrize("fmt, name", [(f, n) for f, pins in ((1, GOLDEN_FORMAT1), (2, GOLDEN_FORMAT2))
                                       for n in sorted(pins) if n.startswith("list_")])
def test_older_format_vectors(fmt, name):
    """A vector of format 1 or 2 still hashes to its old pin, reads back, diffs against its
    current twin with no change, and is rebuilt in the current format by its first edit."""
    store = MemoryStore()
    tx = Tx(store)
    items = golden_values()[name]
    old = build_in(fmt, tx, items)
    link = old.store()
    assert bytes(link.data).hex() == (GOLDEN_FORMAT1 if fmt == 1 else GOLDEN_FORMAT2)[name]
    assert store.commit(dict(tx.objects), [])
    tx = Tx(store)
    old = Vec.open(tx, link)
    assert old.geometry == GEOMETRY[fmt] and list(old.iter_raw()) == items
    assert [old.get_raw(i) for i in (0, len(items) // 2, len(items) - 1)] == [0, len(items) // 2, len(items) - 1]
    assert list(old.iter_raw(5, 40)) == items[5:40]
    new = Vec.build(tx, list(items))
    assert new.geometry == GEOMETRY[FORMAT_VERSION] == (3, 3)
    assert diff(tx, link, new.store()) == ([], False)
    grown = old.append_raw(-1)
    assert grown.geometry == (3, 3) and list(grown.iter_raw()) == items + [-1]
    assert grown.store() == Vec.build(tx, items + [-1]).store()  # canonical again
    changed = diff(tx, link, grown.store())[0]
    assert [c["path"] for c in changed] == [str(len(items))] and changed[0]["after"] == -1
    assert list(old.set_raw(3, 7).iter_raw())[:5] == [0, 1, 2, 7, 4]


@pytest.mark.parametrize("fmt", [1, 2])
def test_an_older_format_vector_is_edited_in_its_own_format_by_a_replay(fmt):
    """A transaction in an older format (a verified replay of a commit of that format,
    :attr:`lattice.nodes.Tx.format`) builds and edits vectors as that format did."""
    tx = Tx(MemoryStore())
    old = build_in(fmt, tx, list(range(1000)))
    tx.format = fmt
    grown = old.append_raw(1000)
    assert grown.geometry == GEOMETRY[fmt]
    assert grown.store() == build_in(fmt, Tx(MemoryStore()), list(range(1001))).store()
    assert Vec.build(tx, list(range(1001))).store() == grown.store()


@pytest.mark.parametrize("obj", [[1, 3, None], [1, 3, None, [0], 3, 9], [1, 0, None, [0]], [1, 6, None, [0], 0],
                                 [1, 6, None, [0], 6], [1, 6, None, [0], "3"], {"count": 1}])
def test_a_malformed_vector_root_is_refused(obj):
    tx = Tx(MemoryStore())
    with pytest.raises(InvalidValue, match="vector"):
        Vec.open(tx, tx.put_obj(VEC, obj))


def _print_pins() -> None:
    print("GOLDEN: dict[str, tuple[int, str]] = {")
    for name, value in golden_values().items():
        link = root_of(value)
        print(f'    "{name}": ({link.code}, "{bytes(link.data).hex()}"),')
    print("}")
    print(f'HEAD_OF_20 = "{commit_chain(20)[1][-1][0].hex()}"')


if __name__ == "__main__":
    _print_pins()
