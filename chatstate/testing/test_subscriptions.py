"""Subscriptions: ``is_subscribed``, ``subscribe``, ``unsubscribe`` (both idempotent)."""

from __future__ import annotations

from typing import Any


def test_a_thread_starts_unsubscribed(store: Any) -> None:
    assert store.is_subscribed("t1") is False


def test_subscribe_then_unsubscribe(store: Any) -> None:
    store.subscribe("t1")
    assert store.is_subscribed("t1") is True
    assert store.is_subscribed("t2") is False
    store.unsubscribe("t1")
    assert store.is_subscribed("t1") is False


def test_subscribe_is_idempotent(store: Any) -> None:
    store.subscribe("t1")
    store.subscribe("t1")
    assert store.snapshot().subscriptions == {"t1"}
    store.unsubscribe("t1")
    assert store.is_subscribed("t1") is False


def test_unsubscribe_of_an_unsubscribed_thread_changes_nothing(store: Any) -> None:
    store.subscribe("t2")
    before = store.snapshot()
    store.unsubscribe("t1")
    store.unsubscribe("t1")
    assert store.snapshot() == before


def test_identifiers_of_every_allowed_length_and_alphabet(store: Any) -> None:
    ids = ["x", "y" * 255, "slack:C1:1700000000.1", "dé:jà vu ✓", "a b\tc"]
    for thread_id in ids:
        store.subscribe(thread_id)
    assert all(store.is_subscribed(t) for t in ids)
    assert store.snapshot().subscriptions == set(ids)
