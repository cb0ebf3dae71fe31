"""The outbox's dispatch as a Celery task; ``pip install "chatstate[celery]"``.

``CHATSTATE["OUTBOX_TASK"] = "chatstate.contrib.celery.enqueue"`` sends
:func:`dispatch_outbox` to the project's Celery app after each commit that sent something.
It sends once per commit, after the surrounding transaction commits. The worker must import
this module, so list it in the app's ``include`` or ``imports``.

As with Django's tasks, some entries wait for the next dispatch: one left for a retry, or
one whose task never ran. So keep ``manage.py chatstate_outbox`` running too. A periodic
``chatstate_outbox --once`` or a beat schedule of this task also works."""

from __future__ import annotations

from typing import Any, cast

from celery import shared_task

from chatstate.tasks import run_dispatch


@shared_task(name="chatstate.dispatch_outbox", ignore_result=True)
def dispatch_outbox(namespace: str | None = None, limit: int = 100) -> dict[str, int]:
    """Send every entry of ``namespace``'s outbox due now through ``OUTBOX_SENDER``.

    ``None`` means the setting's namespace. When it stopped on time with entries left, it
    sends a fresh task for them. It returns the counts ``{"sent", "retried", "dead",
    "batches", "more"}``."""
    counts = run_dispatch(namespace, limit)
    if counts["more"]:
        enqueue(namespace)
    return counts


def enqueue(namespace: str | None) -> None:
    """Send one :func:`dispatch_outbox` of ``namespace`` to the current Celery app's broker.

    This is the value for ``OUTBOX_TASK``."""
    cast(Any, dispatch_outbox).delay(namespace)
