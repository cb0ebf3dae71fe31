"""``manage.py chatstate_snapshot``: the namespace's state as snapshot JSON, streamed."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatstate.management.commands._common import (
    ProgressStream,
    adapter_for,
    add_namespace_argument,
    quiet_on_closed_pipe,
)
from chatstate.snapshots.files.operations import Progress, export_snapshot, export_to_file


class Command(BaseCommand):
    help = (
        "Write the namespace's state as snapshot JSON (format chatstate.snapshot, version 3) "
        "to stdout or, atomically, to a file. The same state always gives the same bytes."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_namespace_argument(parser)
        parser.add_argument(
            "--output",
            "-o",
            metavar="FILE",
            help="write to FILE (a temporary file renamed into place) instead of stdout",
        )
        parser.add_argument(
            "--indent", type=int, metavar="N", help="indent by N spaces (default: compact)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        indent = options["indent"]
        if indent is not None and indent < 0:
            raise CommandError(f"--indent must be 0 or more, not {indent}")
        adapter = adapter_for(options["namespace"])
        progress = Progress(ProgressStream(self.stderr), self.stderr.isatty())
        output = options["output"]
        try:
            if output is None:
                with quiet_on_closed_pipe(self.stdout):
                    export_snapshot(adapter, _Sink(self.stdout), indent, progress)
                return
            counts = export_to_file(adapter, output, indent, progress)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc}") from exc
        summary = ", ".join(f"{name} {n:,}" for name, n in counts.items() if name != "dedupe")
        self.stdout.write(
            f"Wrote the snapshot of namespace {adapter.namespace!r} to {output}: "
            f"{summary or 'empty'}."
        )


class _Sink:
    """A text sink writing through a command's ``OutputWrapper`` without its line endings."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, ending="")
