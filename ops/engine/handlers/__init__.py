"""Operation handlers, grouped by family: agents, sessions, lattice paths, versions, bundles.

A handler is ``async (engine, caller, input, job) -> job``: it reads, decides
and applies a domain transition, and commits (see :mod:`ops.engine.context`).
:data:`HANDLERS` maps every operation key of :data:`ops.domain.contracts.REGISTRY`
to its handler; a test checks that none is missing.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from . import agents, bundles, lattice, retention, sessions, tasks, versions

__all__ = ["Handler", "HANDLERS"]

Handler = Callable[[Any, str, Any, dict], Awaitable[dict]]

#: operation key -> handler
HANDLERS: dict[str, Handler] = {**agents.HANDLERS, **lattice.HANDLERS, **versions.HANDLERS, **retention.HANDLERS,
                                **sessions.HANDLERS, **tasks.HANDLERS, **bundles.HANDLERS}
