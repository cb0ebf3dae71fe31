"""The webhook: ``POST /bot/webhook`` for WSGI, and ``POST /bot/webhook-async`` for ASGI.

It takes one message, as ``platform_stub/message.py`` defines it. The message is signed as
``platform_stub/signing.py`` says. The answer is JSON:

* 200 ``{"status": "handled" | "duplicate", "thread", "handled", "outbox"}``. ``handled``
  lists the ids of the messages this delivery handled, in order. Those are its own and the
  ones queued behind it. ``outbox`` holds the keys of their replies. The commit stores the
  replies with their message. The outbox's dispatcher posts them after it. So a failed
  commit posts nothing, and a redelivery posts nothing twice.
* 202, the same with ``"queued"``. The thread is busy, and its holder handles the message.
* 400, 401, 405 or 413 ``{"error", "field"}`` for a bad message, signature, method or size.
  ``field`` names the culprit. No bytes ever cause a 500, which a platform retries forever.
* 503 with ``Retry-After``: deliver again later. ``Retry-After`` is 10 s when the state
  store is unavailable, ``BackendUnavailable``. It is 1 s otherwise. Then the message is
  being handled now, or the thread's queue is full. Or another delivery took the thread,
  ``LeaseLost``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chatstate import BackendUnavailable, LeaseLost, get_adapter
from example_project.bot import handler
from example_project.bot.conf import setting
from example_project.platform_stub.message import InvalidMessage, Message, parse_message
from example_project.platform_stub.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    verify,
)

RETRY_AFTER, BACKEND_RETRY_AFTER = 1, 10
logger = logging.getLogger(__name__)


class Refused(Exception):
    """A request refused with HTTP ``status`` and ``{"error", "field"}``."""

    def __init__(self, status: int, error: str, field: str | None) -> None:
        super().__init__(error)
        self.status, self.field = status, field


def read_message(request: HttpRequest) -> Message:
    """The request's message, checked in turn: method, size, signature, then its fields.

    The size is checked before reading more than the limit, whatever Content-Length says."""
    if request.method != "POST":
        raise Refused(405, f"{request.method} is not allowed; POST a message", None)
    limit = int(setting("BOT_MAX_BODY_BYTES"))
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refused(400, "Content-Length is not an integer", "Content-Length") from None
    if declared > limit or len(body := request.read(limit + 1)) > limit:
        raise Refused(413, f"body is larger than {limit} bytes", "body")
    try:
        verify(body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
        return parse_message(body)
    except SignatureError as exc:
        raise Refused(401, str(exc), exc.field) from None
    except InvalidMessage as exc:
        raise Refused(400, exc.error, exc.field) from None


def answer(delivery: handler.Delivery) -> JsonResponse:
    return JsonResponse(asdict(delivery), status=202 if delivery.status == "queued" else 200)


FAILURES = (Refused, handler.RetryLater, LeaseLost, BackendUnavailable)


def failure(exc: Exception) -> JsonResponse:
    """The answer to a delivery that raised one of :data:`FAILURES`.

    Causes that name hosts are logged, not sent. A lost lease's owner and a connection error
    are such causes."""
    if isinstance(exc, Refused):
        return JsonResponse({"error": str(exc), "field": exc.field}, status=exc.status)
    error, seconds = str(exc), RETRY_AFTER
    if isinstance(exc, LeaseLost):
        logger.warning("The bot lost its thread while handling a message: %s", exc)
        error = "the bot lost the thread to another delivery; retry later"
    elif isinstance(exc, BackendUnavailable):
        logger.warning("chatstate's backend is unavailable: %s", exc)
        error, seconds = "the bot's state store is unavailable; retry later", BACKEND_RETRY_AFTER
    headers = {"Retry-After": str(seconds)}
    return JsonResponse({"error": error, "field": None}, status=503, headers=headers)


@csrf_exempt
def webhook(request: HttpRequest) -> JsonResponse:
    """The webhook for WSGI servers."""
    try:
        message = read_message(request)  # refused before the store is touched
        return answer(handler.handle(get_adapter(), message))
    except FAILURES as exc:
        return failure(exc)


@csrf_exempt
async def webhook_async(request: HttpRequest) -> JsonResponse:
    """The webhook for ASGI servers; a model's slow reply ties up no thread while it waits."""
    try:
        message = read_message(request)  # refused before the store is touched
        return answer(await handler.ahandle(get_adapter(), message))
    except FAILURES as exc:
        return failure(exc)
