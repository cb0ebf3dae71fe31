"""A Redis Cluster failover under a cross-process message load on one namespace.

Three processes deliver the same messages (a platform's redeliveries, see
:mod:`tests.faults.redelivery`) to one namespace of the tests' cluster; one second in, the
master owning the namespace's slot is SIGKILLed. Its replica is promoted after
``cluster-node-timeout`` (1 s) and an election; meanwhile the callers see
``BackendUnavailable`` and redeliver, then carry on with no action of theirs (the cluster
client finds the new master). Counted: each message's effect applied exactly once — no
doubles at all, and none lost but what Redis's asynchronous replication may lose: a write the
master acknowledged in the instant before it died, before its replica received it (each lost
message must have been acknowledged in the second before the kill). Afterwards the killed
node is started again and rejoins as a replica, so the cluster is whole for the next test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from chatstate import BackendUnavailable
from tests import redis_cluster as cluster_nodes
from tests.concurrency.harness import Crew, Target
from tests.conftest import STORE_FACTORIES
from tests.faults.redelivery import tally

pytestmark = [
    pytest.mark.run_on("postgresql"),
    pytest.mark.needs_kind("redis_cluster"),
]

#: Acknowledged writes older than this before the kill must have reached the replica.
REPLICATION_WINDOW = 1.0


@pytest.fixture
def store(request: pytest.FixtureRequest, transactional_db: None) -> Any:
    return STORE_FACTORIES["redis_cluster"](request, f"failover-{os.getpid()}")


@pytest.fixture
def crew(store: Any) -> Iterator[Crew]:
    target = Target(connections["default"].settings_dict["NAME"], "redis_cluster", store.namespace)
    crew = Crew(target)
    yield crew
    crew.close()


def _replicas_in_sync(cluster: cluster_nodes.RedisCluster) -> None:
    """Wait (bounded) until every replica's link to its master is up."""
    deadline = time.monotonic() + cluster_nodes.START_TIMEOUT
    for port in cluster.ports:
        while "role:slave" in (info := cluster_nodes.cli(port, "INFO", "replication")):
            if "master_link_status:up" in info:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the replica on port {port} did not sync in time")
            time.sleep(0.05)


def test_a_killed_master_is_replaced_and_no_message_doubles_or_is_lost(
    redis_cluster: cluster_nodes.RedisCluster,
    store: Any,
    crew: Crew,
    figures: Callable[..., None],
) -> None:
    _replicas_in_sync(redis_cluster)
    processes, messages, threads = 3, 300, 3
    ids = [f"m{n}" for n in range(messages)]
    started = crew.event("started")
    batch = crew.start(
        "deliver_messages_timed",
        [{"message_ids": ids, "threads": threads, "ttl": 2.0, "hold": 0.03}] * processes,
        timeout=180,
    )
    victim = redis_cluster.master_of(store.keys.subs)
    try:
        assert started.wait(timeout=60)
        time.sleep(1.0)  # under load
        killed_at = time.time()
        redis_cluster.kill(victim)
        down = 0
        while True:  # the gap, as a caller sees it: until the slot answers again
            try:
                store.is_subscribed("probe")
                break
            except BackendUnavailable:
                down += 1
                if time.time() - killed_at > 60:
                    pytest.fail("no replica took over the slot within 60 s")
                time.sleep(0.01)
        gap = time.time() - killed_at
        promoted = redis_cluster.master_of(store.keys.subs)
        reports = batch.wait()
    finally:
        if victim not in redis_cluster.processes:  # back as a replica, for the next tests
            redis_cluster.start_node(victim)
            redis_cluster.wait_ok()
    seen = [i for t in range(threads) for i in store.thread_state(f"t{t}").get("seen", [])]
    counts = tally(seen, ids)
    handled_at: dict[str, list[float]] = {}
    for report in reports:
        for message_id, at in report["handled_at"].items():
            handled_at.setdefault(message_id, []).append(at)
    lost = [i for i in ids if i not in seen]
    just_before = {
        i
        for i, times in handled_at.items()
        if any(killed_at - REPLICATION_WINDOW <= t <= killed_at for t in times)
    }
    unavailable = sum(r["met"].get("unavailable", 0) for r in reports)
    figures(
        backend="redis_cluster",
        processes=processes,
        killed_master=victim,
        promoted=promoted,
        gap_seconds=round(gap, 2),
        unavailable=unavailable,
        acknowledged_in_last_second=len(just_before),
        seconds=round(batch.seconds, 2),
        **counts,
    )
    assert promoted != victim
    assert unavailable > 0, "the callers never saw the failover"
    assert counts["doubles"] == 0
    assert set(lost) <= just_before, "a message acknowledged well before the kill was lost"
    assert counts["applied"] + counts["lost"] == messages
