"""Fixtures of the HTTP tests: the v1 app over a MemoryStore (or an LmdbStore), served on loopback and driven
by aiohttp's test client.

Every app is started by :func:`start_app`; the other fixtures are its common cases. Helpers
(``invoke(client, op, input) -> (status, body)``, ``wait_job``, ``snapshot``, the event-stream ``Reader``...)
live in ``tests/http/helpers.py`` (imported as ``tests.http.helpers``, so no module name clashes with other
test dirs).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lattice.lmdb import LmdbStore
from lattice.memory import MemoryStore
from ops.engine.runtime import Runtime
from ops.surfaces import mcp, sse
from ops.surfaces.app import create_app
from tests.http.helpers import SMALL_BODY


@pytest.fixture
def store():
    """The MemoryStore behind the apps of :func:`start_app` (exposed to check that rejections change nothing)."""
    s = MemoryStore()
    yield s
    s.close()


@pytest.fixture
async def start_app(store, tmp_path):
    """Start the v1 app on loopback: ``await start_app(backend, heartbeat=, mcp_mode=, **create_app options)``.

    Args (of the returned coroutine function):
        backend: ``"memory"`` (:func:`store`) or ``"lmdb"`` (a new LmdbStore in ``tmp_path``).
        heartbeat: seconds between keep-alives of the event streams (default: the app's).
        mcp_mode: MCP response mode, ``"json"``, ``"sse"`` or ``"auto"`` (default: the app's).
        options: :func:`ops.surfaces.app.create_app` options (``max_body``, ``tokens``...).

    Returns a started :class:`TestClient` (its app is ``client.app``, its server ``client.server``).
    Every client is closed after the test, then the LMDB stores.
    """
    clients: list[TestClient] = []
    stores: list[LmdbStore] = []

    async def start(backend: str = "memory", *, heartbeat: float | None = None, mcp_mode: str | None = None,
                    **options: Any) -> TestClient:
        if backend == "memory":
            s: Any = store
        else:
            s = LmdbStore(tmp_path / f"lmdb-{len(stores)}", durable=False)
            stores.append(s)
        app = create_app(Runtime(s), **options)
        if heartbeat is not None:
            app[sse.HEARTBEAT] = heartbeat
        if mcp_mode is not None:
            app[mcp.RESPONSE_MODE] = mcp_mode
        client = TestClient(TestServer(app))
        clients.append(client)
        await client.start_server()
        return client

    yield start
    for c in reversed(clients):
        await c.close()
    for s in stores:
        s.close()


@pytest.fixture
async def client(start_app):
    """The app over :func:`store`."""
    return await start_app()


@pytest.fixture
async def lmdb_client(start_app):
    """The app over an LmdbStore in ``tmp_path``."""
    return await start_app("lmdb")


@pytest.fixture(params=["memory", "lmdb"])
async def any_client(request, start_app):
    """The app over each backend in turn."""
    return await start_app(request.param)


@pytest.fixture
async def small_client(start_app):
    """The app with ``max_body=4096`` over :func:`store`."""
    return await start_app(max_body=SMALL_BODY)
