"""Slots on the ORM path (a mixin of ``DatabaseStateAdapter``): capped ``concurrent``.

A key held by slots keeps its holders on its lock row (``Lock.holders``: the layout is
:class:`chatstate.models.Lock`'s; the row's ``owner`` is ``""``, so no lock owner's check
matches it, and its ``expires_at`` is the latest holder's, so the exclusive strategies judge
it as a lock). A queued entry a holder's drain was handed is marked ``taken_by`` that holder:
no other holder is handed it while that holder's slot lives. An expired holder stays recorded
until someone needs its room (a slot taken), ``prune``, or a lock taking the row.

Every method runs inside the adapter's write transaction, and those given a ``row`` hold it
(``select_for_update()``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from chatstate.adapters.database.rows import pending_entry
from chatstate.calls import Handover, LockOutcome, LockRequest
from chatstate.models import Lock, PendingLockEntry
from chatstate.types import LockResult, PendingEntry, from_iso, to_iso

Holders = dict[str, dict[str, Any]]


def until(holder: dict[str, Any]) -> datetime:
    """When ``holder``'s lease ends."""
    return from_iso(holder["expires_at"])


def live(holders: Holders | None, now: datetime) -> Holders:
    """The holders whose lease runs at ``now``."""
    return {owner: h for owner, h in (holders or {}).items() if until(h) > now}


def first_holder(holders: Holders, now: datetime) -> str | None:
    """The live holder that came first (for a ``NotOwner``), or None."""
    running = live(holders, now)
    return min(running, key=lambda o: (running[o]["acquired_at"], o)) if running else None


def renewed(holder: dict[str, Any], now: datetime, ttl: float, set_ttl: bool) -> dict[str, Any]:
    """``holder`` with its lease renewed to ``ttl`` seconds from ``now`` (``set_ttl``: and
    ``ttl`` remembered as its lease)."""
    copy = {**holder, "expires_at": to_iso(now + timedelta(seconds=ttl))}
    if set_ttl:
        copy["ttl"] = ttl
    return copy


def put_holders(rows: Any, row: Lock, holders: Holders) -> None:
    """Store ``holders`` as the slots of ``row`` (one of ``rows``, a namespace's lock rows),
    the row summarizing them; none left: the row is deleted."""
    if not holders:
        rows.filter(pk=row.pk).delete()
        return
    row.owner, row.strategy, row.metadata, row.ttl = "", "concurrent", {}, None
    row.holders = holders
    row.acquired_at = min(from_iso(h["acquired_at"]) for h in holders.values())
    row.expires_at = max(until(h) for h in holders.values())
    fields = ["owner", "strategy", "metadata", "ttl", "holders", "acquired_at", "expires_at"]
    row.save(update_fields=fields)


def prune_slots(rows: Any, now: datetime, dry_run: bool) -> int:
    """Inside a write transaction: free the expired slots among ``rows`` (a namespace's lock
    rows); how many (``dry_run``: count, change nothing). Each row is locked, and judged
    again, before it changes."""
    slots = rows.filter(holders__isnull=False)
    stale = [row.pk for row in slots if len(live(row.holders, now)) < len(row.holders)]
    freed = 0
    for row in slots.filter(pk__in=stale).select_for_update().order_by("key"):
        kept = live(row.holders, now)
        freed += len(row.holders) - len(kept)
        if not dry_run:
            put_holders(rows, row, kept)
    return freed


class SlotRows:
    """The slots of one namespace's keys (``queryset``, ``using``, ``now``, ``_enqueue``,
    ``_queued``, ``_remove`` and ``_hand_over`` come from the adapter)."""

    namespace: str
    using: str

    def queryset(self, model: Any) -> Any:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def _enqueue(self, request: LockRequest, meta: Any, now: datetime) -> LockOutcome:
        raise NotImplementedError

    def _queued(self, key: str) -> Any:
        raise NotImplementedError

    def _remove(self, rows: list[PendingLockEntry]) -> list[PendingEntry]:
        raise NotImplementedError

    def _hand_over(self, key: str, limit: int | None = None) -> Handover:
        raise NotImplementedError

    def _lock_row(self, key: str) -> Lock | None:
        """The key's lock row, locked, or None."""
        row: Lock | None = self.queryset(Lock).select_for_update().filter(key=key).first()
        return row

    def _take_slot(self, request: LockRequest, now: datetime) -> LockOutcome:
        """``lock`` with a capped ``concurrent`` strategy: one of ``max_concurrent`` slots,
        expired holders dropped to make room; full, or held by a lock: queued."""
        row = self._lock_row(request.key)
        meta = json.loads(request.metadata)
        mine = {
            "acquired_at": to_iso(now),
            "expires_at": to_iso(now + timedelta(seconds=request.ttl)),
            "ttl": request.ttl,
            "metadata": meta,
        }
        if row is None:
            with transaction.atomic(using=self.using):  # an insert race fails here
                Lock.objects.using(self.using).create(
                    namespace=self.namespace,
                    key=request.key,
                    owner="",
                    strategy="concurrent",
                    metadata={},
                    acquired_at=now,
                    expires_at=from_iso(mine["expires_at"]),
                    holders={request.owner: mine},
                )
            return LockOutcome(LockResult.ACQUIRED)
        if row.holders is not None or row.expires_at <= now:
            holders = live(row.holders, now)
            if len(holders) < (request.max_concurrent or 0):
                self._put_holders(row, {**holders, request.owner: mine})
                return LockOutcome(LockResult.ACQUIRED)
        return self._enqueue(request, meta, now)

    def _put_holders(self, row: Lock, holders: Holders) -> None:
        put_holders(self.queryset(Lock), row, holders)

    def _available(self, key: str, owner: str, holders: Holders | None, now: datetime) -> Any:
        """The pending rows of ``key`` no live holder but ``owner`` was handed, oldest first."""
        busy = [o for o in live(holders, now) if o != owner]
        rows = self._queued(key)
        return rows.exclude(taken_by__in=busy) if busy else rows

    def _slot_behind(self, key: str, owner: str, now: datetime) -> bool:
        """Whether entries wait behind ``key`` that ``owner``, just given a slot, must come
        after (none of them handed to another live holder)."""
        row = self._lock_row(key)
        return row is not None and bool(self._available(key, owner, row.holders, now).exists())

    def _hand_over_slot(self, row: Lock, owner: str, limit: int | None, now: datetime) -> Handover:
        """Remove and return up to ``limit`` oldest entries available to the holder ``owner``
        (expired ones dropped)."""
        handover = self._hand_over(row.key, limit=0)  # the expired ones only
        rows = self._available(row.key, owner, row.holders, now)
        handover.entries = self._remove(list(rows if limit is None else rows[:limit]))
        return handover

    def _release_slot(self, row: Lock, owner: str, only_if_idle: bool) -> Handover:
        """Free ``owner``'s slot of ``row`` and hand over the entries no other live holder was
        handed; with ``only_if_idle`` and entries handed over, keep it, renewed by its ttl."""
        now = self.now()
        handover = self._hand_over_slot(row, owner, None, now)
        holders = dict(row.holders or {})
        if only_if_idle and handover.entries:
            holders[owner] = renewed(holders[owner], now, holders[owner]["ttl"], False)
        else:
            del holders[owner]
        self._put_holders(row, holders)
        return handover

    def _extend_slot(self, key: str, owner: str, ttl: float, now: datetime) -> bool:
        """Renew ``owner``'s unexpired slot of ``key`` to ``ttl`` seconds from ``now``."""
        row = self._lock_row(key)
        holder = None if row is None or row.holders is None else row.holders.get(owner)
        if row is None or holder is None or until(holder) <= now:
            return False
        self._put_holders(row, {**(row.holders or {}), owner: renewed(holder, now, ttl, True)})
        return True

    def _drain_slot(self, row: Lock, owner: str, ttl: float, finished: str | None) -> Handover:
        """One drain step under ``owner``'s slot of ``row``: remove ``finished``, drop expired
        entries, then hand out (and mark as handed to ``owner``) the oldest entry no other
        live holder was handed, the slot renewed by ``ttl``; none left: free the slot."""
        if finished is not None:
            self._queued(row.key).filter(id=int(finished)).delete()
        handover = self._hand_over(row.key, limit=0)  # the expired ones only
        now = self.now()
        following = self._available(row.key, owner, row.holders, now).first()
        holders = dict(row.holders or {})
        if following is None:
            del holders[owner]
        else:
            self._queued(row.key).filter(pk=following.pk).update(taken_by=owner)
            holders[owner] = renewed(holders[owner], now, ttl, False)
            handover.entries = [pending_entry(following)]
        self._put_holders(row, holders)
        return handover

    def _leave_slot(self, key: str, owner: str) -> None:
        """Free ``owner``'s slot of ``key``, if it has one, and the marks of the entries it
        was handed (they stay queued)."""
        row = self._lock_row(key)
        if row is not None and row.holders is not None and owner in row.holders:
            self._put_holders(row, {o: h for o, h in row.holders.items() if o != owner})
        self._queued(key).filter(taken_by=owner).update(taken_by=None)
