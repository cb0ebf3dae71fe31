"""The webhook's message shape, platform-neutral, and its validation.

A delivery is one JSON object::

    {"platform": "slack", "message_id": "m1", "channel_id": "C1",
     "thread_id": "1700000000.1", "user": "alice", "text": "@bot hello", "ts": 1700000000.1}

Every field is required. Identifiers are non-blank strings without whitespace or control
characters (``platform`` and ``channel_id`` also without ``:``, since they are joined into
the thread's key ``platform:channel_id:thread_id``); ``text`` is a string (possibly empty);
``ts`` the message's Unix time, a number or a numeric string (Slack sends strings). Unknown
fields are ignored, so a platform adding fields does not break the bot.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypedDict


class Message(TypedDict):
    platform: str
    message_id: str
    channel_id: str
    thread_id: str
    user: str
    text: str
    ts: float


#: Field -> maximum length, in the order fields are checked (and documented).
ID_FIELDS: dict[str, int] = {
    "platform": 32,
    "message_id": 128,
    "channel_id": 96,
    "thread_id": 96,
    "user": 96,
}
MAX_TEXT = 4000
FIELDS = (*ID_FIELDS, "text", "ts")
_NO_COLON = {"platform", "channel_id"}
_BAD_ID_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


class InvalidMessage(ValueError):
    """The body is not a valid message; ``field`` names the culprit (None: the whole body)."""

    def __init__(self, error: str, field: str | None) -> None:
        super().__init__(error)
        self.error = error
        self.field = field


def check_identifier(value: Any, field: str) -> str:
    """``value`` if it is a valid identifier for ``field``, else :class:`InvalidMessage`."""
    limit = ID_FIELDS[field]
    if not isinstance(value, str):
        raise InvalidMessage(f"{field} must be a string, not {_json_type(value)}", field)
    if not value:
        raise InvalidMessage(f"{field} must not be empty", field)
    if len(value) > limit:
        raise InvalidMessage(f"{field} must be at most {limit} characters", field)
    if _BAD_ID_CHARS.search(value):
        raise InvalidMessage(f"{field} must not contain whitespace or control characters", field)
    if field in _NO_COLON and ":" in value:
        raise InvalidMessage(f"{field} must not contain ':'", field)
    return value


def _check_text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(f"text must be a string, not {_json_type(value)}", "text")
    if len(value) > MAX_TEXT:
        raise InvalidMessage(f"text must be at most {MAX_TEXT} characters", "text")
    return value


def _check_ts(value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise InvalidMessage("ts must be a Unix time: a non-negative number", "ts")
    return number


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number", str: "a string"}
    return names.get(type(value), type(value).__name__)


def parse_message(body: bytes) -> Message:
    """The :class:`Message` in the JSON ``body``; :class:`InvalidMessage` naming the field."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise InvalidMessage("body must be a JSON object", None) from None
    if not isinstance(data, dict):
        raise InvalidMessage(f"body must be a JSON object, not {_json_type(data)}", None)
    for field in FIELDS:
        if field not in data:
            raise InvalidMessage(f"{field} is required", field)
    ids = {field: check_identifier(data[field], field) for field in ID_FIELDS}
    return Message(
        platform=ids["platform"],
        message_id=ids["message_id"],
        channel_id=ids["channel_id"],
        thread_id=ids["thread_id"],
        user=ids["user"],
        text=_check_text(data["text"]),
        ts=_check_ts(data["ts"]),
    )


def thread_key(message: Mapping[str, Any]) -> str:
    """The thread's id in chatstate: ``platform:channel_id:thread_id`` (at most 226 chars)."""
    return f"{message['platform']}:{message['channel_id']}:{message['thread_id']}"


def channel_key(message: Mapping[str, Any]) -> str:
    """The channel's id in chatstate: ``platform:channel_id``."""
    return f"{message['platform']}:{message['channel_id']}"
