"""``handle_message``: one webhook delivery, from dedupe claim to lock release."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from chatstate import signals
from chatstate.calls import (
    CycleEntry,
    CycleHooks,
    CycleRequest,
    Handover,
    Staged,
    lease_lost,
)
from chatstate.gather import Gathering, agather, check_gather, gather
from chatstate.keepalive import keep_alive, renewer
from chatstate.outbox import outbox_committed
from chatstate.staging import History, Stage, Staging
from chatstate.types import DedupeKey, LeaseLost, LockResult, PendingEntry
from chatstate.validation import dump_map

logger = logging.getLogger("chatstate")


class MessageCycle(Staging):
    """The ``as`` target of ``handle_message``, and the context manager itself.

    On entry, one atomic step claims the dedupe key. Unless it was a duplicate, it takes the
    thread's lock with ``strategy`` and reads the subscription. When acquired, ``state`` is
    a mutable copy of the thread's map. The block always runs, so the caller can see why it
    may not act:

    * ``duplicate``: the message was handled before, or a live holder handles it now.
      ``result`` is None.
    * ``in_progress``: a duplicate of a delivery being handled right now. That delivery may
      still fail. So answer in a way that makes the platform deliver it again later. Do not
      answer as handled. A 503 with ``Retry-After`` does this.
    * ``subscribed``: whether the thread is subscribed.
    * ``result``: the :class:`LockResult`. ``acquired`` means: act on the message.
    * ``state``: the thread's map; ``{}`` unless the cycle holds the thread.
    * ``pending``: after the block, the entries queued meanwhile, in arrival order. The
      block may have drained them instead. They are gone from the store and their claims are
      done. Handling them after the block loses them if that fails. Use ``drain()``.
    * ``lease_lost``: with ``keepalive``, the lease went to another holder meanwhile.

    While an acquired block runs, the message's claim is *in progress*. A redelivery is a
    duplicate while the lease runs. It is handled if the holder dies. A clean exit after
    ``acquired`` is one atomic step. It writes the state if it changed, marks the claim done
    and releases the lock. If the lease went to another holder, it raises :class:`LeaseLost`
    and writes nothing. If the block or the commit raises, nothing is written. The claim is
    withdrawn and the lock released. Its pending entries stay for the next holder. A commit
    that already ran is never undone. The exception propagates.

    A queued or debounced message is stored, so its claim is done on entry. A refused
    message, ``busy`` or ``dropped`` under ``drop_newest``, has its claim released on entry.
    So a redelivery is handled. A duplicate or a message not acquired writes nothing on
    exit.

    ``drain()`` hands out the messages queued behind this holder. It does so in the block,
    in arrival order and under the lock; see :meth:`drain`. A ``queue`` or ``debounce``
    message may find entries left by a holder that died or failed. It is then queued behind
    them, with ``result`` ``queued``, and this cycle holds the thread. Its ``drain()`` hands
    them out, then the message itself. So ``if msg.acquired: …`` then ``for entry in
    msg.drain(): …`` handles every case in arrival order. With ``keepalive``, the lease is
    renewed every third of its ttl while the block runs."""

    __slots__ = (
        "_adapter",
        "request",
        "_original",
        "_phase",
        "duplicate",
        "in_progress",
        "result",
        "state",
        "pending",
        "lease_lost",
        "_keeper",
        "_claim_open",
        "_effects",
        "history",
    )

    def __init__(
        self,
        adapter: CycleHooks,
        request: CycleRequest,
        history_limit: int = 100,
        history_ttl: float | None = None,
    ) -> None:
        self._adapter = adapter
        self.request = request
        self._original: str | None = None
        self._phase = "new"  # new -> held -> draining -> done
        self.duplicate = False
        self.in_progress = False
        self.result: LockResult | None = None
        self.state: dict[str, Any] = {}
        self.pending: list[PendingEntry] = []
        self.lease_lost = False
        self._keeper: asyncio.Task[None] | None = None
        self._claim_open = False  # the claim is in progress, this cycle's, not yet done
        self._effects = Stage(request, history_limit, history_ttl)
        #: The thread's history: ``items`` read on entry, ``append`` staged.
        self.history = History(self._effects, [])

    @property
    def _stage(self) -> str:
        return self._phase

    @_stage.setter
    def _stage(self, phase: str) -> None:
        self._phase = phase
        self._effects.open = phase in ("held", "draining")
        self._effects.result = self.result

    @property
    def backend(self) -> CycleHooks:
        """The adapter this cycle runs on."""
        return self._adapter

    @property
    def dedupe_key(self) -> DedupeKey:
        return self.request.dedupe_key

    @property
    def thread_id(self) -> str:
        return self.request.thread_id

    @property
    def owner(self) -> str:
        return self.request.owner

    @property
    def acquired(self) -> bool:
        """Whether this delivery holds the thread: ``result`` is ``acquired``."""
        return self.result is LockResult.ACQUIRED

    def __repr__(self) -> str:
        return (
            f"<MessageCycle {self.thread_id!r} duplicate={self.duplicate} "
            f"subscribed={self.subscribed} result={self.result}>"
        )

    # -- the steps shared by the sync and async context managers --------------------------

    def _entered(self, entry: CycleEntry) -> None:
        request, adapter = self.request, self._adapter
        self.duplicate = not entry.claimed
        self.in_progress = entry.in_progress
        self._effects.subscribed = entry.subscribed
        self._effects.claim_id = entry.claim_id
        self._effects.rows = entry.rows
        self.result = entry.result
        self._effects.result = entry.result
        self.state = entry.state
        if self.duplicate:
            signals.duplicate(adapter, request.dedupe_key, request.thread_id, entry.in_progress)
            return
        if entry.result is not LockResult.ACQUIRED and entry.result is not None:
            signals.contended(adapter, request.thread_id, request.owner, entry.result)
        if entry.dropped:
            why = "debounce" if entry.result is LockResult.DEBOUNCED else "overflow"
            signals.dropped(adapter, request.thread_id, entry.dropped, why)
        signals.taken_over(adapter, request.thread_id, request.owner, entry.taken_over)
        if entry.result is LockResult.ACQUIRED or entry.held:
            self._original = dump_map(entry.state)
            self._stage = "held"
            self._claim_open = entry.result is LockResult.ACQUIRED
            self.history.items = entry.history

    def _staged(self) -> Staged:
        """What the next step writes; ``TypeError`` if the state cannot be stored."""
        state_json = dump_map(self.state, "handle_message state")
        changed = None if state_json == self._original else state_json
        return self._effects.staged(changed, self._claim_open)

    def _committed(self, step: Staged) -> None:
        self._effects.written()
        if step.sends:
            outbox_committed(self._adapter)

    def _handed(self, handover: Handover) -> list[PendingEntry]:
        signals.dropped(self._adapter, self.request.thread_id, handover.expired, "expired")
        return handover.entries

    def _aborted(self, withdrawn: bool) -> None:
        if withdrawn:
            signals.withdrawn(self._adapter, self.dedupe_key, self.thread_id, self.owner)

    def _abort_failed(self, exc: BaseException) -> None:
        logger.warning(
            "chatstate: the cleanup of the cycle of %r on %r failed (%s); the claim and the lock "
            "stay until the lease ends, and a redelivery after that is handled",
            self.dedupe_key,
            self.thread_id,
            exc,
            extra={"dedupe_key": self.dedupe_key, "thread_id": self.thread_id, "owner": self.owner},
        )

    def _lost(self, exc: LeaseLost) -> LeaseLost:
        signals.lost(self._adapter, self.thread_id, self.owner)
        return exc

    # -- sync ------------------------------------------------------------------------------

    def __enter__(self) -> MessageCycle:
        try:
            entry = self._adapter._do_cycle_enter(self.request)
        except Exception:
            # The entry may have run on the server (a lost reply): undo what is ours, if any.
            self._abort()
            raise
        self._entered(entry)
        if self._stage == "held" and self.request.keepalive:
            renewer.watch(self)
        return self

    def _abort(self) -> None:
        try:
            self._aborted(self._adapter._do_cycle_abort(self.request))
        except Exception as exc:  # the lease will free the claim and the lock
            self._abort_failed(exc)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stage, self._stage = self._stage, "done"
        if stage == "new" or stage == "done":
            return
        if self.request.keepalive:
            renewer.unwatch(self)
        if exc_type is not None or stage == "draining" or self.lease_lost:
            self._abort()  # a drain left midway keeps the rest queued, and the claim done
            if exc_type is None and self.lease_lost:  # reported when the renewal found it
                raise lease_lost(self.request, None)
            return
        try:
            step = self._staged()
            handover = self._adapter._do_cycle_commit(self.request, step)
        except LeaseLost as lost:
            raise self._lost(lost) from None  # nothing of ours to undo
        except Exception:
            # A state that cannot be stored, or a failed commit: as if the block raised. A
            # commit that ran on the server is not undone (the claim is done by then).
            self._abort()
            raise
        self._committed(step)
        self.pending = self._handed(handover)

    def drain(self) -> Iterator[PendingEntry]:
        """The messages queued behind this holder, in arrival order, under the lock.

        Messages that arrive while draining are included. Each step is one atomic call. It
        writes ``state`` if it changed, removes the entry just finished, and hands out the
        next oldest. That entry stays queued until finished. When none is left, the same
        step writes the state and releases the lock. So no entry can arrive in between and
        be stranded. The block then has nothing left to commit. An exception while handling
        an entry leaves that entry at the front of the queue for the next holder. So does a
        crash, or leaving the loop early. Every finished entry's state is written.
        :class:`LeaseLost` is raised when the lease went to another holder. Nothing of that
        step is written then."""
        if self._stage not in ("held", "draining") or not self.request.holds:
            return
        finished: str | None = None
        while True:
            step = self._step()
            try:
                handover = self._adapter._do_cycle_drain(self.request, step, finished)
            except LeaseLost as lost:
                raise self._lost(lost) from None
            entry = self._stepped(step, handover)
            if entry is None:
                return
            yield entry
            finished = entry.id

    def gather(self, window: float, *, max_wait: float | None = None) -> list[PendingEntry]:
        """Wait for a pause in arrivals, then return every message queued meanwhile, oldest first.

        The pause is ``window`` seconds with no message queued behind this holder. The wait
        ends after ``max_wait`` seconds anyway. The lease stays alive meanwhile. The
        messages are done at this cycle's commit, or its next drain step, with its state and
        staged effects. If the block raises, they stay queued for the next holder. The cycle
        must hold its thread's lock: ``acquired`` under ``queue``, ``debounce`` or
        ``reject``. Else ``ChatStateError``. :class:`LeaseLost` when the lease went to
        another holder."""
        check_gather(self.request, self._stage)
        gathering = Gathering(window, max_wait)
        try:
            entries = gather(
                lambda: self._adapter._do_cycle_gather(self.request), gathering, self._handed
            )
        except LeaseLost as lost:
            raise self._lost(lost) from None
        return self._gathered(entries)

    def _gathered(self, entries: list[PendingEntry]) -> list[PendingEntry]:
        taken = self._effects.taken
        fresh = [e for e in entries if e.id not in taken]
        taken.extend(e.id for e in fresh if e.id is not None)
        return fresh

    def _step(self) -> Staged:
        if self.lease_lost:  # reported when the renewal found it
            raise lease_lost(self.request, None)
        self._stage = "draining"
        return self._staged()

    def _stepped(self, step: Staged, handover: Handover) -> PendingEntry | None:
        if step.state is not None:
            self._original = step.state
        self._claim_open = False
        self._committed(step)
        entries = self._handed(handover)
        if not entries:
            self._stage = "done"
            if self.request.keepalive:
                renewer.unwatch(self)
            return None
        self._effects.handling(entries[0].id)
        return entries[0]


class AsyncMessageCycle(MessageCycle):
    """The async twin: ``async with store.ahandle_message(...) as msg``."""

    __slots__ = ()

    async def __aenter__(self) -> AsyncMessageCycle:
        try:
            entry = await self._adapter._do_acycle_enter(self.request)
        except Exception:
            await self._aabort()
            raise
        self._entered(entry)
        if self._stage == "held" and self.request.keepalive:
            self._keeper = asyncio.get_running_loop().create_task(keep_alive(self))
        return self

    async def _aabort(self) -> None:
        try:
            self._aborted(await self._adapter._do_acycle_abort(self.request))
        except Exception as exc:
            self._abort_failed(exc)

    def _stop_keeper(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stage, self._stage = self._stage, "done"
        self._stop_keeper()
        if stage == "new" or stage == "done":
            return
        if exc_type is not None or stage == "draining" or self.lease_lost:
            await self._aabort()
            if exc_type is None and self.lease_lost:
                raise lease_lost(self.request, None)
            return
        try:
            step = self._staged()
            handover = await self._adapter._do_acycle_commit(self.request, step)
        except LeaseLost as lost:
            raise self._lost(lost) from None
        except Exception:
            await self._aabort()
            raise
        self._committed(step)
        self.pending = self._handed(handover)

    async def agather(self, window: float, *, max_wait: float | None = None) -> list[PendingEntry]:
        """The async twin of :meth:`gather`."""
        check_gather(self.request, self._stage)
        gathering = Gathering(window, max_wait)
        try:
            entries = await agather(
                lambda: self._adapter._do_acycle_gather(self.request), gathering, self._handed
            )
        except LeaseLost as lost:
            raise self._lost(lost) from None
        return self._gathered(entries)

    async def adrain(self) -> AsyncIterator[PendingEntry]:
        """The async twin of :meth:`drain`: ``async for entry in msg.adrain()``."""
        if self._stage not in ("held", "draining") or not self.request.holds:
            return
        finished: str | None = None
        while True:
            step = self._step()
            try:
                handover = await self._adapter._do_acycle_drain(self.request, step, finished)
            except LeaseLost as lost:
                raise self._lost(lost) from None
            entry = self._stepped(step, handover)
            if entry is None:
                self._stop_keeper()
                return
            yield entry
            finished = entry.id
