"""Subscriptions and the dedupe window across OS processes: nothing lost, nothing twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def test_subscribing_and_marking_the_same_ids_from_many_processes(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(c) Overlapping subscribe / mark_dedupe calls: every id once, no error to a caller."""
    processes, ids = 4, [f"t{n:03d}" for n in range(80)]
    reports, seconds = crew.run(
        "subscribe_and_mark", [{"ids": ids, "limit": 1000, "block": 8}] * processes
    )

    figures(
        processes=processes, ids=len(ids), calls=sum(r["calls"] for r in reports), seconds=seconds
    )
    assert [r["errors"] for r in reports] == [[]] * processes
    assert all(store.is_subscribed(i) for i in ids)
    assert all(store.is_duplicate(("xproc", i)) for i in ids)
    snap = store.snapshot()
    assert snap.subscriptions == set(ids)
    assert snap.dedupe == {("xproc", i) for i in ids}
    assert sorted(snap.dedupe_order) == sorted(snap.dedupe)  # each key once


def test_claim_dedupe_gives_each_key_to_exactly_one_process(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(d) Many processes claim the same keys in shuffled orders: one winner per key."""
    processes, ids = 6, [f"m{n:03d}" for n in range(200)]
    reports, seconds = crew.run(
        "claim_keys", [{"ids": ids, "limit": 1000, "block": 10}] * processes
    )

    wins = Counter(i for r in reports for i in r["claimed"])
    figures(
        processes=processes,
        keys=len(ids),
        claims=processes * len(ids),
        won=sum(wins.values()),
        winners=sum(1 for r in reports if r["claimed"]),
        seconds=seconds,
    )
    assert {i: wins[i] for i in ids} == dict.fromkeys(ids, 1)
    snap = store.snapshot()
    assert snap.dedupe == {("xproc", i) for i in ids}
    assert sorted(snap.dedupe_order) == sorted(snap.dedupe)


def test_a_trimmed_window_keeps_the_newest_under_contention(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """Many processes marking past the limit keep the newest ``limit`` keys, each once.

    A trim racing another process's claim may leave a key over (never one too few: a key
    inside the window is never dropped early); the next claim trims it.
    """
    processes, ids, limit = 4, [f"w{n:03d}" for n in range(200)], 50
    reports, seconds = crew.run(
        "claim_keys", [{"ids": ids, "limit": limit, "block": 10}] * processes
    )

    claims = sum(len(r["claimed"]) for r in reports)
    kept = len(store.snapshot().dedupe_order)
    figures(processes=processes, keys=len(ids), limit=limit, won=claims, kept=kept,
            seconds=seconds)  # fmt: skip
    assert claims >= len(ids)  # a key trimmed out may be claimed again, none is lost
    assert limit <= kept < limit + processes
    assert store.claim_dedupe(("xproc", "last"), limit)  # a quiet claim trims the excess
    snap = store.snapshot()
    assert len(snap.dedupe_order) == limit
    assert set(snap.dedupe_order) == snap.dedupe <= {("xproc", i) for i in [*ids, "last"]}
    assert all(store.is_duplicate(key) for key in snap.dedupe_order)
