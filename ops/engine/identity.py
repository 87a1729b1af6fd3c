"""The venue's identity: an Ed25519 key the server keeps, and the ``did:key`` DID it gives.

Where the key lives follows the store, so that a server keeps its DID across restarts
and every process of one store shows the same DID:

* **LMDB**: a key file ``venue.key`` in the store's directory, beside ``data.mdb``,
  created mode 0600 by the first ``lattice serve`` and read by every later one;
* **PostgreSQL**: one row of the table ``lattice_venue_identity`` (created on first use),
  so every process sharing the database has one DID;
* **memory**: a new key per process;
* or a key file the operator names (``lattice serve --venue-key FILE``), created if missing.

A key file is an unencrypted PKCS#8 PEM Ed25519 private key, as
``openssl genpkey -algorithm ed25519 -out venue.key`` writes one. The key signs
nothing yet; its public half is the venue's DID (``GET /api/v1/status``'s ``did``, the
DID document at ``/.well-known/did.json``) and the audience DID tokens name.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat, PublicFormat,
                                                          load_pem_private_key)

from ..domain.did import did_document, did_key, multibase_key

__all__ = ["VenueIdentity", "IdentityError", "KEY_FILE", "PG_TABLE", "load_key_file", "lmdb_identity",
           "postgres_identity"]

log = logging.getLogger("lattice.identity")

#: the key file's name in an LMDB store's directory
KEY_FILE = "venue.key"
#: the PostgreSQL table holding the venue key (one row, ``name = 'venue'``)
PG_TABLE = "lattice_venue_identity"
#: second key of the advisory lock taken while the table is created (first: the store's schema space)
_PG_LOCK = 1


class IdentityError(Exception):
    """The venue key cannot be read or kept; the message says what to fix."""


class VenueIdentity:
    """The venue's Ed25519 key pair and its DID.

    Attributes:
        did: ``did:key:z6Mk...``. public_key: the 32-byte public key.
        source: where the key is kept (a file path, ``postgresql`` or ``memory``), for the log.
    """

    def __init__(self, private_key: Ed25519PrivateKey, source: str = "memory"):
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.did = did_key(self.public_key)
        self.source = source

    @classmethod
    def generate(cls) -> "VenueIdentity":
        """A new random key, kept nowhere (the identity of an in-memory store)."""
        return cls(Ed25519PrivateKey.generate(), "memory")

    @property
    def multibase(self) -> str:
        """The public key as multibase (``z6Mk...``)."""
        return multibase_key(self.public_key)

    def document(self, endpoint: str) -> dict:
        """The DID document (:func:`ops.domain.did.did_document`) naming ``endpoint`` as the API."""
        return did_document(self.did, self.public_key, endpoint)

    def __repr__(self) -> str:
        return f"VenueIdentity({self.did!r}, source={self.source!r})"  # never the private key


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def load_key_file(path: str | os.PathLike, *, create: bool = True) -> VenueIdentity:
    """The identity whose key is in the file ``path``; with ``create``, a new key written there first
    if there is no file (mode 0600; two processes creating it at once end with the same key).

    Raises:
        IdentityError: unreadable, not a PEM private key, encrypted, not Ed25519, or (no file and
            not ``create``) missing.
    """
    p = Path(path)
    if not p.exists():
        if not create:
            raise IdentityError(f"no venue key file at {p}")
        _create(p)
    try:
        data = p.read_bytes()
        mode = p.stat().st_mode
    except OSError as e:
        raise IdentityError(f"cannot read the venue key {p}: {e.strerror or e}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise IdentityError(f"{p} is encrypted: the venue key must be an unencrypted PEM file") from None
    except ValueError:
        raise IdentityError(f"{p} is not a PEM private key "
                            "(make one with: openssl genpkey -algorithm ed25519 -out FILE)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{p} holds a {type(key).__name__.removeprefix('_')}, not an Ed25519 key "
                            "(make one with: openssl genpkey -algorithm ed25519 -out FILE)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the venue key %s can be read by other users (mode %o): chmod 600 it", p, mode & 0o777)
    return VenueIdentity(key, str(p))


def _create(p: Path) -> None:
    """Write a new key at ``p``, atomically: a whole file appears, or another process's stays."""
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _pem(Ed25519PrivateKey.generate()))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, p)  # fails if another process made one first: then its key is the venue's
        except FileExistsError:
            pass
    except OSError as e:
        raise IdentityError(f"cannot create the venue key {p}: {e.strerror or e}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def lmdb_identity(directory: str | os.PathLike) -> VenueIdentity:
    """The identity of the LMDB store in ``directory``: its :data:`KEY_FILE`, created on first use.

    Raises:
        IdentityError: the key file cannot be created or read.
    """
    return load_key_file(Path(directory) / KEY_FILE)


def postgres_identity(url: str) -> VenueIdentity:
    """The identity of the PostgreSQL database at ``url``: the one row of :data:`PG_TABLE`, created
    (table and key) by the first process under an advisory lock, read by every other.

    Raises:
        IdentityError: the database cannot be reached, or the table cannot be created or read.
    """
    import psycopg

    from lattice.postgres_support import SCHEMA_LOCK_SPACE, redact
    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    try:
        with psycopg.connect(url, prepare_threshold=None, application_name="agent-lattice") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", (SCHEMA_LOCK_SPACE, _PG_LOCK))
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {PG_TABLE} (
                                 name text PRIMARY KEY,
                                 seed bytea NOT NULL CHECK (octet_length(seed) = 32),
                                 created_at timestamptz NOT NULL DEFAULT now())""")
            conn.execute(f"INSERT INTO {PG_TABLE} (name, seed) VALUES ('venue', %s) ON CONFLICT (name) DO NOTHING",
                         (seed,))
            row = conn.execute(f"SELECT seed FROM {PG_TABLE} WHERE name = 'venue'").fetchone()
    except psycopg.Error as e:
        raise IdentityError(f"cannot keep the venue key in {redact(url)}: {e}") from None
    return VenueIdentity(Ed25519PrivateKey.from_private_bytes(bytes(row[0])), "postgresql")
