"""``manage.py demo``: replay the sample conversation in-process, deliver the outbox, explain."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chatstate import StateAdapter, default_snapshot, get_adapter
from example_project.demo import replay, report

DEMO_USER = ("admin", "admin")


class Command(BaseCommand):
    help = (
        "Run the example bot on the sample conversation (in-process, on the configured "
        "database), deliver its replies through the outbox, print what happened, and create "
        "the demo superuser admin/admin if absent. Idempotent: the bot's namespace is "
        "cleared first."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        out = self.stdout.write
        store = get_adapter()
        cleared = _clear(store)
        steps = replay.load_steps(replay.SAMPLE)
        total = sum(len(step.deliveries) for step in steps)
        out(self.style.MIGRATE_HEADING("chatstate demo: a chat bot behind a signed webhook"))
        out(
            f"Adapter: {type(store).__name__}, namespace {store.namespace!r}"
            + (f" (cleared {cleared} entries of a previous run)" if cleared else "")
        )
        out(
            f"Replaying {total} webhook deliveries from {replay.SAMPLE.name} through "
            f"POST /bot/webhook, in this process, 4 concurrent senders for bursts; a 503 is "
            f"redelivered after its Retry-After, as a platform does."
        )
        out("")

        # The story below tells each 503. Django's "Service Unavailable" log line adds nothing.
        request_log = logging.getLogger("django.request")
        request_log.addFilter(_not_503)
        try:
            outcomes = replay.replay(steps, replay.InProcessSender(), 4, replay.Progress(total))
        finally:
            request_log.removeFilter(_not_503)
        self._story(steps, outcomes)
        waiting = len(store.outbox())
        out(self.style.MIGRATE_HEADING("The outbox: the replies, sent after their commits"))
        out(
            f"The webhook posted nothing: each reply was stored by its message's commit "
            f"({waiting} waiting). A dispatcher now hands them to the sender "
            f"(CHATSTATE['OUTBOX_SENDER']), each thread's in the order they were committed:"
        )
        sent = replay.dispatch(store)
        out(f"{sent['sent']} sent, {sent['retried']} to retry, {sent['dead']} dead.")
        out("")
        threads = replay.final_threads(steps, store)
        self._transcripts(threads)
        out(self.style.MIGRATE_HEADING("Final state"))
        out(report.threads_table(threads))
        out("")
        out(report.channels_table(threads))
        out("")
        out(self.style.SUCCESS(report.summary(report.counts(outcomes, threads))))
        found = report.problems(outcomes, threads)
        if found:
            raise CommandError("the demo broke a promise:\n  " + "\n  ".join(found))
        self._next_steps(_ensure_superuser())

    def _story(self, steps: list[replay.Step], outcomes: list[report.Outcome]) -> None:
        """Step by step: what was sent, and what became of each delivery."""
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING("What happened, step by step"))
        handlers = report.handled_by(outcomes)
        for number, step in enumerate(steps, 1):
            how = "at once" if step.concurrent else "in turn"
            out(f"{number}. {step.note} [{len(step.deliveries)} sent {how}]")
            for o in outcomes:
                if o.step == number:
                    out(
                        f"     {o.message['message_id']} {o.message['user']:<6} "
                        f"HTTP {o.status}  {report.describe(o, handlers)}"
                    )
        out("")

    def _transcripts(self, threads: list[dict[str, Any]]) -> None:
        """Each thread's history, ``msg.history``: its messages as the bot handled them."""
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING("The threads' histories (what the model sees)"))
        for info in threads:
            out(info["thread"])
            for item in info["history"]:
                if item.get("role") == "user":
                    out(f"  {item['message_id']} {item['user']}: {item['text']}")
                else:
                    out(f"      bot: {item['text']}")
        out("")

    def _next_steps(self, created: bool) -> None:
        user, password = DEMO_USER
        account = "created" if created else "already exists"
        self.stdout.write(self.style.MIGRATE_HEADING("\nNext"))
        self.stdout.write(
            f"Superuser {user!r} (password {password!r}) {account}.\n"
            "Start the server:   .venv/bin/python manage.py runserver\n"
            f"Open the admin:     http://127.0.0.1:8000/admin/  (log in as {user} / {password})"
            " to see the subscriptions, dedupe window, thread and channel states, histories "
            "and outbox above.\n"
            "Replay over HTTP:   .venv/bin/python manage.py replay --url http://127.0.0.1:8000\n"
            "                    (every delivery is then a duplicate: the dedupe window "
            "remembers this run; run `make demo` again to start afresh). The command then "
            "delivers the outbox from its own process, a dispatcher beside the server."
        )


def _not_503(record: logging.LogRecord) -> bool:
    """Keep a log record unless it is Django's line for a 503 answer."""
    return getattr(record, "status_code", None) != 503


def _clear(store: StateAdapter) -> int:
    """Empty the bot's namespace by loading the empty snapshot; return how many entries it held.

    Histories and the outbox are emptied too. So each run starts afresh."""
    before = store.snapshot()
    held = (
        len(before.subscriptions)
        + len(before.dedupe)
        + len(before.thread_state)
        + len(before.channel_state)
        + len(before.locks)
        + sum(len(v) for v in before.pending_locks.values())
        + sum(len(v["items"]) for v in before.lists.values())
        + len(before.outbox)
    )
    if held:
        store.load_snapshot(default_snapshot())
    return held


def _ensure_superuser() -> bool:
    """Create the demo superuser unless a user of that name exists; True when created."""
    user, password = DEMO_USER
    users = get_user_model()
    if users._default_manager.filter(username=user).exists():
        return False
    users._default_manager.create_superuser(username=user, email="", password=password)
    return True
