"""Locks and their queues on the ORM path (a mixin of ``DatabaseStateAdapter``).

Every method runs inside the adapter's write transaction. The lock row is read with
``select_for_update()`` before anything is decided on it, so a release waits for a queueing
call and then sees its entry.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from chatstate.adapters.database.rows import pending_entry
from chatstate.adapters.database.slots import SlotRows, first_holder
from chatstate.calls import CycleRequest, Handover, LockOutcome, LockRequest, lease_lost
from chatstate.models import Lock, PendingLockEntry
from chatstate.types import LockResult, PendingEntry, Strategy, not_owner

_ACQUIRED = LockResult.ACQUIRED


class LockRows(SlotRows):
    """The lock and pending-entry rows of one namespace (``queryset``, ``using``, ``now`` and
    ``pending_ttl`` come from the adapter); the slots of :class:`.SlotRows`."""

    namespace: str
    using: str
    pending_ttl: float | None

    def queryset(self, model: Any) -> Any:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def _take(self, request: LockRequest, now: datetime) -> LockOutcome:
        """Inside a write transaction: ``lock`` for a non-concurrent strategy, or a slot
        (capped ``concurrent``). A row of live slots is held: its ``expires_at`` is theirs."""
        if request.capped:
            return self._take_slot(request, now)
        key, strategy = request.key, request.strategy
        held = self.queryset(Lock).select_for_update().filter(key=key).first()
        meta = json.loads(request.metadata)
        if held is None or held.expires_at <= now:
            fields = {
                "owner": request.owner,
                "strategy": strategy.value,
                "metadata": meta,
                "acquired_at": now,
                "expires_at": now + timedelta(seconds=request.ttl),
                "ttl": request.ttl,
                "holders": None,
            }
            if held is None:
                with transaction.atomic(using=self.using):  # an insert race fails here
                    Lock.objects.using(self.using).create(
                        namespace=self.namespace, key=key, **fields
                    )
            else:
                self.queryset(Lock).filter(pk=held.pk).update(**fields)
            # (expired slots are no holder taken over)
            over = None if held is None or held.holders is not None else held.owner
            return LockOutcome(_ACQUIRED, taken_over=over)
        if strategy is Strategy.REJECT:
            return LockOutcome(LockResult.BUSY)
        return self._enqueue(request, meta, now)

    def _queued(self, key: str) -> Any:
        """The pending-entry rows of ``key``, oldest first."""
        return self.queryset(PendingLockEntry).filter(key=key).order_by("id")

    def _enqueue(self, request: LockRequest, meta: Any, now: datetime) -> LockOutcome:
        """Inside a write transaction, holding the lock row: append ``request`` to the queue
        (``debounce``: in place of it), within its bound."""
        strategy = request.strategy
        pending = self._queued(request.key)
        outcome = LockOutcome(LockResult.QUEUED)
        if strategy is Strategy.DEBOUNCE:
            outcome = LockOutcome(LockResult.DEBOUNCED, self._remove(list(pending)))
        elif request.max_pending is not None:
            depth = pending.count()
            if depth >= request.max_pending:
                if request.overflow == "drop_newest":
                    return LockOutcome(LockResult.DROPPED)
                oldest = list(pending[: depth - request.max_pending + 1])
                outcome.dropped = self._remove(oldest)
        PendingLockEntry.objects.using(self.using).create(
            namespace=self.namespace,
            key=request.key,
            owner=request.owner,
            strategy=strategy.value,
            metadata=meta,
            enqueued_at=now,
        )
        return outcome

    def _queue_behind(
        self, request: LockRequest, acquired: LockOutcome, now: datetime
    ) -> LockResult:
        """Inside a write transaction, having just acquired ``request.key`` with entries left
        queued: queue this message behind them (the lock stays this owner's); the result."""
        outcome = self._enqueue(request, json.loads(request.metadata), now)
        acquired.dropped = outcome.dropped
        return outcome.result

    def _remove(self, rows: list[PendingLockEntry]) -> list[PendingEntry]:
        """Delete pending ``rows``; them, as entries."""
        if rows:
            PendingLockEntry.objects.using(self.using).filter(id__in=[r.id for r in rows]).delete()
        return [pending_entry(row) for row in rows]

    def _held(self, key: str, owner: str | None) -> Lock | None:
        """Inside a write transaction: the lock row, locked; ``NotOwner`` unless ``owner``
        holds it, or a slot of it (its ``holders`` say which; ``owner`` None: whoever)."""
        held: Lock | None = self.queryset(Lock).select_for_update().filter(key=key).first()
        if owner is None or (held is not None and held.owner == owner):
            return held
        if held is not None and held.holders is not None and owner in held.holders:
            return held
        holder = None
        if held is not None:
            holder = held.owner if held.holders is None else first_holder(held.holders, self.now())
        raise not_owner(key, owner, holder)

    def _hand_over(self, key: str, limit: int | None = None) -> Handover:
        """Inside a write transaction: remove and return up to ``limit`` oldest pending entries
        of ``key``, those older than ``PENDING_TTL`` dropped instead."""
        rows = self.queryset(PendingLockEntry).filter(key=key).order_by("id")
        expired: list[PendingEntry] = []
        if self.pending_ttl is not None:
            cutoff = self.now() - timedelta(seconds=self.pending_ttl)
            expired = self._remove(list(rows.filter(enqueued_at__lt=cutoff)))
        taken = list(rows if limit is None else rows[:limit])
        return Handover(self._remove(taken), expired)

    def _release(self, key: str, owner: str | None) -> Handover:
        held = self._held(key, owner)
        if held is not None and held.holders is not None and owner is not None:
            return self._release_slot(held, owner, only_if_idle=False)
        if held is not None:
            self.queryset(Lock).filter(pk=held.pk).delete()
        return self._hand_over(key)

    def _renew(self, held: Lock, ttl: float) -> None:
        self.queryset(Lock).filter(pk=held.pk).update(
            expires_at=self.now() + timedelta(seconds=ttl)
        )

    def _gather(self, request: CycleRequest) -> Handover:
        """Inside a write transaction: one look of ``msg.gather()`` (see ``_do_cycle_gather``)."""
        held = self._lock_row(request.thread_id)
        if held is None or held.owner != request.owner:
            raise lease_lost(request, (held.owner or None) if held else None)
        handover = self._hand_over(request.thread_id, limit=0)  # the expired ones only
        self._renew(held, request.ttl)
        handover.entries = [pending_entry(row) for row in self._queued(request.thread_id)]
        return handover
