"""Snapshots: the whole state of one namespace as a value, its JSON form, and its files.

- :mod:`.snapshot`: :class:`Snapshot`, strict checks and lenient repair.
- :mod:`.scan`, :mod:`.checks`, :mod:`.lists_outbox`: the rules every reader shares.
- :mod:`.jsontext`: the JSON text's limits on depth, duplicate keys and big numbers.
- :mod:`.sections`: a snapshot as one stream per section, as backends export and load it.
- :mod:`.files`: snapshot files read and written streamed, and the commands' operations."""

from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import (
    InvalidSnapshot,
    Snapshot,
    SnapshotNotJSON,
    default_snapshot,
    normalize_snapshot,
    snapshot_from,
    validate_snapshot,
)

__all__ = [
    "InvalidSnapshot",
    "Snapshot",
    "SnapshotNotJSON",
    "SnapshotSections",
    "default_snapshot",
    "normalize_snapshot",
    "snapshot_from",
    "validate_snapshot",
]
