"""Scheduling: who runs an agent's loop, and the runs in flight.

One run loop per agent at a time. A commit that leaves an agent ``RUNNING``
asks the scheduler to :meth:`~Scheduler.ensure` its loop; the loop runs
cycles until the agent is not ``RUNNING``. The scheduler also knows which
task each loop's current cycle works on, so that cancelling that task (or
replacing the agent) stops the cycle (:meth:`~Scheduler.stop`).

A seam: :class:`Scheduler` is what the engine needs; :class:`LocalScheduler`
runs every agent's loop in this process (it holds every agent's lease for
ever). Several processes sharing a store replace it with
:class:`ops.engine.leases.LeaseScheduler`, which runs an agent's loop only while
it holds the agent's lease (a ref with expiry); every commit of that loop carries
a compare-and-swap on the lease, so a process that lost it can never commit.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Protocol

__all__ = ["Scheduler", "LocalScheduler"]

Key = tuple[str, str]  # (caller, agent id)


class Scheduler(Protocol):
    def ensure(self, caller: str, agent_id: str) -> None:
        """Make sure the agent's run loop is running (here, or in the process holding its lease)."""
        ...

    def running(self) -> list[Key]:
        """``(caller, agent id)`` of every loop running in this process."""
        ...

    def works_on(self, caller: str, agent_id: str, task_id: str) -> bool:
        """Whether a cycle of the agent is in flight on ``task_id`` (in this process)."""
        ...

    def stop(self, caller: str, agent_id: str, task_id: str | None = None) -> None:
        """Cancel the agent's cycle in flight (only if it works on ``task_id``, when given).
        The loop goes on with the agent's next state; the cancelled cycle leaves no trace."""
        ...

    async def start(self) -> None:
        """Start the scheduler's own work (before the runtime recovers the agents' loops)."""
        ...

    async def close(self) -> None:
        """Cancel every loop (in-flight runs leave no trace; they re-run on restart)."""
        ...


class LocalScheduler:
    """Every agent's loop runs in this process.

    Args:
        loop: ``(caller, agent id) -> coroutine`` running the agent's cycles while it is ``RUNNING``.
    """

    def __init__(self, loop: Callable[[str, str], Awaitable[None]]):
        self._run = loop
        self._loops: dict[Key, asyncio.Task] = {}
        self._cycles: dict[Key, tuple[str | None, asyncio.Task]] = {}
        self._closed = False

    def ensure(self, caller: str, agent_id: str) -> None:
        key = (caller, agent_id)
        if key not in self._loops and not self._closed:
            self._loops[key] = asyncio.get_running_loop().create_task(self._guarded(key))

    async def _guarded(self, key: Key) -> None:
        try:
            await self._run(*key)
        finally:
            self._loops.pop(key, None)

    def running(self) -> list[Key]:
        return list(self._loops)

    def begin(self, caller: str, agent_id: str, task_id: str | None, cycle: asyncio.Task) -> None:
        """Record the cycle a loop started (it works on ``task_id``)."""
        self._cycles[(caller, agent_id)] = (task_id, cycle)

    def end(self, caller: str, agent_id: str) -> None:
        """Forget the loop's cycle (it finished, failed or was cancelled)."""
        self._cycles.pop((caller, agent_id), None)

    def works_on(self, caller: str, agent_id: str, task_id: str) -> bool:
        cyc = self._cycles.get((caller, agent_id))
        return cyc is not None and cyc[0] == task_id

    def stop(self, caller: str, agent_id: str, task_id: str | None = None) -> None:
        cyc = self._cycles.get((caller, agent_id))
        if cyc is not None and (task_id is None or cyc[0] == task_id):
            cyc[1].cancel()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._loops.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
