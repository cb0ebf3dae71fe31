"""Leases that run out all the time: every message applied once, none lost (issue 19).

Four processes deliver the same 120 messages into three threads, each as a platform would
(redelivering until handled or found done), with leases of 50 ms and handlers that take
35 ms: holders outlive their leases, redeliveries take dead claims over, commits race the
takeovers. The invariant is counted: each message's effect applied exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew
from tests.faults.redelivery import tally

pytestmark = pytest.mark.crossprocess


def test_very_short_leases_neither_double_nor_lose(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    processes, messages, threads = 4, 120, 3
    ids = [f"m{n}" for n in range(messages)]
    crew.event("started")
    batch = crew.start(
        "deliver_messages",
        [{"message_ids": ids, "threads": threads, "ttl": 0.05, "block": 6, "hold": 0.035}]
        * processes,
        timeout=180,
    )
    reports = batch.wait()
    seen = [i for t in range(threads) for i in store.thread_state(f"t{t}").get("seen", [])]
    counts = tally(seen, ids)
    met = {k: sum(r.get(k, 0) for r in reports) for k in ("handled", "lease_lost", "busy")}
    figures(backend=request.node.callspec.params["store"], seconds=batch.seconds, **met, **counts)
    assert counts == {"messages": messages, "applied": messages, "doubles": 0, "lost": 0}
    assert met["handled"] == messages
