"""The JSON records the Redis adapter stores, as API values; :mod:`.scripts` has the layout."""

from __future__ import annotations

import json
from typing import Any

from chatstate.calls import Handover
from chatstate.types import STRATEGIES, PendingEntry, as_epoch, as_iso

loads = json.loads
# Records are UTF-8, as Redis stores them. A string UTF-8 cannot encode, a lone surrogate, is
# refused with ``UnicodeEncodeError``, a ``ValueError``. Keys and hash fields refuse it too.
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def ttl_ms(ttl: float) -> int:
    """A lease in seconds as whole milliseconds, at least 1."""
    return max(1, round(ttl * 1000))


def iso(ms: Any, text: Any) -> str:
    """A record's time: the exact text a snapshot gave, else its milliseconds as ISO 8601."""
    return as_iso(text if isinstance(text, str) else float(ms) / 1000)


def ms(text: object, default: int) -> int:
    """A snapshot timestamp as epoch milliseconds; ``default`` when absent."""
    return default if not isinstance(text, str) else round(as_epoch(text, 0.0) * 1000)


def pending_entry(raw: Any) -> PendingEntry:
    """A pending-entry record as a :class:`PendingEntry`.

    A record queued before entries had ids has no id."""
    owner, strategy, meta, enqueued_ms, enqueued_text, *rest = loads(raw)
    return PendingEntry(
        owner,
        STRATEGIES[strategy],
        loads(meta),
        iso(enqueued_ms, enqueued_text),
        rest[0] if rest else None,
    )


def pending_entries(raws: Any) -> list[PendingEntry]:
    """:func:`pending_entry` of each record."""
    return [pending_entry(raw) for raw in raws]


def lock_dict(record: Any) -> dict[str, Any]:
    """A lock record in the snapshot's form.

    A key held by slots has strategy ``concurrent`` and its first holder as owner. It is
    held until its latest slot's lease ends. ``holders`` lists each holder as
    ``{"owner", "metadata", "acquired_at", "expires_at"}``, in the order they took their
    slots."""
    owner, strategy, meta, acquired, expires, acquired_at, expires_at, *rest = loads(record)
    found = {
        "owner": owner,
        "strategy": strategy,
        "metadata": loads(meta),
        "acquired_at": iso(acquired, acquired_at),
        "expires_at": iso(expires, expires_at),
    }
    if len(rest) > 1:
        found["holders"] = [
            {
                "owner": holder,
                "metadata": loads(holder_meta),
                "acquired_at": iso(since, since_text),
                "expires_at": iso(until, until_text),
            }
            for holder, until, since, _, holder_meta, since_text, until_text in rest[1]
        ]
    return found


def claim_dict(record: Any) -> dict[str, Any]:
    """A claim record in the snapshot's form; a snapshot's exact time text is kept."""
    owner, thread_id, expires, expires_at, *_ = loads(record)
    return {"owner": owner, "thread_id": thread_id, "expires_at": iso(expires, expires_at)}


def handover(reply: Any) -> Handover:
    """A release script's reply ``{1, '', entries, expired}`` as a :class:`Handover`."""
    return Handover(pending_entries(reply[2]), pending_entries(reply[3]))
