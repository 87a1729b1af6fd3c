"""A run's recorded ``base`` (format 3): a run whose commit goes on top of the version it started
from records none (the commit's parent is its base: :func:`ops.domain.events.omits_parent_base`);
a run that other events overtook records the version it started from, as before. Both replay,
show their exchanges, and prune."""

from __future__ import annotations

from lattice.commits import log
from ops.engine.runtime import Runtime
from tests.ops.helpers import call, out
from tests.ops.test_runtime import Gate


def runs(rt: Runtime, aid: str = "A") -> list[tuple[dict, bytes | None]]:
    """The agent's runs, oldest first: each one's event and its commit's parent."""
    tx = rt.engine.tx()
    return [(tx.materialize(c.input), c.parent) for _, c in log(rt.store, rt.store.ref(f"g/local/{aid}"))
            if c.op == "agent:run"][::-1]


async def test_a_run_on_top_of_its_start_records_no_base_and_an_overtaken_one_does(rt: Runtime) -> None:
    gate = Gate()
    rt.adapter_factory = gate
    await out(rt, "agent:create", agentId="A")
    gate.release.set()
    await call(rt, "agent:request", agentId="A", input="alone", wait=True)
    [(ev, _)] = runs(rt)
    assert ev["base"] is None and ev["task"] == "alone"
    gate.release.clear()
    gate.entered.clear()
    await call(rt, "agent:request", agentId="A", input="overtaken", wait=False)
    await gate.entered.wait()
    start = rt.store.ref("g/local/A")  # the version the run started from
    await out(rt, "agent:message", agentId="A", message="lands while the model thinks")
    gate.release.set()
    await rt.idle("local", "A")
    _, (ev, parent), (then, _) = runs(rt)  # the overtaken run, then one for the message
    assert ev["base"] == start.hex() and parent != start and ev["task"] == "overtaken"
    assert then["base"] is None and then["messages"] == 1
    for seq in (2, 5, 6):  # each run's exchanges rebuild from its base and verify
        v = await out(rt, "agent:version", agentId="A", at=seq)
        assert v["op"] == "agent:run" and all(ex["verified"] for ex in v["exchanges"]), v
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True
    pruned = await out(rt, "agent:prune", agentId="A", before=4)  # keeps the version the overtaken run started from
    assert pruned["base"] == 3
    assert (await out(rt, "agent:replay", agentId="A"))["identical"] is True


async def test_format_2_settings_record_the_base(monkeypatch, rt: Runtime) -> None:
    import lattice.commits
    monkeypatch.setattr(lattice.commits, "FORMAT_VERSION", 2)
    await out(rt, "agent:create", agentId="A", config={"model": {"provider": "echo"}})
    await call(rt, "agent:request", agentId="A", input="x", wait=True)
    [(ev, parent)] = runs(rt)
    assert ev["base"] == parent.hex()
