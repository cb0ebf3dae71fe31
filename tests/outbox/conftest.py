"""Fixtures of the outbox's worker tests: real worker processes (``manage.py
chatstate_outbox``, the task framework's ``db_worker``, a Celery worker) dispatching what the
test commits, on the PostgreSQL run's backends another process can reach: ``database`` (the
fast path) and ``redis``.

In the other runs these tests are deselected, not skipped. ``store`` is overridden: the
test's writes are committed (``transactional_db``) so that the workers see them.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import ALL_FACTORIES, VENDOR
from tests.outbox.helpers import Workers
from tests.outbox.sender import FILE_ENV

HERE = Path(__file__).parent
KINDS = [kind for kind in ("database", "redis") if kind in ALL_FACTORIES]
_namespaces = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside the PostgreSQL run, deselect the worker tests of this directory."""
    ours = [
        item
        for item in items
        if HERE in Path(str(item.path)).parents
        and {"store", "database_store", "workers"} & set(getattr(item, "fixturenames", ()))
    ]
    if VENDOR != "postgresql" and ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if item not in ours]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, transactional_db: None) -> Any:
    """The parent's adapter, in a namespace of its own, on committed transactions."""
    namespace = f"o{os.getpid()}-{next(_namespaces)}"
    return ALL_FACTORIES[request.param](request, namespace)


@pytest.fixture
def workers(request: pytest.FixtureRequest, store: Any, tmp_path: Path) -> Workers:
    kind = request.node.callspec.params["store"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.outbox.settings",
        "CHATSTATE_TEST_DB": "postgres",
        "CHATSTATE_PG_NAME": connections["default"].settings_dict["NAME"],
        "CHATSTATE_TEST_OUTBOX_KIND": kind,
        "CHATSTATE_TEST_OUTBOX_NAMESPACE": store.namespace,
        FILE_ENV: str(tmp_path / "sent.jsonl"),
        "PYTHONUNBUFFERED": "1",
    }
    return Workers(env, tmp_path / "sent.jsonl")
