"""Export and import with a PostgreSQL store: the whole history and from a version on, out of
PostgreSQL into LMDB and back, replayed identical and fsck-clean on both sides."""

from __future__ import annotations

from pathlib import Path

from lattice.fsck import fsck
from lattice.lmdb import LmdbStore
from lattice.postgres import PostgresStore
from ops.domain.check import make_check_head
from ops.engine.bundles import export_agent
from ops.engine.runtime import Runtime
from tests.scaleout.helpers import call, fill, load_bundle


async def test_bundles_between_postgres_and_lmdb(postgres_url: str, tmp_path: Path) -> None:
    pg = PostgresStore(postgres_url, pool_size=2)
    lm = LmdbStore(tmp_path / "lmdb", durable=False)
    await fill(pg)
    a, b = Runtime(pg), Runtime(lm)
    await a.start()
    await b.start()
    try:
        top = (await call(a, "agent:history", agentId="A", limit=1))["output"]["versions"][0]["seq"]
        whole = b"".join(export_agent(a.engine, "local", "A")[1])
        tail = b"".join(export_agent(a.engine, "local", "A", top - 2)[1])
        assert 0 < len(tail) < len(whole)
        for name, data in (("Whole", whole), ("Tail", tail)):
            out = await load_bundle(b, name, [data[i:i + 1000] for i in range(0, len(data), 1000)])
            assert out["fromAgentId"] == "A", out
            assert (await call(b, "agent:replay", agentId=name))["output"]["identical"] is True
        history = (await call(b, "agent:history", agentId="Tail", limit=100))["output"]["versions"]
        assert history[-1]["seq"] == top - 2 and history[-1]["op"] == "agent:prune"
        back = b"".join(export_agent(b.engine, "local", "Tail")[1])  # and back into PostgreSQL
        assert (await load_bundle(a, "Back", [back]))["versions"] == top + 3  # two imports on top
        assert (await call(a, "agent:replay", agentId="Back"))["output"]["identical"] is True
        assert (await call(a, "covia:read", path="g/Back/state/history"))["output"] == \
            (await call(a, "covia:read", path="g/A/state/history"))["output"]
    finally:
        await a.close()
        await b.close()
    for store in (pg, lm):
        report = fsck(store, check_head=make_check_head(store))
        assert report.ok, report.problems[:5]
        store.close()
