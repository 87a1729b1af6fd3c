"""Fixtures of the HTTP tests: the v1 app over a MemoryStore (or an LmdbStore), driven by aiohttp's test client.

Helpers (``invoke(client, op, input) -> (status, body)``, ``wait_job``, ``snapshot``...) live in
``tests/http/helpers.py`` (imported as ``tests.http.helpers``, so no module name clashes with other test dirs).
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from ops.surfaces.app import create_app
from ops.engine.runtime import Runtime
from tests.http.helpers import SMALL_BODY


@pytest.fixture
def store():
    """The MemoryStore behind :func:`client` (exposed to check that rejections change nothing)."""
    s = MemoryStore()
    yield s
    s.close()


@pytest.fixture
async def client(store):
    app = create_app(Runtime(store))
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.fixture
async def lmdb_client(tmp_path):
    """The app over an LmdbStore in ``tmp_path`` (closed after the client)."""
    s = LmdbStore(tmp_path / "lmdb", durable=False)
    try:
        async with TestClient(TestServer(create_app(Runtime(s)))) as c:
            yield c
    finally:
        s.close()


@pytest.fixture(params=["memory", "lmdb"])
async def any_client(request, tmp_path):
    """The app over each backend in turn."""
    if request.param == "memory":
        s = MemoryStore()
    else:
        s = LmdbStore(tmp_path / "lmdb", durable=False)
    try:
        async with TestClient(TestServer(create_app(Runtime(s)))) as c:
            yield c
    finally:
        s.close()



@pytest.fixture
async def small_client(store):
    """The app with ``max_body=4096`` over :func:`store`."""
    app = create_app(Runtime(store), max_body=SMALL_BODY)
    async with TestClient(TestServer(app)) as c:
        yield c
