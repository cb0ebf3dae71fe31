"""The run's fixtures and hooks that every test sees, wherever its module lives.

The root ``conftest.py`` loads this plugin, so the conformance suite in ``chatstate/testing``
gets them too: the services the stores need, the clean-up of what the stores commit (and of
what a committing test wrote: :mod:`tests.flush`), the test database freed before it is
dropped, the mirror kinds' database marks, and the
backends of the run in its header and their counts in its summary.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests import flush, services
from tests import redis_cluster as cluster_nodes
from tests.conftest import (
    ALL_FACTORIES,
    COMMITTED_ELSEWHERE,
    KINDS_WANTED,
    MIRRORS,
    STORE_FACTORIES,
    VENDOR,
    backend_of,
)


def pytest_configure() -> None:
    flush.install()


@pytest.fixture(autouse=True)
def _purge_committed_elsewhere() -> Iterator[None]:
    """After the test (autouse: torn down after ``db``), delete what the fast path's async
    connections committed in its namespaces."""
    yield
    while COMMITTED_ELSEWHERE:
        _delete_namespace_rows(*COMMITTED_ELSEWHERE.pop())


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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[cluster_nodes.RedisCluster]:
    """The run's own Redis Cluster (3 masters, 3 replicas on loopback), killed at the end.

    Its tests run only where ``redis-server`` is installed (the ``redis_cluster`` kind), so a
    cluster that cannot start fails them, with the reason."""
    try:
        nodes = cluster_nodes.RedisCluster().start()
    except (cluster_nodes.ClusterStartError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the Redis Cluster could not start: {exc}")
    yield nodes
    nodes.close()


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


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backends this run covers, and why one is left out."""
    lines = [f"chatstate backends ({VENDOR} run): {', '.join(ALL_FACTORIES)}"]
    if KINDS_WANTED:
        lines.append(f"only the kinds of CHATSTATE_TEST_KINDS: {', '.join(sorted(KINDS_WANTED))}")
    elif VENDOR == "postgresql" and "redis" not in STORE_FACTORIES:
        lines.append(f"SKIPPED the Redis suite: Redis at {services.REDIS_URL} is unreachable")
    if not KINDS_WANTED and VENDOR == "postgresql" and "database_pgbouncer" not in MIRRORS:
        lines.append(f"SKIPPED the PgBouncer suite: {settings.PGBOUNCER_ERROR}")
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Make the tests of a mirror kind commit (``transaction=True``) on its alias only.

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
        alias = MIRRORS.get(backend_of(item) or "")
        if alias is not None:
            databases = ["default", alias] if first else [alias]
            item.add_marker(pytest.mark.django_db(transaction=True, databases=databases))
            first = False


# -- per-backend counts in the summary -------------------------------------------------

_tally: Counter[tuple[str, str]] = Counter()
#: The figures the concurrency and fault tests recorded (their ``figures`` fixtures).
_figures: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Label each report with its backend (it travels to pytest-xdist's controller)."""
    outcome = yield
    report = outcome.get_result()
    backend = backend_of(item)
    label = backend or "other"
    if backend == "database" or backend is None:
        label = f"{label}/{VENDOR}"
    report.user_properties.append(("chatstate_backend", label))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        label = dict(report.user_properties).get("chatstate_backend")
        if label is not None:
            _tally[(str(label), report.outcome)] += 1
    if report.when == "call":
        _figures.extend(str(v) for k, v in report.user_properties if k == "figures")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.write_sep("-", "figures of the concurrency and fault tests")
        for line in sorted(_figures):
            terminalreporter.write_line(line)
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
