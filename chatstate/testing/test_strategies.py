"""Strategies the peers have, across processes: ``max_concurrent`` slots and gathered bursts.

* ``concurrent`` with ``max_concurrent=N``: at most N holders of a key at once, each with its
  own lease; the excess is queued and handed out, in arrival order, by the holders' drains
  (or ``release_lock``); a dead holder's slot frees at its lease end.
* ``msg.gather(window, max_wait=)``: the holder waits until no message has queued behind it
  for ``window`` seconds (or ``max_wait`` passed) and takes them all, oldest first; they are
  done at its commit, or stay queued if the block raises.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connections

from chatstate import ChatStateError, LeaseLost, LockResult, NotOwner
from chatstate.testing.helpers import LEASE, outlive, run_async

CAP = {"strategy": "concurrent", "max_concurrent": 2}


class Boom(Exception):
    pass


def enter(store: Any, mid: str, **kwargs: Any) -> Any:
    """A cycle entered and left open (its holder works, or dies, inside the block)."""
    kwargs.setdefault("thread_id", "t")
    cycle = store.handle_message(("s", mid), owner=mid, metadata={"mid": mid}, **kwargs)
    return cycle, cycle.__enter__()


# -- max_concurrent ------------------------------------------------------------------------


def test_the_cap_admits_n_and_queues_the_rest(store: Any) -> None:
    assert store.lock("k", "a", "concurrent", max_concurrent=2) is LockResult.ACQUIRED
    assert store.lock("k", "b", "concurrent", max_concurrent=2) is LockResult.ACQUIRED
    assert store.lock("k", "c", "concurrent", {"n": 3}, max_concurrent=2) is LockResult.QUEUED
    assert store.lock("k", "d", "reject") is LockResult.BUSY  # held, for other strategies too
    assert [e.owner for e in store.release_lock("k", "a")] == ["c"]
    assert store.lock("k", "e", "concurrent", max_concurrent=2) is LockResult.ACQUIRED
    assert store.lock("k", "f", "concurrent", max_concurrent=2) is LockResult.QUEUED
    with pytest.raises(NotOwner):
        store.release_lock("k", "a")  # its slot is gone
    assert [e.owner for e in store.take_pending("k", "e")] == ["f"]
    assert store.release_lock("k", "b") == []
    assert store.release_lock("k", "e") == []
    assert store.lock("k", "g", "reject") is LockResult.ACQUIRED  # every slot freed


def test_without_a_cap_concurrent_admits_everyone(store: Any) -> None:
    for owner in "abcde":
        assert store.lock("k", owner, "concurrent") is LockResult.ACQUIRED
    assert store.lock("k", "x", "reject") is LockResult.ACQUIRED  # nothing was recorded


def test_a_slot_frees_at_its_lease_end_and_extends(store: Any) -> None:
    assert store.lock("k", "a", "concurrent", ttl=LEASE, max_concurrent=1) is LockResult.ACQUIRED
    assert store.lock("k", "b", "concurrent", ttl=60, max_concurrent=1) is LockResult.QUEUED
    outlive()
    assert store.extend_lock("k", "a", 60) is False  # expired: not renewed
    assert store.lock("k", "c", "concurrent", ttl=60, max_concurrent=1) is LockResult.ACQUIRED
    assert store.extend_lock("k", "c", 60) is True
    assert [e.owner for e in store.force_release_lock("k")] == ["b"]
    assert store.lock("k", "d", "reject") is LockResult.ACQUIRED


def test_a_queued_key_is_full_for_slots(store: Any) -> None:
    assert store.lock("k", "holder", "queue") is LockResult.ACQUIRED
    assert store.lock("k", "a", "concurrent", max_concurrent=3) is LockResult.QUEUED


def test_cycles_over_the_cap_are_queued_and_drained_in_arrival_order(store: Any) -> None:
    first, a = enter(store, "m1", **CAP, ttl=60)
    second, b = enter(store, "m2", **CAP, ttl=60)
    assert a.acquired and b.acquired
    for n in (3, 4, 5):
        with store.handle_message(("s", f"m{n}"), thread_id="t", owner=f"m{n}",
                                  metadata={"mid": f"m{n}"}, **CAP) as over:  # fmt: skip
            assert over.result is LockResult.QUEUED and not over.duplicate
    assert store.is_duplicate(("s", "m3"))  # stored behind the slots: done
    handed: dict[str, list[str]] = {"m1": [], "m2": []}
    steps_a, steps_b = a.drain(), b.drain()
    handed["m1"].append(next(steps_a).metadata["mid"])
    handed["m2"].append(next(steps_b).metadata["mid"])  # not m3: it is m1's
    handed["m1"].append(next(steps_a).metadata["mid"])
    assert list(steps_b) == [] and list(steps_a) == []
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert handed == {"m1": ["m3", "m5"], "m2": ["m4"]}
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}


def test_a_dead_drainers_entry_goes_to_another_holder(store: Any) -> None:
    _, dying = enter(store, "m1", **CAP, ttl=LEASE)
    alive_cycle, alive = enter(store, "m2", **CAP, ttl=60)
    store.lock("t", "m3", "concurrent", {"mid": "m3"}, max_concurrent=2)
    assert next(dying.drain()).metadata["mid"] == "m3"  # ... and its holder dies with it
    outlive()
    assert [e.metadata["mid"] for e in alive.drain()] == ["m3"]
    alive_cycle.__exit__(None, None, None)
    assert store.snapshot().pending_locks == {}


def test_a_newcomer_in_a_freed_slot_comes_after_what_waited(store: Any) -> None:
    enter(store, "m1", **{**CAP, "max_concurrent": 1}, ttl=LEASE)
    store.lock("t", "m2", "concurrent", {"mid": "m2"}, max_concurrent=1)
    outlive()  # the holder died: its slot frees, m2 still waits
    with store.handle_message(("s", "m3"), thread_id="t", owner="m3", metadata={"mid": "m3"},
                              **{**CAP, "max_concurrent": 1}) as msg:  # fmt: skip
        assert msg.result is LockResult.QUEUED and not msg.acquired
        assert [e.metadata["mid"] for e in msg.drain()] == ["m2", "m3"]


def test_a_slot_holders_commit_fails_when_its_slot_was_taken(store: Any) -> None:
    cycle, msg = enter(store, "m1", **{**CAP, "max_concurrent": 1}, ttl=LEASE)
    msg.state["n"] = 1
    outlive()
    assert store.lock("t", "other", "concurrent", ttl=60, max_concurrent=1) is LockResult.ACQUIRED
    with pytest.raises(LeaseLost):
        cycle.__exit__(None, None, None)
    assert store.thread_state("t") == {}


def test_prune_frees_expired_slots_each_counted(store: Any) -> None:
    for owner, ttl in (("a", LEASE), ("b", LEASE), ("c", 60)):
        assert (
            store.lock("k", owner, "concurrent", ttl=ttl, max_concurrent=3) is LockResult.ACQUIRED
        )
    assert store.lock("j", "d", "concurrent", ttl=LEASE, max_concurrent=1) is LockResult.ACQUIRED
    outlive()
    assert store.prune(dry_run=True)["expired_locks"] == 3
    assert store.prune()["expired_locks"] == 3
    assert store.prune()["expired_locks"] == 0
    with pytest.raises(NotOwner):
        store.release_lock("k", "a")  # its expired slot was freed
    assert store.extend_lock("k", "c", 60) is True  # the live one stays
    assert store.lock("j", "x", "reject") is LockResult.ACQUIRED  # every slot of j freed
    assert store.lock("k", "y", "reject") is LockResult.BUSY


def test_max_concurrent_is_checked(store: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        store.lock("k", "a", "concurrent", max_concurrent=0)
    with pytest.raises(ValueError, match="max_concurrent"):
        store.handle_message(("s", "m"), thread_id="t", owner="a", strategy="concurrent",
                             max_concurrent=True)  # fmt: skip


# -- gather --------------------------------------------------------------------------------


def test_gather_returns_the_burst_in_order_and_commits_it(store: Any) -> None:
    with store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="queue") as msg:
        for n in (1, 2, 3):
            store.lock("t", f"w{n}", "queue", {"n": n})
        burst = msg.gather(0.2)
        assert [e.metadata["n"] for e in burst] == [1, 2, 3]
        assert msg.gather(0.05) == []  # nothing more arrived
        msg.state["answered"] = [e.metadata["n"] for e in burst]
    assert store.thread_state("t") == {"answered": [1, 2, 3]}
    assert msg.pending == []
    assert store.snapshot().pending_locks == {}


@pytest.mark.usefixtures("transactional_db")  # a feeder thread commits
def test_each_arrival_restarts_the_window(store: Any) -> None:
    def trickle() -> None:
        try:
            for n in (1, 2, 3):
                time.sleep(0.15)
                store.lock("t", f"w{n}", "queue", {"n": n})
        finally:
            connections.close_all()  # this thread's own

    with store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="queue") as msg:
        feeder = threading.Thread(target=trickle)
        began = time.monotonic()
        feeder.start()
        burst = msg.gather(1.0)  # a window far wider than the gaps, even on a busy machine
        waited = time.monotonic() - began
        feeder.join()
    assert [e.metadata["n"] for e in burst] == [1, 2, 3]
    assert waited >= 0.45 + 1.0 - 0.05  # the last arrival (~0.45 s) plus a quiet window


@pytest.mark.usefixtures("transactional_db")  # a feeder thread commits
def test_gather_stops_at_max_wait(store: Any) -> None:
    """A burst that never goes quiet is cut at ``max_wait``, the rest left queued."""
    stop, first, flooded = threading.Event(), threading.Event(), threading.Event()

    def flood() -> None:
        try:
            for n in range(1, 201):  # bounded: the test ends even if gather never returns
                store.lock("t", f"w{n}", "queue", {"n": n}, max_pending=1000)
                first.set()
                if stop.wait(0.05):
                    return
            flooded.set()
        finally:
            connections.close_all()  # this thread's own

    with store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="queue") as msg:
        feeder = threading.Thread(target=flood)
        feeder.start()
        try:
            assert first.wait(30)
            burst = msg.gather(0.3, max_wait=0.4)
            cut_short = not flooded.is_set()  # it returned while arrivals kept coming
        finally:
            stop.set()
            feeder.join()
        assert cut_short
        ns = [e.metadata["n"] for e in burst]
        assert ns == sorted(ns) and ns[0] == 1
        rest = [e.metadata["n"] for e in msg.drain()]
    assert ns + rest == list(range(1, len(ns) + len(rest) + 1))


def test_a_block_that_raises_leaves_the_burst_queued(store: Any) -> None:
    with (
        pytest.raises(Boom),
        store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="queue") as msg,
    ):
        store.lock("t", "w1", "queue", {"n": 1})
        store.lock("t", "w2", "queue", {"n": 2})
        assert len(msg.gather(0.05)) == 2
        raise Boom
    assert [e["metadata"]["n"] for e in store.snapshot().pending_locks["t"]] == [1, 2]
    assert store.snapshot().locks == {}


def test_gather_then_drain_takes_the_stragglers(store: Any) -> None:
    with store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="queue") as msg:
        store.lock("t", "w1", "queue", {"n": 1})
        assert [e.metadata["n"] for e in msg.gather(0.05)] == [1]
        store.lock("t", "w2", "queue", {"n": 2})
        assert [e.metadata["n"] for e in msg.drain()] == [2]
    assert store.snapshot().pending_locks == {}


def test_gather_needs_the_threads_lock(store: Any) -> None:
    cycle = store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="concurrent")
    with cycle as m, pytest.raises(ChatStateError, match="gather"):
        m.gather(0.01)
    store.lock("t", "holder")
    with store.handle_message(("s", "m1"), thread_id="t", owner="w1", strategy="queue") as m:
        assert m.result is LockResult.QUEUED
        with pytest.raises(ChatStateError, match="gather"):
            m.gather(0.01)


def test_gather_raises_lease_lost_when_taken_over(store: Any) -> None:
    with (
        pytest.raises(LeaseLost),
        store.handle_message(("s", "m0"), thread_id="t", owner="w0", strategy="queue",
                             ttl=LEASE) as msg,
    ):  # fmt: skip
        outlive()
        assert store.lock("t", "usurper", ttl=60) is LockResult.ACQUIRED
        msg.gather(0.05)


@pytest.mark.usefixtures("transactional_db")
def test_agather_is_the_async_twin(store: Any) -> None:
    async def cycle() -> list[int]:
        async with store.ahandle_message(("s", "m0"), thread_id="t", owner="w0",
                                         strategy="queue") as msg:  # fmt: skip
            await store.alock("t", "w1", "queue", {"n": 1})
            await store.alock("t", "w2", "queue", {"n": 2})
            return [e.metadata["n"] for e in await msg.agather(0.05)]

    assert run_async(cycle) == [1, 2]
    assert store.snapshot().pending_locks == {}


def test_a_slot_holders_claim_lives_while_its_slot_is_renewed(store: Any) -> None:
    lease = 1.0  # renewed at half of it: a margin a busy machine keeps
    cycle, msg = enter(store, "m1", **CAP, ttl=lease)
    assert msg.acquired
    for _ in range(3):  # what keepalive does, past the claim's own lease
        time.sleep(lease / 2)
        assert store.extend_lock("t", "m1", lease)
    with store.handle_message(("s", "m1"), thread_id="t", owner="again", **CAP) as again:
        assert (again.duplicate, again.in_progress) == (True, True)
    msg.state["n"] = 1
    cycle.__exit__(None, None, None)
    assert store.thread_state("t") == {"n": 1}


def test_a_renewing_holders_entry_is_not_handed_to_another(store: Any) -> None:
    lease = 1.0  # renewed at half of it: a margin a busy machine keeps
    _, first = enter(store, "m1", **CAP, ttl=lease)
    second_cycle, second = enter(store, "m2", **CAP, ttl=60)
    store.lock("t", "m3", "concurrent", {"mid": "m3"}, max_concurrent=2)
    assert next(first.drain()).metadata["mid"] == "m3"
    for _ in range(3):  # m1 still works on m3, renewing its slot past the mark's time
        time.sleep(lease / 2)
        assert store.extend_lock("t", "m1", lease)
    assert list(second.drain()) == []
    second_cycle.__exit__(None, None, None)


# -- snapshots -----------------------------------------------------------------------------


def test_slots_survive_a_snapshot_round_trip(store: Any, make_store: Any) -> None:
    from chatstate import Snapshot

    assert store.lock("k", "a", "concurrent", {"n": 1}, ttl=60, max_concurrent=2) == "acquired"
    assert store.lock("k", "b", "concurrent", ttl=60, max_concurrent=2) == "acquired"
    assert store.lock("k", "c", "concurrent", {"n": 3}, max_concurrent=2) == "queued"
    snap = store.snapshot()
    lock = snap.locks["k"]
    assert lock["strategy"] == "concurrent"
    assert [h["owner"] for h in lock["holders"]] == ["a", "b"]
    assert lock["holders"][0]["metadata"] == {"n": 1}
    text = snap.to_json()
    assert Snapshot.from_json(text) == snap  # strict: holders are part of the format
    other = make_store()
    other.load_snapshot(snap)
    assert other.snapshot().locks["k"]["holders"] == lock["holders"]
    assert other.lock("k", "d", "concurrent", max_concurrent=2) == "queued"  # still full
    assert other.lock("k", "e", "reject") == "busy"
    assert [e.owner for e in other.release_lock("k", "a")] == ["c", "d"]
    assert other.extend_lock("k", "b", 60) is True
    assert other.release_lock("k", "b") == []
    assert other.lock("k", "f", "reject") == "acquired"


def test_a_snapshot_refuses_bad_holders(store: Any) -> None:
    import pytest as _pytest

    from chatstate import InvalidSnapshot, default_snapshot

    good = {"owner": "a", "metadata": {}, "acquired_at": "2026-01-01T00:00:00.000000Z",
            "expires_at": "2026-01-01T00:05:00.000000Z"}  # fmt: skip
    data = default_snapshot().to_dict()
    data["locks"] = {"k": {**good, "strategy": "concurrent", "holders": [good, good]}}
    with _pytest.raises(InvalidSnapshot, match=r"locks\['k'\]\.holders\[1\]"):
        store.load_snapshot(data)
    assert store.snapshot().locks == {}
