"""``chatstate_bench --server-work --adapter redis``: how commandstats become per-cycle figures.

The measuring itself resets a server's counters, so the tests never run it on the shared
Redis: they check the arithmetic and the command's refusals.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from bench import serverwork_redis


def test_scripts_count_once_and_the_commands_they_call_are_listed_apart() -> None:
    stats = {"evalsha": (20, 600), "hget": (50, 25), "hset": (40, 40)}
    figures = serverwork_redis.per_cycle(stats, 10, {})
    assert figures["server_us"] == 60.0  # the scripts' time already holds their commands'
    assert figures["all_commands_us"] == 66.5
    assert figures["scripts_per_cycle"] == {"evalsha": 2.0}
    hset, hget = {"calls": 4.0, "us": 4.0}, {"calls": 5.0, "us": 2.5}
    assert figures["inner"] == {"hset": hset, "hget": hget}


def test_a_command_sent_both_by_the_client_and_by_a_script_is_shared_by_its_calls() -> None:
    stats = {"eval": (10, 50), "get": (20, 40), "set": (30, 60), "del": (10, 10)}
    figures = serverwork_redis.per_cycle(stats, 10, serverwork_redis.PEER_SENT)
    assert figures["server_us"] == 5.0 + 2.0 + 6.0  # eval, the client's GETs, its SETs
    assert figures["inner"] == {"get": {"calls": 1.0, "us": 2.0}, "del": {"calls": 1.0, "us": 1.0}}


def test_server_work_on_redis_needs_the_private_servers_url() -> None:
    with pytest.raises(CommandError, match="--redis-url"):
        call_command("chatstate_bench", server_work=True, adapter="redis")


def test_server_work_for_an_adapter_without_its_module_is_refused() -> None:
    with pytest.raises(CommandError, match="not available for memory"):
        call_command("chatstate_bench", server_work=True, adapter="memory")
