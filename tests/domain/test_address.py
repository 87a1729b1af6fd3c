"""Covia lattice addresses (ops.domain.address) and did:key (ops.domain.did): pure functions, every case."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from covia.auth import Ed25519Auth
from covia.did import parse_did_url
from lattice.errors import InvalidPath
from lattice.paths import parse_path
from ops.domain.address import caller_did, local_path
from ops.domain.did import b58decode, b58encode, did_document, did_key, ed25519_key, is_did, multibase_key
from ops.domain.errors import Rejected, http_status

VENUE = did_key(bytes(range(32)))
ME = Ed25519Auth.from_seed(b"\x01" * 32).did
OTHER = Ed25519Auth.from_seed(b"\x02" * 32).did


def code_of(path: str, caller: str = ME) -> str:
    with pytest.raises(Rejected) as e:
        local_path(path, caller, VENUE)
    assert e.value.path == "$.input.path" and e.value.message and e.value.hint
    return e.value.code


@pytest.mark.parametrize("path, expected", [
    ("w/notes", "w/notes"), ("/w/notes", "w/notes"), ("/g/Alice/timeline/0", "g/Alice/timeline/0"),
    ("/j", "j"), (f"{ME}/w/notes", "w/notes"), (f"{ME}/g/Alice", "g/Alice"), ("", ""),
])
def test_a_leading_slash_and_the_callers_own_did_are_dropped(path: str, expected: str) -> None:
    assert local_path(path, ME, VENUE) == expected


def test_a_token_callers_did_is_the_venues_user_did() -> None:
    mine = f"{VENUE}:u:alice"
    assert caller_did("alice", VENUE) == mine and caller_did("alice", None) is None
    assert caller_did(ME, VENUE) == ME and caller_did(ME, None) == ME  # a DID caller is its DID
    assert local_path(f"{mine}/w/x", "alice", VENUE) == "w/x"
    for other in (f"{VENUE}:u:bob", ME, VENUE):  # another user, a did:key caller, the venue itself
        assert code_of(f"{other}/w/x", "alice") == "not_found"
    with pytest.raises(Rejected) as e:  # without a venue DID a token caller has none: every DID is another's
        local_path(f"{mine}/w/x", "alice", None)
    assert e.value.code == "not_found"


def test_another_callers_did_is_not_found_with_one_message_whether_or_not_it_exists() -> None:
    assert code_of(f"{OTHER}/w/notes") == "not_found"
    assert http_status("not_found") == 404
    messages = set()
    for did in (OTHER, did_key(b"\x07" * 32), "did:web:example.com:u:bob"):
        with pytest.raises(Rejected) as e:
            local_path(f"{did}/w/notes", ME, VENUE)
        messages.add(e.value.message.replace(did, "<did>"))
    assert len(messages) == 1


@pytest.mark.parametrize("path", ["did:/w/x", "did:key:/w/x", "did:KEY:z6Mk/w/x", "did:key:z6Mk!/w/x",
                                  "did:key:z6Mk:/w/x", "did:key:z%zz/w/x", f"did:key:{'z' * 300}/w/x",
                                  "did:key z6Mk/w/x"])
def test_a_malformed_did_is_invalid_path(path: str) -> None:
    assert code_of(path) == "invalid_path"


def test_a_did_alone_names_no_value() -> None:
    assert code_of(ME) == "invalid_path"


@pytest.mark.parametrize("path", ["//w/x", f"{ME}//w/x", "/", f"{ME}/", "/w//x", "/x/y", f"/{ME}/w/x"])
def test_what_parse_path_then_refuses(path: str) -> None:
    with pytest.raises(InvalidPath):
        parse_path(local_path(path, ME, VENUE))


@given(st.text(max_size=40))
def test_local_path_never_fails_but_with_a_rejection(path: str) -> None:
    try:
        out = local_path(path, ME, VENUE)
    except Rejected as e:
        assert e.code in ("invalid_path", "not_found")
    else:
        assert out in (path, path[1:]) or path.startswith(ME + "/")


def test_the_sdk_builds_addresses_we_read() -> None:
    from covia.did import did_url
    for addr in (did_url(ME, "w", "projects", "acme"), did_url(None, "w", "notes"), "/w/notes"):
        parsed = parse_did_url(addr)
        assert local_path(addr, ME, VENUE) == f"{parsed.namespace}/{parsed.path}"


# -- did:key ------------------------------------------------------------------

def test_did_key_is_the_sdks_and_round_trips() -> None:
    for seed in (b"\x00" * 32, b"\x01" * 32, bytes(range(32))):
        auth = Ed25519Auth.from_seed(seed)
        assert did_key(auth.public_key_bytes) == auth.did and ed25519_key(auth.did) == auth.public_key_bytes
        assert ed25519_key(multibase_key(auth.public_key_bytes)) == auth.public_key_bytes
        assert auth.did.startswith("did:key:z6Mk") and is_did(auth.did)


@pytest.mark.parametrize("text, why", [
    ("did:web:example.com", "not a did:key"), ("did:key:f0123", "base58btc"),
    ("did:key:z0OIl", "not a base58btc character"), ("did:key:z", "empty"),
    ("did:key:z" + b58encode(b"\xe7\x01" + b"\x02" * 33), "multicodec 0xed01"),  # secp256k1
    ("did:key:z" + b58encode(b"\xed\x01" + b"\x02" * 31), "31 bytes"),
    ("did:key:z" + "1" + b58encode(b"\xed\x01" + b"\x02" * 32)[0:], "multicodec"),  # a leading zero byte
    ("did:key:z" + "2" * 80, "too long"),
])
def test_ed25519_key_refuses_every_other_spelling(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ed25519_key(text)


@given(st.binary(max_size=40))
def test_base58_round_trips(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data if data else b58encode(data) == ""


def test_the_did_document_names_the_key_and_the_endpoint() -> None:
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    did = did_key(key)
    doc = did_document(did, key, "http://127.0.0.1:7770/api/v1/")
    method = doc["verificationMethod"][0]
    assert doc["id"] == did and doc["@context"] == "https://www.w3.org/ns/did/v1"
    assert method == {"id": f"{did}#{multibase_key(key)}", "type": "Multikey", "controller": did,
                      "publicKeyMultibase": multibase_key(key)}
    assert doc["authentication"] == doc["assertionMethod"] == [method["id"]]
    assert doc["service"][0]["type"] == "Covia.API.v1"
    assert doc["service"][0]["serviceEndpoint"] == "http://127.0.0.1:7770/api/v1/"
    assert ed25519_key(method["publicKeyMultibase"]) == key
