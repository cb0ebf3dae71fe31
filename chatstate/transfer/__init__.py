"""Snapshots at scale: streamed JSON writing and reading, and the operations behind the
``chatstate_snapshot`` / ``chatstate_restore`` management commands.

- (:mod:`chatstate.sections`: ``SnapshotSections``, a snapshot as one stream per section,
  what the adapters' streaming hooks exchange and this package reads and writes);
- :mod:`~chatstate.transfer.writer`: ``write_snapshot``, exactly ``Snapshot.to_json``'s text;
- :mod:`~chatstate.transfer.jsonstream` and :mod:`~chatstate.transfer.reader`: the file
  checked as ``Snapshot.from_json`` would check it (up to ``max_problems``), then streamed,
  in bounded memory (:mod:`~chatstate.transfer.bulk`: arrays decoded a window at a time;
  :mod:`~chatstate.transfer.facts`: per-section checks; :mod:`~chatstate.transfer.seen`:
  duplicates worded as read; :mod:`~chatstate.transfer.hashruns` and
  :mod:`~chatstate.transfer.exact` / :mod:`~chatstate.transfer.ledger`: the cross-entry
  rules, in memory or on hashes, then exactly on disk when they show a problem);
- :mod:`~chatstate.transfer.source`: the file, or standard input copied as far as read;
- :mod:`~chatstate.transfer.operations`: export, restore (refusing a live namespace),
  dry-run report.
"""

from chatstate.sections import SECTIONS, SnapshotSections

__all__ = ["SECTIONS", "SnapshotSections"]
