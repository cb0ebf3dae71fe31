"""Snapshots at scale: streamed JSON writing and reading, and the operations behind the
``chatstate_snapshot`` / ``chatstate_restore`` management commands.

- (:mod:`chatstate.snapshots.sections`: ``SnapshotSections``, a snapshot as one stream per section,
  what the adapters' streaming hooks exchange and this package reads and writes);
- :mod:`.writer`: ``write_snapshot``, exactly ``Snapshot.to_json``'s text;
- :mod:`.jsonstream` and :mod:`.reader`: the file
  checked as ``Snapshot.from_json`` would check it (up to ``max_problems``), then streamed,
  in bounded memory (:mod:`.bulk`: arrays decoded a window at a time;
  :mod:`.facts`: per-section checks; :mod:`.seen`:
  duplicates worded as read; :mod:`.hashruns` and
  :mod:`.exact` / :mod:`.ledger`: the cross-entry
  rules, in memory or on hashes, then exactly on disk when they show a problem);
- :mod:`.source`: the file, or standard input copied as far as read;
- :mod:`.operations`: export, restore (refusing a live namespace),
  dry-run report.
"""

from chatstate.snapshots.sections import SECTIONS, SnapshotSections

__all__ = ["SECTIONS", "SnapshotSections"]
