"""The bot: what it does with one delivery, through chatstate's public API.

A delivery is one ``handle_message`` cycle, ``queue`` strategy, keyed by ``(platform,
message_id)``. A **duplicate** is dropped (a 200) — unless its first delivery is still being
handled and may yet fail: :class:`RetryLater` (a 503). A delivery that **acquires** the
thread answers its own message, then those queued behind it in the order they reached the
lock, under the lock (``msg.drain()``: each step writes the thread's state, the last also
releases the lock, so whatever arrives meanwhile queues and is answered in its turn). One
that finds the thread busy is **queued** (a 202) for the holder to answer; the queue full,
:class:`RetryLater`. If answering a queued message fails, it stays first in the queue (those
before it written) for the next delivery, which answers its own message first.

The bot follows (subscribes to) a thread when mentioned as ``@bot``, answers every message in
a followed thread, stops on ``@bot stop``, and keeps per thread ``turns``, ``participants``,
``last_message``, ``processed`` (ids in processing order) and ``replies``; per channel
``messages`` and ``active_threads`` (updated atomically: a channel's threads run at once).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chatstate import LockResult, StateAdapter, Strategy
from chatstate.cycle import MessageCycle
from example_project.bot.conf import setting
from example_project.bot.message import Message, channel_key, thread_key

HISTORY = 100  # how many processed ids and replies a thread's state keeps (the newest)
_HOST = socket.gethostname()[:64]
# The lease is renewed while a model thinks; a full queue refuses the newcomer (retried).
CYCLE: dict[str, Any] = {"strategy": Strategy.QUEUE, "keepalive": True, "overflow": "drop_newest"}


class RetryLater(Exception):
    """The platform should deliver the message again later (a 503 with ``Retry-After``)."""


@dataclass
class Delivery:
    """The webhook's JSON answer; ``status`` is ``handled``, ``queued`` or ``duplicate``."""

    status: str
    thread: str
    replies: list[dict[str, str]] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)


def respond(state: dict[str, Any], message: Message, subscribed: bool) -> tuple[bool, str | None]:
    """Apply ``message`` to ``state`` (in place); ``(subscribed_after, reply or None)``."""
    user, mid, text = message["user"], message["message_id"], message["text"]
    state["turns"] = int(state.get("turns", 0)) + 1
    state["participants"] = sorted({*state.get("participants", []), user})
    state["last_message"] = {"message_id": mid, "user": user, "text": text, "ts": message["ts"]}
    state["processed"] = [*state.get("processed", []), mid][-HISTORY:]
    at = text.lower().find(mention := "@" + str(setting("BOT_NAME")).lower())
    command = None if at < 0 else text[at + len(mention) :].strip().lower()
    reply: str | None = None
    if command is not None and command.startswith("stop"):
        reply = f"Okay {user}, I'll stop following this thread. Mention me to bring me back."
        reply, subscribed = (reply if subscribed else None), False
    elif command is not None and not subscribed:
        subscribed = True
        reply = f"Hi {user}! I'm following this thread now and will answer every message in it."
    elif subscribed:
        people = len(state["participants"])
        talking = f"{people} {'person' if people == 1 else 'people'} talking"
        reply = f"Noted, {user}: message {state['turns']} in this thread, {talking}."
    if reply is not None:
        said = {"in_reply_to": mid, "text": reply}
        state["replies"] = [*state.get("replies", []), said][-HISTORY:]
    return subscribed, reply


def think(message: Message, reply: str | None) -> None:
    """Compose ``reply`` (``BOT_THINK_SECONDS``, holding the thread): a stand-in for a model."""
    time.sleep(float(setting("BOT_THINK_SECONDS")) if reply else 0)


async def athink(message: Message, reply: str | None) -> None:
    """The async twin of :func:`think`."""
    await asyncio.sleep(float(setting("BOT_THINK_SECONDS")) if reply else 0)


class Turns:
    """One delivery's bookkeeping: its cycle's arguments, and what it answered so far."""

    subscribed = was_subscribed = False  # the thread's subscription, after / before a message

    def __init__(self, message: Message) -> None:
        self.message, self.thread = message, thread_key(message)
        self.channel, self.delivery = channel_key(message), Delivery("handled", self.thread)
        mid = message["message_id"]  # the owner is unique to this delivery (≤ 210 chars)
        owner = f"{_HOST}:{os.getpid()}:{mid}:{uuid.uuid4().hex[:8]}"
        ids = {"dedupe_key": (message["platform"], mid), "thread_id": self.thread}
        self.cycle = {**CYCLE, **ids, "owner": owner, "metadata": dict(message)}

    def entered(self, msg: MessageCycle) -> bool:
        """Whether to answer (acquired); else the answer is set, or raises RetryLater."""
        queued = msg.result is LockResult.QUEUED
        if msg.in_progress or not (msg.duplicate or msg.acquired or queued):
            why = "is being handled now" if msg.in_progress else "finds the thread's queue full"
            raise RetryLater(f"message {self.message['message_id']} {why}")
        if not msg.acquired:
            self.delivery.status = "queued" if queued else "duplicate"
            return False
        self.subscribed = self.was_subscribed = msg.subscribed
        return True

    def respond(self, msg: MessageCycle, message: Message) -> str | None:
        """Apply ``message`` to ``msg.state``; its reply, recorded in the delivery."""
        self.was_subscribed = self.subscribed
        self.subscribed, reply = respond(msg.state, message, self.subscribed)
        if message is not self.message:
            self.delivery.drained.append(message["message_id"])
        if reply is not None:
            self.delivery.replies.append({"in_reply_to": message["message_id"], "text": reply})
        return reply

    def channel_update(self, state: dict[str, Any]) -> dict[str, Any]:
        """The channel's state after one more message of this thread."""
        active = set(state.get("active_threads", []))
        (active.add if self.subscribed else active.discard)(self.thread)
        messages = int(state.get("messages", 0)) + 1
        return {**state, "messages": messages, "active_threads": sorted(active)}


def handle(store: StateAdapter, message: Message) -> Delivery:
    """Handle one delivery (see the module docstring); raises :class:`RetryLater`."""
    turns = Turns(message)
    with store.handle_message(**turns.cycle) as msg:
        if turns.entered(msg):
            _answer(store, turns, msg, message)
            for entry in msg.drain():
                _answer(store, turns, msg, entry.metadata)  # type: ignore[arg-type]
    return turns.delivery


def _answer(store: StateAdapter, turns: Turns, msg: MessageCycle, message: Message) -> None:
    think(message, turns.respond(msg, message))
    if turns.subscribed != turns.was_subscribed:
        (store.subscribe if turns.subscribed else store.unsubscribe)(turns.thread)
    store.update_channel_state(turns.channel, turns.channel_update)


async def ahandle(store: StateAdapter, message: Message) -> Delivery:
    """The async twin of :func:`handle`, for the ASGI view (the same steps, awaited)."""
    turns = Turns(message)
    async with store.ahandle_message(**turns.cycle) as msg:
        if turns.entered(msg):
            await _aanswer(store, turns, msg, message)
            async for entry in msg.adrain():
                await _aanswer(store, turns, msg, entry.metadata)  # type: ignore[arg-type]
    return turns.delivery


async def _aanswer(store: StateAdapter, turns: Turns, msg: MessageCycle, message: Message) -> None:
    await athink(message, turns.respond(msg, message))
    if turns.subscribed != turns.was_subscribed:
        await (store.asubscribe if turns.subscribed else store.aunsubscribe)(turns.thread)
    await store.aupdate_channel_state(turns.channel, turns.channel_update)
