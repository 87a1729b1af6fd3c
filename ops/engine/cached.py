"""A process-local cache of object bytes in front of a store whose reads cross a network.

Objects are immutable and named by their digest, so a copy read once (re-hashed then by the
backend) or written by this process (checked against its digest by the backend's commit)
stays valid for ever: the engine re-reads the same commits and nodes many times per
operation (about 19 reads of known objects per ``agent:request`` on PostgreSQL), each a
round trip on the event loop. Refs are never cached: they move.

Used in front of :class:`lattice.postgres.PostgresStore` by ``lattice serve --store
postgresql://...``. A collection (by this process or another) may delete an object still
cached here: reading it stays right (its bytes never change, and a live object links only
to live ones), but whether the store *has* an object is always asked of the backend, since
a writer may rely on it to leave an object out of a commit.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Iterable, Iterator, Mapping

from lattice.store import RefUpdate

__all__ = ["CachedStore"]


class CachedStore:
    """``store`` with object bytes cached in this process (refs read through every time).

    Args:
        store: the backend. capacity: bytes of objects kept (default 64 MiB; when over, the
            oldest quarter is dropped).

    Every other attribute (``url``, ``stats``, ``schema_version``...) is the backend's.
    """

    def __init__(self, store: Any, capacity: int = 64 << 20):
        self.inner, self.capacity = store, capacity
        self._objects: dict[bytes, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<CachedStore {self.inner!r}>"

    @property
    def backend(self) -> str:
        """The backend's class name (for the server's status)."""
        return type(self.inner).__name__

    def _keep(self, objects: Mapping[bytes, bytes]) -> None:
        with self._lock:
            for d, data in objects.items():
                d = bytes(d)
                if d not in self._objects:
                    data = bytes(data)
                    self._objects[d] = data
                    self._size += len(data)
            if self._size > self.capacity:
                for k in list(itertools.islice(iter(self._objects), len(self._objects) // 4 + 1)):
                    self._size -= len(self._objects.pop(k))

    def get(self, d: bytes) -> bytes:
        data = self._objects.get(bytes(d))
        if data is not None:
            self.hits += 1
            return data
        self.misses += 1
        data = self.inner.get(d)
        self._keep({d: data})
        return data

    def has(self, d: bytes) -> bool:
        return self.inner.has(d)  # never from the cache: a sweep elsewhere may have deleted it

    def ref(self, name: str) -> bytes | None:
        return self.inner.ref(name)

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        return self.inner.refs(prefix)

    def commit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), **kw: Any) -> bool:
        ok = self.inner.commit(objects, updates, **kw)
        if ok:
            self._keep(objects)
        return ok

    async def acommit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate] = (), **kw: Any) -> bool:
        ok = await self.inner.acommit(objects, updates, **kw)
        if ok:
            self._keep(objects)
        return ok

    def close(self) -> None:
        self.inner.close()
