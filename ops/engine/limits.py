"""Limits per caller and per agent, and the quotas that enforce them.

:class:`Quotas` counts in this process (one process per store); :class:`StoreQuotas`
counts in the store, so that the limits hold across processes sharing it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from lattice.commits import read_commit, write_commit
from lattice.nodes import ObjectCache, Tx
from lattice.store import RefUpdate

from ..domain.errors import OpError
from ..domain.refs import agent_prefix
from .unit import Unit

__all__ = ["Limits", "Quotas", "StoreQuotas", "count_ref"]


class Limits(msgspec.Struct, frozen=True):
    """Limits; exceeding one fails the operation with ``limit_exceeded``.

    Attributes:
        max_agents: agent records a caller may hold (terminated ones count until
            removed with ``agent:delete remove: true``).
        max_queued: work an agent may have waiting: tasks + inbox messages + triggers.
    """

    max_agents: int = 10_000
    max_queued: int = 1_000


# ``max_queued`` needs nothing here: it is checked inside the unit that queues the work,
# against the agent record that unit commits over, so the compare-and-swap on the
# agent's head makes it hold whichever process queues.


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


def count_ref(caller: str) -> str:
    """The ref of ``caller``'s agent count (kept by :class:`StoreQuotas`)."""
    return f"q/{caller}"


class StoreQuotas(Quotas):
    """Quotas that hold across every process sharing the store.

    Each caller's agent count lives in the store, at ``q/<caller>`` (a commit whose
    record is ``{"agents": n}``; counted from the agent refs the first time). Every
    unit that creates or removes agents moves it by compare-and-swap in the same
    commit (:meth:`guard`, one of :attr:`ops.engine.unit.Units.guards`), and refuses
    to go over ``max_agents`` there: two processes creating a caller's last allowed
    agent at once both read the same count, and one of them loses the race, re-reads
    and is refused. The per-process creation lock stays (fewer lost races).
    """

    def __init__(self, store: Any, limits: Limits):
        super().__init__(store, limits)
        self._cache = ObjectCache()

    def count(self, caller: str) -> tuple[bytes | None, int]:
        """``(digest of the counter ref or None, the caller's agent count now)``."""
        d = self.store.ref(count_ref(caller))
        if d is None:
            return None, sum(1 for _ in self.store.refs(agent_prefix(caller)))
        tx = Tx(self.store, self._cache)
        return d, tx.load_root(read_commit(tx, d).root)["agents"]

    def _refuse(self, n: int) -> None:
        raise OpError("limit_exceeded", f"you hold {n} agents, the limit is {self.limits.max_agents}",
                      hint="remove agents you no longer need with agent:delete {remove: true}")

    def room_for_agent(self, caller: str) -> None:
        n = self.count(caller)[1]
        if n >= self.limits.max_agents:
            self._refuse(n)

    def on_commit(self, caller: str, u: Unit) -> None:
        pass  # the count is in the store

    def guard(self, u: Unit, ups: list[RefUpdate]) -> None:
        """Move each caller's counter by the agents the unit creates and removes; refuse
        to pass ``max_agents``."""
        delta: dict[str, int] = {}
        for up in ups:
            if up.name.startswith("g/") and (up.expected is None) != (up.new is None):
                caller = up.name.split("/", 2)[1]
                delta[caller] = delta.get(caller, 0) + (1 if up.expected is None else -1)
        for caller, dn in delta.items():
            if dn == 0:
                continue
            d, n = self.count(caller)
            if dn > 0 and n + dn > self.limits.max_agents:
                self._refuse(n)
            new, _ = write_commit(u.tx, parent=None, parent_commit=None, root=u.tx.put_root({"agents": max(n + dn, 0)}),
                                  ts=u.ts, op="quota:count", input=None, caller=caller)
            u.extra.append(RefUpdate(count_ref(caller), d, new))
