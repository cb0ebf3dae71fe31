"""``chatstate.signals``: what real traffic does, sent as Django signals and logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.dispatch import Signal

from chatstate import LeaseLost, LockResult, signals
from chatstate.testing.helpers import LEASE, outlive

ALL = (
    "message_duplicate",
    "lock_contended",
    "pending_dropped",
    "lease_lost",
    "lease_taken_over",
    "claim_withdrawn",
)


class Boom(Exception):
    pass


@pytest.fixture
def sent() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every chatstate signal sent during the test: ``(name, keyword arguments)``."""
    received: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for name in ALL:
        signal: Signal = getattr(signals, name)

        def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
            received.append((name, kwargs))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield received
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def names(sent: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in sent]


def test_a_duplicate_is_signalled(store: Any, sent: Any) -> None:
    store.mark_dedupe(("s", "m"))
    with store.handle_message(("s", "m"), thread_id="t", owner="w"):
        pass
    ((name, kwargs),) = sent
    assert name == "message_duplicate" and kwargs["adapter"] is store
    assert (kwargs["dedupe_key"], kwargs["thread_id"], kwargs["in_progress"]) == (
        ("s", "m"),
        "t",
        False,
    )


def test_contention_is_signalled_with_the_result(store: Any, sent: Any) -> None:
    store.lock("k", "a")
    assert store.lock("k", "b") is LockResult.BUSY
    with store.handle_message(("s", "m"), thread_id="k", owner="c", strategy="queue"):
        pass
    assert [(n, kw["key"], kw["owner"], kw["result"]) for n, kw in sent] == [
        ("lock_contended", "k", "b", LockResult.BUSY),
        ("lock_contended", "k", "c", LockResult.QUEUED),
    ]


def test_dropped_entries_are_signalled_with_why(store: Any, sent: Any) -> None:
    store.lock("k", "a")
    store.lock("k", "b", "queue", {"m": 1})
    store.lock("k", "c", "queue", max_pending=1)
    store.lock("k", "d", "debounce")
    store.lock("k", "e", "queue", max_pending=1, overflow="drop_newest")
    dropped = [
        (kw["why"], [e.owner for e in kw["entries"]]) for n, kw in sent if n == "pending_dropped"
    ]
    assert dropped == [("overflow", ["b"]), ("debounce", ["c"]), ("overflow", ["e"])]


def test_a_takeover_and_a_lost_lease_are_signalled(store: Any, sent: Any) -> None:
    with (
        pytest.raises(LeaseLost),
        store.handle_message(("s", "m"), thread_id="t", owner="a", ttl=LEASE),
    ):
        outlive()
        store.lock("t", "b", ttl=60)
    taken = [kw for n, kw in sent if n == "lease_taken_over"]
    assert [(kw["key"], kw["owner"], kw["previous"]) for kw in taken] == [("t", "b", "a")]
    lost = [kw for n, kw in sent if n == "lease_lost"]
    assert [(kw["key"], kw["owner"]) for kw in lost] == [("t", "a")]


def test_a_withdrawn_claim_is_signalled(store: Any, sent: Any) -> None:
    with pytest.raises(Boom), store.handle_message(("s", "m"), thread_id="t", owner="a"):
        raise Boom
    ((name, kwargs),) = sent
    assert name == "claim_withdrawn"
    assert (kwargs["dedupe_key"], kwargs["thread_id"], kwargs["owner"]) == (("s", "m"), "t", "a")


def test_signals_are_logged_with_the_ids(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    store.lock("k", "a")
    store.lock("k", "b", "queue", max_pending=1)
    store.lock("k", "c", "queue", max_pending=1)
    with caplog.at_level(logging.INFO, logger="chatstate"):
        store.lock("k", "d", "queue", max_pending=1)
    levels: dict[str, Any] = {record.levelname: record for record in caplog.records}
    assert levels["INFO"].key == "k" and levels["INFO"].result is LockResult.QUEUED
    assert levels["WARNING"].why == "overflow" and levels["WARNING"].key == "k"
    assert "dropped 1 pending entries (overflow)" in levels["WARNING"].getMessage()
