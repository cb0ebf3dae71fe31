"""``prune`` on the database, run inside the adapter's write transaction.

It removes expired locks and slots, old dedupe keys, expired pending entries and expired
lists. It applies the retention of states and subscriptions. Rows are deleted in the
adapter's lock order, described in :mod:`.orm`. That is locks, pending entries, states,
list heads in key order, then subscriptions.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef, Q

from chatstate.adapters.database.rows import pending_entry
from chatstate.adapters.database.slots import prune_slots
from chatstate.calls import Pruned, PruneRequest
from chatstate.models import (
    ChannelState,
    ClaimMinute,
    DedupeEntry,
    ListHead,
    ListItem,
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
    # Locks, and each expired slot of a key. A row whose slots all expired goes whole.
    expired_locks = q(Lock).filter(expires_at__lte=now, holders__isnull=True)
    window = adapter.window()
    freed_slots = prune_slots(q(Lock), now, dry)  # after the window row: the lock order
    # Counted afresh, so prune repairs a count left wrong by rows deleted behind the
    # adapter's back, by raw SQL or a bulk delete.
    count = q(DedupeEntry).count()
    left = adapter.trim(count, request.dedupe_limit, request.min_age, dry_run=dry)
    counts = {
        "expired_locks": expired_locks.count() + freed_slots,
        "dedupe_trimmed": count - left,
    }
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
    expired_lists = q(ListHead).filter(expires_at__lte=now)
    if dry:
        counts["lists_expired"] = expired_lists.count()
        return Pruned(counts)
    # The admin's claims-per-minute chart covers a day: older minutes go.
    q(ClaimMinute).filter(minute__lt=now - timedelta(hours=25)).delete()
    expired_locks.delete()
    window.head = left
    window.save(update_fields=["head"])
    old_entries.delete()
    # A state and a subscription are judged by each other's freshness. Deleting stale rows
    # does not change it. So the states go first, in the lock order.
    for rows in states:
        rows.delete()
    counts["lists_expired"] = delete_lists(adapter, expired_lists)
    subscriptions.delete()
    return Pruned(counts, expired)


#: Expired lists are deleted this many at a time. It bounds a statement's parameters.
LIST_BATCH = 500


def delete_lists(adapter: DedupeWindowRows, expired: Any) -> int:
    """Delete the lists whose heads ``expired`` holds, items and heads; return how many.

    The heads are locked first, in key order. Only those still expired then are deleted. A
    list an append renewed meanwhile is kept."""
    heads = list(expired.select_for_update().order_by("key").values_list("pk", "key"))
    for start in range(0, len(heads), LIST_BATCH):
        batch = heads[start : start + LIST_BATCH]
        adapter.queryset(ListItem).filter(key__in=[key for _, key in batch]).delete()
        adapter.queryset(ListHead).filter(pk__in=[pk for pk, _ in batch]).delete()
    return len(heads)


def _stale(adapter: DedupeWindowRows, request: PruneRequest) -> tuple[tuple[Any, Any], Any]:
    """The state rows and subscriptions not touched for ``state_older_than`` seconds.

    A subscription counts as touched while its thread's state is, and the reverse."""
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
