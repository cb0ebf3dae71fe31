"""Namespaces: two adapters of one backend in different namespaces share nothing."""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LockResult, NotOwner, default_snapshot
from chatstate.testing.helpers import entries, populate


def test_state_in_one_namespace_is_invisible_in_another(store: Any, make_store: Any) -> None:
    other = make_store()
    populate(store)
    assert other.snapshot() == default_snapshot()
    assert not other.is_subscribed("t1")
    assert not other.is_duplicate(("slack", "m1"))
    assert other.thread_state("t1") == {} and other.channel_state("c1") == {}
    assert other.claim_dedupe(("slack", "m1"), 10) is True
    assert other.lock("k", "z") is LockResult.ACQUIRED
    with pytest.raises(NotOwner):
        other.release_lock("k", "a")
    assert other.extend_lock("k", "a", 60) is False
    assert other.force_release_lock("k") == []


def test_the_same_ids_hold_separate_values(store: Any, make_store: Any) -> None:
    other = make_store()
    store.put_thread_state("t", {"ns": 1})
    other.put_thread_state("t", {"ns": 2})
    store.update_channel_state("c", lambda s: {"ns": 1})
    other.update_channel_state("c", lambda s: {"ns": 2})
    store.lock("k", "a", "queue")
    other.lock("k", "a", "queue")
    store.lock("k", "b", "queue")
    assert (store.thread_state("t"), other.thread_state("t")) == ({"ns": 1}, {"ns": 2})
    assert (store.channel_state("c"), other.channel_state("c")) == ({"ns": 1}, {"ns": 2})
    assert other.release_lock("k", "a") == []
    assert entries(store.release_lock("k", "a")) == [("b", "queue", {})]


def test_whole_namespace_operations_stay_in_their_namespace(store: Any, make_store: Any) -> None:
    other = make_store()
    populate(store)
    populate(other)
    before = store.snapshot()
    other.load_snapshot(default_snapshot())
    assert store.snapshot() == before
    other.mark_dedupe(("x", "1"), 1)
    other.prune(dedupe_limit=1)
    with other.handle_message(("slack", "m9"), thread_id="t1", owner="w") as msg:
        msg.state["touched"] = True
    assert store.snapshot() == before


def test_dedupe_windows_trim_per_namespace(store: Any, make_store: Any) -> None:
    other = make_store()
    for i in range(3):
        store.mark_dedupe(("s", f"m{i}"), 3)
    for i in range(5):
        other.mark_dedupe(("s", f"o{i}"), 2)
    assert store.snapshot().dedupe_order == [("s", "m0"), ("s", "m1"), ("s", "m2")]
    assert other.snapshot().dedupe_order == [("s", "o3"), ("s", "o4")]
