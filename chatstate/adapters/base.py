"""``StateAdapter``: the one interface every backend implements.

The public methods here check their arguments (so every backend refuses bad input the same
way, before anything changes) and then call the backend's ``_do_…`` hooks. Async twins
(``a…``) check the same way and run the hook through :meth:`StateAdapter._arun`, which a
backend with a native async client overrides.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async

from chatstate import conf
from chatstate.snapshot import Snapshot, snapshot_from
from chatstate.transfer.sections import SnapshotSections
from chatstate.types import (
    BackendUnavailable,
    ChatStateError,
    LockError,
    LockResult,
    NotOwner,
    PendingEntry,
    Strategy,
)
from chatstate.validation import (
    check_dedupe_key,
    check_id,
    check_limit,
    check_overflow,
    check_strategy,
    check_ttl,
    dump_map,
    dump_metadata,
)

if TYPE_CHECKING:
    from chatstate.cycle import AsyncMessageCycle, MessageCycle

__all__ = [
    "BackendUnavailable",
    "ChatStateError",
    "CycleEntry",
    "LockError",
    "LockResult",
    "NotOwner",
    "PendingEntry",
    "StateAdapter",
    "Strategy",
]

T = TypeVar("T")
A = TypeVar("A", bound="StateAdapter")
DedupeKey = tuple[str, str]
StateFn = Callable[[dict[str, Any]], dict[str, Any]]

CycleEntry = tuple[bool, bool, LockResult | None, dict[str, Any]]
"""What the entry step of a message cycle found: ``(claimed, subscribed, result, state)``."""


class StateAdapter(abc.ABC):
    """The state a chat bot keeps between webhook deliveries, for one namespace.

    Every method behaves identically on every backend (the conformance suite checks it):
    identifiers are ``str`` of 1–255 characters (``TypeError`` / ``ValueError`` otherwise,
    with nothing changed), every operation is atomic, and locks are leases measured on the
    backend's clock.
    """

    #: Short backend name, for the benchmark and messages ("memory", "database", "redis").
    name: str = "base"

    def __init__(self, namespace: str | None = None) -> None:
        settings = conf.chatstate_settings()
        self.namespace: str = check_id(
            settings["NAMESPACE"] if namespace is None else namespace, "namespace"
        )
        self.dedupe_limit: int = check_limit(settings["DEDUPE_LIMIT"], "DEDUPE_LIMIT")
        self.lock_ttl: float = check_ttl(settings["LOCK_TTL"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} namespace={self.namespace!r}>"

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

    # -- dedupe --------------------------------------------------------------------------

    def is_duplicate(self, key: DedupeKey | list[str]) -> bool:
        """Whether the dedupe key ``(adapter_name, message_id)`` is in the window."""
        return self._do_is_duplicate(check_dedupe_key(key))

    def mark_dedupe(self, key: DedupeKey | list[str], limit: int | None = None) -> None:
        """Record ``key`` as the newest, then drop the oldest until at most ``limit`` remain.

        ``limit`` defaults to the ``DEDUPE_LIMIT`` setting. A key already in the window keeps
        its place and nothing changes.
        """
        key = check_dedupe_key(key)
        self._do_claim_dedupe(key, self.dedupe_limit if limit is None else check_limit(limit))

    def claim_dedupe(self, key: DedupeKey | list[str], limit: int | None = None) -> bool:
        """Atomically "mark ``key`` unless it is a duplicate".

        True for exactly one caller per key while it is in the window, whatever the
        concurrency; the key is then marked as by :meth:`mark_dedupe`.
        """
        key = check_dedupe_key(key)
        return self._do_claim_dedupe(
            key, self.dedupe_limit if limit is None else check_limit(limit)
        )

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
        overflow: str = "drop_oldest",
    ) -> LockResult:
        """Take the lock ``key`` for ``owner``, or apply ``strategy`` when it is held.

        * ``concurrent``: always ``acquired``, nothing recorded.
        * lock free, or its lease (``ttl`` seconds, default ``LOCK_TTL``) expired:
          ``acquired``; pending entries left behind stay for this holder.
        * held (by anyone, ``owner`` too): ``reject`` → ``busy``, nothing changes; ``queue``
          → ``queued``, the entry appended (``max_pending`` full: ``drop_oldest`` drops the
          oldest, ``drop_newest`` returns ``dropped`` and keeps the list); ``debounce`` →
          ``debounced``, the pending list becomes just this entry.
        """
        args = self._lock_args(key, owner, strategy, metadata, ttl, max_pending, overflow)
        if args[2] is Strategy.CONCURRENT:
            return LockResult.ACQUIRED
        return self._do_lock(*args)

    def extend_lock(self, key: str, owner: str, ttl: float | None = None) -> bool:
        """Renew the lease to ``ttl`` seconds from now if ``owner`` holds ``key`` unexpired.

        True when renewed; False (nothing changed) otherwise.
        """
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        return self._do_extend_lock(key, owner, self.lock_ttl if ttl is None else check_ttl(ttl))

    def release_lock(self, key: str, owner: str) -> list[PendingEntry]:
        """Release ``key`` held by ``owner``; return its pending entries in arrival order.

        The lock and its pending list are removed together. Raises :class:`NotOwner`, nothing
        changed, when someone else holds the key or nobody does. An expired holder may still
        release while nobody has taken the key over.
        """
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        return self._do_release_lock(key, owner, False)

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
    ) -> MessageCycle:
        """A context manager for one webhook delivery: claim, subscription, lock, state.

        See :class:`chatstate.cycle.MessageCycle` for what it guarantees on entry, on a
        clean exit and when the block raises.
        """
        from chatstate.cycle import MessageCycle

        return MessageCycle(
            self,
            *self._cycle_args(dedupe_key, thread_id, owner, strategy, metadata, dedupe_limit, ttl),
        )

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
    ) -> AsyncMessageCycle:
        """The async twin of :meth:`handle_message`: ``async with store.ahandle_message(...)``."""
        from chatstate.cycle import AsyncMessageCycle

        return AsyncMessageCycle(
            self,
            *self._cycle_args(dedupe_key, thread_id, owner, strategy, metadata, dedupe_limit, ttl),
        )

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The whole state of this adapter's namespace, normalized."""
        return self._do_snapshot()

    def load_snapshot(self, snapshot: Snapshot | Mapping[str, Any], merge: bool = False) -> None:
        """Replace (or with ``merge=True`` merge into) this namespace's state, all or nothing.

        A mapping is read leniently with :func:`normalize_snapshot`. When merging, incoming
        values win on conflicts; incoming pending entries are appended.
        """
        self._do_load_snapshot(_snapshot_arg(snapshot), bool(merge))

    @classmethod
    def from_snapshot(cls: type[A], snapshot: Snapshot | Mapping[str, Any], **options: Any) -> A:
        """A new adapter built with ``options`` whose state is ``snapshot``."""
        adapter = cls(**options)
        adapter.load_snapshot(snapshot)
        return adapter

    # -- streaming snapshots (the snapshot commands; see chatstate.transfer) -------------

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """The namespace's state as one stream per section: ``with adapter.snapshot_sections()
        as sections: write_snapshot(sections, out)``.

        Guarantees: inside the ``with`` block the sections describe one consistent state, in
        the orders :class:`~chatstate.transfer.sections.SnapshotSections` documents (sorted
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

    def prune(self, dedupe_limit: int | None = None, dry_run: bool = False) -> dict[str, int]:
        """Remove expired locks (never their pending entries) and trim the dedupe window.

        Returns ``{"expired_locks": n, "dedupe_trimmed": m}``; with ``dry_run`` counts what
        would be removed and removes nothing.
        """
        limit = self.dedupe_limit if dedupe_limit is None else check_limit(dedupe_limit)
        return self._do_prune(limit, bool(dry_run))

    # -- async twins ---------------------------------------------------------------------

    async def _arun(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the sync hook ``fn`` from async code (a worker thread, as Django's ORM needs)."""
        return await sync_to_async(fn)(*args)

    async def ais_subscribed(self, thread_id: str) -> bool:
        return await self._arun(self._do_is_subscribed, check_id(thread_id, "thread_id"))

    async def asubscribe(self, thread_id: str) -> None:
        await self._arun(self._do_subscribe, check_id(thread_id, "thread_id"))

    async def aunsubscribe(self, thread_id: str) -> None:
        await self._arun(self._do_unsubscribe, check_id(thread_id, "thread_id"))

    async def athread_state(self, thread_id: str) -> dict[str, Any]:
        return await self._arun(self._do_get_state, "thread", check_id(thread_id, "thread_id"))

    async def aput_thread_state(self, thread_id: str, value: dict[str, Any]) -> None:
        thread_id = check_id(thread_id, "thread_id")
        await self._arun(self._do_put_state, "thread", thread_id, value, dump_map(value))

    async def achannel_state(self, channel_id: str) -> dict[str, Any]:
        return await self._arun(self._do_get_state, "channel", check_id(channel_id, "channel_id"))

    async def aput_channel_state(self, channel_id: str, value: dict[str, Any]) -> None:
        channel_id = check_id(channel_id, "channel_id")
        await self._arun(self._do_put_state, "channel", channel_id, value, dump_map(value))

    async def aupdate_thread_state(self, thread_id: str, fn: StateFn) -> dict[str, Any]:
        thread_id = check_id(thread_id, "thread_id")
        return await self._arun(self._do_update_state, "thread", thread_id, fn)

    async def aupdate_channel_state(self, channel_id: str, fn: StateFn) -> dict[str, Any]:
        channel_id = check_id(channel_id, "channel_id")
        return await self._arun(self._do_update_state, "channel", channel_id, fn)

    async def ais_duplicate(self, key: DedupeKey | list[str]) -> bool:
        return await self._arun(self._do_is_duplicate, check_dedupe_key(key))

    async def amark_dedupe(self, key: DedupeKey | list[str], limit: int | None = None) -> None:
        await self.aclaim_dedupe(key, limit)

    async def aclaim_dedupe(self, key: DedupeKey | list[str], limit: int | None = None) -> bool:
        key = check_dedupe_key(key)
        n = self.dedupe_limit if limit is None else check_limit(limit)
        return await self._arun(self._do_claim_dedupe, key, n)

    async def alock(
        self,
        key: str,
        owner: str,
        strategy: Strategy | str = Strategy.REJECT,
        metadata: Mapping[str, Any] | None = None,
        *,
        ttl: float | None = None,
        max_pending: int | None = None,
        overflow: str = "drop_oldest",
    ) -> LockResult:
        args = self._lock_args(key, owner, strategy, metadata, ttl, max_pending, overflow)
        if args[2] is Strategy.CONCURRENT:
            return LockResult.ACQUIRED
        return await self._arun(self._do_lock, *args)

    async def aextend_lock(self, key: str, owner: str, ttl: float | None = None) -> bool:
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        n = self.lock_ttl if ttl is None else check_ttl(ttl)
        return await self._arun(self._do_extend_lock, key, owner, n)

    async def arelease_lock(self, key: str, owner: str) -> list[PendingEntry]:
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        return await self._arun(self._do_release_lock, key, owner, False)

    async def aforce_release_lock(self, key: str) -> list[PendingEntry]:
        return await self._arun(self._do_force_release_lock, check_id(key, "key"))

    async def asnapshot(self) -> Snapshot:
        return await self._arun(self._do_snapshot)

    async def aload_snapshot(
        self, snapshot: Snapshot | Mapping[str, Any], merge: bool = False
    ) -> None:
        await self._arun(self._do_load_snapshot, _snapshot_arg(snapshot), bool(merge))

    async def aprune(
        self, dedupe_limit: int | None = None, dry_run: bool = False
    ) -> dict[str, int]:
        limit = self.dedupe_limit if dedupe_limit is None else check_limit(dedupe_limit)
        return await self._arun(self._do_prune, limit, bool(dry_run))

    # -- argument bundles ----------------------------------------------------------------

    def _lock_args(
        self,
        key: str,
        owner: str,
        strategy: Strategy | str,
        metadata: Mapping[str, Any] | None,
        ttl: float | None,
        max_pending: int | None,
        overflow: str,
    ) -> tuple[str, str, Strategy, str, float, int | None, str]:
        return (
            check_id(key, "key"),
            check_id(owner, "owner"),
            check_strategy(strategy),
            dump_metadata(metadata),
            self.lock_ttl if ttl is None else check_ttl(ttl),
            None if max_pending is None else check_limit(max_pending, "max_pending"),
            check_overflow(overflow),
        )

    def _cycle_args(
        self,
        dedupe_key: DedupeKey | list[str],
        thread_id: str,
        owner: str,
        strategy: Strategy | str,
        metadata: Mapping[str, Any] | None,
        dedupe_limit: int | None,
        ttl: float | None,
    ) -> tuple[DedupeKey, str, str, Strategy, str, int, float]:
        return (
            check_dedupe_key(dedupe_key),
            check_id(thread_id, "thread_id"),
            check_id(owner, "owner"),
            check_strategy(strategy),
            dump_metadata(metadata),
            self.dedupe_limit if dedupe_limit is None else check_limit(dedupe_limit),
            self.lock_ttl if ttl is None else check_ttl(ttl),
        )

    # -- message-cycle hooks (a backend overrides them to save round trips) ---------------

    def _cycle_enter(
        self,
        dedupe_key: DedupeKey,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        limit: int,
        ttl: float,
    ) -> CycleEntry:
        """Claim, check the subscription, lock and read the state.

        Returns ``(claimed, subscribed, result, state)``; ``result`` is None when not claimed,
        ``state`` is ``{}`` unless acquired.
        """
        if not self._do_claim_dedupe(dedupe_key, limit):
            return False, self._do_is_subscribed(thread_id), None, {}
        if strategy is Strategy.CONCURRENT:
            result = LockResult.ACQUIRED
        else:
            result = self._do_lock(thread_id, owner, strategy, metadata, ttl, None, "drop_oldest")
        subscribed = self._do_is_subscribed(thread_id)  # after the lock: the holder's view
        state = self._do_get_state("thread", thread_id) if result is LockResult.ACQUIRED else {}
        return True, subscribed, result, state

    @abc.abstractmethod
    def _cycle_commit(
        self,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        state: dict[str, Any] | None,
        state_json: str | None,
    ) -> list[PendingEntry]:
        """After a clean block: write ``state`` (None: unchanged) and release the lock.

        One atomic step: both happen, or (``NotOwner``: the lease went to another holder)
        neither does. Under ``concurrent`` there is no lock: the state is written, ``[]``
        returned. Each backend makes it atomic its own way (mutex, transaction, script).
        """
        raise NotImplementedError

    def _cycle_abort(
        self, dedupe_key: DedupeKey, thread_id: str, owner: str, strategy: Strategy
    ) -> None:
        """After a block that raised: withdraw the claim, release keeping pending entries."""
        self._do_withdraw_dedupe(dedupe_key)
        if strategy is not Strategy.CONCURRENT:
            with contextlib.suppress(NotOwner):  # the lease went to another holder
                self._do_release_lock(thread_id, owner, True)

    # -- backend hooks -------------------------------------------------------------------
    # Arguments arrive checked. ``kind`` is "thread" or "channel"; ``metadata`` and
    # ``value_json`` are compact JSON text of already-validated dicts.

    @abc.abstractmethod
    def _do_is_subscribed(self, thread_id: str) -> bool: ...

    @abc.abstractmethod
    def _do_subscribe(self, thread_id: str) -> None: ...

    @abc.abstractmethod
    def _do_unsubscribe(self, thread_id: str) -> None: ...

    @abc.abstractmethod
    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None: ...

    @abc.abstractmethod
    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _do_is_duplicate(self, key: DedupeKey) -> bool: ...

    @abc.abstractmethod
    def _do_claim_dedupe(self, key: DedupeKey, limit: int) -> bool:
        """Mark ``key`` unless present (then trim to ``limit``); True when it was marked."""

    @abc.abstractmethod
    def _do_withdraw_dedupe(self, key: DedupeKey) -> None:
        """Forget ``key`` (a claim whose handling failed), so a redelivery is handled."""

    @abc.abstractmethod
    def _do_lock(
        self,
        key: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        ttl: float,
        max_pending: int | None,
        overflow: str,
    ) -> LockResult:
        """``lock`` for a non-concurrent strategy."""

    @abc.abstractmethod
    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool: ...

    @abc.abstractmethod
    def _do_release_lock(self, key: str, owner: str, keep_pending: bool) -> list[PendingEntry]:
        """Remove ``owner``'s lock (and, unless ``keep_pending``, its pending list)."""

    @abc.abstractmethod
    def _do_force_release_lock(self, key: str) -> list[PendingEntry]: ...

    @abc.abstractmethod
    def _do_snapshot(self) -> Snapshot: ...

    @abc.abstractmethod
    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None: ...

    @abc.abstractmethod
    def _do_prune(self, dedupe_limit: int, dry_run: bool) -> dict[str, int]: ...


def _snapshot_arg(snapshot: object) -> Snapshot:
    """A snapshot argument checked strictly (:func:`~chatstate.snapshot.snapshot_from`):
    ``TypeError`` unless a Snapshot or a mapping, or for a value that is not JSON;
    ``ValueError`` listing every other problem with its JSON path."""
    return snapshot_from(snapshot)
