"""A chat platform's redelivery, as the fault tests need it: again until answered.

:func:`deliver` runs one message through ``handle_message`` the way a webhook view would and
redelivers it on every answer that means "try again later" — the backend was unavailable, the
lease was lost, the thread was busy, or another delivery of the message is still in progress
— until the message is handled or found done. Its effect is one entry in the thread's state
(``seen``: the ids handled there), so :func:`tally` can count, per message id, how often its
effect was applied: exactly once is the invariant.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from chatstate import BackendUnavailable, LeaseLost


class Undelivered(AssertionError):
    """A message was still not handled after every redelivery."""


def deliver(
    store: Any,
    message_id: str,
    *,
    thread_id: str,
    ttl: float,
    attempts: int = 200,
    pause: float = 0.02,
    hold: float = 0.0,
    before_commit: Callable[[], None] | None = None,
    before_enter: Callable[[], None] | None = None,
    effects: bool = False,
) -> dict[str, int]:
    """Deliver ``message_id`` until it is handled or a duplicate of a done message.

    ``before_enter`` / ``before_commit`` run before each delivery's entry and inside its
    block just before the commit (a test arms its faults there); ``hold`` seconds are spent
    in each acquired block (the handler's work). With ``effects``, the message's effect is
    also staged where a bot's goes (see :func:`_apply`). Returns what the deliveries
    met: ``{"handled": 0|1, "redeliveries": n, "unavailable": n, ...}``.
    """
    met: Counter[str] = Counter()
    channel = CHANNEL if effects else None
    for _ in range(attempts):
        owner = f"{message_id}-{uuid.uuid4().hex[:8]}"  # one owner per delivery
        try:
            if before_enter is not None:
                before_enter()
            with store.handle_message(
                ("platform", message_id), thread_id=thread_id, owner=owner, ttl=ttl,
                channel_id=channel,
            ) as msg:  # fmt: skip
                if _apply(msg, message_id, met):
                    time.sleep(hold)
                    if before_commit is not None:
                        before_commit()
            if _answered(msg, met):
                return dict(met)
        except (BackendUnavailable, LeaseLost) as exc:
            met[_AGAIN[type(exc)]] += 1
        met["redeliveries"] += 1
        time.sleep(pause)
    raise Undelivered(f"{message_id} was not handled after {attempts} deliveries: {dict(met)}")


async def adeliver(
    store: Any,
    message_id: str,
    *,
    thread_id: str,
    ttl: float,
    attempts: int = 200,
    pause: float = 0.02,
    before_commit: Callable[[], None] | None = None,
    before_enter: Callable[[], None] | None = None,
    effects: bool = False,
) -> dict[str, int]:
    """:func:`deliver` through ``ahandle_message``, on the running event loop."""
    met: Counter[str] = Counter()
    channel = CHANNEL if effects else None
    for _ in range(attempts):
        owner = f"{message_id}-{uuid.uuid4().hex[:8]}"
        try:
            if before_enter is not None:
                before_enter()
            async with store.ahandle_message(
                ("platform", message_id), thread_id=thread_id, owner=owner, ttl=ttl,
                channel_id=channel,
            ) as msg:  # fmt: skip
                if _apply(msg, message_id, met) and before_commit is not None:
                    before_commit()
            if _answered(msg, met):
                return dict(met)
        except (BackendUnavailable, LeaseLost) as exc:
            met[_AGAIN[type(exc)]] += 1
        met["redeliveries"] += 1
        await asyncio.sleep(pause)
    raise Undelivered(f"{message_id} was not handled after {attempts} deliveries: {dict(met)}")


_AGAIN = {BackendUnavailable: "unavailable", LeaseLost: "lease_lost"}


#: The channel of every thread, when deliveries stage their effects.
CHANNEL = "c"


def _apply(msg: Any, message_id: str, met: Counter[str]) -> bool:
    """In the block: the message's effect when acquired (True); a done duplicate counted.

    The effect is the id in the thread's ``seen``; with a channel (``effects``) also a
    channel counter, the thread's history and an outbox entry: one unit of work."""
    if msg.duplicate and not msg.in_progress:
        met["done"] += 1
    if msg.acquired:
        msg.state["seen"] = [*msg.state.get("seen", []), message_id]
        if msg.request.channel_id is not None:
            msg.channel.incr("messages")
            msg.history.append(message_id)
            msg.send({"mid": message_id})
    return bool(msg.acquired)


def tally_effects(store: Any, threads: Iterable[str], message_ids: Iterable[str]) -> dict[str, int]:
    """Beyond :func:`tally`: how the staged effects agree with the states' ``seen``.

    ``counter``: the channel's count; ``history_mismatches``: threads whose history is not
    exactly their ``seen`` (same ids, same order); ``outbox_doubles`` / ``outbox_lost``:
    message ids sent more than once / never."""
    seen: list[str] = []
    mismatches = 0
    for thread in threads:
        handled = store.thread_state(thread).get("seen", [])
        seen.extend(handled)
        mismatches += store.history(thread) != handled
    sent = Counter(e.payload["mid"] for e in store.outbox())
    ids = list(message_ids)
    return {
        "counter": int(store.channel_state(CHANNEL).get("messages", 0)),
        "history_mismatches": mismatches,
        "outbox_doubles": sum(1 for i in ids if sent[i] > 1),
        "outbox_lost": sum(1 for i in ids if sent[i] == 0),
    }


def _answered(msg: Any, met: Counter[str]) -> bool:
    """After the block: whether the delivery was the last one needed (handled, or done)."""
    if msg.acquired:
        met["handled"] += 1
        return True
    if msg.duplicate and not msg.in_progress:
        return True
    met["in_progress" if msg.duplicate else "busy"] += 1
    return False


def tally(seen: Iterable[str], message_ids: Iterable[str]) -> dict[str, int]:
    """``{"messages", "applied", "doubles", "lost"}`` of the effects ``seen`` in the state."""
    counts = Counter(seen)
    ids = list(message_ids)
    return {
        "messages": len(ids),
        "applied": sum(1 for i in ids if counts[i] == 1),
        "doubles": sum(1 for i in ids if counts[i] > 1),
        "lost": sum(1 for i in ids if counts[i] == 0),
    }
