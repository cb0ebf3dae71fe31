"""The chatstate admin: inspect and operate chat state.

It has eight read-only pages and a namespace overview. ``DedupeWindow`` is internal
bookkeeping and is not listed. List items show on their list's page. The actions go through
the adapter: ``force_release``, ``unsubscribe``, ``delete_entries``, and the outbox's
``requeue`` and ``discard``. Every page reads through indexes, so it stays fast at millions
of rows."""

from __future__ import annotations

from django.contrib import admin

from chatstate.admin.dedupe import DedupeEntryAdmin
from chatstate.admin.lists import ListHeadAdmin
from chatstate.admin.locks import LockAdmin, PendingLockEntryAdmin
from chatstate.admin.outbox import OutboxMessageAdmin
from chatstate.admin.state import ChannelStateAdmin, SubscriptionAdmin, ThreadStateAdmin
from chatstate.models import (
    ChannelState,
    DedupeEntry,
    ListHead,
    Lock,
    OutboxMessage,
    PendingLockEntry,
    Subscription,
    ThreadState,
)

admin.site.register(Subscription, SubscriptionAdmin)
admin.site.register(DedupeEntry, DedupeEntryAdmin)
admin.site.register(ThreadState, ThreadStateAdmin)
admin.site.register(ChannelState, ChannelStateAdmin)
admin.site.register(Lock, LockAdmin)
admin.site.register(PendingLockEntry, PendingLockEntryAdmin)
admin.site.register(ListHead, ListHeadAdmin)
admin.site.register(OutboxMessage, OutboxMessageAdmin)

__all__ = [
    "ChannelStateAdmin",
    "DedupeEntryAdmin",
    "ListHeadAdmin",
    "LockAdmin",
    "OutboxMessageAdmin",
    "PendingLockEntryAdmin",
    "SubscriptionAdmin",
    "ThreadStateAdmin",
]
