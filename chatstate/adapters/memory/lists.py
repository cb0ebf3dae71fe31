"""Lists, the outbox and a commit's staged effects, in memory; a mixin of ``MemoryStateAdapter``.

Every method runs under the adapter's mutex unless it says so."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from chatstate.adapters.memory.store import OUTBOX_IDS, MemoryStore, OutboxRecord
from chatstate.calls import ListAppend, OutboxClaim, Staged
from chatstate.channelops import apply_ops
from chatstate.types import OutboxEntry, epoch_to_iso
from chatstate.validation import dump_map

_loads = json.loads
_monotonic = time.monotonic
_time = time.time


class MemoryLists:
    """The lists and outbox of one memory adapter."""

    store: MemoryStore
    _mutex: threading.RLock
    _outbox_ids = OUTBOX_IDS

    # -- lists ---------------------------------------------------------------------------

    def _live_list(self, key: str, now: float) -> list[Any] | None:
        found = self.store.lists.get(key)
        if found is not None and found[1] is not None and found[1] <= now:
            del self.store.lists[key]  # expired: gone
            return None
        return found

    def _append(self, append: ListAppend, now: float) -> None:
        found = self._live_list(append.key, now)
        if found is None:
            found = self.store.lists[append.key] = [deque(), None, None]
        items = found[0]
        items.append(append.value)
        if append.max_length is not None:
            while len(items) > append.max_length:
                items.popleft()
        if append.ttl is not None:
            found[1], found[2] = now + append.ttl, _time() + append.ttl

    def _do_append_to_list(self, append: ListAppend) -> None:
        with self._mutex:
            self._append(append, _monotonic())

    def _newest(self, key: str, limit: int | None, now: float) -> list[Any]:
        found = self._live_list(key, now)
        if found is None:
            return []
        items = list(found[0])
        if limit is not None:
            items = items[-limit:]
        return [_loads(text) for text in items]

    def _do_get_list(self, key: str, limit: int | None) -> list[Any]:
        with self._mutex:
            return self._newest(key, limit, _monotonic())

    def _do_delete_list(self, key: str) -> int:
        with self._mutex:
            found = self._live_list(key, _monotonic())
            self.store.lists.pop(key, None)
            return 0 if found is None else len(found[0])

    def _prune_lists(self, now: float, dry_run: bool) -> int:
        """Remove the lists expired at monotonic ``now``; return how many.

        With ``dry_run``, it keeps them."""
        lists = self.store.lists
        expired = [key for key, found in lists.items() if found[1] is not None and found[1] <= now]
        if not dry_run:
            for key in expired:
                del lists[key]
        return len(expired)

    # -- a commit's effects --------------------------------------------------------------

    def _write_effects(self, thread_id: str, staged: Staged) -> None:
        """Apply what ``staged`` holds besides the state and the claim."""
        now, wall = _monotonic(), _time()
        store = self.store
        if staged.channel:
            key = ("channel", staged.channel_id or "")
            stored = store.states.get(key)
            value = {} if stored is None else _loads(stored[0])
            apply_ops(value, staged.channel)
            store.states[key] = (dump_map(value, "channel state"), wall)
        if staged.subscribe is True:
            store.subscriptions[thread_id] = wall
        elif staged.subscribe is False:
            store.subscriptions.pop(thread_id, None)
        for append in staged.lists:
            self._append(append, now)
        for send in staged.sends:
            if send.key in store.outbox_keys:
                continue
            entry_id = str(next(self._outbox_ids))
            store.outbox[entry_id] = OutboxRecord(
                entry_id, send.key, send.thread_id, send.payload, wall, wall
            )
            store.outbox_keys[send.key] = entry_id

    # -- the outbox ----------------------------------------------------------------------

    @staticmethod
    def _entry(record: OutboxRecord) -> OutboxEntry:
        return OutboxEntry(
            record.id,
            record.key,
            record.thread_id,
            _loads(record.payload),
            record.attempts,
            record.dead,
            epoch_to_iso(record.created),
            epoch_to_iso(record.due),
        )

    def _do_outbox(self, thread_id: str | None) -> list[OutboxEntry]:
        with self._mutex:
            return [
                self._entry(r)
                for r in self.store.outbox.values()
                if thread_id is None or r.thread_id == thread_id
            ]

    def _do_outbox_claim(self, claim: OutboxClaim) -> list[OutboxEntry]:
        now, wall = _monotonic(), _time()
        with self._mutex:
            records = list(self.store.outbox.values())
            leased = {r.thread_id for r in records if r.lease_owner and r.lease_until > now}
            blocked: set[str] = set()
            taken: list[OutboxRecord] = []
            for record in records:
                if len(taken) >= claim.limit:
                    break
                thread = record.thread_id
                if record.dead or thread in leased or thread in blocked:
                    continue
                if record.due > wall:
                    blocked.add(thread)  # it waits for its retry: the later ones wait too
                    continue
                record.lease_owner, record.lease_until = claim.owner, now + claim.lease
                taken.append(record)
            return [self._entry(r) for r in taken]

    def _do_outbox_delivered(self, owner: str, entry_id: str) -> None:
        with self._mutex:
            record = self.store.outbox.pop(entry_id, None)
            if record is not None:
                self.store.outbox_keys.pop(record.key, None)

    def _do_outbox_failed(self, owner: str, entry_id: str, delay: float, max_attempts: int) -> bool:
        with self._mutex:
            record = self.store.outbox.get(entry_id)
            if record is None or record.lease_owner != owner:
                return False
            record.attempts += 1
            record.dead = record.attempts >= max_attempts
            record.due = _time() + delay
            record.lease_owner, record.lease_until = None, 0.0
            return record.dead

    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> None:
        with self._mutex:
            for entry_id in entry_ids:
                record = self.store.outbox.get(entry_id)
                if record is not None and record.lease_owner == owner:
                    record.lease_owner, record.lease_until = None, 0.0

    def _do_outbox_requeue(self, entry_ids: list[str]) -> int:
        with self._mutex:
            count = 0
            for entry_id in entry_ids:
                record = self.store.outbox.get(entry_id)
                if record is not None and record.dead:
                    record.dead, record.attempts, record.due = False, 0, _time()
                    count += 1
            return count

    def _do_outbox_discard(self, entry_ids: list[str]) -> int:
        with self._mutex:
            count = 0
            for entry_id in entry_ids:
                record = self.store.outbox.pop(entry_id, None)
                if record is not None:
                    self.store.outbox_keys.pop(record.key, None)
                    count += 1
            return count
