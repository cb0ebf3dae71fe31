"""``MemoryStateAdapter``: state in this process's memory, for tests and development.

Thread-safe (one re-entrant mutex per adapter, so a threaded development server may share
one), not shared between processes. Maps and metadata are kept as JSON text, so what a
caller gets back is always a fresh copy and what it passed in cannot be mutated later.
Leases use the monotonic clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from chatstate.adapters.base import StateAdapter, StateFn
from chatstate.snapshot import Snapshot
from chatstate.types import (
    STRATEGIES,
    CycleEntry,
    CycleRequest,
    DedupeKey,
    LockRequest,
    LockResult,
    PendingEntry,
    Strategy,
    epoch_to_iso,
    from_iso,
    lease_lost,
    not_owner,
)
from chatstate.validation import dump_map, dump_metadata

_loads = json.loads
_monotonic = time.monotonic
_time = time.time
_ACQUIRED = LockResult.ACQUIRED
_BUSY = LockResult.BUSY
_QUEUED = LockResult.QUEUED
_REJECT = Strategy.REJECT
_DEBOUNCE = Strategy.DEBOUNCE

# A held lock: [owner, strategy, metadata_json, expires (monotonic), acquired, expires_wall].
# A pending entry: (owner, strategy, metadata_json, enqueued).
# A dedupe key maps to None (done) or, while a cycle handles it, its claim:
# (owner, thread_id, expires (monotonic), expires_wall).
# Wall times are epoch seconds, or the exact text a snapshot gave (so a round trip is exact);
# ``expires_wall`` is recorded with the lease, so two snapshots of an unchanged store agree.
_Pending = tuple[str, Strategy, str, float]
_Claim = tuple[str, str, float, "float | str"]


class MemoryStateAdapter(StateAdapter):
    """Chat state held in this process; each instance has its own."""

    name = "memory"

    def __init__(self, namespace: str | None = None) -> None:
        super().__init__(namespace)
        self._mutex = threading.RLock()
        self._subscriptions: set[str] = set()
        self._dedupe: OrderedDict[DedupeKey, _Claim | None] = OrderedDict()
        self._states: dict[tuple[str, str], str] = {}
        self._locks: dict[str, list[Any]] = {}
        self._pending: dict[str, deque[_Pending]] = {}

    async def _arun(self, fn: Any, *args: Any) -> Any:
        # Every hook is a few dict operations under a mutex: no thread hop needed.
        return fn(*args)

    # -- subscriptions -------------------------------------------------------------------

    def _do_is_subscribed(self, thread_id: str) -> bool:
        return thread_id in self._subscriptions

    def _do_subscribe(self, thread_id: str) -> None:
        with self._mutex:
            self._subscriptions.add(thread_id)

    def _do_unsubscribe(self, thread_id: str) -> None:
        with self._mutex:
            self._subscriptions.discard(thread_id)

    # -- state maps ----------------------------------------------------------------------

    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        text = self._states.get((kind, object_id))
        return {} if text is None else _loads(text)

    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        with self._mutex:
            self._states[(kind, object_id)] = value_json

    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        with self._mutex:
            new = fn(self._do_get_state(kind, object_id))
            text = dump_map(new, f"{kind} state returned by fn")
            self._states[(kind, object_id)] = text
            return _loads(text)

    # -- dedupe --------------------------------------------------------------------------

    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        with self._mutex:
            return key in self._dedupe and not self._dead(self._dedupe[key], _monotonic())

    def _do_claim_dedupe(self, key: DedupeKey, limit: int) -> bool:
        with self._mutex:
            return self._claim(key, limit, None, _monotonic())

    def _dead(self, claim: _Claim | None, now: float) -> bool:
        """Whether ``claim`` is in progress with its lease run out (its lock included)."""
        if claim is None or claim[2] > now:
            return False
        held = self._locks.get(claim[1])
        return held is None or held[0] != claim[0] or held[3] <= now

    def _claim(self, key: DedupeKey, limit: int, claim: _Claim | None, now: float) -> bool:
        """Under the mutex: record ``key`` (``claim``: in progress, None: done) unless a
        done or live claim holds it; a dead claim is taken over in its place."""
        dedupe = self._dedupe
        if key in dedupe:
            if not self._dead(dedupe[key], now):
                return False
            dedupe[key] = claim
            return True
        dedupe[key] = claim
        while len(dedupe) > limit:
            dedupe.popitem(last=False)
        return True

    # -- locks ---------------------------------------------------------------------------

    def _do_lock(self, request: LockRequest) -> LockResult:
        with self._mutex:
            return self._take(request, _monotonic())

    def _take(self, request: LockRequest, now: float) -> LockResult:
        key, owner, strategy = request.key, request.owner, request.strategy
        held = self._locks.get(key)
        if held is None or held[3] <= now:
            wall = _time()
            ttl = request.ttl
            self._locks[key] = [owner, strategy, request.metadata, now + ttl, wall, wall + ttl]
            return _ACQUIRED
        if strategy is _REJECT:
            return _BUSY
        entry = (owner, strategy, request.metadata, _time())
        if strategy is _DEBOUNCE:
            self._pending[key] = deque((entry,))
            return LockResult.DEBOUNCED
        queue = self._pending.get(key)
        if queue is None:
            queue = self._pending[key] = deque()
        max_pending = request.max_pending
        if max_pending is not None and len(queue) >= max_pending:
            if request.overflow == "drop_newest":
                return LockResult.DROPPED
            while len(queue) >= max_pending:
                queue.popleft()
        queue.append(entry)
        return _QUEUED

    # -- the message cycle ---------------------------------------------------------------

    def cycle_enter(self, request: CycleRequest) -> CycleEntry:
        thread_id = request.thread_id
        now = _monotonic()
        with self._mutex:
            claim = (request.owner, thread_id, now + request.ttl, _time() + request.ttl)
            if not self._claim(request.dedupe_key, request.dedupe_limit, claim, now):
                held = self._dedupe.get(request.dedupe_key)
                subscribed = thread_id in self._subscriptions
                return CycleEntry(False, subscribed, in_progress=held is not None)
            result = self._take(request.lock_request(), now) if request.locks else _ACQUIRED
            subscribed = thread_id in self._subscriptions
            if result is _BUSY:  # refused: released at once, a redelivery is handled
                self._dedupe[request.dedupe_key] = (request.owner, "", now, _time())
            elif result is not _ACQUIRED:
                self._dedupe[request.dedupe_key] = None  # stored behind the lock: done
            if result is not _ACQUIRED:
                return CycleEntry(True, subscribed, result)
            return CycleEntry(True, subscribed, result, self._do_get_state("thread", thread_id))

    def _own_claim(self, request: CycleRequest) -> bool:
        claim = self._dedupe.get(request.dedupe_key)
        return claim is not None and claim[0] == request.owner

    def cycle_commit(self, request: CycleRequest, state_json: str | None) -> list[PendingEntry]:
        thread_id, owner, key = request.thread_id, request.owner, request.dedupe_key
        with self._mutex:
            if request.locks:
                held = self._locks.get(thread_id)
                if held is None or held[0] != owner:
                    raise lease_lost(request, held[0] if held else None)
            elif key in self._dedupe and not self._own_claim(request):
                raise lease_lost(request, None)
            if state_json is not None:
                self._states[("thread", thread_id)] = state_json
            if self._own_claim(request):
                self._dedupe[key] = None
            if not request.locks:
                return []
            del self._locks[thread_id]
            return _entries(self._pending.pop(thread_id, ()))

    def cycle_abort(self, request: CycleRequest) -> None:
        with self._mutex:
            if self._own_claim(request):
                del self._dedupe[request.dedupe_key]
            held = self._locks.get(request.thread_id)
            if request.locks and held is not None and held[0] == request.owner:
                del self._locks[request.thread_id]

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        now = _monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held is None or held[0] != owner or held[3] <= now:
                return False
            held[3] = now + ttl
            held[5] = _time() + ttl
            return True

    def _do_release_lock(self, key: str, owner: str) -> list[PendingEntry]:
        with self._mutex:
            held = self._locks.get(key)
            if held is None or held[0] != owner:
                raise not_owner(key, owner, held[0] if held else None)
            del self._locks[key]
            return _entries(self._pending.pop(key, ()))

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        with self._mutex:
            self._locks.pop(key, None)
            return _entries(self._pending.pop(key, ()))

    # -- snapshots and housekeeping ------------------------------------------------------

    def _do_snapshot(self) -> Snapshot:
        with self._mutex:
            order = list(self._dedupe)
            return Snapshot(
                subscriptions=set(self._subscriptions),
                dedupe=set(order),
                dedupe_order=order,
                thread_state={i: _loads(t) for (k, i), t in self._states.items() if k == "thread"},
                channel_state={
                    i: _loads(t) for (k, i), t in self._states.items() if k == "channel"
                },
                locks={
                    key: {
                        "owner": owner,
                        "strategy": strategy.value,
                        "metadata": _loads(meta),
                        "acquired_at": _iso(acquired),
                        "expires_at": _iso(expires_wall),
                    }
                    for key, (owner, strategy, meta, _, acquired, expires_wall) in (
                        self._locks.items()
                    )
                },
                pending_locks={
                    key: [e.to_dict() for e in _entries(queue)]
                    for key, queue in self._pending.items()
                    if queue
                },
            )

    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        now_mono, now_wall = _monotonic(), _time()
        locks: dict[str, list[Any]] = {}
        for key, lock in snapshot.locks.items():
            expires_text = lock.get("expires_at")
            expires = _epoch(expires_text, now_wall + self.lock_ttl)
            locks[key] = [
                lock["owner"],
                STRATEGIES[lock["strategy"]],
                dump_metadata(lock.get("metadata")),
                now_mono + (expires - now_wall),
                lock.get("acquired_at") or now_wall,
                expires_text if isinstance(expires_text, str) else expires,
            ]
        pending = {
            key: deque(
                (
                    e["owner"],
                    STRATEGIES[e["strategy"]],
                    dump_metadata(e.get("metadata")),
                    e.get("enqueued_at") or now_wall,
                )
                for e in entries
            )
            for key, entries in snapshot.pending_locks.items()
        }
        states = {("thread", i): dump_map(v) for i, v in snapshot.thread_state.items()}
        states.update({("channel", i): dump_map(v) for i, v in snapshot.channel_state.items()})
        with self._mutex:
            if not merge:
                self._subscriptions.clear()
                self._dedupe.clear()
                self._states.clear()
                self._locks.clear()
                self._pending.clear()
            self._subscriptions.update(snapshot.subscriptions)
            for dedupe_key in snapshot.dedupe_order:
                self._dedupe[dedupe_key] = None
            self._states.update(states)
            self._locks.update(locks)
            for key, queue in pending.items():
                self._pending.setdefault(key, deque()).extend(queue)

    def _do_prune(self, dedupe_limit: int, dry_run: bool) -> dict[str, int]:
        now = _monotonic()
        with self._mutex:
            expired = [key for key, held in self._locks.items() if held[3] <= now]
            trimmed = max(0, len(self._dedupe) - dedupe_limit)
            if not dry_run:
                for key in expired:
                    del self._locks[key]
                for _ in range(trimmed):
                    self._dedupe.popitem(last=False)
        return {"expired_locks": len(expired), "dedupe_trimmed": trimmed}


def _entries(queue: Any) -> list[PendingEntry]:
    return [
        PendingEntry(owner, strategy, _loads(meta), _iso(enqueued))
        for owner, strategy, meta, enqueued in queue
    ]


def _iso(value: float | str) -> str:
    return value if isinstance(value, str) else epoch_to_iso(value)


def _epoch(text: object, default: float) -> float:
    return from_iso(text).timestamp() if isinstance(text, str) else default
