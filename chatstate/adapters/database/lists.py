"""Capped lists on the ORM path, a mixin of ``DatabaseStateAdapter``.

A list is a ``ListHead`` row and its ``ListItem`` rows. The head holds the newest position,
``last_seq``, the oldest, ``first_seq``, and the expiry. Items are numbered ``1 … last_seq``
in append order. The list's items are the rows from ``first_seq`` on; they always form one
run of positions. An append adds the next one, trimming raises ``first_seq``, and a restart
moves it past every row. This path deletes the rows below ``first_seq`` at once; the
PostgreSQL functions delete them in batches.

Appends lock the head with ``select_for_update()``. Several heads are locked in key order.
So appends to one list are serialized, and writers of several lists never deadlock. A
read is one statement: the items from ``first_seq`` of a list whose head has not expired.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Q, Subquery

from chatstate.adapters.database.rows import json_value
from chatstate.calls import ListAppend
from chatstate.models import ListHead, ListItem

T = TypeVar("T")


class ListRows:
    """The list rows of one namespace.

    ``queryset``, ``using``, ``now`` and the transaction runners come from the adapter."""

    namespace: str
    using: str

    def queryset(self, model: Any) -> Any:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def _read(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _write(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _retry(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    # -- reads ---------------------------------------------------------------------------

    def list_items(self, key: str, limit: int | None, now: datetime) -> list[Any]:
        """The items of ``key``, oldest first; with ``limit``, the newest ``limit`` of them.

        It is one statement, in any transaction. A list missing or expired at ``now`` reads
        as ``[]``."""
        live = self.queryset(ListHead).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now), key=key
        )
        rows = (
            self.queryset(ListItem)
            .filter(key=key, seq__gte=Subquery(live.values("first_seq")[:1]))
            .order_by("-seq")
            .values_list("value", flat=True)
        )
        values = list(rows if limit is None else rows[:limit])
        values.reverse()
        return values

    def _do_get_list(self, key: str, limit: int | None) -> list[Any]:
        return self._read(lambda: self.list_items(key, limit, self.now()))

    # -- writes --------------------------------------------------------------------------

    def lock_list_heads(self, keys: set[str]) -> dict[str, ListHead]:
        """The heads of ``keys``, locked one by one in key order; call in a write transaction.

        A missing head is created. A lost insert race raises ``IntegrityError``. The
        caller's ``_retry`` then runs the transaction again, against the other writer's
        row."""
        heads: dict[str, ListHead] = {}
        for key in sorted(keys):
            head = self.queryset(ListHead).select_for_update().filter(key=key).first()
            if head is None:
                head = ListHead.objects.using(self.using).create(
                    namespace=self.namespace, key=key, last_seq=0
                )
            heads[key] = head
        return heads

    def append_rows(
        self, appends: Sequence[ListAppend], heads: dict[str, ListHead], now: datetime
    ) -> None:
        """Apply ``appends`` in order, judged at ``now``.

        Call it in a write transaction holding ``heads``, from :meth:`lock_list_heads`. A
        list expired at ``now`` starts over empty, with no expiry. Each append keeps the
        newest ``max_length`` items. An append with a ttl renews the expiry."""
        floors: dict[str, int] = {}
        for key, head in heads.items():
            floors[key] = 0
            if head.expires_at is not None and head.expires_at <= now:
                floors[key] = head.last_seq  # expired: every item so far goes
                head.expires_at = None
        items: list[ListItem] = []
        for append in appends:
            head = heads[append.key]
            head.last_seq += 1
            items.append(
                ListItem(
                    namespace=self.namespace,
                    key=append.key,
                    seq=head.last_seq,
                    value=json_value(json.loads(append.value)),
                )
            )
            if append.max_length is not None:
                floors[append.key] = max(floors[append.key], head.last_seq - append.max_length)
            if append.ttl is not None:
                head.expires_at = now + timedelta(seconds=append.ttl)
        kept = [item for item in items if item.seq > floors[item.key]]
        for key, floor in floors.items():
            if floor:
                self.queryset(ListItem).filter(key=key, seq__lte=floor).delete()
            heads[key].first_seq = max(heads[key].first_seq, floor + 1)
        if kept:
            ListItem.objects.using(self.using).bulk_create(kept)
        for head in heads.values():
            head.save(update_fields=["last_seq", "first_seq", "expires_at", "updated_at"])

    def _do_append_to_list(self, append: ListAppend) -> None:
        def append_one() -> None:
            heads = self.lock_list_heads({append.key})
            self.append_rows([append], heads, self.now())

        self._retry(append_one)

    def _do_delete_list(self, key: str) -> int:
        def delete() -> int:
            head = self.queryset(ListHead).select_for_update().filter(key=key).first()
            if head is None:
                return 0
            live = head.expires_at is None or head.expires_at > self.now()
            count, _ = self.queryset(ListItem).filter(key=key, seq__gte=head.first_seq).delete()
            self.queryset(ListItem).filter(key=key).delete()  # trimmed: not counted
            self.queryset(ListHead).filter(pk=head.pk).delete()
            return int(count) if live else 0

        return self._write(delete)
