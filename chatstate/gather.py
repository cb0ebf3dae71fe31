"""``msg.gather()``: a burst of messages handled as one, the Chat SDK's ``burst``.

The first message of a burst holds its thread, with ``strategy="queue"``. ``gather`` waits
until no new message has queued behind it for ``window`` seconds. It stops waiting once
``max_wait`` has passed since the call. It keeps the lease alive meanwhile. Then it hands
out every message queued meanwhile, oldest first. They are done at the cycle's commit, with
its state and staged effects. If the block raises, they stay queued for the next holder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from chatstate.calls import Handover
from chatstate.types import ChatStateError, PendingEntry
from chatstate.validation import check_seconds

#: Bounds of the interval at which ``gather`` looks at the queue.
MIN_POLL, MAX_POLL = 0.01, 0.25


class Gathering:
    """One ``gather`` call's clock: when it began, when the queue last grew."""

    def __init__(self, window: object, max_wait: object) -> None:
        self.window = check_seconds(window, "window")
        self.max_wait = None if max_wait is None else check_seconds(max_wait, "max_wait")
        self.began = self.last_arrival = time.monotonic()
        self.poll = min(max(self.window / 4, MIN_POLL), MAX_POLL)
        self.seen: set[str | None] | None = None

    def looked(self, entries: list[PendingEntry]) -> float:
        """Note what the queue holds now; return the seconds to wait before the next look.

        0 means done."""
        now = time.monotonic()
        ids = {e.id for e in entries}
        if self.seen is not None and not ids <= self.seen:
            self.last_arrival = now  # a new message restarts the window
        self.seen = ids
        left = self.window - (now - self.last_arrival)
        if self.max_wait is not None:
            left = min(left, self.max_wait - (now - self.began))
        return 0.0 if left <= 0 else min(left, self.poll)


def check_gather(request: Any, phase: str) -> None:
    """``ChatStateError`` unless the cycle holds its thread's lock, not a slot."""
    if phase not in ("held", "draining") or not request.locks:
        raise ChatStateError(
            "msg.gather() needs a cycle that holds its thread's lock (strategy queue, "
            "debounce or reject, acquired)"
        )


def gather(
    look: Callable[[], Handover], gathering: Gathering, handed: Callable[[Handover], Any]
) -> list[PendingEntry]:
    """Look at the queue until it is quiet; the entries queued, oldest first."""
    while True:
        handover = look()
        handed(handover)
        wait = gathering.looked(handover.entries)
        if not wait:
            return handover.entries
        time.sleep(wait)


async def agather(
    look: Callable[[], Awaitable[Handover]],
    gathering: Gathering,
    handed: Callable[[Handover], Any],
) -> list[PendingEntry]:
    """:func:`gather` on the event loop."""
    while True:
        handover = await look()
        handed(handover)
        wait = gathering.looked(handover.entries)
        if not wait:
            return handover.entries
        await asyncio.sleep(wait)
