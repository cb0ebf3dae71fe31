"""One channel, many threads, many processes: each message's effects applied exactly once.

Four processes deliver 25 messages each into four threads of one channel. Each handled
message increments the channel's counter, appends to its thread's history and sends one
outbox entry, staged in its cycle: the counter ends at exactly 100, each thread's history
holds exactly its thread's messages in handling order, and the outbox one entry each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.concurrency.harness import Crew
from tests.faults.redelivery import tally, tally_effects

pytestmark = pytest.mark.crossprocess


def test_four_processes_into_one_channel_keep_every_effect_exact(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    processes, each, threads = 4, 25, 4
    ids = [f"m{n}" for n in range(processes * each)]
    crew.event("started")
    batch = crew.start(
        "deliver_messages",
        [
            {
                "message_ids": ids[p * each : (p + 1) * each],
                "threads": threads,
                "ttl": 5.0,
                "block": 5,
                "hold": 0.005,
                "effects": True,
            }
            for p in range(processes)
        ],
        timeout=120,
    )
    batch.wait()
    names = [f"t{t}" for t in range(threads)]
    seen = [i for t in names for i in store.thread_state(t).get("seen", [])]
    counts = {**tally(seen, ids), **tally_effects(store, names, ids)}
    figures(backend=request.node.callspec.params["store"], seconds=batch.seconds, **counts)
    assert (counts["applied"], counts["doubles"], counts["lost"]) == (len(ids), 0, 0)
    assert counts["counter"] == len(ids)
    assert counts["history_mismatches"] == 0
    for t, name in enumerate(names):  # each history: exactly its thread's messages
        assert sorted(store.history(name)) == sorted(i for i in ids if int(i[1:]) % threads == t)
    assert (counts["outbox_doubles"], counts["outbox_lost"]) == (0, 0)
