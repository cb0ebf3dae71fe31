"""The ORM path judges a claim and its lock at one instant (issue 19, item 2).

A redelivery of a message whose holder's lease is about to run out waits on the namespace's
dedupe window row (held here by a transaction of the test's). Before the fix it read the
clock before that wait for its lock and after it for the claim: the claim looked dead, the
lock alive, so the redelivery took the claim and answered busy, and the holder's commit then
wrote its state without marking the claim done: the next redelivery applied the message a
second time. Now both are judged at one instant read after the wait: the redelivery takes
over claim and lock together, and the late holder's commit writes nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connections, transaction

from chatstate import LeaseLost, LockResult
from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.models import DedupeWindow
from tests.conftest import next_namespace
from tests.faults.redelivery import tally

# SQLite has no row locks (one writer at a time): the race needs PostgreSQL or MariaDB.
pytestmark = [pytest.mark.run_on("postgresql", "mysql"), pytest.mark.django_db(transaction=True)]

M = ("platform", "m1")


def _hold_the_window(namespace: str, held: threading.Event, release: threading.Event) -> None:
    try:
        with transaction.atomic():
            DedupeWindow.objects.select_for_update().get(namespace=namespace)
            held.set()
            release.wait(timeout=30)
    finally:
        connections.close_all()


def _deliver(store: Any, owner: str, out: list[Any]) -> None:
    try:
        with store.handle_message(M, thread_id="t", owner=owner, ttl=5) as msg:
            out.append(msg.result)
            if msg.acquired:
                msg.state["seen"] = [*msg.state.get("seen", []), "m1"]
    except Exception as exc:  # reported to the test
        out.append(exc)
    finally:
        connections.close_all()


def test_a_redelivery_that_waited_on_the_window_takes_claim_and_lock_together() -> None:
    store = DatabaseStateAdapter(namespace=next_namespace(), fast_sql=False)
    holder = store.handle_message(M, thread_id="t", owner="holder", ttl=0.5)
    msg = holder.__enter__()
    assert msg.acquired
    msg.state["seen"] = ["m1"]
    held, release = threading.Event(), threading.Event()
    blocker = threading.Thread(target=_hold_the_window, args=(store.namespace, held, release))
    blocker.start()
    assert held.wait(timeout=10)
    out: list[Any] = []
    redelivery = threading.Thread(target=_deliver, args=(store, "redelivery", out))
    redelivery.start()
    time.sleep(0.8)  # the redelivery waits on the window row; the holder's lease runs out
    release.set()
    blocker.join(timeout=10)
    redelivery.join(timeout=10)
    assert out == [LockResult.ACQUIRED]  # took the dead claim and the expired lock together
    with pytest.raises(LeaseLost):
        holder.__exit__(None, None, None)
    later: list[Any] = []
    _deliver(store, "later", later)
    assert later == [None]  # a duplicate of a done message
    counts = tally(store.thread_state("t").get("seen", []), ["m1"])
    assert counts == {"messages": 1, "applied": 1, "doubles": 0, "lost": 0}
