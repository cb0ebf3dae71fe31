"""What the database adapters and their snapshot streams share.

It maps the state models, and turns rows into API values and snapshot values.
:class:`NamespaceRows` is the part of an adapter the streams use."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from django.db import connections
from django.db.models import JSONField, Value

from chatstate.models import ChannelState, DedupeWindow, PendingLockEntry, ThreadState
from chatstate.types import STRATEGIES, PendingEntry, as_datetime, from_iso, to_iso

#: Compact JSON text, as the database columns receive it.
json_text = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode

STATE_MODELS: dict[str, Any] = {"thread": ThreadState, "channel": ChannelState}
STATE_FIELDS = {"thread": "thread_id", "channel": "channel_id"}


def json_value(value: Any) -> Any:
    """``value`` for a ``JSONField`` of a new model instance; ``None`` becomes JSON ``null``.

    The ORM would store SQL ``NULL`` for ``None``, which the columns refuse."""
    return Value(None, JSONField()) if value is None else value


def upsert_options(using: str, unique_fields: list[str]) -> dict[str, Any]:
    """The ``bulk_create`` options that update a row already there instead of failing.

    A row is already there when its ``unique_fields`` match. PostgreSQL and SQLite get
    ``ON CONFLICT (unique_fields) DO UPDATE``. MariaDB/MySQL get ``ON DUPLICATE KEY
    UPDATE``, which names no conflict target. Django refuses ``unique_fields`` there. The
    tables' only unique keys besides the primary key are these fields. So the update hits
    the same row."""
    options: dict[str, Any] = {"update_conflicts": True}
    if connections[using].features.supports_update_conflicts_with_target:
        options["unique_fields"] = unique_fields
    return options


class NamespaceRows(Protocol):
    """One namespace's rows on one database: what a database adapter offers its streams."""

    namespace: str
    using: str
    vendor: str
    lock_ttl: float

    def queryset(self, model: Any) -> Any:
        """``model``'s rows of the namespace."""

    def now(self) -> datetime:
        """The database's clock."""

    def window(self) -> DedupeWindow:
        """The namespace's dedupe window row, locked until the transaction ends."""

    def trim(
        self,
        count: int,
        limit: int,
        min_age: float = 0.0,
        keep: int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Trim the dedupe window to ``limit`` entries; return its new count."""


def pending_entry(row: PendingLockEntry) -> PendingEntry:
    """A pending-entry row as the :class:`PendingEntry` the API returns."""
    return PendingEntry(
        owner=row.owner,
        strategy=STRATEGIES[row.strategy],
        metadata=row.metadata,
        enqueued_at=to_iso(row.enqueued_at),
        id=str(row.id),
    )


def lock_dict(
    owner: str, strategy: str, metadata: Any, acquired: datetime, expires: datetime
) -> dict[str, Any]:
    """A lock row in the snapshot's form."""
    return {
        "owner": owner,
        "strategy": strategy,
        "metadata": metadata,
        "acquired_at": to_iso(acquired),
        "expires_at": to_iso(expires),
    }


def slots_dict(holders: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A key held by slots, in the snapshot's form.

    It is a lock entry of strategy ``concurrent``. Its owner, metadata and times are its
    first holder's by arrival. ``holders`` lists every holder in arrival order."""
    listed = [
        {
            "owner": owner,
            "metadata": holder.get("metadata") or {},
            "acquired_at": holder["acquired_at"],
            "expires_at": holder["expires_at"],
        }
        for owner, holder in sorted(holders.items(), key=lambda h: (h[1]["acquired_at"], h[0]))
    ]
    first = listed[0]
    return {**first, "strategy": "concurrent", "holders": listed}


def lock_entry(
    owner: str,
    strategy: str,
    metadata: Any,
    acquired: datetime,
    expires: datetime,
    holders: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """A lock row in the snapshot's form; with ``holders``, its slots' form."""
    if holders:
        return slots_dict(holders)
    return lock_dict(owner, strategy, metadata, acquired, expires)


def claim_dict(owner: str, thread_id: str, expires: datetime) -> dict[str, Any]:
    """A claim in progress in the snapshot's form."""
    return {"owner": owner, "thread_id": thread_id, "expires_at": to_iso(expires)}


def pending_dict(owner: str, strategy: str, metadata: Any, enqueued: datetime) -> dict[str, Any]:
    """A pending-entry row in the snapshot's form."""
    return {
        "owner": owner,
        "strategy": strategy,
        "metadata": metadata,
        "enqueued_at": to_iso(enqueued),
    }


#: The lock columns a snapshot's lock entry fills, in :func:`lock_row`'s order.
LOCK_FIELDS = ("owner", "strategy", "metadata", "acquired_at", "expires_at", "holders")


def lock_row(lock: dict[str, Any], now: datetime, default_expiry: datetime) -> tuple[Any, ...]:
    """A snapshot's lock entry as the values of :data:`LOCK_FIELDS`.

    With ``holders``, it is the row of a key held by slots. That row has no owner, and its
    times summarize its holders'; see :mod:`.slots`."""
    holders = lock.get("holders")
    if not holders:
        return (
            lock["owner"],
            lock["strategy"],
            lock.get("metadata") or {},
            as_datetime(lock.get("acquired_at"), now),
            as_datetime(lock.get("expires_at"), default_expiry),
            None,
        )
    slots = {
        h["owner"]: {
            "acquired_at": h["acquired_at"],
            "expires_at": h["expires_at"],
            "ttl": max(
                (from_iso(h["expires_at"]) - from_iso(h["acquired_at"])).total_seconds(), 0.001
            ),
            "metadata": h.get("metadata") or {},
        }
        for h in holders
    }
    return (
        "",
        "concurrent",
        {},
        min(from_iso(h["acquired_at"]) for h in holders),
        max(from_iso(h["expires_at"]) for h in holders),
        slots,
    )


def lock_columns(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """:func:`lock_row`'s values as COPY sends them: JSON as text, no holders as NULL."""
    owner, strategy, metadata, acquired, expires, holders = values
    return (
        owner,
        strategy,
        json_text(metadata),
        acquired,
        expires,
        None if holders is None else json_text(holders),
    )
