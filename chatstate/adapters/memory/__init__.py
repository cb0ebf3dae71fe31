"""``MemoryStateAdapter``: state in this process's memory, for tests and development.

Thread-safe (one re-entrant mutex per adapter, so a threaded development server may share
one), not shared between processes. Maps and metadata are kept as JSON text, so what a
caller gets back is always a fresh copy and what it passed in cannot be mutated later.
Leases use the monotonic clock; ages (pending entries, dedupe keys, touches) the wall clock.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from typing import Any

from chatstate.adapters.base import StateAdapter
from chatstate.adapters.hooks import StateFn
from chatstate.adapters.memory.activity import MemoryActivity
from chatstate.adapters.memory.lists import MemoryLists
from chatstate.adapters.memory.store import Claim, MemoryStore
from chatstate.calls import (
    CycleEntry,
    CycleRequest,
    Handover,
    LockOutcome,
    LockRequest,
    Pruned,
    PruneRequest,
    Staged,
    lease_lost,
)
from chatstate.snapshot import Snapshot
from chatstate.types import (
    DedupeKey,
    LockResult,
    PendingEntry,
    Strategy,
    not_owner,
)
from chatstate.validation import dump_map, history_key

_loads = json.loads
_monotonic = time.monotonic
_time = time.time
_ACQUIRED = LockResult.ACQUIRED
_BUSY = LockResult.BUSY
_REFUSED = (LockResult.BUSY, LockResult.DROPPED)
_REJECT = Strategy.REJECT
_DEBOUNCE = Strategy.DEBOUNCE
_QUEUEING = (Strategy.QUEUE, Strategy.DEBOUNCE)


class MemoryStateAdapter(MemoryActivity, MemoryLists, StateAdapter):
    """Chat state held in this process; each instance has its own."""

    name = "memory"

    def __init__(self, namespace: str | None = None) -> None:
        super().__init__(namespace)
        self._mutex = threading.RLock()
        self.store = MemoryStore()  # what is held; its layout is documented there
        self._ids = self.store.ids
        self._subscriptions = self.store.subscriptions
        self._dedupe = self.store.dedupe
        self._states = self.store.states
        self._locks = self.store.locks
        self._pending = self.store.pending

    async def _arun(self, fn: Any, *args: Any) -> Any:
        # Every hook is a few dict operations under a mutex: no thread hop needed.
        return fn(*args)

    # -- subscriptions and state maps ----------------------------------------------------

    def _do_is_subscribed(self, thread_id: str) -> bool:
        return thread_id in self._subscriptions

    def _do_subscribe(self, thread_id: str) -> None:
        with self._mutex:
            self._subscriptions[thread_id] = _time()

    def _do_unsubscribe(self, thread_id: str) -> None:
        with self._mutex:
            self._subscriptions.pop(thread_id, None)

    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        stored = self._states.get((kind, object_id))
        return {} if stored is None else _loads(stored[0])

    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        with self._mutex:
            self._states[(kind, object_id)] = (value_json, _time())

    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        with self._mutex:
            text = dump_map(fn(self._do_get_state(kind, object_id)), f"{kind} state returned by fn")
            self._states[(kind, object_id)] = (text, _time())
            return _loads(text)

    # -- dedupe --------------------------------------------------------------------------

    def _dead(self, claim: Claim | None, now: float) -> bool:
        """Whether ``claim`` is in progress with its lease run out (its lock included)."""
        if claim is None or claim[2] > now:
            return False
        held = self._locks.get(claim[1])
        return held is None or held[0] != claim[0] or held[3] <= now

    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        with self._mutex:
            found = self._dedupe.get(key)
            return found is not None and not self._dead(found[1], _monotonic())

    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> bool:
        with self._mutex:
            return self._claim(key, limit, min_age, None, _monotonic())

    def _claim(
        self, key: DedupeKey, limit: int, min_age: float, claim: Claim | None, now: float
    ) -> bool:
        """Under the mutex: record ``key`` (``claim``: in progress, None: done) unless a done
        or live claim holds it; a dead claim is taken over in its place."""
        dedupe = self._dedupe
        found = dedupe.get(key)
        if found is not None:
            if not self._dead(found[1], now):
                return False
            found[1] = claim
            return True
        dedupe[key] = [_time(), claim]
        self._trim(limit, min_age, now)
        return True

    def _trim(self, limit: int, min_age: float, now: float, dry_run: bool = False) -> int:
        """Drop the keys older than the newest ``limit``, but never one younger than
        ``min_age`` nor a claim in progress and alive."""
        dedupe, young = self._dedupe, _time() - min_age
        excess = len(dedupe) - limit
        if excess <= 0:
            return 0
        oldest = list(itertools.islice(dedupe.items(), excess))
        gone = [
            key
            for key, (born, claim) in oldest
            if not (min_age and born > young) and (claim is None or self._dead(claim, now))
        ]
        if not dry_run:
            for key in gone:
                del dedupe[key]
        return len(gone)

    # -- locks ---------------------------------------------------------------------------

    def _do_lock(self, request: LockRequest) -> LockOutcome:
        with self._mutex:
            return self._take(request, _monotonic())

    def _take(self, request: LockRequest, now: float) -> LockOutcome:
        key, owner, strategy = request.key, request.owner, request.strategy
        held = self._locks.get(key)
        if held is None or held[3] <= now:
            wall, ttl = _time(), request.ttl
            record = [owner, strategy, request.metadata, now + ttl, wall, wall + ttl, ttl]
            self._locks[key] = record
            return LockOutcome(_ACQUIRED, taken_over=None if held is None else held[0])
        if strategy is _REJECT:
            return LockOutcome(_BUSY)
        entry = (str(next(self._ids)), owner, strategy, request.metadata, _time(), None)
        queue = self._pending.setdefault(key, deque())
        if strategy is _DEBOUNCE:
            dropped = _entries(queue)
            queue.clear()
            queue.append(entry)
            return LockOutcome(LockResult.DEBOUNCED, dropped)
        dropped = []
        if request.max_pending is not None and len(queue) >= request.max_pending:
            if request.overflow == "drop_newest":
                return LockOutcome(LockResult.DROPPED)
            while len(queue) >= request.max_pending:
                dropped.append(_entry(queue.popleft()))
        queue.append(entry)
        return LockOutcome(LockResult.QUEUED, dropped)

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        now = _monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held is None or held[0] != owner or held[3] <= now:
                return False
            held[3], held[5], held[6] = now + ttl, _time() + ttl, ttl
            return True

    def _held_by(self, key: str, owner: str) -> list[Any]:
        held = self._locks.get(key)
        if held is None or held[0] != owner:
            raise not_owner(key, owner, held[0] if held else None)
        return held

    def _expired(self, key: str) -> list[PendingEntry]:
        """Drop (and return) the pending entries of ``key`` older than ``pending_ttl``."""
        queue = self._pending.get(key)
        if not queue or self.pending_ttl is None:
            return []
        cutoff, gone = _time() - self.pending_ttl, []
        while queue and queue[0][4] < cutoff:
            gone.append(_entry(queue.popleft()))
        return gone

    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Handover:
        with self._mutex:
            held = self._held_by(key, owner)
            expired = self._expired(key)
            entries = _entries(self._pending.pop(key, ()))
            if only_if_idle and entries:
                held[3], held[5] = _monotonic() + held[6], _time() + held[6]
            else:
                del self._locks[key]
            return Handover(entries, expired)

    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Handover:
        with self._mutex:
            self._held_by(key, owner)
            expired = self._expired(key)
            queue = self._pending.get(key, deque())
            count = len(queue) if limit is None else min(limit, len(queue))
            return Handover([_entry(queue.popleft()) for _ in range(count)], expired)

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        with self._mutex:
            self._locks.pop(key, None)
            return _entries(self._pending.pop(key, ()))

    # -- the message cycle ---------------------------------------------------------------

    def cycle_enter(self, request: CycleRequest) -> CycleEntry:
        thread_id, key = request.thread_id, request.dedupe_key
        now = _monotonic()
        with self._mutex:
            claim = (request.owner, thread_id, now + request.ttl, _time() + request.ttl)
            if not self._claim(key, request.dedupe_limit, request.min_age, claim, now):
                in_progress = self._dedupe[key][1] is not None
                return CycleEntry(False, thread_id in self._subscriptions, in_progress=in_progress)
            outcome = self._take(request.lock_request(), now) if request.locks else None
            result = _ACQUIRED if outcome is None else outcome.result
            held = result is _ACQUIRED
            if held and request.strategy in _QUEUEING and self._pending.get(thread_id):
                result = self._queue_behind(request, outcome)  # type: ignore[arg-type]
            if result in _REFUSED:  # released at once, a redelivery is handled
                self._dedupe[key][1] = (request.owner, "", now, _time())
            elif result is not _ACQUIRED:  # stored behind the lock: done
                self._dedupe[key][1] = None
            entry = CycleEntry(True, thread_id in self._subscriptions, result, held=held)
            if outcome is not None:
                entry.dropped, entry.taken_over = outcome.dropped, outcome.taken_over
            if held:
                entry.state = self._do_get_state("thread", thread_id)
                if request.history:
                    entry.history = self._newest(history_key(thread_id), request.history, now)
            return entry

    def _queue_behind(self, request: CycleRequest, outcome: LockOutcome) -> LockResult:
        """Queue the message of a cycle that just took a lock with entries left queued."""
        queue = self._pending[request.thread_id]
        if request.strategy is _DEBOUNCE:
            outcome.dropped = _entries(queue)
            queue.clear()
        elif request.max_pending is not None and len(queue) >= request.max_pending:
            if request.overflow == "drop_newest":
                return LockResult.DROPPED
            while len(queue) >= request.max_pending:
                outcome.dropped.append(_entry(queue.popleft()))
        queue.append(
            (str(next(self._ids)), request.owner, request.strategy, request.metadata, _time(), None)
        )
        return LockResult.DEBOUNCED if request.strategy is _DEBOUNCE else LockResult.QUEUED

    def _own_claim(self, request: CycleRequest) -> bool:
        found = self._dedupe.get(request.dedupe_key)
        return found is not None and found[1] is not None and found[1][0] == request.owner

    def _settle(self, request: CycleRequest, staged: Staged) -> None:
        """``LeaseLost`` unless the cycle still holds its lock (or, concurrent, its claim)
        and, when ``staged.claim``, its claim; then write what is staged."""
        if request.locks:
            held = self._locks.get(request.thread_id)
            if held is None or held[0] != request.owner:
                raise lease_lost(request, held[0] if held else None)
        if (staged.claim or not request.locks) and not self._own_claim(request):
            raise lease_lost(request, request.owner)
        if staged.state is not None:
            self._states[("thread", request.thread_id)] = (staged.state, _time())
        if staged.claim:
            self._dedupe[request.dedupe_key][1] = None
        if staged.effects:
            self._write_effects(request.thread_id, staged)

    def cycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        with self._mutex:
            self._settle(request, staged)
            if not request.locks:
                return Handover()
            del self._locks[request.thread_id]
            expired = self._expired(request.thread_id)
            return Handover(_entries(self._pending.pop(request.thread_id, ())), expired)

    def cycle_drain(self, request: CycleRequest, staged: Staged, finished: str | None) -> Handover:
        thread_id = request.thread_id
        with self._mutex:
            self._settle(request, staged)
            queue = self._pending.get(thread_id, deque())
            if finished is not None and queue and queue[0][0] == finished:
                queue.popleft()
            elif finished is not None:  # dropped meanwhile (overflow, debounce)
                self._pending[thread_id] = deque(e for e in queue if e[0] != finished)
            expired = self._expired(thread_id)
            queue = self._pending.get(thread_id, deque())
            if not queue:
                self._pending.pop(thread_id, None)
                del self._locks[thread_id]
                return Handover([], expired)
            held = self._locks[thread_id]
            held[3], held[5] = _monotonic() + request.ttl, _time() + request.ttl
            return Handover([_entry(queue[0])], expired)

    def cycle_renew(self, request: CycleRequest) -> bool:
        now, ttl = _monotonic(), request.ttl
        with self._mutex:
            if request.locks:
                return self._do_extend_lock(request.thread_id, request.owner, ttl)
            if not self._own_claim(request):
                return False
            owner, thread_id, _, _ = self._dedupe[request.dedupe_key][1]
            self._dedupe[request.dedupe_key][1] = (owner, thread_id, now + ttl, _time() + ttl)
            return True

    def cycle_abort(self, request: CycleRequest) -> bool:
        with self._mutex:
            withdrawn = self._own_claim(request)
            if withdrawn:
                del self._dedupe[request.dedupe_key]
            held = self._locks.get(request.thread_id)
            if request.locks and held is not None and held[0] == request.owner:
                del self._locks[request.thread_id]
            return withdrawn

    # -- snapshots and housekeeping ------------------------------------------------------

    def _do_snapshot(self) -> Snapshot:
        with self._mutex:
            return self.store.snapshot()

    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        loaded = MemoryStore.from_snapshot(snapshot, self.lock_ttl)
        with self._mutex:
            self.store.load(loaded, merge)

    def _do_prune(self, request: PruneRequest) -> Pruned:
        now, wall = _monotonic(), _time()
        dry = request.dry_run
        with self._mutex:
            expired_locks = [key for key, held in self._locks.items() if held[3] <= now]
            counts = {"expired_locks": len(expired_locks)}
            counts["dedupe_trimmed"] = self._trim(request.dedupe_limit, request.min_age, now, dry)
            expired: dict[str, list[PendingEntry]] = {}
            if request.pending_ttl is not None:
                cutoff = wall - request.pending_ttl
                for key, queue in self._pending.items():
                    old = [_entry(e) for e in queue if e[4] < cutoff]
                    if old:
                        expired[key] = old
            counts["pending_expired"] = sum(len(v) for v in expired.values())
            stale_states: list[tuple[str, str]] = []
            stale_subs: list[str] = []
            if request.state_older_than is not None:
                cutoff = wall - request.state_older_than
                stale_states, stale_subs = self.store.stale(cutoff)
            counts["states_removed"] = len(stale_states)
            counts["subscriptions_removed"] = len(stale_subs)
            counts["lists_expired"] = self._prune_lists(now, dry)
            if dry:
                return Pruned(counts)
            for key in expired_locks:
                del self._locks[key]
            for key in expired:
                self._expired_all(key, wall - (request.pending_ttl or 0))
            for state_key in stale_states:
                del self._states[state_key]
            for thread_id in stale_subs:
                del self._subscriptions[thread_id]
            return Pruned(counts, expired)

    def _expired_all(self, key: str, cutoff: float) -> None:
        queue = self._pending.get(key, deque())
        kept = deque(e for e in queue if e[4] >= cutoff)
        if kept:
            self._pending[key] = kept
        else:
            self._pending.pop(key, None)


_entry = MemoryStore.entry


def _entries(queue: Any) -> list[PendingEntry]:
    return [_entry(raw) for raw in queue]
