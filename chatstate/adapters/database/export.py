"""Snapshots out of the database, whole or streamed section by section.

:func:`snapshot` reads the whole namespace as a ``Snapshot``. :func:`snapshot_sections`
streams it; the ``chatstate_snapshot`` command uses it. Streaming runs in one read
transaction. On PostgreSQL it is ``REPEATABLE READ, READ ONLY``, so every section sees the
same state. Each section is one query, read through a server-side cursor.

Sections come in the order of the JSON form, which is code-point order. PostgreSQL sorts
with ``COLLATE "C"``, and SQLite's default ``BINARY`` already matches. Other databases sort
the section in Python.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Collate

from chatstate.adapters.database.rows import NamespaceRows, claim_dict, lock_entry, pending_dict
from chatstate.adapters.database.vendors import vendor_of
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    ListHead,
    ListItem,
    Lock,
    OutboxMessage,
    PendingLockEntry,
    Subscription,
    ThreadState,
)
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import to_iso

_CHUNK = 10_000
#: Dedupe entries a snapshot holds: all but released claims. A released claim is a refused
#: message's. Left out, its redelivery is handled by a restored namespace too.
_KEPT = ~Q(owner__isnull=False, thread_id__isnull=True)
#: Claims in progress, the ``claims`` section.
_CLAIMED = Q(owner__isnull=False, thread_id__isnull=False)
_CLAIM_FIELDS = ("adapter", "message_id", "owner", "thread_id", "expires_at")
_OUTBOX_FIELDS = ("key", "thread_id", "payload", "attempts", "dead", "created_at", "due_at")
#: A lock row's fields, a key held by slots exported as :func:`~.rows.slots_dict` says.
_LOCK_FIELDS = ("key", "owner", "strategy", "metadata", "acquired_at", "expires_at", "holders")
_loads = json.JSONDecoder().decode


def live_lists(now: datetime) -> Q:
    """The list heads a snapshot taken at ``now`` holds: not expired, and with items.

    An expired list reads as empty. A list without items is no list."""
    items = ListItem.objects.filter(namespace=OuterRef("namespace"), key=OuterRef("key"))
    return (Q(expires_at__isnull=True) | Q(expires_at__gt=now)) & Q(Exists(items))


def outbox_dict(*row: Any) -> dict[str, Any]:
    """An outbox row in the snapshot's form.

    The row is ``(key, thread_id, payload, attempts, dead, created_at, due_at)``."""
    key, thread_id, payload, attempts, dead, created, due = row
    return {
        "key": key,
        "thread_id": thread_id,
        "payload": payload,
        "attempts": attempts,
        "dead": bool(dead),
        "created_at": to_iso(created),
        "due_at": to_iso(due),
    }


def snapshot(adapter: NamespaceRows) -> Snapshot:
    """The namespace's whole state, read in one transaction."""
    with transaction.atomic(using=adapter.using):
        q = adapter.queryset
        rows = _Rows(adapter)
        try:
            lists, outbox = dict(rows.lists(adapter.now())), list(rows.outbox())
        finally:
            rows.close()
        order = [
            (a, m)
            for a, m in q(DedupeEntry)
            .filter(_KEPT)
            .order_by("seq", "id")
            .values_list("adapter", "message_id")
            .iterator(chunk_size=_CHUNK)
        ]
        pending: dict[str, list[dict[str, Any]]] = {}
        for key, *row in (
            q(PendingLockEntry)
            .order_by("key", "id")
            .values_list("key", "owner", "strategy", "metadata", "enqueued_at")
            .iterator(chunk_size=_CHUNK)
        ):
            pending.setdefault(key, []).append(pending_dict(*row))
        return Snapshot(
            subscriptions=set(q(Subscription).values_list("thread_id", flat=True)),
            dedupe=set(order),
            dedupe_order=order,
            thread_state=dict(q(ThreadState).values_list("thread_id", "value")),
            channel_state=dict(q(ChannelState).values_list("channel_id", "value")),
            locks={
                key: lock_entry(*row)
                for key, *row in q(Lock).values_list(*_LOCK_FIELDS).iterator(chunk_size=_CHUNK)
            },
            pending_locks=pending,
            claims={
                (a, m): claim_dict(*row)
                for a, m, *row in q(DedupeEntry).filter(_CLAIMED).values_list(*_CLAIM_FIELDS)
            },
            lists=lists,
            outbox=outbox,
        )


# -- export --------------------------------------------------------------------------------


@contextmanager
def snapshot_sections(adapter: NamespaceRows) -> Iterator[SnapshotSections]:
    """The namespace's state as ``SnapshotSections`` streamed from the database.

    The sections are valid inside the ``with`` block. The block holds one read transaction."""
    connection = connections[adapter.using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=adapter.using):
        if vendor_of(connection).repeatable_export:
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

    def __init__(self, adapter: NamespaceRows) -> None:
        self.adapter = adapter
        self.collation = _code_point_collation(adapter)
        self.streams: list[Generator[Any, None, None]] = []

    def close(self) -> None:
        """Close every stream and its cursor, read to the end or not."""
        for stream in self.streams:
            stream.close()

    def sections(self) -> SnapshotSections:
        adapter, rows = self.adapter, self
        now = adapter.now()
        return SnapshotSections(
            subscriptions=rows.sorted(Subscription, ("thread_id",), flat=True),
            dedupe=rows.sorted(DedupeEntry, ("adapter", "message_id"), where=_KEPT),
            dedupe_order=rows.ordered(
                DedupeEntry, ("adapter", "message_id"), ("seq", "id"), where=_KEPT
            ),
            thread_state=rows.sorted(ThreadState, ("thread_id", "value")),
            channel_state=rows.sorted(ChannelState, ("channel_id", "value")),
            locks=((key, lock_entry(*row)) for key, *row in rows.sorted(Lock, _LOCK_FIELDS)),
            pending_locks=(
                (key, [pending_dict(*row[1:]) for row in group])
                for key, group in itertools.groupby(
                    rows.sorted(
                        PendingLockEntry,
                        ("key", "owner", "strategy", "metadata", "enqueued_at"),
                        then=("id",),
                    ),
                    key=lambda row: row[0],
                )
            ),
            claims=(
                ((a, m), claim_dict(*row))
                for a, m, *row in rows.sorted(DedupeEntry, _CLAIM_FIELDS, where=_CLAIMED)
            ),
            lists=rows.lists(now),
            outbox=rows.outbox(),
            counts={
                "subscriptions": adapter.queryset(Subscription).count(),
                "dedupe": (dedupe := adapter.queryset(DedupeEntry).filter(_KEPT).count()),
                "dedupe_order": dedupe,
                "thread_state": adapter.queryset(ThreadState).count(),
                "channel_state": adapter.queryset(ChannelState).count(),
                "locks": adapter.queryset(Lock).count(),
                "pending_locks": adapter.queryset(PendingLockEntry)
                .values("key")
                .distinct()
                .count(),
                "claims": adapter.queryset(DedupeEntry).filter(_CLAIMED).count(),
                "lists": adapter.queryset(ListHead).filter(live_lists(now)).count(),
                "outbox": adapter.queryset(OutboxMessage).count(),
            },
        )

    def lists(self, now: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
        """The lists live at ``now``, by :func:`live_lists`, sorted by key.

        Each is ``(key, {"items": [...], "expires_at": ISO or None})``, items oldest first.
        Two streams are read side by side. One holds the heads. The other holds the items,
        sorted by key, then position."""
        live = self.adapter.queryset(ListHead).filter(live_lists(now))
        heads = self.sorted(ListHead, ("key", "expires_at"), where=live_lists(now))
        of_live = Q(Exists(live.filter(key=OuterRef("key"), first_seq__lte=OuterRef("seq"))))
        items = self.sorted(ListItem, ("key", "value"), then=("seq",), where=of_live)
        for key, group in itertools.groupby(items, key=operator.itemgetter(0)):
            head, expires = next(heads)
            while head != key:  # a list whose last item went since the heads were read
                head, expires = next(heads)
            values = [value for _, value in group]
            yield key, {"items": values, "expires_at": None if expires is None else to_iso(expires)}

    def outbox(self) -> Iterator[dict[str, Any]]:
        """The outbox entries in commit order, that is by id."""
        rows = self.ordered(OutboxMessage, _OUTBOX_FIELDS, ("id",))
        return (outbox_dict(*row) for row in rows)

    def ordered(
        self, model: Any, fields: tuple[str, ...], order: tuple[Any, ...], where: Q | None = None
    ) -> Iterator[Any]:
        """The ``values_list(*fields)`` rows matching ``where``, in ``order``, streamed.

        The ORM's SQL is read through a server-side cursor, a batch at a time. JSON columns
        arrive as text and are decoded here. Rows with timestamps go through the ORM."""
        rows = self.adapter.queryset(model).filter(where or Q()).order_by(*order)
        rows = rows.values_list(*fields)
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
        self,
        model: Any,
        fields: tuple[str, ...],
        flat: bool = False,
        then: tuple[str, ...] = (),
        where: Q | None = None,
    ) -> Iterator[Any]:
        """Rows sorted by their identifying fields in Python's ``str`` order, then by ``then``.

        The identifying field is the first one; dedupe entries have two. With ``flat``, a
        row is its first field alone."""
        keys = fields[:2] if model is DedupeEntry else fields[:1]
        stream: Iterator[Any]
        if self.collation is None:  # a collation this module does not know: sort here
            rows = self.ordered(model, fields, then or ("pk",), where)
            stream = iter(sorted(rows, key=lambda r: r[: len(keys)]))
        else:
            order = [Collate(F(k), self.collation) if self.collation else k for k in keys]
            stream = self.ordered(model, fields, (*order, *then), where)
        return map(operator.itemgetter(0), stream) if flat else stream


def _code_point_collation(adapter: NamespaceRows) -> str | None:
    """The collation to ``ORDER BY`` for Python's ``str`` order.

    It is ``""`` when the database already sorts by code point. SQLite's ``BINARY`` does. So
    does a PostgreSQL database created with the C or C.UTF-8 locale; its unique indexes
    then serve the order. Other PostgreSQL databases get ``"C"``. Elsewhere it is ``None``,
    and rows are sorted in Python. ``write_snapshot`` checks the order it receives. So a
    wrong guess fails the export instead of changing its bytes."""
    connection = connections[adapter.using]
    return vendor_of(connection).code_point_collation(connection)
