"""Shared helpers of the LangGraph saver tests."""

from __future__ import annotations

BACKENDS = ["memory", "lmdb"]


def spec_of(backend: str, tmp_path) -> str:
    """The connection string of ``backend`` under ``tmp_path``."""
    return ":memory:" if backend == "memory" else str(tmp_path / "lg")
