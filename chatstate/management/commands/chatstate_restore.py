"""``manage.py chatstate_restore FILE|-``: load a snapshot file into a namespace.

The load is all or nothing, after checking all of the file."""

from __future__ import annotations

import re
from argparse import ArgumentParser, ArgumentTypeError
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatstate.liveness import DEFAULT_QUIET_FOR, NamespaceLive, describe
from chatstate.management.commands._common import (
    ProgressStream,
    adapter_for,
    add_namespace_argument,
)
from chatstate.snapshots.files.jsonstream import DEFAULT_MAX_VALUE_BYTES
from chatstate.snapshots.files.operations import (
    DEFAULT_MAX_PROBLEMS,
    Progress,
    RestoreReport,
    restore_snapshot,
)
from chatstate.snapshots.files.source import open_source
from chatstate.snapshots.snapshot import InvalidSnapshot

_KINDS = ("added", "replaced", "appended", "removed", "unchanged")
_SIZE = re.compile(r"\s*([0-9]+)\s*([KMG]?)(?:i?B)?\s*", re.IGNORECASE)
_SHIFT = {"": 0, "K": 10, "M": 20, "G": 30}
_SECONDS = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h)?\s*")
_UNIT = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def byte_size(text: str) -> int:
    """Bytes, >= 1, from text like ``"1048576"``, ``"512K"``, ``"4M"`` or ``"1GiB"``.

    The units are binary."""
    match = _SIZE.fullmatch(text)
    value = int(match[1]) << _SHIFT[match[2].upper()] if match else 0
    if value < 1:
        raise ArgumentTypeError(f"expected a size of at least 1 byte (1048576, 512K, 4M): {text!r}")
    return value


def seconds(text: str) -> float:
    """``"60"``, ``"90s"``, ``"2m"``, ``"1h"`` as seconds, >= 0."""
    match = _SECONDS.fullmatch(text)
    if match is None:
        raise ArgumentTypeError(f"expected a number of seconds >= 0 (60, 90s, 2m, 1h): {text!r}")
    return float(match[1]) * _UNIT[match[2]]


def count(text: str) -> int:
    """A whole number >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"expected a whole number of at least 1: {text!r}")
    return int(text)


class Command(BaseCommand):
    help = (
        "Restore a snapshot file (or - for stdin) into the namespace. The file is checked "
        "first: its problems are printed with their JSON paths (the first --max-problems; the "
        "check stops there) and nothing changes. Replaces the namespace's state in one "
        "transaction — refused while the namespace is live, unless --force — or merges with "
        "--merge."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE|-", help="the snapshot JSON file; - for stdin")
        add_namespace_argument(parser)
        parser.add_argument(
            "--merge",
            action="store_true",
            help="merge into the namespace (incoming values win; an outbox entry whose key is "
            "there already is left as it is) instead of replacing it; allowed while it is live",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be added, replaced and removed per section, and whether the "
            "namespace is live; change nothing",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the namespace even while it is live (locks held, claims in progress, "
            "or activity within --quiet-for): what its workers did since the snapshot is lost",
        )
        parser.add_argument(
            "--quiet-for",
            type=seconds,
            default=DEFAULT_QUIET_FOR,
            metavar="SECONDS",
            help="a replace restore needs the namespace quiet this long: no dedupe claim, lock "
            "taken or state written (default 60; 90s, 2m, 1h)",
        )
        parser.add_argument(
            "--max-value-bytes",
            type=byte_size,
            default=DEFAULT_MAX_VALUE_BYTES,
            metavar="N",
            help=(
                "refuse any single value (a state map, a lock, a pending list, an id…) whose "
                "JSON text is larger than N bytes (K/M/G suffixes are binary; default 1M). "
                "Bounds memory: raise it only for a file you trust to hold larger states"
            ),
        )
        parser.add_argument(
            "--max-problems",
            type=count,
            default=DEFAULT_MAX_PROBLEMS,
            metavar="N",
            help="stop checking at the first N problems and print them (default 100); with "
            "--lenient, print at most N of the entries dropped",
        )
        parser.add_argument(
            "--lenient",
            action="store_true",
            help="load what normalize_snapshot keeps of a damaged snapshot; print each entry "
            "dropped with its JSON path and why",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path, merge = options["file"], options["merge"]
        adapter = adapter_for(options["namespace"])
        try:
            raw = open_source(path, options.get("stdin"))
        except OSError as exc:
            raise _unreadable(path, exc) from exc
        progress = Progress(ProgressStream(self.stderr), self.stderr.isatty())
        try:
            with raw:
                report = restore_snapshot(
                    adapter,
                    raw,
                    merge=merge,
                    dry_run=options["dry_run"],
                    lenient=options["lenient"],
                    progress=progress,
                    max_value_bytes=options["max_value_bytes"],
                    max_problems=options["max_problems"],
                    force=options["force"],
                    quiet_for=options["quiet_for"],
                )
        except InvalidSnapshot as exc:
            raise self.refused(path, exc) from exc
        except NamespaceLive as exc:
            raise CommandError(f"{exc}; nothing was changed") from exc
        except ValueError as exc:  # the backend refused the load (all or nothing)
            where = f"namespace {adapter.namespace!r}"
            raise CommandError(f"cannot restore into {where}: {exc}; nothing was changed") from exc
        except OSError as exc:
            raise _unreadable(path, exc) from exc
        self.report(report, adapter.namespace, "merge" if merge else "replace", options)

    def refused(self, path: str, exc: InvalidSnapshot) -> CommandError:
        """Print the problems of ``exc``; the command's error."""
        for problem in exc.problems:
            self.stderr.write(problem)
        total, listed = exc.total, len(exc.problems)
        if exc.stopped:
            self.stderr.write(f"... checking stopped here (--max-problems {listed:,})")
            return CommandError(
                f"{path} is not a valid snapshot (checking stopped at {total:,} "
                f"problem{'s' * (total != 1)}, listed above; the rest of the file was not "
                "checked); nothing was changed"
            )
        if total > listed:
            self.stderr.write(f"... and {total - listed:,} more problems, not listed")
        shown = f"the first {listed:,} listed above" if total > listed else "listed above"
        return CommandError(
            f"{path} is not a valid snapshot ({total:,} problem{'s' * (total != 1)}, "
            f"{shown}); nothing was changed"
        )

    def report(self, report: RestoreReport, namespace: str, mode: str, options: Any) -> None:
        for warning in report.warnings:
            self.stderr.write(f"warning (ignored by --lenient): {warning}")
        if options["lenient"]:
            self.drops(report, options["max_problems"])
        if report.forced and report.activity is not None:
            found = describe(namespace, report.activity)
            self.stderr.write(f"warning: {found}; replaced anyway (--force)")
        if report.changes is not None:
            if report.activity is not None:
                self.stdout.write(self.liveness(namespace, report.activity, mode))
            self.stdout.write(f"Dry run ({mode}) into namespace {namespace!r}; would change:")
            for name, counts in report.changes.items():
                self.stdout.write(f"  {name:<14} {_describe(counts)}")
            self.stdout.write("Nothing was changed.")
            return
        self.stdout.write(f"Restored into namespace {namespace!r} ({mode}):")
        for name, n in report.counts.items():
            unit = " keys" if name == "pending_locks" else ""
            self.stdout.write(f"  {name:<14} {n:>12,}{unit}")

    def drops(self, report: RestoreReport, limit: int) -> None:
        """``Lenient: dropped N entries …``, then each of the first ``limit`` drops."""
        n = report.dropped
        self.stdout.write(
            f"Lenient: dropped {n:,} entr{'y' if n == 1 else 'ies'} that normalize_snapshot "
            f"could not keep{':' if n else '.'}"
        )
        shown = report.drops[:limit]
        for drop in shown:
            self.stdout.write(f"  dropped {drop}")
        if n > len(shown):
            self.stdout.write(f"  ... and {n - len(shown):,} more")

    @staticmethod
    def liveness(namespace: str, activity: dict[str, Any], mode: str) -> str:
        line = describe(namespace, activity)
        if activity["live"] and mode == "replace":
            return f"{line}: a replace restore would be refused (stop the workers or --force)."
        return f"{line}."


def _unreadable(path: str, exc: OSError) -> CommandError:
    """The error for a file that cannot be read: its path and the system's reason."""
    return CommandError(f"cannot read {path}: {exc.strerror or exc}; nothing was changed")


def _describe(counts: Counter[str]) -> str:
    return ", ".join(
        f"{kind} {counts[kind]:,}" for kind in _KINDS if kind != "appended" or counts[kind]
    )
