"""Snapshots at scale: streamed JSON files, and the snapshot and restore operations.

The ``chatstate_snapshot`` and ``chatstate_restore`` commands run these operations. The
streams of :mod:`chatstate.snapshots.sections` are what this package reads and writes.

- :mod:`.writer`: ``write_snapshot``, exactly ``Snapshot.to_json``'s text.
- :mod:`.jsonstream` and :mod:`.reader`: the file checked as ``Snapshot.from_json`` would
  check it, up to ``max_problems``, then streamed in bounded memory.
- :mod:`.bulk`: arrays decoded a window at a time.
- :mod:`.facts`: per-section checks.
- :mod:`.seen`: duplicates worded as read.
- :mod:`.hashruns`, :mod:`.exact` and :mod:`.ledger`: the cross-entry rules. They run in
  memory or on hashes, then exactly on disk when they show a problem.
- :mod:`.source`: the file, or standard input copied as far as read.
- :mod:`.operations`: export, restore and the dry-run report. A restore refuses a live
  namespace.
"""

from chatstate.snapshots.sections import SECTIONS, SnapshotSections

__all__ = ["SECTIONS", "SnapshotSections"]
