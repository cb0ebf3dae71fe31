"""``prune`` on the database: expired locks, the dedupe window, expired pending entries, and
the retention of states and subscriptions (run inside the adapter's write transaction)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef, Q

from chatstate.adapters.database.rows import pending_entry
from chatstate.calls import Pruned, PruneRequest
from chatstate.models import (
    ChannelState,
    ClaimMinute,
    DedupeEntry,
    Lock,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from chatstate.types import PendingEntry

if TYPE_CHECKING:
    from chatstate.adapters.database.window import DedupeWindowRows


def prune(adapter: DedupeWindowRows, request: PruneRequest) -> Pruned:
    """The counts of :meth:`StateAdapter.prune`; with ``dry_run`` nothing is removed."""
    q, now, dry = adapter.queryset, adapter.now(), request.dry_run
    expired_locks = q(Lock).filter(expires_at__lte=now)
    window = adapter.window()
    # Counted afresh: prune also repairs a count that rows deleted behind the adapter's
    # back (raw SQL, a bulk delete) left wrong.
    count = q(DedupeEntry).count()
    left = adapter.trim(count, request.dedupe_limit, request.min_age, dry_run=dry)
    counts = {"expired_locks": expired_locks.count(), "dedupe_trimmed": count - left}
    expired: dict[str, list[PendingEntry]] = {}
    old_entries = q(PendingLockEntry).none()
    if request.pending_ttl is not None:
        old_entries = q(PendingLockEntry).filter(
            enqueued_at__lt=now - timedelta(seconds=request.pending_ttl)
        )
        rows = old_entries.order_by("key", "id")
        for key, group in itertools.groupby(rows, key=lambda row: row.key):
            expired[key] = [pending_entry(row) for row in group]
    counts["pending_expired"] = sum(len(entries) for entries in expired.values())
    states, subscriptions = _stale(adapter, request)
    counts["states_removed"] = states[0].count() + states[1].count()
    counts["subscriptions_removed"] = subscriptions.count()
    if dry:
        return Pruned(counts)
    # The admin's claims-per-minute chart covers a day: older minutes go.
    q(ClaimMinute).filter(minute__lt=now - timedelta(hours=25)).delete()
    expired_locks.delete()
    window.head = left
    window.save(update_fields=["head"])
    old_entries.delete()
    subscriptions.delete()  # before the states: a subscription is judged by its thread's too
    for rows in states:
        rows.delete()
    return Pruned(counts, expired)


def _stale(adapter: DedupeWindowRows, request: PruneRequest) -> tuple[tuple[Any, Any], Any]:
    """The state rows and subscriptions not touched for ``state_older_than`` seconds; a
    subscription counts as touched while its thread's state is."""
    q = adapter.queryset
    if request.state_older_than is None:
        return (q(ThreadState).none(), q(ChannelState).none()), q(Subscription).none()
    cutoff = adapter.now() - timedelta(seconds=request.state_older_than)
    fresh_state = q(ThreadState).filter(thread_id=OuterRef("thread_id"), updated_at__gte=cutoff)
    subscriptions = q(Subscription).filter(Q(created_at__lt=cutoff) & ~Exists(fresh_state))
    fresh_subscription = q(Subscription).filter(
        thread_id=OuterRef("thread_id"), created_at__gte=cutoff
    )
    threads = q(ThreadState).filter(Q(updated_at__lt=cutoff) & ~Exists(fresh_subscription))
    channels = q(ChannelState).filter(updated_at__lt=cutoff)
    return (threads, channels), subscriptions
