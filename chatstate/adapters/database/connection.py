"""The database adapters' use of a Django connection: transactions, the clock, failures.

- :func:`write` runs one write transaction. On SQLite it takes the write lock first and
  retries while the database is busy. So a threaded development server never sees
  "database is locked". On MariaDB/MySQL a deadlock victim (1213) is run again, up to
  ``_MYSQL_RETRIES`` times. A row-lock wait timeout (1205) is run again once. A conflict
  that persists raises :class:`~chatstate.types.BackendUnavailable`. So does one inside a
  caller's transaction, where nothing can be run again.
- :func:`read` runs a read. On SQLite it retries while another connection locks the table.
- :func:`now` reads the database's clock. Leases are measured on it. So hosts whose clocks
  drift agree on who holds a lock.
- :func:`guard` turns a lost connection into :class:`~chatstate.types.BackendUnavailable`.
  A MariaDB/MySQL lock conflict becomes one too. The message names the alias and the
  cause. Outside a transaction, a broken connection is closed, so the next call
  reconnects. Django's ``atomic()`` does the same for a failed transaction. A lost
  connection is not retried: the outcome of a write whose reply was lost is unknown.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from chatstate.adapters.database.vendors import MYSQL_LOCK_WAIT, VENDORS, Vendor, vendor_of
from chatstate.types import BackendUnavailable

T = TypeVar("T")

_SQLITE_RETRIES = 50
_MYSQL_RETRIES = 10


def connection_lost(vendor: str, exc: BaseException) -> bool:
    """Whether ``exc`` means the connection was lost or could not be made.

    ``exc`` is a Django ``OperationalError`` or ``InterfaceError``. A deadlock or a
    statement timeout on a working connection is not a lost connection."""
    if isinstance(exc, InterfaceError):
        return True
    return VENDORS.get(vendor, Vendor()).connection_lost(exc.__cause__ or exc)


def lock_conflict(vendor: Vendor, exc: BaseException) -> bool:
    """Whether ``exc`` is a deadlock or lock-wait timeout that rolled its transaction back.

    Running the transaction again is then safe."""
    return isinstance(exc, OperationalError) and vendor.lock_conflict(exc.__cause__ or exc)


@contextmanager
def guard(using: str) -> Iterator[None]:
    """Raise ``BackendUnavailable`` for a connection lost inside the block.

    A broken connection is closed when no transaction is open. So the next call starts on a
    fresh one."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        failure = unavailable(using, exc)
        if failure is None:
            raise
        raise failure from exc


def unavailable(using: str, exc: OperationalError | InterfaceError) -> BackendUnavailable | None:
    """What :func:`guard` raises for ``exc`` on ``using``: None when it is raised as it is.

    A broken connection is closed on the way, when no transaction is open."""
    connection = connections[using]
    vendor = vendor_of(connection)
    if lock_conflict(vendor, exc):
        return BackendUnavailable(
            f"database {using!r} kept refusing a transaction: {type(exc).__name__}: {exc}"
        )
    if not connection_lost(connection.vendor, exc):
        return None
    if not connection.in_atomic_block and vendor.broken(connection):
        connection.close()
    return BackendUnavailable(
        f"database {using!r} is unavailable: {type(exc).__name__}: {exc}".strip()
    )


def write(using: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in one guarded write transaction on ``using``.

    On SQLite the write lock is taken first, and a busy database is retried. On
    MariaDB/MySQL a deadlock or lock-wait timeout runs ``fn`` again. So ``fn`` may run more
    than once; only its last run commits."""
    connection = connections[using]
    vendor = vendor_of(connection)
    with guard(using):
        if vendor.retries_conflicts:
            return _retrying_write(using, vendor, fn)
        if not vendor.locks_database_first:
            with transaction.atomic(using=using):
                return fn()

        def locked_first() -> T:
            with transaction.atomic(using=using):
                with connection.cursor() as cursor:
                    # A write statement takes SQLite's RESERVED lock, waiting up to the busy
                    # timeout. Reading first and upgrading later could deadlock.
                    cursor.execute("UPDATE chatstate_dedupewindow SET head = head WHERE 0")
                return fn()

        if connection.in_atomic_block:
            return locked_first()
        return _while_locked(locked_first)


def _while_locked(fn: Callable[[], T]) -> T:
    """Run ``fn`` again, with a growing pause, while SQLite reports a lock."""
    for attempt in range(_SQLITE_RETRIES):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == _SQLITE_RETRIES - 1:
                raise
            time.sleep(min(0.2, 0.005 * 2**attempt))
    raise AssertionError("unreachable")


def _retrying_write(using: str, vendor: Vendor, fn: Callable[[], T]) -> T:
    nested = connections[using].in_atomic_block
    timeouts = 0
    for attempt in range(_MYSQL_RETRIES):
        try:
            with transaction.atomic(using=using):
                return fn()
        except OperationalError as exc:
            if nested or not lock_conflict(vendor, exc) or attempt == _MYSQL_RETRIES - 1:
                raise
            timeouts += (exc.__cause__ or exc).args[0] == MYSQL_LOCK_WAIT
            if timeouts > 1:
                raise
            time.sleep(min(0.1, 0.002 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def read(using: str, fn: Callable[[], T]) -> T:
    """Run the read ``fn`` on ``using``, guarded.

    On SQLite a table locked by another connection is retried. A shared-cache database
    (Django's in-memory test database) reports it at once, with no busy timeout."""
    connection = connections[using]
    with guard(using):
        if not vendor_of(connection).locks_database_first or connection.in_atomic_block:
            return fn()
        return _while_locked(fn)


def now(using: str) -> datetime:
    """The database's clock; for SQLite, which runs in this process, the host's."""
    connection = connections[using]
    sql = vendor_of(connection).now_sql
    if sql is None:
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        value: Any = cursor.fetchone()[0]
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt_timezone.utc)
