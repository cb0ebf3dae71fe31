"""The outbox's dispatch as a task, run by real workers: Django's task framework with the
database backend's ``db_worker``, and Celery on the run's RabbitMQ.

``OUTBOX_TASK`` enqueues one dispatch per commit that sent something, after the surrounding
transaction commits; the workers deliver every entry once, each thread's in commit order.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
from typing import Any

import pytest
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from chatstate import get_adapter
from chatstate.tasks import dispatch_outbox
from chatstate.testing.helpers import run_async
from tests import services
from tests.conftest import ALL_FACTORIES, next_namespace
from tests.outbox import celery_app
from tests.outbox.helpers import (
    Workers,
    check_delivered_once_in_order,
    commit_sends,
    wait_until,
)

TASK_PATH = "chatstate.tasks.dispatch_outbox"


def _outbox_task(settings: Any, value: Any) -> None:
    settings.CHATSTATE = {**settings.CHATSTATE, "OUTBOX_TASK": value}


def _tasks() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=TASK_PATH))


def _framework() -> str:
    return "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"


def test_the_task_is_a_task_of_the_framework() -> None:
    base = importlib.import_module(f"{_framework()}.base")
    assert isinstance(dispatch_outbox, base.Task)  # django.tasks on Django 6.0+
    assert dispatch_outbox.module_path == TASK_PATH


SENT: list[str] = []


def record(entry: Any) -> None:
    SENT.append(entry.key)


def test_with_the_immediate_backend_the_commit_sends_at_once(settings: Any) -> None:
    """The memory adapter of the settings (the process-wide one) and Django's immediate
    backend: the task runs in the committing process, right after the commit."""
    settings.TASKS = {"default": {"BACKEND": f"{_framework()}.backends.immediate.ImmediateBackend"}}
    settings.CHATSTATE = {
        "ADAPTER": "chatstate.adapters.memory.MemoryStateAdapter",
        "OUTBOX_SENDER": "tests.outbox.test_tasks.record",
        "OUTBOX_TASK": True,
    }
    SENT.clear()
    store = get_adapter()
    with store.handle_message(("p", "m1"), thread_id="t", owner="w") as msg:
        msg.send({"text": "hi"})
        assert SENT == []  # not before the commit
    assert SENT == ["p:m1:0"]
    assert store.outbox() == []


def test_db_workers_deliver_every_entry_once(store: Any, workers: Workers, settings: Any) -> None:
    _outbox_task(settings, True)
    keys = commit_sends(store, threads=4, per_thread=10)
    for n in range(5):  # commits that send nothing enqueue nothing
        with store.handle_message(("p", f"quiet{n}"), thread_id="t0", owner="q") as msg:
            msg.state["n"] = n
    with store.handle_message(("p", "two"), thread_id="t9", owner="w") as msg:
        keys += [msg.send({"mid": "two", "n": 0}), msg.send({"mid": "two", "n": 1})]
    queued = _tasks()
    assert len(queued) == 41  # one per commit that sent
    assert {tuple(t.args_kwargs["args"]) for t in queued} == {(store.namespace,)}
    assert workers.deliveries() == []  # nothing runs the tasks yet
    racing = [workers.start("db_worker", "--batch", "--no-startup-delay") for _ in range(2)]
    for proc in racing:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    check_delivered_once_in_order(store, workers.deliveries(), keys)
    statuses = {t.status for t in _tasks()}
    assert statuses == {"SUCCESSFUL"}, statuses


@pytest.fixture
def database_store(request: pytest.FixtureRequest, transactional_db: None) -> Any:
    """The database store (its commits belong to Django's transactions), committing."""
    return ALL_FACTORIES["database"](request, next_namespace())


def test_the_task_is_enqueued_when_the_outer_transaction_commits(
    database_store: Any, settings: Any
) -> None:
    store = database_store
    _outbox_task(settings, True)
    with transaction.atomic():
        with store.handle_message(("p", "m1"), thread_id="t", owner="w") as msg:
            msg.send({"mid": "m1", "n": 0})
        assert _tasks() == []  # the entry is not committed yet: no task either
    assert len(_tasks()) == 1
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        with store.handle_message(("p", "m2"), thread_id="t", owner="w") as msg:
            msg.send({"mid": "m2", "n": 1})
        raise ZeroDivisionError  # rolled back: the entry and its task with it
    assert len(_tasks()) == 1
    assert [e.key for e in store.outbox()] == ["p:m1:0"]


def test_an_async_cycle_enqueues_too(store: Any, workers: Workers, settings: Any) -> None:
    _outbox_task(settings, True)

    async def cycle() -> None:
        async with store.ahandle_message(("p", "a1"), thread_id="t", owner="w") as msg:
            msg.send({"mid": "a1", "n": 0})

    run_async(cycle)
    wait_until(lambda: len(_tasks()) == 1, 10, "the async cycle's task")
    done = workers.run("db_worker", "--batch", "--no-startup-delay")
    assert done.returncode == 0, done.stderr
    check_delivered_once_in_order(store, workers.deliveries(), ["p:a1:0"])


def failing_enqueue(namespace: str) -> None:
    raise ConnectionError("the broker is down")


def test_an_enqueue_that_fails_leaves_the_commit_and_its_entries(
    store: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _outbox_task(settings, "tests.outbox.test_tasks.failing_enqueue")
    with (
        caplog.at_level(logging.WARNING, logger="chatstate.outbox"),
        store.handle_message(("p", "m1"), thread_id="t", owner="w") as msg,
    ):
        msg.send({"mid": "m1", "n": 0})
    assert [e.key for e in store.outbox()] == ["p:m1:0"]  # committed, waiting
    assert "could not be enqueued (ConnectionError: the broker is down)" in caplog.text


@pytest.mark.needs_service("rabbitmq")  # deselected outside CI without a broker
def test_a_celery_worker_delivers_every_entry_once(
    store: Any, workers: Workers, settings: Any
) -> None:
    _outbox_task(settings, "chatstate.contrib.celery.enqueue")
    assert celery_app.app.conf.broker_url == services.AMQP_URL
    keys = commit_sends(store, threads=4, per_thread=10)  # 40 tasks wait in the queue
    worker = workers.start(
        "celery",
        *("-A", "tests.outbox.celery_app", "worker", "-Q", celery_app.QUEUE, "-c", "2"),
        *("-n", f"{celery_app.QUEUE}@%h"),  # a node of its own: others may run beside it
        *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"),
        CHATSTATE_TEST_CELERY_QUEUE=celery_app.QUEUE,
    )
    try:
        got = workers.wait_for(len(keys), timeout=90)
        keys += commit_sends(store, threads=2, per_thread=5, tag="late")  # worker running
        got = workers.wait_for(len(keys), timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        out, err = worker.communicate(timeout=60)
        print(err[-4000:])  # the worker's log, shown when the test fails
    assert worker.returncode == 0, err
    check_delivered_once_in_order(store, got, keys)
    assert "chatstate.dispatch_outbox" in err  # the task, as the worker registered it
