"""What is particular to a Redis Cluster (the shared behaviour runs in the conformance suite
as the ``redis_cluster`` backend): the client, one namespace on one node, scripts loaded on
demand on a master that lost them, the persistence check on the namespace's master."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest
import redis

from tests import redis_cluster as cluster_nodes
from tests.conftest import STORE_FACTORIES

pytestmark = [
    pytest.mark.run_on("postgresql"),
    pytest.mark.needs_kind("redis_cluster"),
]


@pytest.fixture
def adapter(request: pytest.FixtureRequest, redis_cluster: Any) -> Any:
    return STORE_FACTORIES["redis_cluster"](request, f"cl{os.getpid()}")


def _keys_by_node(cluster: cluster_nodes.RedisCluster, prefix: str) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    for port in cluster.processes:
        client = redis.Redis(port=port)
        try:
            if client.info("replication")["role"] == "master":
                keys = list(client.scan_iter(match=prefix + "*"))
                if keys:
                    found[port] = keys
        finally:
            client.close()
    return found


def test_a_namespace_lives_on_the_master_of_its_slot(
    adapter: Any, redis_cluster: cluster_nodes.RedisCluster
) -> None:
    import redis.cluster

    assert isinstance(adapter.connection, redis.cluster.RedisCluster)
    adapter.subscribe("t1")
    adapter.put_thread_state("t1", {"n": 1})
    adapter.claim_dedupe(("a", "m1"), 10)
    adapter.lock("t1", "me")
    adapter.lock("t1", "you", strategy="queue")
    found = _keys_by_node(redis_cluster, adapter.keys.prefix)
    assert list(found) == [redis_cluster.master_of(adapter.keys.subs)]
    assert len(found[redis_cluster.master_of(adapter.keys.subs)]) >= 6
    assert adapter.snapshot().thread_state == {"t1": {"n": 1}}
    assert adapter.clear() >= 6
    assert _keys_by_node(redis_cluster, adapter.keys.prefix) == {}


def test_scripts_a_master_lost_are_sent_again_as_text(
    adapter: Any, redis_cluster: cluster_nodes.RedisCluster
) -> None:
    for port in redis_cluster.processes:
        cluster_nodes.cli(port, "SCRIPT", "FLUSH")
    assert adapter.claim_dedupe(("a", "m1"), 10)
    assert not adapter.claim_dedupe(("a", "m1"), 10)
    for port in redis_cluster.processes:
        cluster_nodes.cli(port, "SCRIPT", "FLUSH")

    async def twice() -> tuple[bool, bool]:
        first = await adapter.aclaim_dedupe(("a", "m2"), 10)
        return first, await adapter.aclaim_dedupe(("a", "m2"), 10)

    assert asyncio.run(twice()) == (True, False)


def test_persistence_is_read_from_the_namespaces_master(adapter: Any) -> None:
    info = adapter._do_persistence()
    assert int(info["aof_enabled"]) == 0  # the tests' cluster keeps no files


def test_a_cluster_without_a_reachable_startup_node_is_unavailable(settings: Any) -> None:
    from chatstate import BackendUnavailable
    from chatstate.adapters.redis import RedisStateAdapter

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    settings.CACHES = {
        **settings.CACHES,
        "dead_cluster": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"CHATSTATE_CLUSTER": True, "SOCKET_CONNECT_TIMEOUT": 1},
        },
    }
    adapter = RedisStateAdapter("x", alias="dead_cluster")
    with pytest.raises(BackendUnavailable, match="'dead_cluster' is unavailable"):
        adapter.is_subscribed("t1")
    with pytest.raises(BackendUnavailable, match="'dead_cluster' is unavailable"):
        asyncio.run(adapter.ais_subscribed("t1"))
