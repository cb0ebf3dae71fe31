"""Argument checks shared by every adapter: bad input raises before anything changes."""

from __future__ import annotations

import json
from collections.abc import Mapping

from chatstate.adapters.types import STRATEGIES, Strategy

MAX_ID_LENGTH = 255
OVERFLOWS = ("drop_oldest", "drop_newest")

_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def check_id(value: object, what: str = "identifier") -> str:
    """Return ``value`` when it is a ``str`` of 1–255 characters.

    Raises ``TypeError`` for a non-``str`` and ``ValueError`` for an empty or longer one.
    """
    if type(value) is not str and not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise ValueError(f"{what} must be 1-{MAX_ID_LENGTH} characters, got {len(value)}")
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
    """Return ``limit`` when it is an ``int`` ≥ 1 (``bool`` is refused), else ``ValueError``."""
    if type(limit) is not int or limit < 1:
        raise ValueError(f"{what} must be an int >= 1, got {limit!r}")
    return limit


def check_ttl(ttl: object) -> float:
    """Return ``ttl`` (seconds) when it is a positive real number, else ``ValueError``."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"ttl must be a number of seconds > 0, got {ttl!r}")
    if ttl == float("inf"):
        raise ValueError("ttl must be finite")
    return float(ttl)


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

    Raises ``TypeError`` when ``value`` is not such a dict or is not JSON-serializable.
    """
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, not {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise TypeError(f"{what} keys must be str, got {type(k).__name__} {k!r}")
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None


EMPTY_MAP = "{}"


def dump_metadata(metadata: object) -> str:
    """Return lock metadata as compact JSON text of a ``dict`` (``None`` becomes ``"{}"``).

    Raises ``TypeError`` when it is not a JSON-serializable dict with ``str`` keys.
    """
    if metadata is None:
        return EMPTY_MAP
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        metadata = dict(metadata)
    return dump_map(metadata, "metadata")
