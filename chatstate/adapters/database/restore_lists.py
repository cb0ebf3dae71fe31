"""A snapshot's capped lists and outbox into the database.

They load inside the load's write transaction. :mod:`.restore` calls these after the other
sections.

- A replace removes the namespace's lists and outbox first. In a merge, an incoming list
  replaces the list of its key. An empty or expired one just removes it. An incoming
  outbox entry is appended unless an entry with its key is there.
- A list is stored as its appends would have left it. Items are numbered ``1 … n`` in
  order. Its head's ``last_seq`` is ``n``, so the next append is ``n + 1``. Its expiry is
  as given. A list with no items, or expired by the database's clock, is not stored.
- Outbox entries are inserted in the snapshot's order. So their ids keep commit order,
  after the entries already there. A missing ``due_at`` means due since ``created_at``.
  No entry is leased.

:func:`load_by_orm` uses the ORM's bulk inserts, a batch at a time. :func:`load_by_copy`
streams with ``COPY`` on PostgreSQL, as the other sections do. A merge goes through
temporary tables.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any, Protocol, TypeVar

from django.db import connections

from chatstate.adapters.database.rows import NamespaceRows, json_value
from chatstate.models import ListHead, ListItem, OutboxMessage
from chatstate.types import as_datetime

Lists = Iterable[tuple[str, dict[str, Any]]]
Outbox = Iterable[dict[str, Any]]
_T = TypeVar("_T")

#: Lists or outbox entries per ORM batch, and list items per ORM insert.
_BATCH = 1000
_ITEMS = 5000
#: Bytes of head lines kept in memory while the items are copied; the rest spill to disk.
_SPOOL = 8 << 20
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode
_OUTBOX_FIELDS = ("key", "thread_id", "payload", "attempts", "dead", "created_at", "due_at")


class Copier(Protocol):
    """What :func:`load_by_copy` uses of the ``COPY`` helper of :mod:`.restore`."""

    connection: Any

    def table(self, model: Any) -> str: ...

    def column(self, model: Any, field: str) -> str: ...

    def execute(self, sql: str, params: list[Any]) -> None: ...

    def copy(self, model: Any, fields: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> int: ...

    def stage(
        self, model: Any, fields: tuple[str, ...], rows: Iterable[tuple[Any, ...]]
    ) -> str: ...

    def insert_from(self, model: Any, fields: tuple[str, ...], stage: str) -> str: ...


def _live(value: dict[str, Any], now: datetime) -> bool:
    """Whether a snapshot's list is stored: it has items and has not expired at ``now``."""
    expires = value["expires_at"]
    return bool(value["items"]) and (expires is None or as_datetime(expires, now) > now)


def _expiry(value: dict[str, Any]) -> datetime | None:
    """A snapshot list's expiry as a datetime; None when it has none."""
    expires = value["expires_at"]
    return None if expires is None else as_datetime(expires, datetime.min)


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _outbox_row(entry: dict[str, Any]) -> tuple[Any, ...]:
    """An entry as ``(key, thread_id, payload, attempts, dead, created_at, due_at)``."""
    created = as_datetime(entry["created_at"], datetime.min)
    due = as_datetime(entry.get("due_at"), created)
    return (entry["key"], entry["thread_id"], entry["payload"], entry["attempts"],
            entry["dead"], created, due)  # fmt: skip


# -- the ORM -------------------------------------------------------------------------------


def load_by_orm(adapter: NamespaceRows, lists: Lists, outbox: Outbox, merge: bool) -> None:
    """Store ``lists`` and ``outbox`` by the ORM's bulk inserts, replacing or ``merge``."""
    ns, using, q = adapter.namespace, adapter.using, adapter.queryset
    now = adapter.now()
    if not merge:
        for model in (ListItem, ListHead, OutboxMessage):
            q(model).delete()
    for batch in _batches(lists, _BATCH):
        if merge:
            keys = [key for key, _ in batch]
            q(ListItem).filter(key__in=keys).delete()
            q(ListHead).filter(key__in=keys).delete()
        kept = [(key, value) for key, value in batch if _live(value, now)]
        ListHead.objects.using(using).bulk_create(
            [
                ListHead(
                    namespace=ns,
                    key=key,
                    last_seq=len(value["items"]),
                    expires_at=_expiry(value),
                )
                for key, value in kept
            ]
        )
        items = (
            ListItem(namespace=ns, key=key, seq=seq, value=json_value(item))
            for key, value in kept
            for seq, item in enumerate(value["items"], 1)
        )
        for part in _batches(items, _ITEMS):
            ListItem.objects.using(using).bulk_create(part)
        _forget_queries(using)
    for entries in _batches(outbox, _BATCH):
        if merge:  # an entry whose key is there: the one there stays
            present = set(
                q(OutboxMessage)
                .filter(key__in=[e["key"] for e in entries])
                .values_list("key", flat=True)
            )
            entries = [e for e in entries if e["key"] not in present]
        rows = [dict(zip(_OUTBOX_FIELDS, _outbox_row(e), strict=True)) for e in entries]
        for row in rows:
            row["payload"] = json_value(row["payload"])
        OutboxMessage.objects.using(using).bulk_create(
            [OutboxMessage(namespace=ns, **row) for row in rows]
        )
        _forget_queries(using)


def _forget_queries(using: str) -> None:
    """Empty the connection's query log, kept under ``DEBUG``; it holds every batch's SQL."""
    connection = connections[using]
    if connection.queries_logged:
        connection.queries_log.clear()


# -- PostgreSQL's COPY ---------------------------------------------------------------------


def _field(value: Any) -> str:
    """``value`` as a field of ``COPY``'s text format; ``None`` is NULL."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def load_by_copy(
    adapter: NamespaceRows, copier: Copier, lists: Lists, outbox: Outbox, merge: bool
) -> None:
    """Store ``lists`` and ``outbox`` with ``COPY``, replacing or ``merge``.

    A replace copies straight into the tables. A merge copies into temporary tables first.
    Then one ``DELETE`` and one ``INSERT … SELECT`` per table move the rows."""
    ns = adapter.namespace
    if not merge:
        for model in (ListItem, ListHead, OutboxMessage):
            copier.execute(f"DELETE FROM {copier.table(model)} WHERE namespace = %s", [ns])
    _copy_lists(adapter, copier, lists, merge)
    rows = (
        (key, thread, _dumps(payload), attempts, dead, created, due)
        for key, thread, payload, attempts, dead, created, due in map(_outbox_row, outbox)
    )
    if not merge:
        copier.copy(OutboxMessage, _OUTBOX_FIELDS, rows)
        return
    ordered = ((n, *row) for n, row in enumerate(rows))  # the staged rows' order: "id"
    stage = copier.stage(OutboxMessage, ("id", *_OUTBOX_FIELDS), ordered)
    table, key = copier.table(OutboxMessage), copier.column(OutboxMessage, "key")
    copier.execute(
        f"{copier.insert_from(OutboxMessage, _OUTBOX_FIELDS, stage)} WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} AS t WHERE t.namespace = %s AND t.{key} = s.{key}) "
        "ORDER BY s.id",
        [ns, ns],
    )


def _copy_lists(adapter: NamespaceRows, copier: Copier, lists: Lists, merge: bool) -> None:
    """Copy the lists: the items by one ``COPY``, then the heads.

    The heads wait in a spooled file, with at most ``_SPOOL`` bytes in memory. A merge
    stages both in temporary tables. Every incoming key's list is removed, then the staged
    lists are inserted. A head staged with ``last_seq`` 0 is a list not stored. It only
    removes."""
    ns, now = adapter.namespace, adapter.now()
    item_fields = ("key", "seq", "value")
    head_fields = ("key", "last_seq", "first_seq", "expires_at")
    head_columns = ", ".join(copier.column(ListHead, f) for f in head_fields)
    with tempfile.SpooledTemporaryFile(_SPOOL, mode="w+", encoding="utf-8") as heads:

        def items() -> Iterator[tuple[Any, ...]]:
            for key, value in lists:
                live = _live(value, now)
                if live or merge:
                    expires = _expiry(value) if live else None
                    count = len(value["items"]) if live else 0
                    heads.write(f"{_field(key)}\t{count}\t1\t{_field(expires)}\n")
                if live:
                    for seq, item in enumerate(value["items"], 1):
                        yield key, seq, _dumps(item)

        if not merge:
            copier.copy(ListItem, item_fields, items())
            heads.seek(0)
            target = f"{copier.table(ListHead)} (namespace, {head_columns}, updated_at)"
            _copy_text(copier, target, heads, f"{_field(ns)}\t", f"\t{_field(now)}")
            return
        staged_items = copier.stage(ListItem, item_fields, items())
        heads.seek(0)
        staged_heads = copier.stage(ListHead, head_fields, ())
        _copy_text(copier, f"{staged_heads} ({head_columns})", heads, "", "")
    key = copier.column(ListHead, "key")
    for model in (ListItem, ListHead):
        copier.execute(
            f"DELETE FROM {copier.table(model)} AS t USING {staged_heads} AS s "
            f"WHERE t.namespace = %s AND t.{key} = s.{key}",
            [ns],
        )
    copier.execute(
        f"INSERT INTO {copier.table(ListHead)} (namespace, {head_columns}, updated_at) "
        f"SELECT %s, {', '.join('s.' + copier.column(ListHead, f) for f in head_fields)}, %s "
        f"FROM {staged_heads} AS s WHERE s.{copier.column(ListHead, 'last_seq')} > 0",
        [ns, now],
    )
    copier.execute(copier.insert_from(ListItem, item_fields, staged_items), [ns])


def _copy_text(copier: Copier, target: str, lines: IO[str], prefix: str, suffix: str) -> None:
    """``COPY target FROM STDIN`` each line of ``lines``, a block at a time.

    Lines are in text format and end with a newline. Each gets ``prefix`` before it and
    ``suffix`` after it."""
    with (
        copier.connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy,
    ):
        while block := list(itertools.islice(lines, 10_000)):
            copy.write("".join(f"{prefix}{line[:-1]}{suffix}\n" for line in block))
