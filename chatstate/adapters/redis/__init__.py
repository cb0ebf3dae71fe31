"""``RedisStateAdapter``: chat state in Redis, through a django-redis cache alias.

For many hosts and hot paths: every operation is one atomic server-side step — a Lua script
(:mod:`.scripts`) called by SHA, or one command — never a read followed by a separate write;
the message cycle of ``handle_message`` costs two round trips (one script to enter, one to
commit, whatever the cycle staged: :mod:`.cycle`). Lists and the outbox: :mod:`.lists`. Each
operation is written once, as a generator of requests (see
:mod:`chatstate.adapters.operations`), and run on the blocking client or, for the async twins,
natively on ``redis.asyncio`` (no thread hop).

Connection: the alias's ``CACHES`` settings (``django_redis.get_redis_connection(alias)``:
host, port, db, credentials, timeouts, TLS), on a pool of chatstate's own that never sends a
command again after a connection failure — a script whose reply was lost must not run twice.
A lost connection surfaces as :class:`~chatstate.types.BackendUnavailable` naming the alias;
the next call reconnects. The key layout: :mod:`.keys`. Requires Redis ≥ 6.2 (``COPY``, used
by snapshots). A Redis Cluster (``"CHATSTATE_CLUSTER": True`` in the alias's ``OPTIONS``):
:mod:`.cluster`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from django.conf import settings
from django.core import checks

from chatstate.adapters.base import StateAdapter
from chatstate.adapters.hooks import StateFn
from chatstate.adapters.operations import Op, operation
from chatstate.adapters.redis import activity, cluster, connection, records, scripts, streaming
from chatstate.adapters.redis.connection import CALL, EVAL
from chatstate.adapters.redis.cycle import RedisCycle
from chatstate.adapters.redis.keys import Keys, member, namespace_prefix, text
from chatstate.adapters.redis.lists import RedisLists, RedisOutbox
from chatstate.calls import Handover, LockOutcome, LockRequest, Pruned, PruneRequest
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import RESULTS, DedupeKey, PendingEntry, not_owner
from chatstate.validation import check_id, dump_map

T = TypeVar("T")


class RedisStateAdapter(RedisCycle, RedisLists, RedisOutbox, activity.RedisActivity, StateAdapter):
    """Chat state in Redis for one namespace; ``alias`` is a django-redis ``CACHES`` alias.

    ``client``: a ``redis.Redis`` (or ``redis.cluster.RedisCluster``) to use instead of the
    alias's (the alias still names it in messages). It must not retry commands after a
    connection failure.
    """

    name = "redis"

    def __init__(
        self, namespace: str | None = None, alias: str = "default", client: Any = None
    ) -> None:
        super().__init__(namespace)
        self.alias: str = check_id(alias, "alias")
        self.keys = Keys(namespace_prefix(self.namespace))
        self._client: Any = client
        self._cluster: Any = None  # the alias's CACHES entry when it is a cluster
        self._send: connection.Executor = connection.execute
        self._asend: connection.AsyncExecutor = connection.aexecute
        if client is not None and cluster.is_cluster(client):
            self._use_cluster({})
        self._async_clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def __repr__(self) -> str:
        return f"<RedisStateAdapter namespace={self.namespace!r} alias={self.alias!r}>"

    # -- connections ---------------------------------------------------------------------

    @property
    def connection(self) -> Any:
        """The ``redis.Redis`` client chatstate uses for the cache alias (built on first use)."""
        if self._client is None:
            config = cluster.alias_settings(self.alias)
            if config is not None:
                self._use_cluster(config)
                try:  # it reads the slot map from the first startup node that answers
                    self._client = cluster.sync_client(config)
                except connection.UNAVAILABLE as exc:
                    raise connection.unavailable(self.alias, exc) from exc
            else:
                self._client = connection.retryless_client(connection.client_for_alias(self.alias))
        return self._client

    def _use_cluster(self, config: Mapping[str, Any]) -> None:
        self._cluster = config
        self._send, self._asend = cluster.execute, cluster.aexecute

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            # A client belongs to its loop; forget those of loops that are gone.
            for old in [old for old in self._async_clients if old.is_closed()]:
                del self._async_clients[old]
            sync = self.connection  # built first: it tells whether the alias is a cluster
            if self._cluster is not None:
                client = cluster.async_client(self._cluster) if self._cluster else False
            else:
                client = connection.async_client_for(sync) or False
            self._async_clients[loop] = client
        return client

    def _drive(self, op: Op[T]) -> T:
        """Run the operation ``op`` on the blocking client."""
        return connection.drive(self.connection, self.alias, op, self._send)

    async def _adrive(self, op: Op[T]) -> T:
        """Run the operation ``op`` on this event loop's ``redis.asyncio`` client."""
        client = self._async_client()
        if client is False:  # no async twin of the pool's connection class: a thread
            return await super()._adrive(op)
        return await connection.adrive(client, self.alias, op, self._asend)

    def _do_check(self) -> list[checks.CheckMessage]:
        """System-check messages: ``chatstate.W002`` when the alias is not a django-redis cache."""
        config = getattr(settings, "CACHES", {}).get(self.alias)
        backend = config.get("BACKEND") if isinstance(config, Mapping) else None
        if backend == connection.DJANGO_REDIS_BACKEND or connection.is_django_redis(backend):
            return []
        where = "is not defined in CACHES" if backend is None else f"uses {backend}"
        return [
            checks.Warning(
                f"RedisStateAdapter's cache alias {self.alias!r} {where}, not django-redis.",
                hint="Point CHATSTATE['OPTIONS']['alias'] at a CACHES entry whose BACKEND is "
                f"{connection.DJANGO_REDIS_BACKEND!r} (pip install 'chatstate[redis]'); "
                "Django's own RedisCache works but ignores django-redis options.",
                id="chatstate.W002",
            )
        ]

    def _do_persistence(self) -> dict[str, Any]:
        """The server's persistence settings (``INFO persistence``): ``aof_enabled``,
        ``rdb_bgsave_in_progress``, ... (what a restart would keep); on a cluster, of the
        master holding this namespace's slot."""
        info: dict[str, Any] = cluster.info(self.connection, "persistence", self.keys.subs)
        return info

    def clear(self) -> int:
        """Delete every key of this namespace (``SCAN`` + ``UNLINK``); returns how many."""
        return self._drive(streaming.op_unlink_prefix(self.keys.prefix))

    # -- subscriptions and state maps ----------------------------------------------------

    @operation
    def _do_is_subscribed(self, thread_id: str) -> Op[bool]:
        return bool((yield (CALL, "sismember", (self.keys.subs, thread_id))))

    @operation
    def _do_subscribe(self, thread_id: str) -> Op[None]:
        yield (EVAL, scripts.SUBSCRIBE, [self.keys.subs, self.keys.subt], [thread_id, "1"])

    @operation
    def _do_unsubscribe(self, thread_id: str) -> Op[None]:
        yield (EVAL, scripts.SUBSCRIBE, [self.keys.subs, self.keys.subt], [thread_id, "0"])

    @operation
    def _do_get_state(self, kind: str, object_id: str) -> Op[dict[str, Any]]:
        value = yield (CALL, "hget", (self.keys.states[kind], object_id))
        return {} if value is None else records.loads(value)

    @operation
    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> Op[None]:
        keys = [self.keys.states[kind], self.keys.touched[kind]]
        yield (EVAL, scripts.PUT_STATE, keys, [object_id, value_json])

    @operation
    def _do_update_state(self, kind: str, object_id: str, fn: StateFn) -> Op[dict[str, Any]]:
        # Optimistic: read, apply ``fn``, then compare-and-set in one script; another
        # writer in between makes the script refuse, and ``fn`` runs again on the new map.
        # (WATCH would do the same at key granularity, and the hash holds every thread.)
        keys = [self.keys.states[kind], self.keys.touched[kind]]
        while True:
            old = yield (CALL, "hget", (keys[0], object_id))
            old_text = "" if old is None else text(old)
            state = fn({} if old is None else records.loads(old_text))
            new = dump_map(state, f"{kind} state returned by fn")
            if int((yield (EVAL, scripts.COMPARE_AND_SET, keys, [object_id, old_text, new]))):
                return records.loads(new)

    # -- dedupe --------------------------------------------------------------------------

    @operation
    def _do_is_duplicate(self, key: DedupeKey) -> Op[bool]:
        k = self.keys
        reply = yield (EVAL, scripts.IS_DUPLICATE, [k.dd, k.ddc, k.locks], [member(key)])
        return bool(int(reply))

    @operation
    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> Op[bool]:
        k = self.keys
        keys = [k.dd, k.ddseq, k.ddc, k.ddt, k.locks]
        args = [member(key), limit, records.ttl_ms(min_age) if min_age else 0]
        return bool(int((yield (EVAL, scripts.CLAIM, keys, args))))

    # -- locks ---------------------------------------------------------------------------

    @operation
    def _do_lock(self, request: LockRequest) -> Op[LockOutcome]:
        max_pending = "" if request.max_pending is None else request.max_pending
        keys, ttl = self.keys.queue(request.key), records.ttl_ms(request.ttl)
        if request.capped:  # a slot (lua/slots.lua)
            args = [request.key, request.owner, request.metadata, ttl, max_pending,
                    request.overflow, request.max_concurrent]  # fmt: skip
            result, dropped, previous = yield (EVAL, scripts.LOCK_SLOT, keys, args)
        else:
            args = [request.key, request.owner, request.strategy.value, request.metadata, ttl,
                    max_pending, request.overflow]  # fmt: skip
            result, dropped, previous = yield (EVAL, scripts.LOCK, keys, args)
        return LockOutcome(
            RESULTS[text(result)], records.pending_entries(dropped), previous and text(previous)
        )

    @operation
    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> Op[bool]:
        args = [key, owner, records.ttl_ms(ttl)]
        return bool(int((yield (EVAL, scripts.EXTEND, [self.keys.locks], args))))

    @operation
    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Op[Handover]:
        args = [key, owner, "1" if only_if_idle else "0", self._pending_ttl()]
        reply = yield (EVAL, scripts.RELEASE, self.keys.lock(key), args)
        if not int(reply[0]):
            raise not_owner(key, owner, text(reply[1]))
        return records.handover(reply)

    @operation
    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Op[Handover]:
        args = [key, owner, "" if limit is None else limit, self._pending_ttl()]
        reply = yield (EVAL, scripts.TAKE_PENDING, self.keys.lock(key), args)
        if not int(reply[0]):
            raise not_owner(key, owner, text(reply[1]))
        return records.handover(reply)

    @operation
    def _do_force_release_lock(self, key: str) -> Op[list[PendingEntry]]:
        reply = yield (EVAL, scripts.RELEASE, self.keys.lock(key), [key, "", "0", ""])
        return records.pending_entries(reply[2])

    # -- snapshots and housekeeping (see .streaming) -------------------------------------

    @operation
    def _do_snapshot(self) -> Op[Snapshot]:
        return (yield from streaming.op_snapshot(self.keys))

    def snapshot_sections(self) -> AbstractContextManager[SnapshotSections]:
        """The namespace as streamed sections of one frozen state (see :mod:`.streaming`)."""
        return streaming.snapshot_sections(self.keys, self._drive)

    @operation
    def _do_load_snapshot(self, snapshot: Snapshot, merge: bool) -> Op[None]:
        sections = streaming.Sections.of(snapshot)
        yield from streaming.op_load(self.keys, sections, merge, self.lock_ttl)

    def load_snapshot_stream(self, sections: SnapshotSections, merge: bool = False) -> None:
        """Load streamed ``sections`` (the restore command): all or nothing, as load_snapshot."""
        self._drive(
            streaming.op_load(
                self.keys, streaming.Sections.of(sections), bool(merge), self.lock_ttl
            )
        )

    @operation
    def _do_prune(self, request: PruneRequest) -> Op[Pruned]:
        k = self.keys
        reply = yield (
            EVAL,
            scripts.PRUNE,
            [k.locks, k.dd, k.ddc, k.ddt, k.qkeys, k.ts, k.cs, k.tt, k.ct, k.subs, k.subt, k.lkeys],
            [
                request.dedupe_limit,
                "1" if request.dry_run else "0",
                records.ttl_ms(request.min_age) if request.min_age else 0,
                "" if request.pending_ttl is None else records.ttl_ms(request.pending_ttl),
                ""
                if request.state_older_than is None
                else records.ttl_ms(request.state_older_than),
                k.prefix,
            ],
        )
        names = (
            "expired_locks",
            "dedupe_trimmed",
            "pending_expired",
            "states_removed",
            "subscriptions_removed",
        )
        counts = {name: int(n) for name, n in zip(names, reply[:5], strict=True)}
        counts["lists_expired"] = int(reply[6])
        flat = reply[5]
        expired = {
            text(flat[i]): records.pending_entries(flat[i + 1]) for i in range(0, len(flat), 2)
        }
        return Pruned(counts, expired)
