"""The webhook: a sync view (WSGI) and its async twin (ASGI), plus a signed state lookup.

``POST /bot/webhook`` and ``POST /bot/webhook-async`` take one message (see
:mod:`example_project.bot.message`) signed as in :mod:`example_project.bot.signing`, and
answer JSON:

* 200 ``{"status": "handled" | "duplicate", "thread", "replies", "drained"}`` (``replies``:
  the bot's answers to this message and to the queued ones it ``drained``, in that order);
  202 the same with ``"status": "queued"`` (the thread was busy; its holder answers the
  message in its turn);
* 400 ``{"error", "field"}`` — the body is not a valid message (``field`` names the culprit:
  a message field, a top-level key nesting too deep, or ``"body"`` when the body is not a
  UTF-8 JSON object); whatever the bytes, bad input gets a 400, never a 500, so the platform
  does not retry a poison message forever;
* 401 ``{"error", "field"}`` — signature or timestamp header missing, stale or wrong;
* 413 ``{"error", "field": "body"}`` — larger than ``BOT_MAX_BODY_BYTES``;
* 405 for anything but POST;
* 503 ``{"error", "field": null}`` with ``Retry-After`` — the platform redelivers later:
  another delivery of this message is being handled right now and may yet fail, the
  thread's queue is full, or the delivery lost the thread to another (its lease ended:
  :class:`~chatstate.LeaseLost`) (``Retry-After:`` :data:`RETRY_AFTER`); or chatstate's
  backend is unavailable (:class:`~chatstate.BackendUnavailable`, or a database connection
  error from the database adapter; ``Retry-After:`` :data:`BACKEND_RETRY_AFTER`).

``GET /bot/threads?platform=&channel_id=&thread_id=`` (signed over the query string) returns
what the bot knows about a thread: ``{"thread", "subscribed", "state", "channel",
"channel_state"}``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chatstate import BackendUnavailable, LeaseLost, get_adapter
from example_project.bot import handler
from example_project.bot.conf import setting
from example_project.bot.message import (
    InvalidMessage,
    Message,
    channel_key,
    check_identifier,
    parse_message,
    thread_key,
)
from example_project.bot.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    verify,
)

#: Seconds a platform is asked to wait before redelivering when the backend is unavailable.
BACKEND_RETRY_AFTER = 10
#: ... and when another delivery of the message is under way, or the thread cannot take it.
RETRY_AFTER = 1
#: What an unreachable backend raises: chatstate's own error, and (until the database adapter
#: maps them) Django's connection errors.
UNAVAILABLE = (BackendUnavailable, OperationalError, InterfaceError)
logger = logging.getLogger(__name__)


class Refused(Exception):
    """A request the webhook refuses: ``status`` with JSON ``{"error", "field"}``."""

    def __init__(self, status: int, error: str, field: str | None) -> None:
        super().__init__(error)
        self.status, self.error, self.field = status, error, field

    def response(self) -> JsonResponse:
        return JsonResponse({"error": self.error, "field": self.field}, status=self.status)


def _read_body(request: HttpRequest) -> bytes:
    """The raw body, refused with 413 above ``BOT_MAX_BODY_BYTES``.

    The declared Content-Length is checked before reading, and the body actually read is
    bounded too (a client may send none, or a chunked body): at most limit + 1 bytes are read.
    """
    limit = int(setting("BOT_MAX_BODY_BYTES"))
    too_large = Refused(413, f"body is larger than {limit} bytes", "body")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refused(400, "Content-Length is not an integer", "Content-Length") from None
    if declared > limit:
        raise too_large
    body = request.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def _check_signature(request: HttpRequest, signed: bytes) -> None:
    try:
        verify(signed, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
    except SignatureError as exc:
        raise Refused(401, str(exc), exc.field) from None


def _message(request: HttpRequest) -> Message:
    """The request's message: method, size, signature, then fields, each refused clearly."""
    if request.method != "POST":
        raise Refused(405, f"{request.method} is not allowed; POST a message", None)
    body = _read_body(request)
    _check_signature(request, body)
    try:
        return parse_message(body)
    except InvalidMessage as exc:
        raise Refused(400, exc.error, exc.field) from None


def _answer(delivery: handler.Delivery) -> JsonResponse:
    return JsonResponse(asdict(delivery), status=202 if delivery.status == "queued" else 200)


def _retry_later(error: str, seconds: int) -> JsonResponse:
    response = JsonResponse({"error": error, "field": None}, status=503)
    response["Retry-After"] = str(seconds)
    return response


def _later(exc: handler.RetryLater | LeaseLost) -> JsonResponse:
    """503: the message cannot be handled now (see the module docstring)."""
    if isinstance(exc, LeaseLost):  # the owner names a host: logged, not sent
        logger.warning("The bot lost its thread while handling a message: %s", exc)
        return _retry_later("the bot lost the thread to another delivery; retry later", RETRY_AFTER)
    return _retry_later(str(exc), RETRY_AFTER)


def _unavailable(exc: Exception) -> JsonResponse:
    """503: the backend is down. The cause is logged, not sent (it names hosts)."""
    logger.warning("chatstate's backend is unavailable: %s: %s", type(exc).__name__, exc)
    return _retry_later("the bot's state store is unavailable; retry later", BACKEND_RETRY_AFTER)


@csrf_exempt
def webhook(request: HttpRequest) -> JsonResponse:
    """The webhook for WSGI servers: validates, then :func:`handler.handle`."""
    try:
        message = _message(request)
        return _answer(handler.handle(get_adapter(), message))
    except Refused as exc:
        return exc.response()
    except (handler.RetryLater, LeaseLost) as exc:
        return _later(exc)
    except UNAVAILABLE as exc:
        return _unavailable(exc)


@csrf_exempt
async def webhook_async(request: HttpRequest) -> JsonResponse:
    """The webhook for ASGI servers: validates, then :func:`handler.ahandle`."""
    try:
        message = _message(request)
        return _answer(await handler.ahandle(get_adapter(), message))
    except Refused as exc:
        return exc.response()
    except (handler.RetryLater, LeaseLost) as exc:
        return _later(exc)
    except UNAVAILABLE as exc:
        return _unavailable(exc)


def thread_info(request: HttpRequest) -> JsonResponse:
    """What the bot knows about one thread (for ``replay`` and operators); signed GET."""
    try:
        if request.method != "GET":
            raise Refused(405, f"{request.method} is not allowed; use GET", None)
        _check_signature(request, request.META.get("QUERY_STRING", "").encode())
        ids: dict[str, Any] = {}
        for field in ("platform", "channel_id", "thread_id"):
            if field not in request.GET:
                raise Refused(400, f"{field} is required", field)
            try:
                ids[field] = check_identifier(request.GET[field], field)
            except InvalidMessage as exc:
                raise Refused(400, exc.error, exc.field) from None
    except Refused as exc:
        return exc.response()
    thread, channel = thread_key(ids), channel_key(ids)
    try:
        store = get_adapter()
        return JsonResponse(
            {
                "thread": thread,
                "subscribed": store.is_subscribed(thread),
                "state": store.thread_state(thread),
                "channel": channel,
                "channel_state": store.channel_state(channel),
            }
        )
    except UNAVAILABLE as exc:
        return _unavailable(exc)
