"""``manage.py chatstate_prune``: the namespace's housekeeping, on a schedule (cron, a beat)."""

from __future__ import annotations

import re
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatstate.management.commands._common import (
    adapter_for,
    add_namespace_argument,
    quiet_on_closed_pipe,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def duration(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit (``90``, ``45m``, ``12h``,
    ``30d``, ``2w``)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ArgumentTypeError(
            f"{text!r} is not a duration: a positive number with an optional unit s, m, h, d "
            "or w (e.g. 30d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


class Command(BaseCommand):
    help = (
        "Housekeeping: remove expired locks (their pending entries stay, for the next holder), "
        "trim the dedupe window to its newest N keys (keeping those younger than "
        "DEDUPE_MIN_AGE), drop pending entries older than PENDING_TTL, and with "
        "--state-older-than remove thread and channel states and subscriptions not touched "
        "for that long; remove the lists whose ttl ran out. Prints what it removed."
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
            "--state-older-than",
            type=duration,
            metavar="AGE",
            help="remove states and subscriptions not touched for AGE (e.g. 30d; a "
            "subscription counts as touched while its thread's state is)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be removed; remove nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        adapter = adapter_for(options["namespace"])
        limit = options["dedupe_limit"]
        try:
            counts = adapter.prune(
                limit, options["dry_run"], state_older_than=options["state_older_than"]
            )
        except ValueError as exc:
            raise CommandError(f"--dedupe-limit: {exc}") from exc
        verb = "Would remove" if options["dry_run"] else "Removed"
        kept = adapter.dedupe_limit if limit is None else limit
        line = (
            f"{verb} from namespace {adapter.namespace!r}: "
            f"{counts['expired_locks']} expired lock(s), "
            f"{counts['dedupe_trimmed']} dedupe key(s) older than the newest {kept}"
        )
        if adapter.pending_ttl is not None:
            line += f", {counts['pending_expired']} expired pending entr(y/ies)"
        if options["state_older_than"] is not None:
            line += (
                f", {counts['states_removed']} state(s) and "
                f"{counts['subscriptions_removed']} subscription(s) not touched since"
            )
        if counts.get("lists_expired"):
            line += f", {counts['lists_expired']} expired list(s)"
        with quiet_on_closed_pipe(self.stdout):
            self.stdout.write(line + ".")
