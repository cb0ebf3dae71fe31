"""The example bot's webhook: what one message does, validation, signatures, size limit,
dedupe, and the replies leaving through the outbox.

Each test runs against every adapter of the run (the ``store`` fixture), which the views
get in place of the configured one; the sync view and its async twin run the same cases.
Busy threads (queues, drains, failed commits): ``test_bot_webhook_busy.py``, with these
helpers.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.test import AsyncClient, Client

from chatstate import LockResult, default_snapshot
from chatstate.testing.helpers import run_async
from example_project.bot import views
from example_project.demo.replay import signed_headers
from example_project.platform_stub.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER

SECRET = "test-signing-secret"
THREAD, CHANNEL = "slack:C1:T1", "slack:C1"
KEY1 = "slack:m1:0"  # the outbox key of the reply to m1 (derived from its dedupe key)


@pytest.fixture(autouse=True)
def bot_settings(settings: Any) -> None:
    settings.BOT_SIGNING_SECRET = SECRET
    settings.BOT_THINK_SECONDS = 0
    settings.BOT_MAX_BODY_BYTES = 16 * 1024
    settings.BOT_SIGNATURE_MAX_AGE = 300


@pytest.fixture
def bot(store: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The bot's views use ``store`` (each backend of the run) as their adapter."""
    monkeypatch.setattr(views, "get_adapter", lambda: store)
    return store


def message(mid: str, text: str = "hello", user: str = "alice", **fields: Any) -> dict[str, Any]:
    return {
        "platform": "slack",
        "message_id": mid,
        "channel_id": "C1",
        "thread_id": "T1",
        "user": user,
        "text": text,
        "ts": 1700000000.5,
        **fields,
    }


def body_of(data: Any) -> bytes:
    return data if isinstance(data, bytes) else json.dumps(data).encode()


Post = Callable[..., tuple[int, dict[str, Any]]]


def send_sync(data: Any, headers: dict[str, str] | None = None) -> Any:
    """POST ``data`` (signed, unless ``headers`` are given) to the sync view; its response."""
    body = body_of(data)
    return Client().post(
        "/bot/webhook",
        body,
        content_type="application/json",
        headers=signed_headers(body, SECRET) if headers is None else headers,
    )


async def send_async(data: Any, headers: dict[str, str] | None = None) -> Any:
    """The same through the async view (awaited on the running loop)."""
    body = body_of(data)
    return await AsyncClient().post(
        "/bot/webhook-async",
        body,
        content_type="application/json",
        headers=signed_headers(body, SECRET) if headers is None else headers,
    )


def post_sync(data: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = send_sync(data, headers)
    return response.status_code, response.json()


def post_async(data: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = run_async(send_async, data, headers)
    return response.status_code, response.json()


@pytest.fixture(params=["sync", "async"])
def post(request: pytest.FixtureRequest) -> Post:
    """POST a (signed, unless ``headers`` are given) body to the sync or the async view."""
    return post_sync if request.param == "sync" else post_async


def assert_untouched(store: Any) -> None:
    """Nothing at all in ``store``: no claim, state, subscription, history or outbox entry."""
    assert store.snapshot() == default_snapshot()
    assert (store.history(THREAD), store.outbox()) == ([], [])


def replies(store: Any) -> list[tuple[str, str]]:
    """The replies waiting in the outbox, oldest first: ``(in_reply_to, text)``."""
    return [(e.payload["in_reply_to"], e.payload["text"]) for e in store.outbox()]


def in_reply_to(store: Any) -> list[str]:
    return [reply[0] for reply in replies(store)]


def processed(store: Any, thread: str = THREAD) -> list[str]:
    """The ids of the thread's messages in the order the bot handled them (its history)."""
    return [item["message_id"] for item in store.history(thread) if item["role"] == "user"]


# -- the happy path --------------------------------------------------------------------


def test_mention_subscribes_and_answers(bot: Any, post: Post) -> None:
    """One message, one unit of work: the state, the channel's counters, the subscription,
    the history and the reply, all written by the cycle's commit."""
    status, body = post(message("m1", "@bot hi there"))
    assert status == 200
    assert body == {"status": "handled", "thread": THREAD, "handled": ["m1"], "outbox": [KEY1]}
    assert bot.is_subscribed(THREAD)
    assert bot.thread_state(THREAD) == {"turns": 1}
    assert bot.channel_state(CHANNEL) == {"messages": 1, "active_threads": [THREAD]}
    greeting = "Hi alice! I'm following this thread now and will answer every message in it."
    assert bot.history(THREAD) == [
        {"role": "user", "message_id": "m1", "user": "alice", "text": "@bot hi there",
         "ts": 1700000000.5},
        {"role": "bot", "in_reply_to": "m1", "text": greeting},
    ]  # fmt: skip
    [entry] = bot.outbox()  # posted by the outbox's dispatcher, not by the request
    assert (entry.key, entry.thread_id) == (KEY1, THREAD)
    assert entry.payload == {"channel": "C1", "thread": "T1", "in_reply_to": "m1", "text": greeting}
    assert bot.lock(THREAD, "probe") is LockResult.ACQUIRED  # the lock was released


def test_unmentioned_thread_is_tracked_not_answered(bot: Any, post: Post) -> None:
    status, body = post(message("m1", "just chatting"))
    assert (status, body["status"], body["handled"], body["outbox"]) == (200, "handled", ["m1"], [])
    assert not bot.is_subscribed(THREAD)
    assert bot.thread_state(THREAD)["turns"] == 1
    assert bot.channel_state(CHANNEL) == {"messages": 1}  # discard: no list, nothing to do
    assert (processed(bot), bot.outbox()) == (["m1"], [])


def test_followed_thread_answers_every_message_until_stop(bot: Any, post: Post) -> None:
    """The model's context is the thread's history: who spoke in its newest messages."""
    post(message("m1", "@bot help"))
    status, body = post(message("m2", "any news?", user="bob"))
    assert replies(bot)[-1] == ("m2", "Noted, bob: 2 people in the last 2 messages here.")
    assert body["outbox"] == [bot.outbox()[-1].key]
    status, body = post(message("m3", "thanks @BOT stop"))
    assert "stop following" in replies(bot)[-1][1]
    assert not bot.is_subscribed(THREAD)
    status, body = post(message("m4", "bye"))
    assert body["outbox"] == []
    assert bot.thread_state(THREAD) == {"turns": 4}
    assert in_reply_to(bot) == ["m1", "m2", "m3"]
    assert processed(bot) == ["m1", "m2", "m3", "m4"]
    assert bot.channel_state(CHANNEL) == {"messages": 4, "active_threads": []}


def test_the_model_sees_the_newest_history_items(bot: Any, post: Post) -> None:
    """The cycle reads the thread's newest 20 history items (``history=20``) for the model:
    after 12 answered messages (24 items), the 13th sees 10 of them, and itself."""
    post(message("m0", "@bot hi"))
    for i in range(1, 13):
        post(message(f"m{i}", "more", user=f"u{i % 3}"))
    assert len(bot.history(THREAD)) == 26
    assert replies(bot)[-1] == ("m12", "Noted, u0: 3 people in the last 11 messages here.")


def test_replies_leave_through_the_outbox_after_the_commit(
    bot: Any, post: Post, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The webhook posts nothing: a dispatcher hands each stored reply, in commit order, to
    the sender ``OUTBOX_SENDER`` names (the example's records it in its log), then drops it."""
    post(message("m1", "@bot hi"))
    post(message("m2", "any news?", user="bob"))
    waiting = bot.outbox()
    settings.CHATSTATE = {
        **settings.CHATSTATE,
        "OUTBOX_SENDER": "example_project.platform_stub.sender.post_reply",
    }
    with caplog.at_level(logging.INFO, logger="example_project.platform_stub.sender"):
        assert bot.dispatch_outbox() == {"sent": 2, "retried": 0, "dead": 0}
    posted = [r.entry for r in caplog.records if r.name == "example_project.platform_stub.sender"]  # type: ignore[attr-defined]
    assert [(e.key, e.payload) for e in posted] == [(e.key, e.payload) for e in waiting]
    sent = [
        r.getMessage() for r in caplog.records if r.name == "example_project.platform_stub.sender"
    ]
    assert sent[0] == f"posted {KEY1} to {THREAD} (re m1): {waiting[0].payload['text']}"
    assert bot.outbox() == []
    assert bot.dispatch_outbox() == {"sent": 0, "retried": 0, "dead": 0}


# -- validation --------------------------------------------------------------------------

# Hostile bodies (NUL, lone surrogates, deep nesting, huge numbers): test_bot_webhook_hostile.py
INVALID: list[tuple[str, Any, str]] = [
    ("not json", b"{nope", "body"),
    ("not an object", [1, 2], "body"),
    ("not utf-8", b"\xff\xfe{}", "body"),
    *[
        (f"missing {f}", {k: v for k, v in message("m1").items() if k != f}, f)
        for f in ("platform", "message_id", "channel_id", "thread_id", "user", "text", "ts")
    ],
    ("platform not a string", message("m1", platform=7), "platform"),
    ("platform empty", message("m1", platform=""), "platform"),
    ("platform too long", message("m1", platform="p" * 33), "platform"),
    ("platform with colon", message("m1", platform="a:b"), "platform"),
    ("message_id null", message(None), "message_id"),
    ("message_id too long", message("m" * 129), "message_id"),
    ("message_id with space", message("m 1"), "message_id"),
    ("channel_id with colon", message("m1", channel_id="C:1"), "channel_id"),
    ("channel_id with newline", message("m1", channel_id="C\n1"), "channel_id"),
    ("thread_id a list", message("m1", thread_id=["T1"]), "thread_id"),
    ("user empty", message("m1", user=""), "user"),
    ("text not a string", message("m1", text=None), "text"),
    ("text too long", message("m1", text="x" * 4001), "text"),
    ("ts not a number", message("m1", ts="yesterday"), "ts"),
    ("ts negative", message("m1", ts=-1), "ts"),
    ("ts a boolean", message("m1", ts=True), "ts"),
    ("ts infinite", message("m1", ts="inf"), "ts"),
]


@pytest.mark.parametrize(("case", "data", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_message_is_refused_naming_the_field(
    refusing_bot: Any, post: Post, case: str, data: Any, field: str
) -> None:
    status, body = post(data)
    assert status == 400
    assert body["field"] == field
    assert field in body["error"]
    assert_untouched(refusing_bot)


def test_unknown_fields_are_ignored_and_numeric_string_ts_accepted(bot: Any, post: Post) -> None:
    status, body = post(message("m1", ts="1700000000.000100", attachments=[{"a": 1}]))
    assert (status, body["status"]) == (200, "handled")
    assert bot.history(THREAD)[0]["ts"] == pytest.approx(1700000000.0001)
    assert "attachments" not in bot.history(THREAD)[0]


def test_get_is_not_allowed(bot: Any) -> None:
    response = Client().get("/bot/webhook")
    assert response.status_code == 405
    assert response.json()["field"] is None
    assert_untouched(bot)


# -- signatures -----------------------------------------------------------------------


def _headers(body: bytes, **changes: Any) -> dict[str, str]:
    headers = signed_headers(body, SECRET)
    for name, value in changes.items():
        header = {"signature": SIGNATURE_HEADER, "timestamp": TIMESTAMP_HEADER}[name]
        if value is None:
            del headers[header]
        else:
            headers[header] = value
    return headers


def _signature_cases() -> list[tuple[str, Callable[[bytes], dict[str, str]], str]]:
    now = int(time.time())
    return [
        ("no signature", lambda b: _headers(b, signature=None), SIGNATURE_HEADER),
        ("no timestamp", lambda b: _headers(b, timestamp=None), TIMESTAMP_HEADER),
        ("no headers", lambda b: {}, TIMESTAMP_HEADER),
        ("wrong secret", lambda b: signed_headers(b, "not-the-secret"), SIGNATURE_HEADER),
        ("other body", lambda b: signed_headers(b + b" ", SECRET), SIGNATURE_HEADER),
        ("garbage", lambda b: _headers(b, signature="v0=zz"), SIGNATURE_HEADER),
        (
            "other version",
            lambda b: _headers(b, signature="v1" + _headers(b)[SIGNATURE_HEADER][2:]),
            SIGNATURE_HEADER,
        ),
        ("timestamp not a number", lambda b: _headers(b, timestamp="soon"), TIMESTAMP_HEADER),
        ("stale", lambda b: signed_headers(b, SECRET, now=now - 301), TIMESTAMP_HEADER),
        # A minute past the window: ``now`` is truncated and time passes before the view
        # reads its clock, so 301 s left less than a second of margin on a busy machine.
        ("from the future", lambda b: signed_headers(b, SECRET, now=now + 360), TIMESTAMP_HEADER),
        # The signature covers the timestamp: re-dating a captured request breaks it.
        (
            "re-dated",
            lambda b: {**signed_headers(b, SECRET, now=now - 400), TIMESTAMP_HEADER: str(now)},
            SIGNATURE_HEADER,
        ),
    ]


@pytest.mark.parametrize("case", [c[0] for c in _signature_cases()])
def test_bad_signature_is_refused(refusing_bot: Any, post: Post, case: str) -> None:
    make_headers, field = {c[0]: c[1:] for c in _signature_cases()}[case]
    body = body_of(message("m1", "@bot hi"))
    status, answer = post(body, make_headers(body))
    assert status == 401
    assert answer["field"] == field
    assert_untouched(refusing_bot)
    # The same message, properly signed, is then handled: nothing was claimed.
    assert post(body)[0] == 200


def test_signature_within_max_age_is_accepted(bot: Any, post: Post) -> None:
    body = body_of(message("m1"))
    assert post(body, signed_headers(body, SECRET, now=time.time() - 290))[0] == 200


# -- size limit ---------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid message body of exactly ``size`` bytes (padding in an ignored field)."""
    base = body_of(message("m1", pad=""))
    return body_of(message("m1", pad="x" * (size - len(base))))


def test_body_at_the_limit_is_accepted_one_more_byte_is_413(
    bot: Any, post: Post, settings: Any
) -> None:
    settings.BOT_MAX_BODY_BYTES = 400
    status, body = post(_padded(401))
    assert status == 413
    assert body["field"] == "body"
    assert "400 bytes" in body["error"]
    assert_untouched(bot)
    assert len(_padded(400)) == 400
    assert post(_padded(400))[0] == 200


def test_413_before_the_signature_is_checked(bot: Any, post: Post, settings: Any) -> None:
    settings.BOT_MAX_BODY_BYTES = 100
    assert post(_padded(500), {})[0] == 413


def _asgi_request(body: bytes, content_length: bool) -> ASGIRequest:
    headers = [(k.lower().encode(), v.encode()) for k, v in signed_headers(body, SECRET).items()]
    headers.append((b"content-type", b"application/json"))
    if content_length:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/bot/webhook-async",
        "query_string": b"",
        "headers": headers,
        "server": ("localhost", 80),
    }
    return ASGIRequest(scope, io.BytesIO(body))


def test_413_when_the_body_is_larger_than_no_content_length_says(bot: Any, settings: Any) -> None:
    """A chunked body declares no Content-Length: the bytes read are bounded all the same."""
    settings.BOT_MAX_BODY_BYTES = 400
    response = run_async(views.webhook_async, _asgi_request(_padded(401), content_length=False))
    assert response.status_code == 413
    assert_untouched(bot)
    response = run_async(views.webhook_async, _asgi_request(_padded(400), content_length=False))
    assert response.status_code == 200


def test_bad_content_length_is_400(bot: Any) -> None:
    body = body_of(message("m1"))
    response = Client().generic(
        "POST",
        "/bot/webhook",
        body,
        "application/json",
        CONTENT_LENGTH="lots",
        headers=signed_headers(body, SECRET),
    )
    assert response.status_code == 400
    assert response.json()["field"] == "Content-Length"


# -- dedupe -------------------------------------------------------------------------------


DUPLICATE = {"status": "duplicate", "thread": THREAD, "handled": [], "outbox": []}


def test_redelivery_is_answered_once(bot: Any, post: Post) -> None:
    first = post(message("m1", "@bot hi"))
    again = post(message("m1", "@bot hi"))
    assert first[0] == again[0] == 200
    assert (first[1]["status"], first[1]["outbox"]) == ("handled", [KEY1])
    assert again[1] == DUPLICATE
    assert bot.thread_state(THREAD) == {"turns": 1}
    assert bot.channel_state(CHANNEL)["messages"] == 1
    assert (processed(bot), in_reply_to(bot)) == (["m1"], ["m1"])


def test_same_message_id_on_another_platform_is_not_a_duplicate(bot: Any, post: Post) -> None:
    assert post(message("m1"))[1]["status"] == "handled"
    assert post(message("m1", platform="teams"))[1]["status"] == "handled"
