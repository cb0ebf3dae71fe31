"""The outbox's sender: ``CHATSTATE["OUTBOX_SENDER"]`` names :func:`post_reply`.

A dispatcher, ``store.dispatch_outbox()``, calls it for each reply after its commit. A
thread's replies come in commit order, each at least once. A reply whose call raised comes
again after a backoff. A real bot posts to its platform here, say with Slack's
``chat.postMessage``. It gives ``entry.key`` as the idempotency key. A dispatcher that dies
after posting hands the same entry out again. This one records the reply in the log.
"""

from __future__ import annotations

import logging

from chatstate import OutboxEntry

logger = logging.getLogger(__name__)


def post_reply(entry: OutboxEntry) -> None:
    """Post one reply; here, an INFO record on this module's logger, the ``entry`` in ``extra``."""
    reply = entry.payload
    where, text = f"{entry.thread_id} (re {reply['in_reply_to']})", reply["text"]
    logger.info("posted %s to %s: %s", entry.key, where, text, extra={"entry": entry})
