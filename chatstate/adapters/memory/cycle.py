"""The message cycle's hooks in memory, a mixin of ``MemoryStateAdapter``.

Each hook is one step under the adapter's mutex."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from chatstate.adapters.memory.locks import MemoryLocks, entries
from chatstate.adapters.memory.store import MemoryStore
from chatstate.calls import CycleEntry, CycleRequest, Handover, LockOutcome, Staged, lease_lost
from chatstate.types import LockResult, Strategy
from chatstate.validation import history_key

_monotonic = time.monotonic
_time = time.time
_ACQUIRED = LockResult.ACQUIRED
_REFUSED = (LockResult.BUSY, LockResult.DROPPED)
_QUEUEING = (Strategy.QUEUE, Strategy.DEBOUNCE)


class MemoryCycle(MemoryLocks):
    """``_do_cycle_enter`` … ``_do_cycle_abort`` of one memory adapter."""

    store: MemoryStore
    _mutex: threading.RLock

    if TYPE_CHECKING:  # the adapter's, and its lists mixin's

        def _claim(self, key: Any, limit: int, min_age: float, claim: Any, now: float) -> bool: ...
        def _newest(self, key: str, limit: int | None, now: float) -> list[Any]: ...
        def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]: ...
        def _write_effects(self, thread_id: str, staged: Staged) -> None: ...

    def _do_cycle_enter(self, request: CycleRequest) -> CycleEntry:
        thread_id, key = request.thread_id, request.dedupe_key
        now = _monotonic()
        subscriptions, dedupe = self.store.subscriptions, self.store.dedupe
        with self._mutex:
            claim = (request.owner, thread_id, now + request.ttl, _time() + request.ttl)
            if not self._claim(key, request.dedupe_limit, request.min_age, claim, now):
                in_progress = dedupe[key][1] is not None
                return CycleEntry(False, thread_id in subscriptions, in_progress=in_progress)
            outcome = self._take(request.lock_request(), now) if request.holds else None
            result = _ACQUIRED if outcome is None else outcome.result
            held = result is _ACQUIRED
            if held and outcome is not None and self._behind(request, now):
                result = self._queue_behind(request, outcome)
            if result in _REFUSED:  # released at once, a redelivery is handled
                dedupe[key][1] = (request.owner, "", now, _time())
            elif result is not _ACQUIRED:  # stored behind the lock: done
                dedupe[key][1] = None
            entry = CycleEntry(True, thread_id in subscriptions, result, held=held)
            if outcome is not None:
                entry.dropped, entry.taken_over = outcome.dropped, outcome.taken_over
            if held:
                entry.state = self._do_get_state("thread", thread_id)
                if request.history:
                    entry.history = self._newest(history_key(thread_id), request.history, now)
            return entry

    def _behind(self, request: CycleRequest, now: float) -> bool:
        """Whether entries wait that this newcomer must come after; a holder died or failed."""
        if request.slots:
            return bool(self._available(request.thread_id, request.owner, now))
        return request.strategy in _QUEUEING and bool(self.store.pending.get(request.thread_id))

    def _queue_behind(self, request: CycleRequest, outcome: LockOutcome) -> LockResult:
        """Queue the message of a cycle that just took its thread with entries left queued."""
        queued = self._enqueue(request.lock_request())
        outcome.dropped = queued.dropped
        return queued.result

    def _own_claim(self, request: CycleRequest) -> bool:
        found = self.store.dedupe.get(request.dedupe_key)
        return found is not None and found[1] is not None and found[1][0] == request.owner

    def _check_lease(self, request: CycleRequest) -> None:
        """``LeaseLost`` unless the cycle still holds its lock, or its slot."""
        if request.locks:
            held = self.store.locks.get(request.thread_id)
            if held is None or held[0] != request.owner:
                raise lease_lost(request, held[0] if held else None)
        elif request.slots and self._slot(request.thread_id, request.owner) is None:
            raise lease_lost(request, self._holder(request.thread_id, _monotonic()))

    def _settle(self, request: CycleRequest, staged: Staged) -> None:
        """Write what is staged, or raise ``LeaseLost``.

        The cycle must still hold its lease. With ``staged.claim``, or under ``concurrent``,
        it must also hold its claim."""
        self._check_lease(request)
        if (staged.claim or not request.holds) and not self._own_claim(request):
            raise lease_lost(request, request.owner)
        if staged.state is not None:
            self.store.states[("thread", request.thread_id)] = (staged.state, _time())
        if staged.claim:
            self.store.dedupe[request.dedupe_key][1] = None
        if staged.taken:
            self._remove(request.thread_id, set(staged.taken))
        if staged.effects:
            self._write_effects(request.thread_id, staged)

    def _release(self, request: CycleRequest) -> None:
        if request.locks:
            del self.store.locks[request.thread_id]
        else:
            self._free_slot(request.thread_id, request.owner)

    def _renew(self, request: CycleRequest) -> None:
        now, wall, ttl = _monotonic(), _time(), request.ttl
        if request.locks:
            held = self.store.locks[request.thread_id]
            held[3], held[5] = now + ttl, wall + ttl
        else:
            slot = self.store.slots[request.thread_id][request.owner]
            slot[0], slot[2] = now + ttl, wall + ttl

    def _do_cycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        with self._mutex:
            self._settle(request, staged)
            if not request.holds:
                return Handover()
            handover = self._hand_over(request.thread_id, request.owner)
            self._release(request)
            return handover

    def _do_cycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover:
        thread_id = request.thread_id
        with self._mutex:
            self._settle(request, staged)
            if finished is not None:
                self._remove(thread_id, {finished})
            expired = self._expired(thread_id)
            available = self._available(thread_id, request.owner, _monotonic())
            if not available:
                self._release(request)
                return Handover([], expired)
            self._renew(request)
            head = available[0]
            if request.slots:
                taken = self.store.taken.setdefault(thread_id, {})
                taken[head[0]] = (request.owner, _monotonic() + request.ttl)
            return Handover(entries([head]), expired)

    def _do_cycle_gather(self, request: CycleRequest) -> Handover:
        with self._mutex:
            self._check_lease(request)
            expired = self._expired(request.thread_id)
            self._renew(request)
            return Handover(entries(self.store.pending.get(request.thread_id, ())), expired)

    def _do_cycle_renew(self, request: CycleRequest) -> bool:
        now, ttl = _monotonic(), request.ttl
        with self._mutex:
            if request.holds:
                return self._do_extend_lock(request.thread_id, request.owner, ttl)
            if not self._own_claim(request):
                return False
            dedupe = self.store.dedupe
            owner, thread_id, _, _ = dedupe[request.dedupe_key][1]
            dedupe[request.dedupe_key][1] = (owner, thread_id, now + ttl, _time() + ttl)
            return True

    def _do_cycle_abort(self, request: CycleRequest) -> bool:
        with self._mutex:
            withdrawn = self._own_claim(request)
            if withdrawn:
                del self.store.dedupe[request.dedupe_key]
            held = self.store.locks.get(request.thread_id)
            if request.locks and held is not None and held[0] == request.owner:
                del self.store.locks[request.thread_id]
            if request.slots:
                self._free_slot(request.thread_id, request.owner)
            return withdrawn
