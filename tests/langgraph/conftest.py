"""Fixtures of the LangGraph saver tests: one saver per backend (memory, LMDB), sync and async."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra")

from ops.langgraph import AsyncLatticeSaver, LatticeSaver  # noqa: E402
from tests.langgraph.helpers import BACKENDS, spec_of  # noqa: E402


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def saver(backend, tmp_path):
    """A :class:`LatticeSaver` on a fresh store of each backend."""
    with LatticeSaver.from_conn_string(spec_of(backend, tmp_path)) as s:
        yield s


@pytest.fixture
async def asaver(backend, tmp_path):
    """An :class:`AsyncLatticeSaver` on a fresh store of each backend."""
    async with AsyncLatticeSaver.from_conn_string(spec_of(backend, tmp_path)) as s:
        yield s
