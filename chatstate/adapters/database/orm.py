"""``DatabaseStateAdapter``: chat state in Django's database, through the ORM.

The portable path, for any database Django supports: ``select_for_update()`` inside
``transaction.atomic()`` wherever a row is read before it is written, one transaction per
operation (on SQLite the write lock is taken first: see :mod:`.connection`). Rows are locked
in one order — the namespace's dedupe window, a message's dedupe entry, then its thread's
lock — so that operations do not deadlock.

A database vendor with a faster path registers a subclass with
``class PostgresStateAdapter(DatabaseStateAdapter, vendor="postgresql")``; constructing
``DatabaseStateAdapter`` then builds that subclass on that vendor (``fast_sql=False`` keeps
the ORM path).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Max

from chatstate import conf
from chatstate.adapters.base import StateAdapter, StateFn
from chatstate.adapters.database import connection, export, restore
from chatstate.adapters.database.rows import STATE_FIELDS, STATE_MODELS, pending_entry
from chatstate.models import DedupeEntry, DedupeWindow, Lock, PendingLockEntry, Subscription
from chatstate.snapshot import Snapshot
from chatstate.transfer.sections import SnapshotSections
from chatstate.types import (
    CycleEntry,
    CycleRequest,
    DedupeKey,
    LockRequest,
    LockResult,
    PendingEntry,
    Strategy,
    lease_lost,
    not_owner,
)
from chatstate.validation import check_id, dump_map

T = TypeVar("T")

_ACQUIRED = LockResult.ACQUIRED
_RACES = 10  # how often a transaction that lost an insert race is run again


def database_alias(using: str | None) -> str:
    """The database alias the adapter uses: ``using``, else the ``DATABASE`` setting, else the
    router's choice for writes; ``ValueError`` when it is not in ``DATABASES``."""
    alias = using or conf.get("DATABASE") or router.db_for_write(Lock)
    if alias not in connections:
        raise ValueError(f"using={alias!r} is not a database alias in DATABASES")
    return str(alias)


class DatabaseStateAdapter(StateAdapter):
    """Chat state in the models of :mod:`chatstate.models`, for one namespace.

    ``using`` is a database alias; by default the ``DATABASE`` setting, else the router's
    choice for writes. On a database with a registered fast path (PostgreSQL), the adapter
    built is that variant unless ``fast_sql=False``.
    """

    name = "database"
    #: Whether this class runs a vendor's fast path instead of the ORM's.
    fast_sql: ClassVar[bool] = False
    #: The fast-path variants, by ``connection.vendor`` (filled by ``__init_subclass__``).
    variants: ClassVar[dict[str, type[DatabaseStateAdapter]]] = {}

    def __init_subclass__(cls, vendor: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if vendor is not None:
            DatabaseStateAdapter.variants[vendor] = cls

    def __new__(
        cls, namespace: str | None = None, using: str | None = None, fast_sql: bool = True
    ) -> DatabaseStateAdapter:
        if cls is DatabaseStateAdapter and fast_sql:
            cls = cls.variants.get(connections[database_alias(using)].vendor, cls)
        return super().__new__(cls)

    def __init__(
        self, namespace: str | None = None, using: str | None = None, fast_sql: bool = True
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
        """``fn`` in a write transaction, run again when it lost an insert race (another
        process created the same row first: decided again against that row)."""
        for _ in range(_RACES):
            try:
                return self._write(fn)
            except IntegrityError:
                continue
        return self._write(fn)

    def now(self) -> datetime:
        """The database's clock."""
        return connection.now(self.using)

    def window(self) -> DedupeWindow:
        """The namespace's dedupe window row, locked until the transaction ends."""
        windows = DedupeWindow.objects.using(self.using).select_for_update()
        window = windows.filter(namespace=self.namespace).first()
        if window is None:
            DedupeWindow.objects.using(self.using).bulk_create(
                [DedupeWindow(namespace=self.namespace, head=0)], ignore_conflicts=True
            )
            window = windows.get(namespace=self.namespace)
        return window

    # -- subscriptions -------------------------------------------------------------------

    def _subscribed(self, thread_id: str) -> bool:
        return bool(self.queryset(Subscription).filter(thread_id=thread_id).exists())

    def _do_is_subscribed(self, thread_id: str) -> bool:
        return self._read(lambda: self._subscribed(thread_id))

    def _do_subscribe(self, thread_id: str) -> None:
        row = Subscription(namespace=self.namespace, thread_id=thread_id)
        self._write(
            lambda: Subscription.objects.using(self.using).bulk_create([row], ignore_conflicts=True)
        )

    def _do_unsubscribe(self, thread_id: str) -> None:
        self._write(lambda: self.queryset(Subscription).filter(thread_id=thread_id).delete())

    # -- state maps ----------------------------------------------------------------------

    def _state(self, kind: str, object_id: str) -> dict[str, Any]:
        rows = self.queryset(STATE_MODELS[kind]).filter(**{STATE_FIELDS[kind]: object_id})
        value = rows.values_list("value", flat=True).first()
        return {} if value is None else value

    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        return self._read(lambda: self._state(kind, object_id))

    def put_state_row(self, kind: str, object_id: str, value: dict[str, Any]) -> None:
        """Inside a write transaction: store ``value`` as the ``kind`` state of ``object_id``."""
        model, field = STATE_MODELS[kind], STATE_FIELDS[kind]
        model.objects.using(self.using).bulk_create(
            [model(namespace=self.namespace, value=value, **{field: object_id})],
            update_conflicts=True,
            unique_fields=["namespace", field],
            update_fields=["value", "updated_at"],
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

    def _entry(self, key: DedupeKey) -> Any:
        return self.queryset(DedupeEntry).filter(adapter=key[0], message_id=key[1])

    def _holds(self, owner: str | None, thread_id: str | None, expires: Any) -> bool:
        """Whether a dedupe entry makes its message a duplicate: done, or in progress and
        alive (its own lease runs, or its owner holds its thread's lock unexpired)."""
        if owner is None:
            return True
        now = self.now()
        if expires is not None and expires > now:
            return True
        live = self.queryset(Lock).filter(key=thread_id, owner=owner, expires_at__gt=now)
        return bool(live.exists())

    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        def check() -> bool:
            row = self._entry(key).values_list("owner", "thread_id", "expires_at").first()
            return row is not None and self._holds(*row)

        return self._read(check)

    def _claim(self, key: DedupeKey, limit: int, claim: tuple[str, str, datetime] | None) -> bool:
        """Inside a write transaction: record ``key`` (``claim``: in progress for ``(owner,
        thread, expires)``; None: done) unless a done or live claim holds it. A dead claim
        is taken over in its place; a new key is the newest, the window trimmed to
        ``limit``."""
        window = self.window()
        row = self._entry(key).select_for_update().first()
        owner, thread_id, expires = claim or (None, None, None)
        if row is not None:
            if self._holds(row.owner, row.thread_id, row.expires_at):
                return False
            row.owner, row.thread_id, row.expires_at = owner, thread_id, expires
            row.save(update_fields=["owner", "thread_id", "expires_at"])
            return True
        newest = self.queryset(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
        entry = DedupeEntry.objects.using(self.using).create(
            namespace=self.namespace,
            adapter=key[0],
            message_id=key[1],
            seq=newest + 1,
            owner=owner,
            thread_id=thread_id,
            expires_at=expires,
        )
        window.head = self.trim(window.head + 1, limit, keep=entry.pk)
        window.save(update_fields=["head"])
        return True

    def _do_claim_dedupe(self, key: DedupeKey, limit: int) -> bool:
        if self._read(lambda: self._entry(key).filter(owner__isnull=True).exists()):
            return False  # done: a duplicate, without a write transaction
        return self._retry(lambda: self._claim(key, limit, None))

    def trim(self, count: int, limit: int, keep: int | None = None) -> int:
        """Inside a write transaction holding the window row: delete the oldest entries
        until at most ``limit`` remain; the window's new count.

        ``count`` is the window's recorded size; when it proves larger than what is there
        (rows deleted behind the adapter's back), the entries are counted afresh. ``keep``:
        an entry never deleted (the one just claimed).
        """
        while count > limit:
            oldest = self.queryset(DedupeEntry).exclude(pk=keep).order_by("seq", "id")
            ids = list(oldest.values_list("id", flat=True)[: count - limit])
            deleted, _ = DedupeEntry.objects.using(self.using).filter(id__in=ids).delete()
            if not deleted:
                count = self.queryset(DedupeEntry).count()
                if count <= limit:
                    break
                continue
            count -= deleted
        return count

    # -- locks ---------------------------------------------------------------------------

    def _take(self, request: LockRequest, now: datetime) -> LockResult:
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
            }
            if held is None:
                with transaction.atomic(using=self.using):  # an insert race fails here
                    Lock.objects.using(self.using).create(
                        namespace=self.namespace, key=key, **fields
                    )
            else:
                self.queryset(Lock).filter(pk=held.pk).update(**fields)
            return _ACQUIRED
        if strategy is Strategy.REJECT:
            return LockResult.BUSY
        pending = self.queryset(PendingLockEntry).filter(key=key)
        result = LockResult.QUEUED
        if strategy is Strategy.DEBOUNCE:
            pending.delete()
            result = LockResult.DEBOUNCED
        elif request.max_pending is not None:
            depth = pending.count()
            if depth >= request.max_pending:
                if request.overflow == "drop_newest":
                    return LockResult.DROPPED
                oldest = pending.order_by("id").values_list("id", flat=True)
                drop = list(oldest[: depth - request.max_pending + 1])
                PendingLockEntry.objects.using(self.using).filter(id__in=drop).delete()
        PendingLockEntry.objects.using(self.using).create(
            namespace=self.namespace,
            key=key,
            owner=request.owner,
            strategy=strategy.value,
            metadata=meta,
            enqueued_at=now,
        )
        return result

    def _do_lock(self, request: LockRequest) -> LockResult:
        return self._retry(lambda: self._take(request, self.now()))

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        def extend() -> bool:
            now = self.now()
            rows = self.queryset(Lock).filter(key=key, owner=owner, expires_at__gt=now)
            return bool(rows.update(expires_at=now + timedelta(seconds=ttl)))

        return self._write(extend)

    def _release(self, key: str, owner: str | None) -> list[PendingEntry]:
        """Inside a write transaction: remove the lock (``owner`` None: whoever holds it) and
        its pending list; the entries in arrival order."""
        held = self.queryset(Lock).select_for_update().filter(key=key).first()
        if owner is not None and (held is None or held.owner != owner):
            raise not_owner(key, owner, held and held.owner)
        if held is not None:
            self.queryset(Lock).filter(pk=held.pk).delete()
        rows = self.queryset(PendingLockEntry).filter(key=key).order_by("id")
        entries = [pending_entry(row) for row in rows]
        if entries:
            rows.delete()
        return entries

    def _do_release_lock(self, key: str, owner: str) -> list[PendingEntry]:
        return self._write(lambda: self._release(key, owner))

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        return self._write(lambda: self._release(key, None))

    # -- the message cycle ---------------------------------------------------------------

    def cycle_enter(self, request: CycleRequest) -> CycleEntry:
        key, thread_id = request.dedupe_key, request.thread_id
        if self._read(lambda: self._entry(key).filter(owner__isnull=True).exists()):
            return CycleEntry(False, self._read(lambda: self._subscribed(thread_id)))

        def enter() -> CycleEntry:
            now = self.now()
            claim = (request.owner, thread_id, now + timedelta(seconds=request.ttl))
            if not self._claim(key, request.dedupe_limit, claim):
                busy = self._entry(key).filter(owner__isnull=False).exists()
                return CycleEntry(False, self._subscribed(thread_id), in_progress=busy)
            result = self._take(request.lock_request(), now) if request.locks else _ACQUIRED
            if result is LockResult.BUSY:  # refused: released at once, a redelivery is handled
                self._entry(key).update(thread_id=None, expires_at=now)
            elif result is not _ACQUIRED:  # stored behind the lock: done
                self._entry(key).update(owner=None, thread_id=None, expires_at=None)
            subscribed = self._subscribed(thread_id)  # after the lock: the holder's view
            if result is not _ACQUIRED:
                return CycleEntry(True, subscribed, result)
            return CycleEntry(True, subscribed, result, self._state("thread", thread_id))

        return self._retry(enter)

    def cycle_commit(self, request: CycleRequest, state_json: str | None) -> list[PendingEntry]:
        key, thread_id, owner = request.dedupe_key, request.thread_id, request.owner

        def commit() -> list[PendingEntry]:
            claim = self._entry(key).select_for_update().values_list("id", "owner").first()
            if request.locks:
                held = self.queryset(Lock).select_for_update().filter(key=thread_id).first()
                if held is None or held.owner != owner:
                    raise lease_lost(request, held and held.owner)
            elif claim is not None and claim[1] != owner:
                raise lease_lost(request, claim[1])
            if state_json is not None:
                self.put_state_row("thread", thread_id, json.loads(state_json))
            if claim is not None and claim[1] == owner:
                DedupeEntry.objects.using(self.using).filter(pk=claim[0]).update(
                    owner=None, thread_id=None, expires_at=None
                )
            return self._release(thread_id, owner) if request.locks else []

        return self._write(commit)

    def cycle_abort(self, request: CycleRequest) -> None:
        def abort() -> None:
            window = self.window()
            deleted, _ = self._entry(request.dedupe_key).filter(owner=request.owner).delete()
            if deleted:
                window.head -= deleted
                window.save(update_fields=["head"])
            if request.locks:
                mine = self.queryset(Lock).filter(key=request.thread_id, owner=request.owner)
                mine.delete()

        self._write(abort)

    # -- snapshots and housekeeping ------------------------------------------------------

    def _do_snapshot(self) -> Snapshot:
        return self._read(lambda: export.snapshot(self))

    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        self._write(lambda: restore.load_snapshot(self, snapshot, merge))

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """Streamed by server-side cursors in one read transaction (see :mod:`.export`)."""
        return export.snapshot_sections(self)

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """On PostgreSQL by ``COPY`` in one transaction, else the ORM (see :mod:`.restore`)."""
        self._write(lambda: restore.load_sections(self, sections, bool(merge)))

    def _do_prune(self, dedupe_limit: int, dry_run: bool) -> dict[str, int]:
        def prune() -> dict[str, int]:
            expired = self.queryset(Lock).filter(expires_at__lte=self.now())
            window = self.window()
            # Counted afresh: prune also repairs a count that rows deleted behind the
            # adapter's back (raw SQL, a bulk delete) left wrong.
            count = self.queryset(DedupeEntry).count()
            counts = {
                "expired_locks": expired.count(),
                "dedupe_trimmed": max(0, count - dedupe_limit),
            }
            if not dry_run:
                expired.delete()
                window.head = self.trim(count, dedupe_limit)
                window.save(update_fields=["head"])
            return counts

        return self._write(prune)
