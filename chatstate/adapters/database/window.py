"""The dedupe window on the ORM path: claims, their leases, trimming (a mixin of
``DatabaseStateAdapter``).

Every method runs inside the adapter's write transaction unless it says otherwise. Rows are
locked in the adapter's order: the namespace's window row, then a dedupe entry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, Max, OuterRef, Q

from chatstate.models import ClaimMinute, DedupeEntry, DedupeWindow, Lock
from chatstate.types import DedupeKey, from_iso


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

    def _holds(self, owner: str | None, thread_id: str | None, expires: Any, now: datetime) -> bool:
        """Whether a dedupe entry makes its message a duplicate at ``now``: done, or in
        progress and alive (its own lease runs, or its owner holds its thread's lock, or a
        slot of it, unexpired). Any transaction."""
        if owner is None:
            return True
        if expires is not None and expires > now:
            return True
        row = self.queryset(Lock).filter(key=thread_id, expires_at__gt=now).first()
        if row is None:
            return False
        holder = (row.holders or {}).get(owner)
        return row.owner == owner or (holder is not None and from_iso(holder["expires_at"]) > now)

    def live_claims(self, now: datetime) -> Q:
        """The dedupe entries that are claims in progress and alive at ``now`` through their
        own lease or their owner's lock (a slot's holder renews its claim's own lease; the
        window judges slots exactly, in :meth:`_holds`)."""
        held = self.queryset(Lock).filter(
            key=OuterRef("thread_id"), owner=OuterRef("owner"), expires_at__gt=now
        )
        return Q(owner__isnull=False) & (Q(expires_at__gt=now) | Q(Exists(held)))

    def _claim(
        self,
        key: DedupeKey,
        limit: int,
        min_age: float,
        claim: tuple[str, str, float] | None,
    ) -> tuple[bool, datetime]:
        """Record ``key`` (``claim``: in progress for ``(owner, thread, ttl seconds)``; None:
        done) unless a done or live claim holds it; whether it did, and the instant every
        decision was judged at (read once the rows are locked: the caller judges its lock at
        it too). A dead claim is taken over in its place; a new key is the newest, the window
        trimmed to ``limit`` (keeping keys younger than ``min_age`` and live claims)."""
        window = self.window()
        row = self._entry(key).select_for_update().first()
        now = self.now()
        owner, thread_id, expires = None, None, None
        if claim is not None:
            owner, thread_id = claim[0], claim[1]
            expires = now + timedelta(seconds=claim[2])
        if row is not None:
            if self._holds(row.owner, row.thread_id, row.expires_at, now):
                return False, now
            row.owner, row.thread_id, row.expires_at = owner, thread_id, expires
            row.save(update_fields=["owner", "thread_id", "expires_at"])
            return True, now
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
        minute = (entry.created_at or now).replace(second=0, microsecond=0)
        ClaimMinute.objects.using(self.using).bulk_create(
            [ClaimMinute(namespace=self.namespace, minute=minute, first_seq=entry.seq)],
            ignore_conflicts=True,
        )  # the minute's first claim records where the sequence stood (the admin's chart)
        window.head = self.trim(window.head + 1, limit, min_age, keep=entry.pk, now=now)
        window.save(update_fields=["head"])
        return True, now

    def trim(
        self,
        count: int,
        limit: int,
        min_age: float = 0.0,
        keep: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> int:
        """Holding the window row: delete the entries older than the newest ``limit``, except
        those younger than ``min_age`` seconds and claims in progress and alive (at ``now``,
        default the database's clock); the window's new count (dry run: the count it would
        have).

        ``count`` is the window's recorded size; when it proves larger than what is there
        (rows deleted behind the adapter's back), the entries are counted afresh. ``keep``:
        an entry never deleted (the one just claimed).
        """
        now = self.now() if now is None else now
        for _ in range(2):
            if count <= limit:
                break
            oldest = self.queryset(DedupeEntry).exclude(pk=keep).order_by("seq", "id")
            fields = ("id", "owner", "thread_id", "expires_at", "created_at")
            candidates = list(oldest.values_list(*fields)[: count - limit])  # beyond the newest
            young = now - timedelta(seconds=min_age)
            ids = [
                entry_id
                for entry_id, owner, thread_id, expires, created in candidates
                if not (min_age and created >= young)
                and (owner is None or not self._holds(owner, thread_id, expires, now))
            ]
            if len(candidates) == count - limit:
                if not dry_run and ids:
                    DedupeEntry.objects.using(self.using).filter(id__in=ids).delete()
                return count - len(ids)
            count = self.queryset(DedupeEntry).count()  # the count was wrong: the truth
        return count
