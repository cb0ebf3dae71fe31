"""MariaDB/MySQL lock conflicts: a transaction that timed out waiting for a row lock (1205) is
run again once, then :class:`BackendUnavailable`; counted on a real server, with another
connection holding the row (deadlocks, 1213, take the same path up to ten times)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection

from chatstate import BackendUnavailable, LockResult
from chatstate.adapters.database import DatabaseStateAdapter
from tests import services

pytestmark = pytest.mark.run_on("mysql")


@pytest.fixture
def holder(transactional_db: None) -> Iterator[Any]:
    """Another client of the test database, its transaction open (rolled back at the end);
    this process's connection waits 1 s for a row lock instead of 50."""
    import MySQLdb

    other = MySQLdb.connect(
        host=services.MYSQL["HOST"],
        port=int(services.MYSQL["PORT"]),
        user=services.MYSQL["USER"],
        password=services.MYSQL["PASSWORD"],
        database=connection.settings_dict["NAME"],
    )
    other.autocommit(False)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
    try:
        yield other
    finally:
        other.rollback()
        other.close()
        connection.close()  # the next test's connection has the server's timeout again


def _hold_lock_row(other: Any, namespace: str, key: str) -> None:
    cursor = other.cursor()
    cursor.execute(
        "SELECT id FROM chatstate_lock WHERE namespace = %s AND `key` = %s FOR UPDATE",
        (namespace, key),
    )
    assert cursor.fetchall(), "the lock row to hold"


def _timeouts(on_timeout: Callable[[], None]) -> tuple[Any, list[int]]:
    """An execute wrapper that records each lock-wait timeout and calls ``on_timeout``."""
    seen: list[int] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        try:
            return execute(sql, params, many, context)
        except OperationalError as exc:
            code = (exc.__cause__ or exc).args[0]
            if code == 1205:
                seen.append(code)
                on_timeout()
            raise

    return wrapper, seen


def test_a_lock_wait_timeout_is_run_again(holder: Any) -> None:
    store = DatabaseStateAdapter(namespace="timeout-once")
    assert store.lock("k", "a") is LockResult.ACQUIRED
    _hold_lock_row(holder, store.namespace, "k")
    wrapper, seen = _timeouts(holder.commit)  # the other transaction ends after one timeout
    with connection.execute_wrapper(wrapper):
        assert store.lock("k", "b") is LockResult.BUSY
    assert seen == [1205]


def test_a_lock_wait_timeout_that_persists_is_backend_unavailable(holder: Any) -> None:
    store = DatabaseStateAdapter(namespace="timeout-twice")
    assert store.lock("k", "a") is LockResult.ACQUIRED
    _hold_lock_row(holder, store.namespace, "k")
    wrapper, seen = _timeouts(lambda: None)
    with (
        connection.execute_wrapper(wrapper),
        pytest.raises(BackendUnavailable, match="1205"),
    ):
        store.lock("k", "b")
    assert seen == [1205, 1205]
    holder.rollback()
    assert store.lock("k", "b") is LockResult.BUSY  # the connection works on
