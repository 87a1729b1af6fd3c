"""DIDs: the syntax, ``did:key`` for Ed25519 keys, and the venue's DID document (pure: no I/O, no clock).

A ``did:key`` DID carries its public key: ``did:key:z<base58btc(0xED 0x01 || 32-byte key)>``
(multibase ``z`` = base58btc, multicodec ``0xED01`` = ed25519-pub). So an Ed25519 key
``k`` has exactly one DID, :func:`did_key`, and :func:`ed25519_key` gets ``k`` back
from it, refusing any other spelling (another multicodec, a key of another length,
a non-canonical base58 text).

>>> key = bytes(range(32))
>>> did = did_key(key)
>>> did[:12], ed25519_key(did) == key
('did:key:z6Mk', True)
>>> is_did("did:web:example.com:u:alice"), is_did("did:key:"), is_did("w/notes")
(True, False, False)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ED25519_MULTICODEC", "DID_CONTEXT", "SERVICE_TYPE", "is_did", "b58encode", "b58decode", "multibase_key",
           "did_key", "ed25519_key", "did_document"]

#: the multicodec prefix of an Ed25519 public key (varint 0xED)
ED25519_MULTICODEC = b"\xed\x01"
#: the JSON-LD context of a DID document
DID_CONTEXT = "https://www.w3.org/ns/did/v1"
#: the service type under which the venue's DID document names its API (the Covia venue's)
SERVICE_TYPE = "Covia.API.v1"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
# W3C DID Core 3.1: did:<method>:<method-specific-id>, idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded,
# the id being ``*( *idchar ":" ) 1*idchar``
_IDCHAR = r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})"
_DID = re.compile(rf"did:[a-z0-9]+:(?:{_IDCHAR}*:)*{_IDCHAR}+")
#: the longest DID accepted (a did:key is 56 characters; did:web ones are host names and paths)
_MAX_DID = 256


def is_did(text: str) -> bool:
    """Whether ``text`` is a DID (W3C DID syntax, at most 256 characters), not a DID URL."""
    return isinstance(text, str) and len(text) <= _MAX_DID and _DID.fullmatch(text) is not None


def b58encode(data: bytes) -> str:
    """``data`` in base58btc (the Bitcoin alphabet); each leading zero byte is a ``1``."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """The bytes a base58btc text spells.

    Raises:
        ValueError: a character outside the alphabet, or an empty text.
    """
    if not text:
        raise ValueError("empty base58 text")
    n = 0
    for c in text:
        i = _B58_INDEX.get(c)
        if i is None:
            raise ValueError(f"{c!r} is not a base58btc character")
        n = n * 58 + i
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def multibase_key(public_key: bytes) -> str:
    """The multibase text of an Ed25519 public key: ``z6Mk...`` (the ``publicKeyMultibase`` of a DID document).

    Raises:
        ValueError: ``public_key`` is not 32 bytes.
    """
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return "z" + b58encode(ED25519_MULTICODEC + public_key)


def did_key(public_key: bytes) -> str:
    """The ``did:key`` DID of a 32-byte Ed25519 public key.

    Raises:
        ValueError: ``public_key`` is not 32 bytes.
    """
    return "did:key:" + multibase_key(public_key)


def ed25519_key(did_or_multibase: str) -> bytes:
    """The 32-byte Ed25519 public key a ``did:key`` DID (or its bare multibase ``z6Mk...``) carries.

    Source: a caller's token (untrusted).

    Raises:
        ValueError: not a ``did:key``, not base58btc multibase (``z``), not the ed25519-pub
            multicodec, not 32 bytes of key, or not the one canonical spelling of that key.
    """
    if not isinstance(did_or_multibase, str):
        raise ValueError("a did:key must be a string")
    text = did_or_multibase
    if text.startswith("did:"):
        if not text.startswith("did:key:"):
            raise ValueError(f"{text[:64]!r} is not a did:key DID")
        text = text[len("did:key:"):]
    if len(text) > 64:
        raise ValueError("the did:key is too long for an Ed25519 key")
    if not text.startswith("z"):
        raise ValueError("a did:key's key must be base58btc multibase (starting with 'z')")
    raw = b58decode(text[1:])
    if raw[:2] != ED25519_MULTICODEC:
        raise ValueError("the did:key does not hold an Ed25519 key (multicodec 0xed01)")
    key = raw[2:]
    if len(key) != 32:
        raise ValueError(f"the did:key's Ed25519 key is {len(key)} bytes, not 32")
    if multibase_key(key) != text:
        raise ValueError("the did:key is not the canonical spelling of its key")
    return key


def did_document(did: str, public_key: bytes, endpoint: str) -> dict[str, Any]:
    """The venue's DID document, laid out as the Covia venue serves it at ``/.well-known/did.json``.

    Args:
        did: the venue's DID. public_key: its 32-byte Ed25519 key.
        endpoint: the venue's API base URL (``http://host:port/api/v1/``), its ``service`` endpoint.

    Returns:
        ``{id, @context, verificationMethod: [{id, type: Multikey, controller, publicKeyMultibase}],
        authentication, assertionMethod, capabilityDelegation, capabilityInvocation,
        service: [{type: Covia.API.v1, serviceEndpoint}]}``.
    """
    key = multibase_key(public_key)
    key_id = f"{did}#{key}"
    return {"id": did, "@context": DID_CONTEXT,
            "verificationMethod": [{"id": key_id, "type": "Multikey", "controller": did, "publicKeyMultibase": key}],
            "authentication": [key_id], "assertionMethod": [key_id], "capabilityDelegation": [key_id],
            "capabilityInvocation": [key_id],
            "service": [{"id": f"{did}#api", "type": SERVICE_TYPE, "serviceEndpoint": endpoint}]}
