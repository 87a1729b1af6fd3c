"""Fixtures of the LangGraph saver tests: a saver on a fresh store of each backend (memory, LMDB,
SQLite, PostgreSQL: a fresh database of a server started for the session, see tests/pg.py).

Without the langgraph extra (``pip install -e '.[test]'`` brings it) the folder is not collected.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.langgraph.helpers import BACKENDS, spec_of
from tests.pg import postgres_server, postgres_url  # noqa: F401 (pytest fixtures)

if importlib.util.find_spec("langgraph") is None or importlib.util.find_spec("langgraph.checkpoint.conformance") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    from ops.langgraph import LatticeSaver

    @pytest.fixture(params=BACKENDS)
    def backend(request) -> str:
        return request.param

    @pytest.fixture
    def spec(backend, tmp_path, request) -> str:
        """The connection string of a fresh store of :func:`backend`."""
        return spec_of(backend, tmp_path, request)

    @pytest.fixture
    def saver(spec):
        """A :class:`LatticeSaver` on a fresh store of each backend."""
        with LatticeSaver.from_conn_string(spec) as s:
            yield s
