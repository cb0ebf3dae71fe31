"""Settings of the worker processes the outbox tests start (``manage.py chatstate_outbox``,
``db_worker``, a Celery worker): the suite's settings on the parent's test database, the
backend and namespace of the test, the file-recording sender.

The parent passes them in the environment: ``CHATSTATE_PG_NAME`` (its test database),
``CHATSTATE_TEST_OUTBOX_KIND`` (``database`` or ``redis``), ``CHATSTATE_TEST_OUTBOX_NAMESPACE``
and ``CHATSTATE_TEST_OUTBOX_FILE``.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import CHATSTATE as _BASE

_KIND = os.environ.get("CHATSTATE_TEST_OUTBOX_KIND", "database")
_ADAPTERS = {
    "database": ("chatstate.adapters.database.DatabaseStateAdapter", {}),
    "redis": ("chatstate.adapters.redis.RedisStateAdapter", {"alias": "chatstate"}),
}

CHATSTATE = {
    **_BASE,
    "ADAPTER": _ADAPTERS[_KIND][0],
    "OPTIONS": _ADAPTERS[_KIND][1],
    "NAMESPACE": os.environ.get("CHATSTATE_TEST_OUTBOX_NAMESPACE", "default"),
    "OUTBOX_SENDER": "tests.outbox.sender.to_file",
    "OUTBOX_RETRY_DELAYS": (0,),
}
if os.environ.get("CHATSTATE_TEST_OUTBOX_NO_SENDER"):
    del CHATSTATE["OUTBOX_SENDER"]
