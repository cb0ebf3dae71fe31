"""What the snapshot commands do, without their argument parsing and printing.

- :func:`export_snapshot`: an adapter's namespace, streamed as JSON text to a sink or,
  atomically, to a file;
- :func:`restore_snapshot`: a snapshot file checked in full, then loaded (or, dry run,
  compared with the namespace), all or nothing;
- :class:`Progress`: "rows done / total" on a terminal, nothing elsewhere.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from chatstate.adapters.base import StateAdapter
from chatstate.sections import SECTIONS, SnapshotSections
from chatstate.snapshot import InvalidSnapshot
from chatstate.snapshot_scan import MAPS
from chatstate.transfer.jsonstream import DEFAULT_MAX_VALUE_BYTES
from chatstate.transfer.reader import SnapshotFile
from chatstate.transfer.writer import TextSink, write_snapshot

#: The sections a restore reports on (``dedupe`` and ``dedupe_order`` hold the same keys).
REPORTED = tuple(name for name in SECTIONS if name != "dedupe_order")


class Progress:
    """Reports ``label: done / total rows`` on ``stream`` when ``enabled``, at most every
    ``interval`` seconds, on one line rewritten in place; does nothing when disabled."""

    def __init__(self, stream: IO[str] | Any, enabled: bool, interval: float = 0.2) -> None:
        self.stream = stream
        self.enabled = enabled
        self.interval = interval
        self.label = ""
        self.total = 0
        self.done = 0
        self.shown = 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.shown = label, total, 0, 0.0

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.enabled and time.monotonic() - self.shown >= self.interval:
            self.show()

    def show(self, ending: str = "") -> None:
        self.shown = time.monotonic()
        self.stream.write(f"\r{self.label}: {self.done:,} / {self.total:,} rows{ending}")
        with suppress(AttributeError):
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.done:
            self.show("\n")

    def watch(self, label: str, sections: SnapshotSections) -> SnapshotSections:
        """``sections`` reporting their rows to this progress (unchanged when disabled).

        ``dedupe`` holds the keys of ``dedupe_order`` again: the keys are counted once (from
        ``dedupe_order``), so the rows shown add up to the commands' summaries."""
        if not self.enabled:
            return sections
        counts = sections.counts
        keys = max(counts.get("dedupe", 0), counts.get("dedupe_order", 0))
        rest = sum(n for name, n in counts.items() if name not in ("dedupe", "dedupe_order"))
        self.start(label, keys + rest)
        observed = sections.observed(self.advance)
        observed.dedupe = sections.dedupe
        return observed


# -- export --------------------------------------------------------------------------------


def export_snapshot(
    adapter: StateAdapter,
    out: TextSink,
    indent: int | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write ``adapter``'s snapshot to ``out``: ``Snapshot.to_json(indent)`` and a newline.

    Returns the entries per section where the adapter knows them. The state is read in one
    consistent view (``adapter.snapshot_sections()``); a failure propagates after a partial
    write (use :func:`export_to_file` for a file that is whole or untouched)."""
    with adapter.snapshot_sections() as sections:
        counts = dict(sections.counts)
        if progress is not None:
            sections = progress.watch(f"snapshot {adapter.namespace}", sections)
        write_snapshot(sections, out, indent)
        out.write("\n")
    if progress is not None:
        progress.finish()
    return counts


def export_to_file(
    adapter: StateAdapter, path: str, indent: int | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """:func:`export_snapshot` into ``path`` atomically: a temporary file in the same
    directory, flushed to disk, renamed over ``path``. On any failure the temporary file is
    removed and a file already at ``path`` is left as it was."""
    return write_atomically(path, lambda f: export_snapshot(adapter, f, indent, progress))


def write_atomically(path: str, fill: Callable[[IO[str]], Any]) -> Any:
    """Call ``fill`` with a UTF-8 text file that replaces ``path`` only once ``fill`` has
    returned and the data is on disk; returns what ``fill`` returned. The new file keeps the
    mode of the one it replaces (else the umask's default)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
            result = fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, _mode_for(path))
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return result


def _mode_for(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


# -- restore -------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    """What a restore did (or, ``dry_run``, would do).

    ``counts``: entries per section in the snapshot as loaded (``pending_locks``: keys);
    ``dropped``: entries a lenient read dropped; ``warnings``: header problems a lenient read
    ignored; ``changes`` (dry run): per section, how many entries would be ``added``,
    ``replaced``, ``removed``, ``appended`` to (pending queues) or left ``unchanged``."""

    counts: dict[str, int]
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    changes: dict[str, Counter[str]] | None = None


def restore_snapshot(
    adapter: StateAdapter,
    raw: BinaryIO,
    *,
    merge: bool = False,
    dry_run: bool = False,
    lenient: bool = False,
    progress: Progress | None = None,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> RestoreReport:
    """Check the snapshot in ``raw`` (a seekable binary file) in full, then load it into
    ``adapter`` with ``load_snapshot_stream`` (replace, or ``merge``), all or nothing.

    Strict (default): raises :class:`~chatstate.snapshot.InvalidSnapshot` listing every
    problem (the first 1,000; ``total`` counts them all), each with its JSON path, before
    anything is changed. ``lenient``: loads what ``normalize_snapshot`` keeps (invalid JSON
    still raises). ``dry_run``: compares with the namespace and changes nothing. No value
    larger than ``max_value_bytes`` bytes of JSON text is read (one is a problem): memory
    stays bounded whatever the file."""
    with SnapshotFile(raw, lenient=lenient, max_value=max_value_bytes) as snapshot_file:
        check = snapshot_file.check()
        if check.problems:
            raise InvalidSnapshot(check.problems, check.total)
        sections = snapshot_file.sections()
        report = RestoreReport(
            counts={name: sections.counts.get(name, 0) for name in REPORTED},
            dropped=check.dropped,
            warnings=check.warnings,
        )
        if dry_run:
            report.changes = plan_changes(adapter, sections, merge)
            return report
        if progress is not None:
            sections = progress.watch(f"restore {adapter.namespace}", sections)
        adapter.load_snapshot_stream(sections, merge)
        if progress is not None:
            progress.finish()
    return report


def plan_changes(
    adapter: StateAdapter, incoming: SnapshotSections, merge: bool
) -> dict[str, Counter[str]]:
    """Per section, what loading ``incoming`` would do to ``adapter``'s namespace; reads
    one section of the current state at a time and changes nothing."""
    with adapter.snapshot_sections() as current:
        changes = {
            "subscriptions": _set_changes(current.subscriptions, incoming.subscriptions, merge),
            "dedupe": _set_changes(current.dedupe, incoming.dedupe_order, merge),
        }
        for name in (*MAPS, "claims"):
            changes[name] = _map_changes(
                getattr(current, name), getattr(incoming, name), merge, name == "pending_locks"
            )
    return changes


def _set_changes(current: Iterable[Any], incoming: Iterable[Any], merge: bool) -> Counter[str]:
    have = set(current)
    counts: Counter[str] = Counter()
    for item in incoming:
        counts["unchanged" if item in have else "added"] += 1
    counts["removed"] = 0 if merge else len(have) - counts["unchanged"]
    return counts


def _map_changes(
    current: Iterable[tuple[str, Any]],
    incoming: Iterable[tuple[str, Any]],
    merge: bool,
    appends: bool,
) -> Counter[str]:
    have = dict(current)
    counts: Counter[str] = Counter()
    matched = 0
    for key, value in incoming:
        if key not in have:
            counts["added"] += 1
            continue
        matched += 1
        if merge and appends:
            counts["appended" if value else "unchanged"] += 1
        else:
            counts["unchanged" if have[key] == value else "replaced"] += 1
    counts["removed"] = 0 if merge else len(have) - matched
    return counts
