"""The bot: each message is one unit of work, staged in its cycle, written by its commit.

A delivery is one ``handle_message`` cycle, keyed by the platform's message id. If it takes
the thread, it answers its own message. Then it answers those ``msg.drain()`` hands out
under the lock, in arrival order. A message may find messages left by a dead holder. It
queues behind them, and the drain hands them out before it.

A message's effects are staged on ``msg``. They are the thread state, channel counters,
subscription, history and reply. One atomic step writes them and marks the message done,
or nothing is written. After a failed commit, the redelivery is handled afresh. A done
message's redelivery does nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatstate import LockResult, StateAdapter
from chatstate.cycle import MessageCycle
from example_project.bot.conf import setting
from example_project.platform_stub import model
from example_project.platform_stub.message import channel_key, thread_key

#: A parsed message from ``platform_stub/message.py``, or a queued entry's metadata.
Message = Mapping[str, Any]
#: Queue behind a busy thread; a full queue refuses the newcomer, delivered again later.
#: Renew the lease while the model thinks. Read the newest 20 history items as context.
CYCLE = {"strategy": "queue", "overflow": "drop_newest", "keepalive": True, "history": 20}


class RetryLater(Exception):
    """The platform should deliver the message again later, as a 503 with ``Retry-After`` asks."""


@dataclass
class Delivery:
    """The webhook's answer to one delivery.

    ``status`` is handled, queued or duplicate. ``handled`` lists the ids of the messages
    this delivery handled, in order. ``outbox`` holds the outbox keys of their replies."""

    thread: str
    status: str = "handled"
    handled: list[str] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)

    def add(self, message: Message, reply_key: str | None) -> None:
        self.handled.append(message["message_id"])
        self.outbox += [reply_key] if reply_key else []

    def settle(self, msg: MessageCycle, mid: str) -> Delivery:
        """This answer once the cycle is over; RetryLater if message ``mid`` was left unhandled."""
        if msg.in_progress:
            raise RetryLater(f"message {mid} is being handled now")
        if mid not in self.handled and not msg.duplicate and msg.result is not LockResult.QUEUED:
            raise RetryLater(f"message {mid} finds the thread's queue full")
        if mid not in self.handled:
            self.status = "duplicate" if msg.duplicate else "queued"
        return self


def handle(store: StateAdapter, message: Message) -> Delivery:
    """Handle one delivery of ``message``; raises RetryLater."""
    done = Delivery(thread_key(message))
    with store.handle_message(**cycle(message)) as msg:
        if msg.acquired:
            done.add(message, answer(msg, message))
        for entry in msg.drain():
            done.add(entry.metadata, answer(msg, entry.metadata))
    return done.settle(msg, message["message_id"])


def answer(msg: MessageCycle, message: Message) -> str | None:
    """Stage all of ``message`` in the cycle ``msg``; return its reply's outbox key, if any."""
    task = take_in(msg, message)
    return reply(msg, message, model.think(msg.history.items, task)) if task else None


def take_in(msg: MessageCycle, message: Message) -> str | None:
    """Stage what ``message`` changes; the model's task if the bot answers it, else None."""
    following, command = msg.subscribed, mention(message["text"])
    if command is not None:
        (msg.unsubscribe if command.startswith("stop") else msg.subscribe)()
    msg.state["turns"] = msg.state.get("turns", 0) + 1
    msg.channel.incr("messages")
    (msg.channel.add if msg.subscribed else msg.channel.discard)("active_threads", msg.thread_id)
    said = {key: message[key] for key in ("message_id", "user", "text", "ts")}
    msg.history.append({"role": "user", **said})
    if msg.subscribed:
        return "answer" if following else "greet"
    return "stop" if following else None


def reply(msg: MessageCycle, message: Message, text: str) -> str:
    """Stage the reply in the history and the outbox; return its outbox key.

    After the commit, the outbox's dispatcher posts it through
    ``CHATSTATE["OUTBOX_SENDER"]``."""
    mid = message["message_id"]
    msg.history.append({"role": "bot", "in_reply_to": mid, "text": text})
    where = {"channel": message["channel_id"], "thread": message["thread_id"]}
    return msg.send({**where, "in_reply_to": mid, "text": text})


def cycle(message: Message) -> dict[str, Any]:
    """The ``handle_message`` arguments of one delivery of ``message``."""
    return {
        **CYCLE,
        "dedupe_key": (message["platform"], message["message_id"]),
        "thread_id": thread_key(message),
        "channel_id": channel_key(message),
        "owner": f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex}",
        "metadata": dict(message),  # what the holder gets back when this one is queued
    }


def mention(text: str) -> str | None:
    """What follows ``@<BOT_NAME>`` in ``text``, lowercased; None when the bot is not named."""
    lowered, name = text.lower(), "@" + str(setting("BOT_NAME")).lower()
    at = lowered.find(name)
    return None if at < 0 else lowered[at + len(name) :].strip()


async def ahandle(store: StateAdapter, message: Message) -> Delivery:
    """The async twin of :func:`handle`, for the ASGI view."""
    done = Delivery(thread_key(message))
    async with store.ahandle_message(**cycle(message)) as msg:
        if msg.acquired:
            done.add(message, await aanswer(msg, message))
        async for entry in msg.adrain():
            done.add(entry.metadata, await aanswer(msg, entry.metadata))
    return done.settle(msg, message["message_id"])


async def aanswer(msg: MessageCycle, message: Message) -> str | None:
    task = take_in(msg, message)
    return reply(msg, message, await model.athink(msg.history.items, task)) if task else None
