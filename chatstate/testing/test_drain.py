"""``msg.drain()``: the messages queued behind a holder, in arrival order, under the lock."""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LeaseLost, LockResult
from chatstate.testing.helpers import LEASE, outlive, run_async

KEY = ("slack", "m0")


class Boom(Exception):
    pass


def queue(store: Any, *ns: int, thread: str = "t") -> None:
    for n in ns:
        assert store.lock(thread, f"w{n}", "queue", {"n": n}) is LockResult.QUEUED


def test_drain_hands_out_the_queue_in_arrival_order_writing_the_state_each_step(
    store: Any,
) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue") as msg:
        queue(store, 1, 2, 3)
        msg.state["seen"] = [0]
        for entry in msg.drain():
            assert store.snapshot().locks["t"]["owner"] == "w0"  # under the lock
            assert store.thread_state("t")["seen"] == msg.state["seen"]  # the step wrote it
            msg.state["seen"].append(entry.metadata["n"])
    assert store.thread_state("t") == {"seen": [0, 1, 2, 3]}
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}
    assert msg.pending == []
    assert store.is_duplicate(KEY)


def test_entries_that_arrive_while_draining_are_drained_too(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue") as msg:
        queue(store, 1)
        seen = []
        for entry in msg.drain():
            seen.append(entry.metadata["n"])
            if entry.metadata["n"] < 4:
                queue(store, entry.metadata["n"] + 1)
    assert seen == [1, 2, 3, 4]
    assert store.snapshot().locks == {}


def test_a_drain_with_nothing_queued_commits_and_releases(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue") as msg:
        msg.state["n"] = 1
        assert list(msg.drain()) == []
        assert store.snapshot().locks == {}  # released in that step
        assert store.thread_state("t") == {"n": 1}
    assert store.is_duplicate(KEY)


def test_an_entry_whose_handling_raises_stays_first_for_the_next_holder(store: Any) -> None:
    with (
        pytest.raises(Boom),
        store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue") as msg,
    ):
        queue(store, 1, 2, 3)
        for entry in msg.drain():
            if entry.metadata["n"] == 2:
                msg.state["broken"] = True  # never written
                raise Boom
            msg.state.setdefault("seen", []).append(entry.metadata["n"])
    assert store.thread_state("t") == {"seen": [1]}
    assert store.is_duplicate(KEY)  # its own message was committed by the first step
    snap = store.snapshot()
    assert snap.locks == {}
    assert [e["owner"] for e in snap.pending_locks["t"]] == ["w2", "w3"]
    with store.handle_message(
        ("slack", "m9"), thread_id="t", owner="w9", strategy="queue", metadata={"n": 9}
    ) as next_holder:
        # Arrival order: the entries that waited first, then this message itself.
        assert next_holder.result is LockResult.QUEUED and not next_holder.acquired
        assert [e.metadata["n"] for e in next_holder.drain()] == [2, 3, 9]


def test_leaving_the_loop_early_leaves_the_rest_queued(store: Any) -> None:
    with store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue") as msg:
        queue(store, 1, 2)
        for entry in msg.drain():
            msg.state["last"] = entry.metadata["n"]
            break
    assert store.thread_state("t") == {}  # the entry was not finished: not written
    assert [e["owner"] for e in store.snapshot().pending_locks["t"]] == ["w1", "w2"]
    assert store.snapshot().locks == {}


def test_a_holder_that_dies_while_draining_leaves_its_entry_first(store: Any) -> None:
    cycle = store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue", ttl=LEASE)
    msg = cycle.__enter__()
    queue(store, 1, 2)
    steps = msg.drain()
    assert next(steps).metadata["n"] == 1
    msg.state["seen"] = [1]
    assert next(steps).metadata["n"] == 2  # the step wrote entry 1 and removed it
    msg.state["seen"] = [1, 2]  # ... and the holder dies here
    outlive()
    with store.handle_message(
        ("slack", "m9"), thread_id="t", owner="w9", strategy="queue", metadata={"n": 9}
    ) as successor:
        assert successor.result is LockResult.QUEUED and successor.state == {"seen": [1]}
        assert [e.metadata["n"] for e in successor.drain()] == [2, 9]


def test_drain_raises_lease_lost_when_the_thread_was_taken_over(store: Any) -> None:
    with (
        pytest.raises(LeaseLost),
        store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue", ttl=LEASE) as msg,
    ):
        queue(store, 1)
        outlive()
        assert store.lock("t", "usurper", ttl=60) is LockResult.ACQUIRED
        msg.state["n"] = 1
        list(msg.drain())
    assert store.thread_state("t") == {}
    assert store.snapshot().locks["t"]["owner"] == "usurper"


def test_drain_is_empty_when_not_acquired_or_under_concurrent(store: Any) -> None:
    store.lock("t", "holder")
    with store.handle_message(KEY, thread_id="t", owner="w0", strategy="queue") as msg:
        assert msg.result is LockResult.QUEUED and list(msg.drain()) == []
    with store.handle_message(("s", "c"), thread_id="t", owner="w1", strategy="concurrent") as msg:
        queue(store, 1)
        assert list(msg.drain()) == []
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}


@pytest.mark.usefixtures("transactional_db")
def test_the_async_drain_keeps_the_same_rules(store: Any) -> None:
    async def cycle() -> list[int]:
        seen = []
        async with store.ahandle_message(KEY, thread_id="t", owner="w0", strategy="queue") as m:
            await store.alock("t", "w1", "queue", {"n": 1})
            await store.alock("t", "w2", "queue", {"n": 2})
            async for entry in m.adrain():
                seen.append(entry.metadata["n"])
                m.state["seen"] = list(seen)
        return seen

    assert run_async(cycle) == [1, 2]
    assert store.thread_state("t") == {"seen": [1, 2]}
    assert store.snapshot().locks == {}
