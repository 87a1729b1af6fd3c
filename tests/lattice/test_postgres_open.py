"""open_store (lattice/open.py): which spec opens which backend, and the errors of a bad spec."""

from __future__ import annotations

import doctest

import pytest

import lattice.open
from lattice.digest import digest
from lattice.errors import InvalidValue, StoreError
from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from lattice.open import open_store
from lattice.postgres import PostgresStore
from lattice.store import RefUpdate


def test_memory():
    s = open_store(":memory:")
    assert type(s) is MemoryStore
    s.close()
    with pytest.raises(InvalidValue):
        open_store(":memory:", durable=False)


def test_lmdb_directory_is_the_default(tmp_path):
    path = tmp_path / "data"
    with open_store(str(path), durable=False) as s:
        assert type(s) is LmdbStore and not s.durable
        d = digest(b"v")
        assert s.commit({d: b"v"}, [RefUpdate("main", None, d)])
    with open_store(path) as s:  # a PathLike too
        assert s.ref("main") == d
    with pytest.raises(TypeError):
        open_store(str(tmp_path / "other"), pool_size=2)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_postgres_urls(postgres_url, scheme):
    url = scheme + postgres_url[len("postgresql"):]
    with open_store(url, pool_size=2) as s:
        assert type(s) is PostgresStore
        assert s.stats()["pool_size"] == 2


def test_bad_specs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ("", "sqlite:", "sqlite://", "file:///tmp/x", "mysql://h/db"):
        with pytest.raises(InvalidValue):
            open_store(spec)
    assert list(tmp_path.iterdir()) == []  # no directory made for a URL
    with pytest.raises(StoreError):
        open_store("postgresql://postgres@127.0.0.1:1/x")


def test_doctests():
    result = doctest.testmod(lattice.open, verbose=False, report=True)
    assert result.failed == 0 and result.attempted > 0
