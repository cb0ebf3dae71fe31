"""Streaming snapshots for ``DatabaseStateAdapter``: export by cursor, restore by ``COPY``.

- Export (:func:`snapshot_sections`): one read transaction (``REPEATABLE READ, READ ONLY`` on
  PostgreSQL, so every section sees the same state); each section is one query read through
  a server-side cursor (``QuerySet.iterator``), ordered by the database in the order of the
  JSON form (code-point order: ``COLLATE "C"`` on PostgreSQL, SQLite's default ``BINARY``;
  other databases sort the section in Python).
- Restore (:func:`load_sections`): on PostgreSQL, one write transaction in which psycopg's
  ``COPY … FROM STDIN`` streams rows into the tables (merging goes through temporary tables
  and ``INSERT … ON CONFLICT``); elsewhere the ORM path of ``_do_load_snapshot``.

Both keep the invariants of :mod:`chatstate.adapters.database`: dedupe entries carry ``seq``
1…n in ``dedupe_order`` order and the namespace's ``DedupeWindow.head`` counts them
(a merge appends the new keys after the newest position); lock and pending timestamps
round-trip exactly.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.db.models import F, Max
from django.db.models.functions import Collate

from chatstate.models import (
    ChannelState,
    DedupeEntry,
    Lock,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from chatstate.transfer.sections import SnapshotSections
from chatstate.types import to_iso

if TYPE_CHECKING:
    from chatstate.adapters.database import DatabaseStateAdapter

_CHUNK = 10_000
_MODELS = (Subscription, DedupeEntry, ThreadState, ChannelState, Lock, PendingLockEntry)
_loads = json.JSONDecoder().decode
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode


# -- export --------------------------------------------------------------------------------


@contextmanager
def snapshot_sections(adapter: DatabaseStateAdapter) -> Iterator[SnapshotSections]:
    """The namespace's state as ``SnapshotSections`` streamed from the database; valid
    inside the ``with`` block, which holds one read transaction."""
    connection = connections[adapter.using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=adapter.using):
        if adapter.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # Sorting a million dedupe keys in code-point order: in memory, not on disk.
                cursor.execute("SET LOCAL work_mem = '256MB'")
        rows = _Rows(adapter)
        try:
            yield rows.sections()
        finally:
            rows.close()  # server-side cursors end before their transaction does


class _Rows:
    """Row streams of one adapter's namespace, through server-side cursors."""

    def __init__(self, adapter: DatabaseStateAdapter) -> None:
        self.adapter = adapter
        self.collation = _code_point_collation(adapter)
        self.streams: list[Generator[Any, None, None]] = []

    def close(self) -> None:
        """Close every stream (and so its cursor), read to the end or not."""
        for stream in self.streams:
            stream.close()

    def sections(self) -> SnapshotSections:
        adapter, rows = self.adapter, self
        return SnapshotSections(
            subscriptions=rows.sorted(Subscription, ("thread_id",), flat=True),
            dedupe=rows.sorted(DedupeEntry, ("adapter", "message_id")),
            dedupe_order=rows.ordered(DedupeEntry, ("adapter", "message_id"), ("seq", "id")),
            thread_state=rows.sorted(ThreadState, ("thread_id", "value")),
            channel_state=rows.sorted(ChannelState, ("channel_id", "value")),
            locks=(
                (key, _lock_dict(owner, strategy, metadata, acquired, expires))
                for key, owner, strategy, metadata, acquired, expires in rows.sorted(
                    Lock, ("key", "owner", "strategy", "metadata", "acquired_at", "expires_at")
                )
            ),
            pending_locks=(
                (key, [_pending_dict(*row[1:]) for row in group])
                for key, group in itertools.groupby(
                    rows.sorted(
                        PendingLockEntry,
                        ("key", "owner", "strategy", "metadata", "enqueued_at"),
                        then=("id",),
                    ),
                    key=lambda row: row[0],
                )
            ),
            counts={
                "subscriptions": adapter._q(Subscription).count(),
                "dedupe": (dedupe := adapter._q(DedupeEntry).count()),
                "dedupe_order": dedupe,
                "thread_state": adapter._q(ThreadState).count(),
                "channel_state": adapter._q(ChannelState).count(),
                "locks": adapter._q(Lock).count(),
                "pending_locks": adapter._q(PendingLockEntry).values("key").distinct().count(),
            },
        )

    def ordered(self, model: Any, fields: tuple[str, ...], order: tuple[Any, ...]) -> Iterator[Any]:
        """``values_list(*fields)`` rows in ``order``, streamed lazily: the ORM's SQL read
        through a server-side cursor (``chunked_cursor``) a batch at a time. JSON columns
        arrive as text and are decoded here; rows with timestamps go through the ORM."""
        rows = self.adapter._q(model).order_by(*order).values_list(*fields)
        if any(model._meta.get_field(f).get_internal_type() == "DateTimeField" for f in fields):
            stream = rows.iterator(chunk_size=_CHUNK)
            self.streams.append(stream)
            return stream
        batches = self._fetch(rows, "value" in fields)
        self.streams.append(batches)
        return itertools.chain.from_iterable(batches)

    def _fetch(self, rows: Any, decode_value: bool) -> Generator[list[Any], None, None]:
        sql, params = rows.query.sql_with_params()
        with connections[self.adapter.using].chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(_CHUNK):
                yield [(key, _loads(text)) for key, text in batch] if decode_value else batch

    def sorted(
        self, model: Any, fields: tuple[str, ...], flat: bool = False, then: tuple[str, ...] = ()
    ) -> Iterator[Any]:
        """Rows sorted by their identifying fields (the first, or for dedupe both) in Python's
        ``str`` order, then by ``then``; ``flat``: the first field alone."""
        keys = fields[:2] if model is DedupeEntry else fields[:1]
        stream: Iterator[Any]
        if self.collation is None:  # a collation this module does not know: sort here
            rows = self.ordered(model, fields, ("pk",))
            stream = iter(sorted(rows, key=lambda r: r[: len(keys)]))
        else:
            order = [Collate(F(k), self.collation) if self.collation else k for k in keys]
            stream = self.ordered(model, fields, (*order, *then))
        return map(operator.itemgetter(0), stream) if flat else stream


def _code_point_collation(adapter: DatabaseStateAdapter) -> str | None:
    """The collation to ``ORDER BY`` for Python's ``str`` order: ``""`` when the database
    already sorts by code point (SQLite's ``BINARY``; a PostgreSQL database created with the
    C or C.UTF-8 locale: then the unique indexes serve the order, no sort), ``"C"`` on other
    PostgreSQL databases, ``None`` (sort in Python) elsewhere. ``write_snapshot`` checks the
    order it receives, so a wrong guess fails the export instead of changing its bytes."""
    if adapter.vendor == "sqlite":
        return ""
    if adapter.vendor != "postgresql":
        return None
    with connections[adapter.using].cursor() as cursor:
        cursor.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()")
        row = cursor.fetchone()
    locale = str(row[0]).lower() if row else ""
    return "" if locale in ("c", "posix", "c.utf-8", "c.utf8") else "C"


def _copy_text(value: Any) -> str:
    """``value`` as a field of PostgreSQL's ``COPY`` text format."""
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


def _lock_dict(
    owner: str, strategy: str, metadata: Any, acquired: datetime, expires: datetime
) -> dict[str, Any]:
    return {
        "owner": owner,
        "strategy": strategy,
        "metadata": metadata,
        "acquired_at": to_iso(acquired),
        "expires_at": to_iso(expires),
    }


def _pending_dict(owner: str, strategy: str, metadata: Any, enqueued: datetime) -> dict[str, Any]:
    return {
        "owner": owner,
        "strategy": strategy,
        "metadata": metadata,
        "enqueued_at": to_iso(enqueued),
    }


# -- restore -------------------------------------------------------------------------------


def load_sections(adapter: DatabaseStateAdapter, sections: SnapshotSections, merge: bool) -> None:
    """Replace (or merge into) the namespace's state from ``sections``, in one transaction.

    PostgreSQL: ``COPY`` streams; other databases: the adapter's ORM ``_do_load_snapshot``
    on the collected snapshot."""
    if adapter.vendor != "postgresql":
        adapter._do_load_snapshot(sections.to_snapshot(), merge)
        return
    adapter._write(lambda: _Copier(adapter, merge).load(sections))


class _Copier:
    """One restore on PostgreSQL, inside the caller's transaction."""

    def __init__(self, adapter: DatabaseStateAdapter, merge: bool) -> None:
        self.adapter = adapter
        self.merge = merge
        self.ns = adapter.namespace
        self.connection = connections[adapter.using]
        self.quote = self.connection.ops.quote_name

    def load(self, sections: SnapshotSections) -> None:
        from chatstate.adapters.database import _when

        adapter, ns = self.adapter, self.ns
        now = adapter._now()
        stamp = now.isoformat()  # formatted once: the same value on a million rows
        window = adapter._window()  # locks the window row: claims wait for the restore
        if not self.merge:
            for model in _MODELS:
                self.execute(f"DELETE FROM {self.table(model)} WHERE namespace = %s", [ns])
            window.head = 0
        self.upsert(
            Subscription,
            ("thread_id", "created_at"),
            ((t, stamp) for t in sections.subscriptions),
            ("thread_id",),
            None,
        )
        newest = 0
        if self.merge:
            newest = adapter._q(DedupeEntry).aggregate(newest=Max("seq"))["newest"] or 0
        window.head += self.dedupe(sections.dedupe_order, newest, stamp)
        window.save(update_fields=["head"])
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
            (
                k,
                lock["owner"],
                lock["strategy"],
                _dumps(lock.get("metadata") or {}),
                _when(lock.get("acquired_at"), now),
                _when(lock.get("expires_at"), default_expiry),
            )
            for k, lock in sections.locks
        )
        lock_fields = ("key", "owner", "strategy", "metadata", "acquired_at", "expires_at")
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
                    _when(e.get("enqueued_at"), now),
                )
                for k, entries in sections.pending_locks
                for e in entries
            ),
        )

    # -- sections --------------------------------------------------------------------

    def dedupe(self, order: Iterable[tuple[str, str]], head: int, stamp: str) -> int:
        """Add the keys of ``order`` not present, after position ``head``; their count."""
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
        """Copy ``rows``; when merging, rows whose ``unique`` fields exist already update
        ``update`` (``None``: are left alone)."""
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
        """``COPY`` ``(namespace, *fields)`` rows into ``model``'s table; the row count."""
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
        """``COPY target FROM STDIN`` (text format) the ``rows``, each line starting with
        ``prefix``; the row count. Lines are built here a batch at a time (``line``, or every
        field through ``_copy_text``), far faster than psycopg's ``write_row`` per row."""
        count = 0
        iterator = iter(rows)
        with (
            self.connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy,
        ):
            while batch := list(itertools.islice(iterator, _CHUNK)):
                if line is None:
                    text = "".join(
                        [prefix + "\t".join(map(_copy_text, row)) + "\n" for row in batch]
                    )
                else:
                    text = "".join([line(prefix, row) for row in batch])
                copy.write(text)
                count += len(batch)
        return count

    def stage(self, model: Any, fields: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> str:
        """A temporary table (dropped at commit) holding ``rows`` under ``fields``' names."""
        name = self.quote(f"chatstate_stage_{model._meta.model_name}")
        columns = ", ".join(
            f"{self.quote(f)} {model._meta.get_field(f).db_type(self.connection)}" for f in fields
        )
        self.execute(f"DROP TABLE IF EXISTS {name}", [])
        self.execute(f"CREATE TEMPORARY TABLE {name} ({columns}) ON COMMIT DROP", [])
        self.copy_into(f"{name} ({', '.join(self.quote(f) for f in fields)})", rows, "")
        return str(name)

    def insert_from(self, model: Any, fields: tuple[str, ...], stage: str) -> str:
        """``INSERT INTO model (namespace, fields) SELECT %s, fields FROM stage`` (the one
        parameter: the namespace)."""
        columns = ", ".join(["namespace", *(self.column(model, f) for f in fields)])
        picked = ", ".join(f"s.{self.quote(f)}" for f in fields)
        return f"INSERT INTO {self.table(model)} ({columns}) SELECT %s, {picked} FROM {stage} AS s"
