"""``RedisStateAdapter``: chat state in Redis, through a django-redis cache alias.

For many hosts and hot paths: every operation is one atomic server-side step — a Lua script
(:mod:`chatstate.adapters.redis_scripts`) called by SHA, or one command — never a read
followed by a separate write; the message cycle of ``handle_message`` costs two round trips
(one script to enter, one to commit). The async twins use ``redis.asyncio``, not threads.

Connection: ``django_redis.get_redis_connection(alias)``, so the alias's ``CACHES`` options
(pool size, TLS, timeouts, password) apply. The async client is built from the same
settings: the sync pool's ``connection_kwargs`` (host, port, db, credentials, timeouts,
TLS/unix-socket options) are handed to a ``redis.asyncio.ConnectionPool`` of the matching
async connection class, one pool per event loop (asyncio connections belong to the loop that
opened them). Options that only make sense to the sync client (its ``retry`` object, connect
callbacks) are left to the async defaults; a pool of another connection class (sentinel)
runs the async twins in a worker thread instead.

Requirements and cautions: Redis ≥ 6.2 (``COPY``, used by snapshots). Leave command retries
off on the alias (django-redis's default): a script re-sent after its reply was lost would
run twice (a claim would then report its own message as a duplicate); a lost connection
surfaces as :class:`~chatstate.types.BackendUnavailable` naming the alias instead.

Key layout — every key of a namespace starts with ``chatstate:{<namespace>}:`` (the braces
are a Redis Cluster hash tag: one namespace lives in one slot; ``\\`` and ``}`` in a
namespace are escaped with ``\\`` so no namespace's prefix is a prefix of another's):

==================  ======  ===========================================================
suffix              type    holds
==================  ======  ===========================================================
``subs``            set     subscribed thread ids
``dd``              zset    dedupe window: member ``adapter NUL message_id`` (NUL and
                            SOH escaped, so members sort as the keys do), score the
                            claim's sequence number (oldest first); trimmed by rank in
                            the script that adds
``ddseq``           string  the namespace's dedupe counter (``INCR`` in the same script)
``ts`` / ``cs``     hash    thread / channel id → state map (JSON text)
``locks``           hash    lock key → lock record (see ``redis_scripts``); the lease is
                            an expiry time on Redis's clock (``TIME``), so an expired lock
                            behaves as free while its pending list stays
``q:<key>``         list    the lock's pending entries, oldest first
``qkeys``           set     lock keys whose pending list is not empty
``tmp:<token>:…``   —       a snapshot being loaded (expires if the load dies midway)
``snap:<token>:…``  —       a frozen copy being read by a snapshot (expires likewise)
==================  ======  ===========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.core import checks

from chatstate.adapters import redis_scripts as lua
from chatstate.adapters.base import CycleEntry, DedupeKey, StateAdapter, StateFn
from chatstate.snapshot import Snapshot
from chatstate.transfer.sections import SnapshotSections
from chatstate.types import (
    RESULTS,
    STRATEGIES,
    BackendUnavailable,
    LockResult,
    NotOwner,
    PendingEntry,
    Strategy,
    epoch_to_iso,
    from_iso,
)
from chatstate.validation import check_id, dump_map, dump_metadata

try:
    import redis
    import redis.asyncio
    import redis.asyncio.connection
    import redis.connection
    from redis.exceptions import NoScriptError
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "RedisStateAdapter needs django-redis and redis: pip install 'chatstate[redis]'"
    ) from exc

T = TypeVar("T")

#: A request an operation hands to the driver: ``(EVAL, script, keys, args)``,
#: ``(CALL, method, args)`` or ``(BATCH, [(method, args), ...])`` (a pipeline, no MULTI).
Request = tuple[Any, ...]
Op = Generator[Request, Any, T]
EVAL, CALL, BATCH = "eval", "call", "batch"

CHUNK = 2000
"""Items per round trip when a snapshot is read or written (``SCAN`` counts, pipelines)."""

LOAD_TTL_MS = 3_600_000
"""How long the keys of an interrupted ``load_snapshot`` survive before Redis drops them."""

_DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
# Records are UTF-8 as Redis stores them: a string UTF-8 cannot encode (a lone surrogate) is
# refused with ``UnicodeEncodeError`` (a ``ValueError``), as it is in a key or a hash field.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads

# The async connection class for each sync one; kwargs the sync pool holds that mean
# nothing to (or are objects of) the sync client only.
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


def namespace_prefix(namespace: str) -> str:
    """``chatstate:{<namespace>}:`` with ``\\`` and ``}`` escaped: the namespace's key prefix."""
    escaped = namespace.replace("\\", "\\\\").replace("}", "\\}")
    return f"chatstate:{{{escaped}}}:"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Keys:
    """The key names of one namespace (or of a snapshot being loaded into it)."""

    __slots__ = ("prefix", "subs", "dd", "ddseq", "ts", "cs", "locks", "qkeys", "states")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.subs = prefix + "subs"
        self.dd = prefix + "dd"
        self.ddseq = prefix + "ddseq"
        self.ts = prefix + "ts"
        self.cs = prefix + "cs"
        self.locks = prefix + "locks"
        self.qkeys = prefix + "qkeys"
        self.states = {"thread": self.ts, "channel": self.cs}

    def q(self, key: str) -> str:
        return self.prefix + "q:" + key

    def fixed(self) -> list[str]:
        return [self.subs, self.dd, self.ddseq, self.ts, self.cs, self.locks, self.qkeys]


def _escape(part: str) -> str:
    if "\x00" in part or "\x01" in part:
        return part.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return part


_UNESCAPE = re.compile("\x01([\x01\x02])")


def _unescape(part: str) -> str:
    if "\x01" not in part:
        return part
    return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "\x01" else "\x01", part)


def _member(key: DedupeKey) -> str:
    """A dedupe key as a zset member: ``adapter NUL message_id``, NUL and SOH escaped.

    The encoding keeps order: members compared as bytes sort as the keys compare as tuples.
    """
    return _escape(key[0]) + "\x00" + _escape(key[1])


def _unmember(member: Any) -> DedupeKey:
    adapter, message_id = _text(member).split("\x00")
    return _unescape(adapter), _unescape(message_id)


def _unmembers(members: list[Any]) -> list[DedupeKey]:
    """:func:`_unmember` of a page of members (the common case, nothing escaped, fast)."""
    texts = (
        [_text(m) for m in members]
        if members and not isinstance(members[0], bytes)
        else [m.decode() for m in members]
    )
    if any("\x01" in t for t in texts):
        return [_unmember(t) for t in texts]
    return [(a, m) for a, m in (t.split("\x00") for t in texts)]


def _ttl_ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _iso(ms: Any, text: Any) -> str:
    return text if isinstance(text, str) else epoch_to_iso(float(ms) / 1000)


def _ms(text: object, default: int) -> int:
    return round(from_iso(text).timestamp() * 1000) if isinstance(text, str) else default


def _entry(raw: Any) -> PendingEntry:
    owner, strategy, meta, enqueued_ms, enqueued_text = _loads(raw)
    return PendingEntry(owner, STRATEGIES[strategy], _loads(meta), _iso(enqueued_ms, enqueued_text))


def _released(key: str, owner: str, reply: Any) -> list[PendingEntry]:
    if not int(reply[0]):
        holder = _text(reply[1])
        held_by = repr(holder) if holder else "nobody"
        raise NotOwner(f"{owner!r} does not hold the lock {key!r} (held by {held_by})")
    return [_entry(raw) for raw in reply[2]]


class _Pinned(threading.local):
    """This thread's own connection to each pool, for scripts (see :func:`_eval_pinned`)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.connections: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


_pinned = _Pinned()
_EXECUTE_COMMAND = redis.Redis.execute_command


def _eval_pinned(client: Any, script: lua.LuaScript, keys: list[str], args: list[Any]) -> Any:
    """``EVALSHA`` on a connection this thread keeps for ``client``'s pool (one per thread).

    The hot path: it skips redis-py's per-command pool checkout and wrappers, which cost more
    than the round trip itself, and never re-sends a command whose reply was lost (a script
    must not run twice). A connection the server closed meanwhile is replaced before use.
    """
    if _pinned.pid != os.getpid():  # a forked child: its parent's sockets are not its own
        _pinned.pid, _pinned.connections = os.getpid(), weakref.WeakKeyDictionary()
    pool = client.connection_pool
    connection = _pinned.connections.get(pool)
    if connection is None:
        connection = _pinned.connections[pool] = pool.make_connection()
    try:
        if connection.can_read():  # unread data, or the server hung up: start afresh
            connection.disconnect()
    except redis.ConnectionError:
        connection.disconnect()
    try:
        connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return connection.read_response()
    except NoScriptError:
        connection.send_command("SCRIPT", "LOAD", script.text)
        connection.read_response()
        connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return connection.read_response()


def _execute(client: Any, request: Request) -> Any:
    kind = request[0]
    if kind is EVAL:
        script, keys, args = request[1], request[2], request[3]
        if type(client).execute_command is _EXECUTE_COMMAND:
            return _eval_pinned(client, script, keys, args)
        # An instrumented client (one counting its commands): the same commands, through it.
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(script.text)
            return client.evalsha(script.sha, len(keys), *keys, *args)
    if kind is CALL:
        return getattr(client, request[1])(*request[2])
    pipe = client.pipeline(transaction=False)
    for method, args in request[1]:
        getattr(pipe, method)(*args)
    return pipe.execute()


async def _aexecute(client: Any, request: Request) -> Any:
    kind = request[0]
    if kind is EVAL:
        script, keys, args = request[1], request[2], request[3]
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(script.text)
            return await client.evalsha(script.sha, len(keys), *keys, *args)
    if kind is CALL:
        return await getattr(client, request[1])(*request[2])
    pipe = client.pipeline(transaction=False)
    for method, args in request[1]:
        getattr(pipe, method)(*args)
    return await pipe.execute()


def async_client_for(sync_client: Any) -> Any:
    """A ``redis.asyncio.Redis`` with the connection settings of ``sync_client``'s pool.

    None when the pool's connection class has no async counterpart here (e.g. sentinel).
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
    async_pool = redis.asyncio.ConnectionPool(
        connection_class=connection_class, max_connections=pool.max_connections, **kwargs
    )
    return redis.asyncio.Redis(connection_pool=async_pool)


class RedisStateAdapter(StateAdapter):
    """Chat state in Redis for one namespace; ``alias`` is a django-redis ``CACHES`` alias."""

    name = "redis"

    def __init__(self, namespace: str | None = None, alias: str = "default") -> None:
        super().__init__(namespace)
        self.alias: str = check_id(alias, "alias")
        self.keys = _Keys(namespace_prefix(self.namespace))
        self._connection: Any = None
        self._async_clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def __repr__(self) -> str:
        return f"<RedisStateAdapter namespace={self.namespace!r} alias={self.alias!r}>"

    # -- connections ---------------------------------------------------------------------

    @property
    def connection(self) -> Any:
        """The ``redis.Redis`` client of the cache alias (resolved on first use)."""
        if self._connection is None:
            self._connection = self._resolve_connection()
        return self._connection

    def _resolve_connection(self) -> Any:
        from django.core.cache import InvalidCacheBackendError, caches

        try:
            from django_redis import get_redis_connection

            return get_redis_connection(self.alias, write=True)
        except InvalidCacheBackendError:
            raise BackendUnavailable(
                f"chatstate's Redis cache alias {self.alias!r} is not defined in CACHES"
            ) from None
        except NotImplementedError:
            pass
        from django.core.cache.backends.redis import RedisCache

        cache = caches[self.alias]
        if isinstance(cache, RedisCache):  # Django's own Redis backend: its write client.
            return cache._cache.get_client(None, write=True)
        raise BackendUnavailable(
            f"chatstate's cache alias {self.alias!r} is not a Redis cache "
            f"({type(cache).__module__}.{type(cache).__name__}); use {_DJANGO_REDIS_BACKEND}"
        )

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            # A client belongs to its loop; forget those of loops that are gone.
            for old in [old for old in self._async_clients if old.is_closed()]:
                del self._async_clients[old]
            client = self._async_clients[loop] = async_client_for(self.connection) or False
        return client

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"Redis of cache alias {self.alias!r} is unavailable: {type(exc).__name__}: {exc}"
        )

    def _drive(self, op: Op[T]) -> T:
        """Run ``op`` on the sync client: each request it yields is one round trip."""
        client = self.connection
        try:
            request = next(op)
            while True:
                try:
                    reply = _execute(client, request)
                except _UNAVAILABLE:
                    raise
                except Exception as exc:  # a refused command: the operation may clean up
                    request = op.throw(exc)
                    continue
                request = op.send(reply)
        except StopIteration as stop:
            return stop.value
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    async def _adrive(self, op: Op[T]) -> T:
        """Run ``op`` on this event loop's ``redis.asyncio`` client."""
        client = self._async_client()
        if client is False:
            return await super()._arun(self._drive, op)
        try:
            request = next(op)
            while True:
                try:
                    reply = await _aexecute(client, request)
                except _UNAVAILABLE:
                    raise
                except Exception as exc:
                    request = op.throw(exc)
                    continue
                request = op.send(reply)
        except StopIteration as stop:
            return stop.value
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    async def _arun(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a hook's operation natively on ``redis.asyncio`` (hook ``_x`` → ``_op_x``)."""
        make_op = getattr(self, "_op" + getattr(fn, "__name__", ""), None)
        if make_op is None:
            return await super()._arun(fn, *args)
        return await self._adrive(make_op(*args))

    # -- checks and housekeeping for tests -----------------------------------------------

    def check(self) -> list[checks.CheckMessage]:
        """System-check messages: ``chatstate.W002`` when the alias is not a django-redis cache."""
        config = getattr(settings, "CACHES", {}).get(self.alias)
        backend = config.get("BACKEND") if isinstance(config, Mapping) else None
        if backend == _DJANGO_REDIS_BACKEND or _is_django_redis(backend):
            return []
        where = "is not defined in CACHES" if backend is None else f"uses {backend}"
        return [
            checks.Warning(
                f"RedisStateAdapter's cache alias {self.alias!r} {where}, not django-redis.",
                hint=f"Point CHATSTATE['OPTIONS']['alias'] at a CACHES entry whose BACKEND is "
                f"{_DJANGO_REDIS_BACKEND!r} (pip install 'chatstate[redis]'); Django's own "
                "RedisCache works but ignores django-redis options.",
                id="chatstate.W002",
            )
        ]

    def clear(self) -> int:
        """Delete every key of this namespace (``SCAN`` + ``UNLINK``); returns how many."""
        return self._drive(self._op_clear())

    def _op_clear(self) -> Op[int]:
        pattern = _glob_escape(self.keys.prefix) + "*"
        cursor, removed = 0, 0
        while True:
            cursor, found = yield (CALL, "scan", (cursor, pattern, 10 * CHUNK))
            if found:
                removed += (yield (CALL, "unlink", tuple(found))) or 0
            if not int(cursor):
                return removed

    # -- subscriptions -------------------------------------------------------------------

    def _do_is_subscribed(self, thread_id: str) -> bool:
        return self._drive(self._op_do_is_subscribed(thread_id))

    def _op_do_is_subscribed(self, thread_id: str) -> Op[bool]:
        return bool((yield (CALL, "sismember", (self.keys.subs, thread_id))))

    def _do_subscribe(self, thread_id: str) -> None:
        self._drive(self._op_do_subscribe(thread_id))

    def _op_do_subscribe(self, thread_id: str) -> Op[None]:
        yield (CALL, "sadd", (self.keys.subs, thread_id))

    def _do_unsubscribe(self, thread_id: str) -> None:
        self._drive(self._op_do_unsubscribe(thread_id))

    def _op_do_unsubscribe(self, thread_id: str) -> Op[None]:
        yield (CALL, "srem", (self.keys.subs, thread_id))

    # -- state maps ----------------------------------------------------------------------

    def _do_get_state(self, kind: str, object_id: str) -> dict[str, Any]:
        return self._drive(self._op_do_get_state(kind, object_id))

    def _op_do_get_state(self, kind: str, object_id: str) -> Op[dict[str, Any]]:
        text = yield (CALL, "hget", (self.keys.states[kind], object_id))
        return {} if text is None else _loads(text)

    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        self._drive(self._op_do_put_state(kind, object_id, value, value_json))

    def _op_do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> Op[None]:
        yield (CALL, "hset", (self.keys.states[kind], object_id, value_json))

    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> dict[str, Any]:
        return self._drive(self._op_do_update_state(kind, object_id, fn))

    def _op_do_update_state(self, kind: str, object_id: str, fn: StateFn) -> Op[dict[str, Any]]:
        # Optimistic: read, apply ``fn``, then compare-and-set in one script; another
        # writer in between makes the script refuse, and ``fn`` runs again on the new map.
        # (WATCH would do the same at key granularity, and the hash holds every thread.)
        hash_key = self.keys.states[kind]
        while True:
            old = yield (CALL, "hget", (hash_key, object_id))
            old_text = "" if old is None else _text(old)
            new = fn({} if old is None else _loads(old_text))
            text = dump_map(new, f"{kind} state returned by fn")
            if int((yield (EVAL, lua.COMPARE_AND_SET, [hash_key], [object_id, old_text, text]))):
                return _loads(text)

    # -- dedupe --------------------------------------------------------------------------

    def _do_is_duplicate(self, key: DedupeKey) -> bool:
        return self._drive(self._op_do_is_duplicate(key))

    def _op_do_is_duplicate(self, key: DedupeKey) -> Op[bool]:
        return (yield (CALL, "zscore", (self.keys.dd, _member(key)))) is not None

    def _do_claim_dedupe(self, key: DedupeKey, limit: int) -> bool:
        return self._drive(self._op_do_claim_dedupe(key, limit))

    def _op_do_claim_dedupe(self, key: DedupeKey, limit: int) -> Op[bool]:
        keys = [self.keys.dd, self.keys.ddseq]
        return bool(int((yield (EVAL, lua.CLAIM, keys, [_member(key), limit]))))

    def _do_withdraw_dedupe(self, key: DedupeKey) -> None:
        self._drive(self._op_do_withdraw_dedupe(key))

    def _op_do_withdraw_dedupe(self, key: DedupeKey) -> Op[None]:
        # The window is "the newest ``limit`` by rank": removing the member keeps it exact.
        yield (CALL, "zrem", (self.keys.dd, _member(key)))

    # -- locks ---------------------------------------------------------------------------

    def _lock_keys(self, key: str) -> list[str]:
        return [self.keys.locks, self.keys.q(key), self.keys.qkeys]

    def _do_lock(
        self,
        key: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        ttl: float,
        max_pending: int | None,
        overflow: str,
    ) -> LockResult:
        return self._drive(
            self._op_do_lock(key, owner, strategy, metadata, ttl, max_pending, overflow)
        )

    def _op_do_lock(
        self,
        key: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        ttl: float,
        max_pending: int | None,
        overflow: str,
    ) -> Op[LockResult]:
        args = [
            key,
            owner,
            strategy.value,
            metadata,
            _ttl_ms(ttl),
            "" if max_pending is None else max_pending,
            overflow,
        ]
        return RESULTS[_text((yield (EVAL, lua.LOCK, self._lock_keys(key), args)))]

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        return self._drive(self._op_do_extend_lock(key, owner, ttl))

    def _op_do_extend_lock(self, key: str, owner: str, ttl: float) -> Op[bool]:
        args = [key, owner, _ttl_ms(ttl)]
        return bool(int((yield (EVAL, lua.EXTEND, [self.keys.locks], args))))

    def _do_release_lock(self, key: str, owner: str, keep_pending: bool) -> list[PendingEntry]:
        return self._drive(self._op_do_release_lock(key, owner, keep_pending))

    def _op_do_release_lock(
        self, key: str, owner: str, keep_pending: bool
    ) -> Op[list[PendingEntry]]:
        args = [key, owner, "1" if keep_pending else "0"]
        return _released(key, owner, (yield (EVAL, lua.RELEASE, self._lock_keys(key), args)))

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        return self._drive(self._op_do_force_release_lock(key))

    def _op_do_force_release_lock(self, key: str) -> Op[list[PendingEntry]]:
        reply = yield (EVAL, lua.RELEASE, self._lock_keys(key), [key, "", "0"])
        return [_entry(raw) for raw in reply[2]]

    # -- the message cycle: one script to enter, one to commit ---------------------------

    def _cycle_enter(
        self,
        dedupe_key: DedupeKey,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        limit: int,
        ttl: float,
    ) -> CycleEntry:
        return self._drive(
            self._op_cycle_enter(dedupe_key, thread_id, owner, strategy, metadata, limit, ttl)
        )

    def _op_cycle_enter(
        self,
        dedupe_key: DedupeKey,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        metadata: str,
        limit: int,
        ttl: float,
    ) -> Op[CycleEntry]:
        k = self.keys
        reply = yield (
            EVAL,
            lua.CYCLE_ENTER,
            [k.dd, k.ddseq, k.subs, k.ts, k.locks, k.q(thread_id), k.qkeys],
            [_member(dedupe_key), limit, thread_id, owner, strategy.value, metadata, _ttl_ms(ttl)],
        )
        if not int(reply[0]):
            return False, bool(int(reply[1])), None, {}
        result = RESULTS[_text(reply[2])]
        state = reply[3] if len(reply) > 3 else None
        return True, bool(int(reply[1])), result, {} if state is None else _loads(state)

    def _cycle_commit(
        self,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        state: dict[str, Any] | None,
        state_json: str | None,
    ) -> list[PendingEntry]:
        return self._drive(self._op_cycle_commit(thread_id, owner, strategy, state, state_json))

    def _op_cycle_commit(
        self,
        thread_id: str,
        owner: str,
        strategy: Strategy,
        state: dict[str, Any] | None,
        state_json: str | None,
    ) -> Op[list[PendingEntry]]:
        if strategy is Strategy.CONCURRENT:
            if state_json is not None:
                yield (CALL, "hset", (self.keys.ts, thread_id, state_json))
            return []
        keys = [*self._lock_keys(thread_id), self.keys.ts]
        args = [thread_id, owner, state_json or ""]
        return _released(thread_id, owner, (yield (EVAL, lua.CYCLE_COMMIT, keys, args)))

    def _cycle_abort(
        self, dedupe_key: DedupeKey, thread_id: str, owner: str, strategy: Strategy
    ) -> None:
        self._drive(self._op_cycle_abort(dedupe_key, thread_id, owner, strategy))

    def _op_cycle_abort(
        self, dedupe_key: DedupeKey, thread_id: str, owner: str, strategy: Strategy
    ) -> Op[None]:
        keys = [self.keys.dd, *self._lock_keys(thread_id)]
        locked = "0" if strategy is Strategy.CONCURRENT else "1"
        yield (EVAL, lua.CYCLE_ABORT, keys, [_member(dedupe_key), thread_id, owner, locked])

    # -- snapshots -----------------------------------------------------------------------
    #
    # Reading: one script copies the namespace under ``snap:<token>:`` (``redis_scripts.
    # FREEZE``: Redis pauses about half a second per million dedupe keys), sorted views of
    # the copy are built chunk by chunk, each section is read page by page (``CHUNK`` items
    # per round trip), and the copies are removed. Writing: the new state is built under
    # ``tmp:<token>:`` in pipelines, then one script switches to it (``LOAD_REPLACE`` /
    # ``LOAD_MERGE``).

    def _do_snapshot(self) -> Snapshot:
        return self._drive(self._op_do_snapshot())

    def _op_do_snapshot(self) -> Op[Snapshot]:
        frozen, counts = yield from self._op_freeze()
        pages: dict[str, list[Any]] = {}
        try:
            for section, count in counts.items():
                pages[section] = []
                for start in range(0, count, CHUNK):
                    pages[section].extend((yield from self._op_page(frozen, section, start)))
        except Exception:
            yield from _op_unlink_prefix(frozen.prefix)
            raise
        yield from _op_unlink_prefix(frozen.prefix)
        return Snapshot(
            subscriptions=set(pages["subscriptions"]),
            dedupe=set(pages["dedupe_order"]),
            dedupe_order=pages["dedupe_order"],
            thread_state=dict(pages["thread_state"]),
            channel_state=dict(pages["channel_state"]),
            locks=dict(pages["locks"]),
            pending_locks=dict(pages["pending_locks"]),
        )

    @contextlib.contextmanager
    def snapshot_sections(self) -> Iterator[SnapshotSections]:
        """The namespace as streamed sections of one frozen state (see ``_op_freeze``)."""
        frozen, counts = self._drive(self._op_freeze())
        try:
            sections = SnapshotSections(
                **{name: self._iter_pages(frozen, name, n) for name, n in counts.items()},
                dedupe=self._iter_pages(frozen, "dedupe", counts["dedupe_order"]),
                counts={**counts, "dedupe": counts["dedupe_order"]},
            )
            yield sections
        finally:
            self._drive(_op_unlink_prefix(frozen.prefix))

    def _iter_pages(self, frozen: _Keys, section: str, count: int) -> Iterator[Any]:
        for start in range(0, count, CHUNK):
            yield from self._drive(self._op_page(frozen, section, start))

    def _op_freeze(self) -> Op[tuple[_Keys, dict[str, int]]]:
        """Copy the namespace in one step under a fresh prefix, then build sorted views."""
        frozen = _Keys(f"{self.keys.prefix}snap:{uuid.uuid4().hex}:")
        reply = yield (EVAL, lua.FREEZE, [], [self.keys.prefix, frozen.prefix, LOAD_TTL_MS])
        subs, dedupe, threads, channels, locks, pending = (int(n) for n in reply)
        for kind, source in (
            ("set", frozen.subs),
            ("zset", frozen.dd),
            ("hash", frozen.ts),
            ("hash", frozen.cs),
            ("hash", frozen.locks),
            ("set", frozen.qkeys),
        ):
            position: Any = 0
            while True:
                position = yield (
                    EVAL,
                    lua.SORT_CHUNK,
                    [source, source + ":sorted"],
                    [kind, position, CHUNK, LOAD_TTL_MS],
                )
                if _text(position) == "0":
                    break
        counts = {
            "subscriptions": subs,
            "dedupe_order": dedupe,
            "thread_state": threads,
            "channel_state": channels,
            "locks": locks,
            "pending_locks": pending,
        }
        return frozen, counts

    def _op_page(self, frozen: _Keys, section: str, start: int) -> Op[list[Any]]:
        """Items ``start`` .. ``start + CHUNK`` of a frozen section, in snapshot order."""
        stop = start + CHUNK - 1
        if section == "subscriptions":
            found = yield (CALL, "zrange", (frozen.subs + ":sorted", start, stop))
            return [_text(t) for t in found]
        if section in ("dedupe", "dedupe_order"):
            key = frozen.dd if section == "dedupe_order" else frozen.dd + ":sorted"
            return _unmembers((yield (CALL, "zrange", (key, start, stop))))
        if section == "pending_locks":
            found = yield (CALL, "zrange", (frozen.qkeys + ":sorted", start, stop))
            keys = [_text(k) for k in found]
            lists = yield (BATCH, [("lrange", (frozen.q(k), 0, -1)) for k in keys])
            return [
                (k, [_entry(raw).to_dict() for raw in items])
                for k, items in zip(keys, lists, strict=True)
            ]
        hash_key = {"thread_state": frozen.ts, "channel_state": frozen.cs}.get(
            section, frozen.locks
        )
        ids, values = yield (EVAL, lua.HASH_PAGE, [hash_key + ":sorted", hash_key], [start, stop])
        if section == "locks":
            return [(_text(i), _lock_dict(v)) for i, v in zip(ids, values, strict=True)]
        return [(_text(i), _loads(v)) for i, v in zip(ids, values, strict=True)]

    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> None:
        self._drive(self._op_do_load_snapshot(snapshot, merge))

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """Load streamed ``sections`` (the restore command): all or nothing, as load_snapshot."""
        self._drive(self._op_load(_Sections.of(sections), bool(merge)))

    def _op_do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> Op[None]:
        return (yield from self._op_load(_Sections.of(snapshot), merge))

    def _op_load(self, sections: _Sections, merge: bool) -> Op[None]:
        """Build the new state under a temporary prefix, then switch to it in one script.

        All or nothing: until the switching script runs, the live keys are untouched; if the
        build fails the temporary keys are removed (or expire after ``LOAD_TTL_MS``).
        """
        seconds, micros = yield (CALL, "time", ())
        now = int(seconds) * 1000 + int(micros) // 1000
        tmp = _Keys(f"{self.keys.prefix}tmp:{uuid.uuid4().hex}:")
        try:
            for batch in _parts(self._build_commands(sections, tmp, now), CHUNK // 10):
                yield (BATCH, batch)
            script = lua.LOAD_MERGE if merge else lua.LOAD_REPLACE
            yield (EVAL, script, [], [self.keys.prefix, tmp.prefix])
        except Exception:
            yield from _op_unlink_prefix(tmp.prefix)
            raise

    def _build_commands(
        self, sections: _Sections, tmp: _Keys, now: int
    ) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Pipeline commands writing ``sections`` under ``tmp``, each key set to expire."""

        def expiring(key: str, method: str, *args: Any) -> Iterator[tuple[str, tuple[Any, ...]]]:
            yield method, (key, *args)
            yield "pexpire", (key, LOAD_TTL_MS)

        for part in _parts(sections.subscriptions, CHUNK):
            yield from expiring(tmp.subs, "sadd", *part)
        seq = 0
        for keys in _parts(sections.dedupe_order, CHUNK):
            scores = {_member(key): seq + i for i, key in enumerate(keys, 1)}
            seq += len(keys)
            yield from expiring(tmp.dd, "zadd", scores)
        if seq:
            yield from expiring(tmp.ddseq, "set", seq)
        for kind, maps in (("thread", sections.thread_state), ("channel", sections.channel_state)):
            for state_part in _parts(maps, CHUNK):
                mapping = {i: dump_map(v) for i, v in state_part}
                yield from expiring(tmp.states[kind], "hset", None, None, mapping)
        default_expiry = now + _ttl_ms(self.lock_ttl)
        for lock_part in _parts(sections.locks, CHUNK):
            records = {
                key: _dumps(
                    [
                        lock["owner"],
                        lock["strategy"],
                        dump_metadata(lock.get("metadata")),
                        _ms(lock.get("acquired_at"), now),
                        _ms(lock.get("expires_at"), default_expiry),
                        lock.get("acquired_at") or False,
                        lock.get("expires_at") or False,
                    ]
                )
                for key, lock in lock_part
            }
            yield from expiring(tmp.locks, "hset", None, None, records)
        for key, entries in sections.pending_locks:
            items = [
                _dumps(
                    [
                        e["owner"],
                        e["strategy"],
                        dump_metadata(e.get("metadata")),
                        _ms(e.get("enqueued_at"), now),
                        e.get("enqueued_at") or False,
                    ]
                )
                for e in entries
            ]
            if items:
                for part in _parts(items, CHUNK):
                    yield from expiring(tmp.q(key), "rpush", *part)
                yield from expiring(tmp.qkeys, "sadd", key)

    # -- housekeeping --------------------------------------------------------------------

    def _do_prune(self, dedupe_limit: int, dry_run: bool) -> dict[str, int]:
        return self._drive(self._op_do_prune(dedupe_limit, dry_run))

    def _op_do_prune(self, dedupe_limit: int, dry_run: bool) -> Op[dict[str, int]]:
        keys = [self.keys.locks, self.keys.dd]
        expired, trimmed = yield (EVAL, lua.PRUNE, keys, [dedupe_limit, "1" if dry_run else "0"])
        return {"expired_locks": int(expired), "dedupe_trimmed": int(trimmed)}


def _op_unlink_prefix(prefix: str) -> Op[None]:
    cursor = 0
    pattern = _glob_escape(prefix) + "*"
    while True:
        cursor, found = yield (CALL, "scan", (cursor, pattern, 10 * CHUNK))
        if found:
            yield (CALL, "unlink", tuple(found))
        if not int(cursor):
            return


def _parts(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, consumed lazily."""
    iterator = iter(items)
    while part := list(itertools.islice(iterator, size)):
        yield part


def _lock_dict(record: Any) -> dict[str, Any]:
    owner, strategy, meta, acquired, expires, acquired_at, expires_at = _loads(record)
    return {
        "owner": owner,
        "strategy": strategy,
        "metadata": _loads(meta),
        "acquired_at": _iso(acquired, acquired_at),
        "expires_at": _iso(expires, expires_at),
    }


class _Sections(NamedTuple):
    """What a load reads: a ``Snapshot``'s or streamed ``SnapshotSections``' iterables."""

    subscriptions: Iterable[str]
    dedupe_order: Iterable[DedupeKey]
    thread_state: Iterable[tuple[str, dict[str, Any]]]
    channel_state: Iterable[tuple[str, dict[str, Any]]]
    locks: Iterable[tuple[str, dict[str, Any]]]
    pending_locks: Iterable[tuple[str, list[dict[str, Any]]]]

    @classmethod
    def of(cls, source: Snapshot | SnapshotSections) -> _Sections:
        if isinstance(source, Snapshot):
            return cls(
                source.subscriptions,
                source.dedupe_order,
                source.thread_state.items(),
                source.channel_state.items(),
                source.locks.items(),
                source.pending_locks.items(),
            )
        return cls(
            source.subscriptions,
            source.dedupe_order,
            source.thread_state,
            source.channel_state,
            source.locks,
            source.pending_locks,
        )


def _is_django_redis(backend: object) -> bool:
    if not isinstance(backend, str):
        return False
    try:
        from django.utils.module_loading import import_string
        from django_redis.cache import RedisCache

        cls = import_string(backend)
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, RedisCache)
