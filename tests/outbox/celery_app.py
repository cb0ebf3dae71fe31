"""The Celery app of the outbox tests: the RabbitMQ broker of the run, a queue of the test's
own (``CHATSTATE_TEST_CELERY_QUEUE``: several runs share the broker), and chatstate's task.

The worker is ``celery -A tests.outbox.celery_app worker`` with ``DJANGO_SETTINGS_MODULE``
set (Celery's Django fixup sets Django up in the worker).
"""

from __future__ import annotations

import os
import uuid

from celery import Celery
from kombu import Queue

from tests.services import AMQP_URL

#: The queue of this run (a worker gets it from the parent in the environment).
QUEUE = os.environ.get("CHATSTATE_TEST_CELERY_QUEUE") or f"chatstate-tests-{uuid.uuid4().hex[:12]}"

app = Celery("chatstate_tests", broker=AMQP_URL, include=["chatstate.contrib.celery"])
app.conf.update(
    task_default_queue=QUEUE,
    # Gone with its last consumer: the runs leave no queue behind on the shared broker.
    task_queues=[Queue(QUEUE, auto_delete=True, durable=False)],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
