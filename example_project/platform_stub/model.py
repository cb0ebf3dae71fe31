"""The bot's model, a stand-in: replace :func:`think` and :func:`athink` with your model call.

Its context is the thread's newest history items, ``msg.history.items``. They come oldest
first, with the message to answer last. Its task is ``greet``, ``answer`` or ``stop``. The
bot greets when just mentioned. It stops when told to stop following the thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from example_project.bot.conf import setting


def think(context: list[Any], task: str) -> str:
    """The reply to the last message of ``context``.

    It takes ``BOT_THINK_SECONDS``, as a model call would. The cycle holds the thread
    meanwhile, and its lease is renewed."""
    time.sleep(float(setting("BOT_THINK_SECONDS")))
    return compose(context, task)


async def athink(context: list[Any], task: str) -> str:
    """The async twin of :func:`think`, for the ASGI view."""
    await asyncio.sleep(float(setting("BOT_THINK_SECONDS")))
    return compose(context, task)


def compose(context: list[Any], task: str) -> str:
    """The reply's text, as a model would write it."""
    user = context[-1]["user"]
    if task == "greet":
        return f"Hi {user}! I'm following this thread now and will answer every message in it."
    if task == "stop":
        return f"Okay {user}, I'll stop following this thread. Mention me to bring me back."
    said = [item for item in context if item.get("role") == "user"]
    people = len({item["user"] for item in said})
    who = f"{people} {'person' if people == 1 else 'people'}"
    return f"Noted, {user}: {who} in the last {len(said)} messages here."
