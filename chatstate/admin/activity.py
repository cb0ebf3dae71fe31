"""What the overview reads about a namespace's traffic: claims per minute and queues.

Every read goes through an index. ``ClaimMinute`` is read by ``(namespace, minute)``, at
most one row per minute of the day. The newest dedupe entry is read by ``(namespace, seq,
id)``. Pending entries are read by ``(namespace, key, id)``; that table holds queued
messages only. Locks are read by ``(namespace, key)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, Min, OuterRef
from django.db.models.functions import Now

from chatstate.admin.charts import MINUTES, MinuteCount
from chatstate.models import ClaimMinute, DedupeEntry, Lock, PendingLockEntry

#: The overview charts this many of the deepest queues, and lists this many orphaned ones.
QUEUES_SHOWN = 20
ORPHANS_SHOWN = 50


def minute_of(when: datetime) -> datetime:
    """``when`` truncated to its minute."""
    return when.replace(second=0, microsecond=0)


def claims_per_minute(
    using: str, namespace: str, now: datetime
) -> tuple[list[MinuteCount], datetime]:
    """The messages claimed in each minute of the last 24 hours that had any, and its last minute.

    The last minute is ``now``'s, or a later recorded one when the clocks differ. A recorded
    minute's claims are the next recorded minute's ``first_seq`` minus its own. The last
    recorded minute's are the newest dedupe entry's ``seq`` minus its ``first_seq``, plus
    one for its first claim. A count is never negative. After a window was emptied and its
    sequence restarted, a minute counts 0."""
    end = minute_of(now)
    rows = list(
        ClaimMinute.objects.using(using)
        .filter(namespace=namespace, minute__gt=end - timedelta(minutes=MINUTES))
        .order_by("minute")
        .values_list("minute", "first_seq")
    )
    if not rows:
        return [], end
    end = max(end, minute_of(rows[-1][0]))
    newest = (
        DedupeEntry.objects.using(using)
        .filter(namespace=namespace)
        .order_by("-seq", "-id")
        .values_list("seq", flat=True)
        .first()
    )
    counts = []
    for (minute, first_seq), following in zip(rows, [*rows[1:], None], strict=True):
        if following is not None:
            claimed = following[1] - first_seq
        else:
            claimed = 0 if newest is None else newest - first_seq + 1
        counts.append(MinuteCount(minute=minute, count=max(claimed, 0)))
    start = end - timedelta(minutes=MINUTES - 1)
    return [c for c in counts if c.minute >= start], end


@dataclass(frozen=True)
class Queue:
    """Pending entries queued behind one key, and the lock that key has, if any."""

    key: str
    depth: int
    oldest: datetime
    lock_expires_at: datetime | None

    def live_holder(self, now: datetime) -> bool:
        """Whether a lock that has not expired holds the key, so someone will hand it on."""
        return self.lock_expires_at is not None and self.lock_expires_at > now


def _with_locks(using: str, namespace: str, rows: Sequence[Mapping[str, Any]]) -> list[Queue]:
    keys = [row["key"] for row in rows]
    expiry = dict(
        Lock.objects.using(using)
        .filter(namespace=namespace, key__in=keys)
        .values_list("key", "expires_at")
    )
    return [Queue(row["key"], row["depth"], row["oldest"], expiry.get(row["key"])) for row in rows]


def deepest_queues(using: str, namespace: str, limit: int = QUEUES_SHOWN) -> list[Queue]:
    """The ``limit`` deepest queues of the namespace, deepest first; ties go by key."""
    rows = list(
        PendingLockEntry.objects.using(using)
        .filter(namespace=namespace)
        .values("key")
        .annotate(depth=Count("id"), oldest=Min("enqueued_at"))
        .order_by("-depth", "key")[:limit]
    )
    return _with_locks(using, namespace, rows)


def orphaned_queues(using: str, namespace: str, limit: int = ORPHANS_SHOWN) -> list[Queue]:
    """Queues with no live holder, oldest entry first; their lock is missing or expired.

    Nobody hands these entries on until another message arrives on the key, or ``prune``
    drops them. The lease is judged by the database's clock, as the adapter judges it."""
    live = Lock.objects.using(using).filter(
        namespace=namespace, key=OuterRef("key"), expires_at__gt=Now()
    )
    rows = list(
        PendingLockEntry.objects.using(using)
        .filter(namespace=namespace)
        .filter(~Exists(live))
        .values("key")
        .annotate(depth=Count("id"), oldest=Min("enqueued_at"))
        .order_by("oldest", "key")[:limit]
    )
    return _with_locks(using, namespace, rows)
