"""``manage.py chatstate_outbox``: the outbox dispatcher, a worker that needs no other service."""

from __future__ import annotations

import selectors
import signal
import socket
import time
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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


class Stop:
    """A stop request that a signal handler can make safely.

    It takes no lock: ``threading.Event.set`` in a handler can deadlock on the lock the
    interrupted ``wait`` holds."""

    def __init__(self) -> None:
        self.requested = False
        self._wake, self._woken = socket.socketpair()
        self._wake.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._woken, selectors.EVENT_READ)

    def set(self) -> None:
        """Ask to stop, and wake a pending ``wait``."""
        self.requested = True
        with suppress(OSError):  # the buffer is full: a wake-up is pending already
            self._wake.send(b"!")

    def wait(self, seconds: float) -> bool:
        """Sleep until a stop is asked or ``seconds`` pass; whether one was asked."""
        if not self.requested:
            self._selector.select(seconds)
        return self.requested

    def close(self) -> None:
        """Release the sockets."""
        self._selector.close()
        self._wake.close()
        self._woken.close()


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """While the block runs, SIGTERM and SIGINT ask the yielded ``Stop`` to stop.

    The batch under way ends first. A second signal ends the process at once, with that
    signal's default action."""
    stop = Stop()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.close()


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
        totals = {"sent": 0, "retried": 0, "dead": 0, "batches": 0, "failures": 0}
        if verbosity >= 1 and not once:
            self.stdout.write(
                f"Dispatching the outbox of namespace {adapter.namespace!r} (batches of "
                f"{limit}, idle polls every {wait:g} s); SIGTERM or Ctrl-C stops."
            )
        with stop_on_signals() as stop:
            while not stop.requested:
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
