"""``prune``: removes expired locks (never their pending entries), trims the dedupe window."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from chatstate import LockResult, Snapshot
from chatstate.testing.helpers import LEASE, entries, outlive

PAST = "2020-01-01T00:00:00.000000Z"
FUTURE = "2099-01-01T00:00:00.000000Z"


def counts(expired_locks: int, dedupe_trimmed: int, **more: int) -> dict[str, int]:
    """What ``prune`` returns: every count, zero unless given."""
    zero = dict.fromkeys(
        ("pending_expired", "states_removed", "subscriptions_removed", "lists_expired"), 0
    )
    return {"expired_locks": expired_locks, "dedupe_trimmed": dedupe_trimmed, **zero, **more}


def state_with_locks() -> Snapshot:
    """Two expired locks (one with pending entries) and one live lock, five dedupe keys."""
    keys = [("s", f"m{i}") for i in range(5)]
    lock = {"strategy": "queue", "metadata": {}, "acquired_at": PAST}
    return Snapshot(
        dedupe=set(keys),
        dedupe_order=keys,
        locks={
            "dead": {**lock, "owner": "a", "expires_at": PAST},
            "dead2": {**lock, "owner": "b", "expires_at": PAST},
            "live": {**lock, "owner": "c", "expires_at": FUTURE},
        },
        pending_locks={
            "dead": [
                {"owner": "p1", "strategy": "queue", "metadata": {"m": 1}, "enqueued_at": PAST},
                {"owner": "p2", "strategy": "queue", "metadata": {}, "enqueued_at": PAST},
            ],
            "live": [{"owner": "p3", "strategy": "queue", "metadata": {}, "enqueued_at": PAST}],
        },
    )


def test_prune_removes_expired_locks_and_keeps_their_pending_entries(store: Any) -> None:
    store.load_snapshot(state_with_locks())
    assert store.prune(dedupe_limit=100) == counts(2, 0)
    snap = store.snapshot()
    assert list(snap.locks) == ["live"]
    assert snap.pending_locks == state_with_locks().pending_locks
    # The next holder of the pruned key receives what was pending behind the dead one.
    assert store.lock("dead", "new") is LockResult.ACQUIRED
    assert entries(store.release_lock("dead", "new")) == [
        ("p1", "queue", {"m": 1}),
        ("p2", "queue", {}),
    ]


def test_prune_trims_the_dedupe_window_to_the_limit(store: Any) -> None:
    store.load_snapshot(state_with_locks())
    assert store.prune(dedupe_limit=2) == counts(2, 3)
    assert store.snapshot().dedupe_order == [("s", "m3"), ("s", "m4")]
    assert store.prune(dedupe_limit=2) == counts(0, 0)
    store.mark_dedupe(("s", "m5"), 10)
    assert store.snapshot().dedupe_order == [("s", "m3"), ("s", "m4"), ("s", "m5")]


def test_dry_run_counts_and_removes_nothing(store: Any) -> None:
    store.load_snapshot(state_with_locks())
    before = store.snapshot()
    assert store.prune(dedupe_limit=1, dry_run=True) == counts(2, 4)
    assert store.snapshot() == before


def test_the_default_limit_is_the_setting(store: Any, make_store: Any) -> None:
    with override_settings(CHATSTATE={"DEDUPE_LIMIT": 3}):
        small = make_store()
    small.load_snapshot(state_with_locks())
    assert small.prune()["dedupe_trimmed"] == 2
    assert small.snapshot().dedupe_order == [("s", "m2"), ("s", "m3"), ("s", "m4")]


def test_prune_of_a_tidy_store_removes_nothing(store: Any) -> None:
    store.lock("k", "a", ttl=60)
    store.mark_dedupe(("s", "1"), 10)
    before = store.snapshot()
    assert store.prune(dedupe_limit=10) == counts(0, 0)
    assert store.snapshot() == before


def test_prune_removes_expired_lists_and_counts_them(store: Any) -> None:
    store.append_to_list("short", 1, ttl=LEASE)
    store.append_to_list("short", 2)  # no ttl: the expiry stays
    store.append_to_list("history:t", {"n": 1}, ttl=LEASE)
    store.append_to_list("kept", 1)
    store.append_to_list("long", 1, ttl=60)
    outlive()
    assert store.prune(dedupe_limit=10, dry_run=True) == counts(0, 0, lists_expired=2)
    assert store.prune(dedupe_limit=10) == counts(0, 0, lists_expired=2)
    assert store.prune(dedupe_limit=10) == counts(0, 0)
    assert store.get_list("kept") == [1] and store.get_list("long") == [1]
    assert store.delete_list("short") == 0 and store.history("t") == []
    store.append_to_list("short", 3)  # a new list, without an expiry
    outlive()
    assert store.prune(dedupe_limit=10) == counts(0, 0)
    assert store.get_list("short") == [3]
