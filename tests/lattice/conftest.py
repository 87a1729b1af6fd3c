"""Fixtures of the lattice tests: a PostgreSQL server for the session, a fresh database per test (see tests/pg.py)."""

from tests.pg import postgres_server, postgres_url  # noqa: F401 (pytest fixtures)
