"""Fixtures of the engine tests; helpers are in ``tests/ops/helpers.py``."""

from __future__ import annotations

import pytest

from lattice.memory import MemoryStore
from ops.engine.runtime import Runtime


@pytest.fixture
async def rt():
    """A started :class:`Runtime` on a fresh :class:`MemoryStore`, closed afterwards."""
    r = Runtime(MemoryStore())
    await r.start()
    yield r
    await r.close()
