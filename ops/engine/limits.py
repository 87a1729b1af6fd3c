"""Limits per caller and per agent, and the quotas that enforce them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from ..domain.errors import OpError
from ..domain.refs import agent_prefix
from .unit import Unit

__all__ = ["Limits", "Quotas"]


class Limits(msgspec.Struct, frozen=True):
    """Limits; exceeding one fails the operation with ``limit_exceeded``.

    Attributes:
        max_agents: agent records a caller may hold (terminated ones count until
            removed with ``agent:delete remove: true``).
        max_queued: work an agent may have waiting: tasks + inbox messages + triggers.
    """

    max_agents: int = 10_000
    max_queued: int = 1_000


class Quotas:
    """Counts each caller's agents (from the store once, then kept by commit hooks) and
    serialises a caller's creations so that ``max_agents`` cannot be raced."""

    def __init__(self, store: Any, limits: Limits):
        self.store, self.limits = store, limits
        self._agents: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def creating(self, caller: str) -> asyncio.Lock:
        """Held while one of the caller's agents is created or forked."""
        lock = self._locks.get(caller)
        if lock is None:
            lock = self._locks[caller] = asyncio.Lock()
        return lock

    def room_for_agent(self, caller: str) -> None:
        """Raise ``limit_exceeded`` when the caller holds ``limits.max_agents`` agents."""
        n = self._agents.get(caller)
        if n is None:
            n = self._agents[caller] = sum(1 for _ in self.store.refs(agent_prefix(caller)))
        if n >= self.limits.max_agents:
            raise OpError("limit_exceeded", f"you hold {n} agents, the limit is {self.limits.max_agents}",
                          hint="remove agents you no longer need with agent:delete {remove: true}")

    def on_commit(self, caller: str, u: Unit) -> None:
        """Commit hook: count the agents a unit created or removed."""
        if caller not in self._agents:
            return
        for name, w in u.writes.items():
            if name.startswith("g/"):
                existed = u.heads[name][0] is not None
                self._agents[caller] += (w is not None and not existed) - (w is None and existed)
