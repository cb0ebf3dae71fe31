"""Lease keep-alive for ``handle_message(keepalive=True)``.

Sync cycles share one daemon thread per process, the :class:`Renewer`. It renews each
watched cycle's lease every third of its ttl, through the cycle's adapter, on its own
database connection. A cycle whose renewal finds the lease gone is marked ``lease_lost``.
Async cycles each get a task on their event loop, :func:`keep_alive`. A renewal the backend
cannot answer, with ``BackendUnavailable`` or any other error, is tried again sooner. It
does not count as a lost lease, and it does not stop the renewals of other cycles."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from typing import Any, Protocol

from chatstate import signals
from chatstate.calls import CycleRequest
from chatstate.types import ChatStateError

#: A failed renewal (backend unavailable) is tried again after this share of the ttl.
RETRY_SHARE = 0.1

logger = logging.getLogger("chatstate")


class Watched(Protocol):
    """What the renewer needs of a cycle."""

    request: CycleRequest
    lease_lost: bool

    @property
    def backend(self) -> Any: ...


def _failed(request: CycleRequest, exc: Exception) -> None:
    """Log a renewal that failed other than by the backend being unavailable."""
    if not isinstance(exc, ChatStateError):
        logger.warning(
            "chatstate: renewing the lease of %r failed; trying again",
            request.thread_id,
            exc_info=exc,
        )


def _lost(cycle: Watched) -> None:
    cycle.lease_lost = True
    signals.lost(cycle.backend, cycle.request.thread_id, cycle.request.owner)


class Renewer:
    """The process's renewal thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._due: list[tuple[float, int, Watched]] = []
        self._watched: set[int] = set()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, cycle: Watched) -> None:
        """Renew ``cycle``'s lease every third of its ttl until :meth:`unwatch`."""
        with self._lock:
            self._watched.add(id(cycle))
            self._push(cycle, cycle.request.ttl / 3)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="chatstate-keepalive", daemon=True
                )
                self._thread.start()

    def unwatch(self, cycle: Watched) -> None:
        """Stop renewing ``cycle``; a renewal under way finishes and is ignored."""
        with self._lock:
            self._watched.discard(id(cycle))
            self._wake.notify()

    def _push(self, cycle: Watched, delay: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), cycle))
        self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    while self._due and id(self._due[0][2]) not in self._watched:
                        heapq.heappop(self._due)  # finished meanwhile
                    if not self._due:
                        _close_connections()  # idle: hold no database connection
                        self._wake.wait(timeout=60)
                        if not self._due:
                            self._thread = None
                            return
                        continue
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._wake.wait(timeout=wait)
                _, _, cycle = heapq.heappop(self._due)
            self._renew(cycle)

    def _renew(self, cycle: Watched) -> None:
        request = cycle.request
        failure: Exception | None = None
        try:
            held = cycle.backend._do_cycle_renew(request)
        except Exception as exc:  # tried again sooner; the thread goes on for the others
            failure, held, delay = exc, True, request.ttl * RETRY_SHARE
        else:
            delay = request.ttl / 3
        with self._lock:
            if id(cycle) not in self._watched:
                return
            if failure is not None:
                _failed(request, failure)
            if held:
                self._push(cycle, delay)
                return
            self._watched.discard(id(cycle))
        _lost(cycle)


def _close_connections() -> None:
    """Close this thread's database connections, which a database adapter opened."""
    from django.db import connections

    connections.close_all()


renewer = Renewer()


async def keep_alive(cycle: Watched) -> None:
    """Renew an async cycle's lease every third of its ttl, until cancelled or lost."""
    request = cycle.request
    delay = request.ttl / 3
    while True:
        await asyncio.sleep(delay)
        try:
            held = await cycle.backend._do_acycle_renew(request)
        except Exception as exc:  # tried again sooner
            _failed(request, exc)
            delay = request.ttl * RETRY_SHARE
            continue
        if not held:
            _lost(cycle)
            return
        delay = request.ttl / 3
