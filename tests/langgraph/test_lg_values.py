"""Channel values as lattice values: round trips, escapes, serde fallback, vector reuse, leaf sharing."""

from __future__ import annotations

import datetime

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage, AIMessageChunk, ChatMessage, FunctionMessage, HumanMessage, RemoveMessage, SystemMessage,
    ToolMessage,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: E402

from lattice.codec import Link  # noqa: E402
from lattice.memory import MemoryStore  # noqa: E402
from lattice.nodes import VEC, Tx, Vec  # noqa: E402
from ops.langgraph.values import LeafCache, ListMemo, ValueCodec, store_list  # noqa: E402
from tests.lattice.helpers import strict_eq, value_strategy  # noqa: E402

CODEC = ValueCodec(JsonPlusSerializer())


def roundtrip(v, codec=CODEC):
    store = MemoryStore()
    tx = Tx(store)
    link = tx.put_root({"v": tx.put_value(codec.enc(v))})
    store.commit(tx.objects, [])
    tx2 = Tx(store)
    return codec.dec(tx2, tx2.load(link)["v"])


@settings(max_examples=150, deadline=None)
@given(value_strategy(width=40, leaves=60))
def test_plain_values_round_trip_exactly(v):
    assert strict_eq(roundtrip(v), v)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["$lc", "$serde", "$dict", "a", "$x"]), value_strategy(leaves=5),
                       max_size=5))
def test_dicts_with_reserved_keys_are_escaped(d):
    assert strict_eq(roundtrip(d), d)
    assert strict_eq(roundtrip([d, {"$dict": d}]), [d, {"$dict": d}])


def test_plain_data_stays_plain_data():
    tx = Tx(MemoryStore())
    assert CODEC.enc({"a": [1, "x", None, 2.5, True, b"\x00"]}) == {"a": [1, "x", None, 2.5, True, b"\x00"]}
    assert CODEC.enc({"$lc": 1}) == {"$dict": {"$lc": 1}}
    assert list(CODEC.enc((1, 2))) == ["$serde"]
    assert CODEC.dec(tx, {"$serde": list(JsonPlusSerializer().dumps_typed({1, 2}))}) == {1, 2}


@pytest.mark.parametrize("value", [
    (1, "two"), {1, 2}, frozenset({"a"}), {1: "int key"}, datetime.date(2024, 5, 1),
    datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc), [("nested", "tuple")],
])
def test_other_values_go_through_the_serde(value):
    """They come back as LangGraph's own savers give them back (the serde turns a tuple into a list)."""
    serde = JsonPlusSerializer()
    expected = serde.loads_typed(serde.dumps_typed(value))
    out = roundtrip(value)
    assert out == expected and type(out) is type(expected)


MESSAGES = [
    HumanMessage(content="hi " * 200, id="h1"),
    HumanMessage(content=[{"type": "text", "text": "blocks"}, {"$lc": "not a message"}], id="h2", name="bob"),
    AIMessage(content="", id="a1", tool_calls=[{"name": "f", "args": {"q": [1, {"x": None}]}, "id": "c1",
                                                 "type": "tool_call"}],
              usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
              response_metadata={"model": "m"}, additional_kwargs={"k": {1, 2}}),
    AIMessageChunk(content="part", id="ch"),
    SystemMessage(content="be brief"),
    ToolMessage(content="42", tool_call_id="c1", status="error", artifact={"raw": [1]}),
    FunctionMessage(content="r", name="fn"),
    ChatMessage(content="c", role="critic"),
    RemoveMessage(id="h1"),
]


@pytest.mark.parametrize("m", MESSAGES, ids=lambda m: type(m).__name__)
def test_core_messages_round_trip_as_small_maps(m):
    enc = CODEC.enc(m)
    assert type(enc) is dict and enc["$lc"] == m.type
    assert "additional_kwargs" not in enc or m.additional_kwargs
    out = roundtrip(m)
    assert out == m and type(out) is type(m)


def test_a_chat_message_is_a_few_keys():
    assert CODEC.enc(HumanMessage(content="hello", id="h")) == {"$lc": "human", "content": "hello", "id": "h"}


def test_a_message_subclass_goes_through_the_serde():
    class Mine(HumanMessage):
        pass

    assert "$serde" in CODEC.enc(Mine(content="x"))


def _stored_list(items, base=None, memo=None):
    store = MemoryStore()
    tx = Tx(store)
    memo = memo or ListMemo()
    stored, held = store_list(CODEC, memo, tx, items, base)
    store.commit(tx.objects, [])
    return store, stored, held, len(tx.objects)


def test_a_grown_list_appends_to_the_previous_vector():
    msgs = [HumanMessage(content=f"m{i} " * 100, id=f"m{i}") for i in range(200)]
    memo = ListMemo()
    store = MemoryStore()
    tx = Tx(store)
    first, held = store_list(CODEC, memo, tx, msgs[:150], None)
    store.commit(tx.objects, [])
    memo.put(bytes(first.data), held)
    tx = Tx(store)
    second, _ = store_list(CODEC, memo, tx, msgs, first)
    # 50 new message blobs; 7 new 8-item leaves, each push rewriting the path above it (two levels
    # of 8-link nodes: 19 to 25 leaves); the root
    assert len(tx.objects) <= 50 + 7 + 7 * 2 + 1
    store.commit(tx.objects, [])
    # The appended vector is the canonical one: the same digest as building from scratch.
    assert second == _stored_list(msgs)[1]


def test_a_replaced_item_is_stored_again():
    msgs = [HumanMessage(content=f"m{i}", id=f"m{i}") for i in range(40)]
    memo = ListMemo()
    store = MemoryStore()
    tx = Tx(store)
    first, held = store_list(CODEC, memo, tx, msgs, None)
    store.commit(tx.objects, [])
    memo.put(bytes(first.data), held)
    edited = list(msgs)
    edited[3] = msgs[3].model_copy(update={"content": "edited"})  # what add_messages does for a same-id message
    tx = Tx(store)
    second, _ = store_list(CODEC, memo, tx, edited + [HumanMessage(content="new", id="n")], first)
    store.commit(tx.objects, [])
    out = CODEC.dec(Tx(store), second)
    assert out[3].content == "edited" and out[-1].content == "new" and len(out) == 41
    assert second == _stored_list(edited + [HumanMessage(content="new", id="n")])[1]


def test_an_item_mutated_in_place_is_not_seen_as_with_delta_channel():
    """Documented limit: an item is unchanged while it is the same object."""
    msgs = [HumanMessage(content=f"m{i}", id=f"m{i}") for i in range(40)]
    memo = ListMemo()
    store = MemoryStore()
    tx = Tx(store)
    first, held = store_list(CODEC, memo, tx, msgs, None)
    store.commit(tx.objects, [])
    memo.put(bytes(first.data), held)
    msgs[3].content = "mutated in place"
    tx = Tx(store)
    second, _ = store_list(CODEC, memo, tx, msgs + [HumanMessage(content="new", id="n")], first)
    assert CODEC.dec(tx, second)[3].content == "m3"


def test_decoded_leaves_are_shared_until_an_item_changes():
    codec = ValueCodec(JsonPlusSerializer(), LeafCache())
    msgs = [HumanMessage(content=f"m{i}", id=f"m{i}") for i in range(70)]
    store, stored, _, _ = _stored_list(msgs)
    assert type(stored) is Link and stored.code == VEC
    a = codec.dec_vector(Tx(store), stored)
    b = codec.dec_vector(Tx(store), stored)
    assert a == msgs and b == msgs and a is not b
    assert a[0] is b[0] and a[-1] is not b[-1]  # leaves shared, the tail decoded again
    a[0].content = "changed by a caller"
    c = codec.dec_vector(Tx(store), stored)
    assert c[0].content == "m0" and c[0] is not a[0] and c[1] is not a[1]
    plain = _stored_list([{"k": i} for i in range(40)])
    d1, d2 = codec.dec_vector(Tx(plain[0]), plain[1]), codec.dec_vector(Tx(plain[0]), plain[1])
    assert d1 == d2 and d1[0] is not d2[0]  # mutable plain items are never shared


def test_leaf_links_walk_every_full_leaf():
    store, stored, _, _ = _stored_list(list(range(32 * 40 + 7)))
    from ops.langgraph.values import _leaf_links

    tx = Tx(store)
    leaves = list(_leaf_links(tx, Vec.open(tx, stored)))
    assert len(leaves) == 160  # 8 items a leaf; the last 7 are the tail
    assert [x for leaf in leaves for x in tx.load(leaf)] == list(range(32 * 40))


def test_a_grown_short_list_stores_only_its_new_items():
    """A list node (32 items or fewer) is new at each checkpoint, but the items it shares with the
    previous one are not stored again: the memo keeps their stored forms."""
    msgs = [HumanMessage(content=f"m{i} " * 100, id=f"m{i}") for i in range(12)]  # texts are blobs
    memo = ListMemo()
    store = MemoryStore()
    tx = Tx(store)
    first, held = store_list(CODEC, memo, tx, msgs[:10], None)
    assert type(first) is Link and type(held) is tuple
    store.commit(tx.objects, [])
    memo.put(bytes(first.data), held)
    tx = Tx(store)
    second, held2 = store_list(CODEC, memo, tx, msgs, first)
    assert len(tx.objects) == 3  # two new message texts and the list node
    assert second == _stored_list(msgs)[1] and held2[0] == msgs
    store.commit(tx.objects, [])
    memo.put(bytes(second.data), held2)
    tx = Tx(store)
    longer = msgs + [HumanMessage(content=f"n{i}", id=f"n{i}") for i in range(30)]
    third, _ = store_list(CODEC, memo, tx, longer, second)  # past 32 items: a vector, from the stored forms
    assert third.code == VEC and third == _stored_list(longer)[1]
    assert CODEC.dec(tx, third) == longer
