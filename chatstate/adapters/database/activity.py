"""How live a database adapter's namespace is, for ``StateAdapter.activity``.

Both database paths share it. It is a few ORM queries in one read transaction. Times are
the database's clock.

The locks held are counted on the ``(namespace, expires_at)`` index. The newest claim is
one row of the ``(namespace, seq, id)`` index. The claims in progress and the newest lock
and state writes scan the namespace's rows. No index serves them. The dedupe window holds
at most ``DEDUPE_LIMIT`` keys, 1,000 by default.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Max, Q

from chatstate.models import ChannelState, DedupeEntry, Lock, ThreadState

T = TypeVar("T")


class ActivityRows:
    """``_do_activity`` of :class:`~chatstate.adapters.database.DatabaseStateAdapter`.

    ``queryset``, ``now``, ``live_claims`` and ``_read`` are the adapter's."""

    if TYPE_CHECKING:  # the adapter's; a stub here would shadow them

        def queryset(self, model: Any) -> Any: ...

        def now(self) -> datetime: ...

        def live_claims(self, now: datetime) -> Q: ...

        def _read(self, fn: Callable[[], T]) -> T: ...

    def _do_activity(self) -> tuple[int, int, float | None]:
        """Locks held, live claims in progress, and the age of the newest write.

        The newest write is a claim, a lock taken or a state written. All three figures use
        one reading of the database's clock."""

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
