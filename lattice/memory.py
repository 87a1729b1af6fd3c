"""In-memory backend of the store port, for tests and ephemeral servers."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .errors import NotFound
from .gc import Barrier, closure
from .store import RefUpdate, check_object, check_ref_updates, submit_by_commit

__all__ = ["MemoryStore"]


class MemoryStore:
    """Objects and refs in two dicts behind one lock. Not durable.

    Stored bytes are copied on the way in, so a caller mutating a buffer after
    commit cannot change what the store holds.
    """

    def __init__(self) -> None:
        self._objects: dict[bytes, bytes] = {}
        self._refs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._barrier = Barrier()
        self.generation = 0

    def get(self, d: bytes) -> bytes:
        try:
            data = self._objects[bytes(d)]
        except KeyError:
            raise NotFound(f"no object {bytes(d).hex()}") from None
        return check_object(bytes(d), data)

    def has(self, d: bytes) -> bool:
        return bytes(d) in self._objects

    def ref(self, name: str) -> bytes | None:
        return self._refs.get(name)

    def refs(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        with self._lock:
            items = sorted((n, d) for n, d in self._refs.items() if n.startswith(prefix))
        return iter(items)

    def read_refs(self, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, bytes]:
        """See :func:`lattice.store.read_refs` (one snapshot)."""
        with self._lock:
            out = {n: self._refs[n] for n in names if n in self._refs}
            if prefixes:
                out.update((n, d) for n, d in self._refs.items() if n.startswith(tuple(prefixes)))
        return out

    def commit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate], *,
               generation: int | None = None) -> bool:
        ups = check_ref_updates(objects, updates)
        with self._lock:
            if generation is not None and generation != self.generation:
                return False  # a sweep since the writer read: it must read again
            for u in ups:
                if self._refs.get(u.name) != u.expected:
                    return False
            self._barrier.record(objects, (u.new for u in ups), self._objects.get)
            for d, data in objects.items():
                self._objects.setdefault(bytes(d), bytes(data))
            for u in ups:
                if u.new is None:
                    self._refs.pop(u.name, None)
                else:
                    self._refs[u.name] = bytes(u.new)
        return True

    async def acommit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate], *,
                      generation: int | None = None) -> bool:
        return self.commit(objects, updates, generation=generation)

    def submit(self, objects: Mapping[bytes, bytes], updates: Iterable[RefUpdate], *,
               generation: int | None = None) -> concurrent.futures.Future[bool]:
        """:meth:`commit`, run now; a future already resolved to its result (see :meth:`lattice.store.Store.submit`)."""
        return submit_by_commit(self, objects, updates, generation=generation)

    # -- garbage collection (lattice.gc) --------------------------------------------------
    def objects(self) -> Iterator[tuple[bytes, int]]:
        """``(digest, size)`` of every stored object."""
        with self._lock:
            items = [(d, len(b)) for d, b in self._objects.items()]
        return iter(items)

    def gc_begin(self, extra: Any = None) -> None:
        with self._lock:
            self._barrier.start(extra)

    def gc_sweep(self, live: set[bytes] | None) -> tuple[int, int]:
        with self._lock:
            extra = self._barrier.extra
            protected = self._barrier.stop()
            if live is None:
                return 0, 0
            closure(self._objects.get, [*protected, *self._refs.values()], live, extra)
            dead = [d for d in self._objects if d not in live]
            freed = sum(len(self._objects.pop(d)) for d in dead)
            self.generation += 1
            return len(dead), freed

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._objects)
