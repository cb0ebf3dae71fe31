"""``manage.py chatstate_prune``: the namespace's housekeeping, run on a schedule.

A cron job or a beat runs it."""

from __future__ import annotations

import re
from argparse import ArgumentParser, ArgumentTypeError
from datetime import datetime, timedelta, timezone
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatstate.management.commands._common import (
    adapter_for,
    add_namespace_argument,
    quiet_on_closed_pipe,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
#: What ``--state-older-than`` accepts, as its error message shows it.
FORMS = "a positive number and a unit: 90s, 45m, 12h, 30d or 2w"


def duration(text: str) -> float:
    """Seconds in ``text``: a positive number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w``.

    Examples are ``90s``, ``45m``, ``12h``, ``30d`` and ``2w``. A bare number is refused. A
    retention cutoff read in the wrong unit deletes live state."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        hint = ""
        if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", text):
            hint = f" (a bare number has no unit: write {text.strip()}d for days)"
        raise ArgumentTypeError(f"{text!r} is not a duration{hint}; expected {FORMS}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def age_text(seconds: float) -> str:
    """``seconds`` in the largest unit that divides it, like ``30d``, ``90m`` or ``1.5s``."""
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


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
            help="remove states and subscriptions not touched for AGE, a number and a unit "
            "(90s, 45m, 12h, 30d, 2w; a bare number is refused). A subscription counts as "
            "touched while its thread's state is",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be removed; remove nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        adapter = adapter_for(options["namespace"])
        limit, age = options["dedupe_limit"], options["state_older_than"]
        started = datetime.now(timezone.utc)  # the cutoff reported: AGE before this run started
        try:
            counts = adapter.prune(limit, options["dry_run"], state_older_than=age)
        except ValueError as exc:
            raise CommandError(f"--dedupe-limit: {exc}") from exc
        verb = "Would remove" if options["dry_run"] else "Removed"
        kept = adapter.dedupe_limit if limit is None else limit
        line = (
            f"{verb} from namespace {adapter.namespace!r}: "
            f"{counts['expired_locks']} expired lock(s), "
            f"{counts['dedupe_trimmed']} dedupe key(s) older than the newest {kept}"
        )
        if adapter.dedupe_min_age:
            young = age_text(adapter.dedupe_min_age)
            line += f" (DEDUPE_MIN_AGE keeps every key younger than {young})"
        if adapter.pending_ttl is not None:
            line += f", {counts['pending_expired']} expired pending entr(y/ies)"
        if age is not None:
            cutoff = started - timedelta(seconds=age)
            line += (
                f", {counts['states_removed']} state(s) and "
                f"{counts['subscriptions_removed']} subscription(s) not touched since "
                f"{cutoff:%Y-%m-%d %H:%M:%S} UTC ({age_text(age)} before this run)"
            )
        if counts.get("lists_expired"):
            line += f", {counts['lists_expired']} expired list(s)"
        with quiet_on_closed_pipe(self.stdout):
            self.stdout.write(line + ".")
