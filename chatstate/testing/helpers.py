"""Helpers shared by the conformance tests: async runner, populated stores, snapshot views."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync

from chatstate import PendingEntry, Snapshot

#: A lease short enough to outlive in a test, long enough that a loaded machine still acts
#: within it; ``outlive`` sleeps just past it.
LEASE = 0.7

TIMES = ("acquired_at", "expires_at", "enqueued_at")


def outlive(ttl: float = LEASE) -> None:
    """Sleep until a lease of ``ttl`` seconds taken just before has expired."""
    time.sleep(ttl + 0.1)


class Pause:
    """A pause of ``seconds`` between two groups of touches.

    ``age()`` is an age, measured now, between the two groups': what was touched before the
    pause is older, what was touched after it is younger. Each call measures again, so the
    margin stays ``seconds / 2`` on both sides however long the test has run."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.start = time.monotonic()
        time.sleep(seconds)
        self.end = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - (self.start + self.end) / 2


def run_async(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the coroutine function ``fn`` to completion from a sync test.

    ``async_to_sync`` keeps ``sync_to_async`` calls on this thread, so a database store sees
    the test's transaction (``asyncio.run`` would hop to a thread outside it).
    """
    return async_to_sync(fn)(*args, **kwargs)


def populate(store: Any) -> None:
    """Give ``store`` some of everything: subscriptions, dedupe keys, states, a held lock
    ``"k"`` (owner ``"a"``) with two pending entries."""
    store.subscribe("t1")
    store.subscribe("t2")
    store.mark_dedupe(("slack", "m1"), 10)
    store.mark_dedupe(("slack", "m2"), 10)
    store.put_thread_state("t1", {"turns": 1, "nested": {"a": [1, 2]}})
    store.put_channel_state("c1", {"topic": "support"})
    store.lock("k", "a", "queue", {"m": 0}, ttl=60)
    store.lock("k", "b", "queue", {"m": 1})
    store.lock("k", "c", "queue", {"m": 2})


def plain(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot's JSON form without timestamps (which differ between two stores)."""
    data = snapshot.to_dict()
    for lock in data["locks"].values():
        for name in TIMES:
            lock.pop(name, None)
    for entries in data["pending_locks"].values():
        for entry in entries:
            for name in TIMES:
                entry.pop(name, None)
    return data


def entries(pending: list[PendingEntry]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(owner, strategy, metadata)`` of each pending entry, in order."""
    return [(e.owner, e.strategy.value, e.metadata) for e in pending]


def clone_options(store: Any, namespace: str) -> dict[str, Any]:
    """Constructor options for another adapter like ``store`` in ``namespace``."""
    options: dict[str, Any] = {"namespace": namespace}
    for name in ("using", "fast_sql", "alias"):
        if hasattr(store, name):
            options[name] = getattr(store, name)
    return options
