"""The checks every snapshot reader shares, and the JSON paths problems are reported at.

They cover identifiers, dedupe keys, strategies, timestamps, text every backend can store,
and JSON values. The snapshot scanner (``chatstate.snapshots.scan``) and the streaming
reader (``chatstate.snapshots.files``) use them. Pure Python; no Django import."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from chatstate.isotime import is_utc_timestamp

MAX_ID_LENGTH = 255
#: Arrays and objects nest at most this deep in a snapshot document (the top object is 1).
MAX_DEPTH = 512
#: Integers have at most this many digits (CPython's default ``int_max_str_digits``).
MAX_INT_DIGITS = 4300
STRATEGIES = ("concurrent", "debounce", "queue", "reject")

DedupeKey = tuple[str, str]

EXPECTED_ID = f"expected a non-empty string of at most {MAX_ID_LENGTH} characters"
EXPECTED_MAP_KEY = (
    f"expected its key to be a non-empty string of at most {MAX_ID_LENGTH} characters"
)
EXPECTED_DEDUPE_KEY = "expected [adapter, message_id]"
EXPECTED_STRATEGY = "expected one of " + ", ".join(STRATEGIES)
EXPECTED_OBJECT = "expected an object"
EXPECTED_ARRAY = "expected an array"
EXPECTED_TIME = "expected an ISO 8601 UTC timestamp"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
TOO_LONG_INT = f"integer of more than {MAX_INT_DIGITS} digits"
NOT_JSON = "expected a JSON value"

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
_LONG_NUMBER = re.compile(f"[0-9]{{{MAX_INT_DIGITS + 1}}}")
_BIG = 10**MAX_INT_DIGITS
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


# --- text and identifiers -------------------------------------------------------------------


def text_problem(value: str) -> str | None:
    """What no backend can store in ``value``, or None.

    That is a NUL character or a lone surrogate."""
    if value.isascii():
        return "contains a NUL character (U+0000)" if "\x00" in value else None
    match = _BAD_TEXT.search(value)
    if match is None:
        return None
    char = match.group()
    if char == "\x00":
        return "contains a NUL character (U+0000)"
    return f"contains a lone surrogate (U+{ord(char):04X}), which is not text"


def id_problem(value: object) -> str | None:
    """Why ``value`` is not an identifier, or None when it is one.

    An identifier is a non-empty str of at most 255 characters that every backend can store."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        return EXPECTED_ID
    return text_problem(value)


def as_id(value: object) -> str | None:
    """``value`` when it is an identifier, else None."""
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        if value.isascii():
            return value if "\x00" not in value else None
        return value if _BAD_TEXT.search(value) is None else None
    return value if isinstance(value, str) and id_problem(value) is None else None


def all_ids(values: list[Any]) -> bool:
    """Whether every item of ``values`` is an identifier: ``as_id(v) is not None`` for each.

    It takes a few C-level passes, with no Python step per item."""
    try:
        text = "".join(values)  # a TypeError unless every item is a str
    except TypeError:
        return False
    if "" in values or max(map(len, values)) > MAX_ID_LENGTH:
        return False
    if text.isascii():
        return "\x00" not in text
    return _BAD_TEXT.search(text) is None


def dedupe_key_problem(value: object) -> tuple[str, str] | None:
    """Why ``value`` is not a dedupe key ``[adapter, message_id]``, or None when it is one.

    The result is ``(sub_path, message)``. ``sub_path`` is ``""``, ``"[0]"`` or ``"[1]"``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return "", EXPECTED_DEDUPE_KEY
    for index, half in enumerate(value):
        problem = id_problem(half)
        if problem == EXPECTED_ID:
            return "", EXPECTED_DEDUPE_KEY
        if problem is not None:
            return f"[{index}]", problem
    return None


def as_dedupe_key(value: object) -> DedupeKey | None:
    """``(adapter, message_id)`` from a 2-element list or tuple of identifiers, else None."""
    if type(value) is list and len(value) == 2:  # the JSON form of plain ASCII ids, fast
        adapter, message_id = value
        if (
            type(adapter) is str
            and type(message_id) is str
            and 0 < len(adapter) <= MAX_ID_LENGTH
            and 0 < len(message_id) <= MAX_ID_LENGTH
            and adapter.isascii()
            and message_id.isascii()
            and "\x00" not in adapter
            and "\x00" not in message_id
        ):
            return (adapter, message_id)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        adapter, message_id = value
        if as_id(adapter) is not None and as_id(message_id) is not None:
            return (adapter, message_id)
    return None


def as_strategy(value: object) -> str | None:
    """The plain ``str`` name of a known strategy; a ``str`` enum member works too."""
    if isinstance(value, str):
        for name in STRATEGIES:
            if value == name:
                return name
    return None


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is an ISO 8601 string with a UTC offset of zero, ``Z`` or ``+00:00``.

    It is read by the one grammar of :mod:`chatstate.isotime` on every Python version."""
    return is_utc_timestamp(value)


# --- JSON paths -------------------------------------------------------------------------------


def short_repr(key: object) -> str:
    """``repr(key)``, shortened to 80 characters."""
    try:
        text = repr(key)
    except ValueError:  # an int too long to print
        text = f"<{type(key).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def key_path(base: str, key: object) -> str:
    """``base['key']``: an entry of a map section, like ``thread_state['t1']``."""
    return f"{base}[{short_repr(key)}]"


def field_path(base: str, name: object) -> str:
    """``base.name`` for an identifier-like ``str``, else ``base['na me']`` or ``base[3]``."""
    if isinstance(name, str) and _IDENTIFIER.fullmatch(name):
        return f"{base}.{name}" if base != "$" else name
    return f"{base}[{short_repr(name)}]"


def path_of(components: Iterable[object], map_sections: Iterable[str] = ()) -> str:
    """The path of ``components``, the keys and indexes from the top.

    No components give ``$``. A key of one of ``map_sections`` reads ``['key']``. Long paths
    keep their first 8 and last 3 steps."""
    steps = list(components)
    path = "$"
    sections = set(map_sections)
    for depth, step in enumerate(steps):
        if len(steps) > 12 and depth == 8:
            path += "..."
        if len(steps) > 12 and 8 <= depth < len(steps) - 3:
            continue
        if isinstance(step, int):
            path += f"[{step}]"
        elif depth == 1 and steps[0] in sections:
            path = key_path(path, step)
        else:
            path = field_path(path, step)
    return path


# --- nesting --------------------------------------------------------------------------------


def text_depth(text: str, start: int = 0, end: int | None = None) -> int:
    """How deep arrays and objects nest in the JSON ``text[start:end]``.

    The text may stop anywhere. Brackets inside a string that does not end do not count."""
    part = text[start:end]
    if "[" not in part and "{" not in part:
        return 0
    outside = _STRING.sub("", part)
    quote = outside.find('"')
    brackets = _NOT_BRACKET.sub("", outside if quote < 0 else outside[:quote])
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def may_nest_deeper(text: str, start: int, end: int, limit: int) -> bool:
    """A cheap test: False guarantees ``text_depth(text, start, end) <= limit``."""
    return text.count("[", start, end) + text.count("{", start, end) > limit


# --- JSON values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem: ``path: message``.

    ``not_json`` marks a value no JSON text can hold: a set, an object, NaN, a non-``str``
    key. ``load_snapshot`` raises those as ``TypeError``."""

    path: str
    message: str
    not_json: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Problems:
    """Problems in the order found: the first ``cap`` kept, all counted.

    A ``cap`` of ``None`` keeps all."""

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self.listed: list[Problem] = []
        self.total = 0
        self.not_json = False

    def add(self, problem: Problem) -> None:
        self.total += 1
        self.not_json = self.not_json or problem.not_json
        if self.cap is None or len(self.listed) < self.cap:
            self.listed.append(problem)

    def lines(self) -> list[str]:
        return [str(problem) for problem in self.listed]


def json_copy(value: object, path: str, above: int, strict: bool) -> tuple[Any, list[Problem]]:
    """``(copy, [])`` when ``value`` is a JSON value every backend can store.

    Else ``(None, problems)``, with a path each. ``above`` is how many levels of the
    document hold ``value``. The copy is ``value``'s JSON round trip and shares nothing with
    it. A strict read finds a problem in a tuple or a non-``str`` key. A lenient read turns
    them into a list and a ``str`` key."""
    try:
        text = _dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None, _walk(value, path, above, strict) or [Problem(path, NOT_JSON, True)]
    suspicious = (
        ("\\u0000" in text)
        or (not text.isascii() and _BAD_TEXT.search(text) is not None)
        or (may_nest_deeper(text, 0, len(text), MAX_DEPTH - above) and _too_deep(text, above))
        or (len(text) > MAX_INT_DIGITS and _LONG_NUMBER.search(text) is not None)
    )
    copy = None if suspicious else _loads(text)
    if copy is not None and not (strict and copy != value):
        return copy, []
    problems = _walk(value, path, above, strict)
    if problems:
        return None, problems
    return (_loads(text) if copy is None else copy), []


def _too_deep(text: str, above: int) -> bool:
    return text_depth(text) > MAX_DEPTH - above


def _kind(value: object) -> str:
    return type(value).__name__


def _walk(value: object, path: str, above: int, strict: bool) -> list[Problem]:
    """Every problem of ``value``, at any depth, reference cycles included.

    Paths longer than 160 characters keep their start and end."""
    return [
        Problem(p.path[:100] + "..." + p.path[-50:], p.message, p.not_json)
        if len(p.path) > 160
        else p
        for p in _walk_all(value, path, above, strict)
    ]


def _walk_all(value: object, path: str, above: int, strict: bool) -> list[Problem]:
    problems: list[Problem] = []
    on_path: set[int] = set()
    # (value, path, depth in the document, id to release from on_path when done)
    stack: list[tuple[object, str, int, int | None]] = [(value, path, above, None)]
    while stack:
        item, where, depth, release = stack.pop()
        if release is not None:
            on_path.discard(release)
            continue
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                problems.append(Problem(where, problem))
        elif item is None or isinstance(item, bool):
            pass
        elif isinstance(item, int):
            if abs(item) >= _BIG:
                problems.append(Problem(where, TOO_LONG_INT))
        elif isinstance(item, float):
            if not math.isfinite(item):
                problems.append(Problem(where, f"expected a finite number, found {item}", True))
        elif isinstance(item, (dict, list, tuple)):
            if isinstance(item, tuple) and strict:
                problems.append(Problem(where, f"{NOT_JSON}, found tuple", True))
                continue
            if id(item) in on_path:
                problems.append(Problem(where, f"{NOT_JSON}, found a reference cycle", True))
                continue
            if depth + 1 > MAX_DEPTH:
                problems.append(Problem(where, TOO_DEEP))
                continue
            on_path.add(id(item))
            stack.append((None, where, depth, id(item)))
            children: list[tuple[object, str, int, None]] = []
            if isinstance(item, dict):
                for key, child in item.items():
                    sub = field_path(where, key)
                    if not isinstance(key, str):
                        if strict or not (key is None or isinstance(key, (int, float))):
                            found = f"expected a str key, found {_kind(key)}"
                            problems.append(Problem(sub, found, True))
                    elif text_problem(key):
                        problems.append(Problem(sub, f"its key {text_problem(key)}"))
                    children.append((child, sub, depth + 1, None))
            else:
                children = [(c, f"{where}[{i}]", depth + 1, None) for i, c in enumerate(item)]
            stack.extend(reversed(children))
        else:
            problems.append(Problem(where, f"{NOT_JSON}, found {_kind(item)}", True))
    return problems
