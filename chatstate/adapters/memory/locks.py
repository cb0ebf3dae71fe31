"""Locks, slots and their queues in memory; a mixin of ``MemoryStateAdapter``.

A key is held by one lock in ``locks``, for reject, queue and debounce. Or it is held by up
to ``max_concurrent`` slots in ``slots``, for capped ``concurrent``. Each slot has its own
lease. Entries queued behind a key wait in ``pending``. An entry a slot holder's drain was
handed is marked in ``taken``, with owner and time. No other holder is handed it while that
holder lives. Every method runs under the adapter's mutex unless it takes it itself."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from chatstate.adapters.memory.store import MemoryStore, Pending
from chatstate.calls import Handover, LockOutcome, LockRequest
from chatstate.types import LockResult, PendingEntry, Strategy, not_owner

_monotonic = time.monotonic
_time = time.time
_ACQUIRED = LockResult.ACQUIRED
_entry = MemoryStore.entry


def entries(queue: Any) -> list[PendingEntry]:
    """Stored pending entries as :class:`PendingEntry` values."""
    return [_entry(raw) for raw in queue]


class MemoryLocks:
    """The locks, slots and pending queues of one memory adapter."""

    store: MemoryStore
    _mutex: threading.RLock
    pending_ttl: float | None

    # -- slots -----------------------------------------------------------------------------

    def _live_slots(self, key: str, now: float) -> dict[str, list[Any]]:
        """The key's slots whose lease runs; expired ones are freed."""
        slots = self.store.slots.get(key)
        if not slots:
            return {}
        for owner in [o for o, slot in slots.items() if slot[0] <= now]:
            del slots[owner]
        if not slots:
            del self.store.slots[key]
        return slots

    def _holder(self, key: str, now: float) -> str | None:
        """Who holds ``key`` live: its lock's owner, a slot's owner, or None."""
        held = self.store.locks.get(key)
        if held is not None and held[3] > now:
            return str(held[0])
        return next(iter(self._live_slots(key, now)), None)

    def _take_slot(self, request: LockRequest, now: float) -> LockOutcome:
        key = request.key
        held = self.store.locks.get(key)
        slots = self._live_slots(key, now)
        if (held is None or held[3] <= now) and len(slots) < (request.max_concurrent or 0):
            if held is not None:
                del self.store.locks[key]
            wall, ttl = _time(), request.ttl
            self.store.slots.setdefault(key, {})[request.owner] = [
                now + ttl, wall, wall + ttl, ttl, request.metadata
            ]  # fmt: skip
            return LockOutcome(_ACQUIRED)
        return self._enqueue(request)

    def _slot(self, key: str, owner: str) -> list[Any] | None:
        return self.store.slots.get(key, {}).get(owner)

    def _free_slot(self, key: str, owner: str) -> None:
        slots = self.store.slots.get(key)
        if slots is not None:
            slots.pop(owner, None)
            if not slots:
                del self.store.slots[key]
        taken = self.store.taken.get(key)
        if taken:
            for entry_id in [i for i, (o, _) in taken.items() if o == owner]:
                del taken[entry_id]

    def _available(self, key: str, owner: str, now: float) -> list[Pending]:
        """The queued entries of ``key`` no other holder was handed, oldest first.

        A mark holds while its holder's slot lives, or until its time runs out."""
        queue = self.store.pending.get(key, ())
        taken = self.store.taken.get(key)
        if not taken:
            return list(queue)
        live = self._live_slots(key, now)
        return [
            raw
            for raw in queue
            if raw[0] not in taken
            or taken[raw[0]][0] == owner
            or (taken[raw[0]][0] not in live and taken[raw[0]][1] <= now)
        ]

    def _remove(self, key: str, ids: set[str]) -> None:
        """Remove the queued entries ``ids`` of ``key``, and their marks."""
        queue = self.store.pending.get(key)
        if queue and ids:
            self.store.pending[key] = deque(raw for raw in queue if raw[0] not in ids)
            if not self.store.pending[key]:
                del self.store.pending[key]
        taken = self.store.taken.get(key)
        for entry_id in ids:
            if taken:
                taken.pop(entry_id, None)

    # -- locks -----------------------------------------------------------------------------

    def _take(self, request: LockRequest, now: float) -> LockOutcome:
        if request.capped:
            return self._take_slot(request, now)
        key, owner = request.key, request.owner
        held = self.store.locks.get(key)
        if (held is None or held[3] <= now) and not self._live_slots(key, now):
            wall, ttl = _time(), request.ttl
            record = [owner, request.strategy, request.metadata, now + ttl, wall, wall + ttl, ttl]
            self.store.locks[key] = record
            return LockOutcome(_ACQUIRED, taken_over=None if held is None else held[0])
        if request.strategy is Strategy.REJECT:
            return LockOutcome(LockResult.BUSY)
        return self._enqueue(request)

    def _enqueue(self, request: LockRequest) -> LockOutcome:
        """Append ``request`` to the key's queue, within its bound.

        Under ``debounce``, it replaces the queue."""
        queue = self.store.pending.setdefault(request.key, deque())
        entry = (str(next(self.store.ids)), request.owner, request.strategy, request.metadata,
                 _time(), None)  # fmt: skip
        if request.strategy is Strategy.DEBOUNCE:
            dropped = entries(queue)
            queue.clear()
            queue.append(entry)
            return LockOutcome(LockResult.DEBOUNCED, dropped)
        dropped = []
        if request.max_pending is not None and len(queue) >= request.max_pending:
            if request.overflow == "drop_newest":
                if not queue:
                    del self.store.pending[request.key]
                return LockOutcome(LockResult.DROPPED)
            while len(queue) >= request.max_pending:
                dropped.append(_entry(queue.popleft()))
        queue.append(entry)
        return LockOutcome(LockResult.QUEUED, dropped)

    def _do_lock(self, request: LockRequest) -> LockOutcome:
        with self._mutex:
            return self._take(request, _monotonic())

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        now = _monotonic()
        with self._mutex:
            slot = self._slot(key, owner)
            if slot is not None:
                if slot[0] <= now:
                    return False
                slot[0], slot[2], slot[3] = now + ttl, _time() + ttl, ttl
                return True
            held = self.store.locks.get(key)
            if held is None or held[0] != owner or held[3] <= now:
                return False
            held[3], held[5], held[6] = now + ttl, _time() + ttl, ttl
            return True

    def _held_by(self, key: str, owner: str) -> list[Any]:
        held = self.store.locks.get(key)
        if held is None or held[0] != owner:
            raise not_owner(key, owner, held[0] if held else self._holder(key, _monotonic()))
        return held

    def _expired(self, key: str) -> list[PendingEntry]:
        """Drop and return the pending entries of ``key`` older than ``pending_ttl``."""
        queue = self.store.pending.get(key)
        if not queue or self.pending_ttl is None:
            return []
        cutoff, gone = _time() - self.pending_ttl, []
        while queue and queue[0][4] < cutoff:
            gone.append(_entry(queue.popleft()))
        return gone

    def _hand_over(self, key: str, owner: str, limit: int | None = None) -> Handover:
        """Remove and return up to ``limit`` entries no other live holder was handed."""
        expired = self._expired(key)
        raws = self._available(key, owner, _monotonic())
        raws = raws if limit is None else raws[:limit]
        self._remove(key, {raw[0] for raw in raws})
        return Handover(entries(raws), expired)

    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Handover:
        with self._mutex:
            slot = self._slot(key, owner)
            if slot is None:
                held = self._held_by(key, owner)
            handover = self._hand_over(key, owner)
            if slot is not None:
                if only_if_idle and handover.entries:
                    slot[0], slot[2] = _monotonic() + slot[3], _time() + slot[3]
                else:
                    self._free_slot(key, owner)
            elif only_if_idle and handover.entries:
                held[3], held[5] = _monotonic() + held[6], _time() + held[6]
            else:
                del self.store.locks[key]
            return handover

    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Handover:
        with self._mutex:
            if self._slot(key, owner) is None:
                self._held_by(key, owner)
            return self._hand_over(key, owner, limit)

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        with self._mutex:
            self.store.locks.pop(key, None)
            self.store.slots.pop(key, None)
            self.store.taken.pop(key, None)
            return entries(self.store.pending.pop(key, ()))
