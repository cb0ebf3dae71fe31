"""Handing queued entries over without losing the thread: ``release_lock(only_if_idle=True)``
and ``take_pending``."""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LockResult, NotOwner
from chatstate.testing.helpers import entries
from chatstate.types import from_iso


def held(store: Any, key: str = "k") -> dict[str, Any]:
    return store.snapshot().locks[key]


def test_release_if_idle_releases_when_nothing_is_pending(store: Any) -> None:
    store.lock("k", "a")
    assert store.release_lock("k", "a", only_if_idle=True) == []
    assert store.snapshot().locks == {}


def test_release_if_idle_keeps_the_lock_and_hands_the_entries_over(store: Any) -> None:
    store.lock("k", "a", "queue", ttl=40)
    before = from_iso(held(store)["expires_at"])
    store.lock("k", "b", "queue", {"m": 1})
    store.lock("k", "c", "queue", {"m": 2})
    assert entries(store.release_lock("k", "a", only_if_idle=True)) == [
        ("b", "queue", {"m": 1}),
        ("c", "queue", {"m": 2}),
    ]
    lock = held(store)
    assert lock["owner"] == "a" and store.snapshot().pending_locks == {}
    lease = (from_iso(lock["expires_at"]) - before).total_seconds()
    assert lease >= 0 and (
        from_iso(lock["expires_at"]) - from_iso(lock["acquired_at"])
    ).total_seconds() == pytest.approx(40, abs=2)
    assert store.lock("k", "d", "reject") is LockResult.BUSY
    assert store.release_lock("k", "a", only_if_idle=True) == []
    assert store.snapshot().locks == {}


def test_release_if_idle_renews_by_the_lease_of_the_last_extension(store: Any) -> None:
    store.lock("k", "a", "queue", ttl=5)
    assert store.extend_lock("k", "a", 50)
    store.lock("k", "b", "queue")
    store.release_lock("k", "a", only_if_idle=True)
    lock = held(store)
    remaining = (from_iso(lock["expires_at"]) - from_iso(lock["acquired_at"])).total_seconds()
    assert remaining == pytest.approx(50, abs=2)


def test_release_if_idle_by_another_owner_is_refused(store: Any) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue")
    with pytest.raises(NotOwner):
        store.release_lock("k", "b", only_if_idle=True)
    assert held(store)["owner"] == "a"
    assert len(store.snapshot().pending_locks["k"]) == 1


def test_take_pending_hands_out_the_oldest_and_keeps_the_lock(store: Any) -> None:
    store.lock("k", "a", "queue")
    for m in range(1, 5):
        store.lock("k", f"w{m}", "queue", {"m": m})
    assert [e.metadata["m"] for e in store.take_pending("k", "a", limit=3)] == [1, 2, 3]
    assert [e.metadata["m"] for e in store.take_pending("k", "a")] == [4]
    assert store.take_pending("k", "a") == []
    assert held(store)["owner"] == "a"


@pytest.mark.parametrize("owner", ["someone", "a"])
def test_take_pending_needs_the_holder(store: Any, owner: str) -> None:
    if owner == "a":
        store.lock("k", "other")
    with pytest.raises(NotOwner):
        store.take_pending("k", "a" if owner == "a" else owner)


def test_take_pending_checks_its_limit(store: Any) -> None:
    store.lock("k", "a")
    with pytest.raises(ValueError):
        store.take_pending("k", "a", limit=0)
