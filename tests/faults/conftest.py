"""Fixtures of the fault tests: adapters whose connections run through a :class:`FaultProxy`.

The fault tests need a server on the network, so they belong to the PostgreSQL run (with
Redis); in the SQLite run they are deselected, not skipped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from tests import services
from tests.conftest import STORE_FACTORIES, VENDOR
from tests.faults.proxy import FaultProxy

HERE = Path(__file__).parent
#: The runs these tests belong to (by database vendor).
RUNS = ("postgresql",)
#: Not the cluster: its redirects name the nodes' own ports (no proxy can sit in between);
#: its faults are a master's death (``test_redis_cluster_failover``).
KINDS = [kind for kind in STORE_FACTORIES if kind not in ("memory", "redis_cluster")]
_namespaces = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside the runs of ``RUNS``, deselect the tests of this directory."""
    ours = [item for item in items if HERE in Path(str(item.path)).parents]
    if VENDOR not in RUNS and ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if item not in ours]


class Proxied:
    """An adapter whose every connection runs through ``proxy``, and a plain twin of it."""

    def __init__(self, kind: str, adapter: Any, plain: Any, proxy: FaultProxy) -> None:
        self.kind, self.adapter, self.plain, self.proxy = kind, adapter, plain, proxy


@pytest.fixture(params=KINDS)
def proxied(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[Proxied]:
    """The run's backends (but memory), each on a connection through a fault proxy."""
    kind = request.param
    namespace = f"f{os.getpid()}-{next(_namespaces)}"
    plain = STORE_FACTORIES[kind](request, namespace)
    if kind == "redis":
        from chatstate.adapters.redis import RedisStateAdapter

        url = services.REDIS_URL
        host_port, db = url.split("//", 1)[1].rsplit("/", 1)
        host, port = host_port.rsplit(":", 1)
        proxy = FaultProxy(host, int(port))
        caches = {
            **settings.CACHES,
            "faulty": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{proxy.port}/{db}",
            },
        }
        with override_settings(CACHES=caches):
            yield Proxied(
                kind, RedisStateAdapter(namespace=namespace, alias="faulty"), plain, proxy
            )
        proxy.close()
        return
    from chatstate.adapters.database import DatabaseStateAdapter

    settings_dict = connections["default"].settings_dict
    original = (settings_dict["HOST"], settings_dict["PORT"])
    proxy = FaultProxy(original[0] or "127.0.0.1", int(original[1] or 5432))
    connections["default"].close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(proxy.port)
    try:
        adapter = DatabaseStateAdapter(namespace=namespace, fast_sql=kind == "database")
        yield Proxied(kind, adapter, adapter, proxy)
    finally:
        connections["default"].close()
        settings_dict["HOST"], settings_dict["PORT"] = original
        proxy.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Any:
    """Record a fault test's counts (printed, and again in the terminal summary)."""

    def record(**values: Any) -> None:
        text = ", ".join(f"{k}={v}" for k, v in values.items())
        line = f"{request.node.name}: {text}"
        print(f"\n[faults] {line}")
        # tests/concurrency/conftest.py prints it in the summary, from any xdist worker
        request.node.user_properties.append(("figures", line))

    return record
