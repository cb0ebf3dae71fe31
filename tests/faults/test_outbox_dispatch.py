"""Dispatch under faults: replies lost after the server ran the request, connections killed
between a send and the entry's removal. Nothing is lost; a duplicate delivery only ever
repeats an entry already delivered, under the same key, and only a killed connection (the
dispatcher's "death" between the send and the removal) can cause one.

Injected through the :class:`~tests.faults.proxy.FaultProxy`, at random (seeded) points:

- the reply to a claim is lost: its entries are leased to a dispatcher that never saw them;
  they come back after the lease, none of them sent;
- the reply to the removal of a delivered entry is lost (it was removed): no duplicate;
- the reply to a failed send's retry mark is lost (it was marked): the entry comes again;
- the connection is killed right after the sender succeeded, before the removal: the entry
  comes back after its lease and is sent again, with its key.

The namespace travels with every request of a dispatch (a bound parameter on PostgreSQL,
in the keys on Redis), so an armed pattern of the namespace hits the next request: the claim
when armed before a dispatch, the removal or the retry mark when armed in the sender.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chatstate import ChatStateError, OutboxEntry
from tests.faults.conftest import Proxied

THREADS, PER_THREAD = 4, 30
LEASE = 0.4


class SendFailed(Exception):
    pass


def _commit(store: Any) -> list[str]:
    keys = []
    for n in range(PER_THREAD):
        for t in range(THREADS):
            mid = f"t{t}-{n:03d}"
            with store.handle_message(("p", mid), thread_id=f"t{t}", owner=mid) as msg:
                keys.append(msg.send({"mid": mid}))
    return keys


# Only the fast path and Redis: the ORM path's dispatch is the ORM engineer's (issue 21).
@pytest.mark.parametrize("proxied", ["database", "redis"], indirect=True)
def test_dispatch_under_lost_replies_and_killed_connections(
    proxied: Proxied, figures: Callable[..., None], settings: Any
) -> None:
    settings.CHATSTATE = {
        **settings.CHATSTATE,
        "OUTBOX_LEASE": LEASE,
        "OUTBOX_RETRY_DELAYS": (0,),
        "OUTBOX_MAX_ATTEMPTS": 1000,
    }
    rng = random.Random(21)
    proxy, store = proxied.proxy, proxied.adapter
    keys = _commit(proxied.plain)
    position = {key: n for n, key in enumerate(keys)}
    pattern = store.namespace.encode()
    faults = Counter[str]()
    delivered: list[OutboxEntry] = []

    def sender(entry: OutboxEntry) -> None:
        roll = rng.random()
        if roll < 0.05:  # fails, and the reply to its retry mark is lost
            faults["lost_retry_mark_reply"] += 1
            proxy.arm(pattern)
            raise SendFailed(entry.key)
        delivered.append(entry)
        if roll < 0.15:
            faults["lost_removal_reply"] += 1
            proxy.arm(pattern)
        elif roll < 0.25:
            faults["killed_after_send"] += 1
            proxy.cut_all()

    unavailable, batches = 0, 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if rng.random() < 0.15:
            faults["lost_claim_reply"] += 1
            proxy.arm(pattern)
        batches += 1
        try:
            counts = store.dispatch_outbox(sender, limit=10)
        except ChatStateError:  # BackendUnavailable: the dispatcher goes on
            unavailable += 1
            counts = None
        proxy.disarm()
        if counts is not None and not any(counts.values()):
            if not proxied.plain.outbox():
                break
            time.sleep(0.05)  # entries leased to a dispatcher that "died"

    per_key = Counter(e.key for e in delivered)
    duplicates = sum(n - 1 for n in per_key.values())
    lost = len(set(keys) - set(per_key))
    figures(
        backend=proxied.kind,
        entries=len(keys),
        deliveries=len(delivered),
        batches=batches,
        lost_replies=proxy.dropped,
        **faults,
        unavailable=unavailable,
        duplicates_by_key=duplicates,
        lost=lost,
    )
    assert lost == 0 and proxied.plain.outbox() == []
    assert all(per_key[e.key] and e.key in position for e in delivered)
    for mid in {e.payload["mid"] for e in delivered}:  # an entry travels under one key
        assert len({e.key for e in delivered if e.payload["mid"] == mid}) == 1
    # Only a connection killed between a send and its removal repeats an entry.
    assert duplicates <= faults["killed_after_send"]
    for t in range(THREADS):  # each thread's deliveries never go back in commit order
        order = [position[e.key] for e in delivered if e.thread_id == f"t{t}"]
        assert order == sorted(order), f"t{t}: {order}"
    assert proxy.dropped >= 20, "too few lost replies to mean anything"
    assert faults["killed_after_send"] >= 5, "too few killed connections to mean anything"
