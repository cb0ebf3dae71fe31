"""Redis Cluster: the clients of a cache alias marked as a cluster, and how requests go out.

A ``CACHES`` alias is a cluster when its ``OPTIONS`` hold ``"CHATSTATE_CLUSTER": True``.
Its ``LOCATION``, a URL or a list of them, names the startup nodes. ``PASSWORD``,
``SOCKET_TIMEOUT``, ``SOCKET_CONNECT_TIMEOUT`` and ``CONNECTION_POOL_KWARGS`` apply to each
node's connections. django-redis has no cluster client. So chatstate builds redis-py's
:class:`redis.cluster.RedisCluster` from those settings. The async twins use
:class:`redis.asyncio.cluster.RedisCluster`. Nothing else reads the alias.

Every key of a namespace carries the namespace as its hash tag; see :mod:`.keys`. So a
namespace lives in one slot. Each of its scripts runs atomically on the master owning that
slot. ``EVALSHA`` names its keys, and the cluster client sends it to that master. On
``NOSCRIPT`` the script did not run, and its text goes as ``EVAL``. A cluster calls the
scripts by SHA, not as functions (:mod:`.invoke`): redis-py before 8 asks a server for the
keys of each ``FCALL`` it routes. ``SCAN`` runs on the
node of the prefix's slot. It clears a namespace and removes a snapshot's copy.

The clients never send a command again after a connection failure; ``retry`` allows 0
attempts. A script whose reply was lost must not run twice. ``MOVED`` and ``ASK`` replies
are followed; the command did not run there. During a failover, commands fail as
``BackendUnavailable`` until the replica is promoted. The client then finds the new master.
The single-node fast paths are not used on a cluster. They are
:func:`.connection.eval_pinned` and :mod:`.multiplex`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from chatstate.adapters.redis.connection import BATCH, CALL, EVAL, SCAN, Request, pipelined

OPTION = "CHATSTATE_CLUSTER"


def alias_settings(alias: str) -> Mapping[str, Any] | None:
    """The ``CACHES`` entry of ``alias`` when its ``OPTIONS`` mark it a cluster, else None."""
    from django.conf import settings

    config = getattr(settings, "CACHES", {}).get(alias)
    if not isinstance(config, Mapping):
        return None
    options = config.get("OPTIONS") or {}
    return config if options.get(OPTION) else None


def _client_kwargs(config: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    location = config.get("LOCATION") or "redis://127.0.0.1:6379"
    urls = [location] if isinstance(location, str) else list(location)
    options = config.get("OPTIONS") or {}
    kwargs: dict[str, Any] = dict(options.get("CONNECTION_POOL_KWARGS") or {})
    for option, name in (
        ("PASSWORD", "password"),
        ("SOCKET_TIMEOUT", "socket_timeout"),
        ("SOCKET_CONNECT_TIMEOUT", "socket_connect_timeout"),
    ):
        if options.get(option) is not None:
            kwargs[name] = options[option]
    return urls, kwargs


def sync_client(config: Mapping[str, Any]) -> Any:
    """A ``redis.cluster.RedisCluster`` for the alias ``config``, without retries."""
    urls, kwargs = _client_kwargs(config)
    nodes = [redis.cluster.ClusterNode(*_host_port(url)) for url in urls[1:]]
    return redis.cluster.RedisCluster.from_url(
        urls[0],
        startup_nodes=nodes,
        retry=redis.retry.Retry(NoBackoff(), 0),
        **kwargs,
    )


def async_client(config: Mapping[str, Any]) -> Any:
    """A ``redis.asyncio.cluster.RedisCluster`` for the alias ``config``, without retries."""
    urls, kwargs = _client_kwargs(config)
    nodes = [redis.asyncio.cluster.ClusterNode(*_host_port(url)) for url in urls[1:]]
    return redis.asyncio.cluster.RedisCluster.from_url(
        urls[0],
        startup_nodes=nodes,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        **kwargs,
    )


def _host_port(url: str) -> tuple[str, int]:
    from redis.connection import parse_url

    parsed = parse_url(url)
    return parsed.get("host", "127.0.0.1"), int(parsed.get("port", 6379))


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a redis-py cluster client, sync or async."""
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def info(client: Any, section: str, key: str) -> dict[str, Any]:
    """``INFO section`` of the server; on a cluster, of the master serving ``key``."""
    if is_cluster(client):
        return dict(client.info(section, target_nodes=client.get_node_from_key(key)))
    return dict(client.info(section))


def _scan_args(client: Any, request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    _, route_key, cursor, pattern, count = request
    node = client.get_node_from_key(route_key)
    return ("SCAN", cursor, "MATCH", pattern, "COUNT", count), {"target_nodes": node}


def execute(client: Any, request: Request) -> Any:
    """Send one request on the ``redis.cluster.RedisCluster`` ``client``; return its reply."""
    kind = request[0]
    if kind is EVAL:
        script, keys, args = request[1], request[2], request[3]
        try:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # not run on that master: send the text, which it caches
            return client.execute_command("EVAL", script.text, len(keys), *keys, *args)
    if kind is CALL:
        return getattr(client, request[1])(*request[2])
    if kind is SCAN:
        args, kwargs = _scan_args(client, request)
        return _scan_reply(client.execute_command(*args, **kwargs))
    assert kind is BATCH
    return pipelined(client, request[1]).execute()


async def aexecute(client: Any, request: Request) -> Any:
    """:func:`execute` on a ``redis.asyncio.cluster.RedisCluster``."""
    kind = request[0]
    if kind is EVAL:
        script, keys, args = request[1], request[2], request[3]
        try:
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.execute_command("EVAL", script.text, len(keys), *keys, *args)
    if kind is CALL:
        return await getattr(client, request[1])(*request[2])
    if kind is SCAN:
        args, kwargs = _scan_args(client, request)
        return _scan_reply(await client.execute_command(*args, **kwargs))
    assert kind is BATCH
    return await pipelined(client, request[1]).execute()


def _scan_reply(reply: Any) -> Any:
    """``(cursor, keys)`` of one node's ``SCAN``; redis-py keys the cursor by node name."""
    cursor, keys = reply
    if isinstance(cursor, dict):
        (cursor,) = cursor.values()
    return cursor, keys
