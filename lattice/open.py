"""Open the store a spec names: an LMDB directory, ``:memory:``, ``sqlite:FILE`` or a PostgreSQL URL."""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import InvalidValue
from .store import Store

__all__ = ["open_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(spec: str | os.PathLike, **options: Any) -> Store:
    """Open the backend ``spec`` names.

    Args:
        spec: one of

            * ``":memory:"``: a new, empty :class:`~lattice.memory.MemoryStore` (not kept);
            * ``"sqlite:PATH"`` (or ``"sqlite://PATH"``: ``sqlite:///tmp/a.db`` is ``/tmp/a.db``): a
              :class:`~lattice.sqlite.SqliteStore` in that file (created if missing);
            * ``"postgresql://user:password@host:port/dbname?..."`` or ``"postgres://..."``:
              a :class:`~lattice.postgres.PostgresStore` on that database (created
              tables on first use);
            * anything else: the directory of an :class:`~lattice.lmdb.LmdbStore`
              (created if missing), the default.
        **options: keyword arguments of the backend's constructor: ``map_size``,
            ``durable``, ``max_readers`` (LMDB); ``durable``, ``timeout`` (SQLite); ``pool_size``, ``timeout``,
            ``application_name`` (PostgreSQL); none for ``:memory:``.

    Returns:
        The open store; the caller closes it (:meth:`~lattice.store.Store.close`).

    Raises:
        InvalidValue: ``spec`` is empty, is a URL of another scheme (``file://``: no
            directory is created for it), ``sqlite:`` without a path, or options are given
            for ``:memory:``.
        TypeError: an option the backend does not take.
        StoreError: the backend could not open it (the LMDB directory is already
            open in this process or unusable; the PostgreSQL server is unreachable,
            or its schema is newer than this version knows).

    Example:
        >>> from lattice.open import open_store
        >>> store = open_store(":memory:")
        >>> store.ref("main") is None
        True
        >>> store.close()
    """
    spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec:
        raise InvalidValue(f"store spec must be a non-empty path or URL, got {spec!r}",
                           hint="an LMDB directory, ':memory:', sqlite:FILE or postgresql://...")
    if spec == ":memory:":
        if options:
            raise InvalidValue(f"':memory:' takes no options, got {sorted(options)}")
        from .memory import MemoryStore

        return MemoryStore()
    if spec[:7].lower() == "sqlite:":
        from .sqlite import SqliteStore, sqlite_path

        return SqliteStore(sqlite_path(spec), **options)
    scheme = _SCHEME.match(spec)
    if scheme:
        if scheme.group(1).lower() not in ("postgresql", "postgres"):
            raise InvalidValue(f"store URL scheme {scheme.group(1)!r} is not supported",
                               hint="an LMDB directory, ':memory:', sqlite:FILE or postgresql://...")
        from .postgres import PostgresStore

        # URL schemes are case-insensitive, libpq's parser is not
        return PostgresStore(scheme.group(1).lower() + spec[len(scheme.group(1)):], **options)
    from .lmdb import LmdbStore

    return LmdbStore(spec, **options)
