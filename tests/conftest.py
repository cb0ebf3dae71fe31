"""Fixtures shared by the suite: ``store`` runs a test against every adapter of the run.

Like Django's own cache tests, one body of tests runs against every backend: ``memory``,
``database`` (the run's database: SQLite, PostgreSQL through its fast path, or MariaDB/MySQL
through the ORM path), ``database_orm`` (PostgreSQL through the portable ORM path),
``redis`` (when the Redis adapter is installed and the server reachable; required under
``CI=true``) and ``redis_cluster`` (the Redis adapter on a 3-master Redis Cluster the run
starts itself, :mod:`tests.redis_cluster`; PostgreSQL run, required under ``CI=true``).
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from tests import redis_cluster as cluster_nodes
from tests import services

_ENGINE = settings.DATABASES["default"]["ENGINE"]
VENDOR = next((vendor for vendor in ("postgresql", "mysql") if _ENGINE.endswith(vendor)), "sqlite")
_namespaces = itertools.count(1)


def _memory(request: pytest.FixtureRequest, namespace: str) -> Any:
    from chatstate.adapters.memory import MemoryStateAdapter

    return MemoryStateAdapter(namespace=namespace)


def _database(request: pytest.FixtureRequest, namespace: str) -> Any:
    from chatstate.adapters.database import DatabaseStateAdapter

    adapter = DatabaseStateAdapter(namespace=namespace)
    close = getattr(adapter, "close", None)  # the fast path's async connections
    if close is not None:
        request.addfinalizer(close)
    return adapter


def _database_orm(request: pytest.FixtureRequest, namespace: str) -> Any:
    from chatstate.adapters.database import DatabaseStateAdapter

    return DatabaseStateAdapter(namespace=namespace, fast_sql=False)


def _redis(request: pytest.FixtureRequest, namespace: str) -> Any:
    from chatstate.adapters.redis import RedisStateAdapter

    adapter = RedisStateAdapter(namespace=namespace, alias="chatstate")
    request.addfinalizer(adapter.clear)
    return adapter


def _redis_cluster(request: pytest.FixtureRequest, namespace: str) -> Any:
    from chatstate.adapters.redis import RedisStateAdapter

    if hasattr(request, "getfixturevalue"):  # in a cross-process child: the parent's is up
        request.getfixturevalue("redis_cluster")
    adapter = RedisStateAdapter(namespace=namespace, alias="chatstate_cluster")
    request.addfinalizer(adapter.clear)
    return adapter


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[cluster_nodes.RedisCluster]:
    """The run's own Redis Cluster (3 masters, 3 replicas on loopback), killed at the end.

    Under ``CI=true`` a cluster that cannot start fails the tests using it; elsewhere they
    are skipped with the reason."""
    try:
        nodes = cluster_nodes.RedisCluster().start()
    except (cluster_nodes.ClusterStartError, OSError, subprocess.SubprocessError) as exc:
        if services.IN_CI:
            pytest.fail(f"CI=true but the Redis Cluster could not start: {exc}")
        pytest.skip(f"the Redis Cluster could not start: {exc}")
    yield nodes
    nodes.close()


STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, str], Any]] = {
    "memory": _memory,
    "database": _database,
}
if VENDOR == "postgresql":
    STORE_FACTORIES["database_orm"] = _database_orm


def _redis_adapter_exists() -> bool:
    try:
        import chatstate.adapters.redis  # noqa: F401
    except ImportError:
        return False
    return True


# Memory runs in the SQLite run only; Redis in the PostgreSQL run only (once each is enough);
# the MariaDB/MySQL run is the ORM path on that database.
if VENDOR != "sqlite":
    del STORE_FACTORIES["memory"]
if VENDOR == "postgresql" and _redis_adapter_exists():
    if not settings.REDIS_AVAILABLE and services.IN_CI:
        raise RuntimeError("CI=true but Redis is unreachable: the Redis suite is required")
    if settings.REDIS_AVAILABLE:
        STORE_FACTORIES["redis"] = _redis
    if not cluster_nodes.available() and services.IN_CI:
        raise RuntimeError("CI=true but redis-server is missing: the cluster suite is required")
    if cluster_nodes.available():
        STORE_FACTORIES["redis_cluster"] = _redis_cluster


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backends this run covers, and why one is left out."""
    lines = [f"chatstate backends ({VENDOR} run): {', '.join(STORE_FACTORIES)}"]
    if VENDOR == "postgresql" and "redis" not in STORE_FACTORIES:
        lines.append(f"SKIPPED the Redis suite: Redis at {services.REDIS_URL} is unreachable")
    return lines


@pytest.fixture(params=list(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Any]:
    """A fresh, empty adapter in its own namespace, for each backend of this run.

    Every test gets the ``db`` fixture (each test in a transaction rolled back at its end),
    so database-backed stores start empty; the others ignore it.
    """
    namespace = f"t{os.getpid()}-{next(_namespaces)}"
    yield STORE_FACTORIES[request.param](request, namespace)


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store: Any) -> Callable[..., Any]:
    """Build another adapter of the same backend as ``store`` (e.g. in another namespace)."""
    kind = request.node.callspec.params["store"]

    def make(namespace: str | None = None) -> Any:
        return STORE_FACTORIES[kind](request, namespace or f"t{os.getpid()}-{next(_namespaces)}")

    return make


# -- tests that belong to one database's run ------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "run_on(vendor): collect only in the run on that database ('sqlite', "
        "'postgresql' or 'mysql'); elsewhere the test is deselected, not skipped",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests marked ``run_on(vendor)`` for another database's run."""
    other = [
        item
        for item in items
        if (marker := item.get_closest_marker("run_on")) and marker.args[0] != VENDOR
    ]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]


# -- per-backend counts in the summary -------------------------------------------------

_tally: Counter[tuple[str, str]] = Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("store") if callspec else None
        label = backend or "other"
        if backend == "database" or backend is None:
            label = f"{label}/{VENDOR}"
        _tally[(label, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    labels = sorted({label for label, _ in _tally})
    if not labels:
        return
    terminalreporter.write_sep("-", f"tests per backend ({VENDOR} run)")
    for label in labels:
        counts = ", ".join(
            f"{_tally[(label, o)]} {o}"
            for o in ("passed", "failed", "skipped")
            if _tally[(label, o)]
        )
        terminalreporter.write_line(f"{label:>22}: {counts}")
