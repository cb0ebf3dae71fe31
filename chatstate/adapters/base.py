"""``StateAdapter``: the one interface every backend offers.

The public methods here check their arguments (so every backend refuses bad input the same
way, before anything changes), fill in the defaults of the ``CHATSTATE`` setting, call the
backend's hooks (:mod:`.hooks`: the contract a backend implements) and send the signals of
:mod:`chatstate.signals`. The async twins (``a…``) are in :mod:`.asyncapi`; the message
cycle of ``handle_message`` in :mod:`chatstate.cycle`.
"""

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

    Every method behaves identically on every backend (the conformance suite checks it):
    identifiers are ``str`` of 1–255 characters (``TypeError`` / ``ValueError`` otherwise,
    with nothing changed), every operation is atomic, and locks are leases measured on the
    backend's clock.
    """

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
        """The thread's stored map (``{}`` when none), as a copy the caller may mutate."""
        return self._do_get_state("thread", check_id(thread_id, "thread_id"))

    def put_thread_state(self, thread_id: str, value: dict[str, Any]) -> None:
        """Replace the thread's whole map with ``value`` (a JSON-serializable ``dict``).

        ``TypeError``, nothing stored, when ``value`` is not a dict with ``str`` keys that
        ``json.dumps`` accepts.
        """
        thread_id = check_id(thread_id, "thread_id")
        self._do_put_state("thread", thread_id, value, dump_map(value))

    def channel_state(self, channel_id: str) -> dict[str, Any]:
        """The channel's stored map (``{}`` when none), as a copy the caller may mutate."""
        return self._do_get_state("channel", check_id(channel_id, "channel_id"))

    def put_channel_state(self, channel_id: str, value: dict[str, Any]) -> None:
        """Replace the channel's whole map, with the rules of :meth:`put_thread_state`."""
        channel_id = check_id(channel_id, "channel_id")
        self._do_put_state("channel", channel_id, value, dump_map(value))

    def update_thread_state(self, thread_id: str, fn: StateFn) -> dict[str, Any]:
        """Apply ``fn(current_copy) -> new_map`` to the thread's map atomically.

        No concurrent update is lost: ``fn`` runs while the map is locked against other
        updates. Returns the stored map. ``TypeError``, nothing stored, when ``fn`` returns
        something :meth:`put_thread_state` would refuse; an exception from ``fn`` propagates
        and nothing is stored.
        """
        return self._do_update_state("thread", check_id(thread_id, "thread_id"), fn)

    def update_channel_state(self, channel_id: str, fn: StateFn) -> dict[str, Any]:
        """:meth:`update_thread_state`, for a channel's map."""
        return self._do_update_state("channel", check_id(channel_id, "channel_id"), fn)

    # -- lists and histories -------------------------------------------------------------

    def append_to_list(
        self, key: str, value: Any, *, max_length: int | None = None, ttl: float | None = None
    ) -> None:
        """Append ``value`` (any JSON value) to the list ``key`` as its newest item.

        The list then keeps its newest ``max_length`` items. ``ttl`` (seconds) renews its
        expiry; an expired list reads as empty. Values are checked like state values.
        """
        self._do_append_to_list(list_append(key, value, max_length, ttl, "append_to_list"))

    def get_list(self, key: str, limit: int | None = None) -> list[Any]:
        """The list's items, oldest first; with ``limit``, the newest ``limit`` of them."""
        n = None if limit is None else check_limit(limit)
        return self._do_get_list(check_list_key(key), n)

    def delete_list(self, key: str) -> int:
        """Delete the list ``key``; how many items it held."""
        return self._do_delete_list(check_list_key(key))

    def history(self, thread_id: str, limit: int | None = None) -> list[Any]:
        """The thread's history, oldest first; with ``limit``, the newest ``limit`` items."""
        return self.get_list(history_key(check_id(thread_id, "thread_id")), limit)

    # -- the outbox ----------------------------------------------------------------------

    def outbox(self, thread_id: str | None = None) -> list[OutboxEntry]:
        """The entries not yet delivered (dead ones included), oldest first."""
        return self._do_outbox(None if thread_id is None else check_id(thread_id, "thread_id"))

    def dispatch_outbox(
        self, sender: Callable[[OutboxEntry], Any] | str | None = None, *, limit: int = 100
    ) -> dict[str, int]:
        """Deliver up to ``limit`` due entries through ``sender``; the counts ``{"sent",
        "retried", "dead"}``.

        Entries are leased while they are sent, so dispatchers on many hosts never take the
        same one; one thread's entries leave in commit order. A sender that raises leaves
        its entry due again after a backoff (``OUTBOX_RETRY_DELAYS``), ``dead`` after
        ``OUTBOX_MAX_ATTEMPTS`` tries. ``sender`` defaults to ``OUTBOX_SENDER``.
        """
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
        """Make the given (dead) entries due now, their attempts reset; how many."""
        return self._do_outbox_requeue([str(i) for i in entry_ids])

    def discard_outbox(self, entry_ids: list[str]) -> int:
        """Remove the given entries without delivering them; how many."""
        return self._do_outbox_discard([str(i) for i in entry_ids])

    # -- dedupe --------------------------------------------------------------------------

    def is_duplicate(self, key: DedupeKey | list[str]) -> bool:
        """Whether the dedupe key ``(adapter_name, message_id)`` is in the window (done, or
        being handled by a cycle whose lease runs)."""
        return self._do_is_duplicate(check_dedupe_key(key))

    def mark_dedupe(
        self, key: DedupeKey | list[str], limit: int | None = None, *, min_age: float | None = None
    ) -> None:
        """Record ``key`` as the newest, then drop the oldest until at most ``limit`` remain
        — never a key younger than ``min_age`` seconds.

        ``limit`` defaults to the ``DEDUPE_LIMIT`` setting, ``min_age`` to ``DEDUPE_MIN_AGE``:
        the window is the newest ``limit`` keys plus every key younger than ``min_age``. A key
        already in the window keeps its place and nothing changes. A claim in progress is
        never dropped. Under contention a trim may leave a key over; the next claim drops it.
        """
        self.claim_dedupe(key, limit, min_age=min_age)

    def claim_dedupe(
        self, key: DedupeKey | list[str], limit: int | None = None, *, min_age: float | None = None
    ) -> bool:
        """Atomically "mark ``key`` unless it is a duplicate".

        True for exactly one caller per key while it is in the window, whatever the
        concurrency; the key is then marked as by :meth:`mark_dedupe`.
        """
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

        * ``concurrent``: always ``acquired``, nothing recorded — unless ``max_concurrent``
          caps it: then ``acquired`` takes one of ``max_concurrent`` slots, each with its own
          lease (``release_lock`` and ``extend_lock`` act on the owner's slot); the cap
          reached (or the key held by another strategy), the entry is ``queued`` as below.
        * lock free, or its lease (``ttl`` seconds, default ``LOCK_TTL``) expired:
          ``acquired``; pending entries left behind stay for this holder.
        * held (by anyone, ``owner`` too): ``reject`` → ``busy``, nothing changes; ``queue``
          → ``queued``, the entry appended — the queue holds at most ``max_pending``
          (default ``MAX_PENDING``), and when full ``overflow`` (default ``OVERFLOW``)
          decides: ``drop_oldest`` drops the oldest, ``drop_newest`` returns ``dropped`` and
          keeps the queue; ``debounce`` → ``debounced``, the pending list becomes just this
          entry. Dropped entries are reported by the ``pending_dropped`` signal.
        """
        request = self._lock_request(
            key, owner, strategy, metadata, ttl, max_pending, overflow, max_concurrent
        )
        if request.strategy is Strategy.CONCURRENT and not request.capped:
            return LockResult.ACQUIRED
        return self._locked(request, self._do_lock(request))

    def extend_lock(self, key: str, owner: str, ttl: float | None = None) -> bool:
        """Renew the lease to ``ttl`` seconds from now if ``owner`` holds ``key`` unexpired.

        True when renewed (``ttl`` becomes the lock's lease); False (nothing changed)
        otherwise.
        """
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        return self._do_extend_lock(key, owner, self.lock_ttl if ttl is None else check_ttl(ttl))

    def release_lock(
        self, key: str, owner: str, *, only_if_idle: bool = False
    ) -> list[PendingEntry]:
        """Release ``key`` held by ``owner``; return its pending entries in arrival order.

        The lock and its pending list are removed together. With ``only_if_idle=True``, in
        one atomic step: if nothing is pending the lock is released and ``[]`` returned;
        otherwise the lock stays ``owner``'s (its lease renewed by its ttl) and the pending
        entries are removed and returned. Entries older than ``PENDING_TTL`` are dropped
        instead (``pending_dropped``). Raises :class:`NotOwner`, nothing changed, when
        someone else holds the key or nobody does; an expired holder may still release
        while nobody has taken the key over.
        """
        key, owner = check_id(key, "key"), check_id(owner, "owner")
        return self._handed(key, self._do_release_lock(key, owner, bool(only_if_idle)))

    def take_pending(self, key: str, owner: str, limit: int | None = None) -> list[PendingEntry]:
        """Remove and return up to ``limit`` oldest pending entries of the lock ``owner``
        holds (all without ``limit``), as :meth:`release_lock` hands them over; the lock
        stays. :class:`NotOwner` otherwise."""
        key, owner = check_id(key, "key"), check_id(owner, "owner")
        n = None if limit is None else check_limit(limit)
        return self._handed(key, self._do_take_pending(key, owner, n))

    def force_release_lock(self, key: str) -> list[PendingEntry]:
        """Remove the lock ``key`` and its pending list whoever holds it; return the entries."""
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

        ``channel_id``: the message's channel, for ``msg.channel``; ``history``: how many of
        the thread's newest history items the entry step reads (``msg.history.items``);
        ``max_concurrent``: with ``concurrent``, at most this many holders of the thread at
        once across processes (the excess is queued, for their ``drain()``).
        See :class:`chatstate.cycle.MessageCycle` for what it guarantees on entry, on a
        clean exit, when the block raises, and for ``drain``, ``keepalive`` and the
        effects a block stages (one unit of work with the message).
        """
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
        """Replace (or with ``merge=True`` merge into) this namespace's state, all or nothing.

        When merging, incoming values win on conflicts; incoming pending entries are appended.
        ``snapshot`` is checked first, strictly (:func:`chatstate.snapshot_from`):
        ``InvalidSnapshot`` (a ``ValueError``) or ``SnapshotNotJSON`` (a ``TypeError``) lists
        every problem with its path, and nothing changes.
        """
        self._do_load_snapshot(snapshot_from(snapshot), bool(merge))

    @classmethod
    def from_snapshot(cls: type[A], snapshot: Snapshot | Mapping[str, Any], **options: Any) -> A:
        """A new adapter built with ``options`` whose state is ``snapshot``."""
        adapter = cls(**options)
        adapter.load_snapshot(snapshot)
        return adapter

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """The namespace's state as one stream per section: ``with adapter.snapshot_sections()
        as sections: write_snapshot(sections, out)``.

        Guarantees: inside the ``with`` block the sections describe one consistent state, in
        the orders :class:`~chatstate.snapshots.sections.SnapshotSections` documents (sorted
        where the JSON form is sorted, ``dedupe_order`` oldest first), each consumed at most
        once; ``counts`` gives each section's length where known (for progress). The default
        builds :meth:`snapshot` in memory; a backend holding a lot of state overrides it to
        stream (server-side cursors, scans).
        """
        return nullcontext(SnapshotSections.from_snapshot(self.snapshot()))

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """:meth:`load_snapshot` from streamed ``sections``: replace (or with ``merge=True``
        merge into) this namespace's state, all or nothing, with the merge rules of
        :meth:`load_snapshot`.

        ``sections`` hold entries ``validate_snapshot`` accepts (no duplicates), possibly in
        file order rather than sorted; ``dedupe_order`` is the authority (``dedupe`` may be
        empty). Each section may be consumed once, in any order. The default collects them
        into a ``Snapshot`` and calls :meth:`load_snapshot`; a backend holding a lot of state
        overrides it to stream (bulk copy).
        """
        self.load_snapshot(sections.to_snapshot(), merge)

    # -- housekeeping --------------------------------------------------------------------

    def activity(self, quiet_for: float = DEFAULT_QUIET_FOR) -> dict[str, Any]:
        """How live this namespace is, on the backend's clock (nothing changes):

        - ``locks_held``: locks whose lease runs;
        - ``claims_in_progress``: message cycles handling a message, their lease running;
        - ``last_activity_age``: seconds since the newest dedupe claim, lock taken or state
          written (a snapshot's load included); ``None`` when none is recorded;
        - ``live``: a lock held, a claim in progress, or activity within ``quiet_for``
          seconds (and ``quiet_for`` itself).

        A replace restore refuses a live namespace (``chatstate_restore``). ``ValueError``
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
        """Housekeeping: remove expired locks (never their pending entries), trim the dedupe
        window (to ``dedupe_limit``, default ``DEDUPE_LIMIT``, keeping keys younger than
        ``DEDUPE_MIN_AGE``), drop pending entries older than ``PENDING_TTL`` (and the queues
        of locks no live holder has, once their newest entry is that old), and, with
        ``state_older_than`` (seconds), remove thread and channel states and subscriptions
        not touched for that long; remove the lists whose ttl ran out.

        Returns the counts ``{"expired_locks", "dedupe_trimmed", "pending_expired",
        "states_removed", "subscriptions_removed", "lists_expired"}``; with ``dry_run``
        counts what would be removed and removes nothing.
        """
        request = self._prune_request(dedupe_limit, dry_run, state_older_than)
        return self._pruned(self._do_prune(request))
