"""Snapshots: the whole state of one namespace as a value, its JSON form, and its files.

- :mod:`.snapshot`: :class:`Snapshot`, strict checks (``validate_snapshot``,
  ``snapshot_from``) and lenient repair (``normalize_snapshot``);
- :mod:`.scan`, :mod:`.checks`, :mod:`.lists_outbox`: the rules every reader shares;
- :mod:`.jsontext`: the JSON text's limits (depth, duplicate keys, big numbers);
- :mod:`.sections`: a snapshot as one stream per section (what backends export and load);
- :mod:`.files`: snapshot files read and written streamed, and the snapshot and restore
  operations the commands run.
"""

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
