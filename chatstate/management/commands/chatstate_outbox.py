"""``manage.py chatstate_outbox``: the outbox dispatcher, a worker that needs no other service."""

from __future__ import annotations

import signal
import threading
import time
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from chatstate import conf
from chatstate.management.commands._common import adapter_for, add_namespace_argument
from chatstate.outbox import Sender, resolve_sender

#: The bounds of ``--interval``: idle polls between 10 ms and one minute apart.
MIN_INTERVAL, MAX_INTERVAL = 0.01, 60.0


def interval(text: str) -> float:
    """Seconds between idle polls: a number within the bounds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ArgumentTypeError(
            f"{text!r} is not an interval: seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}"
        )
    return seconds


def positive(text: str) -> int:
    """A count of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT set ``stop``.

    The batch under way ends first. A second signal ends the process at once, with that
    signal's default action."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Command(BaseCommand):
    help = (
        "Deliver the outbox: send each due entry through the OUTBOX_SENDER setting's "
        "callable, in batches, until stopped (SIGTERM or Ctrl-C: the batch under way ends, "
        "then the command exits 0). Run as many as you like: entries are leased, one "
        "thread's leave in commit order. -v 2 prints a line per batch."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_namespace_argument(parser)
        parser.add_argument(
            "--once",
            action="store_true",
            help="send every entry due now, then exit (for cron or a periodic job)",
        )
        parser.add_argument(
            "--limit",
            type=positive,
            default=100,
            metavar="N",
            help="the most entries one batch claims (default: %(default)s)",
        )
        parser.add_argument(
            "--interval",
            type=interval,
            default=1.0,
            metavar="SECONDS",
            help="how long to wait after a batch that found the outbox drained, before "
            f"polling again ({MIN_INTERVAL:g} to {MAX_INTERVAL:g}; default: %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sender = self._sender()
        adapter = adapter_for(options["namespace"])
        verbosity, once = options["verbosity"], options["once"]
        limit, wait = options["limit"], options["interval"]
        stop = threading.Event()
        totals = {"sent": 0, "retried": 0, "dead": 0, "batches": 0, "failures": 0}
        if verbosity >= 1 and not once:
            self.stdout.write(
                f"Dispatching the outbox of namespace {adapter.namespace!r} (batches of "
                f"{limit}, idle polls every {wait:g} s); SIGTERM or Ctrl-C stops."
            )
        with stop_on_signals(stop):
            while not stop.is_set():
                started = time.monotonic()
                try:
                    counts = adapter.dispatch_outbox(sender, limit=limit)
                except Exception as exc:
                    if once:
                        raise CommandError(f"the outbox dispatch failed: {exc}") from exc
                    totals["failures"] += 1
                    self.stderr.write(f"the outbox dispatch failed ({exc}); again in {wait:g} s")
                    close_old_connections()  # a broken connection is not reused
                    stop.wait(wait)
                    continue
                totals["batches"] += 1
                for name, n in counts.items():
                    totals[name] += n
                if verbosity >= 2:
                    self.stdout.write(self._batch_line(counts, time.monotonic() - started))
                if sum(counts.values()) < limit:  # drained: every due entry was handed out
                    if once:
                        break
                    stop.wait(wait)
        if verbosity >= 1:
            self.stdout.write(
                "{} sent {sent}, retried {retried}, dead {dead} in {batches} batches{}.".format(
                    "Done:" if once else "Stopped:",
                    f" ({totals['failures']} failed)" if totals["failures"] else "",
                    **totals,
                )
            )

    def _sender(self) -> Sender:
        """The ``OUTBOX_SENDER`` callable; a ``CommandError`` naming the setting if not."""
        setting = conf.get("OUTBOX_SENDER")
        if setting is None:
            raise CommandError(
                "CHATSTATE['OUTBOX_SENDER'] is not set: give it the dotted path of a callable "
                "taking an OutboxEntry (it posts entry.payload, idempotent on entry.key)"
            )
        try:
            return resolve_sender(setting)
        except (ImportError, TypeError) as exc:
            raise CommandError(f"CHATSTATE['OUTBOX_SENDER'] = {setting!r}: {exc}") from exc

    @staticmethod
    def _batch_line(counts: dict[str, int], seconds: float) -> str:
        return "batch: sent {sent}, retried {retried}, dead {dead} ({ms:.1f} ms)".format(
            ms=seconds * 1000, **counts
        )
