"""JSON text as snapshots read it, and where a refusal is.

Snapshots are read by the stdlib's decoder. Its C scanner gives every message in the running
interpreter's own words. It refuses four things. These are ``NaN`` and ``Infinity``, a key
repeated in one object, an integer of more than 4300 digits, and nesting more than 512 deep.
The integer limit holds on every Python, whatever its ``int_max_str_digits``.

The decoder's hooks cannot say *where* a refusal is. So :func:`locate` walks the text again
to find it as a JSON path. ``Snapshot.from_json`` and the streaming reader both report it as
``path: invalid JSON: what: line L column C (char N)``. Pure Python; no Django import."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from chatstate.snapshots.checks import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    TOO_DEEP,
    may_nest_deeper,
    path_of,
    text_depth,
)

MAP_SECTIONS = ("thread_state", "channel_state", "locks", "pending_locks", "lists")
_WS = re.compile(r"[ \t\n\r]*")
_INT_PART = re.compile(r"-?([0-9]+)")
_CONSTANTS = ("NaN", "Infinity", "-Infinity")
_scanstring: Any = json.decoder.scanstring  # type: ignore[attr-defined]


class JsonRefusal(ValueError):
    """Valid JSON syntax the snapshot reader refuses; the decoder's hooks raise it."""


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a dict, or ``JsonRefusal`` for a key repeated in the object."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRefusal(f"repeated key {key!r}")
            seen.add(key)
    return result


def no_constant(name: str) -> Any:
    """``parse_constant``: always ``JsonRefusal``, since NaN and Infinity are not JSON."""
    raise JsonRefusal(f"{name} is not valid JSON")


def _checked_int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise JsonRefusal(f"integer of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _c_limit_is_ours() -> bool:
    """Whether the interpreter itself refuses integers of more than 4300 digits.

    It must refuse them before converting them, in linear time."""
    get = getattr(sys, "get_int_max_str_digits", None)
    return get is not None and get() == MAX_INT_DIGITS


_DECODER = json.JSONDecoder(
    object_pairs_hook=unique_pairs,
    parse_constant=no_constant,
    parse_int=None if _c_limit_is_ours() else _checked_int,
)
#: ``scan(text, pos) -> (value, end)`` with the refusals above (the nesting depth excepted).
SCAN: Any = _DECODER.scan_once  # type: ignore[attr-defined]
#: The same for text already read with ``SCAN``: the same values, without the hooks' cost.
TRUSTED_SCAN: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str | bytes) -> Any:
    """``json.loads(text)`` with the refusals above, except the nesting depth."""
    return json.loads(
        text,
        object_pairs_hook=unique_pairs,
        parse_constant=no_constant,
        parse_int=_DECODER.parse_int,
    )


def _probe_comma(text: str, comma: int) -> tuple[str, bool]:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.msg, exc.pos == comma
    raise AssertionError("unreachable")  # pragma: no cover


#: What this interpreter says of ``[1,]`` and ``{"a":1,}``, and whether it says it at the
#: comma (3.13: "Illegal trailing comma…") or at the closing bracket (before 3.13).
TRAILING_COMMA = {"[": _probe_comma("[1,]", 2), "{": _probe_comma('{"a":1,}', 6)}


# --- locating a refusal ---------------------------------------------------------------------


@dataclass
class Found:
    """A refusal: ``detail`` at character ``at`` of the text, at the JSON path ``steps``."""

    steps: list[object]
    detail: str
    at: int
    cut: bool = False  # a number reaching the end of an incomplete text: it may go on

    def path(self) -> str:
        return path_of(self.steps, MAP_SECTIONS)


def problem(path: str, detail: str, line: int, column: int, char: int) -> str:
    """The problem line of a JSON-level refusal."""
    return f"{path}: invalid JSON: {detail}: line {line} column {column} (char {char})"


def line_column(text: str, at: int) -> tuple[int, int]:
    """Line and column of character ``at`` of ``text``, both from 1, as ``json`` counts."""
    line = text.count("\n", 0, at) + 1
    return line, at - text.rfind("\n", 0, at)


def locate(
    text: str, pos: int, steps: list[object], depth: int, complete: bool = True
) -> Found | None:
    """The first refusal in the JSON value at ``text[pos]``, after blanks.

    Refusals come in the order ``json.loads`` with the hooks above meets them. A repeated
    key counts when its object closes. Nesting deeper than 512 levels counts too. ``depth``
    counts the arrays and objects around ``pos``. ``None`` when the value has no refusal
    before its first syntax error. ``complete`` means the text is the whole document.
    Otherwise a number reaching its end may go on. The walk is iterative. The C scanner
    checks each container's children, and only the first one it refuses is walked into."""
    while True:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        char = text[pos : pos + 1]
        if char not in ("{", "["):
            return _scalar(text, pos, steps, complete)
        if depth + 1 > MAX_DEPTH:
            return Found(steps, TOO_DEEP, pos)
        depth += 1
        walk = _object if char == "{" else _array
        inner = walk(text, pos + 1, steps, depth, complete)
        if not isinstance(inner, tuple):
            return inner
        pos, steps = inner


def _scalar(text: str, pos: int, steps: list[object], complete: bool) -> Found | None:
    for name in _CONSTANTS:
        if text.startswith(name, pos):
            return Found(steps, f"{name} is not valid JSON", pos)
    match = _INT_PART.match(text, pos)
    if match is not None and len(match[1]) > MAX_INT_DIGITS:
        cut = match.end() == len(text) and not complete
        digits = f"at least {len(match[1])}" if cut else f"{len(match[1])}"
        return Found(steps, f"integer of {digits} digits (at most {MAX_INT_DIGITS})", pos, cut)
    return None


def _probe(text: str, pos: int, depth: int) -> tuple[bool, int] | None:
    """``(refused, end)`` of the value at ``pos``; ``None`` on a syntax error.

    ``refused`` says whether the C scanner refuses it or it nests too deep. ``end`` is where
    it ends."""
    budget = MAX_DEPTH - depth
    try:
        _, end = SCAN(text, pos)
    except (StopIteration, json.JSONDecodeError) as exc:  # too deep before it: too deep first
        at = exc.pos if isinstance(exc, json.JSONDecodeError) else int(exc.value)
        return (True, pos) if nests_deeper(text, pos, at, budget) else None
    except (ValueError, RecursionError):
        return True, pos
    return nests_deeper(text, pos, end, budget), end


def nests_deeper(text: str, start: int, end: int, limit: int) -> bool:
    """Whether ``text[start:end]`` nests deeper than ``limit``; the JSON may be cut short."""
    return may_nest_deeper(text, start, end, limit) and text_depth(text, start, end) > limit


def _object(text: str, pos: int, steps: list[object], depth: int, complete: bool) -> Any:
    seen: set[str] = set()
    repeated: Found | None = None
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] == "}":
        return None
    while True:
        if text[pos : pos + 1] != '"':
            return None
        try:
            key, after = _scanstring(text, pos + 1)
        except ValueError:
            return None
        key_at = pos
        pos = _WS.match(text, after).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] != ":":
            return None
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        probed = _probe(text, pos, depth)
        if probed is None:
            return None
        if probed[0]:
            return pos, [*steps, key]
        if repeated is None and key in seen:
            repeated = Found([*steps, key], f"repeated key {key!r}", key_at)
        seen.add(key)
        pos = _WS.match(text, probed[1]).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] == "}":
            return repeated
        if text[pos : pos + 1] != ",":
            return None
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]


def _array(text: str, pos: int, steps: list[object], depth: int, complete: bool) -> Any:
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] == "]":
        return None
    index = 0
    while True:
        probed = _probe(text, pos, depth)
        if probed is None:
            return None
        if probed[0]:
            return pos, [*steps, index]
        pos = _WS.match(text, probed[1]).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] == "]":
            return None
        if text[pos : pos + 1] != ",":
            return None
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        index += 1


def document_problem(text: str, exc: BaseException | None) -> str:
    """The problem line for the JSON document ``text`` that ``loads`` refused with ``exc``.

    It is the located refusal, else the exception's own words at ``$``. ``exc`` is ``None``
    when the text loaded but may nest too deep."""
    start = _WS.match(text).end()  # type: ignore[union-attr]
    found = locate(text, start, [], 0)
    if found is None:
        return f"$: invalid JSON: {exc}"
    line, column = line_column(text, found.at)
    return problem(found.path(), found.detail, line, column, found.at)


def too_deep(text: str, end: int | None = None) -> bool:
    """Whether the JSON ``text``, up to ``end``, nests deeper than 512 levels."""
    return nests_deeper(text, 0, len(text) if end is None else end, MAX_DEPTH)
