"""``handle_message``: one webhook delivery, from dedupe claim to lock release."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from chatstate.types import LockResult, NotOwner, PendingEntry, Strategy
from chatstate.validation import dump_map

if TYPE_CHECKING:
    from chatstate.adapters.base import DedupeKey, StateAdapter

_KEEP_CLAIM = (LockResult.QUEUED, LockResult.DEBOUNCED)


class MessageCycle:
    """The ``as`` target of ``handle_message``, and the context manager itself.

    On entry the dedupe key is claimed; unless it was a duplicate, the subscription is read
    and the thread's lock taken with ``strategy``; when acquired, ``state`` is a mutable copy
    of the thread's map. The block always runs, so the caller can see why it may not act:

    * ``duplicate`` — the message was handled before (``result`` is None);
    * ``subscribed`` — whether the thread is subscribed;
    * ``result`` — the :class:`LockResult` (``acquired`` means: act on the message);
    * ``state`` — the thread's map (``{}`` unless acquired);
    * ``pending`` — after the block, the entries queued meanwhile, in arrival order.

    Clean exit after ``acquired``: the state is written (when it changed) and the lock
    released in one step; raises :class:`NotOwner` and writes nothing if the lease was lost
    to another holder. Block raised: nothing is written; the claim is withdrawn (a
    redelivery will be handled) unless the message sits queued or debounced behind the
    lock; an acquired lock is released with its pending entries kept for the next holder;
    the exception propagates. Duplicate or not acquired: nothing is written.
    """

    __slots__ = (
        "_adapter",
        "_args",
        "_original",
        "duplicate",
        "subscribed",
        "result",
        "state",
        "pending",
    )

    def __init__(
        self,
        adapter: StateAdapter,
        dedupe_key: DedupeKey,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        dedupe_limit: int,
        ttl: float,
    ) -> None:
        self._adapter = adapter
        self._args = (dedupe_key, thread_id, owner, strategy, metadata, dedupe_limit, ttl)
        self._original: str | None = None
        self.duplicate = False
        self.subscribed = False
        self.result: LockResult | None = None
        self.state: dict[str, Any] = {}
        self.pending: list[PendingEntry] = []

    @property
    def dedupe_key(self) -> DedupeKey:
        return self._args[0]

    @property
    def thread_id(self) -> str:
        return self._args[1]

    @property
    def owner(self) -> str:
        return self._args[2]

    @property
    def acquired(self) -> bool:
        """Whether this delivery holds the thread (``result`` is ``acquired``)."""
        return self.result is LockResult.ACQUIRED

    def __repr__(self) -> str:
        return (
            f"<MessageCycle {self.thread_id!r} duplicate={self.duplicate} "
            f"subscribed={self.subscribed} result={self.result}>"
        )

    # The two halves, shared by the sync and async context managers.

    def _entered(self, found: tuple[bool, bool, LockResult | None, dict[str, Any]]) -> None:
        claimed, self.subscribed, self.result, self.state = found
        self.duplicate = not claimed
        if self.result is LockResult.ACQUIRED:
            self._original = dump_map(self.state)

    def _commit_args(self) -> tuple[str, str, Strategy, dict[str, Any] | None, str | None]:
        _, thread_id, owner, strategy = self._args[:4]
        state = self.state
        state_json = dump_map(state, "handle_message state")
        if state_json == self._original:  # unchanged: nothing to write
            return thread_id, owner, strategy, None, None
        return thread_id, owner, strategy, state, state_json

    def _abort_args(self) -> tuple[DedupeKey, str, str, Strategy]:
        dedupe_key, thread_id, owner, strategy = self._args[:4]
        return dedupe_key, thread_id, owner, strategy

    def _must_abort(self) -> bool:
        return not self.duplicate and self.result not in _KEEP_CLAIM

    def __enter__(self) -> MessageCycle:
        self._entered(self._adapter._cycle_enter(*self._args))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            if self._must_abort():
                if self.result is LockResult.ACQUIRED:
                    self._adapter._cycle_abort(*self._abort_args())
                else:
                    self._adapter._do_withdraw_dedupe(self.dedupe_key)
            return
        if self.result is LockResult.ACQUIRED:
            try:
                self.pending = self._adapter._cycle_commit(*self._commit_args())
            except NotOwner:
                raise  # the lease went to another holder: nothing of ours to undo
            except Exception:
                # A state that cannot be stored, or a failed commit: as if the block raised.
                self._adapter._cycle_abort(*self._abort_args())
                raise


class AsyncMessageCycle(MessageCycle):
    """The async twin: ``async with store.ahandle_message(...) as msg``."""

    __slots__ = ()

    async def __aenter__(self) -> AsyncMessageCycle:
        self._entered(await self._adapter._arun(self._adapter._cycle_enter, *self._args))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        adapter = self._adapter
        if exc_type is not None:
            if self._must_abort():
                if self.result is LockResult.ACQUIRED:
                    await adapter._arun(adapter._cycle_abort, *self._abort_args())
                else:
                    await adapter._arun(adapter._do_withdraw_dedupe, self.dedupe_key)
            return
        if self.result is LockResult.ACQUIRED:
            try:
                self.pending = await adapter._arun(adapter._cycle_commit, *self._commit_args())
            except NotOwner:
                raise
            except Exception:
                await adapter._arun(adapter._cycle_abort, *self._abort_args())
                raise
