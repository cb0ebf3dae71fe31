"""``manage.py chatstate_restore FILE|-``: load a snapshot file into a namespace, all or
nothing, after checking all of it."""

from __future__ import annotations

import re
from argparse import ArgumentParser, ArgumentTypeError
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatstate.management.commands._common import (
    ProgressStream,
    adapter_for,
    add_namespace_argument,
)
from chatstate.snapshot import InvalidSnapshot
from chatstate.transfer.jsonstream import DEFAULT_MAX_VALUE_BYTES
from chatstate.transfer.operations import Progress, RestoreReport, restore_snapshot
from chatstate.transfer.reader import open_source

_KINDS = ("added", "replaced", "appended", "removed", "unchanged")
_SIZE = re.compile(r"\s*([0-9]+)\s*([KMG]?)(?:i?B)?\s*", re.IGNORECASE)
_SHIFT = {"": 0, "K": 10, "M": 20, "G": 30}


def byte_size(text: str) -> int:
    """``"1048576"``, ``"512K"``, ``"4M"``, ``"1GiB"`` (binary units) as bytes, >= 1."""
    match = _SIZE.fullmatch(text)
    value = int(match[1]) << _SHIFT[match[2].upper()] if match else 0
    if value < 1:
        raise ArgumentTypeError(f"expected a size of at least 1 byte (1048576, 512K, 4M): {text!r}")
    return value


class Command(BaseCommand):
    help = (
        "Restore a snapshot file (or - for stdin) into the namespace. The whole file is "
        "checked first: any problem is printed with its JSON path and nothing changes. "
        "Replaces the namespace's state in one transaction, or merges with --merge."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE|-", help="the snapshot JSON file; - for stdin")
        add_namespace_argument(parser)
        parser.add_argument(
            "--merge",
            action="store_true",
            help="merge into the namespace (incoming values win) instead of replacing it",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be added, replaced and removed per section; change nothing",
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
            "--lenient",
            action="store_true",
            help="load what normalize_snapshot keeps of a damaged snapshot; print the drops",
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
                )
        except InvalidSnapshot as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            count = exc.total
            unlisted = count - len(exc.problems)
            if unlisted:
                self.stderr.write(f"... and {unlisted:,} more problems, not listed")
            listed = f"the first {len(exc.problems):,} listed above" if unlisted else "listed above"
            raise CommandError(
                f"{path} is not a valid snapshot ({count:,} problem{'s' if count != 1 else ''}, "
                f"{listed}); nothing was changed"
            ) from exc
        except OSError as exc:
            raise _unreadable(path, exc) from exc
        self.report(report, adapter.namespace, "merge" if merge else "replace", options)

    def report(self, report: RestoreReport, namespace: str, mode: str, options: Any) -> None:
        for warning in report.warnings:
            self.stderr.write(f"warning (ignored by --lenient): {warning}")
        if options["lenient"]:
            self.stdout.write(
                f"Lenient: dropped {report.dropped} entr{'y' if report.dropped == 1 else 'ies'} "
                "that normalize_snapshot could not keep."
            )
        if report.changes is not None:
            self.stdout.write(f"Dry run ({mode}) into namespace {namespace!r}; would change:")
            for name, counts in report.changes.items():
                self.stdout.write(f"  {name:<14} {_describe(counts)}")
            self.stdout.write("Nothing was changed.")
            return
        self.stdout.write(f"Restored into namespace {namespace!r} ({mode}):")
        for name, n in report.counts.items():
            unit = " keys" if name == "pending_locks" else ""
            self.stdout.write(f"  {name:<14} {n:>12,}{unit}")


def _unreadable(path: str, exc: OSError) -> CommandError:
    """The error for a file that cannot be read: its path and the system's reason."""
    return CommandError(f"cannot read {path}: {exc.strerror or exc}; nothing was changed")


def _describe(counts: Counter[str]) -> str:
    return ", ".join(
        f"{kind} {counts[kind]:,}" for kind in _KINDS if kind != "appended" or counts[kind]
    )
