"""Garbage collection: mark every object reachable from every ref, sweep the rest.

The store is append-only: removed agents, deleted job records and squashed
versions leave objects nobody reaches. :func:`collect` frees them, and is safe
beside writers that keep committing:

1. **Barrier on** (``store.gc_begin()``): from now on every commit that lands
   records, in the backend, the digests it writes, the digests those objects
   link to, and the digests its refs move to (*protected*).
2. **Mark** from the refs as they are now: every commit of every chain (parents
   and jump pointers), every object under each root and input. This is the long
   part; commits go on meanwhile.
3. **Sweep** (``store.gc_sweep(live)``), atomically with respect to commits: the
   backend adds to ``live`` everything reachable from the protected digests and
   the current ref heads, deletes every other object, turns the barrier off and
   bumps its *generation*.

So an object a commit makes reachable during the collection is protected, and
one made reachable after the sweep was live when swept. What is left is a
writer that read an object before the sweep (it was reachable then) and commits
a link to it after the sweep, when it may be gone: a unit of work records the
store's ``generation`` when it starts reading and passes it to ``commit``, which
refuses (returns ``False``, like a lost compare-and-swap) when a sweep happened
in between; the writer reads again. A commit without a generation is not
checked: it must not link to objects it did not read from a current head.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .codec import decode, links
from .commits import _is_commit
from .errors import InvalidValue

__all__ = ["Extra", "children", "Barrier", "closure", "closure_many", "mark", "GcReport", "collect"]


def _links(obj: Any) -> list[bytes]:
    return [bytes(link.data) for link in links(obj)]


#: ``(op, stored input, get) -> digests``: versions a commit's event needs besides its own chain
#: (e.g. a fork's source version, named by its commit id in the input); ``get`` reads an object
Extra = Callable[[str, Any, Callable[[bytes], bytes | None]], Iterable[bytes]]


def children(data: bytes, extra: Extra | None = None, get: Callable[[bytes], bytes | None] | None = None
             ) -> list[bytes]:
    """The digests an object's bytes link to: for a commit its parent, jump target, root, the
    links in its input and what ``extra`` names; for any other object the links it holds (none
    for bytes that do not decode: a leaf to the collector, a problem for fsck)."""
    try:
        obj = decode(data)
    except InvalidValue:
        return []
    if type(obj) is dict and _is_commit(obj):
        out = [bytes(obj["root"].data)] + _links(obj["input"])
        for k in ("parent", "skip"):
            if obj.get(k) is not None:
                out.append(bytes(obj[k]))
        if extra is not None and get is not None:
            out.extend(extra(obj["op"], obj["input"], get))
        return out
    return _links(obj)


class Barrier:
    """The write barrier a backend keeps while a collection runs (see module doc). Not
    thread-safe by itself: the backend calls it where it serialises commits."""

    def __init__(self) -> None:
        self.active = False
        self.protected: set[bytes] = set()
        self.extra: Extra | None = None

    def start(self, extra: Extra | None = None) -> None:
        self.active, self.protected, self.extra = True, set(), extra

    def record(self, objects: Mapping[bytes, bytes], new_heads: Iterable[bytes | None],
               get: Callable[[bytes], bytes | None] | None = None) -> None:
        """Called for each commit that lands: protect what it wrote and linked."""
        if not self.active:
            return
        p = self.protected

        def read(d: bytes) -> bytes | None:
            data = objects.get(d)
            return data if data is not None or get is None else get(d)
        for d, data in objects.items():
            p.add(bytes(d))
            p.update(children(bytes(data), self.extra, read))
        p.update(bytes(h) for h in new_heads if h is not None)

    def stop(self) -> set[bytes]:
        out, self.active, self.protected = self.protected, False, set()
        return out


def closure(get: Callable[[bytes], bytes | None], seeds: Iterable[bytes], live: set[bytes],
            extra: Extra | None = None) -> None:
    """Add to ``live`` every digest reachable from ``seeds`` (``get`` returns an object's bytes,
    or None when it is absent). Digests already in ``live`` are not walked again."""
    stack = [s for s in seeds if s not in live]
    while stack:
        d = stack.pop()
        if d in live:
            continue
        live.add(d)
        data = get(d)
        if data is not None:
            stack.extend(c for c in children(data, extra, get) if c not in live)


def closure_many(get_many: Callable[[list[bytes]], Mapping[bytes, bytes]], seeds: Iterable[bytes], live: set[bytes],
                 extra: Extra | None = None, chunk: int = 2000) -> None:
    """:func:`closure`, reading the objects a layer at a time, ``chunk`` digests per call of
    ``get_many(digests) -> {digest: bytes}`` (of those present): for a store whose reads cross a
    network, one round trip per ``chunk`` objects instead of one per object."""
    frontier = list({s for s in seeds if s not in live})
    while frontier:
        live.update(frontier)
        nxt: set[bytes] = set()
        for i in range(0, len(frontier), chunk):
            found = get_many(frontier[i:i + chunk])

            def get(d: bytes, found: Mapping[bytes, bytes] = found) -> bytes | None:
                data = found.get(d)
                return data if data is not None else get_many([d]).get(d)
            for data in found.values():
                nxt.update(c for c in children(data, extra, get) if c not in live)
        frontier = list(nxt)


def mark(store: Any, heads: Iterable[bytes], progress: Callable[[int], None] | None = None,
         extra: Extra | None = None) -> set[bytes]:
    """Every digest reachable from ``heads`` (commit digests), walking the store's objects (a layer
    at a time when the store reads many at once: ``get_many``, see :func:`closure_many`)."""
    live: set[bytes] = set()
    get_many = getattr(store, "get_many", None)
    if get_many is not None:
        heads = list(heads)
        for i in range(0, len(heads), 64):
            closure_many(get_many, heads[i:i + 64], live, extra)
            if progress is not None:
                progress(min(i + 64, len(heads)))
        return live

    def get(d: bytes) -> bytes | None:
        try:
            return store.get(d)
        except Exception:  # NotFound, or a corrupt object: fsck reports those; gc keeps what it can see
            return None
    for i, h in enumerate(heads):
        closure(get, [h], live, extra)
        if progress is not None:
            progress(i + 1)
    return live


@dataclass
class GcReport:
    """What a collection did. Sizes in bytes, times in seconds."""

    refs: int = 0
    live: int = 0
    freed: int = 0
    freed_bytes: int = 0
    mark_seconds: float = 0.0
    sweep_seconds: float = 0.0


def collect(store: Any, progress: Callable[[int, int], None] | None = None, extra: Extra | None = None) -> GcReport:
    """Free every object no ref reaches; safe beside concurrent commits (see module doc).

    Args:
        store: a backend with the collection methods (``gc_begin``, ``gc_sweep``).
        progress: called as ``progress(refs marked, refs)`` while marking.
        extra: the versions a commit's event needs besides its own chain (kept alive too).
    """
    report = GcReport()
    store.gc_begin(extra)
    t0 = time.perf_counter()
    try:
        heads = [d for _, d in store.refs("")]
        report.refs = len(heads)
        live = mark(store, heads, None if progress is None else (lambda n: progress(n, len(heads))), extra)
    except BaseException:
        store.gc_sweep(None)  # barrier off, nothing deleted
        raise
    t1 = time.perf_counter()
    report.freed, report.freed_bytes = store.gc_sweep(live)
    report.live = len(live)
    report.mark_seconds, report.sweep_seconds = t1 - t0, time.perf_counter() - t1
    return report
