"""``StateAdapter``: the one interface every backend offers.

Its public methods check their arguments first. So every backend refuses bad input the same
way, before anything changes. They fill in the defaults of the ``CHATSTATE`` setting. They
call the backend's hooks, the contract in :mod:`.hooks`. They send the signals of
:mod:`chatstate.signals`. The async twins (``a…``) are in :mod:`.asyncapi`. The message
cycle of ``handle_message`` is in :mod:`chatstate.cycle`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from chatstate import conf
from chatstate.adapters.asyncapi import AsyncStateAPI
from chatstate.adapters.hooks import StateFn
from chatstate.cycle import AsyncMessageCycle, MessageCycle
from chatstate.liveness import DEFAULT_QUIET_FOR, activity_report
from chatstate.outbox import dispatch, resolve_sender
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot, snapshot_from
from chatstate.staging import list_append
from chatstate.types import DedupeKey, LockResult, OutboxEntry, PendingEntry, Strategy
from chatstate.validation import (
    check_dedupe_key,
    check_id,
    check_limit,
    check_list_key,
    check_seconds,
    check_ttl,
    dump_map,
    history_key,
)

A = TypeVar("A", bound="StateAdapter")


class StateAdapter(AsyncStateAPI):
    """The state a chat bot keeps between webhook deliveries, for one namespace.

    Every method behaves the same on every backend; the conformance suite checks it.
    Identifiers are ``str`` of 1–255 characters. Otherwise ``TypeError`` or ``ValueError``
    is raised and nothing changes. Every operation is atomic. Locks are leases measured on
    the backend's clock."""

    # -- subscriptions -------------------------------------------------------------------

    def is_subscribed(self, thread_id: str) -> bool:
        """Whether ``thread_id`` is subscribed."""
        return self._do_is_subscribed(check_id(thread_id, "thread_id"))

    def subscribe(self, thread_id: str) -> None:
        """Subscribe ``thread_id``; subscribing twice is the same as once."""
        self._do_subscribe(check_id(thread_id, "thread_id"))

    def unsubscribe(self, thread_id: str) -> None:
        """Unsubscribe ``thread_id``; a thread that is not subscribed stays so."""
        self._do_unsubscribe(check_id(thread_id, "thread_id"))

    # -- state maps ----------------------------------------------------------------------

    def thread_state(self, thread_id: str) -> dict[str, Any]:
        """The thread's stored map, as a copy the caller may mutate; ``{}`` when none."""
        return self._do_get_state("thread", check_id(thread_id, "thread_id"))

    def put_thread_state(self, thread_id: str, value: dict[str, Any]) -> None:
        """Replace the thread's whole map with ``value``, a JSON-serializable ``dict``.

        ``value`` must be a dict with ``str`` keys that ``json.dumps`` accepts. Otherwise
        ``TypeError`` is raised and nothing is stored."""
        thread_id = check_id(thread_id, "thread_id")
        self._do_put_state("thread", thread_id, value, dump_map(value))

    def channel_state(self, channel_id: str) -> dict[str, Any]:
        """The channel's stored map, as a copy the caller may mutate; ``{}`` when none."""
        return self._do_get_state("channel", check_id(channel_id, "channel_id"))

    def put_channel_state(self, channel_id: str, value: dict[str, Any]) -> None:
        """Replace the channel's whole map, with the rules of :meth:`put_thread_state`."""
        channel_id = check_id(channel_id, "channel_id")
        self._do_put_state("channel", channel_id, value, dump_map(value))

    def update_thread_state(self, thread_id: str, fn: StateFn) -> dict[str, Any]:
        """Apply ``fn(current_copy) -> new_map`` to the thread's map atomically.

        No concurrent update is lost: ``fn`` runs while the map is locked against other
        updates. It returns the stored map. If ``fn`` returns something
        :meth:`put_thread_state` would refuse, ``TypeError`` is raised. An exception from
        ``fn`` propagates. In both cases nothing is stored."""
        return self._do_update_state("thread", check_id(thread_id, "thread_id"), fn)

    def update_channel_state(self, channel_id: str, fn: StateFn) -> dict[str, Any]:
        """:meth:`update_thread_state`, for a channel's map."""
        return self._do_update_state("channel", check_id(channel_id, "channel_id"), fn)

    # -- lists and histories -------------------------------------------------------------

    def append_to_list(
        self, key: str, value: Any, *, max_length: int | None = None, ttl: float | None = None
    ) -> None:
        """Append ``value``, any JSON value, to the list ``key`` as its newest item.

        The list then keeps its newest ``max_length`` items. ``ttl`` in seconds renews its
        expiry. An expired list reads as empty. Values are checked like state values."""
        self._do_append_to_list(list_append(key, value, max_length, ttl, "append_to_list"))

    def get_list(self, key: str, limit: int | None = None) -> list[Any]:
        """The list's items, oldest first; with ``limit``, the newest ``limit`` of them."""
        n = None if limit is None else check_limit(limit)
        return self._do_get_list(check_list_key(key), n)

    def delete_list(self, key: str) -> int:
        """Delete the list ``key``; return how many items it held."""
        return self._do_delete_list(check_list_key(key))

    def history(self, thread_id: str, limit: int | None = None) -> list[Any]:
        """The thread's history, oldest first; with ``limit``, the newest ``limit`` items."""
        return self.get_list(history_key(check_id(thread_id, "thread_id")), limit)

    # -- the outbox ----------------------------------------------------------------------

    def outbox(self, thread_id: str | None = None) -> list[OutboxEntry]:
        """The entries not yet delivered, oldest first; dead ones included."""
        return self._do_outbox(None if thread_id is None else check_id(thread_id, "thread_id"))

    def dispatch_outbox(
        self, sender: Callable[[OutboxEntry], Any] | str | None = None, *, limit: int = 100
    ) -> dict[str, int]:
        """Deliver up to ``limit`` due entries through ``sender``.

        It returns the counts ``{"sent", "retried", "dead"}``. Entries are leased while they
        are sent. So dispatchers on many hosts never take the same one. One thread's entries
        leave in commit order. A sender that raises leaves its entry due again after a
        backoff, set by ``OUTBOX_RETRY_DELAYS``. After ``OUTBOX_MAX_ATTEMPTS`` tries the
        entry is ``dead``. ``sender`` defaults to ``OUTBOX_SENDER``."""
        settings = conf.chatstate_settings()
        return dispatch(
            self,
            resolve_sender(sender),
            check_limit(limit),
            lease=check_ttl(settings["OUTBOX_LEASE"]),
            max_attempts=check_limit(settings["OUTBOX_MAX_ATTEMPTS"], "OUTBOX_MAX_ATTEMPTS"),
            delays=settings["OUTBOX_RETRY_DELAYS"],
        )

    def requeue_outbox(self, entry_ids: list[str]) -> int:
        """Make the given dead entries due now, their attempts reset; return how many."""
        return self._do_outbox_requeue([str(i) for i in entry_ids])

    def discard_outbox(self, entry_ids: list[str]) -> int:
        """Remove the given entries without delivering them; return how many."""
        return self._do_outbox_discard([str(i) for i in entry_ids])

    # -- dedupe --------------------------------------------------------------------------

    def is_duplicate(self, key: DedupeKey | list[str]) -> bool:
        """Whether the dedupe key ``(adapter_name, message_id)`` is in the window.

        That is, done, or handled by a cycle whose lease runs."""
        return self._do_is_duplicate(check_dedupe_key(key))

    def mark_dedupe(
        self, key: DedupeKey | list[str], limit: int | None = None, *, min_age: float | None = None
    ) -> None:
        """Record ``key`` as the newest, then drop the oldest until at most ``limit`` remain.

        A key younger than ``min_age`` seconds is never dropped. ``limit`` defaults to the
        ``DEDUPE_LIMIT`` setting, and ``min_age`` to ``DEDUPE_MIN_AGE``. So the window is
        the newest ``limit`` keys plus every key younger than ``min_age``. A key already in
        the window keeps its place, and nothing changes. A claim in progress is never
        dropped. Under contention a trim may leave a key over; the next claim drops it."""
        self.claim_dedupe(key, limit, min_age=min_age)

    def claim_dedupe(
        self, key: DedupeKey | list[str], limit: int | None = None, *, min_age: float | None = None
    ) -> bool:
        """Atomically "mark ``key`` unless it is a duplicate".

        It is True for exactly one caller per key while the key is in the window. This holds
        under any concurrency. The key is then marked as by :meth:`mark_dedupe`."""
        key = check_dedupe_key(key)
        n = self.dedupe_limit if limit is None else check_limit(limit)
        return self._do_claim_dedupe(key, n, self._min_age(min_age))

    # -- locks ---------------------------------------------------------------------------

    def lock(
        self,
        key: str,
        owner: str,
        strategy: Strategy | str = Strategy.REJECT,
        metadata: Mapping[str, Any] | None = None,
        *,
        ttl: float | None = None,
        max_pending: int | None = None,
        overflow: str | None = None,
        max_concurrent: int | None = None,
    ) -> LockResult:
        """Take the lock ``key`` for ``owner``, or apply ``strategy`` when it is held.

        A free lock, or one whose lease expired, is ``acquired``. The lease is ``ttl``
        seconds, ``LOCK_TTL`` by default. Pending entries left behind stay for the new
        holder. A held lock, by anyone and ``owner`` too, follows the strategy:

        * ``reject`` returns ``busy``, and nothing changes.
        * ``queue`` returns ``queued`` and appends the entry. The queue holds at most
          ``max_pending``, ``MAX_PENDING`` by default. When it is full, ``overflow``
          decides; its default is ``OVERFLOW``. ``drop_oldest`` drops the oldest entry.
          ``drop_newest`` returns ``dropped`` and keeps the queue.
        * ``debounce`` returns ``debounced``. The pending list becomes just this entry.
        * ``concurrent`` is always ``acquired`` and records nothing.

        ``max_concurrent`` caps ``concurrent``. Then ``acquired`` takes one of
        ``max_concurrent`` slots, each with its own lease. ``release_lock`` and
        ``extend_lock`` act on the owner's slot. When the cap is reached, or another
        strategy holds the key, the entry is ``queued`` as above. The ``pending_dropped``
        signal reports dropped entries."""
        request = self._lock_request(
            key, owner, strategy, metadata, ttl, max_pending, overflow, max_concurrent
        )
        if request.strategy is Strategy.CONCURRENT and not request.capped:
            return LockResult.ACQUIRED
        return self._locked(request, self._do_lock(request))

    def extend_lock(self, key: str, owner: str, ttl: float | None = None) -> bool:
        """Renew the lease to ``ttl`` seconds from now if ``owner`` holds ``key`` unexpired.

        True when renewed; ``ttl`` then becomes the lock's lease. Otherwise False, and
        nothing changes."""
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        return self._do_extend_lock(key, owner, self.lock_ttl if ttl is None else check_ttl(ttl))

    def release_lock(
        self, key: str, owner: str, *, only_if_idle: bool = False
    ) -> list[PendingEntry]:
        """Release ``key`` held by ``owner``; return its pending entries in arrival order.

        The lock and its pending list are removed together. ``only_if_idle=True`` makes it
        one atomic step. If nothing is pending, the lock is released and ``[]`` returned.
        Otherwise the lock stays ``owner``'s, its lease renewed by its ttl, and the pending
        entries are removed and returned. Entries older than ``PENDING_TTL`` are dropped
        instead, and reported by ``pending_dropped``. :class:`NotOwner` is raised when
        someone else holds the key, or nobody does. Nothing changes then. An expired holder
        may still release while nobody has taken the key over."""
        key, owner = check_id(key, "key"), check_id(owner, "owner")
        return self._handed(key, self._do_release_lock(key, owner, bool(only_if_idle)))

    def take_pending(self, key: str, owner: str, limit: int | None = None) -> list[PendingEntry]:
        """Remove and return up to ``limit`` oldest pending entries of the lock ``owner`` holds.

        Without ``limit``, all of them. They are handed over as by :meth:`release_lock`. The
        lock stays. :class:`NotOwner` otherwise."""
        key, owner = check_id(key, "key"), check_id(owner, "owner")
        n = None if limit is None else check_limit(limit)
        return self._handed(key, self._do_take_pending(key, owner, n))

    def force_release_lock(self, key: str) -> list[PendingEntry]:
        """Remove the lock ``key`` and its pending list, whoever holds it; return the entries."""
        return self._do_force_release_lock(check_id(key, "key"))

    # -- the message cycle ---------------------------------------------------------------

    def handle_message(
        self,
        dedupe_key: DedupeKey | list[str],
        *,
        thread_id: str,
        owner: str,
        strategy: Strategy | str = Strategy.REJECT,
        metadata: Mapping[str, Any] | None = None,
        dedupe_limit: int | None = None,
        ttl: float | None = None,
        keepalive: bool = False,
        max_pending: int | None = None,
        overflow: str | None = None,
        min_age: float | None = None,
        channel_id: str | None = None,
        history: int = 0,
        max_concurrent: int | None = None,
    ) -> MessageCycle:
        """A context manager for one webhook delivery: claim, subscription, lock, state.

        ``channel_id`` is the message's channel, for ``msg.channel``. ``history`` is how
        many of the thread's newest history items the entry step reads into
        ``msg.history.items``. ``max_concurrent`` caps ``concurrent`` at this many holders
        of the thread across processes. The excess is queued for their ``drain()``.
        :class:`chatstate.cycle.MessageCycle` says what is guaranteed on entry, on a clean
        exit and when the block raises. It also covers ``drain``, ``keepalive`` and the
        effects a block stages. Those effects are one unit of work with the message."""
        request = self._cycle_request(
            dedupe_key, thread_id, owner, strategy, metadata, dedupe_limit, ttl, keepalive,
            max_pending, overflow, min_age, channel_id, history, max_concurrent,
        )  # fmt: skip
        return MessageCycle(self, request, self.history_limit, self.history_ttl)

    def ahandle_message(
        self,
        dedupe_key: DedupeKey | list[str],
        *,
        thread_id: str,
        owner: str,
        strategy: Strategy | str = Strategy.REJECT,
        metadata: Mapping[str, Any] | None = None,
        dedupe_limit: int | None = None,
        ttl: float | None = None,
        keepalive: bool = False,
        max_pending: int | None = None,
        overflow: str | None = None,
        min_age: float | None = None,
        channel_id: str | None = None,
        history: int = 0,
        max_concurrent: int | None = None,
    ) -> AsyncMessageCycle:
        """The async twin of :meth:`handle_message`: ``async with store.ahandle_message(...)``."""
        request = self._cycle_request(
            dedupe_key, thread_id, owner, strategy, metadata, dedupe_limit, ttl, keepalive,
            max_pending, overflow, min_age, channel_id, history, max_concurrent,
        )  # fmt: skip
        return AsyncMessageCycle(self, request, self.history_limit, self.history_ttl)

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The whole state of this adapter's namespace, normalized."""
        return self._do_snapshot()

    def load_snapshot(self, snapshot: Snapshot | Mapping[str, Any], merge: bool = False) -> None:
        """Replace this namespace's state, all or nothing; ``merge=True`` merges into it.

        When merging, incoming values win on conflicts. Incoming pending entries are
        appended. ``snapshot`` is checked first and strictly, by
        :func:`chatstate.snapshot_from`. A problem raises ``InvalidSnapshot``, a
        ``ValueError``, or ``SnapshotNotJSON``, a ``TypeError``. The error lists every
        problem with its path, and nothing changes."""
        self._do_load_snapshot(snapshot_from(snapshot), bool(merge))

    @classmethod
    def from_snapshot(cls: type[A], snapshot: Snapshot | Mapping[str, Any], **options: Any) -> A:
        """A new adapter built with ``options`` whose state is ``snapshot``."""
        adapter = cls(**options)
        adapter.load_snapshot(snapshot)
        return adapter

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """The namespace's state as one stream per section.

        Use it like this::

            with adapter.snapshot_sections() as sections:
                write_snapshot(sections, out)

        Inside the ``with`` block the sections describe one consistent state. Their orders
        are those :class:`~chatstate.snapshots.sections.SnapshotSections` documents. They
        are sorted where the JSON form is sorted, and ``dedupe_order`` is oldest first. Each
        section is consumed at most once. ``counts`` gives each section's length where
        known, for progress. The default builds :meth:`snapshot` in memory. A backend
        holding a lot of state overrides it to stream."""
        return nullcontext(SnapshotSections.from_snapshot(self.snapshot()))

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """:meth:`load_snapshot` from streamed ``sections``.

        It replaces this namespace's state, all or nothing. ``merge=True`` merges into it,
        with the merge rules of :meth:`load_snapshot`. ``sections`` hold entries
        ``validate_snapshot`` accepts, with no duplicates. They may be in file order rather
        than sorted. ``dedupe_order`` is the authority, and ``dedupe`` may be empty. Each
        section may be consumed once, in any order. The default collects them into a
        ``Snapshot`` and calls :meth:`load_snapshot`. A backend holding a lot of state
        overrides it to stream."""
        self.load_snapshot(sections.to_snapshot(), merge)

    # -- housekeeping --------------------------------------------------------------------

    def activity(self, quiet_for: float = DEFAULT_QUIET_FOR) -> dict[str, Any]:
        """How live this namespace is, on the backend's clock; nothing changes.

        - ``locks_held``: locks whose lease runs.
        - ``claims_in_progress``: message cycles handling a message, their lease running.
        - ``last_activity_age``: seconds since the newest dedupe claim, lock taken or state
          written. Loading a snapshot counts. ``None`` when none is recorded.
        - ``live``: a lock held, a claim in progress, or activity within ``quiet_for``
          seconds.
        - ``quiet_for``: the value given.

        A replace restore (``chatstate_restore``) refuses a live namespace. ``ValueError``
        when ``quiet_for`` is not a number of seconds >= 0."""
        quiet_for = check_seconds(quiet_for, "quiet_for")
        return activity_report(*self._do_activity(), quiet_for)

    def prune(
        self,
        dedupe_limit: int | None = None,
        dry_run: bool = False,
        *,
        state_older_than: float | None = None,
    ) -> dict[str, int]:
        """Housekeeping; return what was removed.

        It removes expired locks, but never their pending entries. It trims the dedupe
        window to ``dedupe_limit``, ``DEDUPE_LIMIT`` by default, keeping keys younger than
        ``DEDUPE_MIN_AGE``. It drops pending entries older than ``PENDING_TTL``. It also
        drops the queues of locks no live holder has, once their newest entry is that old.
        With ``state_older_than`` in seconds, it removes thread and channel states and
        subscriptions not touched for that long. It removes the lists whose ttl ran out. It
        returns the counts ``{"expired_locks", "dedupe_trimmed", "pending_expired",
        "states_removed", "subscriptions_removed", "lists_expired"}``. With ``dry_run`` it
        counts what would be removed and removes nothing."""
        request = self._prune_request(dedupe_limit, dry_run, state_older_than)
        return self._pruned(self._do_prune(request))
