"""The read-only ``v/`` namespace: the venue's globals as the Covia venue lays them out (``v/info/...``,
``v/ops/<adapter>/<op>``). The SDK's own integration tests probe ``v/ops/covia/read {path: v/info/version}``."""

from __future__ import annotations

import pytest

from ops.domain.contracts import REGISTRY
from ops.domain.errors import Rejected
from ops.engine.runtime import _version
from tests.ops.helpers import call, out


async def test_info_reads(rt):
    assert await out(rt, "covia:read", path="v/info/version") == {"exists": True, "value": _version(),
                                                                  **_extras(await out(rt, "covia:read",
                                                                                      path="v/info/version"))}
    did = (await out(rt, "covia:read", path="/v/info/did"))["value"]
    assert did == rt.identity.did and did.startswith("did:key:")
    assert (await out(rt, "covia:read", path="v/info/name"))["value"] == "agent-lattice"
    started = (await out(rt, "covia:read", path="v/info/started"))["value"]
    assert started == rt.started_at
    assert "rest" in (await out(rt, "covia:read", path="v/info/protocols"))["value"]


def _extras(o: dict) -> dict:
    """Fields of a read output other than exists/value (e.g. valueBytes), which this test does not pin."""
    return {k: v for k, v in o.items() if k not in ("exists", "value")}


async def test_adapters_count_the_registry(rt):
    adapters = (await out(rt, "covia:read", path="v/info/adapters"))["value"]
    assert sum(a["operations"] for a in adapters.values()) == len(REGISTRY)
    assert adapters["agent"]["operations"] == sum(1 for k in REGISTRY if k.startswith("agent:"))


async def test_ops_by_venue_name(rt):
    entry = (await out(rt, "covia:read", path="v/ops/agent/cancel-task"))["value"]
    assert entry["operation"] == "agent:cancelTask" and entry["name"] == "v/ops/agent/cancel-task"
    listed = await out(rt, "covia:list", path="v/ops/covia")
    assert listed["exists"] and "read" in listed["keys"]


async def test_absent_paths_do_not_exist(rt):
    for path in ("v/nope", "v/info/nope", "v/info/protocols/99", "v/ops/agent/no-such-op"):
        assert (await out(rt, "covia:read", path=path))["exists"] is False, path


async def test_v_is_read_only(rt):
    for op, inp in (("covia:write", {"value": 1}), ("covia:append", {"value": 1}), ("covia:delete", {})):
        job = await call(rt, op, path="v/info/name", **inp)
        assert job["status"] == "FAILED" and job["error"]["code"] == "forbidden", job
    assert (await out(rt, "covia:read", path="v/info/name"))["value"] == "agent-lattice"


async def test_at_is_refused_on_v(rt):
    with pytest.raises(Rejected) as e:
        await call(rt, "covia:read", path="v/info/name", at=0)
    assert e.value.code == "invalid_input" and e.value.path == "$.input.at"
