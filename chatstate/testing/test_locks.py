"""Locks: the four strategies, FIFO pending entries, release rules, ``PendingEntry``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chatstate import ChatStateError, LockError, LockResult, NotOwner, PendingEntry, Strategy
from chatstate.testing.helpers import entries
from chatstate.types import from_iso


def test_a_free_lock_is_acquired_and_recorded(store: Any) -> None:
    result = store.lock("k", "a", "queue", {"m": 1})
    assert result is LockResult.ACQUIRED
    assert result == "acquired"
    lock = store.snapshot().locks["k"]
    assert {n: lock[n] for n in ("owner", "strategy", "metadata")} == {
        "owner": "a",
        "strategy": "queue",
        "metadata": {"m": 1},
    }


def test_the_default_strategy_is_reject(store: Any) -> None:
    assert store.lock("k", "a") is LockResult.ACQUIRED
    assert store.snapshot().locks["k"]["strategy"] == "reject"
    assert store.lock("k", "b") is LockResult.BUSY


def test_strategies_are_accepted_as_members_and_plain_strings(store: Any) -> None:
    assert store.lock("k1", "a", Strategy.DEBOUNCE) is LockResult.ACQUIRED
    assert store.lock("k1", "b", "debounce") is LockResult.DEBOUNCED
    assert store.lock("k1", "c", Strategy.QUEUE) is LockResult.QUEUED
    assert store.snapshot().locks["k1"]["strategy"] == "debounce"


def test_concurrent_is_always_acquired_and_records_nothing(store: Any) -> None:
    assert store.lock("k", "a", "concurrent") is LockResult.ACQUIRED
    assert store.lock("k", "b", "concurrent") is LockResult.ACQUIRED
    assert store.snapshot().locks == {}
    store.lock("k", "a", "queue")
    before = store.snapshot()
    assert store.lock("k", "b", "concurrent", {"m": 1}) is LockResult.ACQUIRED
    assert store.snapshot() == before


@pytest.mark.parametrize("owner", ["b", "a"], ids=["other", "same-owner"])
def test_reject_on_a_held_lock_is_busy_and_changes_nothing(store: Any, owner: str) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "q", "queue")
    before = store.snapshot()
    assert store.lock("k", owner, "reject", {"m": 1}) is LockResult.BUSY
    assert store.snapshot() == before


def test_queue_appends_in_arrival_order_and_release_returns_them(store: Any) -> None:
    store.lock("k", "a", "queue")
    assert store.lock("k", "b", "queue", {"m": 1}) is LockResult.QUEUED
    assert store.lock("k", "c", "queue", {"m": 2}) is LockResult.QUEUED
    assert store.lock("k", "a", "queue", {"m": 3}) is LockResult.QUEUED  # not re-entrant
    pending = store.release_lock("k", "a")
    assert entries(pending) == [
        ("b", "queue", {"m": 1}),
        ("c", "queue", {"m": 2}),
        ("a", "queue", {"m": 3}),
    ]
    assert store.snapshot().locks == {} and store.snapshot().pending_locks == {}


def test_debounce_keeps_only_the_latest_entry(store: Any) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue", {"m": 1})
    assert store.lock("k", "c", "debounce", {"m": 2}) is LockResult.DEBOUNCED
    assert store.lock("k", "d", "debounce", {"m": 3}) is LockResult.DEBOUNCED
    assert entries(store.release_lock("k", "a")) == [("d", "debounce", {"m": 3})]


def test_release_frees_the_key_for_the_next_holder(store: Any) -> None:
    store.lock("k", "a")
    assert store.release_lock("k", "a") == []
    assert store.lock("k", "b") is LockResult.ACQUIRED
    assert store.snapshot().locks["k"]["owner"] == "b"


def test_release_by_another_owner_raises_not_owner_and_changes_nothing(store: Any) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue", {"m": 1})
    before = store.snapshot()
    with pytest.raises(NotOwner, match="'b'.*'k'"):
        store.release_lock("k", "b")
    assert store.snapshot() == before


def test_release_of_a_free_key_raises_not_owner(store: Any) -> None:
    with pytest.raises(NotOwner):
        store.release_lock("k", "a")
    store.lock("k", "a")
    store.release_lock("k", "a")
    with pytest.raises(NotOwner):
        store.release_lock("k", "a")
    assert issubclass(NotOwner, LockError) and issubclass(LockError, ChatStateError)


def test_force_release_removes_lock_and_pending_whoever_holds_it(store: Any) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue", {"m": 1})
    store.lock("other", "a")
    assert entries(store.force_release_lock("k")) == [("b", "queue", {"m": 1})]
    snap = store.snapshot()
    assert list(snap.locks) == ["other"] and snap.pending_locks == {}
    assert store.force_release_lock("k") == []
    assert store.force_release_lock("never") == []
    assert store.lock("k", "c") is LockResult.ACQUIRED


def test_keys_are_independent(store: Any) -> None:
    store.lock("k1", "a")
    assert store.lock("k2", "b") is LockResult.ACQUIRED
    store.lock("k1", "c", "queue")
    assert store.release_lock("k2", "b") == []
    assert entries(store.release_lock("k1", "a")) == [("c", "queue", {})]


def test_pending_entries_are_frozen_with_metadata_and_time(store: Any) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue")
    store.lock("k", "c", "queue", {"nested": {"x": [1, None]}})
    first, second = store.release_lock("k", "a")
    assert isinstance(first, PendingEntry)
    assert first.metadata == {} and second.metadata == {"nested": {"x": [1, None]}}
    assert first.strategy is Strategy.QUEUE
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.owner = "z"  # type: ignore[misc]
    assert first.enqueued_at is not None
    assert from_iso(first.enqueued_at) <= from_iso(second.enqueued_at)


def test_snapshot_shows_pending_entries_in_order(store: Any) -> None:
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue", {"m": 1})
    store.lock("k", "c", "debounce", {"m": 2})
    store.lock("k", "d", "queue", {"m": 3})
    pending = store.snapshot().pending_locks["k"]
    assert [(e["owner"], e["strategy"], e["metadata"]) for e in pending] == [
        ("c", "debounce", {"m": 2}),
        ("d", "queue", {"m": 3}),
    ]
    assert all("enqueued_at" in e for e in pending)
