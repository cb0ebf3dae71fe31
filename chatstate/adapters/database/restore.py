"""Snapshots into the database, whole or streamed section by section.

:func:`load_snapshot` loads a ``Snapshot`` through the ORM. :func:`load_sections` is the
streamed restore of the ``chatstate_restore`` command. On PostgreSQL it streams rows with
psycopg's ``COPY … FROM STDIN``. A merge goes through temporary tables and
``INSERT … ON CONFLICT``. Elsewhere it uses the ORM's bulk inserts, a batch at a time.
Lists and the outbox are in :mod:`.restore_lists`.

Both run inside the caller's write transaction and keep the adapter's invariants. Dedupe
entries carry ``seq`` 1…n in ``dedupe_order`` order. The namespace's ``DedupeWindow.head``
counts them. A merge appends the new keys after the newest position. Lock and pending
timestamps round-trip exactly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Max

from chatstate.adapters.database import restore_lists
from chatstate.adapters.database.rows import (
    LOCK_FIELDS,
    STATE_FIELDS,
    STATE_MODELS,
    NamespaceRows,
    lock_columns,
    lock_row,
    upsert_options,
)
from chatstate.adapters.database.vendors import vendor_of
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    Lock,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from chatstate.snapshots.sections import Claim, SnapshotSections
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import as_datetime

_CHUNK = 10_000
_COPY_BYTES = 8 << 20  # a COPY block's rough size, in characters
_BATCH = 5000
_MODELS = (Subscription, DedupeEntry, ThreadState, ChannelState, Lock, PendingLockEntry)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_T = TypeVar("_T")
_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode


def _copy_text(value: Any) -> str:
    """``value`` as a field of PostgreSQL's ``COPY`` text format; ``None`` is NULL."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _dedupe_line(prefix: str, row: tuple[Any, ...]) -> str:
    """A dedupe row ``(adapter, message_id, seq, created_at text)`` as a COPY line."""
    adapter, message_id, seq, stamp = row
    return (
        f"{prefix}{adapter.translate(_COPY_ESCAPES)}\t"
        f"{message_id.translate(_COPY_ESCAPES)}\t{seq}\t{stamp}\n"
    )


def load_sections(adapter: NamespaceRows, sections: SnapshotSections, merge: bool) -> None:
    """Replace the namespace's state with ``sections``, or merge them into it.

    Call it in a write transaction. One batch of rows is held in memory at a time.
    PostgreSQL streams by ``COPY``; other databases use the ORM's bulk inserts. Lists and
    the outbox are loaded by :mod:`.restore_lists`."""
    if vendor_of(connections[adapter.using]).copies:
        copier = _Copier(adapter, merge)
        copier.load(sections)
        restore_lists.load_by_copy(adapter, copier, sections.lists, sections.outbox, merge)
    else:
        _load_by_orm(adapter, sections, merge)
        restore_lists.load_by_orm(adapter, sections.lists, sections.outbox, merge)


def load_snapshot(adapter: NamespaceRows, snapshot: Snapshot, merge: bool) -> None:
    """Replace the namespace's state, or merge into it, by the ORM; in a write transaction."""
    sections = SnapshotSections.from_snapshot(snapshot)
    _load_by_orm(adapter, sections, merge)
    restore_lists.load_by_orm(adapter, sections.lists, sections.outbox, merge)


def _load_by_orm(adapter: NamespaceRows, sections: SnapshotSections, merge: bool) -> None:
    ns, using, q = adapter.namespace, adapter.using, adapter.queryset
    now = adapter.now()
    window = adapter.window()
    if not merge:
        for model in _MODELS:
            q(model).delete()
        window.head, window.gap = 0, None
    for threads in _batches(sections.subscriptions, using):
        Subscription.objects.using(using).bulk_create(
            [Subscription(namespace=ns, thread_id=t) for t in threads], ignore_conflicts=True
        )
    # When merging, a key already present keeps its place. The window holds few keys.
    present = set(q(DedupeEntry).values_list("adapter", "message_id").iterator()) if merge else ()
    newest = q(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
    seq = newest
    for keys in _batches((k for k in sections.dedupe_order if k not in present), using):
        DedupeEntry.objects.using(using).bulk_create(
            [
                DedupeEntry(namespace=ns, adapter=a, message_id=m, seq=seq + i)
                for i, (a, m) in enumerate(keys, 1)
            ]
        )
        seq += len(keys)
    window.head += seq - newest
    window.save(update_fields=["head", "gap"])
    _claim(adapter, sections.claims, newest, now)
    for kind, entries in (("thread", sections.thread_state), ("channel", sections.channel_state)):
        model, field = STATE_MODELS[kind], STATE_FIELDS[kind]
        for batch in _batches(entries, using):
            model.objects.using(using).bulk_create(
                [model(namespace=ns, value=v, **{field: i}) for i, v in batch],
                update_fields=["value", "updated_at"],
                **upsert_options(using, ["namespace", field]),
            )
    default_expiry = now + timedelta(seconds=adapter.lock_ttl)
    for locks in _batches(sections.locks, using):
        if merge:  # incoming locks win
            q(Lock).filter(key__in=[k for k, _ in locks]).delete()
        Lock.objects.using(using).bulk_create(
            [
                Lock(
                    namespace=ns,
                    key=k,
                    **dict(zip(LOCK_FIELDS, lock_row(lock, now, default_expiry), strict=True)),
                )
                for k, lock in locks
            ]
        )
    pending = ((k, e) for k, entries in sections.pending_locks for e in entries)
    for batch in _batches(pending, using):  # appended in arrival order (ids ascend)
        PendingLockEntry.objects.using(using).bulk_create(
            [
                PendingLockEntry(
                    namespace=ns,
                    key=k,
                    owner=e["owner"],
                    strategy=e["strategy"],
                    metadata=e.get("metadata") or {},
                    enqueued_at=as_datetime(e.get("enqueued_at"), now),
                )
                for k, e in batch
            ]
        )


def _batches(items: Iterable[_T], using: str, size: int = _BATCH) -> Iterator[list[_T]]:
    """``items`` in lists of at most ``size``, in order.

    With ``DEBUG`` on, the connection's query log is emptied between batches. Otherwise it
    would keep every batch's SQL text, up to megabytes each."""
    connection = connections[using]
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
        if connection.queries_logged:
            connection.queries_log.clear()


def _claim(adapter: NamespaceRows, claims: Iterable[Claim], after: int, now: datetime) -> None:
    """Mark the claims in progress on the dedupe entries just loaded.

    Those are the entries past position ``after``. When merging, an entry already present
    keeps what it is. Each claim is one statement. Claims are the messages being handled
    when the snapshot was taken, so they are few."""
    loaded = adapter.queryset(DedupeEntry).filter(seq__gt=after)
    for (a, m), claim in claims:
        loaded.filter(adapter=a, message_id=m).update(
            owner=claim["owner"],
            thread_id=claim["thread_id"],
            expires_at=as_datetime(claim["expires_at"], now),
        )


class _Copier:
    """One restore on PostgreSQL, inside the caller's transaction."""

    def __init__(self, adapter: NamespaceRows, merge: bool) -> None:
        self.adapter = adapter
        self.merge = merge
        self.ns = adapter.namespace
        self.connection = connections[adapter.using]
        self.quote = self.connection.ops.quote_name

    def load(self, sections: SnapshotSections) -> None:
        adapter, ns = self.adapter, self.ns
        now = adapter.now()
        stamp = now.isoformat()  # formatted once: the same value on a million rows
        window = adapter.window()  # locks the window row: claims wait for the restore
        if not self.merge:
            for model in _MODELS:
                self.execute(f"DELETE FROM {self.table(model)} WHERE namespace = %s", [ns])
            window.head, window.gap = 0, None
        self.upsert(
            Subscription,
            ("thread_id", "created_at"),
            ((t, stamp) for t in sections.subscriptions),
            ("thread_id",),
            None,
        )
        newest = 0
        if self.merge:
            newest = adapter.queryset(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
        window.head += self.dedupe(sections.dedupe_order, newest, stamp)
        window.save(update_fields=["head", "gap"])
        _claim(adapter, sections.claims, newest, now)
        for model, field, entries in (
            (ThreadState, "thread_id", sections.thread_state),
            (ChannelState, "channel_id", sections.channel_state),
        ):
            self.upsert(
                model,
                (field, "value", "updated_at"),
                ((i, _dumps(v), stamp) for i, v in entries),
                (field,),
                ("value", "updated_at"),
            )
        default_expiry = now + timedelta(seconds=adapter.lock_ttl)
        lock_rows = (
            (k, *lock_columns(lock_row(lock, now, default_expiry))) for k, lock in sections.locks
        )
        lock_fields = ("key", *LOCK_FIELDS)
        if self.merge:  # incoming locks win: drop the namespace's locks on the same keys
            stage = self.stage(Lock, lock_fields, lock_rows)
            self.execute(
                f"DELETE FROM {self.table(Lock)} AS t USING {stage} AS s "
                f"WHERE t.namespace = %s AND t.{self.column(Lock, 'key')} = s.key",
                [ns],
            )
            self.execute(self.insert_from(Lock, lock_fields, stage), [ns])
        else:
            self.copy(Lock, lock_fields, lock_rows)
        self.copy(  # pending entries are appended, in arrival order (ids ascend)
            PendingLockEntry,
            ("key", "owner", "strategy", "metadata", "enqueued_at"),
            (
                (
                    k,
                    e["owner"],
                    e["strategy"],
                    _dumps(e.get("metadata") or {}),
                    as_datetime(e.get("enqueued_at"), now),
                )
                for k, entries in sections.pending_locks
                for e in entries
            ),
        )

    # -- sections --------------------------------------------------------------------

    def dedupe(self, order: Iterable[tuple[str, str]], head: int, stamp: str) -> int:
        """Add the keys of ``order`` not present, after position ``head``; return their count."""
        fields = ("adapter", "message_id", "seq", "created_at")
        rows = ((a, m, head + i, stamp) for i, (a, m) in enumerate(order, 1))
        if not self.merge:
            return self.copy(DedupeEntry, fields, rows, _dedupe_line)
        stage = self.stage(DedupeEntry, fields, rows)
        table, seq = self.table(DedupeEntry), self.column(DedupeEntry, "seq")
        a, m = self.column(DedupeEntry, "adapter"), self.column(DedupeEntry, "message_id")
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (namespace, {a}, {m}, {seq}, created_at) "
                f"SELECT %s, s.adapter, s.message_id, %s + row_number() OVER (ORDER BY s.seq), "
                f"s.created_at FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM {table} AS t "
                f"WHERE t.namespace = %s AND t.{a} = s.adapter AND t.{m} = s.message_id)",
                [self.ns, head, self.ns],
            )
            return int(cursor.rowcount)

    def upsert(
        self,
        model: Any,
        fields: tuple[str, ...],
        rows: Iterable[tuple[Any, ...]],
        unique: tuple[str, ...],
        update: tuple[str, ...] | None,
    ) -> None:
        """Copy ``rows`` into ``model``'s table.

        When merging, a row whose ``unique`` fields exist already updates ``update``. With
        ``update`` None, such a row is left alone."""
        if not self.merge:
            self.copy(model, fields, rows)
            return
        stage = self.stage(model, fields, rows)
        target = ", ".join(["namespace", *(self.column(model, f) for f in unique)])
        if update is None:
            action = "DO NOTHING"
        else:
            sets = ", ".join(
                f"{self.column(model, f)} = EXCLUDED.{self.column(model, f)}" for f in update
            )
            action = f"DO UPDATE SET {sets}"
        self.execute(
            f"{self.insert_from(model, fields, stage)} ON CONFLICT ({target}) {action}", [self.ns]
        )

    # -- SQL plumbing ----------------------------------------------------------------

    def table(self, model: Any) -> str:
        return str(self.quote(model._meta.db_table))

    def column(self, model: Any, field: str) -> str:
        return str(self.quote(model._meta.get_field(field).column))

    def execute(self, sql: str, params: list[Any]) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)

    def copy(
        self,
        model: Any,
        fields: tuple[str, ...],
        rows: Iterable[tuple[Any, ...]],
        line: Callable[[str, tuple[Any, ...]], str] | None = None,
    ) -> int:
        """``COPY`` ``(namespace, *fields)`` rows into ``model``'s table; return the count."""
        columns = ", ".join(["namespace", *(self.column(model, f) for f in fields)])
        prefix = _copy_text(self.ns) + "\t"
        return self.copy_into(f"{self.table(model)} ({columns})", rows, prefix, line)

    def copy_into(
        self,
        target: str,
        rows: Iterable[tuple[Any, ...]],
        prefix: str,
        line: Callable[[str, tuple[Any, ...]], str] | None = None,
    ) -> int:
        """``COPY target FROM STDIN`` the ``rows`` in text format; return the count.

        Each line starts with ``prefix``. ``line`` formats a row; by default each field goes
        through ``_copy_text``. Lines go in blocks of at most ``_CHUNK`` rows or about
        ``_COPY_BYTES``. So memory stays bounded however large the values are."""
        count = size = 0
        block: list[str] = []
        with (
            self.connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy,
        ):
            for row in rows:
                text = (
                    prefix + "\t".join(map(_copy_text, row)) + "\n"
                    if line is None
                    else line(prefix, row)
                )
                block.append(text)
                size += len(text)
                if size >= _COPY_BYTES or len(block) >= _CHUNK:
                    copy.write("".join(block))
                    count += len(block)
                    block.clear()
                    size = 0
            if block:
                copy.write("".join(block))
                count += len(block)
        return count

    def stage(self, model: Any, fields: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> str:
        """A temporary table holding ``rows`` under ``fields``' names; commit drops it."""
        name = self.quote(f"chatstate_stage_{model._meta.model_name}")
        columns = ", ".join(
            f"{self.quote(f)} {model._meta.get_field(f).db_type(self.connection)}" for f in fields
        )
        self.execute(f"DROP TABLE IF EXISTS {name}", [])
        self.execute(f"CREATE TEMPORARY TABLE {name} ({columns}) ON COMMIT DROP", [])
        self.copy_into(f"{name} ({', '.join(self.quote(f) for f in fields)})", rows, "")
        return str(name)

    def insert_from(self, model: Any, fields: tuple[str, ...], stage: str) -> str:
        """``INSERT INTO model (namespace, fields) SELECT %s, fields FROM stage``.

        Its one parameter is the namespace."""
        columns = ", ".join(["namespace", *(self.column(model, f) for f in fields)])
        picked = ", ".join(f"s.{self.quote(f)}" for f in fields)
        return f"INSERT INTO {self.table(model)} ({columns}) SELECT %s, {picked} FROM {stage} AS s"
