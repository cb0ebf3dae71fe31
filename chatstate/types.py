"""Values and errors shared by every adapter: strategies, lock results, pending entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from chatstate.isotime import parse_iso8601


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)


class Strategy(_StrEnum):
    """What ``lock`` does when the key is already held."""

    REJECT = "reject"
    QUEUE = "queue"
    DEBOUNCE = "debounce"
    CONCURRENT = "concurrent"


class LockResult(_StrEnum):
    """The outcome of ``lock``."""

    ACQUIRED = "acquired"
    QUEUED = "queued"
    DEBOUNCED = "debounced"
    BUSY = "busy"
    DROPPED = "dropped"


#: Plain strings and members alike, to the member (a dict lookup, cheaper than ``Strategy(s)``).
STRATEGIES: dict[str, Strategy] = {s.value: s for s in Strategy}
RESULTS: dict[str, LockResult] = {r.value: r for r in LockResult}


@dataclass(frozen=True)
class PendingEntry:
    """A message that arrived while its thread's lock was held, in arrival order.

    ``metadata`` is always a dict; ``None`` from the caller becomes ``{}``. ``enqueued_at``
    is the ISO 8601 UTC time the entry was queued, where the backend knows it. ``id`` names
    the entry in its queue, where the backend has one; ``drain`` removes it by that id once
    finished. Two entries are equal when owner, strategy, metadata and time are."""

    owner: str
    strategy: Strategy
    metadata: dict[str, Any] = field(default_factory=dict)
    enqueued_at: str | None = None
    id: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The snapshot form: ``{"owner", "strategy", "metadata"}``, and ``enqueued_at``."""
        out: dict[str, Any] = {
            "owner": self.owner,
            "strategy": self.strategy.value,
            "metadata": self.metadata,
        }
        if self.enqueued_at is not None:
            out["enqueued_at"] = self.enqueued_at
        return out


@dataclass(frozen=True)
class OutboxEntry:
    """A reply staged by ``msg.send`` and committed with its message, not yet delivered.

    ``key`` is a stable idempotency key. It is the caller's, or derived from the message's
    dedupe key and the send's position in it. ``attempts`` counts failed deliveries. A
    ``dead`` entry is kept, but never retried until an operator requeues it. ``created_at``
    and ``due_at`` are ISO 8601 UTC."""

    id: str
    key: str
    thread_id: str
    payload: Any
    attempts: int = 0
    dead: bool = False
    created_at: str | None = None
    due_at: str | None = None


class ChatStateError(Exception):
    """Base class of every error chatstate raises on purpose."""


class LockError(ChatStateError):
    """A lock operation could not be carried out."""


class NotOwner(LockError):
    """``release_lock`` by an owner that does not hold the lock; nothing was changed."""


class LeaseLost(NotOwner):
    """The commit of a ``handle_message`` cycle whose lease went to another holder.

    Nothing of the cycle was written. Its state change is discarded. The lock, now someone
    else's, is left alone. The message's claim stays with whoever holds it now."""


class BackendUnavailable(ChatStateError):
    """The adapter's backing service, a database or Redis, cannot be reached.

    The message names the database or cache alias and the cause. The adapter's next call
    works again once the service is back. Nothing is retried behind the caller's back."""


def not_owner(key: str, owner: str, holder: str | None) -> NotOwner:
    """The :class:`NotOwner` for ``owner`` acting on lock ``key`` held by ``holder``.

    A ``holder`` of ``None`` or ``""`` means nobody."""
    held_by = repr(holder) if holder else "nobody"
    return NotOwner(f"{owner!r} does not hold the lock {key!r} (held by {held_by})")


DedupeKey = tuple[str, str]


def to_iso(dt: datetime) -> str:
    """``dt`` as ISO 8601 UTC with microseconds and a ``Z``: the snapshot timestamp form."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> datetime:
    """Parse a snapshot timestamp to an aware datetime, identically on every Python.

    The grammar is the ISO 8601 one of :mod:`chatstate.isotime`. It takes 1–9 fraction
    digits, and ``Z`` or an offset. A naive time means UTC. ``ValueError`` for other text."""
    return parse_iso8601(text)


def epoch_to_iso(seconds: float) -> str:
    """A POSIX timestamp in the snapshot timestamp form."""
    return to_iso(datetime.fromtimestamp(seconds, timezone.utc))


def as_iso(value: float | str) -> str:
    """A timestamp in the snapshot timestamp form, from a snapshot's text or POSIX seconds.

    Text is kept unchanged, so the exact text survives an export."""
    return value if isinstance(value, str) else epoch_to_iso(value)


def as_datetime(text: object, default: datetime) -> datetime:
    """A snapshot timestamp as an aware datetime; ``default`` when absent or not text."""
    return from_iso(text) if isinstance(text, str) else default


def as_epoch(text: object, default: float) -> float:
    """A snapshot timestamp as POSIX seconds; ``default`` when absent or not text."""
    return from_iso(text).timestamp() if isinstance(text, str) else default
