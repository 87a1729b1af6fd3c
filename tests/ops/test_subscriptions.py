"""Subscriptions to a ref prefix (ops.engine.notify): what the caller-wide event stream is built on."""

from __future__ import annotations

import gc

import pytest

from ops.engine.notify import LocalNotifier


async def test_a_subscription_collects_the_refs_moved_under_its_prefix() -> None:
    n = LocalNotifier()
    with n.subscribe("g/alice/") as sub, n.subscribe("g/alice/A") as one:
        assert not sub.changed.is_set() and sub.take() == []
        for ref in ("g/alice/A", "g/alicex/A", "g/bob/A", "j/alice/0x01", "w/alice", "g/alice/B", "g/alice/A"):
            n.notify(ref)
        assert sub.changed.is_set()
        assert sub.take() == ["g/alice/A", "g/alice/B"]  # in order of first move, once each
        assert not sub.changed.is_set() and sub.take() == []
        assert one.take() == ["g/alice/A"]
        n.wake_all()
        assert sub.changed.is_set() and sub.take() is None and one.take() is None  # anything may have moved
        assert n.subscriptions() == 2
    assert n.subscriptions() == 0
    n.notify("g/alice/A")
    assert not sub.changed.is_set()  # closed: told nothing more


async def test_past_its_limit_a_subscription_says_anything_may_have_moved() -> None:
    n = LocalNotifier()
    sub = n.subscribe("g/c/")
    sub.limit = 3
    for i in range(5):
        n.notify(f"g/c/{i}")
    assert sub.take() is None
    n.notify("g/c/9")
    assert sub.take() == ["g/c/9"]
    sub.close()
    sub.close()  # idempotent


async def test_a_dropped_subscription_goes_with_its_last_reference() -> None:
    n = LocalNotifier()
    n.subscribe("g/c/")
    gc.collect()
    assert n.subscriptions() == 0
    n.notify("g/c/A")  # nobody to tell


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError):
        LocalNotifier().subscribe("")
