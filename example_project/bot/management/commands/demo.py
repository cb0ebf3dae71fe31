"""``manage.py demo``: replay the sample conversation in-process and explain what happened."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chatstate import default_snapshot, get_adapter
from example_project.bot import replay, report

DEMO_USER = ("admin", "admin")


class Command(BaseCommand):
    help = (
        "Run the example bot on the sample conversation (in-process, on the configured "
        "database), print what happened, and create the demo superuser admin/admin if absent. "
        "Idempotent: the bot's namespace is cleared first."
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

        sender = replay.InProcessSender()
        # The story below tells each 503; Django's "Service Unavailable" log line would not.
        request_log = logging.getLogger("django.request")
        request_log.addFilter(_not_503)
        try:
            outcomes = replay.replay(steps, sender, 4, replay.Progress(total))
        finally:
            request_log.removeFilter(_not_503)
        threads = replay.final_threads(steps, sender)
        self._story(steps, outcomes)
        self._transcripts(steps, threads)
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
        drainers = report.drained_by(outcomes)
        for number, step in enumerate(steps, 1):
            how = "at once" if step.concurrent else "in turn"
            out(f"{number}. {step.note} [{len(step.deliveries)} sent {how}]")
            for o in outcomes:
                if o.step == number:
                    out(
                        f"     {o.message['message_id']} {o.message['user']:<6} "
                        f"HTTP {o.status}  {report.describe(o, drainers)}"
                    )
        out("")

    def _transcripts(self, steps: list[replay.Step], threads: list[dict[str, Any]]) -> None:
        """Each thread as the bot processed it: messages in order, with the bot's replies."""
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING("The threads, in the order the bot processed them"))
        messages = {m["message_id"]: m for step in steps for m in step.deliveries}
        for info in threads:
            state = info["state"]
            replies = {r["in_reply_to"]: r["text"] for r in state.get("replies", [])}
            out(f"{info['thread']}")
            for mid in state.get("processed", []):
                message = messages.get(mid, {"user": "?", "text": "?"})
                out(f"  {mid} {message['user']}: {message['text']}")
                if mid in replies:
                    out(f"      bot: {replies[mid]}")
        out("")

    def _next_steps(self, created: bool) -> None:
        user, password = DEMO_USER
        account = "created" if created else "already exists"
        self.stdout.write(self.style.MIGRATE_HEADING("\nNext"))
        self.stdout.write(
            f"Superuser {user!r} (password {password!r}) {account}.\n"
            "Start the server:   .venv/bin/python manage.py runserver\n"
            f"Open the admin:     http://127.0.0.1:8000/admin/  (log in as {user} / {password})"
            " to see the subscriptions, dedupe window, thread and channel states above.\n"
            "Replay over HTTP:   .venv/bin/python manage.py replay --url http://127.0.0.1:8000\n"
            "                    (every delivery is then a duplicate: the dedupe window "
            "remembers this run; run `make demo` again to start afresh)."
        )


def _not_503(record: logging.LogRecord) -> bool:
    """Keep a log record unless it is Django's line for a 503 answer."""
    return getattr(record, "status_code", None) != 503


def _clear(store: Any) -> int:
    """Empty the bot's namespace; return how many entries it held (a fresh run each time)."""
    before = store.snapshot()
    held = (
        len(before.subscriptions)
        + len(before.dedupe)
        + len(before.thread_state)
        + len(before.channel_state)
        + len(before.locks)
        + sum(len(v) for v in before.pending_locks.values())
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
