"""The tables behind ``DatabaseStateAdapter``. Every row carries its ``namespace``.

Unique constraints make the database itself refuse duplicates. There is one subscription per
thread, one dedupe row per key, and one lock per key. Indexes serve the hot paths: lookup by
namespace and id, dedupe trimming by position, and pending entries in arrival order."""

from __future__ import annotations

from django.db import models

ID_LENGTH = 255


class Subscription(models.Model):
    """A thread the bot follows; each ``subscribe`` refreshes ``created_at``.

    State retention keeps a subscription touched within its window. It also keeps one whose
    thread's state was touched."""

    namespace = models.CharField(max_length=ID_LENGTH)
    thread_id = models.CharField(max_length=ID_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "thread_id"], name="chatstate_subscription_unique"
            )
        ]

    def __str__(self) -> str:
        return self.thread_id


class DedupeEntry(models.Model):
    """A handled message ``(adapter, message_id)`` in the namespace's dedupe window.

    It is done when ``owner`` is NULL. Otherwise a message cycle is handling it, and its
    claim is in progress. The claim is alive while ``expires_at`` is ahead, or while
    ``owner`` holds the lock ``thread_id``. ``seq`` orders the window. A new entry takes the
    newest ``seq`` + 1. Claims at the same instant may share one; ``id`` breaks the tie. The
    window keeps the newest ``limit``."""

    namespace = models.CharField(max_length=ID_LENGTH)
    adapter = models.CharField(max_length=ID_LENGTH)
    message_id = models.CharField(max_length=ID_LENGTH)
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # A claim in progress (a message cycle handling the message right now): its owner, the
    # thread whose lock it holds, and its own lease. NULL owner: done.
    owner = models.CharField(max_length=ID_LENGTH, null=True, blank=True)
    thread_id = models.CharField(max_length=ID_LENGTH, null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "dedupe entry"
        verbose_name_plural = "dedupe entries"
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "adapter", "message_id"], name="chatstate_dedupe_unique"
            )
        ]
        indexes = [models.Index(fields=["namespace", "seq", "id"], name="chatstate_dedupe_order")]

    def __str__(self) -> str:
        return f"{self.adapter}:{self.message_id}"


class DedupeWindow(models.Model):
    """Per namespace, how many dedupe entries the window holds; internal bookkeeping.

    Every change of the entries changes ``head`` by exactly as much, in the same
    transaction. So trimming to a limit never counts rows. A full window's claim moves one
    key in and one out. It leaves this row alone, so claims in a namespace do not queue on
    it."""

    namespace = models.CharField(max_length=ID_LENGTH, unique=True)
    head = models.BigIntegerField(default=0)
    # PostgreSQL's fast path: the newest minute whose ClaimMinute row it wrote, so that
    # the minute's later claims skip it (NULL: none yet).
    minute = models.DateTimeField(null=True, blank=True)
    # The newest position a withdrawal emptied (an abort, the admin's delete; NULL: none).
    # Until the window moves past it, PostgreSQL's fast path drops the oldest key, not the
    # one at a position count.
    gap = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.namespace}: {self.head}"

    def withdraw(self, count: int, newest: int | None) -> None:
        """Count out ``count`` entries just deleted, the newest at ``newest``, and save."""
        if count:
            self.head = max(0, self.head - count)
            self.gap = max(newest or 0, self.gap or 0)
            self.save(update_fields=["head", "gap"])


class ThreadState(models.Model):
    """A thread's JSON map."""

    namespace = models.CharField(max_length=ID_LENGTH)
    thread_id = models.CharField(max_length=ID_LENGTH)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "thread_id"], name="chatstate_threadstate_unique"
            )
        ]

    def __str__(self) -> str:
        return self.thread_id


class ChannelState(models.Model):
    """A channel's JSON map."""

    namespace = models.CharField(max_length=ID_LENGTH)
    channel_id = models.CharField(max_length=ID_LENGTH)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "channel_id"], name="chatstate_channelstate_unique"
            )
        ]

    def __str__(self) -> str:
        return self.channel_id


STRATEGY_CHOICES = [(s, s) for s in ("reject", "queue", "debounce", "concurrent")]


class Lock(models.Model):
    """A held thread lock: a lease that ends at ``expires_at``, on the database's clock.

    Slots serve a capped ``concurrent`` strategy: up to ``max_concurrent`` owners at once. A
    key held by slots records them in ``holders``, as ``{owner: {"acquired_at",
    "expires_at", "ttl", "metadata"}}``. Times are ISO 8601 UTC text. The row's ``owner`` is
    then ``""``. An owner is 1–255 characters, so no lock owner's check matches it. Its
    ``strategy`` is ``concurrent``. Its ``acquired_at`` is the earliest holder's, and its
    ``expires_at`` the latest holder's. So a row whose ``expires_at`` has passed is free for
    everyone. ``holders`` is NULL on a lock."""

    namespace = models.CharField(max_length=ID_LENGTH)
    key = models.CharField(max_length=ID_LENGTH)
    owner = models.CharField(max_length=ID_LENGTH)
    strategy = models.CharField(max_length=16, choices=STRATEGY_CHOICES)
    metadata = models.JSONField(default=dict)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The lease, in seconds: what a renewal (``release_lock(only_if_idle=True)``) grants.
    ttl = models.FloatField(null=True, blank=True)
    # Slots: their holders (see above); NULL on a lock.
    holders = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="chatstate_lock_unique")
        ]
        # No secondary index (removed by migration 0015): a lock row is inserted and deleted
        # by every message cycle, and the table holds live locks only, so prune and the
        # admin read it with a scan of the namespace.

    def __str__(self) -> str:
        return self.key

    @property
    def held_by(self) -> str:
        """Who holds the key, for people: its owner, or ``"2 holders"`` for slots."""
        if self.holders is None:
            return self.owner
        return f"{len(self.holders)} holder{'' if len(self.holders) == 1 else 's'}"


class PendingLockEntry(models.Model):
    """A message queued or debounced behind a lock; ``id`` orders arrival.

    ``taken_by`` is the slot holder whose drain was handed this entry; NULL means nobody. No
    other live holder is handed it while that holder's slot lives."""

    namespace = models.CharField(max_length=ID_LENGTH)
    key = models.CharField(max_length=ID_LENGTH)
    owner = models.CharField(max_length=ID_LENGTH)
    strategy = models.CharField(max_length=16, choices=STRATEGY_CHOICES)
    metadata = models.JSONField(default=dict)
    enqueued_at = models.DateTimeField()
    taken_by = models.CharField(max_length=ID_LENGTH, null=True, blank=True)

    class Meta:
        verbose_name = "pending lock entry"
        verbose_name_plural = "pending lock entries"
        indexes = [
            models.Index(fields=["namespace", "key", "id"], name="chatstate_pending_key"),
            models.Index(fields=["namespace", "owner"], name="chatstate_pending_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ← {self.owner}"


class ClaimMinute(models.Model):
    """Per namespace and minute, where the dedupe sequence stood at the minute's first claim.

    The first dedupe claim of each UTC minute records the ``seq`` its entry received. Later
    claims of the minute add nothing; on PostgreSQL, ``DedupeWindow.minute`` tells them to
    skip it. The claims of a minute are the next recorded minute's ``first_seq`` minus its
    own. So no dedupe entries are counted, which the window trims anyway. The admin overview
    charts them. Nothing else reads this table."""

    namespace = models.CharField(max_length=ID_LENGTH)
    minute = models.DateTimeField()
    first_seq = models.BigIntegerField()

    class Meta:
        verbose_name = "claims per minute"
        verbose_name_plural = "claims per minute"
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "minute"], name="chatstate_claimminute_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace} {self.minute:%Y-%m-%d %H:%M}: {self.first_seq}"


LIST_KEY_LENGTH = 320


class ListHead(models.Model):
    """A capped list, such as a thread's history: its positions and its expiry.

    Items are numbered ``1 … last_seq`` in append order. The list holds the items from
    ``first_seq`` to ``last_seq``. An append with a ``max_length`` raises ``first_seq`` to
    keep only the newest ``max_length``; it never falls. Rows below ``first_seq`` are
    trimmed items: no read sees them, and they are deleted in batches. A list whose
    ``expires_at`` is past reads as empty. Its next append starts it over."""

    namespace = models.CharField(max_length=ID_LENGTH)
    key = models.CharField(max_length=LIST_KEY_LENGTH)
    last_seq = models.BigIntegerField(default=0)
    first_seq = models.BigIntegerField(default=1)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "list"
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="chatstate_list_unique")
        ]

    def __str__(self) -> str:
        return self.key


class ListItem(models.Model):
    """One item of a capped list, at position ``seq``."""

    namespace = models.CharField(max_length=ID_LENGTH)
    key = models.CharField(max_length=LIST_KEY_LENGTH)
    seq = models.BigIntegerField()
    value = models.JSONField()

    class Meta:
        verbose_name = "list item"
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "key", "seq"], name="chatstate_listitem_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key}[{self.seq}]"


class OutboxMessage(models.Model):
    """A reply staged by ``msg.send``, committed with its message, not yet delivered.

    ``id`` orders commits. ``key`` is the idempotency key the sender receives. An entry is
    due at ``due_at``. A dispatcher leases it while sending: ``lease_owner`` holds it until
    ``lease_until``. ``dead`` entries are kept, and never retried until requeued."""

    namespace = models.CharField(max_length=ID_LENGTH)
    key = models.CharField(max_length=ID_LENGTH)
    thread_id = models.CharField(max_length=ID_LENGTH)
    payload = models.JSONField()
    attempts = models.BigIntegerField(default=0)
    dead = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    due_at = models.DateTimeField()
    lease_owner = models.CharField(max_length=ID_LENGTH, null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox"
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="chatstate_outbox_unique")
        ]
        indexes = [
            models.Index(fields=["namespace", "thread_id", "id"], name="chatstate_outbox_thread"),
            models.Index(fields=["namespace", "id"], name="chatstate_outbox_order"),
        ]

    def __str__(self) -> str:
        return self.key
