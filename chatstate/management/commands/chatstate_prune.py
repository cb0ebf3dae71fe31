"""``manage.py chatstate_prune``: remove expired locks and trim the dedupe window."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatstate.management.commands._common import (
    adapter_for,
    add_namespace_argument,
    quiet_on_closed_pipe,
)


class Command(BaseCommand):
    help = (
        "Housekeeping: remove expired locks (their pending entries stay, for the next holder) "
        "and trim the dedupe window to its newest N keys. Prints what it removed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_namespace_argument(parser)
        parser.add_argument(
            "--dedupe-limit",
            type=int,
            metavar="N",
            help="keep the newest N dedupe keys (default: the DEDUPE_LIMIT setting)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be removed; remove nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        adapter = adapter_for(options["namespace"])
        limit = options["dedupe_limit"]
        try:
            counts = adapter.prune(limit, options["dry_run"])
        except ValueError as exc:
            raise CommandError(f"--dedupe-limit: {exc}") from exc
        verb = "Would remove" if options["dry_run"] else "Removed"
        kept = adapter.dedupe_limit if limit is None else limit
        with quiet_on_closed_pipe(self.stdout):
            self.stdout.write(
                f"{verb} from namespace {adapter.namespace!r}: "
                f"{counts['expired_locks']} expired lock(s), "
                f"{counts['dedupe_trimmed']} dedupe key(s) older than the newest {kept}."
            )
