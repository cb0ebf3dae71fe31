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
from chatstate.calls import Handover, LockOutcome, LockRequest
from chatstate.models import Lock, PendingLockEntry
from chatstate.types import LockResult, PendingEntry, Strategy, not_owner

_ACQUIRED = LockResult.ACQUIRED


class LockRows:
    """The lock and pending-entry rows of one namespace (``queryset``, ``using``, ``now`` and
    ``pending_ttl`` come from the adapter)."""

    namespace: str
    using: str
    pending_ttl: float | None

    def queryset(self, model: Any) -> Any:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def _take(self, request: LockRequest, now: datetime) -> LockOutcome:
        """Inside a write transaction: ``lock`` for a non-concurrent strategy."""
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
            }
            if held is None:
                with transaction.atomic(using=self.using):  # an insert race fails here
                    Lock.objects.using(self.using).create(
                        namespace=self.namespace, key=key, **fields
                    )
            else:
                self.queryset(Lock).filter(pk=held.pk).update(**fields)
            return LockOutcome(_ACQUIRED, taken_over=None if held is None else held.owner)
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
        holds it (``owner`` None: whoever does)."""
        held: Lock | None = self.queryset(Lock).select_for_update().filter(key=key).first()
        if owner is not None and (held is None or held.owner != owner):
            raise not_owner(key, owner, held.owner if held else None)
        return held

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
        if held is not None:
            self.queryset(Lock).filter(pk=held.pk).delete()
        return self._hand_over(key)

    def _renew(self, held: Lock, ttl: float) -> None:
        self.queryset(Lock).filter(pk=held.pk).update(
            expires_at=self.now() + timedelta(seconds=ttl)
        )
