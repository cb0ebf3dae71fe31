"""The bot's settings, ``BOT_*`` in Django settings, with their defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Shared secret of the HMAC signature, X-Chatstate-Signature. Set it in production.
    "BOT_SIGNING_SECRET": "",
    # Requests with a larger body are refused with 413 before anything is parsed.
    "BOT_MAX_BODY_BYTES": 16 * 1024,
    # Seconds a signed request stays valid. An older replayed capture is refused.
    "BOT_SIGNATURE_MAX_AGE": 300,
    # Seconds spent composing each reply while holding the thread, in place of a model.
    "BOT_THINK_SECONDS": 0.0,
    # The bot answers threads in which it was mentioned as "@<BOT_NAME>".
    "BOT_NAME": "bot",
}


def setting(name: str) -> Any:
    """The value of ``settings.<name>``, or its default from :data:`DEFAULTS`."""
    return getattr(settings, name, DEFAULTS[name])
