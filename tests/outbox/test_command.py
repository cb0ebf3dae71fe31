"""``manage.py chatstate_outbox``, the embedded dispatcher, as an operator runs it: a real
process that sends what is committed while it runs, stops cleanly on SIGTERM or Ctrl-C
(exit 0, the batch under way finished), prints a line per batch at ``-v 2``."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from chatstate.management.commands.chatstate_outbox import Command, Stop
from tests.outbox.helpers import Workers, check_delivered_once_in_order, commit_sends


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_worker_sends_what_is_committed_until_stopped(
    store: Any, workers: Workers, stop: signal.Signals
) -> None:
    proc = workers.start("chatstate_outbox", "-v", "2", "--interval", "0.05", "--limit", "4")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the worker is up: it said so
    assert "Dispatching the outbox of namespace" in first, first + proc.stderr.read()
    keys = commit_sends(store, threads=3, per_thread=5)
    got = workers.wait_for(len(keys), timeout=60)
    proc.send_signal(stop)
    proc.wait(timeout=30)
    # Read through the pipes' objects: communicate() would skip what readline() buffered.
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err
    check_delivered_once_in_order(store, got, keys)
    batches = [line for line in out.splitlines() if line.startswith("batch: sent ")]
    assert sum(int(line.split()[2].rstrip(",")) for line in batches) == 15
    assert f"Stopped: sent 15, retried 0, dead 0 in {len(batches)} batches." in out
    assert len(batches) >= 4  # batches of at most 4, and idle polls
    assert err == ""


@pytest.mark.timeout(60)
def test_a_stop_asked_by_signals_during_waits_never_deadlocks() -> None:
    # threading.Event.set() in a handler hung here: the interrupted wait held the Event's lock.
    stop, handled, done = Stop(), 0, threading.Event()

    def handle(signum: int, frame: object) -> None:
        nonlocal handled
        handled += 1
        stop.set()

    def signal_often() -> None:
        while not done.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.0001)

    previous = signal.signal(signal.SIGUSR1, handle)
    sender = threading.Thread(target=signal_often, daemon=True)
    sender.start()
    try:
        while handled < 300:
            stop.wait(0.0001)
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGUSR1, previous)
        stop.close()
    assert stop.wait(0.0)


def test_once_sends_every_due_entry_then_exits(store: Any, workers: Workers) -> None:
    keys = commit_sends(store, threads=5, per_thread=5)
    done = workers.run("chatstate_outbox", "--once", "--limit", "10")
    assert done.returncode == 0, done.stderr
    check_delivered_once_in_order(store, workers.deliveries(), keys)
    # 10 + 10 + 5: the third batch is not full, so nothing more was due.
    assert done.stdout.strip() == "Done: sent 25, retried 0, dead 0 in 3 batches."
    again = workers.run("chatstate_outbox", "--once", "-v", "2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0].startswith("batch: sent 0, retried 0, dead 0 (")
    assert len(workers.deliveries()) == 25


def test_a_worker_without_a_sender_exits_naming_the_setting(store: Any, workers: Workers) -> None:
    done = workers.run("chatstate_outbox", "--once", CHATSTATE_TEST_OUTBOX_NO_SENDER="1")
    assert done.returncode == 1
    assert "CommandError: CHATSTATE['OUTBOX_SENDER'] is not set" in done.stderr


def test_a_sender_that_cannot_be_imported_is_named(settings: Any) -> None:
    settings.CHATSTATE = {**settings.CHATSTATE, "OUTBOX_SENDER": "tests.nowhere.send"}
    with pytest.raises(CommandError, match=r"CHATSTATE\['OUTBOX_SENDER'\] = 'tests.nowhere.send'"):
        call_command("chatstate_outbox", "--once")


def test_help_shows_the_idle_interval_and_its_bounds() -> None:
    text = Command().create_parser("manage.py", "chatstate_outbox").format_help()
    flat = " ".join(text.split())
    assert "--interval SECONDS" in flat
    assert "(0.01 to 60; default: 1.0)" in flat
    assert "--limit N" in flat and "(default: 100)" in flat


@pytest.mark.parametrize("value", ["0", "61", "soon", "-1"])
def test_an_interval_out_of_bounds_is_refused(value: str) -> None:
    with pytest.raises(CommandError, match="is not an interval"):
        call_command("chatstate_outbox", "--once", "--interval", value)
