"""Locks across OS processes: mutual exclusion, queued entries, a holder killed mid-lease."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chatstate import LockResult
from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess

PROCESSES = 4


def test_reject_lock_admits_one_holder_at_a_time(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(a) Holders of one key never overlap: a non-atomic read-sleep-write loses nothing."""
    acquisitions = 15
    reports, seconds = crew.run(
        "mutual_exclusion",
        [
            {
                "key": "mutex",
                "counter": "counter",
                "acquisitions": acquisitions,
                "hold": 0.003,
                "deadline": 40.0,
            }
        ]
        * PROCESSES,
    )

    total = sum(r["acquired"] for r in reports)
    figures(
        processes=PROCESSES,
        acquisitions=total,
        busy=sum(r["busy"] for r in reports),
        seconds=seconds,
    )
    assert [r["acquired"] for r in reports] == [acquisitions] * PROCESSES, (
        "a child did not reach its acquisitions before the deadline"
    )
    assert [r["overlaps"] for r in reports] == [0] * PROCESSES, "two holders at once"
    assert store.thread_state("counter") == {"n": total, "holder": None}
    assert [r["pending"] for r in reports] == [[]] * PROCESSES
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}


def test_queued_entries_from_many_processes_reach_the_holder_once_in_order(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(b) Entries queued by many processes come back exactly once, each process's in order."""
    entries = 20
    assert store.lock("inbox", "holder", "queue") == LockResult.ACQUIRED
    reports, seconds = crew.run("queue_entries", [{"key": "inbox", "entries": entries}] * PROCESSES)
    assert [r["results"] for r in reports] == [["queued"] * entries] * PROCESSES

    released = store.release_lock("inbox", "holder")

    figures(processes=PROCESSES, entries=len(released), seconds=seconds)
    pairs = [(e.metadata["proc"], e.metadata["n"]) for e in released]
    assert Counter(pairs) == Counter((p, n) for p in range(PROCESSES) for n in range(entries))
    for p in range(PROCESSES):
        assert [n for proc, n in pairs if proc == p] == list(range(entries)), f"process {p}"
    assert all(e.owner == f"p{e.metadata['proc']}" and e.strategy == "queue" for e in released)
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}


def test_a_killed_holder_is_replaced_after_its_lease_with_its_queue_intact(
    store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    """(f) SIGKILL a holder: its key is busy until the lease ends, then another process
    acquires it and receives the entries queued behind the dead holder, in order."""
    ttl = 3.0  # the probe and five queued entries fit in it on a busy machine
    held = crew.event("held")
    go = crew.event("go")
    successor = crew.start(
        "take_over",
        [
            {
                "key": "wedged",
                "owner": "successor",
                "dead_owner": "doomed",
                "poll": 0.02,
                "deadline": 20.0,
            }
        ],
    )
    doomed = crew.start(
        "hold_and_hang", [{"key": "wedged", "owner": "doomed", "ttl": ttl, "probe": "probe"}]
    )
    assert held.wait(timeout=60), "the holder never reported holding the key"
    probe = store.channel_state("probe")
    assert probe["result"] == "acquired"
    assert store.snapshot().locks["wedged"]["owner"] == "doomed"

    queued = [store.lock("wedged", f"w{n}", "queue", {"n": n}) for n in range(5)]
    (holder,) = doomed.processes
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=10)
    assert holder.exitcode == -signal.SIGKILL
    go.set()
    (report,) = successor.wait()

    figures(
        processes=2,
        entries=len(report["entries"]),
        tries=report["tries"],
        first_check_after=report["first_at"] - probe["lock_called_at"],
        acquired_after=report["acquired_at"] - probe["lock_called_at"],
        seconds=successor.seconds,
    )
    assert queued == [LockResult.QUEUED] * 5
    assert report["first"] == "busy", (
        f"the key was free {report['first_at'] - probe['lock_called_at']:.3f}s after a "
        f"{ttl}s lease was taken"
    )
    assert report["result"] == "acquired"
    # The lease began after lock_called_at on the same clock: no takeover before its end.
    assert report["acquired_at"] - probe["lock_called_at"] >= ttl
    assert report["refused"] == "NotOwner"
    assert report["entries"] == [{"owner": f"w{n}", "strategy": "queue", "n": n} for n in range(5)]
    snap = store.snapshot()
    assert snap.locks == {} and snap.pending_locks == {}
