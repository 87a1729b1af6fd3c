"""Where the venue key is kept (ops.engine.identity): an LMDB key file, a PostgreSQL row, an operator's file;
and a real `lattice serve` that keeps its DID across restarts and takes its identity options from the env."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, NoEncryption, PrivateFormat

from covia.auth import Ed25519Auth
from ops.domain.did import ed25519_key
from ops.engine.identity import (KEY_FILE, IdentityError, VenueIdentity, load_key_file, lmdb_identity,
                                 postgres_identity)
from tests.pg import postgres_server, postgres_url  # noqa: F401 (pytest fixtures)
from tests.serve import BIN, free_port, serve


def test_an_lmdb_store_keeps_its_key_beside_the_data_mode_0600(tmp_path: Path) -> None:
    first = lmdb_identity(tmp_path)
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert lmdb_identity(tmp_path).did == first.did  # reused, not replaced
    assert first.did.startswith("did:key:z6Mk") and ed25519_key(first.did) == first.public_key
    assert "PRIVATE" not in repr(first) and first.source == str(key_file)
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left


def test_processes_creating_the_key_at_once_end_with_one_did(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        dids = set(pool.map(lambda _: lmdb_identity(tmp_path).did, range(16)))
    assert len(dids) == 1 and [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_an_operators_key_file_is_the_venues_key(tmp_path: Path) -> None:
    seed = bytes(range(32))
    key = Ed25519PrivateKey.from_private_bytes(seed)
    path = tmp_path / "venue.pem"  # as `openssl genpkey -algorithm ed25519` writes it
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    assert load_key_file(path).did == Ed25519Auth.from_seed(seed).did


@pytest.mark.parametrize("content, message", [
    (b"not a key", "not a PEM private key"),
    (ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")), "encrypted"),
    (ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), "not an Ed25519 key"),
])
def test_a_key_file_that_is_not_an_ed25519_key_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(content)
    with pytest.raises(IdentityError, match=message):
        load_key_file(path)


def test_a_missing_key_file_is_created_unless_told_not_to(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="no venue key file"):
        load_key_file(tmp_path / "none.pem", create=False)
    with pytest.raises(IdentityError, match="cannot create"):
        load_key_file(tmp_path / "no-such-dir" / "k.pem")
    assert load_key_file(tmp_path / "k.pem").did == load_key_file(tmp_path / "k.pem", create=False).did


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "k.pem"
    did = load_key_file(path).did
    os.chmod(path, 0o644)
    assert load_key_file(path).did == did
    assert "chmod 600" in caplog.text


def test_memory_identities_are_new_each_time() -> None:
    assert VenueIdentity.generate().did != VenueIdentity.generate().did


def test_processes_of_one_database_share_one_did(postgres_url: str) -> None:  # noqa: F811
    barrier = threading.Barrier(4)

    def open_one(_: int) -> str:
        barrier.wait()
        return postgres_identity(postgres_url).did
    with ThreadPoolExecutor(4) as pool:
        dids = set(pool.map(open_one, range(4)))
    assert len(dids) == 1
    assert postgres_identity(postgres_url).did in dids


def test_an_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(IdentityError, match="cannot keep the venue key in postgresql://u:\\*\\*\\*@127.0.0.1:1/db"):
        postgres_identity("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")


# -- a real server ---------------------------------------------------------------------------------

def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out.decode()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATTICE_")}
    return {**env, **extra}


def test_serve_keeps_its_did_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dids = []
    for _ in range(2):
        port = free_port()
        proc = serve(port, "--data", str(data), env=_env())
        try:
            status, doc = _get(port, "/api/v1/status"), _get(port, "/.well-known/did.json")
        finally:
            out = _stop(proc)
        assert status["did"] == doc["id"] and f"DID {status['did']}" in out
        dids.append(status["did"])
    assert dids[0] == dids[1] and (data / KEY_FILE).exists()


def test_serve_takes_the_key_and_did_auth_from_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "operator.pem"
    port = free_port()
    proc = serve(port, "--memory", env=_env(LATTICE_VENUE_KEY=str(key_file), LATTICE_ACCEPT_DID_AUTH="1"))
    try:
        did = _get(port, "/api/v1/status")["did"]
        me = Ed25519Auth.generate()
        headers = {"Content-Type": "application/json"}
        me.apply(headers, audience=did)
        body = json.dumps({"operation": "covia:write", "input": {"path": f"{me.did}/w/x", "value": 1}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invoke", data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["status"] == "COMPLETE"
        wrong = {"Content-Type": "application/json"}
        me.apply(wrong, audience="did:key:z6MkElsewhere")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invoke", data=body, headers=wrong)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401 and json.loads(e.value.read())["errorCode"] == "token_audience"
    finally:
        out = _stop(proc)
    assert did == load_key_file(key_file, create=False).did and "did:key tokens accepted" in out


def test_serve_refuses_a_key_file_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("nonsense")
    r = subprocess.run([str(BIN / "lattice"), "serve", "--data", str(tmp_path / "d"), "--port", str(free_port()),
                        "--venue-key", str(bad)], capture_output=True, text=True, timeout=30, env=_env())
    assert r.returncode == 1 and "is not a PEM private key" in r.stderr


def test_serve_help_names_the_identity_options() -> None:
    out = subprocess.run([str(BIN / "lattice"), "serve", "--help"], capture_output=True, text=True, timeout=20).stdout
    assert "--accept-did-auth" in out and "--venue-key" in out and "LATTICE_ACCEPT_DID_AUTH" in out


def test_the_covia_sdk_signs_in_with_its_did_and_reads_the_venue_did(tmp_path: Path) -> None:
    from covia import Grid
    from covia.exceptions import GridError
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"alice-token-0123456789abcdef": "alice"}))
    port = free_port()
    proc = serve(port, "--memory", "--tokens", str(tokens), "--accept-did-auth", env=_env())
    plain_port = free_port()
    plain = serve(plain_port, "--memory", "--tokens", str(tokens), env=_env())  # DID tokens off
    try:
        me, other = Ed25519Auth.generate(), Ed25519Auth.generate()
        did = _get(plain_port, "/.well-known/did.json")["id"]
        with Grid.connect(f"http://127.0.0.1:{plain_port}", auth=me) as venue:
            assert venue.did == did  # status is 401 for it: the SDK read the public DID document
            with pytest.raises(GridError) as e:
                venue.invoke("covia:read", {"path": "w/x"})
            assert e.value.status_code == 401
        with Grid.connect(f"http://127.0.0.1:{port}", auth=me) as venue, \
                Grid.connect(f"http://127.0.0.1:{port}", auth=other) as theirs:
            assert venue.did == venue.status().did and venue.did.startswith("did:key:")
            assert venue.invoke("covia:write", {"path": f"{me.did}/w/x", "value": 5}).data.output["written"]
            assert venue.invoke("covia:read", {"path": "/w/x"}).data.output == {"exists": True, "value": 5,
                                                                                 "valueBytes": 1}
            assert theirs.invoke("covia:read", {"path": "/w/x"}).data.output == {"exists": False, "value": None}
            with pytest.raises(GridError) as e:
                theirs.invoke("covia:read", {"path": f"{me.did}/w/x"})
            assert e.value.status_code == 404
    finally:
        _stop(proc)
        _stop(plain)
