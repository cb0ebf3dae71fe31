"""``handle_message`` across OS processes: one handler at a time, every queued entry once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def test_message_cycles_on_one_thread_from_many_processes(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(g) Acquired cycles each increment once; queued deliveries reach a holder once."""
    processes, cycles = 4, 15
    reports, seconds = crew.run(
        "message_cycles",
        [{"thread_id": "busy-thread", "cycles": cycles, "hold": 0.003}] * processes,
    )

    results = {m: r for report in reports for m, r in report["results"].items()}
    acquired = sorted(m for m, r in results.items() if r == "acquired")
    queued = sorted(m for m, r in results.items() if r == "queued")
    received = [e for report in reports for e in report["received"]]
    figures(
        processes=processes,
        cycles=len(results),
        acquired=len(acquired),
        queued=len(queued),
        entries=len(received),
        seconds=seconds,
    )
    assert len(results) == processes * cycles
    assert sorted(acquired + queued) == sorted(results), "a result other than acquired/queued"
    state = store.thread_state("busy-thread")
    assert state["count"] == len(acquired)
    assert sorted(state["handled"]) == acquired  # each acquired cycle exactly once
    assert Counter(e["owner"] for e in received) == Counter(queued)
    assert all(e["owner"] == f"p{e['proc']}-m{e['n']}" for e in received)
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}
    assert len(snap.dedupe_order) == processes * cycles
