"""``manage.py replay [FILE] [--url URL | --in-process] [--concurrency N] [--async]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatstate import get_adapter
from example_project.demo import replay, report


class Command(BaseCommand):
    help = (
        "Replay a conversation (JSON lines of steps) against the bot's webhook, over HTTP to "
        "a running server (--url) or in this process (--in-process), deliver the replies "
        "waiting in the outbox from this process (a dispatcher beside the server), and report "
        "what happened from this project's store (the example server's database): handled, "
        "duplicates dropped, queued then handled, final thread states. Exits non-zero if any "
        "delivery failed or a message was not handled exactly once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            nargs="?",
            default=str(replay.SAMPLE),
            help="conversation file (default: the bundled sample)",
        )
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--url", help="base URL of a running server, e.g. http://127.0.0.1:8000")
        where.add_argument(
            "--in-process",
            action="store_true",
            help="post through Django's test client in this process",
        )
        parser.add_argument(
            "--concurrency", type=int, default=4, help="sender threads for a burst (default 4)"
        )
        parser.add_argument(
            "--async",
            dest="use_async",
            action="store_true",
            help="use the async (ASGI) view, /bot/webhook-async",
        )
        parser.add_argument(
            "--secret", default=None, help="signing secret (default: settings.BOT_SIGNING_SECRET)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        try:
            steps = replay.load_steps(options["file"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        sender: replay.Sender
        if options["url"]:
            sender = replay.HttpSender(options["url"], options["secret"], options["use_async"])
            where = options["url"]
        else:
            sender = replay.InProcessSender(options["secret"], options["use_async"])
            where = "in-process"
        view = "async view" if options["use_async"] else "sync view"
        total = sum(len(step.deliveries) for step in steps)
        self.stdout.write(
            f"Replaying {options['file']} ({total} deliveries) {where}, "
            f"{view}, {options['concurrency']} concurrent senders\n"
        )
        outcomes = run(steps, sender, options["concurrency"])
        store = get_adapter()
        self.stdout.write("Delivering the outbox (CHATSTATE['OUTBOX_SENDER']):")
        sent = replay.dispatch(store)
        self.stdout.write(
            f"{sent['sent']} replies sent, {sent['retried']} to retry, {sent['dead']} dead.\n"
        )
        found = report.report(outcomes, replay.final_threads(steps, store), self.stdout.write)
        if found:
            raise CommandError("the replay broke a promise:\n  " + "\n  ".join(found))


def run(steps: list[replay.Step], sender: replay.Sender, concurrency: int) -> list[report.Outcome]:
    """Replay ``steps``, with a progress bar on a terminal.

    A refused connection is reported as a :class:`CommandError` naming the server."""
    progress = replay.Progress(sum(len(step.deliveries) for step in steps))
    try:
        return replay.replay(steps, sender, concurrency, progress)
    except OSError as exc:
        progress.close()
        raise CommandError(f"cannot reach the server: {exc}") from None
