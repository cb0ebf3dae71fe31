"""The outbox across processes: dispatchers racing, and a dispatcher killed mid-send.

Every entry reaches a sender at least once, exactly once unless a dispatcher died between a
send and its removal (then again with the same key); one thread's entries leave in commit
order, whichever dispatcher sends them.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chatstate import OutboxEntry
from tests.concurrency.harness import Crew

pytestmark = pytest.mark.crossprocess


def _commit_entries(store: Any, threads: int, per_thread: int) -> list[str]:
    """One message per entry, ``per_thread`` into each thread, interleaved; their mids in
    commit order."""
    mids = []
    for n in range(per_thread):
        for t in range(threads):
            mid = f"t{t}-{n:03d}"
            with store.handle_message(("p", mid), thread_id=f"t{t}", owner=mid) as msg:
                msg.send({"mid": mid})
            mids.append(mid)
    return mids


def test_racing_dispatchers_send_each_entry_once_in_thread_order(
    request: pytest.FixtureRequest, store: Any, crew: Crew, figures: Callable[..., None]
) -> None:
    threads, per_thread, processes = 4, 25, 3
    mids = _commit_entries(store, threads, per_thread)
    batch = crew.start(
        "dispatch_until_empty",
        [{"lease": 30.0, "limit": 7, "seconds": 60.0}] * processes,
        timeout=120,
    )
    reports = batch.wait()
    sent = sorted((s for r in reports for s in r["sent"]), key=lambda s: s[3])
    per_mid = Counter(s[2] for s in sent)
    by_thread: dict[str, list[str]] = {}
    for _, thread, mid, _ in sent:
        by_thread.setdefault(thread, []).append(mid)
    senders = [len(r["sent"]) for r in reports]
    figures(
        backend=request.node.callspec.params["store"],
        entries=len(mids),
        deliveries=len(sent),
        per_dispatcher=",".join(map(str, senders)),
        doubles=sum(1 for n in per_mid.values() if n > 1),
        lost=len(set(mids) - set(per_mid)),
    )
    assert sorted(per_mid) == sorted(mids) and set(per_mid.values()) == {1}
    for t in range(threads):  # commit order, across dispatchers
        assert by_thread[f"t{t}"] == [f"t{t}-{n:03d}" for n in range(per_thread)]
    assert sum(1 for n in senders if n) >= 2, "the dispatchers did not race"
    assert store.outbox() == []


def test_a_dispatcher_killed_in_its_sender_leaves_the_entry_to_the_next(
    request: pytest.FixtureRequest,
    store: Any,
    crew: Crew,
    figures: Callable[..., None],
    settings: Any,
) -> None:
    lease = 1.0
    _commit_entries(store, 1, 3)
    sending = crew.event("sending")
    doomed = crew.start("dispatch_and_hang", [{"lease": lease}], timeout=60)
    assert sending.wait(timeout=60), "the dispatcher never reached its sender"
    (dispatcher,) = doomed.processes
    assert dispatcher.pid is not None
    os.kill(dispatcher.pid, signal.SIGKILL)
    dispatcher.join(timeout=10)
    settings.CHATSTATE = {**getattr(settings, "CHATSTATE", {}), "OUTBOX_LEASE": lease}
    got: list[OutboxEntry] = []
    assert store.dispatch_outbox(got.append)["sent"] == 0  # still leased to the dead one
    time.sleep(lease + 0.2)
    assert store.dispatch_outbox(got.append)["sent"] == 3
    figures(backend=request.node.callspec.params["store"], resent=[e.key for e in got][0])
    assert [e.payload["mid"] for e in got] == ["t0-000", "t0-001", "t0-002"]
    assert got[0].key == "p:t0-000:0"  # the same key the dead dispatcher was sending
