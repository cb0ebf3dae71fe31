"""Leases: ``ttl``, ``extend_lock``, takeover after expiry, the expired holder's release."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from chatstate import LockResult, NotOwner
from chatstate.testing.helpers import LEASE, entries, outlive
from chatstate.types import from_iso


def lease_seconds(store: Any, key: str) -> float:
    lock = store.snapshot().locks[key]
    return (from_iso(lock["expires_at"]) - from_iso(lock["acquired_at"])).total_seconds()


def test_the_default_lease_is_the_lock_ttl_setting(store: Any, make_store: Any) -> None:
    store.lock("k", "a")
    assert lease_seconds(store, "k") == pytest.approx(300, abs=1)
    with override_settings(CHATSTATE={"LOCK_TTL": 42}):
        other = make_store()
    other.lock("k", "a")
    assert lease_seconds(other, "k") == pytest.approx(42, abs=1)


def test_an_explicit_ttl_sets_the_lease(store: Any) -> None:
    store.lock("k", "a", ttl=7.5)
    assert lease_seconds(store, "k") == pytest.approx(7.5, abs=0.5)


def test_an_expired_lock_is_taken_over_and_its_pending_entries_go_to_the_new_holder(
    store: Any,
) -> None:
    store.lock("k", "a", "queue", ttl=LEASE)
    assert store.lock("k", "b", "reject") is LockResult.BUSY
    assert store.lock("k", "c", "queue", {"m": 1}) is LockResult.QUEUED
    outlive()
    assert store.lock("k", "b", "reject", ttl=60) is LockResult.ACQUIRED
    assert store.snapshot().locks["k"]["owner"] == "b"
    assert store.lock("k", "d", "queue", {"m": 2}) is LockResult.QUEUED
    with pytest.raises(NotOwner):
        store.release_lock("k", "a")
    assert entries(store.release_lock("k", "b")) == [
        ("c", "queue", {"m": 1}),
        ("d", "queue", {"m": 2}),
    ]


def test_an_expired_holder_still_releases_while_nobody_took_over(store: Any) -> None:
    store.lock("k", "a", "queue", ttl=LEASE)
    store.lock("k", "c", "queue", {"m": 1})
    outlive()
    assert entries(store.release_lock("k", "a")) == [("c", "queue", {"m": 1})]
    assert store.snapshot().locks == {} and store.snapshot().pending_locks == {}


def test_a_queue_call_after_expiry_acquires_instead_of_queueing(store: Any) -> None:
    store.lock("k", "a", ttl=LEASE)
    outlive()
    assert store.lock("k", "b", "queue") is LockResult.ACQUIRED
    assert store.lock("k", "c", "debounce") is LockResult.DEBOUNCED


def test_extend_lock_renews_the_holders_lease(store: Any) -> None:
    store.lock("k", "a", ttl=LEASE)
    assert store.extend_lock("k", "a", 60) is True
    assert lease_seconds(store, "k") > 50
    outlive()
    assert store.lock("k", "b") is LockResult.BUSY
    assert store.snapshot().locks["k"]["owner"] == "a"


def test_extend_lock_by_another_owner_or_on_a_free_key_is_false(store: Any) -> None:
    assert store.extend_lock("k", "a", 60) is False
    assert store.snapshot().locks == {}
    store.lock("k", "a", ttl=30)
    before = store.snapshot()
    assert store.extend_lock("k", "b", 60) is False
    assert store.snapshot() == before


def test_extend_lock_after_expiry_is_false(store: Any) -> None:
    store.lock("k", "a", ttl=LEASE)
    outlive()
    assert store.extend_lock("k", "a", 60) is False
    assert store.lock("k", "b") is LockResult.ACQUIRED
