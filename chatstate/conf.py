"""The ``CHATSTATE`` setting, with its defaults filled in."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "ADAPTER": "chatstate.adapters.database.DatabaseStateAdapter",
    "OPTIONS": {},
    "NAMESPACE": "default",
    "DATABASE": None,
    "DEDUPE_LIMIT": 1000,
    "LOCK_TTL": 300,
    "MAX_PENDING": 100,
    "OVERFLOW": "drop_oldest",
    "PENDING_TTL": None,
    "DEDUPE_MIN_AGE": 0,
    "HISTORY_LIMIT": 100,
    "HISTORY_TTL": None,
    "OUTBOX_SENDER": None,
    "OUTBOX_MAX_ATTEMPTS": 10,
    "OUTBOX_RETRY_DELAYS": (1, 5, 30, 120, 600),
    "OUTBOX_LEASE": 300,
    "OUTBOX_TASK": False,
}


def chatstate_settings() -> dict[str, Any]:
    """Return ``settings.CHATSTATE`` merged over :data:`DEFAULTS`, as a new dict each call.

    Unknown keys are kept so that the system checks can report them."""
    configured = getattr(settings, "CHATSTATE", None) or {}
    merged = dict(DEFAULTS)
    if isinstance(configured, dict):
        merged.update(configured)
    return merged


def get(name: str) -> Any:
    """One value of the ``CHATSTATE`` setting, its default when unset."""
    return chatstate_settings()[name]
