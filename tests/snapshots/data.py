"""Snapshot values and expected words shared by the snapshot tests (pure Python)."""

from __future__ import annotations

from typing import Any

from chatstate.snapshots.snapshot import FORMAT, VERSION, Snapshot

ID_PROBLEM = "expected a non-empty string of at most 255 characters"
KEY_PROBLEM = "expected [adapter, message_id]"
STRATEGY_PROBLEM = "expected one of concurrent, debounce, queue, reject"
KNOWS = "(this code reads 1, 2 and 3)"
NUL = "contains a NUL character (U+0000)"
TS = "2024-05-01T12:00:00.123456+00:00"
TS_Z = "2024-05-01T12:00:00Z"
LATER = "2030-01-02T03:04:05.123456Z"

DESIGN_EXAMPLE = """
{"format": "chatstate.snapshot", "version": 1,
 "subscriptions": ["slack:C1:1700000000.1"],
 "dedupe": [["slack", "m1"]],
 "dedupe_order": [["slack", "m1"]],
 "thread_state": {"slack:C1:1700000000.1": {"turns": 3}},
 "channel_state": {"slack:C1": {"topic": "support"}},
 "locks": {"slack:C1:1700000000.1": {"owner": "worker-7", "strategy": "queue", "metadata": {}}},
 "pending_locks": {"slack:C1:1700000000.1": [{"owner": "worker-9", "strategy": "queue", "metadata": {"message_id": "m2"}}]}}
"""  # noqa: E501


def lock(owner: str = "w1", strategy: str = "queue", **extra: Any) -> dict[str, Any]:
    return {"owner": owner, "strategy": strategy, "metadata": {}, **extra}


def claim(owner: str = "w1", thread_id: str = "t1", expires_at: str = LATER) -> dict[str, Any]:
    return {"owner": owner, "thread_id": thread_id, "expires_at": expires_at}


def valid(**sections: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, **sections}


def full_snapshot() -> Snapshot:
    return Snapshot(
        subscriptions={"t1", "t2"},
        dedupe={("slack", "m1"), ("slack", "m2")},
        dedupe_order=[("slack", "m2"), ("slack", "m1")],
        thread_state={"t1": {"turns": 3, "nested": {"a": [1, 2.5, None, True]}}},
        channel_state={"c1": {"topic": "support ✓"}},
        locks={"t1": lock("w7", acquired_at=TS, expires_at=TS_Z)},
        pending_locks={"t1": [lock("w9", metadata={"m": "m2"}, enqueued_at=TS), lock("w8")]},
        claims={("slack", "m2"): claim("w7", "t1")},
    )
