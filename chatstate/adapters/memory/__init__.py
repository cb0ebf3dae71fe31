"""``MemoryStateAdapter``: state in this process's memory, for tests and development.

It is thread-safe, so a threaded development server may share one. Each adapter has one
re-entrant mutex. It is not shared between processes. Maps and metadata are kept as JSON
text. So a caller always gets back a fresh copy, and what it passed in cannot be mutated
later. Leases use the monotonic clock. Ages of pending entries, dedupe keys and touches use
the wall clock."""

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
from chatstate.adapters.memory.cycle import MemoryCycle
from chatstate.adapters.memory.lists import MemoryLists
from chatstate.adapters.memory.store import Claim, MemoryStore
from chatstate.calls import Pruned, PruneRequest
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import DedupeKey, PendingEntry
from chatstate.validation import dump_map

_loads = json.loads
_monotonic = time.monotonic
_time = time.time


class MemoryStateAdapter(MemoryCycle, MemoryActivity, MemoryLists, StateAdapter):
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
        """Whether ``claim`` is in progress with its lease run out.

        Both its own lease and its owner's lock or slot on its thread must have run out."""
        if claim is None or claim[2] > now:
            return False
        held = self._locks.get(claim[1])
        if held is not None and held[0] == claim[0] and held[3] > now:
            return False
        slot = self.store.slots.get(claim[1], {}).get(claim[0])
        return slot is None or slot[0] <= now

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
        """Under the mutex, record ``key`` unless a done or live claim holds it.

        ``claim`` is the claim in progress, or None for done. A dead claim is taken over in
        its place."""
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
        """Drop the keys older than the newest ``limit``.

        It never drops one younger than ``min_age``, nor a claim in progress and alive."""
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
            expired_slots = [
                (key, owner)
                for key, slots in self.store.slots.items()
                for owner, slot in slots.items()
                if slot[0] <= now
            ]
            counts = {"expired_locks": len(expired_locks) + len(expired_slots)}
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
            for key, owner in expired_slots:
                self._free_slot(key, owner)
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
