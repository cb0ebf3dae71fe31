"""Fixtures shared by the suite: ``store`` runs a test against every adapter of the run.

Like Django's own cache tests, one body of tests runs against every backend: ``memory``,
``database`` (the run's database: SQLite, PostgreSQL through its fast path, or MariaDB/MySQL
through the ORM path), ``database_orm`` (PostgreSQL through the portable ORM path),
``redis`` (when the Redis adapter is installed and the server reachable; required under
``CI=true``) and ``redis_cluster`` (the Redis adapter on a 3-master Redis Cluster the run
starts itself, :mod:`tests.redis_cluster`; PostgreSQL run, required under ``CI=true``).
The conformance and cross-process suites add the PostgreSQL run's mirror kinds:
``database_pgbouncer`` (the fast path through a PgBouncer in transaction pooling the run
starts, required under ``CI=true``) and ``database_pool`` (through Django's own psycopg
pool; conformance only).
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

        def finish() -> None:
            # Its async twins commit on connections of their own, outside the test's rolled
            # back transaction: what they wrote goes once that transaction has ended.
            if adapter._async._pools:
                _COMMITTED_ELSEWHERE.append((adapter.using, namespace))
            close()

        request.addfinalizer(finish)
    return adapter


#: ``(alias, namespace)`` of the fast-path stores of the running test.
_COMMITTED_ELSEWHERE: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def _purge_committed_elsewhere() -> Iterator[None]:
    """After the test (autouse: torn down after ``db``), delete what the fast path's async
    connections committed in its namespaces."""
    yield
    while _COMMITTED_ELSEWHERE:
        _delete_namespace_rows(*_COMMITTED_ELSEWHERE.pop())


def _delete_namespace_rows(alias: str, namespace: str) -> None:
    """Delete ``namespace``'s committed rows on a connection of this function's own."""
    import psycopg
    from django.apps import apps
    from django.db import connections

    database = connections[alias].settings_dict
    params = {
        "host": database["HOST"] or "127.0.0.1",
        "port": database["PORT"] or 5432,
        "user": database["USER"],
        "password": database["PASSWORD"],
        "dbname": database["NAME"],
    }
    with psycopg.connect(**params, autocommit=True) as direct:
        for model in apps.get_app_config("chatstate").get_models():
            if any(field.name == "namespace" for field in model._meta.fields):
                direct.execute(
                    f"DELETE FROM {model._meta.db_table} WHERE namespace = %s", [namespace]
                )


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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[cluster_nodes.RedisCluster]:
    """The run's own Redis Cluster (3 masters, 3 replicas on loopback), killed at the end.

    Under ``CI=true`` a cluster that cannot start fails the tests using it; elsewhere they
    are skipped with the reason."""
    try:
        nodes = cluster_nodes.RedisCluster().start()
    except (cluster_nodes.ClusterStartError, OSError, subprocess.SubprocessError) as exc:
        if not services.IN_CI:  # absent here: skipped with the reason
            pytest.skip(f"the Redis Cluster could not start: {exc}")
        pytest.fail(f"CI=true but the Redis Cluster could not start: {exc}")
    yield nodes
    nodes.close()


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

#: The mirror kinds' factories: not in ``STORE_FACTORIES`` (every test of ``store``), but in
#: the conformance and cross-process suites, which override ``store`` to add them.
MIRROR_FACTORIES = {kind: _through(alias) for kind, alias in MIRRORS.items()}
#: Every kind's factory, by name (what ``make_store`` and the cross-process children use).
ALL_FACTORIES = {**STORE_FACTORIES, **MIRROR_FACTORIES}


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backends this run covers, and why one is left out."""
    lines = [f"chatstate backends ({VENDOR} run): {', '.join(ALL_FACTORIES)}"]
    if VENDOR == "postgresql" and "redis" not in STORE_FACTORIES:
        lines.append(f"SKIPPED the Redis suite: Redis at {services.REDIS_URL} is unreachable")
    if VENDOR == "postgresql" and "database_pgbouncer" not in MIRRORS:
        lines.append(f"SKIPPED the PgBouncer suite: {settings.PGBOUNCER_ERROR}")
    return lines


def next_namespace() -> str:
    """A namespace no other test of this process has used."""
    return f"t{os.getpid()}-{next(_namespaces)}"


@pytest.fixture(params=list(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Any]:
    """A fresh, empty adapter in its own namespace, for each backend of this run.

    Every test gets the ``db`` fixture (each test in a transaction rolled back at its end),
    so database-backed stores start empty; the others ignore it.
    """
    namespace = next_namespace()
    yield STORE_FACTORIES[request.param](request, namespace)


@pytest.fixture(scope="session")
def _mirror_connections(django_db_setup: None) -> Iterator[None]:
    """Close what holds server connections to the test database through a mirror alias
    (Django's pool, the bouncer) before the test database is dropped."""
    yield
    from django.db import connections

    from tests import pgbouncer

    for alias in MIRRORS.values():
        connections[alias].close()
    close_pool = getattr(connections["pool"], "close_pool", None)
    if close_pool is not None:
        close_pool()
    pgbouncer.stop()


@pytest.fixture(autouse=True)
def _release_test_database(request: pytest.FixtureRequest) -> None:
    """Have the PostgreSQL test database freed of stray sessions before it is dropped."""
    if VENDOR == "postgresql" and "django_db_setup" in request.fixturenames:
        request.getfixturevalue("_test_database_released")


@pytest.fixture(scope="session")
def _test_database_released(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """End the sessions others left on the test database (children, workers, threads).

    A child killed by a fault test, or a worker's connection, can outlive its test by a
    moment; without this the test database could not be dropped at the end of the run.
    """
    yield
    import time

    from django.db import connections

    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        stray = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + 10
        while True:
            cursor.execute(stray)
            if not cursor.fetchall() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    connections["default"].close()


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store: Any) -> Callable[..., Any]:
    """Build another adapter of the same backend as ``store`` (e.g. in another namespace)."""
    kind = request.node.callspec.params["store"]

    def make(namespace: str | None = None) -> Any:
        return ALL_FACTORIES[kind](request, namespace or next_namespace())

    return make


# -- tests that belong to one database's run ------------------------------------------

#: Besides tests/crossprocess and tests/faults, the modules that stress a backend rather than a
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests marked ``run_on(*vendors)`` for another database's run; make the tests
    of a mirror kind commit (``transaction=True``) on its alias only.

    A mirror alias's connection is not the default's, so the rolled-back transaction of
    the ``db`` fixture would not cover it; and through PgBouncer in transaction pooling,
    each statement in autocommit is its own transaction, possibly on another server
    connection: the case worth testing. A mirror alias is neither wrapped in a transaction
    nor flushed by Django's test cases (a flush costs about 0.6 s a test): the store's
    finalizer deletes its namespace's rows instead. The first such test also names the
    default alias, so that pytest-django creates the test database (it creates the
    databases the collected tests name, and a mirror has none of its own).
    """
    first = True
    for item in items:
        callspec = getattr(item, "callspec", None)
        alias = MIRRORS.get(callspec.params.get("store", "")) if callspec else None
        if alias is not None:
            databases = ["default", alias] if first else [alias]
            item.add_marker(pytest.mark.django_db(transaction=True, databases=databases))
            first = False
    for item in items:  # the tox matrix leaves them out (-m "not stress"): make test runs them
        if item.path.parent.name in ("crossprocess", "faults") or item.path.name in STRESS:
            item.add_marker(pytest.mark.stress)
    other = [
        item
        for item in items
        if (marker := item.get_closest_marker("run_on")) and VENDOR not in marker.args
    ]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]


# -- per-backend counts in the summary -------------------------------------------------

_tally: Counter[tuple[str, str]] = Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Label each report with its backend (it travels to pytest-xdist's controller)."""
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("store") if callspec else None
    label = backend or "other"
    if backend == "database" or backend is None:
        label = f"{label}/{VENDOR}"
    report.user_properties.append(("chatstate_backend", label))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        label = dict(report.user_properties).get("chatstate_backend")
        if label is not None:
            _tally[(str(label), report.outcome)] += 1


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
