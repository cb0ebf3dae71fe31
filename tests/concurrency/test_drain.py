"""``msg.drain()`` across OS processes: in-order hand-off under the lock, nothing lost when a
holder dies while draining."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chatstate import LockResult
from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def reorderings(handled: list[list[Any]]) -> dict[str, int]:
    """Adjacent inversions in the handling order: of each sender's own sequence (a sender's
    message n reached the lock before its n + 1), and of the queue's entry ids (assigned in
    the order entries reached the lock)."""
    per_sender: dict[str, list[int]] = {}
    ids: list[int] = []
    for message_id, entry_id in handled:
        sender, n = message_id.split("-")
        per_sender.setdefault(sender, []).append(int(n))
        if entry_id is not None:
            ids.append(_order(entry_id))
    pairs = [pair for seq in per_sender.values() for pair in zip(seq, seq[1:], strict=False)]
    inversions = sum(a > b for a, b in pairs)
    out_of_queue_order = sum(a > b for a, b in zip(ids, ids[1:], strict=False))
    return {"sender_inversions": inversions, "queue_inversions": out_of_queue_order}


def _order(entry_id: str) -> int:
    return int(entry_id.rsplit("-", 1)[-1])


def test_four_processes_drain_one_thread_in_arrival_order(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    processes, messages = 4, 50
    reports, seconds = crew.run(
        "deliver_and_drain",
        [{"thread_id": "busy", "messages": messages, "hold": 0.002}] * processes,
        timeout=150,
    )
    handled = store.thread_state("busy")["handled"]
    counts = Counter(message_id for message_id, _ in handled)
    expected = {f"p{p}-{n:03d}" for p in range(processes) for n in range(messages)}
    order = reorderings(handled)
    acquired = sum(r["acquired"] for r in reports)
    figures(
        processes=processes,
        messages=len(expected),
        handled=len(handled),
        acquired=acquired,
        queued=sum(r["queued"] for r in reports),
        doubles=sum(1 for c in counts.values() if c > 1),
        lost=len(expected - set(counts)),
        seconds=seconds,
        **order,
    )
    assert set(counts) == expected and all(c == 1 for c in counts.values())
    assert order == {"sender_inversions": 0, "queue_inversions": 0}
    assert acquired + sum(r["queued"] for r in reports) == processes * messages
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}


def test_a_holder_killed_while_draining_leaves_its_entry_to_the_next(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    ttl = 1.0
    assert store.lock("t", "seed", ttl=1.0) is LockResult.ACQUIRED
    for n in range(1, 6):  # queued behind a holder whose lease then ends: they stay
        assert store.lock("t", f"w{n}", "queue", {"mid": f"q-{n}"}) is LockResult.QUEUED
    time.sleep(1.1)
    draining = crew.event("draining")
    doomed = crew.start("drain_and_hang", [{"thread_id": "t", "ttl": ttl, "stop_at": 2}])
    assert draining.wait(timeout=60), "the holder never reported draining"
    (holder,) = doomed.processes
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)  # while it handles q-2: handed out, not finished
    holder.join(timeout=10)
    time.sleep(ttl + 0.2)
    # The next message arrives after all of them: it is handled after all of them.
    order = []
    with store.handle_message(
        ("xproc", "next"), thread_id="t", owner="next", strategy="queue", metadata={"mid": "next"}
    ) as msg:
        assert msg.result is LockResult.QUEUED and not msg.acquired  # behind what was left
        for entry in msg.drain():
            order.append(entry.metadata["mid"])
            msg.state["handled"].append([entry.metadata["mid"], entry.id])
    handled = [m for m, _ in store.thread_state("t")["handled"]]
    figures(
        queued=5,
        killed_while="q-2",
        redrained=",".join(order),
        doubles=sum(1 for c in Counter(handled).values() if c > 1),
        lost=len({f"q-{n}" for n in range(1, 6)} - set(handled)),
    )
    # The doomed holder's own message was queued behind the five a dead holder left.
    assert order == ["q-2", "q-3", "q-4", "q-5", "holder", "next"]
    assert handled == ["q-1", "q-2", "q-3", "q-4", "q-5", "holder", "next"]
    assert store.snapshot().locks == {} and store.snapshot().pending_locks == {}
