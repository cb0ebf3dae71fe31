"""Argument checks shared by every adapter: bad input raises before anything changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from json import encoder as json_encoder

from chatstate.types import STRATEGIES, Strategy

MAX_ID_LENGTH = 255
OVERFLOWS = ("drop_oldest", "drop_newest")


def _compact_dumps() -> Callable[[object], str]:
    """A function returning the compact JSON text of a value, as ``json.dumps`` would.

    ``JSONEncoder.encode`` builds a new C encoder per call, which costs more than a small
    state's encoding; this one is built once. It keeps no state between calls (no circular
    check: a circular value raises ``RecursionError``), so threads share it."""
    encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    make = getattr(json_encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None:  # no C speedups (PyPy)
        return encoder.encode
    quote = json_encoder.encode_basestring
    encode = make(None, encoder.default, quote, None, ":", ",", False, False, False)

    def dumps(value: object) -> str:
        if isinstance(value, str):
            return quote(value)
        return "".join(encode(value, 0))

    return dumps


_dumps = _compact_dumps()


def _storable_text(value: str) -> bool:
    """Whether every backend can store ``value``: valid UTF-8 with no NUL and no lone surrogate."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def check_id(value: object, what: str = "identifier") -> str:
    """Return ``value`` when it is a ``str`` of 1–255 characters.

    Raises ``TypeError`` for a non-``str`` and ``ValueError`` for an empty or longer one.
    """
    if type(value) is not str and not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise ValueError(f"{what} must be 1-{MAX_ID_LENGTH} characters, got {len(value)}")
    if "\x00" in value or not (value.isascii() or _storable_text(value)):
        raise ValueError(f"{what} must be valid text without NUL characters, got {value!r}")
    return value


def check_dedupe_key(key: object) -> tuple[str, str]:
    """Return a dedupe key ``(adapter_name, message_id)`` given as a 2-tuple or 2-list of ids."""
    if not isinstance(key, (tuple, list)):
        raise TypeError(
            f"dedupe key must be an (adapter, message_id) tuple, not {type(key).__name__}"
        )
    if len(key) != 2:
        raise ValueError(f"dedupe key must have 2 elements, got {len(key)}")
    return (check_id(key[0], "dedupe key adapter"), check_id(key[1], "dedupe key message_id"))


def check_limit(limit: object, what: str = "limit") -> int:
    """Return ``limit`` when it is an ``int`` ≥ 1, else ``ValueError``; ``bool`` is refused."""
    if type(limit) is not int or limit < 1:
        raise ValueError(f"{what} must be an int >= 1, got {limit!r}")
    return limit


def check_ttl(ttl: object) -> float:
    """Return ``ttl`` in seconds when it is a positive real number, else ``ValueError``."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"ttl must be a number of seconds > 0, got {ttl!r}")
    if ttl == float("inf"):
        raise ValueError("ttl must be finite")
    return float(ttl)


def check_seconds(value: object, what: str) -> float:
    """Return ``value`` in seconds when it is a real number ≥ 0, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{what} must be finite")
    return float(value)


def check_optional_ttl(value: object, what: str) -> float | None:
    """``None``, or a positive number of seconds; ``ValueError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{what} must be None or a number of seconds > 0, got {value!r}")
    return float(value)


def check_optional_limit(value: object, what: str) -> int | None:
    """``None``, or an ``int`` ≥ 1; ``ValueError`` otherwise."""
    return None if value is None else check_limit(value, what)


def check_strategy(strategy: object) -> Strategy:
    """Return the :class:`Strategy` named by ``strategy``, else ``ValueError``."""
    try:
        return STRATEGIES[strategy]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(
            f"strategy must be one of {', '.join(sorted(STRATEGIES))}, not {strategy!r}"
        ) from None


def check_overflow(overflow: object) -> str:
    """Return ``overflow`` when it is ``"drop_oldest"`` or ``"drop_newest"``."""
    if overflow not in OVERFLOWS:
        raise ValueError(f"overflow must be 'drop_oldest' or 'drop_newest', not {overflow!r}")
    return overflow


def dump_map(value: object, what: str = "state") -> str:
    """Return the compact JSON text of ``value``, a ``dict`` with ``str`` keys.

    It raises ``TypeError`` when ``value`` is not such a dict, or is not JSON-serializable.
    It also raises it for text that not every backend can store: a NUL character or a lone
    surrogate."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, not {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise TypeError(f"{what} keys must be str, got {type(k).__name__} {k!r}")
    try:
        text = _dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None
    if "\\u0000" in text and _has_nul(value):
        raise TypeError(f"{what} holds a NUL character, which PostgreSQL cannot store")
    if not text.isascii() and not _storable_text(text):
        raise TypeError(f"{what} holds a lone surrogate: it is not valid Unicode text")
    return text


EMPTY_MAP = "{}"


def dump_metadata(metadata: object) -> str:
    """Return lock metadata as compact JSON text of a ``dict``; ``None`` becomes ``"{}"``.

    Raises ``TypeError`` when it is not a JSON-serializable dict with ``str`` keys."""
    if metadata is None:
        return EMPTY_MAP
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        metadata = dict(metadata)
    return dump_map(metadata, "metadata")


#: The longest list key: an identifier, or a thread's history (``history:`` + its id).
MAX_LIST_KEY_LENGTH = 320
#: The list key of a thread's history.
HISTORY_PREFIX = "history:"


def history_key(thread_id: str) -> str:
    """The list key of ``thread_id``'s history."""
    return HISTORY_PREFIX + thread_id


def check_list_key(value: object) -> str:
    """Return a list key: a ``str`` of 1–320 characters, valid text without NUL."""
    if not isinstance(value, str):
        raise TypeError(f"list key must be a str, not {type(value).__name__}")
    if not 0 < len(value) <= MAX_LIST_KEY_LENGTH:
        raise ValueError(f"list key must be 1-{MAX_LIST_KEY_LENGTH} characters, got {len(value)}")
    if not _storable_text(value):
        raise ValueError(f"list key must be valid text without NUL characters, got {value!r}")
    return value


def _bad_path(value: object, path: str) -> str | None:
    """The JSON path of the first part of ``value`` no backend can store, else None."""
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        return None if value == value and value not in (float("inf"), float("-inf")) else path
    if isinstance(value, str):
        return None if _storable_text(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or not _storable_text(k):
                return f"{path}[{k!r}] (key)"
            found = _bad_path(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _bad_path(v, f"{path}[{i}]")
            if found:
                return found
        return None
    return path


def _keys_are_text(value: object) -> bool:
    """Whether every object key inside ``value`` is a ``str``; JSON would coerce others."""
    items: Iterable[object] = value  # type: ignore[assignment]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return False
        items = value.values()
    return all(_keys_are_text(v) for v in items if isinstance(v, (dict, list, tuple)))


def dump_value(value: object, what: str) -> str:
    """Return the compact JSON text of any JSON value.

    It raises ``TypeError`` for the first part that is not JSON, or that not every backend
    can store. NaN, infinities, NUL and lone surrogates are such parts. The error names
    ``what`` and the part's path."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    try:
        text = _dumps(value)
    except (TypeError, ValueError):
        text = ""
    except RecursionError:
        raise TypeError(
            f"{what} cannot be stored as JSON: it is circular, or nested too deeply"
        ) from None
    if (
        text
        and "\\u0000" not in text
        and (text.isascii() or _storable_text(text))
        and (kind is str or not isinstance(value, (dict, list, tuple)) or _keys_are_text(value))
    ):
        return text
    bad = _bad_path(value, "$")
    if bad is None and text:  # it only looked suspicious: an escaped backslash, "u0000"
        return text
    raise TypeError(
        f"{what} cannot be stored as JSON: {bad or '$'} is not JSON text every backend keeps"
    )


def check_scalar(value: object, what: str) -> str:
    """Return the JSON text of a JSON scalar: ``None``, bool, int, float or str."""
    if not (value is None or isinstance(value, (bool, int, float, str))):
        raise TypeError(
            f"{what} must be a JSON scalar (None, bool, int, float, str), not "
            f"{type(value).__name__}"
        )
    return dump_value(value, what)


def check_number(value: object, what: str) -> int | float:
    """Return ``value`` when it is a finite ``int`` or ``float``; ``bool`` is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be an int or a float, not {type(value).__name__}")
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value
