"""The PostgreSQL fast path's drivers: one statement a request, sync or natively async.

An operation of :class:`~chatstate.adapters.database.postgres.PostgresStateAdapter` yields
``(ROW, sql, params)`` (the reply is the first row) or ``(COUNT, sql, params)`` (the row
count). Each statement runs on its own in autocommit mode: one round trip, one commit.

- Sync (:class:`SyncDriver`): on the Django connection of the alias, on a
  server-side-binding psycopg cursor that *prepares* each statement: the server parses and
  plans it once per connection, then only binds and executes it. With an
  ``execute_wrapper`` or the query log on, statements go through Django's cursor wrapper.
  Otherwise each runs as that wrapper would run it (a transaction marked for rollback is
  refused, errors become Django's), without one built per statement.
- Async (:class:`AsyncDriver`): on psycopg ``AsyncConnection``s opened with the alias's own
  connection settings, a small pool per event loop, so an ASGI view needs no thread per
  conversation; a connection is held only while its statement runs.

``prepared=False`` sends unprepared statements (unnamed, extended protocol): for poolers that
cannot carry prepared statements across transactions (PgBouncer before 1.21 in transaction
mode). ``prepared=None`` (the default) decides per connection: prepared, unless the
connection goes through a pooler — detected once per connection by one query,
``SELECT pg_backend_pid()``, whose answer differs from the process id of the connection's
own startup reply when something between the client and the server (PgBouncer, Pgpool-II,
a cloud proxy) answered that startup (:func:`through_pooler`). A lost connection becomes
:class:`~chatstate.types.BackendUnavailable` (the sync one through :func:`.connection.guard`;
a broken async connection is dropped from its pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from django.db import InterfaceError, OperationalError, connections

from chatstate.adapters.database import connection as guarded
from chatstate.adapters.operations import ROW, Op
from chatstate.types import BackendUnavailable

#: The ``prepare_threshold`` given to a connection that had none (Django turns psycopg's
#: automatic preparation off, which also refuses ``prepare=True``): only what asks is
#: prepared.
EXPLICIT_ONLY = 2**31
Request = tuple[str, str, tuple[Any, ...]]
#: Async connections each event loop may open per alias, at most.
ASYNC_POOL_SIZE = 8
PID_SQL = "SELECT pg_backend_pid()"
_OK, _IDLE = psycopg.pq.ConnStatus.OK, psycopg.pq.TransactionStatus.IDLE


def through_pooler(connection: psycopg.Connection[Any]) -> bool:
    """Whether ``connection`` reaches PostgreSQL through a pooler: the server's process id
    differs from the one in the connection's startup reply (a pooler sends its own). Runs
    one query on the psycopg connection itself (outside Django's cursor wrappers)."""
    with connection.cursor() as cursor:
        cursor.execute(PID_SQL, prepare=False)
        row = cursor.fetchone()
    return row is None or row[0] != connection.info.backend_pid


async def athrough_pooler(connection: psycopg.AsyncConnection[Any]) -> bool:
    """:func:`through_pooler` for an async connection."""
    async with connection.cursor() as cursor:
        await cursor.execute(PID_SQL, prepare=False)
        row = await cursor.fetchone()
    return row is None or row[0] != connection.info.backend_pid


class _PreparingCursor(psycopg.Cursor[Any]):
    """A server-side-binding cursor that prepares what it executes (Django's wrappers call
    ``execute(sql, params)`` and cannot ask for it)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("prepare", True)
        return super().execute(query, params, **kwargs)


class _PlainCursor(psycopg.Cursor[Any]):
    """Server-side binding, never prepared."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("prepare", False)
        return super().execute(query, params, **kwargs)


class SyncDriver:
    """Runs operations on the Django connection ``using``."""

    def __init__(self, using: str, prepared: bool | None) -> None:
        self.using, self.prepared = using, prepared
        # One cursor per psycopg connection, kept while the connection lives (a connection
        # of Django's pool keeps its cursor, and its prepared statements, between checkouts).
        self._cursors: WeakKeyDictionary[Any, psycopg.Cursor[Any]] = WeakKeyDictionary()

    def _cursor(self, raw_connection: Any) -> psycopg.Cursor[Any]:
        cursor = self._cursors.get(raw_connection)
        if cursor is None or cursor.closed:
            if raw_connection.prepare_threshold is None:
                raw_connection.prepare_threshold = EXPLICIT_ONLY
            prepared = self.prepared
            if prepared is None:
                with connections[self.using].wrap_database_errors:  # guarded like a query
                    prepared = not through_pooler(raw_connection)
            cursor_class = _PreparingCursor if prepared else _PlainCursor
            cursor = self._cursors[raw_connection] = cursor_class(raw_connection)
        return cursor

    def drive(self, op: Op[Any]) -> Any:
        connection = connections[self.using]
        try:
            connection.ensure_connection()
            raw: Any = self._cursor(connection.connection)
            if connection.execute_wrappers or connection.queries_logged:
                cursor = (
                    connection.make_debug_cursor(raw)
                    if connection.queries_logged
                    else connection.make_cursor(raw)
                )
                return _run(op, partial(_wrapped_step, cursor))
            return _run(op, partial(_plain_step, connection, raw))
        except (OperationalError, InterfaceError) as exc:
            failure = guarded.unavailable(self.using, exc)
            if failure is None:
                raise
            raise failure from exc


def _run(op: Op[Any], step: Callable[[str, str, Any], Any]) -> Any:
    """Run ``op``'s statements, each with ``step(kind, sql, params)``, which replies."""
    try:
        kind, sql, params = next(op)
        while True:
            kind, sql, params = op.send(step(kind, sql, params))
    except StopIteration as stop:
        return stop.value


def _wrapped_step(cursor: Any, kind: str, sql: str, params: Any) -> Any:
    """One statement on a Django cursor wrapper: its execute wrappers and log apply."""
    cursor.execute(sql, params)
    return cursor.fetchone() if kind is ROW else cursor.rowcount


def _plain_step(
    connection: Any, cursor: psycopg.Cursor[Any], kind: str, sql: str, params: Any
) -> Any:
    """One statement as Django's cursor wrapper runs it with no wrapper and no log.

    A broken transaction is refused, and errors become Django's."""
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor.execute(sql, params)
        return cursor.fetchone() if kind is ROW else cursor.rowcount


class AsyncDriver:
    """Runs operations on pooled ``AsyncConnection``s of the alias ``using``, per loop."""

    def __init__(self, using: str, prepared: bool | None, size: int = ASYNC_POOL_SIZE) -> None:
        self.using, self.prepared, self.size = using, prepared, size
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
        # Each connection's cursor, kept while the connection lives, and whether it prepares
        # (``prepared=None``: decided when it opened).
        self._cursors: WeakKeyDictionary[Any, tuple[psycopg.AsyncCursor[Any], bool]] = (
            WeakKeyDictionary()
        )

    async def _cursor(self, conn: psycopg.AsyncConnection[Any]) -> tuple[Any, bool]:
        found = self._cursors.get(conn)
        if found is None:
            prepares = self.prepared
            if prepares is None:
                prepares = not await athrough_pooler(conn)
            found = self._cursors[conn] = (conn.cursor(), prepares)
        return found

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for old in [old for old in self._pools if old.is_closed()]:
                self._pools.pop(old).close()  # a pool belongs to its loop, gone now
            pool = self._pools[loop] = _Pool(_params(self.using), self.size)
        return pool

    def close(self) -> None:
        """Close every idle connection of every loop (those in use close when returned)."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    async def drive(self, op: Op[Any]) -> Any:
        pool = self._pool()
        conn = await pool.get(self.using)
        broken = False
        try:
            cursor, prepare = await self._cursor(conn)
            try:
                kind, sql, params = next(op)
                while True:
                    await cursor.execute(sql, params, prepare=prepare)
                    reply = await cursor.fetchone() if kind is ROW else cursor.rowcount
                    kind, sql, params = op.send(reply)
            except StopIteration as stop:
                return stop.value
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            broken = conn.broken or conn.closed or guarded.connection_lost("postgresql", exc)
            if broken:
                raise _unavailable(self.using, exc) from exc
            raise _as_django(exc) from exc
        except psycopg.Error as exc:
            raise _as_django(exc) from exc
        finally:
            await pool.put(conn, broken)


class _Pool:
    """Idle connections of one loop, and a bound on how many are open."""

    def __init__(self, params: dict[str, Any], size: int) -> None:
        self.params = params
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)

    async def get(self, using: str) -> psycopg.AsyncConnection[Any]:
        await self.slots.acquire()
        while self.idle:
            conn = self.idle.pop()
            if _usable(conn):
                return conn
            await conn.close()
        try:
            return await psycopg.AsyncConnection.connect(**self.params)
        except psycopg.Error as exc:
            self.slots.release()
            raise _unavailable(using, exc) from exc

    def close(self) -> None:
        """Close the idle connections, from any thread (no await: their loop may be gone)."""
        while self.idle:
            self.idle.pop().pgconn.finish()

    async def put(self, conn: psycopg.AsyncConnection[Any], broken: bool) -> None:
        if broken or not _usable(conn):
            await conn.close()
        else:
            self.idle.append(conn)
        self.slots.release()


def _usable(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether ``conn`` is open and idle: a call cancelled mid-statement leaves it busy.

    A broken connection is closed too."""
    pgconn = conn.pgconn
    return pgconn.status == _OK and pgconn.transaction_status == _IDLE


def _params(using: str) -> dict[str, Any]:
    """The psycopg connection parameters of Django's alias ``using``, for an async
    connection in autocommit mode (Django's sync cursor class and pool left out)."""
    params = dict(connections[using].get_connection_params())
    for name in ("cursor_factory", "pool", "server_side_binding", "assume_role"):
        params.pop(name, None)
    params["autocommit"] = True
    if params.get("prepare_threshold") is None:
        params["prepare_threshold"] = EXPLICIT_ONLY
    return params


def _unavailable(using: str, exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(
        f"database {using!r} is unavailable: {type(exc).__name__}: {exc}".strip()
    )


def _as_django(exc: psycopg.Error) -> Exception:
    """A psycopg error as the Django error a sync call would have raised."""
    from django.db import utils

    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
        "DatabaseError",
        "InterfaceError",
    ):
        if isinstance(exc, getattr(psycopg, name)):
            django_error: Exception = getattr(utils, name)(*exc.args)
            return django_error
    return utils.Error(*exc.args)
