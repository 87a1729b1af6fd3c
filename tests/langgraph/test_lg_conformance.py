"""LangGraph's checkpointer conformance suite (langgraph-checkpoint-conformance, pinned) on every backend.

Every capability, base and extended, must be detected and pass: put, put_writes,
get_tuple, list, delete_thread, delete_for_runs, copy_thread, prune.
"""

from __future__ import annotations

import tempfile

import pytest

conformance = pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES  # noqa: E402

from ops.langgraph import AsyncLatticeSaver, LatticeSaver  # noqa: E402


def _registered(cls, backend: str):
    @conformance.checkpointer_test(name=f"{cls.__name__}[{backend}]")
    async def factory():
        if backend == "memory":
            if cls is AsyncLatticeSaver:
                async with cls.from_conn_string(":memory:") as s:
                    yield s
            else:
                with cls.from_conn_string(":memory:") as s:
                    yield s
            return
        with tempfile.TemporaryDirectory() as d:
            if cls is AsyncLatticeSaver:
                async with cls.from_conn_string(d) as s:
                    yield s
            else:
                with cls.from_conn_string(d) as s:
                    yield s
    return factory


@pytest.mark.parametrize("cls", [LatticeSaver, AsyncLatticeSaver], ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", ["memory", "lmdb"])
async def test_conformance_full(cls, backend):
    report = await conformance.validate(_registered(cls, backend))
    failures = {k: r.failures for k, r in report.results.items() if r.failures}
    assert not failures, failures
    assert {k for k, r in report.results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    assert report.passed_all_base() and report.passed_all(), report.to_dict()
    assert report.conformance_level() == "FULL"
