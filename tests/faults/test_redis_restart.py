"""A Redis restart under load, with the persistence the README asks for (an append-only file
fsynced on every write): claims, locks and states survive, so every message is applied once.

The server is a private ``redis-server`` the test starts and SIGKILLs (no shutdown save) and
starts again on the same files, as a crash and a supervisor would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import checks
from django.test import override_settings

from tests.faults.redelivery import deliver, tally
from tests.faults.redis_server import RedisServer

pytestmark = pytest.mark.needs_kind("redis")


@pytest.fixture
def durable() -> Iterator[RedisServer]:
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    yield server
    server.close()


def _on(server: RedisServer) -> Any:
    caches = {
        **settings.CACHES,
        "private": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": server.url},
    }
    return override_settings(
        CACHES=caches,
        CHATSTATE={
            "ADAPTER": "chatstate.adapters.redis.RedisStateAdapter",
            "OPTIONS": {"alias": "private"},
        },
    )


def test_a_restart_with_an_append_only_file_loses_and_doubles_nothing(
    durable: RedisServer, figures: Callable[..., None]
) -> None:
    from chatstate.adapters.redis import RedisStateAdapter

    messages, restarts = 40, 3
    ids = [f"m{n}" for n in range(messages)]
    with _on(durable):
        store = RedisStateAdapter(namespace="restart", alias="private")
        # a restart is asked at fixed points of the stream (not on a timer, which a fast
        # stream can outrun) and made by another thread while the deliveries go on
        asked = threading.Semaphore(0)
        restarted = 0

        def crash() -> None:
            nonlocal restarted
            while restarted < restarts and asked.acquire(timeout=60):
                durable.restart()
                restarted += 1

        thread = threading.Thread(target=crash, daemon=True)
        thread.start()
        met = []
        for n, i in enumerate(ids):
            if n % (messages // (restarts + 1)) == 0 and n:
                asked.release()
            met.append(deliver(store, i, thread_id=f"t{n % 2}", ttl=1.0, hold=0.01, pause=0.05))
        thread.join(timeout=60)
        seen = store.thread_state("t0").get("seen", []) + store.thread_state("t1").get("seen", [])
        counts = tally(seen, ids)
    unavailable = sum(m.get("unavailable", 0) for m in met)
    figures(backend="redis", restarts=restarted, unavailable=unavailable, **counts)
    assert restarted == restarts
    assert counts == {"messages": messages, "applied": messages, "doubles": 0, "lost": 0}


def test_a_server_without_an_append_only_file_is_a_deploy_warning(durable: RedisServer) -> None:
    from chatstate.checks import check_persistence

    with _on(durable):
        assert check_persistence() == []
        from chatstate.adapters.redis import RedisStateAdapter

        RedisStateAdapter(alias="private").connection.config_set("appendonly", "no")
        (warning,) = check_persistence()
    assert warning.id == "chatstate.W004" and warning.level == checks.WARNING
    assert "'private'" in warning.msg
