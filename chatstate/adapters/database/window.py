"""The dedupe window on the ORM path: claims, their leases, trimming (a mixin of
``DatabaseStateAdapter``).

Every method runs inside the adapter's write transaction unless it says otherwise. Rows are
locked in the adapter's order: the namespace's window row, then a dedupe entry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max

from chatstate.models import ClaimMinute, DedupeEntry, DedupeWindow, Lock
from chatstate.types import DedupeKey


class DedupeWindowRows:
    """The dedupe window's rows of one namespace (``queryset``, ``using``, ``now`` come from
    the adapter)."""

    namespace: str
    using: str

    def queryset(self, model: Any) -> Any:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def window(self) -> DedupeWindow:
        """The namespace's dedupe window row, locked until the transaction ends."""
        windows = DedupeWindow.objects.using(self.using).select_for_update()
        window = windows.filter(namespace=self.namespace).first()
        if window is None:
            DedupeWindow.objects.using(self.using).bulk_create(
                [DedupeWindow(namespace=self.namespace, head=0)], ignore_conflicts=True
            )
            window = windows.get(namespace=self.namespace)
        return window

    def _entry(self, key: DedupeKey) -> Any:
        return self.queryset(DedupeEntry).filter(adapter=key[0], message_id=key[1])

    def _holds(self, owner: str | None, thread_id: str | None, expires: Any) -> bool:
        """Whether a dedupe entry makes its message a duplicate: done, or in progress and
        alive (its own lease runs, or its owner holds its thread's lock unexpired). Any
        transaction."""
        if owner is None:
            return True
        now = self.now()
        if expires is not None and expires > now:
            return True
        live = self.queryset(Lock).filter(key=thread_id, owner=owner, expires_at__gt=now)
        return bool(live.exists())

    def _claim(
        self,
        key: DedupeKey,
        limit: int,
        min_age: float,
        claim: tuple[str, str, datetime] | None,
    ) -> bool:
        """Record ``key`` (``claim``: in progress for ``(owner, thread, expires)``; None: done)
        unless a done or live claim holds it. A dead claim is taken over in its place; a new
        key is the newest, the window trimmed to ``limit`` (keeping keys younger than
        ``min_age``)."""
        window = self.window()
        row = self._entry(key).select_for_update().first()
        owner, thread_id, expires = claim or (None, None, None)
        if row is not None:
            if self._holds(row.owner, row.thread_id, row.expires_at):
                return False
            row.owner, row.thread_id, row.expires_at = owner, thread_id, expires
            row.save(update_fields=["owner", "thread_id", "expires_at"])
            return True
        newest = self.queryset(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
        entry = DedupeEntry.objects.using(self.using).create(
            namespace=self.namespace,
            adapter=key[0],
            message_id=key[1],
            seq=newest + 1,
            owner=owner,
            thread_id=thread_id,
            expires_at=expires,
        )
        minute = (entry.created_at or self.now()).replace(second=0, microsecond=0)
        ClaimMinute.objects.using(self.using).bulk_create(
            [ClaimMinute(namespace=self.namespace, minute=minute, first_seq=entry.seq)],
            ignore_conflicts=True,
        )  # the minute's first claim records where the sequence stood (the admin's chart)
        window.head = self.trim(window.head + 1, limit, min_age, keep=entry.pk)
        window.save(update_fields=["head"])
        return True

    def trim(
        self,
        count: int,
        limit: int,
        min_age: float = 0.0,
        keep: int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Holding the window row: delete the oldest entries until at most ``limit`` remain,
        none younger than ``min_age`` seconds; the window's new count (dry run: the count it
        would have).

        ``count`` is the window's recorded size; when it proves larger than what is there
        (rows deleted behind the adapter's back), the entries are counted afresh. ``keep``:
        an entry never deleted (the one just claimed).
        """
        while count > limit:
            oldest = self.queryset(DedupeEntry).exclude(pk=keep).order_by("seq", "id")
            if min_age:
                oldest = oldest.filter(created_at__lt=self.now() - timedelta(seconds=min_age))
            ids = list(oldest.values_list("id", flat=True)[: count - limit])
            if dry_run:
                return count - len(ids)
            deleted, _ = DedupeEntry.objects.using(self.using).filter(id__in=ids).delete()
            if not deleted:
                fresh = self.queryset(DedupeEntry).count()
                if fresh == count or fresh <= limit:
                    return fresh  # all the rest are young (or the count was only wrong)
                count = fresh
                continue
            count -= deleted
        return count
