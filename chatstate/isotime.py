"""ISO 8601 timestamps, read the same way on every Python version.

``datetime.fromisoformat`` accepts different texts on different Pythons. Python 3.10 refuses
one to five fraction digits. Python 3.11 accepts forms 3.10 refuses. So snapshot timestamps
are read by this one grammar instead:

    YYYY-MM-DD ( "T" | "t" | " " ) hh:mm[:ss[( "." | "," )f{1,9}]] [ "Z" | "z" | ±hh[[:]mm] ]

Only ASCII digits count. Fractions past microseconds are cut, not rounded. Pure Python."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)


def parse_iso8601(text: str) -> datetime:
    """The moment ``text`` names in the grammar above, aware; without an offset, UTC.

    It raises ``ValueError`` for any other text. An impossible date or time raises it too,
    like month 13, 24:00 or a leap second. So does an offset of a day or more. ``TypeError``
    for a non-``str``."""
    if not isinstance(text, str):
        raise TypeError(f"expected an ISO 8601 str, not {type(text).__name__}")
    match = _ISO.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {text[:60]!r}")
    return _moment(match, text)


def is_utc_timestamp(value: object) -> bool:
    """Whether ``value`` follows the snapshot timestamp rule.

    It must be a ``str`` in the grammar above that names its offset. The offset must be
    zero, like ``Z``, ``+00:00`` or ``-0000``."""
    if not isinstance(value, str):
        return False
    match = _ISO.fullmatch(value)
    if match is None or (match[8] is None and match[9] is None):
        return False
    try:
        return _moment(match, value).utcoffset() == timedelta(0)
    except ValueError:
        return False


def _moment(match: re.Match[str], text: str) -> datetime:
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    offset = timedelta(0)
    if sign is not None:
        hours, minutes = int(off_h), int(off_m or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"not a UTC offset: {text[:60]!r}")
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
    micro = int((fraction or "").ljust(6, "0")[:6])
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second or 0),
        micro,
        tzinfo=timezone(offset) if offset else timezone.utc,
    )
