"""Poison messages through the real webhook views: a 400 naming the field, never a 500.

A platform retries a 500 forever, so every body below (NUL characters, lone surrogates,
5,000 nested arrays, huge numbers, bytes that are not UTF-8) must get a 400 whose ``field``
names the culprit, from the sync view and its async twin, on every backend of the run, and
leave the store as it was. (The property-based counterpart is ``test_bot_webhook_fuzz.py``.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import AsyncClient, Client

from chatstate import default_snapshot
from chatstate.testing.helpers import run_async
from example_project.bot import views
from example_project.demo.replay import signed_headers
from example_project.platform_stub.message import ID_FIELDS, MAX_TS

SECRET = "hostile-signing-secret"
STRING_FIELDS = (*ID_FIELDS, "text")


def message(**fields: Any) -> dict[str, Any]:
    return {
        "platform": "slack",
        "message_id": "m1",
        "channel_id": "C1",
        "thread_id": "T1",
        "user": "alice",
        "text": "@bot hi",
        "ts": 1700000000.5,
        **fields,
    }


def body_of(data: Any) -> bytes:
    """``data`` as a JSON body (``json.dumps`` writes a lone surrogate as a ``\\ud800``
    escape, as a hostile sender would); bytes are sent as they are."""
    return data if isinstance(data, bytes) else json.dumps(data).encode()


def raw(field: str, text: bytes) -> bytes:
    """A message whose ``field`` is the raw JSON ``text``."""
    return body_of(message(**{field: "RAW"})).replace(b'"RAW"', text)


HOSTILE: list[tuple[str, Any, str]] = [
    *[(f"NUL in {f}", message(**{f: "a\x00b"}), f) for f in STRING_FIELDS],
    *[(f"lone surrogate in {f}", message(**{f: "a\ud800"}), f) for f in STRING_FIELDS],
    ("lone low surrogate in text", message(text="\udc00 hi"), "text"),
    ("surrogate escape pair reversed", raw("user", b'"\\udc00\\ud800"'), "user"),
    ("raw surrogate bytes (not UTF-8)", raw("text", b'"\xed\xa0\x80"'), "body"),
    ("latin-1 bytes", raw("text", b'"caf\xe9"'), "body"),
    ("UTF-16", json.dumps(message()).encode("utf-16"), "body"),
    ("5000 nested arrays", b"[" * 5000 + b"]" * 5000, "body"),
    ("5000 nested arrays in text", raw("text", b"[" * 5000 + b"]" * 5000), "text"),
    (
        "2000 nested objects in an extra field",  # (5000 would be over the 16 KiB limit)
        raw("extra", b'{"a":' * 2000 + b"1" + b"}" * 2000),
        "extra",
    ),
    ("ts a 400-digit integer", raw("ts", b"9" * 400), "ts"),
    ("ts a 5000-digit integer", raw("ts", b"9" * 5000), "ts"),
    ("ts a 5000-digit integer string", message(ts="9" * 5000), "ts"),
    ("ts 1e400", raw("ts", b"1e400"), "ts"),
    ("ts NaN", raw("ts", b"NaN"), "ts"),
    ("ts after year 9999", message(ts=MAX_TS + 1), "ts"),
    ("ts an exponent string", message(ts="1e9"), "ts"),
    ("message_id repeated", body_of(message())[:-1] + b', "message_id": "m2"}', "message_id"),
    ("empty body", b"", "body"),
    ("a BOM first", b"\xef\xbb\xbf" + body_of(message()), "body"),
]


@pytest.fixture(autouse=True)
def bot_settings(settings: Any) -> None:
    settings.BOT_SIGNING_SECRET = SECRET
    settings.BOT_THINK_SECONDS = 0
    settings.BOT_MAX_BODY_BYTES = 16 * 1024


@pytest.fixture
def bot(store: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The views use ``store`` (each backend of the run) as their adapter."""
    monkeypatch.setattr(views, "get_adapter", lambda: store)
    return store


def post(view: str, body: bytes) -> Any:
    headers = signed_headers(body, SECRET)
    if view == "sync":
        return Client().post("/bot/webhook", body, content_type="application/json", headers=headers)

    async def apost() -> Any:
        return await AsyncClient().post(
            "/bot/webhook-async", body, content_type="application/json", headers=headers
        )

    return run_async(apost)


@pytest.mark.parametrize("view", ["sync", "async"])
@pytest.mark.parametrize(("case", "data", "field"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_poison_message_is_400_naming_the_field(
    refusing_bot: Any, view: str, case: str, data: Any, field: str
) -> None:
    body = body_of(data)
    assert len(body) <= 16 * 1024  # the parser is tested, not the size limit
    response = post(view, body)
    answer = response.json()
    assert response.status_code == 400, answer
    assert answer["field"] == field
    assert field in answer["error"]
    assert refusing_bot.snapshot() == default_snapshot()


def test_the_same_thread_still_works_after_poison(bot: Any) -> None:
    """Refusing a poison message claims nothing: its id, redelivered clean, is handled."""
    assert post("sync", body_of(message(text="a\x00b"))).status_code == 400
    response = post("sync", body_of(message()))
    assert (response.status_code, response.json()["status"]) == (200, "handled")


@pytest.mark.parametrize("timestamp", ["9" * 400, "9" * 5000, "-1", " 1", "1.5", "٣"])
def test_hostile_timestamp_header_is_401(bot: Any, timestamp: str) -> None:
    body = body_of(message())
    headers = {**signed_headers(body, SECRET), "X-Chatstate-Request-Timestamp": timestamp}
    response = Client().post("/bot/webhook", body, content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert response.json()["field"] == "X-Chatstate-Request-Timestamp"
