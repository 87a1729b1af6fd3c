"""Importing a bundle (:func:`ops.engine.bundles.import_agent`) always lands the agent: its
``agent:import`` event is committed even when it leaves the record as the bundle's head had it."""

from __future__ import annotations

from lattice.bundle import BundleReader
from lattice.commits import read_commit
from lattice.memory import MemoryStore
from ops.engine.bundles import export_agent, import_agent
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out
from tests.ops.test_folded_jobs import ECHO


async def test_an_import_in_the_millisecond_of_the_bundles_head_lands() -> None:
    """The import's event only sets ``updated`` to its time: at the head's own time, the record is
    the head's, and the import said it loaded the agent while no ref was written."""
    rt = Runtime(MemoryStore(), clock=lambda: 1_750_000_000_000)  # every commit in one millisecond
    await rt.start()
    try:
        await out(rt, "agent:create", agentId="A", config=ECHO)
        await call(rt, "agent:request", agentId="A", input="hi", wait=True)
        _, chunks = export_agent(rt.engine, "local", "A")
        reader = BundleReader()
        reader.feed(b"".join(chunks))
        got = await import_agent(rt.engine, "local", "C", reader)
        head = rt.store.ref("g/local/C")
        assert head is not None, got
        c = read_commit(rt.store, head)
        assert c.op == "agent:import" and got["versions"] == c.seq + 1
        assert c.parent == rt.store.ref("g/local/A")  # on top of the exported chain
        assert (await out(rt, "agent:info", agentId="C"))["status"] == "SLEEPING"
        assert (await out(rt, "agent:replay", agentId="C"))["identical"] is True
    finally:
        await rt.close()
