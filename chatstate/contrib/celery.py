"""The outbox's dispatch as a Celery task (``pip install "chatstate[celery]"``).

``CHATSTATE["OUTBOX_TASK"] = "chatstate.contrib.celery.enqueue"`` sends :func:`dispatch_outbox`
to the project's Celery app after each commit that sent something (once per commit, after
the surrounding transaction commits). The worker must import this module: list it in the
app's ``include`` (or ``imports``). As with Django's tasks, an entry left for a retry, or
whose task never ran, waits for the next dispatch: keep ``manage.py chatstate_outbox`` (or a
periodic ``chatstate_outbox --once``, or a beat schedule of this task) running too.
"""

from __future__ import annotations

from typing import Any, cast

from celery import shared_task

from chatstate.tasks import run_dispatch


@shared_task(name="chatstate.dispatch_outbox", ignore_result=True)
def dispatch_outbox(namespace: str | None = None, limit: int = 100) -> dict[str, int]:
    """Send every entry of ``namespace``'s outbox due now through ``OUTBOX_SENDER``
    (``None``: the setting's namespace); when it stopped on time with entries left, send a
    fresh task for them. The counts ``{"sent", "retried", "dead", "batches", "more"}``."""
    counts = run_dispatch(namespace, limit)
    if counts["more"]:
        enqueue(namespace)
    return counts


def enqueue(namespace: str | None) -> None:
    """Send one :func:`dispatch_outbox` of ``namespace`` to the current Celery app's broker
    (the value of ``OUTBOX_TASK``)."""
    cast(Any, dispatch_outbox).delay(namespace)
