"""What a page's rows show from other tables, read for the whole page at once.

A changelist page shows up to 100 rows. For each thread it shows whether it has a lock, a
subscription and a state. It shows how deep its queue is, and when its holder's lease ends.
These are read with one query per other table for all the rows of the page. The queries use
the ``(namespace, id)`` indexes: ``namespace IN … AND id IN …``. Nothing is read per row,
and nothing for rows the page skips. Otherwise an ``OFFSET`` of thousands would pay for each
skipped row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, Model

from chatstate.models import Lock, PendingLockEntry


def _keys(rows: Sequence[Any], row_id: str) -> tuple[set[str], set[str]]:
    return {row.namespace for row in rows}, {getattr(row, row_id) for row in rows}


def mark_existing(
    rows: Sequence[Any], using: str, model: type[Model], column: str, row_id: str, attr: str
) -> None:
    """Set ``attr`` on each row: whether ``model`` has a row matching it.

    A match has the row's namespace, and ``column`` equal to the row's ``row_id``."""
    if not rows:
        return
    namespaces, ids = _keys(rows, row_id)
    found = set(
        model._default_manager.using(using)
        .filter(namespace__in=namespaces, **{f"{column}__in": ids})
        .values_list("namespace", column)
    )
    for row in rows:
        setattr(row, attr, (row.namespace, getattr(row, row_id)) in found)


def mark_queue_depths(rows: Sequence[Any], using: str, attr: str = "queue_depth") -> None:
    """Set ``attr`` on each lock row: how many entries are queued behind its key."""
    if not rows:
        return
    namespaces, keys = _keys(rows, "key")
    depths = {
        (row["namespace"], row["key"]): row["depth"]
        for row in PendingLockEntry.objects.using(using)
        .filter(namespace__in=namespaces, key__in=keys)
        .values("namespace", "key")
        .annotate(depth=Count("id"))
        .order_by()
    }
    for row in rows:
        setattr(row, attr, depths.get((row.namespace, row.key), 0))


def mark_lock_expiry(rows: Sequence[Any], using: str, attr: str = "lock_expires_at") -> None:
    """Set ``attr`` on each pending-entry row: when its key's lock expires; None without a lock."""
    if not rows:
        return
    namespaces, keys = _keys(rows, "key")
    expiry = {
        (namespace, key): expires_at
        for namespace, key, expires_at in Lock.objects.using(using)
        .filter(namespace__in=namespaces, key__in=keys)
        .values_list("namespace", "key", "expires_at")
    }
    for row in rows:
        setattr(row, attr, expiry.get((row.namespace, row.key)))
