"""The webhook's message shape, platform-neutral, and its validation.

A delivery is one JSON object, UTF-8 encoded::

    {"platform": "slack", "message_id": "m1", "channel_id": "C1",
     "thread_id": "1700000000.1", "user": "alice", "text": "@bot hello", "ts": 1700000000.1}

Every field is required. Identifiers are non-blank strings without whitespace or control
characters. ``platform`` and ``channel_id`` also exclude ``:``. They are joined into the
thread's key, ``platform:channel_id:thread_id``. ``text`` is a string, possibly empty.
``ts`` is the message's Unix time, from 0 to :data:`MAX_TS` in the year 9999. It is a
number or a decimal string; Slack sends strings. No string may hold a NUL character or a
lone surrogate, a ``\\ud800`` escape without its pair. No backend can store them.

Unknown fields are ignored, so a platform adding fields does not break the bot. But the
body may nest arrays and objects at most :data:`MAX_DEPTH` deep. A known field may not
appear twice.

:func:`parse_message` returns a :class:`Message` or raises :class:`InvalidMessage`. The
error names the field at fault, or ``"body"`` when the body as a whole is not a JSON
object. No other exception escapes it, whatever the bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, TypedDict


class Message(TypedDict):
    platform: str
    message_id: str
    channel_id: str
    thread_id: str
    user: str
    text: str
    ts: float


#: Each identifier field's maximum length, in the order fields are checked and documented.
ID_FIELDS: dict[str, int] = {
    "platform": 32,
    "message_id": 128,
    "channel_id": 96,
    "thread_id": 96,
    "user": 96,
}
MAX_TEXT = 4000
#: The latest accepted ``ts``, 9999-12-31T23:59:59Z; no datetime is later.
MAX_TS = 253_402_300_799
#: How deep arrays and objects may nest in a body; a message itself is one level.
MAX_DEPTH = 64
FIELDS = (*ID_FIELDS, "text", "ts")
#: The field named when the body as a whole is at fault.
BODY = "body"
_NO_COLON = {"platform", "channel_id"}
_BAD_ID_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?", re.ASCII)
#: A JSON string literal. The closing quote is optional, so an unterminated one scans once.
_STRING_PATTERN = r'"(?:[^"\\]|\\.)*"?'
_STRING = re.compile(_STRING_PATTERN, re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
#: A string literal with the colon that makes it a key, or a bracket.
_TOKEN = re.compile(rf"({_STRING_PATTERN})(\s*:)?|[\[\]{{}}]", re.DOTALL)
#: Longest integer literal parsed as an int; longer ones become floats, maybe infinite.
_MAX_INT_DIGITS = 20


class InvalidMessage(ValueError):
    """The body is not a valid message; ``field`` names the culprit, ``"body"`` for all of it."""

    def __init__(self, error: str, field: str) -> None:
        super().__init__(error)
        self.error = error
        self.field = field


def _check_storable(value: str, field: str) -> None:
    """Refuse a NUL character or a lone surrogate in ``value``; no backend stores them."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return
    char, at = bad.group(), bad.start()
    if char == "\x00":
        raise InvalidMessage(f"{field} must not contain NUL characters (one at index {at})", field)
    raise InvalidMessage(
        f"{field} must not contain lone surrogates (\\u{ord(char):04x} at index {at})", field
    )


def check_identifier(value: Any, field: str) -> str:
    """``value`` if it is a valid identifier for ``field``, else :class:`InvalidMessage`."""
    limit = ID_FIELDS[field]
    if not isinstance(value, str):
        raise InvalidMessage(f"{field} must be a string, not {_json_type(value)}", field)
    if not value:
        raise InvalidMessage(f"{field} must not be empty", field)
    if len(value) > limit:
        raise InvalidMessage(f"{field} must be at most {limit} characters", field)
    _check_storable(value, field)
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
    _check_storable(value, "text")
    return value


def _check_ts(value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value) if 0 <= value <= MAX_TS else None  # NaN compares False
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = float(value)
    if number is None or not math.isfinite(number) or number > MAX_TS:
        raise InvalidMessage(
            f"ts must be a Unix time: a number or decimal string from 0 to {MAX_TS}", "ts"
        )
    return number


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        _Object: "an object",
        list: "an array",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
        str: "a string",
    }
    return names.get(type(value), type(value).__name__)


# -- decoding ---------------------------------------------------------------------------


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers which of its keys appeared more than once."""

    repeated: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: set[str] = set()
        for key, _ in pairs:
            (repeated if key in seen else seen).add(key)
        obj.repeated = frozenset(repeated)
    return obj


def _int(digits: str) -> int | float:
    """An integer literal; a long one as a float, ``inf`` past 308 digits; never an error."""
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


_decoder = json.JSONDecoder(object_pairs_hook=_object, parse_int=_int)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`, naming the top-level key holding it.

    Linear in ``text``, and free for a body with fewer brackets than the limit.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        key = _deep_key(text)
        raise InvalidMessage(f"{key} nests arrays/objects deeper than {MAX_DEPTH} levels", key)


def _deep_key(text: str) -> str:
    """The top-level key whose value nests deeper than :data:`MAX_DEPTH`; else ``"body"``."""
    depth, key, in_object = 0, BODY, False
    for token in _TOKEN.finditer(text):
        string, colon = token.group(1), token.group(2)
        if string is not None:
            if depth == 1 and in_object and colon:
                key = _key_name(string)
        elif token.group() in "[{":
            depth += 1
            if depth == 1:
                in_object = token.group() == "{"
            elif depth > MAX_DEPTH:
                return key
        else:
            depth -= 1
            if depth <= 0:
                depth, key = 0, BODY
    return BODY


def _key_name(literal: str) -> str:
    """The key a JSON string literal spells; ``"body"`` if it is not a valid literal."""
    try:
        name = json.loads(literal)
    except ValueError:
        return BODY
    return name if isinstance(name, str) else BODY


def _decode(body: bytes) -> Any:
    """The JSON value of ``body``: UTF-8, nested at most :data:`MAX_DEPTH` deep."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(
            f"body must be UTF-8 encoded JSON (invalid byte at offset {exc.start})", BODY
        ) from None
    _check_depth(text)
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(
            f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", BODY
        ) from None
    except (ValueError, RecursionError) as exc:  # a safety net: _check_depth bounds nesting
        raise InvalidMessage(f"body is not acceptable JSON: {exc}", BODY) from None


def parse_message(body: bytes) -> Message:
    """The :class:`Message` in the JSON ``body``, else :class:`InvalidMessage` naming the field.

    Fields are checked in the order of :data:`FIELDS`; the first problem is reported.
    """
    data = _decode(body)
    if not isinstance(data, dict):
        raise InvalidMessage(f"body must be a JSON object, not {_json_type(data)}", BODY)
    for field in FIELDS:
        if field not in data:
            raise InvalidMessage(f"{field} is required", field)
        if field in getattr(data, "repeated", ()):
            raise InvalidMessage(f"{field} must appear once, not repeated", field)
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
    """The thread's id in chatstate: ``platform:channel_id:thread_id``, at most 226 chars."""
    return f"{message['platform']}:{message['channel_id']}:{message['thread_id']}"


def channel_key(message: Mapping[str, Any]) -> str:
    """The channel's id in chatstate: ``platform:channel_id``."""
    return f"{message['platform']}:{message['channel_id']}"
