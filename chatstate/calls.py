"""The checked calls a backend receives, and what it answers.

The hooks of :class:`~chatstate.adapters.hooks.StateBackend` take these. The public methods
of ``StateAdapter`` check their arguments and fill in the defaults from the settings. They
then hand a backend one of these frozen requests. A backend answers with plain values or the
small result objects below. The adapter sends its signals from those."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from chatstate.types import (
    DedupeKey,
    LeaseLost,
    LockResult,
    PendingEntry,
    Strategy,
    not_owner,
)


@dataclass(frozen=True, slots=True)
class LockRequest:
    """A checked ``lock`` call.

    ``metadata`` is compact JSON text. A ``max_pending`` of None means unbounded."""

    key: str
    owner: str
    strategy: Strategy
    metadata: str
    ttl: float
    max_pending: int | None = None
    overflow: str = "drop_oldest"
    max_concurrent: int | None = None

    @property
    def capped(self) -> bool:
        """Whether this is a ``concurrent`` take with a cap: a slot of ``max_concurrent``."""
        return self.max_concurrent is not None and self.strategy is Strategy.CONCURRENT


@dataclass(frozen=True, slots=True)
class CycleRequest:
    """A checked ``handle_message`` call.

    - ``owner`` holds the cycle's dedupe claim, with the lease ``ttl`` of its lock on
      ``thread_id``.
    - ``metadata`` is compact JSON text.
    - ``min_age`` is how many seconds the dedupe window keeps the keys it trims.
    - ``max_pending`` and ``overflow`` bound the queue, as for ``lock``.
    - ``channel_id`` is the message's channel. Staged channel operations apply to it.
    - ``history`` is how many of the thread's newest history items the entry step reads.
    - ``max_concurrent`` caps ``concurrent`` at this many holders of the thread at once.
      Each holds a slot with its own lease. The excess is queued.
    """

    dedupe_key: DedupeKey
    thread_id: str
    owner: str
    strategy: Strategy
    metadata: str
    dedupe_limit: int
    ttl: float
    max_pending: int | None = None
    overflow: str = "drop_oldest"
    min_age: float = 0.0
    keepalive: bool = False
    channel_id: str | None = None
    history: int = 0
    max_concurrent: int | None = None

    @property
    def locks(self) -> bool:
        """Whether the cycle takes the thread's lock: every strategy but ``concurrent``."""
        return self.strategy is not Strategy.CONCURRENT

    @property
    def slots(self) -> bool:
        """Whether the cycle takes one of ``max_concurrent`` slots: ``concurrent`` with a cap."""
        return self.max_concurrent is not None and self.strategy is Strategy.CONCURRENT

    @property
    def holds(self) -> bool:
        """Whether the cycle holds its thread's lock or a slot.

        Its commit releases that hold, and its drain works under it."""
        return self.locks or self.slots

    def lock_request(self) -> LockRequest:
        """The ``lock`` call the cycle makes on its thread."""
        return LockRequest(
            self.thread_id,
            self.owner,
            self.strategy,
            self.metadata,
            self.ttl,
            self.max_pending,
            self.overflow,
            self.max_concurrent,
        )


@dataclass(frozen=True, slots=True)
class PruneRequest:
    """A checked ``prune`` call.

    ``limit`` and ``min_age`` bound the dedupe window. Pending entries older than
    ``pending_ttl`` go; None keeps them. States and subscriptions untouched for
    ``state_older_than`` seconds go; None keeps them. ``dry_run`` counts and changes
    nothing."""

    dedupe_limit: int
    dry_run: bool = False
    min_age: float = 0.0
    pending_ttl: float | None = None
    state_older_than: float | None = None


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    """A checked claim: lease up to ``limit`` due outbox entries to ``owner`` for ``lease``
    seconds."""

    owner: str
    limit: int
    lease: float


@dataclass(slots=True)
class LockOutcome:
    """What a ``lock`` did.

    ``result`` is its result. ``dropped`` holds the pending entries it dropped. That is an
    overflow under ``drop_oldest``, or the entries a ``debounce`` replaced. ``taken_over``
    is the previous holder, when the lock was taken after that holder's lease ran out."""

    result: LockResult
    dropped: list[PendingEntry] = field(default_factory=list)
    taken_over: str | None = None


@dataclass(slots=True)
class Handover:
    """Pending entries handed to a holder, and those dropped on the way.

    ``entries`` are oldest first. ``expired`` holds those older than ``PENDING_TTL``."""

    entries: list[PendingEntry] = field(default_factory=list)
    expired: list[PendingEntry] = field(default_factory=list)


@dataclass(slots=True)
class Pruned:
    """What ``prune`` did, or would do on a dry run.

    ``counts`` is what it returns. ``expired`` holds the pending entries dropped as expired,
    by lock key, for the signal."""

    counts: dict[str, int]
    expired: dict[str, list[PendingEntry]] = field(default_factory=dict)


#: A staged channel-map operation: ``(op, key, value_json)``. For ``"set"`` the value is
#: JSON text. For ``"delete"`` it is ``None``. For ``"incr"`` it is the number's JSON text.
#: For ``"add"`` and ``"discard"`` it is a JSON scalar's text.
ChannelOp = tuple[str, str, "str | None"]


@dataclass(frozen=True, slots=True)
class ListAppend:
    """A staged append of ``value``, as JSON text, to the list ``key``.

    The list then keeps its newest ``max_length`` items; None keeps all. ``ttl`` in seconds
    renews its expiry; None leaves it."""

    key: str
    value: str
    max_length: int | None = None
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """A staged outbox entry: its idempotency ``key``, its thread and its payload as JSON text."""

    key: str
    thread_id: str
    payload: str


@dataclass(frozen=True, slots=True)
class Staged:
    """What one commit or drain step of a cycle writes: all in that step, all or nothing.

    - ``state``: the thread's map as JSON text. None leaves it unchanged.
    - ``claim``: mark the cycle's claim done. It must still be in progress and ``owner``'s.
      Else the step raises ``LeaseLost`` and writes nothing.
    - ``channel``: operations on the map of ``channel_id``, applied in order.
    - ``subscribe``: True subscribes the thread, False unsubscribes it, None leaves it.
    - ``lists``: appends, in order. A thread's history is the list
      :func:`~chatstate.validation.history_key`.
    - ``sends``: outbox entries, in order. An entry whose key is already in the outbox is
      not added again.
    - ``taken``: the ids of pending entries ``gather`` handed to this cycle. This step
      removes them from the queue.
    - ``claim_id``: the row of the cycle's claim, where the entry step gave one (see
      :class:`CycleEntry`). The step finds the claim by it.
    - ``rows``: where the entry step left the claim's and the lock's rows, and read the
      thread's state, where it gave them. The step looks there first.
    """

    state: str | None = None
    claim: bool = False
    channel_id: str | None = None
    channel: tuple[ChannelOp, ...] = ()
    subscribe: bool | None = None
    lists: tuple[ListAppend, ...] = ()
    sends: tuple[Send, ...] = ()
    taken: tuple[str, ...] = ()
    claim_id: int | None = None
    rows: tuple[str | None, ...] = ()

    @property
    def effects(self) -> bool:
        """Whether anything besides the state and the claim is staged."""
        return bool(
            self.channel or self.subscribe is not None or self.lists or self.sends or self.taken
        )


@dataclass(slots=True)
class CycleEntry:
    """What the entry step of a cycle found.

    - ``claimed``: the message was not a duplicate. Its claim is now this cycle's.
    - ``subscribed``: the thread's subscription, read after the lock.
    - ``result``: the lock's outcome; ``None`` when not claimed.
    - ``state``: the thread's map; ``{}`` unless acquired.
    - ``in_progress``: not claimed because another delivery of the message is being handled
      right now. Its claim is in progress and its holder alive.
    - ``dropped`` and ``taken_over``: as for :class:`LockOutcome`.
    - ``held``: the cycle holds the thread's lock. It always does when acquired. It also
      does when the message was queued behind entries a previous holder left. Its drain then
      hands those out first, then the message.
    - ``claim_id``: the claim's row, on a backend that keys claims by one (PostgreSQL's fast
      path). The cycle's steps hand it back in :class:`Staged`.
    - ``rows``: where the claim's, the lock's and the state's rows lie, on a backend that
      finds a row by its address (PostgreSQL's fast path). The commit hands them back in
      :class:`Staged`.
    """

    claimed: bool
    subscribed: bool
    result: LockResult | None = None
    state: dict[str, Any] = field(default_factory=dict)
    in_progress: bool = False
    dropped: list[PendingEntry] = field(default_factory=list)
    taken_over: str | None = None
    held: bool = False
    history: list[Any] = field(default_factory=list)
    claim_id: int | None = None
    rows: tuple[str | None, ...] = ()


def lease_lost(request: CycleRequest, holder: str | None) -> LeaseLost:
    """The :class:`LeaseLost` of ``request``'s commit.

    Either the lock is ``holder``'s, or the claim went to another delivery. The claim case
    applies under ``concurrent``, or when ``holder`` is the cycle's own owner."""
    if request.locks and holder != request.owner:
        return LeaseLost(str(not_owner(request.thread_id, request.owner, holder)))
    return LeaseLost(f"{request.owner!r} no longer holds the claim of {request.dedupe_key!r}")


class CycleHooks(Protocol):
    """The hooks a :class:`~chatstate.cycle.MessageCycle` runs on.

    Every :class:`~chatstate.adapters.hooks.StateBackend` has them, and documents each."""

    def _do_cycle_enter(self, request: CycleRequest) -> CycleEntry: ...
    def _do_cycle_commit(self, request: CycleRequest, staged: Staged) -> Handover: ...
    def _do_cycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover: ...
    def _do_cycle_renew(self, request: CycleRequest) -> bool: ...
    def _do_cycle_gather(self, request: CycleRequest) -> Handover: ...
    def _do_cycle_abort(self, request: CycleRequest) -> bool: ...
    async def _do_acycle_enter(self, request: CycleRequest) -> CycleEntry: ...
    async def _do_acycle_commit(self, request: CycleRequest, staged: Staged) -> Handover: ...
    async def _do_acycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Handover: ...
    async def _do_acycle_renew(self, request: CycleRequest) -> bool: ...
    async def _do_acycle_gather(self, request: CycleRequest) -> Handover: ...
    async def _do_acycle_abort(self, request: CycleRequest) -> bool: ...
