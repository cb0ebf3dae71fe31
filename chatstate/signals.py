"""Signals of what real traffic does to a bot's state, each also logged on ``chatstate``.

Every signal is sent with ``sender``, the adapter's class, and ``adapter``, the adapter. It
also carries the ids named below. Each is logged on the ``chatstate`` logger, with the ids
in the record's ``extra``. The level is INFO, or WARNING for a lost lease and for dropped
entries. With no receivers and the logger quiet, sending costs a few attribute reads.

- ``message_duplicate``: a delivery was found a duplicate. It carries ``dedupe_key``,
  ``thread_id`` and ``in_progress``. ``in_progress`` is true when another delivery is
  handling it right now.
- ``lock_contended``: a lock was held, and the call was refused, queued, debounced or
  dropped. It carries ``key``, ``owner`` and ``result``, the ``LockResult``.
- ``pending_dropped``: pending entries were dropped. It carries ``key``, ``entries`` and
  ``why``: ``"overflow"``, ``"debounce"`` or ``"expired"``.
- ``lease_lost``: a cycle's lease went to another holder. It carries ``key`` and ``owner``.
- ``lease_taken_over``: a lock whose holder's lease had run out was acquired. It carries
  ``key``, ``owner`` and ``previous``. ``owner`` is the new holder, ``previous`` the expired
  one.
- ``claim_withdrawn``: a failed cycle withdrew its message's claim, so its redelivery is
  handled. It carries ``dedupe_key``, ``thread_id`` and ``owner``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.dispatch import Signal

from chatstate.types import DedupeKey, LockResult, PendingEntry

logger = logging.getLogger("chatstate")

message_duplicate = Signal()
lock_contended = Signal()
pending_dropped = Signal()
lease_lost = Signal()
lease_taken_over = Signal()
claim_withdrawn = Signal()


def _send(
    signal: Signal, adapter: Any, level: int, message: str, args: tuple[Any, ...], **ids: Any
) -> None:
    if signal.receivers:
        signal.send(sender=type(adapter), adapter=adapter, **ids)
    if logger.isEnabledFor(level):
        logger.log(level, message, *args, extra=ids)


def duplicate(adapter: Any, dedupe_key: DedupeKey, thread_id: str, in_progress: bool) -> None:
    """Report a delivery found a duplicate."""
    _send(
        message_duplicate,
        adapter,
        logging.INFO,
        "chatstate: %r on %r is a duplicate%s",
        (dedupe_key, thread_id, " (in progress)" if in_progress else ""),
        dedupe_key=dedupe_key,
        thread_id=thread_id,
        in_progress=in_progress,
    )


def contended(adapter: Any, key: str, owner: str, result: LockResult) -> None:
    """Report a lock found held."""
    _send(
        lock_contended,
        adapter,
        logging.INFO,
        "chatstate: lock %r is held: %r %s",
        (key, owner, result.value),
        key=key,
        owner=owner,
        result=result,
    )


def dropped(adapter: Any, key: str, entries: Sequence[PendingEntry], why: str) -> None:
    """Report pending entries dropped; ``why`` is overflow, debounce or expired."""
    if entries:
        _send(
            pending_dropped,
            adapter,
            logging.WARNING,
            "chatstate: lock %r dropped %d pending entries (%s)",
            (key, len(entries), why),
            key=key,
            entries=list(entries),
            why=why,
        )


def lost(adapter: Any, key: str, owner: str) -> None:
    """Report a lease lost to another holder."""
    _send(
        lease_lost,
        adapter,
        logging.WARNING,
        "chatstate: %r lost its lease on %r",
        (owner, key),
        key=key,
        owner=owner,
    )


def taken_over(adapter: Any, key: str, owner: str, previous: str | None) -> None:
    """Report an expired holder's lock acquired."""
    if previous is not None:
        _send(
            lease_taken_over,
            adapter,
            logging.INFO,
            "chatstate: lock %r taken over by %r from %r, whose lease ran out",
            (key, owner, previous),
            key=key,
            owner=owner,
            previous=previous,
        )


def withdrawn(adapter: Any, dedupe_key: DedupeKey, thread_id: str, owner: str) -> None:
    """Report a claim withdrawn by a failed cycle."""
    _send(
        claim_withdrawn,
        adapter,
        logging.INFO,
        "chatstate: the claim of %r on %r by %r was withdrawn",
        (dedupe_key, thread_id, owner),
        dedupe_key=dedupe_key,
        thread_id=thread_id,
        owner=owner,
    )
