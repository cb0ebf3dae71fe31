"""Bounded queues: ``max_pending`` with ``overflow="drop_oldest"`` or ``"drop_newest"``."""

from __future__ import annotations

from typing import Any

from chatstate import LockResult
from tests.conformance.helpers import entries


def fill(store: Any, n: int, **kwargs: Any) -> list[LockResult]:
    return [store.lock("k", f"w{i}", "queue", {"m": i}, **kwargs) for i in range(1, n + 1)]


def owners(store: Any) -> list[str]:
    return [e["owner"] for e in store.snapshot().pending_locks.get("k", [])]


def test_drop_oldest_keeps_the_newest_entries(store: Any) -> None:
    store.lock("k", "holder", "queue")
    assert fill(store, 4, max_pending=2, overflow="drop_oldest") == [LockResult.QUEUED] * 4
    assert owners(store) == ["w3", "w4"]
    assert entries(store.release_lock("k", "holder")) == [
        ("w3", "queue", {"m": 3}), ("w4", "queue", {"m": 4})
    ]


def test_drop_oldest_is_the_default_overflow(store: Any) -> None:
    store.lock("k", "holder", "queue")
    assert fill(store, 3, max_pending=1) == [LockResult.QUEUED] * 3
    assert owners(store) == ["w3"]


def test_drop_newest_returns_dropped_and_keeps_the_list(store: Any) -> None:
    store.lock("k", "holder", "queue")
    assert fill(store, 2, max_pending=2, overflow="drop_newest") == [LockResult.QUEUED] * 2
    before = store.snapshot()
    result = store.lock("k", "w3", "queue", {"m": 3}, max_pending=2, overflow="drop_newest")
    assert result is LockResult.DROPPED and result == "dropped"
    assert store.snapshot() == before
    assert owners(store) == ["w1", "w2"]


def test_a_list_below_the_bound_grows_normally(store: Any) -> None:
    store.lock("k", "holder", "queue")
    assert fill(store, 3, max_pending=5, overflow="drop_newest") == [LockResult.QUEUED] * 3
    assert owners(store) == ["w1", "w2", "w3"]


def test_max_pending_does_not_affect_a_free_lock(store: Any) -> None:
    assert store.lock("k", "a", "queue", max_pending=1, overflow="drop_newest") is (
        LockResult.ACQUIRED
    )
    assert store.snapshot().pending_locks == {}
