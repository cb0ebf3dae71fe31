"""The outbox's sender: ``CHATSTATE["OUTBOX_SENDER"]`` names :func:`post_reply`.

A dispatcher (``store.dispatch_outbox()``) calls it for each reply once the commit that
stored it is done: a thread's replies in the order they were committed, at least once, and
again after a backoff when it raises. A real bot posts to its platform here (Slack's
``chat.postMessage``, say), giving ``entry.key`` as the idempotency key: a dispatcher that
dies after posting hands the same entry out again. This one records the reply in the log.
"""

from __future__ import annotations

import logging

from chatstate import OutboxEntry

logger = logging.getLogger(__name__)


def post_reply(entry: OutboxEntry) -> None:
    """Post one reply: here, an INFO record (``extra``: the ``entry``) on this module's logger."""
    reply = entry.payload
    where, text = f"{entry.thread_id} (re {reply['in_reply_to']})", reply["text"]
    logger.info("posted %s to %s: %s", entry.key, where, text, extra={"entry": entry})
