"""Ref names of threads: escaping, parsing, prefixes."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra")

from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ops.langgraph.naming import (  # noqa: E402
    head_ref, is_thread_ref, parked_ref, parse_ref, thread_base, tip_ref,
)

IDS = st.text(min_size=1, max_size=40)


@given(IDS, st.text(max_size=40), st.text(min_size=1, max_size=40))
def test_names_parse_back(thread, ns, cid):
    try:
        head = head_ref("local", thread, ns)
    except ValueError as e:  # non-ASCII escapes to up to 12 characters each
        assert "too long" in str(e)
        assume(False)
    assert parse_ref(head) == ("local", thread, ns, "head", "")
    assert parse_ref(tip_ref(head, cid)) == ("local", thread, ns, "tip", cid)
    assert parse_ref(parked_ref(head, cid)) == ("local", thread, ns, "parked", cid)
    assert head.count("/") == 2 and all(c >= " " for c in head)


def test_ids_that_look_like_langgraph_ids_stay_readable():
    head = head_ref("local", "1f0c2a3e-0000-6000-8000-00000000abcd", "agent:5e7b|tools:9a")
    assert head == "t/local/1f0c2a3e-0000-6000-8000-00000000abcd#agent:5e7b|tools:9a"


def test_a_thread_prefix_does_not_match_a_longer_thread():
    base = thread_base("local", "t1")
    assert is_thread_ref("t/local/t1", base) and is_thread_ref("t/local/t1#x:1", base)
    assert is_thread_ref("t/local/t1@abc", base) and is_thread_ref("t/local/t1!abc", base)
    assert not is_thread_ref("t/local/t10", base)


def test_bad_ids_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        head_ref("local", "", "")
    with pytest.raises(ValueError, match="too long"):
        head_ref("local", "x" * 500, "")
    with pytest.raises(ValueError, match="caller"):
        head_ref("a/b", "t", "")
    assert parse_ref("g/local/agent") is None and parse_ref("t/local/") is None
