"""Fixtures of the scale-out tests: a PostgreSQL server for the session, a fresh database per test (tests/pg.py)."""

from tests.pg import postgres_server, postgres_url  # noqa: F401 (pytest fixtures)
