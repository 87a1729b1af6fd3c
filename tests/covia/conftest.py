"""Real `lattice serve` processes for the tests that drive them with the official Covia SDK (`covia`, pinned in the
``test`` extra).

Three servers, each started once per session on its own LMDB directory:

* :func:`open_url`: no authentication (one local caller), as `lattice serve` runs by default;
* :func:`tokens_url`: bearer tokens (``--tokens``): :data:`ALICE` and :data:`BOB` are two callers;
* :func:`didauth_url`: self-issued Ed25519 JWTs (the SDK's ``Ed25519Auth``) accepted as caller identities
  (:data:`DID_AUTH_FLAG`): each ``did:key`` is a caller.

Each server's output goes to a file (a pipe would fill up over a session); at teardown the server must stop
cleanly and its output must hold no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve import free_port, serve

#: the `lattice serve` flag that accepts the SDK's self-issued Ed25519 JWTs (``Ed25519Auth``) as caller identities
DID_AUTH_FLAG = "--accept-did-auth"

#: bearer tokens of the tokened server, and the caller each names
ALICE = "alice-sdk-token-0123456789abcdef"
BOB = "bob-sdk-token-fedcba9876543210"


def _start(tmp: Path, *args: str) -> Iterator[str]:
    """Start `lattice serve --data TMP/data ARGS...`, yield its base URL, stop it and check its output."""
    port = free_port()
    log = tmp / "serve.log"
    with log.open("wb") as out:
        try:
            proc = serve(port, "--data", str(tmp / "data"), *args, output=out)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{log.read_text(errors='replace')}") from None
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(15)
    text = log.read_text(errors="replace")
    assert proc.returncode in (0, -15), text
    assert "Traceback" not in text, text


@pytest.fixture(scope="session")
def open_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a `lattice serve` without authentication."""
    yield from _start(tmp_path_factory.mktemp("covia-open"))


@pytest.fixture(scope="session")
def tokens_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a `lattice serve --tokens` with the callers ``alice`` (:data:`ALICE`) and ``bob`` (:data:`BOB`)."""
    tmp = tmp_path_factory.mktemp("covia-tokens")
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({ALICE: "alice", BOB: "bob"}))
    yield from _start(tmp, "--tokens", str(tokens))


@pytest.fixture(scope="session")
def didauth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a `lattice serve` that accepts the SDK's Ed25519 JWTs (:data:`DID_AUTH_FLAG`)."""
    yield from _start(tmp_path_factory.mktemp("covia-did"), DID_AUTH_FLAG)
