"""``max_concurrent`` across processes: never more holders than the cap, every message once.

Four processes deliver 10 messages each into one thread with ``concurrent`` and
``max_concurrent=2``; each handling records when it started and ended. At no instant do more
than two handlings overlap, two do overlap at some point, and every message is handled
exactly once — the excess queued and drained by the holders. Each child's first message
is slow, so the cap is full when the others arrive and some messages must queue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                    key=lambda e: (e[0], e[1]))  # fmt: skip
    peak = open_now = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def test_the_cap_holds_across_processes(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    processes, each, cap = 4, 10, 2
    task = {"messages": each, "cap": cap, "work": 0.05, "first": 1.0}
    batch = crew.start("capped_cycles", [task] * processes, timeout=120)
    reports = batch.wait()
    handled = [h for r in reports for h in r["handled"]]
    counts = Counter(mid for mid, _, _ in handled)
    ids = {f"p{p}-{n:02d}" for p in range(processes) for n in range(each)}
    peak = peak_overlap([(start, end) for _, start, end in handled])
    queued = sum(r["met"]["queued"] for r in reports)
    figures(
        backend=request.node.callspec.params["store"],
        messages=len(ids),
        queued=queued,
        peak_holders=peak,
        doubles=sum(1 for n in counts.values() if n > 1),
        lost=len(ids - set(counts)),
        seconds=batch.seconds,
    )
    assert set(counts) == ids and set(counts.values()) == {1}
    assert peak == cap
    assert queued > 0
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}
