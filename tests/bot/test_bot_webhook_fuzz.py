"""Fuzzing the example webhook's parser: any body is a valid message or a clean refusal.

:func:`parse_message` must return a :class:`Message` every backend can store, or raise
:class:`InvalidMessage` naming a field — never anything else (a 500 makes the platform
retry a poison message forever). Hypothesis feeds it arbitrary bytes, arbitrary JSON values
and valid messages with one field made hostile; the real view gets the same bodies and must
answer 200/202/400, never raise. Example counts are bounded so the file runs in seconds.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatstate.validation import check_dedupe_key, check_id
from example_project.bot import views
from example_project.demo.replay import signed_headers
from example_project.platform_stub.message import (
    BODY,
    FIELDS,
    ID_FIELDS,
    MAX_DEPTH,
    MAX_TEXT,
    MAX_TS,
    InvalidMessage,
    Message,
    channel_key,
    parse_message,
    thread_key,
)

SECRET = "fuzz-signing-secret"
RAW = "\x01raw\x01"  # a placeholder replaced by raw JSON text after encoding

# -- what a body may turn into ------------------------------------------------------------


def assert_storable(message: Message) -> None:
    """A parsed message is exactly the fields, each storable by every backend."""
    assert list(message) == list(FIELDS)
    for field in ID_FIELDS:
        value = message[field]  # type: ignore[literal-required]
        assert isinstance(value, str) and 0 < len(value) <= ID_FIELDS[field]
        assert not any(c.isspace() or c < " " or c == "\x7f" for c in value)
        value.encode("utf-8")  # no lone surrogate
    check_id(thread_key(message), "thread")
    check_id(channel_key(message), "channel")
    check_dedupe_key((message["platform"], message["message_id"]))
    assert isinstance(message["text"], str) and len(message["text"]) <= MAX_TEXT
    assert "\x00" not in message["text"]
    json.dumps(message, allow_nan=False).encode("utf-8")  # no lone surrogate, no NaN
    assert type(message["ts"]) is float
    assert math.isfinite(message["ts"]) and 0 <= message["ts"] <= MAX_TS


def outcome(body: bytes) -> Message | InvalidMessage:
    """What ``body`` parses to; any exception but :class:`InvalidMessage` fails the test."""
    try:
        message = parse_message(body)
    except InvalidMessage as exc:
        assert isinstance(exc.field, str) and exc.field
        assert isinstance(exc.error, str) and exc.error
        json.dumps({"error": exc.error, "field": exc.field})  # the view can answer it
        return exc
    assert_storable(message)
    return message


# -- strategies -----------------------------------------------------------------------------

#: Characters that break things, mixed into otherwise arbitrary text (surrogates included).
NASTY = [
    "\x00",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    " ",
    "\n",
    "\t",
    ":",
    "\x7f",
    "\u2028",
    "\ufeff",
    '"',
    "\\",
    "[",
    "{",
]
any_text = st.text(st.characters(exclude_categories=()) | st.sampled_from(NASTY), max_size=40)
#: Characters of valid text (given exclusions, ``characters`` no longer leaves surrogates out).
storable_chars = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
id_text = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=24)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | any_text
    | st.integers(min_value=10**300, max_value=10**400)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text of ``value``: surrogates as ``\\udXXX`` escapes, or as raw (invalid) UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    no_colon = id_text.filter(lambda s: ":" not in s)
    ids = {
        field: draw(no_colon if field in ("platform", "channel_id") else id_text)
        for field in ID_FIELDS
    }  # id_text is shorter than every limit
    text = draw(st.text(storable_chars, max_size=60))
    ts = draw(
        st.floats(0, MAX_TS)
        | st.integers(0, MAX_TS)
        | st.from_regex(r"\A[0-9]{1,10}\.[0-9]{1,6}\Z")
    )
    return {**ids, "text": text, "ts": ts}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def bad_id(field: str) -> st.SearchStrategy[Any]:
    limit = ID_FIELDS[field]
    bad_chars = ["\x00", "\ud800", "\udfff", " ", "\n", "\x1f", "\x7f", "\u2028"]
    if field in ("platform", "channel_id"):
        bad_chars.append(":")
    return st.one_of(
        st.just(""),
        st.text(min_size=limit + 1, max_size=limit + 8),
        # id_text is shorter than the limit: the bad character survives the cut.
        st.tuples(id_text, st.sampled_from(bad_chars), id_text).map(lambda t: "".join(t)[:limit]),
        json_values.filter(lambda v: not isinstance(v, str)),
    )


BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **{field: bad_id(field) for field in ID_FIELDS},
    "text": st.one_of(
        st.text(min_size=MAX_TEXT + 1, max_size=MAX_TEXT + 1),
        st.tuples(any_text, st.sampled_from(["\x00", "\ud800", "\udc00", "\udbff"]), any_text)
        .map("".join)
        .filter(lambda s: len(s) <= MAX_TEXT),
        json_values.filter(lambda v: not isinstance(v, str)),
    ),
    "ts": st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=MAX_TS + 1),
        st.floats(max_value=-1e-9) | st.floats(min_value=MAX_TS + 1),
        st.sampled_from(
            [
                math.nan,
                math.inf,
                -math.inf,
                True,
                False,
                None,
                "",
                "nan",
                "inf",
                "1e9",
                " 1",
                "1_0",
                "٣",
                "-1",
                "9" * 400,
                "1." + "0" * 400,
                "1\x00",
                "\ud800",
            ]
        ),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(any_text, st.integers(), max_size=2),
    ),
}


# -- the parser ----------------------------------------------------------------------------


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused(body: bytes) -> None:
    outcome(body)


@settings(deadline=None, max_examples=200)
@given(json_values, st.booleans())
def test_any_json_value_parses_or_is_refused(value: Any, ascii_only: bool) -> None:
    result = outcome(encode(value, ascii_only))
    if not isinstance(value, dict):
        assert isinstance(result, InvalidMessage) and result.field == BODY


@settings(deadline=None, max_examples=100)
@given(valid_messages(), st.booleans())
def test_valid_messages_parse_to_themselves(data: dict[str, Any], ascii_only: bool) -> None:
    message = outcome(encode({**data, "extra": {"ignored": [1, None]}}, ascii_only))
    assert not isinstance(message, InvalidMessage), message.error
    assert message == {**data, "ts": float(data["ts"])}


@settings(deadline=None, max_examples=200)
@given(
    valid_messages(),
    st.sampled_from(FIELDS).flatmap(lambda f: st.tuples(st.just(f), BAD_VALUES[f])),
    st.booleans(),
)
def test_one_hostile_field_is_named(
    data: dict[str, Any], hostile: tuple[str, Any], ascii_only: bool
) -> None:
    field, value = hostile
    body = encode({**data, field: value}, ascii_only)
    result = outcome(body)
    assert isinstance(result, InvalidMessage)
    # Raw (unescaped) surrogates make the bytes invalid UTF-8: then the body is at fault.
    assert result.field == (field if utf8(body) else BODY)


@settings(deadline=None, max_examples=50)
@given(valid_messages(), st.sampled_from([*FIELDS, "extra"]), st.integers(MAX_DEPTH, 6000))
def test_deep_nesting_names_the_key(data: dict[str, Any], field: str, depth: int) -> None:
    body = json.dumps({**data, field: RAW}).replace(json.dumps(RAW), nested(depth))
    result = outcome(body.encode())
    assert isinstance(result, InvalidMessage)
    assert result.field == field
    assert str(MAX_DEPTH) in result.error


@settings(deadline=None, max_examples=200)
@given(
    valid_messages(),
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3)), min_size=1, max_size=4),
)
def test_mutated_bytes_parse_or_are_refused(
    data: dict[str, Any], edits: list[tuple[int, bytes]]
) -> None:
    body = bytearray(encode(data, ascii_only=True))
    for position, replacement in edits:
        at = position % (len(body) + 1)
        body[at : at + len(replacement) // 2 + 1] = replacement
    outcome(bytes(body))


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 5000, 100_000])
def test_nesting_limit_is_exact(depth: int) -> None:
    """``MAX_DEPTH`` levels are accepted (a message itself is one), one more is refused."""
    data = {
        "platform": "slack",
        "message_id": "m1",
        "channel_id": "C1",
        "thread_id": "T1",
        "user": "alice",
        "text": "hi",
        "ts": 1.5,
    }
    inside = nested(depth - 1)  # inside the message object: depth levels in all
    result = outcome(json.dumps({**data, "extra": RAW}).replace(json.dumps(RAW), inside).encode())
    if depth <= MAX_DEPTH:
        assert not isinstance(result, InvalidMessage), result.error
    else:
        assert isinstance(result, InvalidMessage) and result.field == "extra"
    bare = outcome(nested(depth).encode())
    assert isinstance(bare, InvalidMessage) and bare.field == BODY


@pytest.mark.parametrize("key", ["text", "ts", "message_id", "extra"])
def test_a_repeated_known_field_is_refused(key: str) -> None:
    body = (
        b'{"platform":"slack","message_id":"m1","channel_id":"C1","thread_id":"T1",'
        b'"user":"alice","text":"hi","ts":1.5,"extra":0,"' + key.encode() + b'":"x"}'
    )
    result = outcome(body)
    if key == "extra":
        assert not isinstance(result, InvalidMessage)  # no known field is ambiguous
    else:
        assert isinstance(result, InvalidMessage) and result.field == key


# -- the real view -----------------------------------------------------------------------


@pytest.fixture
def view_store(store: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.BOT_SIGNING_SECRET = SECRET
    settings.BOT_THINK_SECONDS = 0
    settings.BOT_MAX_BODY_BYTES = 1024 * 1024  # what is tested here is the parser, not 413
    monkeypatch.setattr(views, "get_adapter", lambda: store)
    return store


@settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: encode(v, ascii_only=True)),
        st.tuples(
            valid_messages(),
            st.sampled_from(FIELDS).flatmap(lambda f: st.tuples(st.just(f), BAD_VALUES[f])),
        ).map(lambda t: encode({**t[0], t[1][0]: t[1][1]}, ascii_only=True)),
        valid_messages().map(lambda d: encode(d, ascii_only=True)),
    )
)
def test_the_view_never_fails_on_input(view_store: Any, body: bytes) -> None:
    """Every backend of the run, through the real view: 200/202 or a 400 naming a field."""
    response = Client().post(
        "/bot/webhook", body, content_type="application/json", headers=signed_headers(body, SECRET)
    )
    answer = response.json()
    assert response.status_code in (200, 202, 400), answer
    if response.status_code == 400:
        assert isinstance(answer["field"], str) and answer["error"]
        assert isinstance(outcome(body), InvalidMessage)
    else:
        assert answer["status"] in ("handled", "queued", "duplicate")
