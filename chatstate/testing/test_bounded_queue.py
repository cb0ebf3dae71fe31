"""Bounded queues: ``max_pending`` (default ``MAX_PENDING``) with ``overflow="drop_oldest"`` or
``"drop_newest"`` (default ``OVERFLOW``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from chatstate import LockResult
from chatstate.testing.helpers import entries


def fill(store: Any, n: int, **kwargs: Any) -> list[LockResult]:
    return [store.lock("k", f"w{i}", "queue", {"m": i}, **kwargs) for i in range(1, n + 1)]


def owners(store: Any) -> list[str]:
    return [e["owner"] for e in store.snapshot().pending_locks.get("k", [])]


def test_drop_oldest_keeps_the_newest_entries(store: Any) -> None:
    store.lock("k", "holder", "queue")
    assert fill(store, 4, max_pending=2, overflow="drop_oldest") == [LockResult.QUEUED] * 4
    assert owners(store) == ["w3", "w4"]
    assert entries(store.release_lock("k", "holder")) == [
        ("w3", "queue", {"m": 3}),
        ("w4", "queue", {"m": 4}),
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


def test_queues_are_bounded_by_default_by_the_settings(store: Any, make_store: Any) -> None:
    assert store.max_pending == 100 and store.overflow == "drop_oldest"
    with override_settings(CHATSTATE={"MAX_PENDING": 2, "OVERFLOW": "drop_newest"}):
        bounded = make_store()
    bounded.lock("k", "holder", "queue")
    assert fill(bounded, 3) == [LockResult.QUEUED, LockResult.QUEUED, LockResult.DROPPED]
    assert owners(bounded) == ["w1", "w2"]
    assert bounded.lock("k", "w4", "queue", max_pending=3) is LockResult.QUEUED


def test_unbounded_when_the_setting_is_none(store: Any, make_store: Any) -> None:
    with override_settings(CHATSTATE={"MAX_PENDING": None}):
        unbounded = make_store()
    unbounded.lock("k", "holder", "queue")
    assert fill(unbounded, 105) == [LockResult.QUEUED] * 105


def test_handle_message_queues_within_its_bound(store: Any) -> None:
    store.lock("t", "holder", "queue")
    for n in range(3):
        with store.handle_message(
            ("s", f"m{n}"),
            thread_id="t",
            owner=f"w{n}",
            strategy="queue",
            max_pending=2,
            overflow="drop_oldest",
        ) as msg:
            assert msg.result is LockResult.QUEUED
    assert [e["owner"] for e in store.snapshot().pending_locks["t"]] == ["w1", "w2"]
    with store.handle_message(
        ("s", "m9"),
        thread_id="t",
        owner="w9",
        strategy="queue",
        max_pending=2,
        overflow="drop_newest",
    ) as msg:
        assert msg.result is LockResult.DROPPED


def test_a_message_a_full_queue_refuses_is_handled_when_redelivered(store: Any) -> None:
    store.lock("t", "holder", "queue")
    kwargs: Any = {"thread_id": "t", "strategy": "queue", "max_pending": 1}
    with store.handle_message(("s", "m1"), owner="w1", overflow="drop_newest", **kwargs) as msg:
        assert msg.result is LockResult.QUEUED
    with store.handle_message(("s", "m2"), owner="w2", overflow="drop_newest", **kwargs) as msg:
        assert msg.result is LockResult.DROPPED
    assert not store.is_duplicate(("s", "m2"))  # released: its redelivery is not a duplicate
    assert store.is_duplicate(("s", "m1"))  # queued: stored, so done
    store.release_lock("t", "holder")
    with store.handle_message(("s", "m2"), owner="w2b", **kwargs) as msg:
        assert not msg.duplicate and msg.acquired
        msg.state["handled"] = "m2"
    assert store.thread_state("t") == {"handled": "m2"}


@pytest.mark.parametrize(("setting", "value"), [("MAX_PENDING", 0), ("OVERFLOW", "drop_all")])
def test_a_bad_bound_setting_is_refused(make_store: Any, setting: str, value: Any) -> None:
    with (
        override_settings(CHATSTATE={setting: value}),
        pytest.raises(ValueError, match=setting if setting != "OVERFLOW" else "overflow"),
    ):
        make_store()
