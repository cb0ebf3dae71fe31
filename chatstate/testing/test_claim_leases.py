"""Claims with a lease: a message being handled is a duplicate only while its holder lives.

A ``handle_message`` cycle's claim is *in progress* until its commit marks it *done* in the
same step that writes the state and releases the lock; its abort withdraws only a claim
still in progress and its own, so a commit that ran is never undone; a claim whose lease ran
out (its holder died) does not make a redelivery a duplicate.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LeaseLost, LockResult, NotOwner
from chatstate.testing.helpers import LEASE, outlive

KEY = ("slack", "m1")


class Boom(Exception):
    pass


def enter(store: Any, owner: str, **kwargs: Any) -> Any:
    """A cycle entered and left open: its holder "dies" inside the block (never exits)."""
    kwargs.setdefault("thread_id", "t")
    cycle = store.handle_message(KEY, owner=owner, **kwargs)
    cycle.__enter__()
    return cycle


def test_a_message_in_progress_is_a_duplicate_while_its_holder_lives(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="a", ttl=60) as first:
        assert first.acquired
        assert store.is_duplicate(KEY)
        assert store.claim_dedupe(KEY) is False
        with store.handle_message(KEY, thread_id="t", owner="b") as again:
            assert (again.duplicate, again.in_progress, again.result) == (True, True, None)
        first.state["n"] = 1
    assert store.is_duplicate(KEY)
    assert store.thread_state("t") == {"n": 1}
    with store.handle_message(KEY, thread_id="t", owner="c") as done:
        assert (done.duplicate, done.in_progress) == (True, False)


def test_a_dead_holders_message_is_handled_by_the_redelivery(store: Any) -> None:
    store.put_thread_state("t", {"n": 0})
    dead = enter(store, "a", ttl=LEASE)
    dead.state["n"] = 100  # never written: its holder dies
    outlive()
    assert not store.is_duplicate(KEY)
    with store.handle_message(KEY, thread_id="t", owner="b", ttl=60) as again:
        assert (again.duplicate, again.result) == (False, LockResult.ACQUIRED)
        assert again.state == {"n": 0}
        again.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    assert store.is_duplicate(KEY)
    # The holder that was thought dead comes back: its commit writes nothing.
    with pytest.raises(LeaseLost):
        dead.__exit__(None, None, None)
    assert store.thread_state("t") == {"n": 1}
    assert store.is_duplicate(KEY)


def test_a_late_commit_of_an_expired_holder_nobody_replaced_still_lands(store: Any) -> None:
    slow = enter(store, "a", ttl=LEASE)
    slow.state["n"] = 1
    outlive()
    slow.__exit__(None, None, None)
    assert store.thread_state("t") == {"n": 1}
    assert store.is_duplicate(KEY)
    outlive()
    assert store.is_duplicate(KEY)  # done: no lease to run out any more


def test_claim_dedupe_takes_over_a_dead_claim_and_marks_it_done(store: Any) -> None:
    enter(store, "a", ttl=LEASE)
    outlive()
    assert store.claim_dedupe(KEY) is True
    assert store.claim_dedupe(KEY) is False
    outlive()
    assert store.is_duplicate(KEY)


def test_a_taken_over_claim_keeps_its_place_in_the_window(store: Any) -> None:
    store.mark_dedupe(("s", "old"), 10)
    enter(store, "a", ttl=LEASE)
    store.mark_dedupe(("s", "new"), 10)
    outlive()
    assert store.claim_dedupe(KEY, 10) is True
    assert store.snapshot().dedupe_order == [("s", "old"), KEY, ("s", "new")]


def test_extending_the_lock_keeps_the_claim_alive_past_its_own_lease(store: Any) -> None:
    cycle = enter(store, "a", ttl=LEASE)
    assert store.extend_lock("t", "a", 60)
    outlive()
    assert store.is_duplicate(KEY)
    with store.handle_message(KEY, thread_id="t", owner="b") as again:
        assert again.duplicate
    cycle.state["n"] = 1
    cycle.__exit__(None, None, None)
    assert store.thread_state("t") == {"n": 1}


def test_an_abort_after_a_commit_that_ran_undoes_nothing(store: Any) -> None:
    """What a lost commit reply leaves: the commit ran, the cycle's cleanup runs anyway."""
    with store.handle_message(KEY, thread_id="t", owner="a", strategy="queue") as msg:
        msg.state["n"] = 1
    assert store.lock("t", "b", ttl=60) is LockResult.ACQUIRED
    store._do_cycle_abort(msg.request)
    assert store.is_duplicate(KEY)
    assert store.thread_state("t") == {"n": 1}
    assert store.snapshot().locks["t"]["owner"] == "b"
    with store.handle_message(KEY, thread_id="t", owner="c") as again:
        assert again.duplicate


def test_an_abort_withdraws_only_its_own_claim(store: Any) -> None:
    first = enter(store, "a", ttl=LEASE)
    outlive()
    with store.handle_message(KEY, thread_id="t", owner="b", ttl=60) as again:
        assert again.acquired
        store._do_cycle_abort(first.request)  # the dead holder's cleanup, late
        assert store.is_duplicate(KEY)
        assert store.snapshot().locks["t"]["owner"] == "b"
        again.state["n"] = 2
    assert store.thread_state("t") == {"n": 2}
    assert store.is_duplicate(KEY)


def test_a_failed_block_withdraws_the_claim_and_frees_the_thread(store: Any) -> None:
    with pytest.raises(Boom), store.handle_message(KEY, thread_id="t", owner="a") as msg:
        msg.state["n"] = 1
        raise Boom
    assert not store.is_duplicate(KEY)
    assert store.snapshot().locks == {}
    with store.handle_message(KEY, thread_id="t", owner="b") as again:
        assert again.acquired and again.state == {}


@pytest.mark.parametrize("strategy", ["queue", "debounce"])
def test_a_message_stored_behind_the_lock_is_done_at_once(store: Any, strategy: str) -> None:
    assert store.lock("t", "holder", ttl=60) is LockResult.ACQUIRED
    with store.handle_message(KEY, thread_id="t", owner="a", strategy=strategy, ttl=LEASE) as msg:
        assert not msg.acquired and not msg.duplicate
    outlive()
    assert store.is_duplicate(KEY)
    with store.handle_message(KEY, thread_id="t", owner="b", strategy=strategy) as again:
        assert again.duplicate


def test_a_refused_message_is_handled_when_delivered_again(store: Any) -> None:
    assert store.lock("t", "holder", ttl=60) is LockResult.ACQUIRED
    with store.handle_message(KEY, thread_id="t", owner="a", ttl=60) as msg:
        assert msg.result is LockResult.BUSY
    assert not store.is_duplicate(KEY)
    with store.handle_message(KEY, thread_id="t", owner="b") as again:
        assert (again.duplicate, again.result) == (False, LockResult.BUSY)
    store.release_lock("t", "holder")
    with store.handle_message(KEY, thread_id="t", owner="c") as last:
        assert last.acquired
    assert store.is_duplicate(KEY)


def test_under_concurrent_the_claim_is_the_lease(store: Any) -> None:
    dead = enter(store, "a", strategy="concurrent", ttl=LEASE)
    dead.state["n"] = 100
    assert store.is_duplicate(KEY)
    outlive()
    with store.handle_message(KEY, thread_id="t", owner="b", strategy="concurrent") as again:
        assert again.acquired
        again.state["n"] = 1
    with pytest.raises(LeaseLost) as lost:
        dead.__exit__(None, None, None)
    assert isinstance(lost.value, NotOwner)
    assert store.thread_state("t") == {"n": 1}


def test_a_concurrent_cycle_commits_within_its_lease(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="a", strategy="concurrent") as msg:
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    outlive()
    assert store.is_duplicate(KEY)


@pytest.mark.usefixtures("transactional_db")
def test_the_async_cycle_keeps_the_same_rules(store: Any) -> None:
    from chatstate.testing.helpers import run_async

    async def cycle() -> None:
        dead = store.ahandle_message(KEY, thread_id="t", owner="a", ttl=LEASE)
        await dead.__aenter__()
        outlive()
        async with store.ahandle_message(KEY, thread_id="t", owner="b") as again:
            assert again.acquired
            again.state["n"] = 1
        with pytest.raises(LeaseLost):
            await dead.__aexit__(None, None, None)

    run_async(cycle)
    assert store.thread_state("t") == {"n": 1}
    assert store.is_duplicate(KEY)


def test_a_withdrawn_claim_leaves_the_window_its_newest_keys(store: Any) -> None:
    """A claim withdrawn from the middle of the window costs it no later key."""
    store.mark_dedupe(("s", "m1"), 5)
    store.mark_dedupe(("s", "m2"), 5)
    cycle = store.handle_message(("s", "m3"), thread_id="t", owner="a", dedupe_limit=5)
    with pytest.raises(Boom), cycle:
        store.mark_dedupe(("s", "m4"), 5)
        store.mark_dedupe(("s", "m5"), 5)
        raise Boom
    for mid in ("m6", "m7"):
        assert store.claim_dedupe(("s", mid), 5) is True
    # The newest five: m2 and m4 to m7. Only m1 left, the oldest.
    newest = [("s", m) for m in ("m2", "m4", "m5", "m6", "m7")]
    assert store.snapshot().dedupe_order == newest
    assert store.is_duplicate(("s", "m2"))
    assert not store.is_duplicate(("s", "m1"))
    assert store.claim_dedupe(("s", "m8"), 5) is True
    assert store.snapshot().dedupe_order == newest[1:] + [("s", "m8")]
