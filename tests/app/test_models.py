"""The models: the database refuses duplicates, and factory rows are what the adapter sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from chatstate import LockResult
from chatstate.adapters.database import DatabaseStateAdapter
from tests.factories import (
    NAMESPACE,
    ChannelStateFactory,
    DedupeEntryFactory,
    LockFactory,
    PendingLockEntryFactory,
    SubscriptionFactory,
    ThreadStateFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter() -> DatabaseStateAdapter:
    return DatabaseStateAdapter(namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("factory", "same"),
    [
        (SubscriptionFactory, {"thread_id": "t1"}),
        (DedupeEntryFactory, {"adapter": "slack", "message_id": "m1"}),
        (LockFactory, {"key": "k1"}),
        (ThreadStateFactory, {"thread_id": "t1"}),
        (ChannelStateFactory, {"channel_id": "c1"}),
    ],
    ids=["subscription", "dedupe", "lock", "thread_state", "channel_state"],
)
def test_the_database_refuses_a_duplicate(factory: type, same: dict[str, str]) -> None:
    factory(**same)
    with pytest.raises(IntegrityError), transaction.atomic():
        factory(**same)
    # The same id in another namespace is a different row.
    factory(namespace="elsewhere", **same)
    # (Counted in these two namespaces: the async twins of other tests commit on connections
    # of their own, outside the test's rolled-back transaction.)
    rows = factory._meta.model.objects.filter(namespace__in=[NAMESPACE, "elsewhere"], **same)
    assert rows.count() == 2


def counts(expired_locks: int, dedupe_trimmed: int, **more: int) -> dict[str, int]:
    """What ``prune`` returns: every count, zero unless given."""
    zero = dict.fromkeys(
        ("pending_expired", "states_removed", "subscriptions_removed", "lists_expired"), 0
    )
    return {"expired_locks": expired_locks, "dedupe_trimmed": dedupe_trimmed, **zero, **more}


def test_pending_entries_may_repeat(adapter: DatabaseStateAdapter) -> None:
    PendingLockEntryFactory(key="k", owner="w")
    PendingLockEntryFactory(key="k", owner="w")
    assert len(adapter.force_release_lock("k")) == 2


def test_factory_rows_are_visible_through_the_adapter(adapter: DatabaseStateAdapter) -> None:
    SubscriptionFactory(thread_id="t1")
    DedupeEntryFactory(adapter="slack", message_id="m1")
    ThreadStateFactory(thread_id="t1", value={"turns": 4})
    ChannelStateFactory(channel_id="c1", value={"topic": "x"})
    assert adapter.is_subscribed("t1")
    assert adapter.is_duplicate(("slack", "m1"))
    assert adapter.thread_state("t1") == {"turns": 4}
    assert adapter.channel_state("c1") == {"topic": "x"}
    other = DatabaseStateAdapter(namespace="elsewhere")
    assert not other.is_subscribed("t1") and other.thread_state("t1") == {}


def test_a_lock_row_makes_lock_busy(adapter: DatabaseStateAdapter) -> None:
    LockFactory(key="k", owner="w1", strategy="reject")
    assert adapter.lock("k", "w2") is LockResult.BUSY
    assert adapter.lock("k", "w2", "queue") is LockResult.QUEUED
    assert adapter.snapshot().locks["k"]["owner"] == "w1"


def test_an_expired_lock_row_is_taken_over(adapter: DatabaseStateAdapter) -> None:
    past = timezone.now() - timedelta(hours=1)
    LockFactory(key="k", owner="w1", acquired_at=past, expires_at=past + timedelta(minutes=1))
    assert adapter.lock("k", "w2") is LockResult.ACQUIRED
    assert adapter.snapshot().locks["k"]["owner"] == "w2"


def test_pending_rows_are_returned_by_force_release_in_order(
    adapter: DatabaseStateAdapter,
) -> None:
    LockFactory(key="k", owner="w1")
    PendingLockEntryFactory(key="k", owner="w2", metadata={"m": 2})
    PendingLockEntryFactory(key="k", owner="w3", strategy="debounce")
    PendingLockEntryFactory(key="other", owner="w4")
    pending = adapter.force_release_lock("k")
    assert [(e.owner, e.strategy.value, e.metadata) for e in pending] == [
        ("w2", "queue", {"m": 2}),
        ("w3", "debounce", {}),
    ]
    assert adapter.lock("k", "w5") is LockResult.ACQUIRED
    assert list(adapter.snapshot().pending_locks) == ["other"]


def test_the_dedupe_order_is_the_seq_order(adapter: DatabaseStateAdapter) -> None:
    for i in (3, 1, 2):
        DedupeEntryFactory(message_id=f"m{i}", seq=i)
    assert adapter.snapshot().dedupe_order == [("slack", "m1"), ("slack", "m2"), ("slack", "m3")]


@pytest.mark.parametrize("fast_sql", [True, False], ids=["fast_sql", "orm"])
def test_the_window_count_is_repaired(fast_sql: bool) -> None:
    """``DedupeWindow.head`` counts the window. Rows deleted by raw SQL leave it too high:
    ``prune`` counts afresh, and a claim that finds nothing left to trim counts afresh."""
    from chatstate.models import DedupeEntry, DedupeWindow

    adapter = DatabaseStateAdapter(namespace=NAMESPACE, fast_sql=fast_sql)
    for i in range(6):
        assert adapter.claim_dedupe(("slack", f"m{i}"), 10)
    assert DedupeWindow.objects.get(namespace=NAMESPACE).head == 6
    DedupeEntry.objects.filter(namespace=NAMESPACE, message_id__in=["m0", "m1", "m2"]).delete()
    assert adapter.prune(dedupe_limit=10) == counts(0, 0)
    assert DedupeWindow.objects.get(namespace=NAMESPACE).head == 3
    assert adapter.claim_dedupe(("slack", "m6"), 3)
    assert adapter.snapshot().dedupe_order == [("slack", "m4"), ("slack", "m5"), ("slack", "m6")]

    DedupeEntry.objects.filter(namespace=NAMESPACE).delete()  # head still says 3
    assert adapter.claim_dedupe(("slack", "m7"), 2)
    assert adapter.snapshot().dedupe_order == [("slack", "m7")]
    assert DedupeWindow.objects.get(namespace=NAMESPACE).head == 1
