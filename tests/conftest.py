"""Fixtures shared by the suite: ``store`` runs a test against every adapter of the run.

Like Django's own cache tests, one body of tests runs against every backend: ``memory``,
``database`` (the run's database: SQLite, PostgreSQL through its fast path, or MariaDB/MySQL
through the ORM path), ``database_orm`` (PostgreSQL through the portable ORM path),
``redis`` (when the Redis adapter is installed and the server reachable; required under
``CI=true``) and ``redis_cluster`` (the Redis adapter on a 3-master Redis Cluster the run
starts itself, :mod:`tests.redis_cluster`; PostgreSQL run, required under ``CI=true``).
The conformance suite (``chatstate.testing``, fed by the root ``conftest.py``) and the
cross-process suite add the PostgreSQL run's mirror kinds: ``database_pgbouncer`` (the fast
path through a PgBouncer in transaction pooling the run starts, required under
``CI=true``) and ``database_pool`` (through Django's own psycopg pool; conformance only).
The fixtures and hooks every test sees, wherever it lives, are in :mod:`tests.plugin`.
"""

from __future__ import annotations

import itertools
import os
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

        def finish() -> None:
            # Its async twins commit on connections of their own, outside the test's rolled
            # back transaction: what they wrote goes once that transaction has ended.
            if adapter._async._pools:
                COMMITTED_ELSEWHERE.append((adapter.using, namespace))
            close()

        request.addfinalizer(finish)
    return adapter


#: ``(alias, namespace)`` of the fast-path stores of the running test.
COMMITTED_ELSEWHERE: list[tuple[str, str]] = []


def _database_orm(request: pytest.FixtureRequest, namespace: str) -> Any:
    from chatstate.adapters.database import DatabaseStateAdapter

    return DatabaseStateAdapter(namespace=namespace, fast_sql=False)


def _through(alias: str) -> Callable[[pytest.FixtureRequest, str], Any]:
    """A factory of the fast path on the mirror alias ``alias`` of the test database. Its
    tests commit (see :func:`pytest_collection_modifyitems`); the namespace's rows are
    deleted at the end of the test."""

    def factory(request: pytest.FixtureRequest, namespace: str) -> Any:
        from chatstate.adapters.database import DatabaseStateAdapter

        if hasattr(request, "getfixturevalue"):
            request.getfixturevalue("_mirror_connections")
        adapter = DatabaseStateAdapter(namespace=namespace, using=alias)
        request.addfinalizer(adapter.close)
        request.addfinalizer(lambda: _delete_chatstate_rows(alias))
        return adapter

    return factory


def _delete_chatstate_rows(alias: str) -> None:
    """Delete every chatstate row (what a mirror test committed: no other test runs meanwhile,
    and the others leave nothing committed), in one transaction (the foreign keys are
    deferred to its commit). Far cheaper than the flush of every table."""
    from django.apps import apps
    from django.db import connections, transaction

    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for model in apps.get_app_config("chatstate").get_models():
            cursor.execute(f"DELETE FROM {model._meta.db_table}")


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


STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, str], Any]] = {
    "memory": _memory,
    "database": _database,
}
#: Store kinds on a mirror alias of the test database, and that alias: PgBouncer in
#: transaction pooling, Django's own psycopg pool (PostgreSQL run only).
MIRRORS: dict[str, str] = {}
if VENDOR == "postgresql":
    STORE_FACTORIES["database_orm"] = _database_orm
    MIRRORS["database_pool"] = "pool"
    if "pgbouncer" in settings.DATABASES:
        MIRRORS["database_pgbouncer"] = "pgbouncer"
    elif services.IN_CI:
        raise RuntimeError(f"CI=true but PgBouncer is unavailable: {settings.PGBOUNCER_ERROR}")


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

#: ``CHATSTATE_TEST_KINDS`` (comma-separated) keeps only those kinds. The tox matrix uses it:
#: a Python or Django version changes nothing a pooler or a cluster does; make test runs all.
KINDS_WANTED = {k for k in os.environ.get("CHATSTATE_TEST_KINDS", "").split(",") if k}
if KINDS_WANTED:
    for _kinds in (STORE_FACTORIES, MIRRORS):
        for _kind in set(_kinds) - KINDS_WANTED:
            del _kinds[_kind]

#: The mirror kinds' factories: not in ``STORE_FACTORIES`` (every test of ``store``), but in
#: the conformance suite (the root ``conftest.py``) and the cross-process suite.
MIRROR_FACTORIES = {kind: _through(alias) for kind, alias in MIRRORS.items()}
#: Every kind's factory, by name (what ``make_store`` and the cross-process children use).
ALL_FACTORIES = {**STORE_FACTORIES, **MIRROR_FACTORIES}


def next_namespace() -> str:
    """A namespace no other test of this process has used."""
    return f"t{os.getpid()}-{next(_namespaces)}"


def backend_of(item: pytest.Item) -> str | None:
    """The store kind ``item`` runs on: its ``store`` (``tests/``) or its
    ``chatstate_store_factory`` (the conformance suite, ``chatstate/testing``)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    kind = callspec.params.get("store", callspec.params.get("chatstate_store_factory"))
    return None if kind is None else str(kind)


@pytest.fixture(params=list(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Any]:
    """A fresh, empty adapter in its own namespace, for each backend of this run.

    Every test gets the ``db`` fixture (each test in a transaction rolled back at its end),
    so database-backed stores start empty; the others ignore it.
    """
    namespace = next_namespace()
    yield STORE_FACTORIES[request.param](request, namespace)


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store: Any) -> Callable[..., Any]:
    """Build another adapter of the same backend as ``store`` (e.g. in another namespace)."""
    kind = request.node.callspec.params["store"]

    def make(namespace: str | None = None) -> Any:
        return ALL_FACTORIES[kind](request, namespace or next_namespace())

    return make


# -- tests that belong to one database's run ------------------------------------------

#: Besides tests/concurrency and tests/faults, the modules that stress a backend rather than a
#: Python or Django version: the tox matrix leaves them out (``-m "not stress"``).
STRESS = {
    "test_restore_limits.py",
    "test_snapshot_properties.py",
    "test_bot_webhook_fuzz.py",
    "test_bench.py",
    "test_bench_outbox.py",
    "test_restore_reader.py",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "run_on(*vendors): collect only in the runs on those databases ('sqlite', "
        "'postgresql', 'mysql'); elsewhere the test is deselected, not skipped",
    )
    config.addinivalue_line(
        "markers",
        "needs_kind(*kinds): deselected when one of those store kinds is not in this run (another "
        "database's run, CHATSTATE_TEST_KINDS, or a service absent outside CI; under CI=true "
        "an absent service fails the run), not skipped",
    )
    config.addinivalue_line(
        "markers",
        "needs_service(name): deselected when that service (services.SERVICES) is unreachable "
        "outside CI; under CI=true an unreachable one fails the run, never skips",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests marked ``run_on(*vendors)`` for another database's run, and those
    marked ``needs_kind(*kinds)`` for a run without those kinds; mark the stress tests (the
    mirror kinds' marks are :mod:`tests.plugin`'s)."""
    for item in items:  # the tox matrix leaves them out (-m "not stress"): make test runs them
        if item.path.parent.name in ("concurrency", "faults") or item.path.name in STRESS:
            item.add_marker(pytest.mark.stress)

    needed = {name for item in items for mark in item.iter_markers("needs_service")
              for name in mark.args}  # fmt: skip
    absent = services.unreachable(needed)

    def elsewhere(item: pytest.Item) -> bool:
        run_on, needs = item.get_closest_marker("run_on"), item.get_closest_marker("needs_kind")
        if run_on is not None and VENDOR not in run_on.args:
            return True
        if any(set(mark.args) & absent for mark in item.iter_markers("needs_service")):
            return True
        return needs is not None and not set(needs.args) <= STORE_FACTORIES.keys() | MIRRORS.keys()

    other = [item for item in items if elsewhere(item)]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]
