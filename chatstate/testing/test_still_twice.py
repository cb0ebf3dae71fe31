"""A message is applied once even when the window fills or a holder dies (issue 19).

* The dedupe window keeps the newest ``limit`` keys *and* every claim in progress and alive:
  a handler that holds its message while more than ``limit`` others pass is not forgotten,
  so the platform's redelivery is a duplicate in progress, not a second handling.
* A commit whose claim is no longer its own writes nothing (``LeaseLost``).
* A message that takes a thread whose previous holder left entries queued goes behind them:
  the cycle holds the lock and its ``drain()`` hands out the older entries, then itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LeaseLost, LockResult
from chatstate.testing.helpers import LEASE, outlive

M = ("slack", "m")


def others(store: Any, count: int, limit: int, strategy: str) -> None:
    for n in range(count):
        with store.handle_message(
            ("slack", f"o{n}"), thread_id=f"other{n}", owner=f"o{n}", strategy=strategy,
            dedupe_limit=limit,
        ) as msg:  # fmt: skip
            assert msg.acquired


@pytest.mark.parametrize("strategy", ["reject", "queue"])
def test_a_claim_in_progress_outlives_a_full_window(store: Any, strategy: str) -> None:
    applied = 0
    with store.handle_message(
        M, thread_id="t", owner="a", strategy=strategy, dedupe_limit=5, ttl=60
    ) as first:
        assert first.acquired
        others(store, 20, 5, strategy)
        assert store.is_duplicate(M)  # still in the window: in progress
        with store.handle_message(
            M, thread_id="t", owner="b", strategy=strategy, dedupe_limit=5
        ) as again:
            assert (again.duplicate, again.in_progress, again.result) == (True, True, None)
        applied += 1
        first.state["applied"] = applied
    with store.handle_message(
        M, thread_id="t", owner="c", strategy=strategy, dedupe_limit=5
    ) as late:
        assert (late.duplicate, late.in_progress) == (True, False)
        if late.acquired:
            applied += 1
    assert applied == 1
    assert store.thread_state("t") == {"applied": 1}
    # Once done it is trimmed as any key: the window holds the newest five again.
    others(store, 6, 5, strategy)
    assert not store.is_duplicate(M)
    assert len(store.snapshot().dedupe_order) == 5


def test_the_window_counts_the_claims_it_keeps(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="a", dedupe_limit=3, ttl=60) as first:
        for n in range(3):
            store.mark_dedupe(("slack", f"k{n}"), 3)
        snap = store.snapshot()
        assert snap.dedupe_order == [M, ("slack", "k0"), ("slack", "k1"), ("slack", "k2")]
        assert M in snap.claims
        first.state["n"] = 1
    store.mark_dedupe(("slack", "k3"), 3)
    assert store.snapshot().dedupe_order == [("slack", f"k{n}") for n in (1, 2, 3)]


def test_a_dead_claim_is_trimmed_as_any_key(store: Any) -> None:
    dead = store.handle_message(M, thread_id="t", owner="a", dedupe_limit=3, ttl=LEASE)
    dead.__enter__()
    outlive()
    for n in range(3):
        store.mark_dedupe(("slack", f"k{n}"), 3)
    assert store.snapshot().dedupe_order == [("slack", f"k{n}") for n in range(3)]


def test_prune_keeps_a_claim_in_progress(store: Any) -> None:
    with store.handle_message(M, thread_id="t", owner="a", ttl=60) as first:
        for n in range(4):
            store.mark_dedupe(("slack", f"k{n}"), 10)
        assert store.prune(dedupe_limit=2)["dedupe_trimmed"] == 2
        assert store.is_duplicate(M)
        first.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}


def test_a_commit_whose_claim_went_to_another_delivery_writes_nothing(store: Any) -> None:
    store.put_thread_state("t", {"n": 0})
    first = store.handle_message(M, thread_id="t", owner="a", ttl=LEASE, strategy="concurrent")
    first.__enter__()
    first.state["n"] = 100
    outlive()
    with store.handle_message(M, thread_id="t", owner="b", strategy="concurrent", ttl=60) as again:
        assert again.acquired
        with pytest.raises(LeaseLost):
            first.__exit__(None, None, None)
        again.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}


def test_a_holder_that_died_mid_drain_keeps_its_place_in_line(store: Any) -> None:
    lease = 1.0  # the queue and the first drain step fit in it on a busy machine
    dead = store.handle_message(("slack", "m0"), thread_id="t", owner="w0", strategy="queue",
                                ttl=lease)  # fmt: skip
    msg = dead.__enter__()
    for n in range(1, 6):
        assert store.lock("t", f"w{n}", "queue", {"n": n}) is LockResult.QUEUED
    steps = msg.drain()
    assert next(steps).metadata["n"] == 1  # ... and the holder dies handling it
    outlive(lease)
    order = []
    with store.handle_message(
        ("slack", "m6"), thread_id="t", owner="w6", strategy="queue", metadata={"n": 6}
    ) as newcomer:
        assert newcomer.result is LockResult.QUEUED and not newcomer.duplicate
        if newcomer.acquired:  # the docs' pattern: never true here
            order.append("self")
        for entry in newcomer.drain():
            order.append(entry.metadata["n"])
            newcomer.state["last"] = entry.metadata["n"]
    assert order == [1, 2, 3, 4, 5, 6]
    assert store.thread_state("t") == {"last": 6}
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}
    assert store.is_duplicate(("slack", "m6"))


def test_a_newcomer_behind_left_entries_that_raises_leaves_them_all_queued(store: Any) -> None:
    store.lock("t", "dead", ttl=LEASE)
    store.lock("t", "w1", "queue", {"n": 1})
    outlive()

    class Boom(Exception):
        pass

    with (
        pytest.raises(Boom),
        store.handle_message(("slack", "m2"), thread_id="t", owner="w2", strategy="queue",
                             metadata={"n": 2}) as msg,
    ):  # fmt: skip
        assert msg.result is LockResult.QUEUED
        raise Boom
    snap = store.snapshot()
    assert snap.locks == {}
    assert [e["metadata"]["n"] for e in snap.pending_locks["t"]] == [1, 2]
    assert store.is_duplicate(("slack", "m2"))  # stored behind the lock: done


def test_debounce_behind_left_entries_keeps_only_the_newcomer(store: Any) -> None:
    store.lock("t", "dead", ttl=LEASE)
    store.lock("t", "w1", "debounce", {"n": 1})
    outlive()
    with store.handle_message(("slack", "m2"), thread_id="t", owner="w2", strategy="debounce",
                              metadata={"n": 2}) as msg:  # fmt: skip
        assert msg.result is LockResult.DEBOUNCED
        assert [e.metadata["n"] for e in msg.drain()] == [2]


def test_reject_takes_a_thread_with_left_entries_as_before(store: Any) -> None:
    store.lock("t", "dead", ttl=LEASE)
    store.lock("t", "w1", "queue", {"n": 1})
    outlive()
    with store.handle_message(("slack", "m2"), thread_id="t", owner="w2") as msg:
        assert msg.acquired
        assert [e.metadata["n"] for e in msg.drain()] == [1]
