"""The outbox's dispatch as a task of Django's task framework.

That is ``django.tasks`` on Django 6.0+, or the ``django-tasks`` backport on 5.2.
``CHATSTATE["OUTBOX_TASK"] = True`` enqueues :data:`dispatch_outbox` after each commit that
sent something. It enqueues once per commit, after the surrounding transaction commits. The
task sends every entry due when it runs, through ``OUTBOX_SENDER``.

Some entries wait for the next dispatch: one left for a retry, or one whose task never ran.
A task may fail to enqueue, or its worker may die. So keep ``manage.py chatstate_outbox``
running too, or a periodic ``chatstate_outbox --once``."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured

from chatstate import conf
from chatstate.outbox import drain_due
from chatstate.registry import get_adapter

#: How long one run of the task dispatches before it hands the rest to a new task.
TASK_SECONDS = 60.0


def run_dispatch(namespace: str | None = None, limit: int = 100) -> dict[str, int]:
    """Send every entry of ``namespace``'s outbox due now through ``OUTBOX_SENDER``.

    It sends in batches of ``limit``. It returns the counts ``{"sent", "retried", "dead",
    "batches", "more"}``. A ``namespace`` of ``None`` means the setting's. The adapter is
    the process-wide one for the setting's namespace. For another namespace, it is one of
    the configured backend."""
    if namespace is None or namespace == conf.get("NAMESPACE"):
        adapter = get_adapter()
    else:
        adapter = get_adapter(namespace=namespace)
    return drain_due(adapter, limit=limit, seconds=TASK_SECONDS)


def _task_decorator() -> Any:
    """Django's ``task`` decorator on 6.0+, else the backport's; ``None`` without either."""
    for module in ("django.tasks", "django_tasks"):
        if find_spec(module) is not None:
            return import_module(module).task
    return None


_task = _task_decorator()


def dispatch_outbox(namespace: str | None = None, limit: int = 100) -> dict[str, int]:
    """Send every entry of ``namespace``'s outbox due now, as :func:`run_dispatch` does.

    When it stopped on time with entries left, it enqueues a fresh run for them."""
    counts = run_dispatch(namespace, limit)
    if counts["more"]:
        enqueue_dispatch(namespace)
    return counts


if _task is not None:  # the task, under the function's own name (the worker imports it)
    dispatch_outbox = _task()(dispatch_outbox)


def enqueue_dispatch(namespace: str | None) -> None:
    """Enqueue one run of :data:`dispatch_outbox` for ``namespace`` on the default task backend.

    ``ImproperlyConfigured`` when no task framework is installed."""
    if _task is None:
        raise ImproperlyConfigured(
            "CHATSTATE['OUTBOX_TASK'] = True needs Django's task framework: Django 6.0+, or "
            "`pip install django-tasks` on Django 5.2"
        )
    cast(Any, dispatch_outbox).enqueue(namespace)
