"""The bot's model, a stand-in: replace :func:`think` / :func:`athink` with your model call.

It gets the thread's newest history items as its context (``msg.history.items``: oldest
first, the message to answer last) and a task: ``greet`` (the bot was just mentioned),
``answer``, or ``stop`` (it was told to stop following the thread).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from example_project.bot.conf import setting


def think(context: list[Any], task: str) -> str:
    """The reply to the last message of ``context``. It takes ``BOT_THINK_SECONDS``, as a
    model call would, while the cycle holds the thread (its lease renewed meanwhile)."""
    time.sleep(float(setting("BOT_THINK_SECONDS")))
    return compose(context, task)


async def athink(context: list[Any], task: str) -> str:
    """The async twin of :func:`think`, for the ASGI view."""
    await asyncio.sleep(float(setting("BOT_THINK_SECONDS")))
    return compose(context, task)


def compose(context: list[Any], task: str) -> str:
    """The reply's text (what a model would write)."""
    user = context[-1]["user"]
    if task == "greet":
        return f"Hi {user}! I'm following this thread now and will answer every message in it."
    if task == "stop":
        return f"Okay {user}, I'll stop following this thread. Mention me to bring me back."
    said = [item for item in context if item.get("role") == "user"]
    people = len({item["user"] for item in said})
    who = f"{people} {'person' if people == 1 else 'people'}"
    return f"Noted, {user}: {who} in the last {len(said)} messages here."
