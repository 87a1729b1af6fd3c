"""Helpers of the scale-out tests: several runtimes sharing one store in this process.

:class:`Bus` joins their notifiers the way PostgreSQL LISTEN/NOTIFY joins processes: a
commit in one runtime wakes the watchers of the others (on the next turn of the event
loop, as a notification would) and tells their schedulers which refs moved.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lattice.commits import read_commit
from ops.domain.contracts import decode_input, lookup
from ops.engine.leases import LeaseTimes, shared_seams
from ops.engine.notify import LocalNotifier
from ops.engine.runtime import Runtime

__all__ = ["Bus", "BusNotifier", "FAST", "Gate", "call", "fill", "kill", "lease_owner", "load_bundle", "settle",
           "shared_runtime", "stall"]

#: lease timing for tests: a dead runtime's agents move within 0.3 + 2 x 0.06 s
FAST = LeaseTimes(lease=0.3, renew=0.09, scan=0.06)


class BusNotifier(LocalNotifier):
    """A notifier on a :class:`Bus`: its commits reach every other notifier of the bus."""

    def __init__(self, bus: "Bus"):
        super().__init__()
        self.bus, self.connected = bus, True
        bus.members.append(self)

    def notify(self, ref: str) -> None:
        super().notify(ref)
        if self.connected:
            for other in self.bus.members:
                if other is not self and other.connected:
                    asyncio.get_running_loop().call_soon(other.hear, ref)

    def hear(self, ref: str) -> None:
        LocalNotifier.notify(self, ref)
        for fn in self.remote:
            fn(ref)


class Bus:
    def __init__(self) -> None:
        self.members: list[BusNotifier] = []


def shared_runtime(store: Any, bus: Bus, times: LeaseTimes = FAST, **kw: Any) -> Runtime:
    """A runtime on ``store`` with the shared seams, its notifier on ``bus``."""
    return Runtime(store, **shared_seams(BusNotifier(bus), times), **kw)


async def call(rt: Runtime, op: str, caller: str = "local", **inp: Any) -> dict:
    c = lookup(op)
    return await rt.invoke(c, decode_input(c, inp), caller)


def lease_owner(store: Any, caller: str, agent_id: str) -> str | None:
    """The process holding the agent's lease (None: no lease)."""
    d = store.ref(f"l/{caller}/{agent_id}")
    return None if d is None else read_commit(store, d).caller


def kill(rt: Runtime) -> None:
    """Make ``rt`` vanish as a SIGKILLed process would: its loops, heartbeat and scans stop,
    nothing is released, it hears and tells nothing more."""
    s = rt.scheduler
    s._closed = True
    for t in [*s._tasks, *s._side, *s._loops.values()]:
        t.cancel()
    n = rt.notifier
    if isinstance(n, BusNotifier):
        n.connected = False
    else:  # a PgNotifier: stop hearing and telling
        for t in n._tasks:
            t.cancel()
        n._tasks = []


def stall(rt: Runtime) -> None:
    """Stop ``rt``'s heartbeat only (a process paused, or cut off from the database): its loops go on."""
    for t in rt.scheduler._tasks:
        t.cancel()


class Gate:
    """A model adapter factory whose replies (echo) wait until :meth:`open` (per-call events)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.opened = asyncio.Event()

    def __call__(self, model: Any) -> "Gate":
        return self

    async def complete(self, request: Any) -> Any:
        from ops.domain.models import LlmReply
        text = next(m["content"] for m in reversed(request.messages) if m["role"] == "user")
        self.calls.append(text)
        if not self.opened.is_set():
            await self.opened.wait()
        return LlmReply(content=text)

    def open(self) -> None:
        self.opened.set()


async def settle(rt: Runtime, agents: list[str], timeout: float) -> None:
    """Resume every agent (work on a suspended one waits for a resume), then wait until none is RUNNING.

    Raises:
        AssertionError: some agent still RUNNING after ``timeout`` seconds.
    """
    for a in agents:
        await call(rt, "agent:resume", agentId=a)
    deadline = time.monotonic() + timeout
    while True:
        statuses = [(await call(rt, "agent:info", agentId=a))["output"]["status"] for a in agents]
        if "RUNNING" not in statuses:
            return
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.05)


async def fill(store: Any) -> None:
    """Agents with history, a fork at an old version, a removed agent, workspace values."""
    rt = Runtime(store)
    await rt.start()
    try:
        await call(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}})
        for i in range(5):
            await call(rt, "agent:request", agentId="A", input=f"t{i} " + "x" * 500, wait=True)
        await call(rt, "agent:fork", sourceId="A", agentId="B", at=3)
        await call(rt, "agent:create", agentId="gone", config={"model": {"provider": "echo"}})
        await call(rt, "agent:delete", agentId="gone", remove=True)
        await call(rt, "covia:write", path="w/notes", value={"k": list(range(100))})
    finally:
        await rt.close()


async def load_bundle(rt: Runtime, agent_id: str, chunks: Any) -> dict:
    """Import the bundle fed in ``chunks`` (bytes each) as ``agent_id``; the import's result."""
    from lattice.bundle import BundleReader
    from ops.engine.bundles import import_agent
    reader = BundleReader()
    for c in chunks:
        reader.feed(c)
    return await import_agent(rt.engine, "local", agent_id, reader)
