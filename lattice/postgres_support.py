"""The PostgreSQL backend's schema, limits and error mapping (used by :mod:`lattice.postgres`)."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any, Sequence

from psycopg_pool import PoolClosed, PoolTimeout

from .digest import digest
from .errors import InvalidValue, LatticeError, StoreError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "MAX_REF_BYTES", "MAX_GROUP", "MAX_GROUP_BYTES", "INSERT_CHUNK_BYTES",
           "REF_LOCK_SPACE", "SCHEMA_LOCK_SPACE", "GC_LOCK_SPACE", "map_error", "package_version", "lock_key",
           "text_ok", "name_error", "like_prefix", "fetch_refs", "redact", "connection_lost", "request_specific"]

#: The schema version this module creates and reads; see :data:`MIGRATIONS`.
SCHEMA_VERSION = 2

#: Statements that bring the schema from version ``v - 1`` to ``v``, keyed by ``v``.
#: Append a version to change the schema; never edit a released one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE lattice_objects (
               digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
               data bytea NOT NULL)""",
        """CREATE TABLE lattice_refs (
               name text COLLATE "C" PRIMARY KEY CHECK (name <> ''),
               digest bytea NOT NULL CHECK (octet_length(digest) = 32))""",
    ),
    # garbage collection (lattice.postgres_gc): the collection's state, one row, and the
    # digests the commits that landed during a collection protect from its sweep
    2: (
        """CREATE TABLE lattice_gc (
               id integer PRIMARY KEY CHECK (id = 1),
               generation bigint NOT NULL,
               active boolean NOT NULL,
               run bytea,
               started_at timestamptz,
               started_by text)""",
        "INSERT INTO lattice_gc (id, generation, active) VALUES (1, 0, false)",
        "CREATE TABLE lattice_gc_protected (digest bytea PRIMARY KEY)",
    ),
}

#: Longest ref name in UTF-8 bytes (a B-tree entry must fit in a third of a page).
MAX_REF_BYTES = 1024
#: Most commit requests applied in one transaction.
MAX_GROUP = 256
#: Object bytes above which a group takes no further request (one request may exceed it).
MAX_GROUP_BYTES = 16 * 1024 * 1024
#: Object bytes per INSERT statement.
INSERT_CHUNK_BYTES = 8 * 1024 * 1024

#: First key of the two-int advisory locks on refs ("LATR"); the schema lock uses "LATS".
REF_LOCK_SPACE = 0x4C415452
SCHEMA_LOCK_SPACE = 0x4C415453
#: First key of the collection's locks ("LATG"): ``(GC_LOCK_SPACE, 0)``, taken shared by every
#: commit and exclusive by a collection's start and sweep; ``(GC_LOCK_SPACE, 1)``, held by the
#: one collection running (see :mod:`lattice.postgres_gc`)
GC_LOCK_SPACE = 0x4C415447

#: SQLSTATE classes (first two characters) with a lattice error other than StoreError.
_ERROR_CLASSES: dict[str, type[LatticeError]] = {"22": InvalidValue, "54": InvalidValue}
#: What a SQLSTATE class means, for messages.
_CLASS_NAMES = {
    "08": "connection failure", "22": "data exception", "23": "integrity constraint violation",
    "25": "invalid transaction state", "28": "authentication failed", "3D": "database does not exist",
    "3F": "schema does not exist", "40": "transaction rolled back", "42": "schema or privilege problem",
    "53": "server out of resources", "54": "program limit exceeded", "55": "object not in prerequisite state",
    "57": "server shutting down or query cancelled", "58": "server system error", "XX": "server internal error",
}

def map_error(e: BaseException, doing: str) -> LatticeError:
    """Return the lattice error for a psycopg error, by SQLSTATE class (the caller raises it ``from e``).

    Args:
        e: a :class:`psycopg.Error` (or a pool error: no SQLSTATE, a ``StoreError``).
        doing: what the store was doing, for the message (``"commit"``).

    Returns:
        :class:`InvalidValue` for classes ``22`` and ``54``, else :class:`StoreError`;
        the message has the SQLSTATE and the server's text, ``__cause__`` is ``e``.
    """
    state = getattr(e, "sqlstate", None) or ""
    cls = _ERROR_CLASSES.get(state[:2], StoreError)
    what = _CLASS_NAMES.get(state[:2], type(e).__name__)
    code = f" (SQLSTATE {state})" if state else ""
    detail = str(e).strip() or type(e).__name__
    err = cls(f"PostgreSQL {doing} failed: {what}{code}: {detail}")
    err.__cause__ = e
    return err


def package_version() -> str:
    try:
        return importlib.metadata.version("agent-lattice")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def lock_key(name: str) -> int:
    """The second key of a ref's advisory lock: 32 bits of blake3 of its name, signed."""
    return int.from_bytes(digest(name.encode("utf-8"))[:4], "big", signed=True)


def text_ok(s: str) -> bool:
    """Whether PostgreSQL text can hold ``s``: no NUL, encodable as UTF-8."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in s


def name_error(name: str) -> str | None:
    """Why ``name`` cannot be stored as a ref name, or None if it can."""
    if not text_ok(name):
        return "contains NUL or is not encodable as UTF-8 (PostgreSQL text can hold neither)"
    size = len(name.encode("utf-8"))
    if size > MAX_REF_BYTES:
        return f"is {size} bytes in UTF-8; at most {MAX_REF_BYTES} allowed"
    return None



def like_prefix(prefix: str) -> str:
    """The ``LIKE`` pattern of the names starting with ``prefix`` (its wildcards and escapes escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fetch_refs(conn: Any, names: Sequence[str], prefixes: Sequence[str]) -> dict[str, bytes]:
    """``{name: digest}`` of the refs in ``names`` and of those starting with a prefix, by one
    statement on ``conn`` (names and prefixes no stored name can equal or start with are skipped)."""
    names = [n for n in names if isinstance(n, str) and not name_error(n)]
    patterns = [like_prefix(p) for p in prefixes if text_ok(p)]
    if not names and not patterns:
        return {}
    rows = conn.execute("SELECT name, digest FROM lattice_refs WHERE name = ANY(%s) OR name LIKE ANY(%s)",
                        (names, patterns)).fetchall()
    return {name: bytes(d) for name, d in rows}


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    url = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def connection_lost(e: BaseException) -> bool:
    """Whether ``e`` means the connection broke (a read may be retried on a new one)."""
    if isinstance(e, (PoolTimeout, PoolClosed)):
        return False
    state = getattr(e, "sqlstate", None) or ""
    return not state or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def request_specific(e: LatticeError) -> bool:
    """Whether a group's failure may be due to one request's data (SQLSTATE 22, 23, 54)."""
    state = getattr(e.__cause__, "sqlstate", None) or ""
    return state[:2] in ("22", "23", "54")
