"""``DatabaseStateAdapter``: chat state in Django's database, shared by every process.

Portable path (any database Django supports): the ORM, with ``select_for_update()`` inside
``transaction.atomic()`` wherever a lock row is read before it is written. On SQLite, where
row locks do not exist, write transactions take the database write lock first (and retry
while it is busy), so a threaded development server never sees "database is locked".

On PostgreSQL the hot operations run as one call each to server-side functions installed by
the migrations (:mod:`chatstate.adapters.pg`): the same rules, one round trip and one commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from types import MethodType
from typing import Any, TypeVar

from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.db.models import Max
from django.utils import timezone

from chatstate import conf
from chatstate.adapters import database_transfer
from chatstate.adapters.base import DedupeKey, StateAdapter, StateFn
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    DedupeWindow,
    Lock,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from chatstate.snapshot import Snapshot
from chatstate.transfer.sections import SnapshotSections
from chatstate.types import (
    STRATEGIES,
    LockResult,
    NotOwner,
    PendingEntry,
    Strategy,
    from_iso,
    to_iso,
)
from chatstate.validation import check_id, dump_map

T = TypeVar("T")

_STATE_MODELS: dict[str, Any] = {"thread": ThreadState, "channel": ChannelState}
_STATE_FIELDS = {"thread": "thread_id", "channel": "channel_id"}
_NOW_SQL = {
    "postgresql": "SELECT statement_timestamp()",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "oracle": "SELECT SYSTIMESTAMP FROM DUAL",
}
_SQLITE_RETRIES = 50


class DatabaseStateAdapter(StateAdapter):
    """Chat state in the models of :mod:`chatstate.models`, for one namespace.

    ``using`` is a database alias; by default the ``DATABASE`` setting, else the router's
    choice for writes. ``fast_sql=False`` keeps PostgreSQL on the portable ORM path.
    """

    name = "database"

    def __init__(
        self, namespace: str | None = None, using: str | None = None, fast_sql: bool = True
    ) -> None:
        super().__init__(namespace)
        using = using or conf.get("DATABASE") or router.db_for_write(Lock)
        if using not in connections:
            raise ValueError(f"using={using!r} is not a database alias in DATABASES")
        self.using: str = check_id(using, "using")
        self.vendor: str = connections[using].vendor
        self._sqlite = self.vendor == "sqlite"
        self.fast_sql = bool(fast_sql) and self.vendor == "postgresql"
        if self.fast_sql:
            from chatstate.adapters import pg

            for name in pg.FAST_METHODS:
                setattr(self, name, MethodType(getattr(pg, name), self))

    def __repr__(self) -> str:
        return f"<DatabaseStateAdapter namespace={self.namespace!r} using={self.using!r}>"

    # -- plumbing ------------------------------------------------------------------------

    def _q(self, model: Any) -> Any:
        return model.objects.using(self.using).filter(namespace=self.namespace)

    def _now(self) -> datetime:
        """The database's clock (the host's for SQLite, which runs in this process)."""
        sql = _NOW_SQL.get(self.vendor)
        if sql is None:
            return timezone.now()
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql)
            value: datetime = cursor.fetchone()[0]
        return value if timezone.is_aware(value) else timezone.make_aware(value, dt_timezone.utc)

    def _write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in one write transaction; on SQLite, take the write lock first."""
        if not self._sqlite:
            with transaction.atomic(using=self.using):
                return fn()
        connection = connections[self.using]
        nested = connection.in_atomic_block
        for attempt in range(_SQLITE_RETRIES):
            try:
                with transaction.atomic(using=self.using):
                    with connection.cursor() as cursor:
                        # A write statement takes SQLite's RESERVED lock (waiting up to the
                        # busy timeout); reading first and upgrading later could deadlock.
                        cursor.execute("UPDATE chatstate_dedupewindow SET head = head WHERE 0")
                    return fn()
            except OperationalError as exc:
                if nested or "locked" not in str(exc) or attempt == _SQLITE_RETRIES - 1:
                    raise
                time.sleep(min(0.2, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    # -- subscriptions -------------------------------------------------------------------

    def _do_is_subscribed(self, thread_id: str) -> bool:
        return bool(self._q(Subscription).filter(thread_id=thread_id).exists())

    def _do_subscribe(self, thread_id: str) -> None:
        row = Subscription(namespace=self.namespace, thread_id=thread_id)
        self._write(
            lambda: Subscription.objects.using(self.using).bulk_create([row], ignore_conflicts=True)
        )

    def _do_unsubscribe(self, thread_id: str) -> None:
        self._write(lambda: self._q(Subscription).filter(thread_id=thread_id).delete())

    # -- state maps ----------------------------------------------------------------------

    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        rows = self._q(_STATE_MODELS[kind]).filter(**{_STATE_FIELDS[kind]: object_id})
        value = rows.values_list("value", flat=True).first()
        return {} if value is None else value

    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        model = _STATE_MODELS[kind]
        field = _STATE_FIELDS[kind]
        row = model(namespace=self.namespace, value=value, **{field: object_id})
        self._write(
            lambda: model.objects.using(self.using).bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["namespace", field],
                update_fields=["value", "updated_at"],
            )
        )

    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        model = _STATE_MODELS[kind]
        lookup = {_STATE_FIELDS[kind]: object_id}

        def update() -> dict[str, Any]:
            rows = self._q(model).select_for_update().filter(**lookup)
            row = rows.first()
            if row is None:
                blank = model(namespace=self.namespace, value={}, **lookup)
                model.objects.using(self.using).bulk_create([blank], ignore_conflicts=True)
                row = rows.first()
            new = fn(dict(row.value))
            dump_map(new, f"{kind} state returned by fn")
            row.value = new
            row.save(update_fields=["value", "updated_at"])
            return _copy(new)

        return self._write(update)

    # -- dedupe --------------------------------------------------------------------------

    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        return bool(self._q(DedupeEntry).filter(adapter=key[0], message_id=key[1]).exists())

    def _window(self) -> DedupeWindow:
        """The namespace's window row, locked until the transaction ends."""
        windows = DedupeWindow.objects.using(self.using).select_for_update()
        window = windows.filter(namespace=self.namespace).first()
        if window is None:
            DedupeWindow.objects.using(self.using).bulk_create(
                [DedupeWindow(namespace=self.namespace, head=0)], ignore_conflicts=True
            )
            window = windows.get(namespace=self.namespace)
        return window

    def _do_claim_dedupe(self, key: DedupeKey, limit: int) -> bool:
        entries = self._q(DedupeEntry).filter(adapter=key[0], message_id=key[1])
        if entries.exists():
            return False

        def claim() -> bool:
            window = self._window()
            if entries.exists():
                return False
            newest = self._q(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
            entry = DedupeEntry.objects.using(self.using).create(
                namespace=self.namespace, adapter=key[0], message_id=key[1], seq=newest + 1
            )
            window.head = self._trim(window.head + 1, limit, keep=entry.pk)
            window.save(update_fields=["head"])
            return True

        return self._write(claim)

    def _trim(self, count: int, limit: int, keep: int | None = None) -> int:
        """Delete the oldest entries until at most ``limit`` remain; the window's new count.

        ``count`` is the window's recorded size; when it proves larger than what is there
        (rows deleted behind the adapter's back), the entries are counted afresh. ``keep``:
        an entry never deleted (the one just claimed). Inside a write transaction that holds
        the window row.
        """
        while count > limit:
            oldest = self._q(DedupeEntry).exclude(pk=keep).order_by("seq", "id")
            ids = list(oldest.values_list("id", flat=True)[: count - limit])
            deleted, _ = DedupeEntry.objects.using(self.using).filter(id__in=ids).delete()
            if not deleted:
                count = self._q(DedupeEntry).count()
                if count <= limit:
                    break
                continue
            count -= deleted
        return count

    def _do_withdraw_dedupe(self, key: DedupeKey) -> None:
        def withdraw() -> None:
            window = self._window()
            deleted, _ = self._q(DedupeEntry).filter(adapter=key[0], message_id=key[1]).delete()
            if deleted:
                window.head -= deleted
                window.save(update_fields=["head"])

        self._write(withdraw)

    # -- locks ---------------------------------------------------------------------------

    def _do_lock(
        self,
        key: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        ttl: float,
        max_pending: int | None,
        overflow: str,
    ) -> LockResult:
        meta = json.loads(metadata)

        def lock() -> LockResult:
            now = self._now()
            held = self._q(Lock).select_for_update().filter(key=key).first()
            if held is None or held.expires_at <= now:
                fields = {
                    "owner": owner,
                    "strategy": strategy.value,
                    "metadata": meta,
                    "acquired_at": now,
                    "expires_at": now + timedelta(seconds=ttl),
                }
                if held is None:
                    with transaction.atomic(using=self.using):
                        Lock.objects.using(self.using).create(
                            namespace=self.namespace, key=key, **fields
                        )
                else:
                    self._q(Lock).filter(pk=held.pk).update(**fields)
                return LockResult.ACQUIRED
            if strategy is Strategy.REJECT:
                return LockResult.BUSY
            pending = self._q(PendingLockEntry).filter(key=key)
            result = LockResult.QUEUED
            if strategy is Strategy.DEBOUNCE:
                pending.delete()
                result = LockResult.DEBOUNCED
            elif max_pending is not None:
                depth = pending.count()
                if depth >= max_pending:
                    if overflow == "drop_newest":
                        return LockResult.DROPPED
                    oldest = pending.order_by("id").values_list("id", flat=True)
                    drop = list(oldest[: depth - max_pending + 1])
                    PendingLockEntry.objects.using(self.using).filter(id__in=drop).delete()
            PendingLockEntry.objects.using(self.using).create(
                namespace=self.namespace,
                key=key,
                owner=owner,
                strategy=strategy.value,
                metadata=meta,
                enqueued_at=now,
            )
            return result

        for _ in range(10):
            try:
                return self._write(lock)
            except IntegrityError:
                # Another process inserted the lock row first: decide again against it.
                continue
        return self._write(lock)

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        def extend() -> bool:
            now = self._now()
            rows = self._q(Lock).filter(key=key, owner=owner, expires_at__gt=now)
            return bool(rows.update(expires_at=now + timedelta(seconds=ttl)))

        return self._write(extend)

    def _release(self, key: str, owner: str | None, keep_pending: bool) -> list[PendingEntry]:
        """Inside a write transaction: remove the lock (``owner`` None: whoever holds it)."""
        held = self._q(Lock).select_for_update().filter(key=key).first()
        if owner is not None and (held is None or held.owner != owner):
            holder = "nobody" if held is None else repr(held.owner)
            raise NotOwner(f"{owner!r} does not hold the lock {key!r} (held by {holder})")
        if held is not None:
            self._q(Lock).filter(pk=held.pk).delete()
        if keep_pending:
            return []
        rows = self._q(PendingLockEntry).filter(key=key).order_by("id")
        entries = [_pending(row) for row in rows]
        if entries:
            rows.delete()
        return entries

    def _do_release_lock(self, key: str, owner: str, keep_pending: bool) -> list[PendingEntry]:
        return self._write(lambda: self._release(key, owner, keep_pending))

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        return self._write(lambda: self._release(key, None, False))

    # -- the message cycle ---------------------------------------------------------------

    def _cycle_commit(
        self,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        state: dict[str, Any] | None,
        state_json: str | None,
    ) -> list[PendingEntry]:
        if strategy is Strategy.CONCURRENT:  # no lock: just the state
            if state is not None and state_json is not None:
                self._do_put_state("thread", thread_id, state, state_json)
            return []

        def commit() -> list[PendingEntry]:
            pending = self._release(thread_id, owner, False)
            if state is not None and state_json is not None:
                self._do_put_state("thread", thread_id, state, state_json)
            return pending

        return self._write(commit)

    def _cycle_abort(
        self, dedupe_key: DedupeKey, thread_id: str, owner: str, strategy: Strategy
    ) -> None:
        def abort() -> None:
            self._do_withdraw_dedupe(dedupe_key)
            if strategy is not Strategy.CONCURRENT:
                try:
                    with transaction.atomic(using=self.using):
                        self._release(thread_id, owner, True)
                except NotOwner:
                    pass

        self._write(abort)

    # -- snapshots and housekeeping ------------------------------------------------------

    def _do_snapshot(self) -> Snapshot:
        with transaction.atomic(using=self.using):
            order = [
                (a, m)
                for a, m in self._q(DedupeEntry)
                .order_by("seq", "id")
                .values_list("adapter", "message_id")
                .iterator(chunk_size=10_000)
            ]
            pending: dict[str, list[dict[str, Any]]] = {}
            for row in self._q(PendingLockEntry).order_by("key", "id").iterator(chunk_size=10_000):
                pending.setdefault(row.key, []).append(_pending(row).to_dict())
            return Snapshot(
                subscriptions=set(self._q(Subscription).values_list("thread_id", flat=True)),
                dedupe=set(order),
                dedupe_order=order,
                thread_state=dict(self._q(ThreadState).values_list("thread_id", "value")),
                channel_state=dict(self._q(ChannelState).values_list("channel_id", "value")),
                locks={
                    lock.key: {
                        "owner": lock.owner,
                        "strategy": lock.strategy,
                        "metadata": lock.metadata,
                        "acquired_at": to_iso(lock.acquired_at),
                        "expires_at": to_iso(lock.expires_at),
                    }
                    for lock in self._q(Lock).iterator(chunk_size=10_000)
                },
                pending_locks=pending,
            )

    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        ns, using = self.namespace, self.using

        def load() -> None:
            now = self._now()
            window = self._window()
            if not merge:
                for model in (
                    Subscription,
                    DedupeEntry,
                    ThreadState,
                    ChannelState,
                    Lock,
                    PendingLockEntry,
                ):
                    self._q(model).delete()
                window.head = 0
            Subscription.objects.using(using).bulk_create(
                [Subscription(namespace=ns, thread_id=t) for t in sorted(snapshot.subscriptions)],
                ignore_conflicts=True,
                batch_size=5000,
            )
            order = snapshot.dedupe_order
            if merge and order:
                present = set(self._q(DedupeEntry).values_list("adapter", "message_id").iterator())
                order = [k for k in order if k not in present]
            newest = self._q(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
            DedupeEntry.objects.using(using).bulk_create(
                [
                    DedupeEntry(namespace=ns, adapter=a, message_id=m, seq=newest + i)
                    for i, (a, m) in enumerate(order, 1)
                ],
                batch_size=5000,
            )
            window.head += len(order)
            window.save(update_fields=["head"])
            for kind, maps in (
                ("thread", snapshot.thread_state),
                ("channel", snapshot.channel_state),
            ):
                model, field = _STATE_MODELS[kind], _STATE_FIELDS[kind]
                model.objects.using(using).bulk_create(
                    [model(namespace=ns, value=v, **{field: i}) for i, v in maps.items()],
                    update_conflicts=True,
                    unique_fields=["namespace", field],
                    update_fields=["value", "updated_at"],
                    batch_size=5000,
                )
            if merge and snapshot.locks:
                self._q(Lock).filter(key__in=list(snapshot.locks)).delete()
            Lock.objects.using(using).bulk_create(
                [
                    Lock(
                        namespace=ns,
                        key=k,
                        owner=lock["owner"],
                        strategy=lock["strategy"],
                        metadata=lock.get("metadata") or {},
                        acquired_at=_when(lock.get("acquired_at"), now),
                        expires_at=_when(
                            lock.get("expires_at"), now + timedelta(seconds=self.lock_ttl)
                        ),
                    )
                    for k, lock in snapshot.locks.items()
                ],
                batch_size=5000,
            )
            PendingLockEntry.objects.using(using).bulk_create(
                [
                    PendingLockEntry(
                        namespace=ns,
                        key=k,
                        owner=e["owner"],
                        strategy=e["strategy"],
                        metadata=e.get("metadata") or {},
                        enqueued_at=_when(e.get("enqueued_at"), now),
                    )
                    for k, entries in sorted(snapshot.pending_locks.items())
                    for e in entries
                ],
                batch_size=5000,
            )

        self._write(load)

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """Streamed by server-side cursors in one read transaction: see database_transfer."""
        return database_transfer.snapshot_sections(self)

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """On PostgreSQL, ``COPY`` in one transaction; see database_transfer."""
        database_transfer.load_sections(self, sections, bool(merge))

    def _do_prune(self, dedupe_limit: int, dry_run: bool) -> dict[str, int]:
        def prune() -> dict[str, int]:
            now = self._now()
            expired = self._q(Lock).filter(expires_at__lte=now)
            window = self._window()
            # Counted afresh: prune also repairs a count that rows deleted behind the
            # adapter's back (raw SQL, a bulk delete) left wrong.
            count = self._q(DedupeEntry).count()
            counts = {
                "expired_locks": expired.count(),
                "dedupe_trimmed": max(0, count - dedupe_limit),
            }
            if not dry_run:
                expired.delete()
                window.head = self._trim(count, dedupe_limit)
                window.save(update_fields=["head"])
            return counts

        return self._write(prune)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def _pending(row: PendingLockEntry) -> PendingEntry:
    return PendingEntry(
        owner=row.owner,
        strategy=STRATEGIES[row.strategy],
        metadata=row.metadata,
        enqueued_at=to_iso(row.enqueued_at),
    )


def _when(text: object, default: datetime) -> datetime:
    return from_iso(text) if isinstance(text, str) else default
