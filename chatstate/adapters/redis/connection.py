"""The Redis adapter's connections: a cache alias's client, and the drivers of operations.

The drivers send an operation's requests, on the blocking client or on ``redis.asyncio``.
A request an operation yields is one of:

- ``(EVAL, script, keys, args)``, a script;
- ``(CALL, method, args)``, one command;
- ``(SCAN, route_key, cursor, pattern, count)``, one page of ``SCAN`` on the node holding
  ``route_key``'s slot;
- ``(BATCH, [(method, args), ...])``, a pipeline without MULTI.

Scripts are called as Redis 7 functions, else by SHA; see :mod:`.invoke`. A script the
server lacks did not run; it is loaded and sent again. The blocking driver uses a
connection of this thread's own. The async driver pipelines the event loop's scripts on
one connection; see :mod:`.multiplex`. A script is never sent again after a lost reply. A
connection failure becomes :class:`~chatstate.types.BackendUnavailable` naming the alias.
The next call replaces the broken connection.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from chatstate.adapters.operations import Op
from chatstate.adapters.redis import multiplex
from chatstate.adapters.redis.invoke import ScriptCalls, arecover, recover
from chatstate.adapters.redis.multiplex import Pipelined
from chatstate.adapters.redis.scripts import LuaScript
from chatstate.adapters.redis.wire import PinnedConnection
from chatstate.types import BackendUnavailable

try:
    import redis
    import redis.asyncio
    import redis.asyncio.connection
    import redis.asyncio.retry
    import redis.connection
    import redis.retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ClusterError, RedisClusterException
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "RedisStateAdapter needs django-redis and redis: pip install 'chatstate[redis]'"
    ) from exc
_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with chatstate[redis]
    _hiredis_pack = None

T = TypeVar("T")
Request = tuple[Any, ...]
EVAL, CALL, SCAN, BATCH = "eval", "call", "scan", "batch"

DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"
#: A server unreachable, or a cluster without a master for the slot, as during a failover.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException)

# The async connection class for each sync one. Then the kwargs of a sync pool that only
# the sync client understands.
_ASYNC_CONNECTIONS: dict[type, type] = {
    redis.connection.SSLConnection: redis.asyncio.connection.SSLConnection,
    redis.connection.UnixDomainSocketConnection: (
        redis.asyncio.connection.UnixDomainSocketConnection
    ),
    redis.connection.Connection: redis.asyncio.connection.Connection,
}
_SYNC_ONLY_KWARGS = frozenset(
    {
        "retry",
        "redis_connect_func",
        "event_dispatcher",
        "parser_class",
        "himport_registry",
        "maint_notifications_config",
        "maint_notifications_pool_handler",
        "maintenance_state",
        "maintenance_notification_hash",
        "oss_cluster_maint_notifications_handler",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)


def client_for_alias(alias: str) -> Any:
    """The ``redis.Redis`` write client of the cache ``alias``.

    The alias may use django-redis or Django's own Redis backend. A missing alias, or one
    that is not a Redis cache, raises ``BackendUnavailable``."""
    from django.core.cache import InvalidCacheBackendError, caches

    try:
        from django_redis import get_redis_connection

        return get_redis_connection(alias, write=True)
    except InvalidCacheBackendError:
        raise BackendUnavailable(
            f"chatstate's Redis cache alias {alias!r} is not defined in CACHES"
        ) from None
    except NotImplementedError:
        pass
    from django.core.cache.backends.redis import RedisCache

    cache = caches[alias]
    if isinstance(cache, RedisCache):  # Django's own Redis backend: its write client.
        return cache._cache.get_client(None, write=True)
    raise BackendUnavailable(
        f"chatstate's cache alias {alias!r} is not a Redis cache "
        f"({type(cache).__module__}.{type(cache).__name__}); use {DJANGO_REDIS_BACKEND}"
    )


def retryless_client(source: Any) -> Any:
    """A ``redis.Redis`` that never sends a command again after a connection failure.

    It has a pool of its own, with the settings of ``source``'s pool. redis-py retries by
    default, so a script whose reply was lost would run twice. A pool that is not a plain
    one, such as sentinel's, returns ``source`` itself. Configure that alias without
    retries."""
    pool = source.connection_pool
    plain = issubclass(pool.connection_class, tuple(_ASYNC_CONNECTIONS))
    if type(pool) is not redis.ConnectionPool or not plain:
        return source
    kwargs = {**pool.connection_kwargs, "retry": redis.retry.Retry(NoBackoff(), 0)}
    kwargs.pop("retry_on_timeout", None)
    kwargs.pop("retry_on_error", None)
    own = redis.ConnectionPool(
        connection_class=pool.connection_class, max_connections=pool.max_connections, **kwargs
    )
    return redis.Redis(connection_pool=own)


def async_client_for(sync_client: Any) -> Any:
    """A ``redis.asyncio.Redis`` that never sends a command again after a connection failure.

    It has the connection settings of ``sync_client``'s pool. It is None when the pool's
    connection class has no async counterpart here, as with sentinel.
    """
    pool = sync_client.connection_pool
    connection_class = _ASYNC_CONNECTIONS.get(pool.connection_class)
    if connection_class is None:
        return None
    accepted: set[str] = set()
    for cls in connection_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            accepted.update(inspect.signature(init).parameters)
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name in accepted and name not in _SYNC_ONLY_KWARGS and type(value) is not object
    }
    kwargs["retry"] = redis.asyncio.retry.Retry(NoBackoff(), 0)
    kwargs.pop("retry_on_timeout", None)
    kwargs.pop("retry_on_error", None)
    async_pool = redis.asyncio.ConnectionPool(
        connection_class=connection_class, max_connections=pool.max_connections, **kwargs
    )
    return redis.asyncio.Redis(connection_pool=async_pool)


class _Pinned(threading.local):
    """This thread's own connection to each pool, for scripts, and how its server calls
    them; see :func:`eval_pinned`."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.connections: weakref.WeakKeyDictionary[Any, tuple[Any, ScriptCalls]] = (
            weakref.WeakKeyDictionary()
        )


_pinned = _Pinned()


def eval_pinned(client: Any, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
    """Call ``script`` on the connection this thread keeps for ``client``'s pool.

    This is the hot path. It skips redis-py's pool checkout and wrappers, which cost more
    than the round trip: a plain pool's scripts go on a :class:`~.wire.Wire`. It never
    sends a command again after a lost reply. A script must not run twice. A connection the
    server closed meanwhile is replaced before use. A connection that failed is dropped, so
    the next call connects afresh.
    """
    if _pinned.pid != os.getpid():  # a forked child: its parent's sockets are not its own
        _pinned.pid, _pinned.connections = os.getpid(), weakref.WeakKeyDictionary()
    pool = client.connection_pool
    pinned = _pinned.connections.get(pool)
    if pinned is None:
        pinned = _pinned.connections[pool] = (PinnedConnection.open(pool), ScriptCalls())
    connection, calls = pinned
    if connection.stale():  # unread data, or the server hung up: start afresh
        connection.drop()
    try:
        try:
            return connection.call(calls.command(script, keys, args))
        except redis.ResponseError as error:  # not run when the server lacks the script
            return recover(calls.recovery(script, keys, args, error), connection.call)
    except UNAVAILABLE:
        connection.drop()
        raise


def _pack(connection: Any, args: tuple[Any, ...]) -> list[bytes]:
    """A command's wire form, as chunks to send.

    hiredis's packer is used when installed. redis-py's own checks each argument first, so
    it is the fallback."""
    if _hiredis_pack is None:
        packed: list[bytes] = connection.pack_command(*args)
        return packed
    return [_hiredis_pack(args)]


class AsyncLanes:
    """The connections scripts run on, for one ``redis.asyncio`` pool and so one event loop.

    It does for a loop what :func:`eval_pinned` does for threads. A connection runs one
    script at a time. It is taken from the idle ones, or opened. At most the pool's
    ``max_connections`` are open at once. A script that raises anything but a reply error
    closes its connection. A lost connection and a cancellation mid-reply do so."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(min(pool.max_connections, 2**16))
        self.calls = ScriptCalls()

    async def eval(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Call ``script``, loaded and sent again when the server lacks it; its reply."""
        async with self.slots:
            connection = self.idle.pop() if self.idle else self.pool.make_connection()
            try:
                if connection.is_connected and await connection.can_read():
                    await connection.disconnect()  # unread data, or the server hung up
                reply = await self._eval(connection, script, keys, args)
            except redis.ResponseError:
                self.idle.append(connection)  # the reply was read: the connection is sound
                raise
            except BaseException:
                await connection.disconnect(nowait=True)
                raise
            self.idle.append(connection)
            return reply

    async def _eval(
        self, connection: Any, script: LuaScript, keys: list[str], args: list[Any]
    ) -> Any:
        try:
            return await _asend(connection, self.calls.command(script, keys, args))
        except redis.ResponseError as error:  # not run when the server lacks the script
            recovery = self.calls.recovery(script, keys, args, error)
            return await arecover(recovery, partial(_asend, connection))


async def _asend(connection: Any, command: tuple[Any, ...]) -> Any:
    await connection.send_packed_command(_pack(connection, command), check_health=False)
    return await connection.read_response()


_runners: weakref.WeakKeyDictionary[Any, AsyncLanes | Pipelined] = weakref.WeakKeyDictionary()
_PLAIN_ASYNC = (
    redis.asyncio.connection.Connection,
    redis.asyncio.connection.UnixDomainSocketConnection,
)


def _script_runner(pool: Any) -> AsyncLanes | Pipelined:
    """How scripts go out on ``pool``'s loop.

    They are pipelined on one connection when the pool's settings allow; see
    :mod:`.multiplex`. Otherwise each runs on a connection of its own."""
    runner = _runners.get(pool)
    if runner is None:
        plain = pool.connection_class in _PLAIN_ASYNC
        if plain and multiplex.supports(pool.connection_kwargs):
            runner = Pipelined(pool.connection_kwargs)
        else:
            runner = AsyncLanes(pool)
        _runners[pool] = runner
    return runner


def execute(client: Any, request: Request) -> Any:
    """Send one request on the blocking ``client``; return its reply."""
    kind = request[0]
    if kind is EVAL:
        return eval_pinned(client, request[1], request[2], request[3])
    if kind is CALL:
        return getattr(client, request[1])(*request[2])
    if kind is SCAN:
        return client.scan(request[2], match=request[3], count=request[4])
    return pipelined(client, request[1]).execute()


async def aexecute(client: Any, request: Request) -> Any:
    """Send one request on the ``redis.asyncio`` ``client``; return its reply."""
    kind = request[0]
    if kind is EVAL:
        return await _script_runner(client.connection_pool).eval(request[1], request[2], request[3])
    if kind is CALL:
        return await getattr(client, request[1])(*request[2])
    if kind is SCAN:
        return await client.scan(request[2], match=request[3], count=request[4])
    return await pipelined(client, request[1]).execute()


def pipelined(client: Any, calls: list[tuple[str, tuple[Any, ...]]]) -> Any:
    """A pipeline of ``client`` without MULTI, holding ``calls``; the caller executes it.

    Each call is ``(method name, args)``. ``client`` may be sync or asyncio, one server or
    a cluster."""
    pipe = client.pipeline(transaction=False)
    for method, args in calls:
        getattr(pipe, method)(*args)
    return pipe


def unavailable(alias: str, exc: BaseException) -> BackendUnavailable:
    """The error a connection failure on the cache ``alias`` surfaces as."""
    return BackendUnavailable(
        f"Redis of cache alias {alias!r} is unavailable: {type(exc).__name__}: {exc}"
    )


Executor = Callable[[Any, Request], Any]
AsyncExecutor = Callable[[Any, Request], Awaitable[Any]]


def drive(client: Any, alias: str, op: Op[T], send: Executor = execute) -> T:
    """Run ``op`` on the blocking ``client``; each request it yields is one round trip.

    ``send`` is :func:`execute`, or the cluster's. A refused command is thrown into the
    operation, which may clean up. A connection failure ends it as ``BackendUnavailable``.
    """
    try:
        request = next(op)
        while True:
            try:
                reply = send(client, request)
            except UNAVAILABLE:
                raise
            except Exception as exc:
                request = op.throw(exc)
                continue
            request = op.send(reply)
    except StopIteration as stop:
        return stop.value
    except UNAVAILABLE as exc:
        raise unavailable(alias, exc) from exc


async def adrive(client: Any, alias: str, op: Op[T], send: AsyncExecutor = aexecute) -> T:
    """:func:`drive` on a ``redis.asyncio`` client."""
    try:
        request = next(op)
        while True:
            try:
                reply = await send(client, request)
            except UNAVAILABLE:
                raise
            except Exception as exc:
                request = op.throw(exc)
                continue
            request = op.send(reply)
    except StopIteration as stop:
        return stop.value
    except UNAVAILABLE as exc:
        raise unavailable(alias, exc) from exc


def is_django_redis(backend: object) -> bool:
    """Whether the ``CACHES`` ``BACKEND`` path ``backend`` names django-redis's cache class.

    A subclass of it counts too."""
    if not isinstance(backend, str):
        return False
    try:
        from django.utils.module_loading import import_string
        from django_redis.cache import RedisCache

        cls = import_string(backend)
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, RedisCache)
