"""What a ``MemoryStateAdapter`` holds, and its conversion to and from a ``Snapshot``.

Each container belongs to one namespace's adapter, and its mutex guards it. The layout:

* ``subscriptions``: thread id → when last touched, in epoch seconds.
* ``dedupe``: key → ``[born, claim]``, oldest first. ``claim`` is None when done. While a
  cycle handles the message, it is ``(owner, thread_id, expires, expires_wall)``.
* ``states``: ``(kind, id)`` → ``(json, touched)``.
* ``locks``: key → ``[owner, strategy, metadata_json, expires, acquired_wall, expires_wall,
  ttl]``.
* ``pending``: key → deque of ``(id, owner, strategy, metadata_json, enqueued,
  enqueued_text)``, oldest first. ``enqueued_text`` may be None.
* ``slots``: key → owner → ``[expires, acquired_wall, expires_wall, ttl, metadata_json]``.
  Slots serve capped ``concurrent``, up to ``max_concurrent`` holders.
* ``taken``: key → entry id → ``(owner, until)``. These are queued entries a slot holder's
  drain was handed.
* ``lists``: key → ``[deque of item json, expires, expires_wall]``. Both expiries may be
  None.
* ``outbox``: id → :class:`OutboxRecord`, in commit order. ``outbox_keys`` maps key → id.
  Ids come from :data:`OUTBOX_IDS`, unique in the process.

``born`` and ``enqueued`` are epoch seconds. ``expires`` and ``until`` are monotonic. Wall
times are epoch seconds, or the exact text a snapshot gave. So a round trip is exact."""

from __future__ import annotations

import itertools
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import (
    STRATEGIES,
    DedupeKey,
    PendingEntry,
    Strategy,
    as_epoch,
    as_iso,
    epoch_to_iso,
)
from chatstate.validation import dump_map, dump_metadata, dump_value

Pending = tuple[str, str, Strategy, str, float, "str | None"]
Claim = tuple[str, str, float, "float | str"]
_loads = json.loads


def _epoch(moment: float | str) -> float:
    """A wall time kept as epoch seconds or as a snapshot's text, as epoch seconds."""
    return moment if isinstance(moment, float) else as_epoch(moment, 0.0)


#: Ids of outbox entries, shared by every memory adapter of the process (a commit's and a
#: snapshot load's alike), so that no id ever names two entries.
OUTBOX_IDS = itertools.count(1)


@dataclass
class OutboxRecord:
    """One outbox entry of a memory adapter; times in epoch seconds, leases monotonic."""

    id: str
    key: str
    thread_id: str
    payload: str
    created: float
    due: float
    attempts: int = 0
    dead: bool = False
    lease_owner: str | None = None
    lease_until: float = 0.0
    #: The exact ``created_at`` / ``due_at`` texts a snapshot gave (``due_at``'s while
    #: ``due`` is still the time it names), so that a round trip is exact.
    created_text: str | None = None
    due_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry in the snapshot's form."""
        due = self.due_text
        if due is None or as_epoch(due, 0.0) != self.due:
            due = epoch_to_iso(self.due)
        return {
            "key": self.key,
            "thread_id": self.thread_id,
            "payload": _loads(self.payload),
            "attempts": self.attempts,
            "dead": self.dead,
            "created_at": self.created_text or epoch_to_iso(self.created),
            "due_at": due,
        }


@dataclass
class MemoryStore:
    """The containers of one memory adapter; the module's docstring gives the layout."""

    ids: Any = field(default_factory=lambda: itertools.count(1))
    subscriptions: dict[str, float] = field(default_factory=dict)
    dedupe: OrderedDict[DedupeKey, list[Any]] = field(default_factory=OrderedDict)
    states: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    locks: dict[str, list[Any]] = field(default_factory=dict)
    pending: dict[str, deque[Pending]] = field(default_factory=dict)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    slots: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    taken: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)
    outbox: dict[str, OutboxRecord] = field(default_factory=dict)
    outbox_keys: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def entry(raw: Pending) -> PendingEntry:
        """A stored pending entry as a :class:`PendingEntry`."""
        entry_id, owner, strategy, meta, enqueued, text = raw
        return PendingEntry(owner, strategy, _loads(meta), as_iso(text or enqueued), entry_id)

    def snapshot(self) -> Snapshot:
        """The whole state as a ``Snapshot``.

        A claim in progress is in ``claims``. A released claim, whose message was refused,
        is left out. So its redelivery is handled after a restore. Lists are those with
        items and not expired. Their expiry is the text a snapshot gave, else the wall time.
        The outbox holds every entry, in commit order."""
        now_mono = time.monotonic()
        order = [key for key, (_, claim) in self.dedupe.items() if claim is None or claim[1]]
        claims = {
            key: {"owner": claim[0], "thread_id": claim[1], "expires_at": as_iso(claim[3])}
            for key, (_, claim) in self.dedupe.items()
            if claim is not None and claim[1]
        }
        states = {kind: {} for kind in ("thread", "channel")}  # type: dict[str, dict[str, Any]]
        for (kind, object_id), (text, _) in self.states.items():
            states[kind][object_id] = _loads(text)
        return Snapshot(
            subscriptions=set(self.subscriptions),
            dedupe=set(order),
            dedupe_order=order,
            thread_state=states["thread"],
            channel_state=states["channel"],
            locks={
                key: {
                    "owner": owner,
                    "strategy": strategy.value,
                    "metadata": _loads(meta),
                    "acquired_at": as_iso(acquired),
                    "expires_at": as_iso(expires_wall),
                }
                for key, (owner, strategy, meta, _, acquired, expires_wall, _) in self.locks.items()
            }
            | {key: self.slots_entry(slots) for key, slots in self.slots.items() if slots},
            pending_locks={
                key: [self.entry(raw).to_dict() for raw in queue]
                for key, queue in self.pending.items()
                if queue
            },
            claims=claims,
            lists={
                key: {
                    "items": [_loads(text) for text in items],
                    "expires_at": None if wall is None else as_iso(wall),
                }
                for key, (items, expires, wall) in self.lists.items()
                if items and (expires is None or expires > now_mono)
            },
            outbox=[record.to_dict() for record in self.outbox.values()],
        )

    @staticmethod
    def slots_entry(slots: dict[str, list[Any]]) -> dict[str, Any]:
        """A key held by slots, in the snapshot's form.

        It is a ``concurrent`` lock entry of its first holder by arrival. Every holder is
        under ``holders``."""
        listed = [
            {
                "owner": owner,
                "metadata": _loads(slot[4]),
                "acquired_at": as_iso(slot[1]),
                "expires_at": as_iso(slot[2]),
            }
            for owner, slot in sorted(slots.items(), key=lambda item: (_epoch(item[1][1]), item[0]))
        ]
        return {**listed[0], "strategy": "concurrent", "holders": listed}

    @staticmethod
    def slot(holder: dict[str, Any], now_mono: float, now_wall: float) -> list[Any]:
        """A snapshot holder as a slot; its times' texts are kept for an exact round trip."""
        expires = as_epoch(holder["expires_at"], now_wall)
        acquired = as_epoch(holder["acquired_at"], now_wall)
        return [
            now_mono + (expires - now_wall),
            holder["acquired_at"],
            holder["expires_at"],
            max(expires - acquired, 0.001),
            dump_metadata(holder.get("metadata")),
        ]

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, lock_ttl: float) -> MemoryStore:
        """A store holding ``snapshot``; built outside the adapter's mutex, since it may be big."""
        now_mono, now_wall = time.monotonic(), time.time()
        store = cls()
        store.load_lists_and_outbox(snapshot.lists, snapshot.outbox, now_mono, now_wall)
        store.subscriptions = dict.fromkeys(snapshot.subscriptions, now_wall)
        store.dedupe = OrderedDict((key, [now_wall, None]) for key in snapshot.dedupe_order)
        for dedupe_key, claim in snapshot.claims.items():
            text = claim["expires_at"]  # kept exactly, as a lock's times are
            expires = now_mono + (as_epoch(text, now_wall) - now_wall)
            store.dedupe[dedupe_key][1] = (claim["owner"], claim["thread_id"], expires, text)
        for kind, maps in (("thread", snapshot.thread_state), ("channel", snapshot.channel_state)):
            for object_id, value in maps.items():
                store.states[(kind, object_id)] = (dump_map(value), now_wall)
        for key, lock in snapshot.locks.items():
            if lock.get("holders"):
                store.slots[key] = {
                    h["owner"]: store.slot(h, now_mono, now_wall) for h in lock["holders"]
                }
                continue
            expires_text = lock.get("expires_at")
            expires = as_epoch(expires_text, now_wall + lock_ttl)
            acquired_text = lock.get("acquired_at")
            store.locks[key] = [
                lock["owner"],
                STRATEGIES[lock["strategy"]],
                dump_metadata(lock.get("metadata")),
                now_mono + (expires - now_wall),
                acquired_text or now_wall,
                expires_text if isinstance(expires_text, str) else expires,
                max(expires - as_epoch(acquired_text, now_wall), 0.001),
            ]
        for key, entries in snapshot.pending_locks.items():
            store.pending[key] = deque(
                (
                    "",
                    e["owner"],
                    STRATEGIES[e["strategy"]],
                    dump_metadata(e.get("metadata")),
                    as_epoch(e.get("enqueued_at"), now_wall),
                    e.get("enqueued_at"),
                )
                for e in entries
            )
        return store

    def stale(self, cutoff: float) -> tuple[list[tuple[str, str]], list[str]]:
        """States and subscriptions not touched since ``cutoff``.

        A subscription counts as touched while its thread's state is, and the other way
        round."""
        states, subscriptions = self.states, self.subscriptions

        def fresh_state(thread_id: str) -> bool:
            stored = states.get(("thread", thread_id))
            return stored is not None and stored[1] >= cutoff

        stale_subs = [t for t, at in subscriptions.items() if at < cutoff and not fresh_state(t)]
        stale_states = [
            (kind, object_id)
            for (kind, object_id), (_, at) in states.items()
            if at < cutoff and not (kind == "thread" and subscriptions.get(object_id, 0) >= cutoff)
        ]
        return stale_states, stale_subs

    def load_lists_and_outbox(
        self,
        lists: dict[str, dict[str, Any]],
        outbox: list[dict[str, Any]],
        now_mono: float,
        now_wall: float,
    ) -> None:
        """Hold a snapshot's ``lists`` and ``outbox`` sections in this store.

        The store is being built from the snapshot at ``now_mono`` and ``now_wall``. Every
        list is kept, an expired or empty one too. A merge then removes the list of its key.
        An expiry and the outbox's times keep their exact text. Outbox entries get new ids
        from :data:`OUTBOX_IDS`, in the snapshot's order."""
        for key, value in lists.items():
            text = value["expires_at"]
            expires = None if text is None else now_mono + (as_epoch(text, 0.0) - now_wall)
            items = deque(dump_value(item, "list item") for item in value["items"])
            self.lists[key] = [items, expires, text]
        for entry in outbox:
            entry_id = str(next(OUTBOX_IDS))
            created, due = entry["created_at"], entry.get("due_at") or entry["created_at"]
            self.outbox[entry_id] = OutboxRecord(
                entry_id,
                entry["key"],
                entry["thread_id"],
                dump_value(entry["payload"], "outbox payload"),
                as_epoch(created, 0.0),
                as_epoch(due, 0.0),
                entry["attempts"],
                entry["dead"],
                created_text=created,
                due_text=due,
            )
            self.outbox_keys[entry["key"]] = entry_id

    def load(self, other: MemoryStore, merge: bool) -> None:
        """Replace what this store holds with ``other``'s, or merge into it.

        Pending entries get ids of this store. A list of ``other`` replaces the list of its
        key. An empty or expired one removes it. An outbox entry is appended unless an entry
        with its key is here."""
        if not merge:
            for container in (
                self.subscriptions,
                self.dedupe,
                self.states,
                self.locks,
                self.pending,
                self.slots,
                self.taken,
                self.lists,
                self.outbox,
                self.outbox_keys,
            ):
                container.clear()
        self.subscriptions.update(other.subscriptions)
        for key, value in other.dedupe.items():
            if key not in self.dedupe:
                self.dedupe[key] = value
        self.states.update(other.states)
        for held in other.locks.keys() | other.slots.keys():  # incoming locks win, whole
            self.locks.pop(held, None)
            self.slots.pop(held, None)
        self.locks.update(other.locks)
        self.slots.update(other.slots)
        for lock_key, queue in other.pending.items():
            numbered = (((str(next(self.ids)),) + raw[1:]) for raw in queue)
            self.pending.setdefault(lock_key, deque()).extend(numbered)
        now = time.monotonic()
        for list_key, found in other.lists.items():
            if found[0] and (found[1] is None or found[1] > now):
                self.lists[list_key] = found
            else:
                self.lists.pop(list_key, None)
        for entry_id, record in other.outbox.items():
            if record.key not in self.outbox_keys:
                self.outbox[entry_id] = record
                self.outbox_keys[record.key] = entry_id
