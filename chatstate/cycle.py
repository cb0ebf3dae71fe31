"""``handle_message``: one webhook delivery, from dedupe claim to lock release."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from chatstate.types import (
    CycleEntry,
    CycleRequest,
    DedupeKey,
    LeaseLost,
    LockResult,
    PendingEntry,
)
from chatstate.validation import dump_map

if TYPE_CHECKING:
    from chatstate.adapters.base import StateAdapter

logger = logging.getLogger("chatstate")


class MessageCycle:
    """The ``as`` target of ``handle_message``, and the context manager itself.

    On entry, in one atomic step, the dedupe key is claimed; unless it was a duplicate, the
    thread's lock is taken with ``strategy`` and the subscription read; when acquired,
    ``state`` is a mutable copy of the thread's map. The block always runs, so the caller
    can see why it may not act:

    * ``duplicate`` — the message was handled before, or is being handled now by a holder
      whose lease still runs (``result`` is None);
    * ``in_progress`` — a duplicate of a delivery being handled right now: it may still fail,
      so answer the platform in a way that makes it deliver again later (e.g. 503 with
      ``Retry-After``), not as handled;
    * ``subscribed`` — whether the thread is subscribed;
    * ``result`` — the :class:`LockResult` (``acquired`` means: act on the message);
    * ``state`` — the thread's map (``{}`` unless acquired);
    * ``pending`` — after the block, the entries queued meanwhile, in arrival order.

    While an acquired block runs, the message's claim is *in progress*: a redelivery is a
    duplicate while the lease runs, and is handled if the holder dies. Clean exit after
    ``acquired``: in one atomic step the state is written (when it changed), the claim
    marked done and the lock released; raises :class:`LeaseLost` and writes nothing if the
    lease went to another holder. Block raised (or the commit failed): nothing is written;
    the claim is withdrawn and the lock released, its pending entries kept for the next
    holder — unless a commit already ran, which is never undone; the exception propagates.
    A queued or debounced message's claim is done on entry (it is stored); a refused
    (``busy``) message's claim is released on entry, so that a redelivery is handled; a
    duplicate or a message not acquired writes nothing on exit.
    """

    __slots__ = (
        "_adapter",
        "request",
        "_original",
        "duplicate",
        "in_progress",
        "subscribed",
        "result",
        "state",
        "pending",
    )

    def __init__(self, adapter: StateAdapter, request: CycleRequest) -> None:
        self._adapter = adapter
        self.request = request
        self._original: str | None = None
        self.duplicate = False
        self.in_progress = False
        self.subscribed = False
        self.result: LockResult | None = None
        self.state: dict[str, Any] = {}
        self.pending: list[PendingEntry] = []

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
        """Whether this delivery holds the thread (``result`` is ``acquired``)."""
        return self.result is LockResult.ACQUIRED

    def __repr__(self) -> str:
        return (
            f"<MessageCycle {self.thread_id!r} duplicate={self.duplicate} "
            f"subscribed={self.subscribed} result={self.result}>"
        )

    # The halves shared by the sync and async context managers.

    def _entered(self, entry: CycleEntry) -> None:
        self.duplicate = not entry.claimed
        self.in_progress = entry.in_progress
        self.subscribed = entry.subscribed
        self.result = entry.result
        self.state = entry.state
        if entry.result is LockResult.ACQUIRED:
            self._original = dump_map(entry.state)

    def _changed_state(self) -> str | None:
        """The state's JSON text when it changed, else None; ``TypeError`` if unstorable."""
        state_json = dump_map(self.state, "handle_message state")
        return None if state_json == self._original else state_json

    def _abort_failed(self, exc: BaseException) -> None:
        logger.warning(
            "chatstate: the cleanup of the cycle of %r on %r failed (%s); the claim and the lock "
            "stay until the lease ends, and a redelivery after that is handled",
            self.dedupe_key,
            self.thread_id,
            exc,
            extra={"dedupe_key": self.dedupe_key, "thread_id": self.thread_id, "owner": self.owner},
        )

    def __enter__(self) -> MessageCycle:
        try:
            entry = self._adapter.cycle_enter(self.request)
        except Exception:
            # The entry may have run on the server (a lost reply): undo what is ours, if any.
            self._abort()
            raise
        self._entered(entry)
        return self

    def _abort(self) -> None:
        try:
            self._adapter.cycle_abort(self.request)
        except Exception as exc:  # the lease will free the claim and the lock
            self._abort_failed(exc)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.result is not LockResult.ACQUIRED:
            return
        if exc_type is not None:
            self._abort()
            return
        try:
            self.pending = self._adapter.cycle_commit(self.request, self._changed_state())
        except LeaseLost:
            raise  # nothing of ours to undo: the lease (and the claim's) went elsewhere
        except Exception:
            # A state that cannot be stored, or a failed commit: as if the block raised. A
            # commit that ran on the server is not undone (the claim is done by then).
            self._abort()
            raise


class AsyncMessageCycle(MessageCycle):
    """The async twin: ``async with store.ahandle_message(...) as msg``."""

    __slots__ = ()

    async def __aenter__(self) -> AsyncMessageCycle:
        try:
            entry = await self._adapter.acycle_enter(self.request)
        except Exception:
            await self._aabort()
            raise
        self._entered(entry)
        return self

    async def _aabort(self) -> None:
        try:
            await self._adapter.acycle_abort(self.request)
        except Exception as exc:
            self._abort_failed(exc)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.result is not LockResult.ACQUIRED:
            return
        if exc_type is not None:
            await self._aabort()
            return
        try:
            self.pending = await self._adapter.acycle_commit(self.request, self._changed_state())
        except LeaseLost:
            raise
        except Exception:
            await self._aabort()
            raise
