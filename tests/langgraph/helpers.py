"""Shared helpers of the LangGraph saver tests."""

from __future__ import annotations

from typing import Any

BACKENDS = ["memory", "lmdb", "sqlite", "postgres"]


def spec_of(backend: str, tmp_path: Any, request: Any = None) -> str:
    """The connection string of a fresh store of ``backend``: under ``tmp_path`` for LMDB and SQLite; for
    PostgreSQL a fresh database of the session's server (``request``: the test's pytest request,
    which provides the ``postgres_url`` fixture of tests/pg.py)."""
    if backend == "memory":
        return ":memory:"
    if backend == "postgres":
        return request.getfixturevalue("postgres_url")
    if backend == "sqlite":
        return f"sqlite:{tmp_path}/lg.db"
    return str(tmp_path / "lg")
