"""factory-boy factories for the chatstate models (rows made directly, not by an adapter).

Every row lands in the namespace ``"factory"`` unless told otherwise; locks are live for five
minutes from now by default.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from chatstate.models import (
    ChannelState,
    DedupeEntry,
    Lock,
    OutboxMessage,
    PendingLockEntry,
    Subscription,
    ThreadState,
)

NAMESPACE = "factory"


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    namespace = NAMESPACE
    thread_id = factory.Sequence(lambda n: f"slack:C1:{n}")


class DedupeEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DedupeEntry

    namespace = NAMESPACE
    adapter = "slack"
    message_id = factory.Sequence(lambda n: f"m{n}")
    seq = factory.Sequence(lambda n: n + 1)


class ThreadStateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ThreadState

    namespace = NAMESPACE
    thread_id = factory.Sequence(lambda n: f"slack:C1:{n}")
    value = factory.LazyFunction(lambda: {"turns": 1})


class ChannelStateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelState

    namespace = NAMESPACE
    channel_id = factory.Sequence(lambda n: f"slack:C{n}")
    value = factory.LazyFunction(lambda: {"topic": "support"})


class LockFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lock

    namespace = NAMESPACE
    key = factory.Sequence(lambda n: f"slack:C1:{n}")
    owner = factory.Sequence(lambda n: f"worker-{n}")
    strategy = "queue"
    metadata = factory.LazyFunction(dict)
    acquired_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.acquired_at + timedelta(minutes=5))


class PendingLockEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PendingLockEntry

    namespace = NAMESPACE
    key = factory.Sequence(lambda n: f"slack:C1:{n}")
    owner = factory.Sequence(lambda n: f"worker-{n}")
    strategy = "queue"
    metadata = factory.LazyFunction(dict)
    enqueued_at = factory.LazyFunction(timezone.now)


class OutboxMessageFactory(factory.django.DjangoModelFactory):
    """An outbox entry as a commit writes it: due at once, not leased."""

    class Meta:
        model = OutboxMessage

    namespace = NAMESPACE
    key = factory.Sequence(lambda n: f"slack:m{n}:0")
    thread_id = factory.Sequence(lambda n: f"slack:C1:{n}")
    payload = factory.LazyFunction(lambda: {"text": "hello"})
    created_at = factory.LazyFunction(timezone.now)
    due_at = factory.LazyAttribute(lambda o: o.created_at)
