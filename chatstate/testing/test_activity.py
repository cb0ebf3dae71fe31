"""``activity``: how live a namespace is — locks held, claims in progress, how long ago the
newest claim, lock or state write was — on the backend's clock, changing nothing (what a
replace restore checks before it overwrites a namespace)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatstate import Snapshot
from chatstate.testing.helpers import LEASE, outlive, run_async

LATER = "2099-01-01T00:00:00Z"


def facts(store: Any, quiet_for: float = 60) -> tuple[int, int, bool, bool]:
    """``(locks held, claims in progress, activity recorded, live)``."""
    found = store.activity(quiet_for)
    return (
        found["locks_held"],
        found["claims_in_progress"],
        found["last_activity_age"] is not None,
        found["live"],
    )


def test_an_empty_namespace_is_quiet(store: Any) -> None:
    assert store.activity() == {
        "locks_held": 0,
        "claims_in_progress": 0,
        "last_activity_age": None,
        "quiet_for": 60.0,
        "live": False,
    }
    store.subscribe("t")  # a subscription is not activity
    assert facts(store) == (0, 0, False, False)


@pytest.mark.parametrize(
    "act",
    [
        lambda s: s.put_thread_state("t", {"n": 1}),
        lambda s: s.put_channel_state("c", {"n": 1}),
        lambda s: s.update_thread_state("t", lambda m: {"n": 2}),
        lambda s: s.claim_dedupe(("slack", "m1"), 10),
    ],
    ids=["thread state", "channel state", "update", "dedupe claim"],
)
def test_a_write_is_recent_activity(store: Any, act: Any) -> None:
    act(store)
    found = store.activity(60)
    assert 0 <= found["last_activity_age"] < 5
    assert facts(store, 60) == (0, 0, True, True)
    assert facts(store, 0) == (0, 0, True, False)  # nothing held: quiet for 0 seconds


def test_the_age_grows_until_the_namespace_is_quiet(store: Any) -> None:
    store.put_thread_state("t", {"n": 1})
    time.sleep(1.2)
    found = store.activity(1)
    assert 1.0 <= found["last_activity_age"] < 10
    assert found["live"] is False
    assert store.activity(30)["live"] is True


def test_a_held_lock_is_live_until_released_or_expired(store: Any) -> None:
    # Leases that outlast the checks, however slow the machine: only k3's is to run out.
    store.lock("k", "w", "queue", ttl=60)
    assert facts(store, 0) == (1, 0, True, True)
    store.lock("k2", "w", "reject", ttl=60)
    assert facts(store, 0)[:2] == (2, 0)
    store.release_lock("k2", "w")
    assert facts(store, 0)[:2] == (1, 0)
    store.release_lock("k", "w")
    store.lock("k3", "w", "queue", ttl=LEASE)
    outlive()
    assert facts(store, 0) == (0, 0, True, False)  # k3's lease ran out (its row may stay)


def test_a_message_being_handled_is_a_claim_in_progress(store: Any) -> None:
    with store.handle_message(("slack", "m1"), thread_id="t", owner="w") as msg:
        assert msg.acquired
        assert facts(store, 0) == (1, 1, True, True)
        msg.state["n"] = 1
    assert facts(store, 0) == (0, 0, True, False)
    assert facts(store, 60) == (0, 0, True, True)


def test_a_claim_whose_lease_ran_out_is_not_in_progress(store: Any) -> None:
    cycle = store.handle_message(("slack", "m1"), thread_id="t", owner="w", ttl=LEASE)
    cycle.__enter__()
    outlive()
    assert facts(store, 0) == (0, 0, True, False)
    cycle.__exit__(None, None, None)


def test_a_loaded_snapshot_counts_its_unexpired_locks_and_claims(store: Any) -> None:
    store.load_snapshot(
        Snapshot(
            dedupe={("s", "m1"), ("s", "m2")},
            dedupe_order=[("s", "m1"), ("s", "m2")],
            locks={"t": {"owner": "w", "strategy": "queue", "metadata": {}, "expires_at": LATER}},
            claims={("s", "m2"): {"owner": "w", "thread_id": "t", "expires_at": LATER}},
        )
    )
    assert facts(store, 0) == (1, 1, True, True)


def test_activity_changes_nothing_and_sees_only_its_namespace(store: Any, make_store: Any) -> None:
    other = make_store()
    other.lock("k", "w", ttl=60)
    other.put_thread_state("t", {"n": 1})
    store.subscribe("t")
    before = store.snapshot()
    assert facts(store, 0) == (0, 0, False, False)
    assert store.snapshot() == before
    assert facts(other, 0) == (1, 0, True, True)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "60", None, True])
def test_quiet_for_must_be_seconds(store: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="quiet_for"):
        store.activity(bad)
    with pytest.raises(ValueError, match="quiet_for"):
        run_async(store.aactivity, bad)


def test_the_async_twin_reports_the_same(store: Any) -> None:
    store.lock("k", "w", ttl=60)
    found = run_async(store.aactivity, 0)
    assert (found["locks_held"], found["claims_in_progress"], found["live"]) == (1, 0, True)
    assert found.keys() == store.activity().keys()
