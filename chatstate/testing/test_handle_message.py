"""``handle_message``: the whole webhook cycle as a context manager (and its async twin)."""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LockResult, NotOwner
from chatstate.testing.helpers import entries, outlive, run_async

KEY = ("slack", "m1")


class Boom(Exception):
    pass


def test_a_fresh_message_acquires_and_sees_the_thread_state(store: Any) -> None:
    store.subscribe("t")
    store.put_thread_state("t", {"turns": 1})
    with store.handle_message(KEY, thread_id="t", owner="w") as msg:
        assert (msg.duplicate, msg.subscribed, msg.result) == (False, True, LockResult.ACQUIRED)
        assert msg.state == {"turns": 1}
        assert store.snapshot().locks["t"]["owner"] == "w"
        assert store.is_duplicate(KEY)


def test_subscribed_reports_the_subscription(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w") as msg:
        assert msg.subscribed is False
        assert msg.result is LockResult.ACQUIRED


def test_the_state_is_a_copy_written_on_clean_exit_and_the_lock_released(store: Any) -> None:
    store.put_thread_state("t", {"turns": 1, "log": ["a"]})
    with store.handle_message(KEY, thread_id="t", owner="w") as msg:
        msg.state["turns"] += 1
        msg.state["log"].append("b")
        assert store.thread_state("t") == {"turns": 1, "log": ["a"]}
    assert store.thread_state("t") == {"turns": 2, "log": ["a", "b"]}
    assert store.snapshot().locks == {}
    assert msg.pending == []
    msg.state["turns"] = 99
    assert store.thread_state("t") == {"turns": 2, "log": ["a", "b"]}


def test_an_unchanged_state_is_not_written_and_the_lock_is_released(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w") as msg:
        assert msg.result is LockResult.ACQUIRED
    assert store.snapshot().thread_state == {} and store.snapshot().locks == {}


def test_pending_entries_queued_during_the_block_are_returned_in_order(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w", strategy="queue") as msg:
        assert store.lock("t", "w2", "queue", {"m": 2}) is LockResult.QUEUED
        assert store.lock("t", "w3", "queue", {"m": 3}) is LockResult.QUEUED
        msg.state["done"] = True
    assert entries(msg.pending) == [("w2", "queue", {"m": 2}), ("w3", "queue", {"m": 3})]
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}
    assert snap.thread_state == {"t": {"done": True}}


def test_an_exception_writes_nothing_withdraws_the_claim_and_keeps_pending(store: Any) -> None:
    store.put_thread_state("t", {"turns": 1})
    store.mark_dedupe(("slack", "m0"), 10)
    cycle = store.handle_message(KEY, thread_id="t", owner="w", strategy="queue")
    with pytest.raises(Boom), cycle as msg:
        msg.state["turns"] = 2
        store.lock("t", "w2", "queue", {"m": 2})
        raise Boom
    snap = store.snapshot()
    assert snap.thread_state == {"t": {"turns": 1}}
    assert snap.dedupe_order == [("slack", "m0")]
    assert not store.is_duplicate(KEY)
    assert snap.locks == {}
    assert [e["owner"] for e in snap.pending_locks["t"]] == ["w2"]
    # The redelivery is handled: it arrived after what was left pending, so it is queued
    # behind it, and its cycle (holding the thread) drains both in that order.
    with store.handle_message(
        KEY, thread_id="t", owner="w", strategy="queue", metadata={"m": 1}
    ) as again:
        assert (again.duplicate, again.result) == (False, LockResult.QUEUED)
        assert again.state == {"turns": 1}
        assert entries(list(again.drain())) == [("w2", "queue", {"m": 2}), ("w", "queue", {"m": 1})]


def test_a_duplicate_runs_the_block_and_writes_nothing(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w") as first:
        first.state["n"] = 1
    ran = False
    with store.handle_message(KEY, thread_id="t", owner="w2") as msg:
        ran = True
        assert (msg.duplicate, msg.result, msg.state) == (True, None, {})
        assert store.snapshot().locks == {}
        msg.state["n"] = 2
    assert ran and msg.pending == []
    assert store.thread_state("t") == {"n": 1}


def test_a_duplicate_that_raises_leaves_the_original_claim(store: Any) -> None:
    store.mark_dedupe(KEY, 10)
    with pytest.raises(Boom), store.handle_message(KEY, thread_id="t", owner="w"):
        raise Boom
    assert store.is_duplicate(KEY)


def test_busy_under_reject_releases_the_claim_and_writes_nothing(store: Any) -> None:
    store.lock("t", "holder", "queue")
    store.put_thread_state("t", {"n": 1})
    with store.handle_message(KEY, thread_id="t", owner="w", strategy="reject") as msg:
        assert (msg.duplicate, msg.result, msg.state) == (False, LockResult.BUSY, {})
        msg.state["n"] = 2
    assert msg.pending == []
    assert not store.is_duplicate(KEY)  # refused: the platform's redelivery is handled
    snap = store.snapshot()
    assert snap.thread_state == {"t": {"n": 1}}
    assert snap.locks["t"]["owner"] == "holder" and snap.pending_locks == {}


@pytest.mark.parametrize(
    ("strategy", "result"), [("queue", LockResult.QUEUED), ("debounce", LockResult.DEBOUNCED)]
)
def test_not_acquired_runs_the_block_and_writes_nothing(
    store: Any, strategy: str, result: LockResult
) -> None:
    store.lock("t", "holder", "queue")
    store.put_thread_state("t", {"n": 1})
    with store.handle_message(
        KEY, thread_id="t", owner="w", strategy=strategy, metadata={"m": 1}
    ) as msg:
        assert (msg.duplicate, msg.result, msg.state) == (False, result, {})
        msg.state["n"] = 2
    assert msg.pending == []
    snap = store.snapshot()
    assert snap.thread_state == {"t": {"n": 1}}
    assert snap.locks["t"]["owner"] == "holder"
    assert entries(store.release_lock("t", "holder")) == [("w", strategy, {"m": 1})]


def test_concurrent_acquires_without_a_lock_and_writes_on_exit(store: Any) -> None:
    store.lock("t", "holder")
    with store.handle_message(KEY, thread_id="t", owner="w", strategy="concurrent") as msg:
        assert msg.result is LockResult.ACQUIRED
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    assert store.snapshot().locks["t"]["owner"] == "holder"


def test_a_lost_lease_raises_not_owner_and_writes_nothing(store: Any) -> None:
    store.put_thread_state("t", {"n": 1})
    with (
        pytest.raises(NotOwner),
        store.handle_message(KEY, thread_id="t", owner="w", ttl=0.2) as msg,
    ):
        msg.state["n"] = 2
        outlive(0.2)
        assert store.lock("t", "other", ttl=60) is LockResult.ACQUIRED
    assert store.thread_state("t") == {"n": 1}
    assert store.snapshot().locks["t"]["owner"] == "other"


def test_an_expired_lease_nobody_took_over_still_commits(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w", ttl=0.2) as msg:
        msg.state["n"] = 2
        outlive(0.2)
    assert store.thread_state("t") == {"n": 2}
    assert store.snapshot().locks == {}


@pytest.mark.usefixtures("transactional_db")
def test_the_async_twin_runs_the_same_cycle(store: Any) -> None:
    store.subscribe("t")
    store.put_thread_state("t", {"n": 1})

    async def cycle() -> Any:
        async with store.ahandle_message(KEY, thread_id="t", owner="w", strategy="queue") as m:
            assert (m.duplicate, m.subscribed, m.result) == (False, True, LockResult.ACQUIRED)
            assert m.state == {"n": 1}
            assert await store.alock("t", "w2", "queue", {"m": 2}) is LockResult.QUEUED
            m.state["n"] = 2
        async with store.ahandle_message(KEY, thread_id="t", owner="w3") as dup:
            assert (dup.duplicate, dup.result) == (True, None)
        return m

    msg = run_async(cycle)
    assert entries(msg.pending) == [("w2", "queue", {"m": 2})]
    assert store.thread_state("t") == {"n": 2}
    assert store.snapshot().locks == {}


@pytest.mark.usefixtures("transactional_db")
def test_the_async_twin_withdraws_on_exception(store: Any) -> None:
    async def cycle() -> None:
        async with store.ahandle_message(KEY, thread_id="t", owner="w", strategy="queue") as m:
            await store.alock("t", "w2", "queue")
            m.state["n"] = 1
            raise Boom

    with pytest.raises(Boom):
        run_async(cycle)
    snap = store.snapshot()
    assert snap.thread_state == {} and snap.locks == {} and not store.is_duplicate(KEY)
    assert [e["owner"] for e in snap.pending_locks["t"]] == ["w2"]


def test_the_dedupe_limit_applies_to_the_claim(store: Any) -> None:
    store.mark_dedupe(("s", "old"), 10)
    with store.handle_message(KEY, thread_id="t", owner="w", dedupe_limit=1):
        pass
    assert store.snapshot().dedupe_order == [KEY]


@pytest.mark.parametrize(
    "bad", [{"x": object()}, {"x": float("nan")}, [1]], ids=["object", "nan", "not-a-dict"]
)
def test_a_state_that_cannot_be_stored_fails_the_cycle_like_an_exception(
    store: Any, bad: Any
) -> None:
    store.put_thread_state("t", {"n": 1})
    with (
        pytest.raises(TypeError),
        store.handle_message(KEY, thread_id="t", owner="w", strategy="queue") as msg,
    ):
        store.lock("t", "w2", "queue")
        if isinstance(bad, dict):
            msg.state.update(bad)
        else:
            msg.state = bad
    snap = store.snapshot()
    assert snap.thread_state == {"t": {"n": 1}}
    assert snap.locks == {} and not store.is_duplicate(KEY)
    assert [e["owner"] for e in snap.pending_locks["t"]] == ["w2"]
