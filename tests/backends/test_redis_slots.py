"""Slots (``max_concurrent``) on Redis: their records, the hand-out marks, prune, snapshots.

The behaviour every adapter shares is ``chatstate/testing/test_strategies.py``; these tests
read the Redis records themselves (``chatstate.adapters.redis.scripts`` and
``lua/slots.lua`` describe them): a key held by slots is one record of the ``locks`` hash
summarizing its holders, and a queued entry a holder's drain was handed carries that holder
and an expiry as its elements 7 and 8.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatstate import LockResult
from chatstate.adapters.redis import RedisStateAdapter
from chatstate.testing.helpers import LEASE, outlive
from tests.redis_counting import counting, round_trips

pytestmark = pytest.mark.needs_kind("redis")

_names = itertools.count(1)
CAP = {"strategy": "concurrent", "max_concurrent": 2}


@pytest.fixture
def make() -> Iterator[Any]:
    """Build Redis adapters on the test alias; their namespaces are cleared afterwards."""
    made: list[RedisStateAdapter] = []

    def build() -> RedisStateAdapter:
        adapter = RedisStateAdapter(namespace=f"slots{os.getpid()}-{next(_names)}",
                                    alias="chatstate")  # fmt: skip
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.clear()


@pytest.fixture
def rstore(make: Any) -> RedisStateAdapter:
    return make()  # type: ignore[no-any-return]


def record(adapter: RedisStateAdapter, key: str) -> Any:
    raw = adapter.connection.hget(adapter.keys.locks, key)
    return None if raw is None else json.loads(raw)


def queued(adapter: RedisStateAdapter, key: str) -> list[Any]:
    return [json.loads(raw) for raw in adapter.connection.lrange(adapter.keys.q(key), 0, -1)]


def test_slots_are_one_lock_record_that_summarizes_its_holders(rstore: RedisStateAdapter) -> None:
    assert (
        rstore.lock("k", "a", "concurrent", {"n": 1}, ttl=30, max_concurrent=3)
        is LockResult.ACQUIRED
    )
    assert rstore.lock("k", "b", "concurrent", ttl=60, max_concurrent=3) is LockResult.ACQUIRED
    owner, strategy, meta, acquired, expires, _, _, ttl, holders = record(rstore, "k")
    assert (owner, strategy, json.loads(meta), ttl) == ("a", "concurrent", {"n": 1}, 30_000)
    assert [h[0] for h in holders] == ["a", "b"]
    assert expires == max(h[1] for h in holders) == holders[1][1]  # the latest lease
    assert acquired == holders[0][2]
    # The exclusive strategies see one held lock: they pay nothing for slots.
    assert rstore.lock("k", "x", "reject") is LockResult.BUSY
    assert rstore.release_lock("k", "a") == []
    assert [h[0] for h in record(rstore, "k")[8]] == ["b"]
    assert record(rstore, "k")[0] == "b"
    assert rstore.release_lock("k", "b") == []
    assert record(rstore, "k") is None


def test_a_drain_marks_the_entry_it_hands_out_and_an_abort_unmarks_it(
    rstore: RedisStateAdapter,
) -> None:
    cap = {"strategy": "concurrent", "max_concurrent": 1}
    with rstore.handle_message(("s", "m1"), thread_id="t", owner="m1", ttl=60, **cap) as msg:
        assert rstore.lock("t", "m2", **cap) is LockResult.QUEUED
        assert len(queued(rstore, "t")[0]) == 6  # not handed to anyone
        handed = next(msg.drain())
        entry = queued(rstore, "t")[0]
        assert entry[5] == handed.id and entry[6] == "m1"
        assert entry[7] > record(rstore, "t")[8][0][2] + 59_000  # until now + ttl
        # Leaving the drain midway aborts: the slot is freed, the entry unmarked.
    assert queued(rstore, "t") == [entry[:6]]
    assert record(rstore, "t") is None


def test_prune_frees_expired_slots_one_by_one(rstore: RedisStateAdapter) -> None:
    for owner, ttl in (("a", LEASE), ("b", 60), ("c", LEASE)):
        rstore.lock("k", owner, "concurrent", ttl=ttl, max_concurrent=3)
    rstore.lock("gone", "d", "concurrent", ttl=LEASE, max_concurrent=3)
    outlive()
    assert rstore.prune(dry_run=True)["expired_locks"] == 3
    assert len(record(rstore, "k")[8]) == 3
    assert rstore.prune()["expired_locks"] == 3
    assert [h[0] for h in record(rstore, "k")[8]] == ["b"] and record(rstore, "k")[0] == "b"
    assert record(rstore, "gone") is None
    assert rstore.prune()["expired_locks"] == 0


def test_a_slot_holders_claim_lives_while_its_slot_is_renewed(rstore: RedisStateAdapter) -> None:
    # The cycle's claim has its own lease (ttl); the slot renewed keeps it in progress, as a
    # lock renewed does: a redelivery meanwhile is a duplicate in progress, not a new message.
    rstore.lock("t", "first", "concurrent", ttl=60, max_concurrent=2)  # the record's owner
    with rstore.handle_message(("s", "m1"), thread_id="t", owner="m1", ttl=LEASE, **CAP) as msg:
        assert msg.acquired
        assert rstore.extend_lock("t", "m1", 60)
        outlive()
        with rstore.handle_message(("s", "m1"), thread_id="t", owner="again", **CAP) as again:
            assert again.duplicate and again.in_progress
        msg.state["n"] = 1
    assert rstore.thread_state("t") == {"n": 1}
    assert not rstore.is_duplicate(("s", "m2"))


def test_a_snapshot_exports_the_holders_and_a_stream_load_restores_them(make: Any) -> None:
    source, target = make(), make()
    source.lock("k", "a", "concurrent", {"n": 1}, ttl=60, max_concurrent=2)
    time.sleep(0.01)
    source.lock("k", "b", "concurrent", {"n": 2}, ttl=90, max_concurrent=2)
    source.lock("k", "c", "concurrent", {"n": 3}, max_concurrent=2)
    lock = source.snapshot().locks["k"]
    holders = lock.pop("holders")
    assert lock["owner"] == "a" and lock["strategy"] == "concurrent"
    assert lock["metadata"] == {"n": 1}
    assert lock["expires_at"] == holders[1]["expires_at"]  # held until the latest lease ends
    assert [(h["owner"], h["metadata"]) for h in holders] == [("a", {"n": 1}), ("b", {"n": 2})]
    assert holders[0]["acquired_at"] < holders[1]["acquired_at"] < holders[0]["expires_at"]
    with source.snapshot_sections() as sections:
        target.load_snapshot_stream(sections)
    assert target.snapshot() == source.snapshot()
    assert target.lock("k", "d", "concurrent", max_concurrent=2) is LockResult.QUEUED  # full
    assert [e.owner for e in target.release_lock("k", "b")] == ["c", "d"]
    assert target.extend_lock("k", "a", 30)


def test_each_slot_operation_is_one_round_trip(rstore: RedisStateAdapter) -> None:
    cap = {"strategy": "concurrent", "max_concurrent": 1}
    sent = counting(rstore)
    rstore.lock("warm", "w", **cap)  # connects, and loads the scripts once
    rstore.extend_lock("warm", "w", 30)
    rstore.take_pending("warm", "w")
    rstore.release_lock("warm", "w")
    assert round_trips(sent, rstore.lock, "k", "a", **cap) == 1
    assert round_trips(sent, rstore.lock, "k", "b", **cap) == 1  # queued
    assert round_trips(sent, rstore.extend_lock, "k", "a", 30) == 1
    assert round_trips(sent, rstore.take_pending, "k", "a") == 1
    assert round_trips(sent, rstore.release_lock, "k", "a") == 1
    assert all(b"FCALL" in line for line in sent[-5:])


def test_drains_of_many_holders_each_get_their_own_entry(rstore: RedisStateAdapter) -> None:
    # The entry a drain is handed is looked for by pages of 32: the 40th holder skips the 39
    # entries handed to the others, over a page's end.
    cap = {"strategy": "concurrent", "max_concurrent": 40}
    cycles = [
        rstore.handle_message(("s", f"m{n}"), thread_id="t", owner=f"m{n}", ttl=60, **cap)
        for n in range(40)
    ]
    drains = [cycle.__enter__().drain() for cycle in cycles]
    for n in range(41):
        assert rstore.lock("t", f"q{n}", "queue", {"n": n}) is LockResult.QUEUED
    assert [next(steps).metadata["n"] for steps in drains] == list(range(40))
    marks = [e[6] if len(e) > 6 else None for e in queued(rstore, "t")]
    assert marks == [f"m{n}" for n in range(40)] + [None]
    for cycle in cycles:
        cycle.__exit__(None, None, None)  # each abort unmarks its entry
    assert [len(e) for e in queued(rstore, "t")] == [6] * 41
