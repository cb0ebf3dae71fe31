"""``DatabaseStateAdapter``: chat state in Django's database, through the ORM.

This is the portable path, for any database Django supports. Each operation is one
transaction. A row read before it is written is locked with ``select_for_update()``. On
SQLite the write lock is taken first; see :mod:`.connection`. Every operation, ``prune``
too, locks rows in one order, so they do not deadlock. First come the dedupe window and
the message's dedupe entry. Then come the thread's lock and state. Last come the rows a
commit stages (:mod:`.effects`): the channel row, the list heads in key order, the
subscription and the outbox rows.

A vendor with a faster path registers a subclass (``PostgresStateAdapter``), which
``DatabaseStateAdapter(...)`` builds on that vendor. ``fast_sql=False`` keeps the ORM path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from django.db import IntegrityError, connections, router

from chatstate import conf
from chatstate.adapters.base import StateAdapter
from chatstate.adapters.database import connection, export, housekeeping, restore
from chatstate.adapters.database.activity import ActivityRows
from chatstate.adapters.database.effects import EffectRows
from chatstate.adapters.database.locks import LockRows
from chatstate.adapters.database.rows import (
    STATE_FIELDS,
    STATE_MODELS,
    pending_entry,
    upsert_options,
)
from chatstate.adapters.database.window import DedupeWindowRows
from chatstate.adapters.hooks import StateFn
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
from chatstate.models import DedupeEntry, Lock, PendingLockEntry, Subscription
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import DedupeKey, LockResult, PendingEntry, Strategy
from chatstate.validation import check_id, dump_map, history_key

T = TypeVar("T")

_ACQUIRED = LockResult.ACQUIRED
_REFUSED = (LockResult.BUSY, LockResult.DROPPED)
_QUEUEING = (Strategy.QUEUE, Strategy.DEBOUNCE)
_RACES = 10  # how often a transaction that lost an insert race is run again


def database_alias(using: str | None) -> str:
    """The adapter's database alias: ``using``, the ``DATABASE`` setting, or the router's.

    The router's choice for writes comes last. An alias not in ``DATABASES`` raises
    ``ValueError``."""
    alias = using or conf.get("DATABASE") or router.db_for_write(Lock)
    if alias not in connections:
        raise ValueError(f"using={alias!r} is not a database alias in DATABASES")
    return str(alias)


class DatabaseStateAdapter(EffectRows, DedupeWindowRows, LockRows, ActivityRows, StateAdapter):
    """Chat state in the models of :mod:`chatstate.models`, for one namespace.

    ``using`` is a database alias. It defaults to the ``DATABASE`` setting, else the
    router's choice for writes. On PostgreSQL the adapter built is the fast path, unless
    ``fast_sql=False``. ``prepared`` belongs to the fast path; see
    :class:`~chatstate.adapters.database.postgres.PostgresStateAdapter`.
    """

    name = "database"
    #: Whether this class runs a vendor's fast path instead of the ORM's.
    fast_sql: ClassVar[bool] = False
    #: The fast-path variants by ``connection.vendor``, filled by ``__init_subclass__``.
    variants: ClassVar[dict[str, type[DatabaseStateAdapter]]] = {}

    def __init_subclass__(cls, vendor: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if vendor is not None:
            DatabaseStateAdapter.variants[vendor] = cls

    def __new__(
        cls,
        namespace: str | None = None,
        using: str | None = None,
        fast_sql: bool = True,
        prepared: bool | None = None,
    ) -> DatabaseStateAdapter:
        if cls is DatabaseStateAdapter and fast_sql:
            cls = cls.variants.get(connections[database_alias(using)].vendor, cls)
        return super().__new__(cls)

    def __init__(
        self,
        namespace: str | None = None,
        using: str | None = None,
        fast_sql: bool = True,
        prepared: bool | None = None,
    ) -> None:
        super().__init__(namespace)
        self.using: str = check_id(database_alias(using), "using")
        self.vendor: str = connections[self.using].vendor

    def __repr__(self) -> str:
        return f"<{type(self).__name__} namespace={self.namespace!r} using={self.using!r}>"

    # -- plumbing ------------------------------------------------------------------------

    def queryset(self, model: Any) -> Any:
        """``model``'s rows of this namespace, on this adapter's database."""
        return model.objects.using(self.using).filter(namespace=self.namespace)

    def _write(self, fn: Callable[[], T]) -> T:
        return connection.write(self.using, fn)

    def _read(self, fn: Callable[[], T]) -> T:
        return connection.read(self.using, fn)

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a write transaction; run it again when it lost an insert race.

        Another process created the row first. The new run decides against that row."""
        for _ in range(_RACES):
            try:
                return self._write(fn)
            except IntegrityError:
                continue
        return self._write(fn)

    def now(self) -> datetime:
        """The database's clock."""
        return connection.now(self.using)

    # -- subscriptions and state maps ----------------------------------------------------

    def _subscribed(self, thread_id: str) -> bool:
        return bool(self.queryset(Subscription).filter(thread_id=thread_id).exists())

    def _do_is_subscribed(self, thread_id: str) -> bool:
        return self._read(lambda: self._subscribed(thread_id))

    def _do_subscribe(self, thread_id: str) -> None:
        self._write(lambda: self.touch_subscription(thread_id, self.now()))

    def _do_unsubscribe(self, thread_id: str) -> None:
        self._write(lambda: self.queryset(Subscription).filter(thread_id=thread_id).delete())

    def _state(self, kind: str, object_id: str) -> dict[str, Any]:
        rows = self.queryset(STATE_MODELS[kind]).filter(**{STATE_FIELDS[kind]: object_id})
        value = rows.values_list("value", flat=True).first()
        return {} if value is None else value

    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        return self._read(lambda: self._state(kind, object_id))

    def put_state_row(self, kind: str, object_id: str, value: dict[str, Any]) -> None:
        """Store ``value`` as the ``kind`` state of ``object_id``; call in a write transaction."""
        model, field = STATE_MODELS[kind], STATE_FIELDS[kind]
        model.objects.using(self.using).bulk_create(
            [model(namespace=self.namespace, value=value, **{field: object_id})],
            update_fields=["value", "updated_at"],
            **upsert_options(self.using, ["namespace", field]),
        )

    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        self._write(lambda: self.put_state_row(kind, object_id, value))

    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        model = STATE_MODELS[kind]
        lookup = {STATE_FIELDS[kind]: object_id}

        def update() -> dict[str, Any]:
            rows = self.queryset(model).select_for_update().filter(**lookup)
            row = rows.first()
            if row is None:
                blank = model(namespace=self.namespace, value={}, **lookup)
                model.objects.using(self.using).bulk_create([blank], ignore_conflicts=True)
                row = rows.first()
            text = dump_map(fn(dict(row.value)), f"{kind} state returned by fn")
            row.value = json.loads(text)
            row.save(update_fields=["value", "updated_at"])
            copy: dict[str, Any] = json.loads(text)
            return copy

        return self._write(update)

    # -- dedupe --------------------------------------------------------------------------

    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        def check() -> bool:
            row = self._entry(key).values_list("owner", "thread_id", "expires_at").first()
            return row is not None and self._holds(row[0], row[1], row[2], self.now())

        return self._read(check)

    def _done(self, key: DedupeKey) -> bool:
        """Whether ``key`` is done; such a duplicate needs no write transaction."""
        return self._read(lambda: bool(self._entry(key).filter(owner__isnull=True).exists()))

    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> bool:
        if self._done(key):
            return False
        return self._retry(lambda: self._claim(key, limit, min_age, None)[0])

    # -- locks ---------------------------------------------------------------------------

    def _do_lock(self, request: LockRequest) -> LockOutcome:
        return self._retry(lambda: self._take(request, self.now()))

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        def extend() -> bool:
            now = self.now()
            rows = self.queryset(Lock).filter(key=key, owner=owner, expires_at__gt=now)
            if rows.update(expires_at=now + timedelta(seconds=ttl), ttl=ttl):
                return True
            return self._extend_slot(key, owner, ttl, now)  # or not its lock at all

        return self._write(extend)

    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Handover:
        def release() -> Handover:
            if not only_if_idle:
                return self._release(key, owner)
            held = self._held(key, owner)
            if held is not None and held.holders is not None:
                return self._release_slot(held, owner, only_if_idle=True)
            handover = self._hand_over(key)
            if handover.entries and held is not None:
                self._renew(held, held.ttl or self.lock_ttl)
            elif held is not None:
                self.queryset(Lock).filter(pk=held.pk).delete()
            return handover

        return self._write(release)

    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Handover:
        def take() -> Handover:
            held = self._held(key, owner)
            if held is not None and held.holders is not None:
                return self._hand_over_slot(held, owner, limit, self.now())
            return self._hand_over(key, limit)

        return self._write(take)

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        def release() -> list[PendingEntry]:
            self.queryset(Lock).filter(key=key).delete()
            return self._remove(
                list(self.queryset(PendingLockEntry).filter(key=key).order_by("id"))
            )

        return self._write(release)

    # -- the message cycle ---------------------------------------------------------------

    def _do_cycle_enter(self, request: CycleRequest) -> CycleEntry:
        key, thread_id = request.dedupe_key, request.thread_id
        if self._done(key):
            return CycleEntry(False, self._read(lambda: self._subscribed(thread_id)))

        def enter() -> CycleEntry:
            claim = (request.owner, thread_id, request.ttl)
            claimed, now = self._claim(key, request.dedupe_limit, request.min_age, claim)
            if not claimed:
                busy = self._entry(key).filter(owner__isnull=False).exists()
                return CycleEntry(False, self._subscribed(thread_id), in_progress=busy)
            outcome = self._take(request.lock_request(), now) if request.holds else None
            result = _ACQUIRED if outcome is None else outcome.result
            held = result is _ACQUIRED
            if held and request.slots:
                if self._slot_behind(thread_id, request.owner, now):
                    result = self._queue_behind(request.lock_request(), outcome, now)  # type: ignore[arg-type]
            elif held and request.strategy in _QUEUEING and self._queued(thread_id).exists():
                result = self._queue_behind(request.lock_request(), outcome, now)  # type: ignore[arg-type]
            if result in _REFUSED:  # released at once, a redelivery is handled
                self._entry(key).update(thread_id=None, expires_at=now)
            elif result is not _ACQUIRED:  # stored behind the lock: done
                self._entry(key).update(owner=None, thread_id=None, expires_at=None)
            entry = CycleEntry(True, self._subscribed(thread_id), result, held=held)
            if outcome is not None:
                entry.dropped, entry.taken_over = outcome.dropped, outcome.taken_over
            if held:
                entry.state = self._state("thread", thread_id)
                if request.history:
                    entry.history = self.list_items(history_key(thread_id), request.history, now)
            return entry

        return self._retry(enter)

    def _settle(self, request: CycleRequest, staged: Staged) -> Lock | None:
        """Write what a cycle staged; return its lock row or slots' row, locked.

        Call it in a write transaction run by ``_retry``. The lease is checked first. With
        ``staged.claim``, the claim must still be in progress and this owner's. Otherwise
        ``LeaseLost`` is raised and nothing is written. Then the state is written, the claim
        marked done, and the other effects written. A lost insert race raises
        ``IntegrityError``."""
        claim = self._entry(request.dedupe_key).select_for_update().values_list("id", "owner")
        found = claim.first()
        held = None
        if request.locks:
            held = self.queryset(Lock).select_for_update().filter(key=request.thread_id).first()
            if held is None or held.owner != request.owner:
                raise lease_lost(request, held.owner if held else None)
        elif request.slots:
            held = self._lock_row(request.thread_id)
            if held is None or held.holders is None or request.owner not in held.holders:
                raise lease_lost(request, None)
        if (staged.claim or not request.holds) and (found is None or found[1] != request.owner):
            raise lease_lost(request, request.owner)
        if staged.state is not None:
            self.put_state_row("thread", request.thread_id, json.loads(staged.state))
        if staged.claim:
            DedupeEntry.objects.using(self.using).filter(pk=found[0]).update(
                owner=None, thread_id=None, expires_at=None
            )
        if staged.effects:
            self.write_effects(request.thread_id, staged)
        return held

    def _do_cycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        def commit() -> Handover:
            held = self._settle(request, staged)
            if held is None:
                return Handover()
            if request.slots:
                return self._release_slot(held, request.owner, only_if_idle=False)
            self.queryset(Lock).filter(pk=held.pk).delete()
            return self._hand_over(request.thread_id)

        return self._retry(commit)

    def _do_cycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover:
        def step() -> Handover:
            held = self._settle(request, staged)
            assert held is not None  # drain is for cycles that hold their thread
            if request.slots:
                return self._drain_slot(held, request.owner, request.ttl, finished)
            pending = self.queryset(PendingLockEntry).filter(key=request.thread_id)
            if finished is not None:
                pending.filter(id=int(finished)).delete()
            handover = self._hand_over(request.thread_id, limit=0)  # expired ones only
            following = pending.order_by("id").first()
            if following is None:
                self.queryset(Lock).filter(pk=held.pk).delete()
                return handover
            self._renew(held, request.ttl)
            handover.entries = [pending_entry(following)]
            return handover

        return self._retry(step)

    def _do_cycle_renew(self, request: CycleRequest) -> bool:
        if request.locks:
            return self._do_extend_lock(request.thread_id, request.owner, request.ttl)

        def renew() -> bool:
            now = self.now()
            mine = self._entry(request.dedupe_key).filter(owner=request.owner)
            renewed = bool(mine.update(expires_at=now + timedelta(seconds=request.ttl)))
            if request.slots:  # the slot and the claim (its row first: the lock order)
                return self._extend_slot(request.thread_id, request.owner, request.ttl, now)
            return renewed

        return self._write(renew)

    def _do_cycle_gather(self, request: CycleRequest) -> Handover:
        return self._write(lambda: self._gather(request))

    def _do_cycle_abort(self, request: CycleRequest) -> bool:
        def abort() -> bool:
            window = self.window()
            claim = self._entry(request.dedupe_key).filter(owner=request.owner)
            seq = claim.values_list("seq", flat=True).first()
            deleted = claim.delete()[0] if seq is not None else 0
            window.withdraw(deleted, seq)
            if request.locks:
                mine = self.queryset(Lock).filter(key=request.thread_id, owner=request.owner)
                mine.delete()
            elif request.slots:
                self._leave_slot(request.thread_id, request.owner)
            return bool(deleted)

        return self._write(abort)

    # -- snapshots and housekeeping ------------------------------------------------------

    def _do_snapshot(self) -> Snapshot:
        return self._read(lambda: export.snapshot(self))

    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        self._write(lambda: restore.load_snapshot(self, snapshot, merge))

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """Streamed by server-side cursors in one read transaction; see :mod:`.export`."""
        return export.snapshot_sections(self)

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """Load in one transaction: by ``COPY`` on PostgreSQL, else the ORM; see :mod:`.restore`."""
        self._write(lambda: restore.load_sections(self, sections, bool(merge)))

    def _do_prune(self, request: PruneRequest) -> Pruned:
        return self._write(lambda: housekeeping.prune(self, request))
