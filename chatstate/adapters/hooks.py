"""``StateBackend``: the hooks a backend implements — the contract of a chatstate backend.

``StateAdapter`` (:mod:`.base`) checks every argument, fills in the defaults of the
``CHATSTATE`` setting and sends the signals; it calls these hooks with values already
checked (identifiers are valid ``str``, maps and metadata come as compact JSON text too,
requests are the frozen objects of :mod:`chatstate.calls`). A backend makes each hook one
atomic step on its store — a transaction, a Lua script, a mutex — never a read followed by a
separate write. To write one (say, a DynamoDB adapter), subclass ``StateAdapter``, implement
every abstract hook below, and run the conformance suite against it (``docs/backends.rst``:
"Writing a backend").

Async: every hook has an async path. By default a hook runs in a worker thread
(``sync_to_async``); a backend whose driver has an asyncio client writes its hooks as
:func:`operations <chatstate.adapters.operations.operation>` and implements :meth:`drive` and
:meth:`adrive`, and the async twins then run natively.
"""

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
    """The hooks of one backend, for one namespace (``self.namespace``), and the settings
    and checked requests they receive (:class:`~chatstate.adapters.checked.CheckedCalls`).

    Time is the backend's clock. ``kind`` is ``"thread"`` or ``"channel"``. Settings a hook
    reads from ``self``: ``pending_ttl`` (seconds; pending entries older than it are dropped
    when handed over, and reported; ``None``: kept), ``lock_ttl``.
    """

    # -- subscriptions and state maps ----------------------------------------------------

    @abc.abstractmethod
    def _do_is_subscribed(self, thread_id: str) -> bool:
        """Whether ``thread_id`` is subscribed."""

    @abc.abstractmethod
    def _do_subscribe(self, thread_id: str) -> None:
        """Subscribe (idempotent); a subscription is *touched* (for state retention)."""

    @abc.abstractmethod
    def _do_unsubscribe(self, thread_id: str) -> None:
        """Unsubscribe (idempotent)."""

    @abc.abstractmethod
    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        """A fresh copy of the stored map, ``{}`` when none."""

    @abc.abstractmethod
    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        """Store the map (given both as a dict and as its JSON text); it is *touched*."""

    @abc.abstractmethod
    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        """Apply ``fn`` to the stored map with no lost update; the stored result. ``fn``'s
        result is checked with ``chatstate.validation.dump_map`` (``TypeError``, nothing
        stored); an exception from ``fn`` propagates, nothing stored."""

    # -- lists ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_append_to_list(self, append: ListAppend) -> None:
        """Append ``append.value`` to its list as the newest item, then keep the newest
        ``max_length`` items; ``ttl`` renews the list's expiry. An expired list starts over
        empty."""

    @abc.abstractmethod
    def _do_get_list(self, key: str, limit: int | None) -> list[Any]:
        """The list's items, oldest first (``limit``: the newest ``limit``); ``[]`` when it
        does not exist or has expired."""

    @abc.abstractmethod
    def _do_delete_list(self, key: str) -> int:
        """Delete the list; how many items it held (0 when none, or expired)."""

    # -- the outbox ----------------------------------------------------------------------
    #
    # Entries are written by cycle commits (``Staged.sends``), in commit order. One thread's
    # entries leave in that order: an entry is claimable only when every earlier entry of
    # its thread is delivered (removed) or dead, and no entry of its thread is leased to a
    # live dispatcher. Times are the backend's clock.

    @abc.abstractmethod
    def _do_outbox(self, thread_id: str | None) -> list[OutboxEntry]:
        """The entries not yet delivered (dead included; of ``thread_id`` only, if given),
        oldest first."""

    @abc.abstractmethod
    def _do_outbox_claim(self, claim: OutboxClaim) -> list[OutboxEntry]:
        """Lease up to ``claim.limit`` due entries to ``claim.owner`` for ``claim.lease``
        seconds, and return them oldest first. Per thread, a claim takes a run of entries:
        the thread's oldest entry not dead, then the ones after it, as long as each is due;
        a thread with an entry leased to someone else (lease running) is skipped."""

    @abc.abstractmethod
    def _do_outbox_delivered(self, owner: str, entry_id: str) -> None:
        """Remove the delivered entry (whoever leases it now)."""

    @abc.abstractmethod
    def _do_outbox_failed(self, owner: str, entry_id: str, delay: float, max_attempts: int) -> bool:
        """Count a failed delivery: ``attempts`` + 1, due again ``delay`` seconds from now,
        its lease ended; ``dead`` once ``attempts`` reaches ``max_attempts``. Whether it is
        dead now. Nothing when ``owner`` no longer leases it (False)."""

    @abc.abstractmethod
    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> None:
        """End ``owner``'s leases of these entries, untouched (not attempted)."""

    @abc.abstractmethod
    def _do_outbox_requeue(self, entry_ids: list[str]) -> int:
        """Make dead entries due now with no attempts counted (an operator's action); how
        many."""

    @abc.abstractmethod
    def _do_outbox_discard(self, entry_ids: list[str]) -> int:
        """Remove entries without delivering them (an operator's action); how many."""

    # -- dedupe --------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        """Whether ``key`` is in the window, done or in progress and alive (see
        :meth:`cycle_enter`)."""

    @abc.abstractmethod
    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> bool:
        """Record ``key`` as done, unless it is in the window (done, or in progress and
        alive): True when recorded. A new key is the newest; the window then keeps the
        newest ``limit`` keys, every key younger than ``min_age`` seconds and every claim in
        progress and alive, and drops the rest. An in-progress claim whose lease ran out is
        taken over in its place."""

    # -- locks ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_lock(self, request: LockRequest) -> LockOutcome:
        """``lock`` for a non-concurrent strategy, or a capped ``concurrent`` one
        (``request.capped``), its rules as ``StateAdapter.lock``'s; the entries it dropped,
        and the holder it took over from, in the outcome. A new pending entry gets an ``id``
        unique in its queue.

        Slots (capped ``concurrent``): the key holds up to ``max_concurrent`` owners at once,
        each with its own lease; an expired one's slot is free. A key held by slots is held
        for the other strategies, and one held by a lock is full for slots. Every other lock
        hook acts on ``owner``'s slot when it has one: ``_do_extend_lock`` renews it,
        ``_do_release_lock`` frees it and hands over the entries no other live holder was
        handed, ``_do_take_pending`` hands over such entries, ``_do_force_release_lock`` frees
        every slot.
        """

    @abc.abstractmethod
    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        """Renew ``owner``'s unexpired lease to ``ttl`` seconds from now (and remember
        ``ttl`` as the lock's lease); False, nothing changed, otherwise."""

    @abc.abstractmethod
    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Handover:
        """Release ``owner``'s lock and hand over its pending entries (oldest first). With
        ``only_if_idle``: release only when none is pending; otherwise keep the lock, renew
        its lease by its ttl and hand the entries over. Entries older than ``pending_ttl``
        are dropped, not handed over (``expired``). ``NotOwner``, nothing changed, when
        ``owner`` does not hold it."""

    @abc.abstractmethod
    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Handover:
        """Hand over up to ``limit`` oldest pending entries of a lock ``owner`` holds (expired
        ones dropped as in :meth:`_do_release_lock`); ``NotOwner`` otherwise."""

    @abc.abstractmethod
    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        """Remove the lock and its pending list, whoever holds it; the entries."""

    # -- the message cycle ---------------------------------------------------------------
    #
    # A dedupe claim made by a cycle is *in progress* -- held by the cycle's owner, alive
    # while its own lease (``ttl`` from the entry, renewed by ``cycle_renew``) runs or while
    # the owner holds the lock on the cycle's thread -- until the commit (or the first
    # drain step) marks it *done*. A claim in progress whose lease ran out does not make its
    # message a duplicate: the next delivery takes the claim over. Claims made by
    # ``claim_dedupe`` / ``mark_dedupe`` are done at once.

    @abc.abstractmethod
    def cycle_enter(self, request: CycleRequest) -> CycleEntry:
        """One atomic step: claim the dedupe key (the window trimmed as by
        :meth:`_do_claim_dedupe`), take the lock, read subscription and state.

        Not claimed: nothing changes, ``in_progress`` tells a live claim from a done one,
        and the subscription is read. Claimed: the claim is in progress for
        ``request.owner``; the lock is taken with the request's strategy and bound (none
        under ``concurrent``); if the message was queued or debounced, its claim is done at
        once; if refused (``busy``, or ``dropped`` by a full queue), released at once (it
        stays in the window, but a redelivery is handled). A message of a ``queue`` or
        ``debounce`` cycle that takes a lock with entries still queued (its previous holder
        died or failed) is queued behind them instead (``result`` queued, its claim done) and
        the cycle holds the lock (``held``): its drain hands them out in arrival order. The
        subscription is read after the lock, the state when the cycle holds it.

        Every decision of the step is judged at one instant of the backend's clock, taken
        after any wait for a row or key: a claim and its lock never disagree on the time.
        """

    @abc.abstractmethod
    def cycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        """One atomic step after a clean block of a cycle that holds its thread (or runs
        ``concurrent``): write everything ``staged`` (see :class:`~chatstate.calls.Staged`:
        the state, the claim marked done, channel operations, the subscription, list appends,
        outbox entries) and release the lock, handing over its pending entries (as
        :meth:`_do_release_lock`; none under ``concurrent``). ``LeaseLost``, nothing
        changed, when the lock (or, under ``concurrent``, the claim) went to another holder,
        or ``staged.claim`` is set and the claim is no longer in progress for
        ``request.owner``."""

    @abc.abstractmethod
    def cycle_drain(self, request: CycleRequest, staged: Staged, finished: str | None) -> Handover:
        """One atomic step of ``MessageCycle.drain``: write what is ``staged`` (as
        :meth:`cycle_commit`); remove the pending entry ``finished`` (its ``id``) if still
        queued; drop expired entries; then hand out the oldest entry left (``entries ==
        [it]``: it stays queued until finished, and the lease is renewed by ``request.ttl``)
        or, when none is left, release the lock (``entries == []``). ``LeaseLost``, nothing
        changed, as :meth:`cycle_commit`."""

    @abc.abstractmethod
    def cycle_renew(self, request: CycleRequest) -> bool:
        """Renew the cycle's lease by ``request.ttl`` (its lock's; under ``concurrent`` its
        claim's): False, nothing changed, when it is no longer this owner's."""

    @abc.abstractmethod
    def cycle_gather(self, request: CycleRequest) -> Handover:
        """The entries queued behind the cycle's thread that no other holder was handed
        (``entries``, oldest first; nothing removed: a commit removes those it was given,
        ``Staged.taken``), expired ones dropped; the cycle's lease renewed by
        ``request.ttl``. ``LeaseLost``, nothing changed, when the lease went to another
        holder."""

    @abc.abstractmethod
    def cycle_abort(self, request: CycleRequest) -> bool:
        """One atomic step after a failed block: withdraw the claim if it is still in
        progress and ``request.owner``'s (a claim a commit marked done stays) — True when
        withdrawn — and release the lock if ``request.owner`` holds it, keeping its pending
        entries for the next holder. Safe after a commit whose outcome is unknown."""

    async def acycle_enter(self, request: CycleRequest) -> CycleEntry:
        """:meth:`cycle_enter` from async code."""
        return await self._arun(self.cycle_enter, request)

    async def acycle_commit(self, request: CycleRequest, staged: Staged) -> Handover:
        """:meth:`cycle_commit` from async code."""
        return await self._arun(self.cycle_commit, request, staged)

    async def acycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover:
        """:meth:`cycle_drain` from async code."""
        return await self._arun(self.cycle_drain, request, staged, finished)

    async def acycle_renew(self, request: CycleRequest) -> bool:
        """:meth:`cycle_renew` from async code."""
        return await self._arun(self.cycle_renew, request)

    async def acycle_gather(self, request: CycleRequest) -> Handover:
        """:meth:`cycle_gather` from async code."""
        return await self._arun(self.cycle_gather, request)

    async def acycle_abort(self, request: CycleRequest) -> bool:
        """:meth:`cycle_abort` from async code."""
        return await self._arun(self.cycle_abort, request)

    # -- snapshots and housekeeping ------------------------------------------------------

    @abc.abstractmethod
    def _do_snapshot(self) -> Snapshot:
        """The namespace's whole state, read consistently."""

    @abc.abstractmethod
    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        """Replace (or merge into) the namespace's state with the checked ``snapshot``, all
        or nothing."""

    @abc.abstractmethod
    def _do_prune(self, request: PruneRequest) -> Pruned:
        """Housekeeping, counted: ``expired_locks`` (removed; their pending entries stay),
        ``dedupe_trimmed`` (the window trimmed as by :meth:`_do_claim_dedupe`),
        ``pending_expired`` (entries older than ``request.pending_ttl``, and the pending
        lists of locks with no live holder once their newest entry is that old),
        ``states_removed`` and ``subscriptions_removed`` (not touched for
        ``request.state_older_than`` seconds), ``lists_expired`` (lists whose expiry has
        passed, removed with their items). ``dry_run``: count, change nothing."""

    @abc.abstractmethod
    def _do_activity(self) -> tuple[int, int, float | None]:
        """How live the namespace is, on the backend's clock, changing nothing: ``(locks
        held with their lease running, claims in progress and alive, seconds since the
        newest activity)``. Activity is a dedupe key claimed, a lock taken or a state
        written (a snapshot's load included); ``None``: none recorded."""

    # -- running hooks -------------------------------------------------------------------

    async def _arun(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the hook ``fn`` from async code: natively when it is an :func:`operation
        <chatstate.adapters.operations.operation>` (through :meth:`adrive`), else in a worker
        thread (as Django's ORM needs)."""
        gen = operation_of(fn)
        if gen is not None:
            return await self.adrive(gen(self, *args))
        return await sync_to_async(fn)(*args)

    def drive(self, op: Op[T]) -> T:
        """Run an operation (a hook written as a generator of requests) on the blocking
        client; a backend that writes its hooks as operations implements it."""
        raise NotImplementedError(f"{type(self).__name__} runs no operations")

    async def adrive(self, op: Op[T]) -> T:
        """Run an operation from async code; by default :meth:`drive` in a worker thread."""
        return await sync_to_async(self.drive)(op)
