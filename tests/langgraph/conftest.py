"""Fixtures of the LangGraph saver tests: a saver on a fresh store of each backend (memory, LMDB).

Without the langgraph extra (``pip install -e '.[test]'`` brings it) the folder is not collected.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.langgraph.helpers import BACKENDS, spec_of

if importlib.util.find_spec("langgraph") is None or importlib.util.find_spec("langgraph.checkpoint.conformance") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    from ops.langgraph import LatticeSaver

    @pytest.fixture(params=BACKENDS)
    def backend(request) -> str:
        return request.param

    @pytest.fixture
    def saver(backend, tmp_path):
        """A :class:`LatticeSaver` on a fresh store of each backend."""
        with LatticeSaver.from_conn_string(spec_of(backend, tmp_path)) as s:
            yield s
