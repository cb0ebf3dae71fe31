"""chatstate: what a chat bot remembers between webhook deliveries, for Django.

Everything public is importable from here; each name says where it lives.
"""

from chatstate.adapters.base import StateAdapter
from chatstate.registry import get_adapter
from chatstate.snapshots import (
    InvalidSnapshot,
    Snapshot,
    SnapshotNotJSON,
    default_snapshot,
    normalize_snapshot,
    snapshot_from,
    validate_snapshot,
)
from chatstate.types import (
    BackendUnavailable,
    ChatStateError,
    LeaseLost,
    LockError,
    LockResult,
    NotOwner,
    OutboxEntry,
    PendingEntry,
    Strategy,
)

__all__ = [
    "BackendUnavailable",
    "ChatStateError",
    "InvalidSnapshot",
    "LeaseLost",
    "LockError",
    "LockResult",
    "NotOwner",
    "OutboxEntry",
    "PendingEntry",
    "Snapshot",
    "SnapshotNotJSON",
    "StateAdapter",
    "Strategy",
    "default_snapshot",
    "get_adapter",
    "normalize_snapshot",
    "snapshot_from",
    "validate_snapshot",
]
