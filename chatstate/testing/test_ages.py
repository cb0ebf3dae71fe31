"""Ages: ``PENDING_TTL`` (pending entries expire when handed over, and by ``prune``),
``DEDUPE_MIN_AGE`` (the window keeps young keys), and state retention
(``prune(state_older_than=...)``)."""

from __future__ import annotations

import time
from typing import Any

from django.test import override_settings

from chatstate.testing.helpers import Pause, entries


def aged(make_store: Any, **settings: Any) -> Any:
    with override_settings(CHATSTATE=settings):
        return make_store()


def test_expired_pending_entries_are_dropped_when_handed_over(make_store: Any) -> None:
    store = aged(make_store, PENDING_TTL=1.0)
    store.lock("k", "a", "queue")
    store.lock("k", "old", "queue", {"m": 1})
    time.sleep(1.2)
    store.lock("k", "new", "queue", {"m": 2})
    assert entries(store.release_lock("k", "a")) == [("new", "queue", {"m": 2})]
    assert store.snapshot().pending_locks == {}
    store.lock("k", "a", "queue")
    store.lock("k", "old", "queue")
    time.sleep(1.2)
    assert store.take_pending("k", "a") == []
    assert store.snapshot().pending_locks == {}


def test_expired_entries_are_skipped_by_a_drain(make_store: Any) -> None:
    store = aged(make_store, PENDING_TTL=1.0)
    with store.handle_message(("s", "m0"), thread_id="t", owner="a", strategy="queue") as msg:
        store.lock("t", "old", "queue", {"n": 1})
        time.sleep(1.2)
        store.lock("t", "new", "queue", {"n": 2})
        assert [e.metadata["n"] for e in msg.drain()] == [2]


def test_prune_drops_expired_entries_and_ownerless_queues(make_store: Any) -> None:
    store = aged(make_store, PENDING_TTL=1.0)
    store.lock("k", "a", "queue", ttl=1.0)  # b and c queue behind it, even on a loaded machine
    store.lock("k", "b", "queue")
    store.lock("k", "c", "queue")
    time.sleep(1.3)  # the holder is gone, its queue is older than the ttl
    assert store.prune(dry_run=True)["pending_expired"] == 2
    assert len(store.snapshot().pending_locks["k"]) == 2
    counts = store.prune()
    assert counts["pending_expired"] == 2 and counts["expired_locks"] == 1
    assert store.snapshot().pending_locks == {}


def test_without_a_pending_ttl_entries_never_expire(store: Any) -> None:
    assert store.pending_ttl is None
    store.lock("k", "a", "queue")
    store.lock("k", "b", "queue")
    assert store.prune()["pending_expired"] == 0
    assert len(store.release_lock("k", "a")) == 1


def test_the_window_keeps_keys_younger_than_its_minimum_age(store: Any) -> None:
    for i in range(5):
        store.mark_dedupe(("s", f"m{i}"), 2, min_age=60)
    assert len(store.snapshot().dedupe_order) == 5  # all young: none dropped
    assert store.is_duplicate(("s", "m0"))
    store.mark_dedupe(("s", "m5"), 2)  # no minimum age: the oldest beyond the limit go
    assert store.snapshot().dedupe_order == [("s", "m4"), ("s", "m5")]


def test_the_minimum_age_setting_and_handle_message(make_store: Any) -> None:
    store = aged(make_store, DEDUPE_MIN_AGE=1.0)
    store.mark_dedupe(("s", "old"), 1)
    time.sleep(1.2)
    store.mark_dedupe(("s", "young"), 1)
    with store.handle_message(("s", "m"), thread_id="t", owner="w", dedupe_limit=1):
        pass
    order = store.snapshot().dedupe_order
    assert ("s", "old") not in order and ("s", "young") in order and ("s", "m") in order
    assert store.prune(dedupe_limit=1)["dedupe_trimmed"] == 0  # both young


def test_state_retention_removes_what_was_not_touched(store: Any) -> None:
    store.put_thread_state("idle", {"n": 1})
    store.put_channel_state("quiet", {"n": 1})
    store.subscribe("idle")
    store.subscribe("chatty")
    store.put_thread_state("chatty", {"n": 1})
    pause = Pause()
    store.put_thread_state("chatty", {"n": 2})  # touched: the thread and its subscription stay
    store.put_channel_state("busy", {"n": 1})
    dry = store.prune(dry_run=True, state_older_than=pause.age())
    assert (dry["states_removed"], dry["subscriptions_removed"]) == (2, 1)
    assert store.thread_state("idle") == {"n": 1}
    counts = store.prune(state_older_than=pause.age())
    assert (counts["states_removed"], counts["subscriptions_removed"]) == (2, 1)
    snap = store.snapshot()
    assert snap.thread_state == {"chatty": {"n": 2}} and snap.channel_state == {"busy": {"n": 1}}
    assert snap.subscriptions == {"chatty"}
    assert store.prune(state_older_than=pause.age())["states_removed"] == 0


def test_a_cycle_touches_its_thread(store: Any) -> None:
    store.put_thread_state("t", {"n": 0})
    pause = Pause()
    with store.handle_message(("s", "m"), thread_id="t", owner="w") as msg:
        msg.state["n"] = 1
    assert store.prune(state_older_than=pause.age())["states_removed"] == 0
