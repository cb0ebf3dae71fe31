"""The outbox: replies staged by ``msg.send`` are delivered after their commit.

Each entry reaches the sender at least once. It reaches it exactly once unless a dispatcher
dies between the sender's success and the entry's removal. Then the same ``key`` comes
again, so the sender must be idempotent. One thread's entries leave in commit order.
Different threads go in parallel, on any number of dispatchers."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.db import connections, transaction
from django.utils.module_loading import import_string

from chatstate import conf
from chatstate.calls import OutboxClaim
from chatstate.types import OutboxEntry

logger = logging.getLogger("chatstate.outbox")

Sender = Callable[[OutboxEntry], Any]


class OutboxHooks(Protocol):
    """The backend hooks a dispatch runs on; ``StateBackend`` documents them."""

    namespace: str

    def _do_outbox_claim(self, claim: OutboxClaim) -> list[OutboxEntry]: ...
    def _do_outbox_delivered(self, owner: str, entry_id: str) -> None: ...
    def _do_outbox_failed(
        self, owner: str, entry_id: str, delay: float, max_attempts: int
    ) -> bool: ...
    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> None: ...


def dispatcher_name() -> str:
    """A name no other dispatcher has: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def resolve_sender(sender: Sender | str | None) -> Sender:
    """``sender``, or the callable the ``OUTBOX_SENDER`` setting names."""
    if sender is None:
        sender = conf.get("OUTBOX_SENDER")
        if sender is None:
            raise ValueError(
                "no outbox sender: pass sender= or set CHATSTATE['OUTBOX_SENDER'] to the "
                "dotted path of a callable taking an OutboxEntry"
            )
    if isinstance(sender, str):
        sender = import_string(sender)
    if not callable(sender):
        raise TypeError(f"the outbox sender must be callable, not {sender!r}")
    return sender


def retry_delay(attempts: int, delays: Sequence[float]) -> float:
    """The backoff before the next try of an entry that has failed ``attempts`` times."""
    return float(delays[min(attempts, len(delays) - 1)]) if delays else 0.0


def dispatch(
    backend: OutboxHooks,
    sender: Sender,
    limit: int,
    *,
    lease: float,
    max_attempts: int,
    delays: Sequence[float],
) -> dict[str, int]:
    """Claim up to ``limit`` due entries, hand each to ``sender`` in order, settle each.

    A sender that raises leaves its entry due again after a backoff. After ``max_attempts``
    the entry is ``dead``. The later entries of its thread in this batch are left untouched."""
    owner = dispatcher_name()
    entries = backend._do_outbox_claim(OutboxClaim(owner, limit, lease))
    counts = {"sent": 0, "retried": 0, "dead": 0}
    blocked: set[str] = set()
    untouched: list[str] = []
    for entry in entries:
        if entry.thread_id in blocked:
            untouched.append(entry.id)
            continue
        try:
            sender(entry)
        except Exception as exc:
            delay = retry_delay(entry.attempts, delays)
            dead = backend._do_outbox_failed(owner, entry.id, delay, max_attempts)
            counts["dead" if dead else "retried"] += 1
            if not dead:
                blocked.add(entry.thread_id)
            logger.warning(
                "chatstate: the outbox entry %r of %r failed (attempt %d): %s%s",
                entry.key,
                entry.thread_id,
                entry.attempts + 1,
                exc,
                "; it is dead now" if dead else f"; again in {delay:g} s",
                extra={"outbox_key": entry.key, "thread_id": entry.thread_id},
            )
            continue
        backend._do_outbox_delivered(owner, entry.id)
        counts["sent"] += 1
    if untouched:
        backend._do_outbox_release(owner, untouched)
    return counts


def drain_due(
    adapter: Any, sender: Sender | str | None = None, *, limit: int = 100, seconds: float = 60.0
) -> dict[str, int]:
    """Dispatch ``adapter``'s outbox in batches of ``limit`` until done or out of time.

    It stops when a batch is not full: every entry due then was handed out. It also stops
    when ``seconds`` have passed. It returns the summed counts, plus ``"batches"`` and
    ``"more"``. ``"more"`` is 1 when it stopped on time with a full last batch."""
    totals = {"sent": 0, "retried": 0, "dead": 0, "batches": 0, "more": 0}
    deadline = time.monotonic() + seconds
    while True:
        counts = adapter.dispatch_outbox(sender, limit=limit)
        totals["batches"] += 1
        for name in ("sent", "retried", "dead"):
            totals[name] += counts[name]
        if counts["sent"] + counts["retried"] + counts["dead"] < limit:
            return totals
        if time.monotonic() >= deadline:
            totals["more"] = 1
            return totals


#: What ``OUTBOX_TASK = True`` enqueues with: the task of Django's task framework.
DJANGO_TASK = "chatstate.tasks.enqueue_dispatch"


def outbox_committed(adapter: Any) -> None:
    """Enqueue one dispatch of the namespace after a commit that wrote outbox entries.

    It enqueues only when ``OUTBOX_TASK`` asks for one. ``True`` means the Django task
    ``chatstate.tasks.dispatch_outbox``. A dotted path names a callable taking the
    namespace. The enqueue waits until the surrounding transaction commits; outside one, it
    runs at once.

    It never raises, since the commit is done. An enqueue that fails, with a broker down, is
    logged. Its entries wait in the outbox for the next dispatch."""
    task = conf.get("OUTBOX_TASK")
    if not task:
        return
    namespace = adapter.namespace

    def enqueue() -> None:
        try:
            target = import_string(DJANGO_TASK if task is True else task)
            target(namespace)
        except Exception as exc:
            logger.warning(
                "chatstate: the outbox dispatch of %r could not be enqueued (%s: %s); its "
                "entries wait for the next dispatch",
                namespace,
                type(exc).__name__,
                exc,
                extra={"namespace": namespace},
            )

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    using = getattr(adapter, "using", None)
    if loop is not None:
        # An async cycle: no transaction of this thread holds it, and a task framework's
        # enqueue may use the ORM, which an event loop must not run.
        loop.run_in_executor(None, _enqueue_in_thread, enqueue)
    elif using is None:
        enqueue()
    else:
        transaction.on_commit(enqueue, using=using)


def _enqueue_in_thread(enqueue: Callable[[], None]) -> None:
    try:
        enqueue()
    finally:
        connections.close_all()  # this executor thread's own connections
