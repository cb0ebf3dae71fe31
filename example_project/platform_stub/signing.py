"""Request signatures, the way Slack signs its webhooks.

A sender computes ``v0=<hex HMAC-SHA256 of "v0:{timestamp}:{body}">``. The key is the
shared secret ``BOT_SIGNING_SECRET``. It sends the result as ``X-Chatstate-Signature``. The
Unix timestamp it used goes as ``X-Chatstate-Request-Timestamp``. The receiver recomputes
the signature over the raw body and compares in constant time. It refuses a timestamp more
than ``BOT_SIGNATURE_MAX_AGE`` seconds from its clock. So a captured request cannot be
replayed later. The demo and the tests sign with
``example_project.demo.replay.signed_headers``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from django.core.exceptions import ImproperlyConfigured

from example_project.bot.conf import setting

SIGNATURE_HEADER = "X-Chatstate-Signature"
TIMESTAMP_HEADER = "X-Chatstate-Request-Timestamp"
VERSION = "v0"
#: A timestamp header's form: at most 15 decimal digits, no sign or spaces, so no overflow.
_TIMESTAMP = re.compile(r"[0-9]{1,15}", re.ASCII)


class SignatureError(Exception):
    """The request's signature is missing, malformed, stale or wrong.

    ``field`` names the header at fault.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _secret(secret: str | None) -> bytes:
    value = setting("BOT_SIGNING_SECRET") if secret is None else secret
    if not value:
        raise ImproperlyConfigured(
            "BOT_SIGNING_SECRET is empty: the webhook cannot check signatures"
        )
    return str(value).encode()


def sign(body: bytes, timestamp: int | str, secret: str | None = None) -> str:
    """The signature header value for ``body`` sent at ``timestamp``: ``v0=<64 hex digits>``."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(_secret(secret), base, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    secret: str | None = None,
    now: float | None = None,
) -> None:
    """Return when ``signature`` is the valid, fresh signature of ``body``; else raise.

    It raises :class:`SignatureError` naming the header at fault. A header may be missing.
    The timestamp may not be an integer, or be more than ``BOT_SIGNATURE_MAX_AGE`` seconds
    from now. The signature may not match; it is compared in constant time. No other
    exception escapes, whatever the header values.
    """
    if not timestamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header", TIMESTAMP_HEADER)
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header", SIGNATURE_HEADER)
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError(
            f"{TIMESTAMP_HEADER} must be a Unix time in seconds (decimal digits)",
            TIMESTAMP_HEADER,
        )
    sent_at = int(timestamp)
    max_age = int(setting("BOT_SIGNATURE_MAX_AGE"))
    if abs((time.time() if now is None else now) - sent_at) > max_age:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is more than {max_age} seconds away from the server's clock",
            TIMESTAMP_HEADER,
        )
    expected = sign(body, timestamp, secret)
    # "replace": a header that is not valid text cannot match, and must not raise.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body", SIGNATURE_HEADER)
