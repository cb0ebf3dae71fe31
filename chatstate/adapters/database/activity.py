"""How live a database adapter's namespace is (``StateAdapter.activity``): a few ORM queries
in one read transaction, on the database's clock (the ORM path and the PostgreSQL fast path
alike).

Costs: locks held, ``(namespace, expires_at)`` index; the newest claim, the window's
``(namespace, seq, id)`` index (one row); claims in progress and the newest lock and state
writes, a scan of the namespace's dedupe window, locks and state rows (no index serves
them: a namespace's window holds ``DEDUPE_LIMIT`` keys, 1,000 by default).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Max, Q

from chatstate.models import ChannelState, DedupeEntry, Lock, ThreadState

T = TypeVar("T")


class ActivityRows:
    """``_do_activity`` of :class:`~chatstate.adapters.database.DatabaseStateAdapter`
    (``queryset``, ``now``, ``live_claims`` and ``_read`` are the adapter's)."""

    if TYPE_CHECKING:  # the adapter's (a stub here would shadow them)

        def queryset(self, model: Any) -> Any: ...

        def now(self) -> datetime: ...

        def live_claims(self, now: datetime) -> Q: ...

        def _read(self, fn: Callable[[], T]) -> T: ...

    def _do_activity(self) -> tuple[int, int, float | None]:
        """Locks whose lease runs, claims in progress and alive, and the age of the newest
        claim, lock taken or state written, against one reading of the database's clock."""

        def read() -> tuple[int, int, float | None]:
            q, now = self.queryset, self.now()
            held = q(Lock).filter(expires_at__gt=now).count()
            in_progress = Q(thread_id__isnull=False) & self.live_claims(now)
            claims = q(DedupeEntry).filter(in_progress).count()
            newest = [
                q(DedupeEntry).order_by("-seq", "-id").values_list("created_at", flat=True).first(),
                q(Lock).aggregate(newest=Max("acquired_at"))["newest"],
                q(ThreadState).aggregate(newest=Max("updated_at"))["newest"],
                q(ChannelState).aggregate(newest=Max("updated_at"))["newest"],
            ]
            last = max((moment for moment in newest if moment is not None), default=None)
            age = None if last is None else max((now - last).total_seconds(), 0.0)
            return held, claims, age

        return self._read(read)
