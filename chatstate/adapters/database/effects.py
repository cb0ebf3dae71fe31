"""A commit's staged effects on the ORM path (a mixin of ``DatabaseStateAdapter``): channel
operations, the subscription, list appends and outbox entries, written inside the commit's
own transaction, after its state and claim.

Rows are locked in the adapter's order (see :mod:`.orm`): the channel row, the list heads
(in key order), the subscription, then the outbox rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chatstate.adapters.database.lists import ListRows
from chatstate.adapters.database.outbox import OutboxRows
from chatstate.calls import ChannelOp, Staged
from chatstate.channelops import apply_ops
from chatstate.models import ChannelState, PendingLockEntry, Subscription


class EffectRows(ListRows, OutboxRows):
    """What a commit writes besides its state and claim, and the list and outbox hooks
    (``queryset``, ``using``, ``now`` and the transaction runners come from the adapter)."""

    def touch_subscription(self, thread_id: str, now: datetime) -> None:
        """Inside a write transaction: subscribe ``thread_id``, touched at ``now`` (kept by
        state retention)."""
        rows = self.queryset(Subscription).filter(thread_id=thread_id)
        if not rows.update(created_at=now):
            row = Subscription(namespace=self.namespace, thread_id=thread_id)
            Subscription.objects.using(self.using).bulk_create([row], ignore_conflicts=True)

    def apply_channel_ops(self, channel_id: str, ops: Sequence[ChannelOp]) -> None:
        """Inside a write transaction: apply ``ops`` to the map of ``channel_id``, its row
        locked (``select_for_update()``) or created (an insert race raises
        ``IntegrityError``: the caller's ``_retry`` runs the transaction again)."""
        row = self.queryset(ChannelState).select_for_update().filter(channel_id=channel_id).first()
        value = row.value if row is not None and isinstance(row.value, dict) else {}
        apply_ops(value, tuple(ops))
        if row is None:
            ChannelState.objects.using(self.using).create(
                namespace=self.namespace, channel_id=channel_id, value=value
            )
        else:
            row.value = value
            row.save(update_fields=["value", "updated_at"])

    def write_effects(self, thread_id: str, staged: Staged) -> None:
        """Inside a commit's write transaction, holding the cycle's lock (or, ``concurrent``,
        its claim): write everything ``staged`` holds besides the state and the claim. The
        lists, the subscription and the outbox are judged at one instant of the database's
        clock, read once their rows are locked. The entries gather handed out
        (``staged.taken``) are removed first: their queue is the cycle's own thread's."""
        if staged.taken:
            taken = [int(i) for i in staged.taken if i.isascii() and i.isdigit()]
            self.queryset(PendingLockEntry).filter(key=thread_id, id__in=taken).delete()
        if staged.channel and staged.channel_id is not None:
            self.apply_channel_ops(staged.channel_id, staged.channel)
        heads = self.lock_list_heads({a.key for a in staged.lists}) if staged.lists else {}
        if staged.subscribe is False:
            self.queryset(Subscription).filter(thread_id=thread_id).delete()
        if not (staged.lists or staged.sends or staged.subscribe):
            return
        now = self.now()
        if staged.lists:
            self.append_rows(staged.lists, heads, now)
        if staged.subscribe:
            self.touch_subscription(thread_id, now)
        if staged.sends:
            self.insert_sends(staged.sends, now)
