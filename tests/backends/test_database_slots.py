"""Slots (capped ``concurrent``) on the database: what a snapshot shows of them, and the one
layout both paths share (the PostgreSQL fast path and the ORM path take, hand out and free
each other's slots). Runs in the SQLite, PostgreSQL and MySQL runs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatstate import LockResult
from chatstate.adapters.database import DatabaseStateAdapter

CAP = {"strategy": "concurrent", "max_concurrent": 2}


@pytest.mark.parametrize("fast_sql", [True, False])
def test_a_key_held_by_slots_exports_its_holders(db: None, fast_sql: bool) -> None:
    store = DatabaseStateAdapter(namespace=f"slots-export-{fast_sql}", fast_sql=fast_sql)
    assert store.lock("k", "w1", metadata={"n": 1}, **CAP) is LockResult.ACQUIRED
    assert store.lock("k", "w2", metadata={"n": 2}, **CAP) is LockResult.ACQUIRED
    assert store.lock("k", "w3", **CAP) is LockResult.QUEUED
    lock = store.snapshot().locks["k"]
    holders = lock.pop("holders")
    assert [(h["owner"], h["metadata"]) for h in holders] == [("w1", {"n": 1}), ("w2", {"n": 2})]
    assert all(set(h) == {"owner", "metadata", "acquired_at", "expires_at"} for h in holders)
    first = holders[0]
    assert lock == {**first, "strategy": "concurrent"}  # the first holder's entry
    with store.snapshot_sections() as sections:
        streamed = dict(sections.locks)
    assert streamed == {"k": {**lock, "holders": holders}}
    assert [e["owner"] for e in store.snapshot().pending_locks["k"]] == ["w3"]


@pytest.mark.run_on("postgresql")  # the fast path is PostgreSQL's
def test_the_fast_path_and_the_orm_path_share_slots(db: None) -> None:
    fast = DatabaseStateAdapter(namespace="slots-shared")
    orm = DatabaseStateAdapter(namespace="slots-shared", fast_sql=False)
    assert fast.fast_sql and not orm.fast_sql
    assert fast.lock("t", "a", **CAP) is LockResult.ACQUIRED
    assert orm.lock("t", "b", **CAP) is LockResult.ACQUIRED
    assert fast.lock("t", "c", metadata={"mid": "c"}, **CAP) is LockResult.QUEUED
    assert orm.lock("t", "d", metadata={"mid": "d"}, **CAP) is LockResult.QUEUED
    assert orm.lock("t", "x", "reject") is LockResult.BUSY
    assert orm.extend_lock("t", "a", 60) is True
    assert fast.extend_lock("t", "b", 60) is True
    assert [e.owner for e in orm.take_pending("t", "a", limit=1)] == ["c"]
    assert [e.owner for e in fast.release_lock("t", "b")] == ["d"]
    assert orm.release_lock("t", "a") == []
    assert fast.lock("t", "y", "reject") is LockResult.ACQUIRED  # every slot freed


@pytest.mark.run_on("postgresql")  # the fast path is PostgreSQL's
@pytest.mark.usefixtures("transactional_db")
def test_a_drain_on_one_path_respects_the_hand_out_marks_of_the_other() -> None:
    fast = DatabaseStateAdapter(namespace="slots-marks")
    orm = DatabaseStateAdapter(namespace="slots-marks", fast_sql=False)

    def enter(store: Any, mid: str) -> Any:
        cycle = store.handle_message(("s", mid), thread_id="t", owner=mid, ttl=60, **CAP)
        return cycle, cycle.__enter__()

    first, a = enter(fast, "m1")
    second, b = enter(orm, "m2")
    for mid in ("m3", "m4"):
        fast.lock("t", mid, metadata={"mid": mid}, **CAP)
    steps_a, steps_b = a.drain(), b.drain()
    assert next(steps_a).metadata["mid"] == "m3"  # marked as the fast path's holder's
    assert next(steps_b).metadata["mid"] == "m4"  # so the ORM's holder is handed the next
    assert list(steps_a) == [] and list(steps_b) == []
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    snap = fast.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}


@pytest.mark.parametrize("fast_sql", [True, False])
@pytest.mark.usefixtures("transactional_db")  # the renewals run on a connection of their own
def test_a_kept_alive_slot_keeps_its_claim_and_its_slot_past_the_ttl(fast_sql: bool) -> None:
    """The cycle's lease is its slot's: keepalive renews the slot and the claim with it, so a
    redelivery meanwhile is a duplicate in progress and the full key stays full."""
    store = DatabaseStateAdapter(namespace=f"slots-kept-{fast_sql}", fast_sql=fast_sql)
    ttl = 1.0  # keepalive renews it in time even on a busy machine
    with store.handle_message(("s", "m1"), thread_id="t", owner="a", ttl=ttl, keepalive=True,
                              strategy="concurrent", max_concurrent=1) as msg:  # fmt: skip
        assert msg.acquired
        deadline = time.monotonic() + 3 * ttl
        while time.monotonic() < deadline:
            full = store.lock("t", "other", ttl=60, strategy="concurrent", max_concurrent=1)
            assert full is LockResult.QUEUED
            with store.handle_message(("s", "m1"), thread_id="t", owner="b") as again:
                assert again.duplicate and again.in_progress
            time.sleep(ttl / 6)
        assert not msg.lease_lost
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    assert len(msg.pending) > 1  # the queued lock() calls, handed over by the commit
