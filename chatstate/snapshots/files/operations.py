"""What the snapshot commands do, without their argument parsing and printing.

- :func:`export_snapshot` streams an adapter's namespace as JSON text to a sink. It can
  write a file atomically.
- :func:`restore_snapshot` checks a snapshot file in full, or up to its first
  ``max_problems`` problems. It then loads it, all or nothing. A dry run compares it with
  the namespace instead. A replace restore refuses a live namespace
  (:mod:`chatstate.liveness`).
- :class:`Progress` shows "rows done / total" on a terminal, and nothing elsewhere."""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Protocol

from chatstate.liveness import DEFAULT_QUIET_FOR, NamespaceLive
from chatstate.snapshots.files.jsonstream import DEFAULT_MAX_VALUE_BYTES
from chatstate.snapshots.files.reader import SnapshotFile
from chatstate.snapshots.files.writer import TextSink, write_snapshot
from chatstate.snapshots.scan import MAPS
from chatstate.snapshots.sections import SECTIONS, SnapshotSections
from chatstate.snapshots.snapshot import InvalidSnapshot


class SnapshotStore(Protocol):
    """What the operations need of a store; a ``StateAdapter`` has all of it."""

    namespace: str

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]: ...

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None: ...

    def activity(self, quiet_for: float = ...) -> dict[str, Any]: ...


#: The sections a restore reports on (``dedupe`` and ``dedupe_order`` hold the same keys).
REPORTED = tuple(name for name in SECTIONS if name != "dedupe_order")
#: Problems found before a restore's check stops (``--max-problems``).
DEFAULT_MAX_PROBLEMS = 100


class Progress:
    """Report ``label: done / total rows`` on ``stream`` when ``enabled``.

    It reports at most every ``interval`` seconds, on one line rewritten in place. It does
    nothing when disabled."""

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
        """``sections`` reporting their rows to this progress; unchanged when disabled.

        ``dedupe`` holds the keys of ``dedupe_order`` again. The keys are counted once, from
        ``dedupe_order``. So the rows shown add up to the commands' summaries."""
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
    adapter: SnapshotStore,
    out: TextSink,
    indent: int | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write ``adapter``'s snapshot to ``out``: ``Snapshot.to_json(indent)`` and a newline.

    It returns the entries per section where the adapter knows them. The state is read in
    one consistent view, ``adapter.snapshot_sections()``. A failure propagates after a
    partial write. :func:`export_to_file` gives a file that is whole or untouched."""
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
    adapter: SnapshotStore, path: str, indent: int | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """:func:`export_snapshot` into ``path`` atomically.

    It writes a temporary file in the same directory, flushes it to disk and renames it over
    ``path``. On any failure the temporary file is removed. A file already at ``path`` is
    left as it was."""
    return write_atomically(path, lambda f: export_snapshot(adapter, f, indent, progress))


def write_atomically(path: str, fill: Callable[[IO[str]], Any]) -> Any:
    """Call ``fill`` with a UTF-8 text file that replaces ``path`` once complete.

    The replacement happens only once ``fill`` has returned and the data is on disk. It
    returns what ``fill`` returned. The new file keeps the mode of the one it replaces. Else
    it gets the umask's default."""
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
    """What a restore did, or would do on a ``dry_run``.

    - ``counts``: entries per section in the snapshot as loaded. For ``pending_locks``,
      keys.
    - ``dropped``: entries a lenient read dropped.
    - ``drops``: the first 1,000 of them, with their JSON path and why.
    - ``warnings``: header problems a lenient read ignored.
    - ``changes``: on a dry run, per section, how many entries would be ``added``,
      ``replaced``, ``removed``, ``appended`` to, or left ``unchanged``. Pending queues are
      appended to.
    - ``activity``: the namespace's liveness from ``StateAdapter.activity``. It is read
      before a replace and by a dry run.
    - ``forced``: a live namespace was replaced because of ``force``."""

    counts: dict[str, int]
    dropped: int = 0
    drops: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changes: dict[str, Counter[str]] | None = None
    activity: dict[str, Any] | None = None
    forced: bool = False


def restore_snapshot(
    adapter: SnapshotStore,
    raw: BinaryIO,
    *,
    merge: bool = False,
    dry_run: bool = False,
    lenient: bool = False,
    progress: Progress | None = None,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_problems: int | None = DEFAULT_MAX_PROBLEMS,
    force: bool = False,
    quiet_for: float = DEFAULT_QUIET_FOR,
) -> RestoreReport:
    """Check the snapshot in ``raw``, then load it into ``adapter``, all or nothing.

    ``raw`` is a seekable binary file. The load uses ``load_snapshot_stream``, as a replace
    or a ``merge``. No JSON value larger than ``max_value_bytes`` bytes is read; one is a
    problem. So memory stays bounded whatever the file.

    Strict is the default. It raises :class:`~chatstate.InvalidSnapshot` before anything
    changes. The error lists the problems, each with its JSON path. The check stops once
    ``max_problems`` are found, and ``stopped`` is set. So a file full of problems is
    refused after reading only the part that holds them.

    ``lenient`` loads what ``normalize_snapshot`` keeps. Invalid JSON still raises. The
    report lists the drops. ``dry_run`` compares with the namespace, reads its liveness and
    changes nothing.

    A replace refuses a live namespace unless ``force`` is set. It raises
    :class:`~chatstate.liveness.NamespaceLive` and changes nothing. Live means a lock held,
    a claim in progress, or activity within ``quiet_for`` seconds. Liveness is checked
    before the file is read, so a refusal costs no check. It is checked again just before
    the load, since workers may have started while a big file was checked."""
    replace = not merge and not dry_run
    if replace and not force:
        _refuse_live(adapter, adapter.activity(quiet_for))
    limit = None if lenient else max_problems
    with SnapshotFile(raw, lenient, max_value=max_value_bytes, max_problems=limit) as file:
        check = file.check()
        if check.problems:
            raise InvalidSnapshot(check.problems, check.total, check.stopped)
        sections = file.sections()
        report = RestoreReport(
            counts={name: sections.counts.get(name, 0) for name in REPORTED},
            dropped=check.dropped,
            drops=check.drops,
            warnings=check.warnings,
        )
        if dry_run or not merge:
            report.activity = adapter.activity(quiet_for)
        if dry_run:
            report.changes = plan_changes(adapter, sections, merge)
            return report
        if report.activity is not None and report.activity["live"]:
            if not force:
                _refuse_live(adapter, report.activity)
            report.forced = True
        if progress is not None:
            sections = progress.watch(f"restore {adapter.namespace}", sections)
        adapter.load_snapshot_stream(sections, merge)
        if progress is not None:
            progress.finish()
    return report


def _refuse_live(adapter: SnapshotStore, activity: dict[str, Any]) -> None:
    """``NamespaceLive`` when ``activity`` says the namespace is live."""
    if activity["live"]:
        raise NamespaceLive(adapter.namespace, activity)


def plan_changes(
    adapter: SnapshotStore, incoming: SnapshotSections, merge: bool
) -> dict[str, Counter[str]]:
    """Per section, what loading ``incoming`` would do to ``adapter``'s namespace.

    It reads one section of the current state at a time, and changes nothing."""
    with adapter.snapshot_sections() as current:
        changes = {
            "subscriptions": _set_changes(current.subscriptions, incoming.subscriptions, merge),
            "dedupe": _set_changes(current.dedupe, incoming.dedupe_order, merge),
        }
        for name in (*MAPS, "claims", "lists"):
            changes[name] = _map_changes(
                getattr(current, name), getattr(incoming, name), merge, name == "pending_locks"
            )
        changes["outbox"] = _outbox_changes(current.outbox, incoming.outbox, merge)
    return changes


def _set_changes(current: Iterable[Any], incoming: Iterable[Any], merge: bool) -> Counter[str]:
    have = set(current)
    counts: Counter[str] = Counter()
    for item in incoming:
        counts["unchanged" if item in have else "added"] += 1
    counts["removed"] = 0 if merge else len(have) - counts["unchanged"]
    return counts


def _map_changes(
    current: Iterable[tuple[Any, Any]],
    incoming: Iterable[tuple[Any, Any]],
    merge: bool,
    appends: bool,
    kept_on_merge: bool = False,
) -> Counter[str]:
    have = dict(current)
    counts: Counter[str] = Counter()
    matched = 0
    for key, value in incoming:
        if key not in have:
            counts["added"] += 1
            continue
        matched += 1
        if merge and kept_on_merge:
            counts["unchanged"] += 1
        elif merge and appends:
            counts["appended" if value else "unchanged"] += 1
        else:
            counts["unchanged" if have[key] == value else "replaced"] += 1
    counts["removed"] = 0 if merge else len(have) - matched
    return counts


def _outbox_changes(
    current: Iterable[dict[str, Any]], incoming: Iterable[dict[str, Any]], merge: bool
) -> Counter[str]:
    """Outbox entries by ``key``.

    When merging, an entry whose key is there leaves the one there, ``unchanged``. Others
    are ``added``. When replacing, entries compare as map values do."""
    return _map_changes(
        ((entry["key"], entry) for entry in current),
        ((entry["key"], entry) for entry in incoming),
        merge,
        appends=False,
        kept_on_merge=True,
    )
