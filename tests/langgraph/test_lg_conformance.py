"""LangGraph's checkpointer conformance suite (langgraph-checkpoint-conformance, pinned) on every backend.

Every capability, base and extended, must be detected and pass: put, put_writes,
get_tuple, list, delete_thread, delete_for_runs, copy_thread, prune.
"""

from __future__ import annotations

import tempfile

import pytest

from tests.pg import create_database, drop_database

conformance = pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES  # noqa: E402

from ops.langgraph import AsyncLatticeSaver, LatticeSaver  # noqa: E402


def _registered(cls, backend: str, server: str | None):
    """A factory of fresh savers: a new memory store, LMDB directory, SQLite file or PostgreSQL database each time."""
    @conformance.checkpointer_test(name=f"{cls.__name__}[{backend}]")
    async def factory():
        if backend == "memory":
            async for s in _open(cls, ":memory:"):
                yield s
        elif backend == "postgres":
            url = create_database(server)
            try:
                async for s in _open(cls, url):
                    yield s
            finally:
                drop_database(url)
        else:
            with tempfile.TemporaryDirectory() as d:
                async for s in _open(cls, f"sqlite:{d}/lg.db" if backend == "sqlite" else d):
                    yield s
    return factory


async def _open(cls, spec: str):
    if cls is AsyncLatticeSaver:
        async with cls.from_conn_string(spec) as s:
            yield s
    else:
        with cls.from_conn_string(spec) as s:
            yield s


@pytest.mark.parametrize("cls", [LatticeSaver, AsyncLatticeSaver], ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", ["memory", "lmdb", "sqlite", "postgres"])
async def test_conformance_full(cls, backend, request):
    server = request.getfixturevalue("postgres_server") if backend == "postgres" else None
    report = await conformance.validate(_registered(cls, backend, server))
    failures = {k: r.failures for k, r in report.results.items() if r.failures}
    assert not failures, failures
    assert {k for k, r in report.results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    assert report.passed_all_base() and report.passed_all(), report.to_dict()
    assert report.conformance_level() == "FULL"
