"""The outbox's dispatch as a task of Django's task framework (``django.tasks`` on Django
6.0+, the ``django-tasks`` backport on 5.2)."""

from __future__ import annotations


def enqueue_dispatch(namespace: str) -> None:
    """Enqueue a dispatch of ``namespace``'s outbox."""
    raise NotImplementedError("the task framework integration arrives with the outbox issue")
