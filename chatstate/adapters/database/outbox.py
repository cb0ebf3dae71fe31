"""The outbox on the ORM path, a mixin of ``DatabaseStateAdapter``.

An entry is an ``OutboxMessage`` row; its ``id`` orders commits. A claim is one write
transaction that leases what it takes. So dispatchers in other processes never take one
entry twice. Nor do they take two entries of one thread at once.

- A claim reads the candidates oldest first. A candidate is live, due and not leased. Its
  thread has no running lease and no earlier live entry waiting for a retry.
- It locks them with ``select_for_update(skip_locked=True)`` where the database has it. A
  row another claim is taking is passed over, not waited for. PostgreSQL and InnoDB judge a
  locked row's lease on its newest version. So a row leased by a claim that committed
  meanwhile is not taken again. SQLite has one writer at a time.
- Per thread, it keeps only an unbroken run from the thread's oldest live entry. Each row
  it keeps follows the previous live entry of its thread, read in the same statement. A
  thread whose oldest live entry another claim holds is left to that claim.

Times are the database's clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Exists, OuterRef, Q, Subquery

from chatstate.adapters.database.rows import json_value
from chatstate.calls import OutboxClaim, Send
from chatstate.models import OutboxMessage
from chatstate.types import OutboxEntry, to_iso

T = TypeVar("T")

#: Ids of outbox rows: positive 64-bit integers.
_MAX_ID = 2**63 - 1


def outbox_entry(row: OutboxMessage) -> OutboxEntry:
    """An outbox row as the :class:`OutboxEntry` the API returns."""
    return OutboxEntry(
        id=str(row.pk),
        key=row.key,
        thread_id=row.thread_id,
        payload=row.payload,
        attempts=row.attempts,
        dead=row.dead,
        created_at=to_iso(row.created_at),
        due_at=to_iso(row.due_at),
    )


def row_ids(entry_ids: Sequence[str]) -> list[int]:
    """The row ids among ``entry_ids``; an id no row can have is left out."""
    ids = []
    for entry_id in entry_ids:
        if entry_id.isascii() and entry_id.isdigit() and 0 < int(entry_id) <= _MAX_ID:
            ids.append(int(entry_id))
    return ids


class OutboxRows:
    """The outbox rows of one namespace.

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

    def insert_sends(self, sends: Sequence[Send], now: datetime) -> None:
        """Add ``sends`` in order, created and due at ``now``; call in a write transaction.

        A send whose key is already in the outbox, or earlier in ``sends``, is not added."""
        rows = [
            OutboxMessage(
                namespace=self.namespace,
                key=send.key,
                thread_id=send.thread_id,
                payload=json_value(json.loads(send.payload)),
                created_at=now,
                due_at=now,
            )
            for send in sends
        ]
        OutboxMessage.objects.using(self.using).bulk_create(rows, ignore_conflicts=True)

    def _do_outbox(self, thread_id: str | None) -> list[OutboxEntry]:
        def read() -> list[OutboxEntry]:
            rows = self.queryset(OutboxMessage)
            if thread_id is not None:
                rows = rows.filter(thread_id=thread_id)
            return [outbox_entry(row) for row in rows.order_by("id")]

        return self._read(read)

    def _candidates(self, now: datetime) -> Any:
        """The entries a claim may take at ``now``, oldest first.

        Each has ``previous``, the id of the previous live entry of its thread. It is None
        for the thread's oldest."""
        rows = self.queryset(OutboxMessage)
        thread = rows.filter(thread_id=OuterRef("thread_id"))
        earlier_live = thread.filter(id__lt=OuterRef("id"), dead=False)
        return (
            rows.filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .filter(dead=False, due_at__lte=now)
            .filter(~Exists(thread.filter(lease_until__gt=now)))
            .filter(~Exists(earlier_live.filter(due_at__gt=now)))
            .annotate(previous=Subquery(earlier_live.order_by("-id").values("id")[:1]))
            .order_by("id")
        )

    def _do_outbox_claim(self, claim: OutboxClaim) -> list[OutboxEntry]:
        skip_locked = connections[self.using].features.has_select_for_update_skip_locked

        def take() -> list[OutboxEntry]:
            now = self.now()
            locked = self._candidates(now).select_for_update(skip_locked=skip_locked)
            follows: dict[str, int] = {}  # thread -> the id its next row must follow
            gaps: set[str] = set()
            taken: list[OutboxMessage] = []
            for row in locked[: claim.limit]:
                thread = row.thread_id
                if thread in gaps or row.previous != follows.get(thread):
                    gaps.add(thread)  # not the run from its oldest entry: another claim's
                    continue
                follows[thread] = row.pk
                taken.append(row)
            if taken:
                until = now + timedelta(seconds=claim.lease)
                self.queryset(OutboxMessage).filter(pk__in=[row.pk for row in taken]).update(
                    lease_owner=claim.owner, lease_until=until
                )
            return [outbox_entry(row) for row in taken]

        return self._write(take)

    def _do_outbox_delivered(self, owner: str, entry_id: str) -> None:
        ids = row_ids([entry_id])
        if ids:
            self._write(lambda: self.queryset(OutboxMessage).filter(pk__in=ids).delete())

    def _do_outbox_failed(self, owner: str, entry_id: str, delay: float, max_attempts: int) -> bool:
        ids = row_ids([entry_id])

        def fail() -> bool:
            rows = self.queryset(OutboxMessage).filter(pk__in=ids, lease_owner=owner)
            row = rows.select_for_update().first()
            if row is None:
                return False
            attempts = row.attempts + 1
            dead = attempts >= max_attempts
            rows.update(
                attempts=attempts,
                dead=dead,
                due_at=self.now() + timedelta(seconds=delay),
                lease_owner=None,
                lease_until=None,
            )
            return dead

        return bool(ids) and self._write(fail)

    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> None:
        ids = row_ids(entry_ids)
        if ids:
            rows = self.queryset(OutboxMessage).filter(pk__in=ids, lease_owner=owner)
            self._write(lambda: rows.update(lease_owner=None, lease_until=None))

    def _do_outbox_requeue(self, entry_ids: list[str]) -> int:
        ids = row_ids(entry_ids)

        def requeue() -> int:
            rows = self.queryset(OutboxMessage).filter(pk__in=ids, dead=True)
            return int(rows.update(dead=False, attempts=0, due_at=self.now()))

        return self._write(requeue) if ids else 0

    def _do_outbox_discard(self, entry_ids: list[str]) -> int:
        ids = row_ids(entry_ids)
        if not ids:
            return 0
        deleted, _ = self._write(lambda: self.queryset(OutboxMessage).filter(pk__in=ids).delete())
        return int(deleted)
