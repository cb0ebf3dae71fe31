"""The bot: what it does with one delivery, through chatstate's public API.

One delivery is one :meth:`~chatstate.StateAdapter.handle_message` cycle with the ``queue``
strategy, keyed by ``(platform, message_id)`` so that a redelivered message is dropped:

* **duplicate** — already handled (or queued): nothing happens, the platform gets a 200;
* **acquired** — this delivery holds the thread: the message is applied to the thread's
  state and answered (if the bot follows the thread), the state is written and the lock
  released in one step; then the messages that **queued** behind it meanwhile are
  processed, in arrival order (:func:`drain`);
* **queued** — another delivery holds the thread: the message waits in the lock's pending
  list (a 202); the holder processes it after its own.

The bot follows (subscribes to) a thread when mentioned as ``@bot``, answers every message
in a followed thread, and stops on ``@bot stop``. Per thread it keeps ``turns``,
``participants``, ``last_message``, ``processed`` (message ids in processing order) and
``replies``; per channel ``messages`` and ``active_threads``.

**Draining in order, exactly once.** ``release_lock`` hands the pending entries to exactly
one caller, so nothing is processed twice. To keep their order, the drainer takes the thread
again with the ``queue`` strategy, carrying the batch in the lock's metadata: acquired → it
processes the batch (one atomic state update) and releases, picking up anything that queued
meanwhile; queued → a newer delivery took the thread first, and the batch now waits, as one
entry, behind it, for that holder to drain in the same way. (That newer delivery itself is
then answered before the batch: the one reordering a lock without hand-off allows.)

Every function has an async twin (``a…``) built on the adapter's ``a…`` methods, for the
ASGI view; the decisions themselves are the pure functions shared by both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chatstate import LockResult, PendingEntry, StateAdapter, Strategy
from example_project.bot.conf import setting
from example_project.bot.message import Message, channel_key, thread_key

#: How many processed ids and replies a thread's state keeps (the newest).
HISTORY = 100
_HOST = socket.gethostname()[:64]
logger = logging.getLogger(__name__)


class ThreadBusy(Exception):
    """The thread could not be taken or queued (the platform should retry later)."""


@dataclass
class Delivery:
    """What became of one delivery; the webhook's JSON response.

    ``status`` is ``handled``, ``queued`` or ``duplicate``; ``replies`` the bot's answers
    produced by this request (its own message's and those of the messages it ``drained``);
    ``handed_over`` the queued messages it passed on to a newer holder of the thread.
    """

    status: str
    thread: str
    replies: list[dict[str, str]] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    handed_over: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "thread": self.thread,
            "replies": self.replies,
            "drained": self.drained,
            "handed_over": self.handed_over,
        }


# -- the decisions (pure) ----------------------------------------------------------------


def owner_for(message: Message) -> str:
    """A lock owner unique to this delivery: ``host:pid:message_id`` (at most 201 chars)."""
    return f"{_HOST}:{os.getpid()}:{message['message_id']}"


def _command(text: str, mention: str) -> str | None:
    """The words after ``mention`` (lowercase), or None when the bot is not mentioned."""
    at = text.lower().find(mention)
    return None if at < 0 else text[at + len(mention):].strip().lower()


def respond(state: dict[str, Any], message: Message, subscribed: bool) -> tuple[bool, str | None]:
    """Apply ``message`` to the thread's ``state`` (in place) and decide the bot's answer.

    Returns ``(subscribed_after, reply_text_or_None)``. ``state`` gains the message in its
    turn count, participants, last message and processed ids, and the reply in ``replies``.
    """
    user, mid = message["user"], message["message_id"]
    state["turns"] = int(state.get("turns", 0)) + 1
    state["participants"] = sorted({*state.get("participants", []), user})
    state["last_message"] = {"message_id": mid, "user": user, "text": message["text"],
                             "ts": message["ts"]}
    state["processed"] = [*state.get("processed", []), mid][-HISTORY:]
    command = _command(message["text"], "@" + str(setting("BOT_NAME")).lower())
    reply: str | None = None
    if command is not None and command.startswith("stop"):
        if subscribed:
            reply = f"Okay {user}, I'll stop following this thread. Mention me to bring me back."
        subscribed = False
    elif command is not None and not subscribed:
        subscribed = True
        reply = f"Hi {user}! I'm following this thread now and will answer every message in it."
    elif subscribed:
        people = len(state["participants"])
        reply = (f"Noted, {user}: message {state['turns']} in this thread, "
                 f"{people} {'person' if people == 1 else 'people'} talking.")
    if reply is not None:
        state["replies"] = [*state.get("replies", []), {"in_reply_to": mid, "text": reply}][
            -HISTORY:
        ]
    return subscribed, reply


def _respond_all(
    state: dict[str, Any], messages: list[Message], subscribed: bool
) -> tuple[bool, list[dict[str, str]]]:
    """:func:`respond` to each of ``messages`` in order; returns (subscribed, replies)."""
    replies = []
    for message in messages:
        subscribed, text = respond(state, message, subscribed)
        if text is not None:
            replies.append({"in_reply_to": message["message_id"], "text": text})
    return subscribed, replies


def _channel_update(
    thread: str, count: int, subscribed: bool
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The channel-state update after ``count`` messages of ``thread`` were processed."""

    def update(state: dict[str, Any]) -> dict[str, Any]:
        active = set(state.get("active_threads", []))
        (active.add if subscribed else active.discard)(thread)
        return {**state, "messages": int(state.get("messages", 0)) + count,
                "active_threads": sorted(active)}

    return update


def _unpack(pending: Iterable[PendingEntry]) -> list[Message]:
    """The messages in pending entries, in order: a queued delivery's metadata is its
    message; a drainer's hand-off entry carries a whole batch under ``handover``."""
    messages: list[Message] = []
    for entry in pending:
        if "handover" in entry.metadata:
            messages.extend(entry.metadata["handover"])
        else:
            messages.append(entry.metadata)  # type: ignore[arg-type]
    return messages


def _log_failed_drain(thread: str, drainer: str, batch: list[Message]) -> None:
    """Say what a failed drain leaves behind.

    The drainer keeps the thread: its lock (whose metadata holds the batch, visible in the
    admin) expires after its lease, and messages queued behind it stay pending for the next
    holder. The batch is not retried: an operator sees it in the lock's metadata.
    """
    logger.exception(
        "Draining %s in thread %s failed; lock owner %s keeps the thread until its lease "
        "expires, later messages stay queued.", ", ".join(_ids(batch)), thread, drainer,
    )


def _thread_of(pending: list[PendingEntry]) -> str:
    batch = _unpack(pending)
    return thread_key(batch[0]) if batch else ""


def _ids(messages: Iterable[Message]) -> list[str]:
    return [m["message_id"] for m in messages]


def _think(replies: list[dict[str, str]]) -> float:
    """Seconds to spend composing ``replies`` (``BOT_THINK_SECONDS`` each)."""
    return float(setting("BOT_THINK_SECONDS")) * len(replies)


def _batch_update(
    messages: list[Message], subscribed: bool, out: dict[str, Any]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A thread-state update applying ``messages``; it leaves its results in ``out``.

    The update may be retried by the adapter, so it recomputes ``out`` from scratch each run.
    """

    def update(state: dict[str, Any]) -> dict[str, Any]:
        out["subscribed"], out["replies"] = _respond_all(state, messages, subscribed)
        return state

    return update


# -- sync ----------------------------------------------------------------------------------


def handle(store: StateAdapter, message: Message) -> Delivery:
    """Handle one delivery (see the module docstring); raises :class:`ThreadBusy`."""
    thread = thread_key(message)
    owner = owner_for(message)
    with store.handle_message(
        (message["platform"], message["message_id"]), thread_id=thread, owner=owner,
        strategy=Strategy.QUEUE, metadata=dict(message),
    ) as msg:
        if msg.duplicate:
            return Delivery("duplicate", thread)
        if msg.result is LockResult.QUEUED:
            return Delivery("queued", thread)
        if not msg.acquired:
            raise ThreadBusy(f"thread {thread} is {msg.result}")  # withdraws the claim
        subscribed, replies = _respond_all(msg.state, [message], msg.subscribed)
        time.sleep(_think(replies))
        if subscribed != msg.subscribed:
            (store.subscribe if subscribed else store.unsubscribe)(thread)
    store.update_channel_state(channel_key(message), _channel_update(thread, 1, subscribed))
    return drain(store, msg.pending, owner, Delivery("handled", thread, replies))


def drain(
    store: StateAdapter, pending: list[PendingEntry], owner: str,
    into: Delivery | None = None,
) -> Delivery:
    """Process ``pending`` — the entries ``release_lock`` returned for one thread — in order.

    Then whatever queued meanwhile, until the thread is quiet or a newer holder took the
    batch (see the module docstring). ``owner`` names the drainer (suffixed per round).
    Records what it did in ``into`` (a new ``handled`` :class:`Delivery` if None): ``drained``
    ids and their ``replies``, or the ids ``handed_over``.
    """
    delivery = into or Delivery("handled", _thread_of(pending))
    rounds = 0
    while pending:
        batch = _unpack(pending)
        thread = thread_key(batch[0])
        rounds += 1
        drainer = f"{owner}:drain{rounds}"
        taken = store.lock(thread, drainer, Strategy.QUEUE, {"handover": list(batch)})
        if taken is not LockResult.ACQUIRED:
            delivery.handed_over += _ids(batch)
            break
        try:
            subscribed = store.is_subscribed(thread)
            out: dict[str, Any] = {}
            store.update_thread_state(thread, _batch_update(batch, subscribed, out))
            time.sleep(_think(out["replies"]))
            if out["subscribed"] != subscribed:
                (store.subscribe if out["subscribed"] else store.unsubscribe)(thread)
            store.update_channel_state(
                channel_key(batch[0]), _channel_update(thread, len(batch), out["subscribed"])
            )
        except Exception:
            _log_failed_drain(thread, drainer, batch)
            raise
        pending = store.release_lock(thread, drainer)
        delivery.drained += _ids(batch)
        delivery.replies += out["replies"]
    return delivery


# -- async (the same steps, with the adapter's a… twins) ---------------------------------


async def ahandle(store: StateAdapter, message: Message) -> Delivery:
    """The async twin of :func:`handle`, for the ASGI view."""
    thread = thread_key(message)
    owner = owner_for(message)
    async with store.ahandle_message(
        (message["platform"], message["message_id"]), thread_id=thread, owner=owner,
        strategy=Strategy.QUEUE, metadata=dict(message),
    ) as msg:
        if msg.duplicate:
            return Delivery("duplicate", thread)
        if msg.result is LockResult.QUEUED:
            return Delivery("queued", thread)
        if not msg.acquired:
            raise ThreadBusy(f"thread {thread} is {msg.result}")
        subscribed, replies = _respond_all(msg.state, [message], msg.subscribed)
        await asyncio.sleep(_think(replies))
        if subscribed != msg.subscribed:
            await (store.asubscribe if subscribed else store.aunsubscribe)(thread)
    await store.aupdate_channel_state(
        channel_key(message), _channel_update(thread, 1, subscribed)
    )
    return await adrain(store, msg.pending, owner, Delivery("handled", thread, replies))


async def adrain(
    store: StateAdapter, pending: list[PendingEntry], owner: str,
    into: Delivery | None = None,
) -> Delivery:
    """The async twin of :func:`drain`."""
    delivery = into or Delivery("handled", _thread_of(pending))
    rounds = 0
    while pending:
        batch = _unpack(pending)
        thread = thread_key(batch[0])
        rounds += 1
        drainer = f"{owner}:drain{rounds}"
        taken = await store.alock(thread, drainer, Strategy.QUEUE, {"handover": list(batch)})
        if taken is not LockResult.ACQUIRED:
            delivery.handed_over += _ids(batch)
            break
        try:
            subscribed = await store.ais_subscribed(thread)
            out: dict[str, Any] = {}
            await store.aupdate_thread_state(thread, _batch_update(batch, subscribed, out))
            await asyncio.sleep(_think(out["replies"]))
            if out["subscribed"] != subscribed:
                await (store.asubscribe if out["subscribed"] else store.aunsubscribe)(thread)
            await store.aupdate_channel_state(
                channel_key(batch[0]), _channel_update(thread, len(batch), out["subscribed"])
            )
        except Exception:
            _log_failed_drain(thread, drainer, batch)
            raise
        pending = await store.arelease_lock(thread, drainer)
        delivery.drained += _ids(batch)
        delivery.replies += out["replies"]
    return delivery
