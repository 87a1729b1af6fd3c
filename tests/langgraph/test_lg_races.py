"""Races between two writers of one namespace, played out step by step: a plan made, another writer's
change landing, then the plan committed. Each must either land on what it read or lose its
compare-and-swap; an acknowledged write is never hidden behind an old copy of its checkpoint.

(tests/langgraph/test_lg_concurrency.py runs the same with threads, where these orders come by chance.)
"""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the test extra")

from langgraph.checkpoint.conformance.test_utils import generate_config, generate_metadata  # noqa: E402

from lattice.fsck import fsck  # noqa: E402
from ops.langgraph import LatticeSaver  # noqa: E402
from tests.langgraph.test_lg_tree import ids, put  # noqa: E402


def _listed(saver, tid="t"):
    """``checkpoint id -> pending writes`` of every listed checkpoint, each id listed once."""
    out = {}
    for t in saver.list(generate_config(tid)):
        assert t.checkpoint["id"] not in out, f"{t.checkpoint['id']} listed twice: two copies of it"
        out[t.checkpoint["id"]] = t.pending_writes
    return out


def _commit(saver, view, plan) -> bool:
    return saver.store.commit(dict(view.tx.objects), plan.updates)


def _two_branches(saver):
    """c1 -> c2 -> c3 (a tip) and c1 -> c5 (the head): c2 is interior, and not on the head's chain."""
    for cid, parent in [("c1", None), ("c2", "c1"), ("c3", "c2"), ("c5", "c1")]:
        put(saver, "t", cid, parent)
    assert set(dict(saver.store.refs("t/"))) == {"t/local/t", "t/local/t@c3", "t/local/t?"}


def test_a_branch_landing_under_a_rewrite_makes_it_lose(saver):
    """Writes for interior c2 rewrite the chains that hold it; a branch off c2 landing meanwhile would
    keep the old c2 (without the writes) alive under the new tip: the version makes the rewrite lose."""
    _two_branches(saver)
    view = saver._view()
    plan = view.plan_writes(generate_config("t", checkpoint_id="c2"), [("ch", "w")], "task", "")
    put(saver, "t", "c4", "c2")  # the other writer: a new branch off c2, the head unmoved
    assert _commit(saver, view, plan) is False
    saver.put_writes(generate_config("t", checkpoint_id="c2"), [("ch", "w")], "task")  # planned again
    listed = _listed(saver)
    assert listed["c2"] == [("task", "ch", "w")] and set(listed) == {"c1", "c2", "c3", "c4", "c5"}
    assert fsck(saver.store).ok


def test_a_rewrite_landing_under_a_branch_makes_it_lose(saver):
    _two_branches(saver)
    view = saver._view()
    cfg, cp, md, versions = _put_args("c4", "c2")
    plan = view.plan_put(cfg, cp, md, versions)
    saver.put_writes(generate_config("t", checkpoint_id="c2"), [("ch", "w")], "task")
    assert _commit(saver, view, plan) is False
    saver.put(cfg, cp, md, versions)  # planned again, on the rewritten c2
    listed = _listed(saver)
    assert listed["c2"] == [("task", "ch", "w")] and ids(saver, "t") == ["c5", "c4", "c3", "c2", "c1"]
    assert fsck(saver.store).ok


def test_two_savers_moving_one_leaf_exclude_each_other(saver):
    """Writes for the head and a put after it, planned on the same head: one loses."""
    put(saver, "t", "c1")
    view = saver._view()
    plan = view.plan_writes(generate_config("t", checkpoint_id="c1"), [("ch", "w")], "task", "")
    put(saver, "t", "c2", "c1")
    assert _commit(saver, view, plan) is False
    assert "t/local/t?" not in dict(saver.store.refs("t/"))  # a chat's steps leave the version alone


def test_writes_parked_while_their_checkpoint_lands_are_still_read(saver):
    """Writes for c4 are planned before c4 is stored (so parked); c4 lands as a tip first. The parked
    writes land beside it, and every reader adds them to c4's own; the next writes fold them in."""
    for cid, parent in [("c1", None), ("c5", "c1")]:
        put(saver, "t", cid, parent)
    cfg = generate_config("t", checkpoint_id="c4")
    view = saver._view()
    plan = view.plan_writes(cfg, [("ch", "early")], "task-1", "")
    put(saver, "t", "c4", "c1")  # a branch below the head: the head is unmoved
    assert _commit(saver, view, plan) is True
    assert "t/local/t!c4" in dict(saver.store.refs("t/"))
    assert saver.get_tuple(cfg).pending_writes == [("task-1", "ch", "early")]
    assert _listed(saver)["c4"] == [("task-1", "ch", "early")]
    # This saver plans its next writes on the refs it knows (ops.langgraph.pipeline.KnownRefs), which
    # miss the parked ref another writer added: they go beside them, and readers still add both.
    saver.put_writes(cfg, [("ch", "late")], "task-2")
    assert saver.get_tuple(cfg).pending_writes == [("task-1", "ch", "early"), ("task-2", "ch", "late")]
    # A saver reading the refs afresh (another process, or this one once it forgets) folds them in.
    other = LatticeSaver(saver.store, linger=0)
    other.put_writes(cfg, [("ch", "later")], "task-3")
    assert "t/local/t!c4" not in dict(saver.store.refs("t/"))
    assert saver.get_tuple(cfg).pending_writes == [("task-1", "ch", "early"), ("task-2", "ch", "late"),
                                                   ("task-3", "ch", "later")]
    assert fsck(saver.store).ok


def test_prune_keeps_writes_parked_for_the_latest(saver):
    for cid, parent in [("c1", None), ("c5", "c1")]:
        put(saver, "t", cid, parent)
    cfg = generate_config("t", checkpoint_id="c5")
    view = saver._view()
    # parked as if c5 were not stored yet (a plan made before it landed), then committed
    plan = view.plan_writes(generate_config("t", checkpoint_id="c6"), [("ch", "x")], "task", "")
    saver.store.commit(dict(view.tx.objects), [u._replace(name=u.name.replace("!c6", "!c5")) for u in plan.updates])
    saver.prune(["t"], strategy="keep_latest")
    assert ids(saver, "t") == ["c5"] and saver.get_tuple(cfg).pending_writes == [("task", "ch", "x")]
    assert set(dict(saver.store.refs("t/"))) == {"t/local/t", "t/local/t?"}


def _put_args(cid, parent):
    from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata

    return generate_config("t", checkpoint_id=parent), generate_checkpoint(checkpoint_id=cid), generate_metadata(), {}


def test_a_saver_sees_the_version_of_another(tmp_path):
    """The version is an ordinary ref: a second store on the same LMDB directory (another process)
    reads it, and copying a thread copies it."""
    with LatticeSaver.from_conn_string(str(tmp_path / "lg")) as a:
        _two_branches(a)
        a.copy_thread("t", "u")
        refs = dict(a.store.refs("t/"))
        assert refs["t/local/u?"] == refs["t/local/t?"]
        assert ids(a, "u") == ids(a, "t")
        a.delete_thread("t")
        assert not any(n.startswith("t/local/t") for n, _ in a.store.refs("t/"))


def test_prune_keeps_writes_parked_for_an_ancestor_it_keeps(saver):
    """With DeltaChannel, prune keeps the ancestors back to each channel's last stored value; writes
    parked beside one of them stay readable."""
    put(saver, "t", "c1", values={"d": "base"})
    put(saver, "t", "c2", "c1", md=generate_metadata(counters_since_delta_snapshot={"d": 1}), new={})
    view = saver._view()
    plan = view.plan_writes(generate_config("t", checkpoint_id="c9"), [("ch", "x")], "task", "")
    saver.store.commit(dict(view.tx.objects), [u._replace(name=u.name.replace("!c9", "!c1")) for u in plan.updates])
    saver.prune(["t"], strategy="keep_latest")
    assert ids(saver, "t") == ["c2", "c1"]
    assert saver.get_tuple(generate_config("t", checkpoint_id="c1")).pending_writes == [("task", "ch", "x")]
