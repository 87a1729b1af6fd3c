"""Property tests of digests' hex form (lattice.digest)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lattice.digest import DIGEST_SIZE, digest, from_hex, to_hex


@given(st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE), st.sampled_from(["", "0x", "0X"]), st.booleans())
def test_from_hex_inverts_to_hex(d, prefix, upper):
    text = to_hex(d)
    assert len(text) == 2 * DIGEST_SIZE and text == text.lower()
    assert from_hex(prefix + (text.upper() if upper else text)) == d


@given(st.text(max_size=80))
def test_from_hex_of_garbage_raises_only_value_error(text):
    try:
        d = from_hex(text)
    except ValueError:
        return
    assert len(d) == DIGEST_SIZE and to_hex(d) == text.removeprefix("0x").removeprefix("0X").lower()


@given(st.binary(max_size=300))
def test_digest_is_32_bytes_and_deterministic(data):
    d = digest(data)
    assert type(d) is bytes and len(d) == DIGEST_SIZE and d == digest(bytes(data))


def test_from_hex_rejects_a_wrong_length():
    with pytest.raises(ValueError, match="expected 64 hex characters, got 62"):
        from_hex("ab" * 31)


@pytest.mark.parametrize("text", ["  " + "ab" * 31, "ab" * 15 + " \t" + "ab" * 16, "ab" * 31 + "\n\n"])
def test_from_hex_rejects_whitespace_that_fromhex_would_skip(text):
    assert len(text) == 2 * DIGEST_SIZE
    with pytest.raises(ValueError, match="whitespace"):
        from_hex(text)
