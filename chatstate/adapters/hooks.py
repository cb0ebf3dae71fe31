"""``StateBackend``: the hooks a backend implements.

``StateAdapter`` (:mod:`.base`) checks every argument. It fills in the defaults of the
``CHATSTATE`` setting and sends the signals. Then it calls these hooks with checked values.
Identifiers are valid ``str``. Maps and metadata also come as compact JSON text. Requests
are the frozen objects of :mod:`chatstate.calls`.

Each hook is one atomic step on the store: a transaction, a Lua script, a mutex. It is never
a read followed by a separate write. To write a backend, subclass ``StateAdapter`` and
implement every abstract hook below. Then run the conformance suite against it. The page
``docs/backends.rst`` walks through it.

Every hook has an async path. By default a hook runs in a worker thread. A backend with an
asyncio client may write its hooks as :func:`operations
<chatstate.adapters.operations.operation>`. It then implements :meth:`_drive` and
:meth:`_adrive`, and the async twins run natively."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from chatstate.adapters.checked import CheckedCalls
from chatstate.adapters.operations import Op, operation_of
from chatstate.calls import (
    CycleEntry,
    CycleRequest,
    Handover,
    ListAppend,
    LockOutcome,
    LockRequest,
    OutboxClaim,
    Pruned,
    PruneRequest,
    Staged,
)
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import DedupeKey, OutboxEntry, PendingEntry

T = TypeVar("T")
StateFn = Callable[[dict[str, Any]], dict[str, Any]]


class StateBackend(CheckedCalls, abc.ABC):
    """The hooks of one backend, for one namespace (``self.namespace``).

    It also holds the settings and checked requests the hooks receive, from
    :class:`~chatstate.adapters.checked.CheckedCalls`. Time is the backend's clock. ``kind``
    is ``"thread"`` or ``"channel"``.

    Hooks read two settings from ``self``. ``lock_ttl`` is the default lease.
    ``pending_ttl`` is in seconds. Pending entries older than it are dropped when handed
    over, and reported. ``None`` keeps them."""

    # -- subscriptions and state maps ----------------------------------------------------

    @abc.abstractmethod
    def _do_is_subscribed(self, thread_id: str) -> bool:
        """Whether ``thread_id`` is subscribed."""

    @abc.abstractmethod
    def _do_subscribe(self, thread_id: str) -> None:
        """Subscribe; idempotent. The subscription is *touched*, so retention keeps it."""

    @abc.abstractmethod
    def _do_unsubscribe(self, thread_id: str) -> None:
        """Unsubscribe; idempotent."""

    @abc.abstractmethod
    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        """A fresh copy of the stored map, ``{}`` when none."""

    @abc.abstractmethod
    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        """Store the map, given as a dict and as its JSON text. The map is *touched*."""

    @abc.abstractmethod
    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        """Apply ``fn`` to the stored map with no lost update, and return the stored result.

        ``chatstate.validation.dump_map`` checks the result of ``fn``. If it fails,
        ``TypeError`` is raised and nothing is stored. An exception from ``fn`` propagates,
        and nothing is stored."""

    # -- lists ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_append_to_list(self, append: ListAppend) -> None:
        """Append ``append.value`` to its list as the newest item.

        The list then keeps its newest ``max_length`` items. ``ttl`` renews the list's
        expiry. An expired list starts over empty."""

    @abc.abstractmethod
    def _do_get_list(self, key: str, limit: int | None) -> list[Any]:
        """The list's items, oldest first.

        With ``limit``, only the newest ``limit`` items. ``[]`` when the list does not exist
        or has expired."""

    @abc.abstractmethod
    def _do_delete_list(self, key: str) -> int:
        """Delete the list and return how many items it held.

        It returns 0 when the list does not exist or has expired."""

    # -- the outbox ----------------------------------------------------------------------
    #
    # Cycle commits write the entries (``Staged.sends``), in commit order. One thread's
    # entries leave in that order. An entry is claimable only when every earlier entry of
    # its thread is delivered or dead. No entry of its thread may be leased to a live
    # dispatcher. Times are the backend's clock.

    @abc.abstractmethod
    def _do_outbox(self, thread_id: str | None) -> list[OutboxEntry]:
        """The entries not yet delivered, oldest first.

        Dead entries are included. With ``thread_id``, only that thread's entries."""

    @abc.abstractmethod
    def _do_outbox_claim(self, claim: OutboxClaim) -> list[OutboxEntry]:
        """Lease up to ``claim.limit`` due entries to ``claim.owner``, and return them oldest first.

        The lease lasts ``claim.lease`` seconds. Per thread, a claim takes a run of entries.
        The run starts at the thread's oldest entry that is not dead. It goes on while each
        next entry is due. A thread with an entry under someone else's running lease is
        skipped."""

    @abc.abstractmethod
    def _do_outbox_delivered(self, owner: str, entry_id: str) -> None:
        """Remove the delivered entry, whoever leases it now."""

    @abc.abstractmethod
    def _do_outbox_failed(self, owner: str, entry_id: str, delay: float, max_attempts: int) -> bool:
        """Count a failed delivery, and return whether the entry is now dead.

        ``attempts`` grows by one. The entry is due again ``delay`` seconds from now, and
        its lease ends. It is ``dead`` once ``attempts`` reaches ``max_attempts``. When
        ``owner`` no longer leases it, nothing changes and the result is False."""

    @abc.abstractmethod
    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> None:
        """End ``owner``'s leases of these entries; they are left untouched and not attempted."""

    @abc.abstractmethod
    def _do_outbox_requeue(self, entry_ids: list[str]) -> int:
        """Make dead entries due now, with no attempts counted; return how many.

        This is an operator's action."""

    @abc.abstractmethod
    def _do_outbox_discard(self, entry_ids: list[str]) -> int:
        """Remove entries without delivering them; return how many.

        This is an operator's action."""

    # -- dedupe --------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        """Whether ``key`` is in the window.

        A key is in the window when done, or in progress and alive. See :meth:`_do_cycle_enter`."""

    @abc.abstractmethod
    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> bool:
        """Record ``key`` as done unless it is in the window; True when recorded.

        A key is in the window when done, or in progress and alive. A new key is the newest.
        The window then keeps the newest ``limit`` keys. It also keeps every key younger
        than ``min_age`` seconds, and every claim in progress and alive. It drops the rest.
        An in-progress claim whose lease ran out is taken over."""

    # -- locks ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_lock(self, request: LockRequest) -> LockOutcome:
        """``lock`` for a non-concurrent strategy, or a capped ``concurrent`` one.

        The rules are those of ``StateAdapter.lock``. ``request.capped`` marks the capped
        case. The outcome holds the entries the lock dropped, and the holder it took over
        from. A new pending entry gets an ``id`` unique in its queue.

        Slots serve a capped ``concurrent`` strategy. The key holds up to ``max_concurrent``
        owners at once, each with its own lease. An expired owner's slot is free. A key held
        by slots is held for the other strategies. A key held by a lock is full for slots.

        Every other lock hook acts on ``owner``'s slot when it has one:

        - ``_do_extend_lock`` renews it.
        - ``_do_release_lock`` frees it and hands over the entries no other live holder was
          handed.
        - ``_do_take_pending`` hands over such entries.
        - ``_do_force_release_lock`` frees every slot."""

    @abc.abstractmethod
    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        """Renew ``owner``'s unexpired lease to ``ttl`` seconds from now.

        The lock also keeps ``ttl`` as its lease. Otherwise it returns False and changes
        nothing."""

    @abc.abstractmethod
    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Handover:
        """Release ``owner``'s lock and hand over its pending entries, oldest first.

        With ``only_if_idle``, the lock is released only when no entry is pending. Otherwise
        the lock is kept, its lease renewed by its ttl, and the entries handed over. Entries
        older than ``pending_ttl`` are dropped and reported in ``expired``. When ``owner``
        does not hold the lock, ``NotOwner`` is raised and nothing changes."""

    @abc.abstractmethod
    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Handover:
        """Hand over up to ``limit`` oldest pending entries of a lock ``owner`` holds.

        Expired entries are dropped as in :meth:`_do_release_lock`. ``NotOwner`` otherwise."""

    @abc.abstractmethod
    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        """Remove the lock and its pending list, whoever holds it; return the entries."""

    # -- the message cycle ---------------------------------------------------------------
    #
    # A cycle's dedupe claim is *in progress* until the commit or the first drain step
    # marks it *done*. The cycle's owner holds it. It is alive while its own lease runs, or
    # while the owner holds the lock on the cycle's thread. The lease is ``ttl`` from the
    # entry, renewed by ``_do_cycle_renew``. A claim whose lease ran out does not make its
    # message a duplicate: the next delivery takes the claim over. Claims made by
    # ``claim_dedupe`` and ``mark_dedupe`` are done at once.

    @abc.abstractmethod
    def _do_cycle_enter(self, request: CycleRequest) -> CycleEntry:
        """One atomic step: claim the dedupe key, take the lock, read subscription and state.

        The window is trimmed as by :meth:`_do_claim_dedupe`.

        If the key is not claimed, nothing changes. ``in_progress`` tells a live claim from
        a done one. The subscription is read.

        If the key is claimed, the claim is in progress for ``request.owner``. The lock is
        taken with the request's strategy and bound. Under ``concurrent`` there is no lock.
        A queued or debounced message has its claim done at once. A refused message,
        ``busy`` or ``dropped`` by a full queue, has its claim released at once. It stays in
        the window, but a redelivery is handled.

        A ``queue`` or ``debounce`` cycle may take a lock with entries still queued. This
        happens when the previous holder died or failed. Its message is then queued behind
        them, with its claim done and ``result`` queued. The cycle holds the lock
        (``held``). Its drain hands the entries out in arrival order.

        The subscription is read after the lock. The state is read when the cycle holds the
        lock.

        Every decision of the step uses one instant of the backend's clock. That instant is
        taken after any wait for a row or key. So a claim and its lock never disagree on the
        time."""

    @abc.abstractmethod
    def _do_cycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        """One atomic step after a clean block: write what is ``staged`` and release the lock.

        It runs for a cycle that holds its thread, or runs ``concurrent``. ``staged`` holds
        the state, the claim marked done, channel operations, the subscription, list appends
        and outbox entries. See :class:`~chatstate.calls.Staged`. Releasing hands over the
        pending entries, as :meth:`_do_release_lock` does. Under ``concurrent`` there are
        none.

        ``LeaseLost`` is raised, and nothing changes, in two cases. The lock went to another
        holder; under ``concurrent``, the claim did. Or ``staged.claim`` is set and the
        claim is no longer in progress for ``request.owner``."""

    @abc.abstractmethod
    def _do_cycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover:
        """One atomic step of ``MessageCycle.drain``.

        It writes what is ``staged``, as :meth:`_do_cycle_commit` does. It removes the pending
        entry ``finished`` by its ``id``, if still queued. It drops expired entries. Then it
        hands out the oldest entry left, as ``entries == [it]``. That entry stays queued
        until finished, and the lease is renewed by ``request.ttl``. When no entry is left,
        it releases the lock and ``entries == []``. ``LeaseLost`` as for
        :meth:`_do_cycle_commit`, and nothing changes."""

    @abc.abstractmethod
    def _do_cycle_renew(self, request: CycleRequest) -> bool:
        """Renew the cycle's lease by ``request.ttl``.

        That is the lock's lease, or the claim's under ``concurrent``. False, and nothing
        changes, when the lease is no longer this owner's."""

    @abc.abstractmethod
    def _do_cycle_gather(self, request: CycleRequest) -> Handover:
        """The entries queued behind the cycle's thread that no other holder was handed.

        ``entries`` is oldest first. Nothing is removed: a commit removes those it was
        given, in ``Staged.taken``. Expired entries are dropped. The cycle's lease is
        renewed by ``request.ttl``. ``LeaseLost``, and nothing changes, when the lease went
        to another holder."""

    @abc.abstractmethod
    def _do_cycle_abort(self, request: CycleRequest) -> bool:
        """One atomic step after a failed block: withdraw the claim and release the lock.

        The claim is withdrawn if still in progress and ``request.owner``'s. The result is
        True when withdrawn. A claim a commit marked done stays. The lock is released if
        ``request.owner`` holds it. Its pending entries are kept for the next holder. It is
        safe after a commit whose outcome is unknown."""

    async def _do_acycle_enter(self, request: CycleRequest) -> CycleEntry:
        """:meth:`_do_cycle_enter` from async code."""
        return await self._arun(self._do_cycle_enter, request)

    async def _do_acycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        """:meth:`_do_cycle_commit` from async code."""
        return await self._arun(self._do_cycle_commit, request, staged)

    async def _do_acycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover:
        """:meth:`_do_cycle_drain` from async code."""
        return await self._arun(self._do_cycle_drain, request, staged, finished)

    async def _do_acycle_renew(self, request: CycleRequest) -> bool:
        """:meth:`_do_cycle_renew` from async code."""
        return await self._arun(self._do_cycle_renew, request)

    async def _do_acycle_gather(self, request: CycleRequest) -> Handover:
        """:meth:`_do_cycle_gather` from async code."""
        return await self._arun(self._do_cycle_gather, request)

    async def _do_acycle_abort(self, request: CycleRequest) -> bool:
        """:meth:`_do_cycle_abort` from async code."""
        return await self._arun(self._do_cycle_abort, request)

    # -- snapshots and housekeeping ------------------------------------------------------

    @abc.abstractmethod
    def _do_snapshot(self) -> Snapshot:
        """The namespace's whole state, read consistently."""

    @abc.abstractmethod
    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        """Replace the namespace's state with the checked ``snapshot``, or merge into it.

        All or nothing."""

    @abc.abstractmethod
    def _do_prune(self, request: PruneRequest) -> Pruned:
        """Housekeeping, with counts.

        - ``expired_locks``: locks removed. Their pending entries stay.
        - ``dedupe_trimmed``: the window trimmed as by :meth:`_do_claim_dedupe`.
        - ``pending_expired``: entries older than ``request.pending_ttl``. Also the pending
          lists of locks with no live holder, once their newest entry is that old.
        - ``states_removed`` and ``subscriptions_removed``: not touched for
          ``request.state_older_than`` seconds.
        - ``lists_expired``: lists past their expiry, removed with their items.

        With ``dry_run``, it counts and changes nothing."""

    @abc.abstractmethod
    def _do_activity(self) -> tuple[int, int, float | None]:
        """How live the namespace is, on the backend's clock; nothing changes.

        The result is a triple. First, the locks held with their lease running. Second, the
        claims in progress and alive. Third, the seconds since the newest activity, or
        ``None`` when none is recorded. Activity is a dedupe key claimed, a lock taken or a
        state written. Loading a snapshot counts."""

    # -- optional hooks, with their defaults ---------------------------------------------

    def _do_check(self) -> list[Any]:
        """System-check messages about this backend's configuration; none by default."""
        return []

    def _do_persistence(self) -> dict[str, Any] | None:
        """What the server keeps over a restart, as ``INFO persistence``; None if unknown."""
        return None

    # -- running hooks -------------------------------------------------------------------

    async def _arun(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the hook ``fn`` from async code.

        An :func:`operation <chatstate.adapters.operations.operation>` runs natively through
        :meth:`_adrive`. Other hooks run in a worker thread, as Django's ORM needs."""
        gen = operation_of(fn)
        if gen is not None:
            return await self._adrive(gen(self, *args))
        return await sync_to_async(fn)(*args)

    def _drive(self, op: Op[T]) -> T:
        """Run an operation on the blocking client.

        An operation is a hook written as a generator of requests. A backend that writes its
        hooks as operations implements this."""
        raise NotImplementedError(f"{type(self).__name__} runs no operations")

    async def _adrive(self, op: Op[T]) -> T:
        """Run an operation from async code.

        By default, :meth:`_drive` runs in a worker thread."""
        return await sync_to_async(self._drive)(op)
