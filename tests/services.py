"""Which real services the test run uses, decided once per run.

``CHATSTATE_TEST_DB`` picks the database of the run (``sqlite``, the default, ``postgres``
or ``mysql``: MariaDB or MySQL). PostgreSQL, MariaDB and Redis are used when reachable; under
``CI=true`` they are required, and an unreachable one fails the run instead of being skipped.

Run as a script (``python -m tests.services postgres|mysql|redis|rabbitmq``) it exits 0 when
the service is reachable, 1 when it is not (and, under CI, prints why and exits 2). A server
that answers while its Python driver is missing is not an absent service: it prints what to
install and exits 3, in or out of CI.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unreachable(names: set[str]) -> set[str]:
    """Those of the services ``names`` (keys of ``SERVICES``) that do not answer.

    Under ``CI=true`` one that does not answer is an error: the run stops, saying which."""
    gone = {name for name in names if not SERVICES[name][0]()}
    if gone and IN_CI:
        raise RuntimeError(
            "CI=true but unreachable: " + "; ".join(SERVICES[name][1] for name in sorted(gone))
        )
    return gone


#: This process's pytest-xdist worker (``gw0`` → 0; 0 outside xdist): the services a test
#: starts or shares (Redis database, cluster and bouncer ports) are offset by it, so that
#: parallel workers never meet. The test databases get pytest-django's worker suffix.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _redis_url() -> str:
    """``CHATSTATE_REDIS_URL`` (default database 15), its database lowered by the worker."""
    base = os.environ.get("CHATSTATE_REDIS_URL", "redis://127.0.0.1:6379/15")
    server, _, db = base.rpartition("/")
    return f"{server}/{int(db) - WORKER}" if WORKER else base


def free_port() -> int:
    """A loopback TCP port free at the time of the call (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PG: dict[str, str] = {
    "HOST": os.environ.get("CHATSTATE_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("CHATSTATE_PG_PORT", "5432"),
    "USER": os.environ.get("CHATSTATE_PG_USER", "postgres"),
    "PASSWORD": os.environ.get("CHATSTATE_PG_PASSWORD", ""),
    "NAME": os.environ.get("CHATSTATE_PG_NAME", "postgres"),
    # Parallel runs on one server need distinct test databases.
    "TEST_NAME": os.environ.get("CHATSTATE_PG_TEST_NAME", "test_chatstate"),
}
MYSQL: dict[str, str] = {
    "HOST": os.environ.get("CHATSTATE_MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("CHATSTATE_MYSQL_PORT", "3306"),
    "USER": os.environ.get("CHATSTATE_MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("CHATSTATE_MYSQL_PASSWORD", ""),
    "NAME": os.environ.get("CHATSTATE_MYSQL_NAME", "test"),
    "TEST_NAME": os.environ.get("CHATSTATE_MYSQL_TEST_NAME", "test_chatstate"),
}
REDIS_URL = _redis_url()
#: The RabbitMQ broker of the Celery tests (``.ci/run`` starts it).
AMQP_URL = os.environ.get("CHATSTATE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class DriverMissing(Exception):
    """A server answers, but the Python driver the suite needs for it is not installed."""


def _driver(module: str, server: str, where: dict[str, str], install: str) -> Any:
    """The driver ``module`` of a server that answers; :class:`DriverMissing` without it.

    A missing driver is not an absent service: the suite fails rather than skipping."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DriverMissing(
            f"{server} answers at {where['HOST']}:{where['PORT']}, but its driver {module} is"
            f" not installed: {install}"
        ) from exc


def postgres_reachable() -> bool:
    if not _port_open(PG["HOST"], int(PG["PORT"])):
        return False
    psycopg = _driver("psycopg", "PostgreSQL", PG, "make venv installs it")
    try:
        psycopg.connect(
            host=PG["HOST"],
            port=PG["PORT"],
            user=PG["USER"],
            password=PG["PASSWORD"],
            dbname=PG["NAME"],
            connect_timeout=2,
        ).close()
    except psycopg.Error:
        return False
    return True


def mysql_reachable() -> bool:
    if not _port_open(MYSQL["HOST"], int(MYSQL["PORT"])):
        return False
    MySQLdb = _driver(
        "MySQLdb",
        "MariaDB/MySQL",
        MYSQL,
        "apt-get install default-libmysqlclient-dev build-essential pkg-config, then"
        " rm -f .venv/.installed-stamp; make venv",
    )
    try:
        MySQLdb.connect(
            host=MYSQL["HOST"],
            port=int(MYSQL["PORT"]),
            user=MYSQL["USER"],
            password=MYSQL["PASSWORD"],
            database=MYSQL["NAME"],
            connect_timeout=2,
        ).close()
    except MySQLdb.Error:
        return False
    return True


def redis_reachable() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def rabbitmq_reachable() -> bool:
    try:
        from kombu import Connection
    except ImportError:
        return False
    try:
        with Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:  # kombu raises the transport's own errors
        return False
    return True


#: The services a test may need (``needs_service``): whether each answers, and what to say.
SERVICES: dict[str, tuple[Callable[[], bool], str]] = {
    "rabbitmq": (
        rabbitmq_reachable,
        f"RabbitMQ at {AMQP_URL} (.ci/run starts it: rabbitmq-server -detached)",
    ),
}


CHECKS = {
    "postgres": postgres_reachable,
    "mysql": mysql_reachable,
    "redis": redis_reachable,
    "rabbitmq": rabbitmq_reachable,
}


#: The exit code of ``python -m tests.services NAME`` when the server answers but its driver
#: is missing (the Makefile installs the driver's build dependencies then, when it can).
DRIVER_MISSING = 3


def main(argv: list[str]) -> int:
    name = argv[1]
    try:
        if CHECKS[name]():
            return 0
    except DriverMissing as exc:
        print(f"{exc}: the {name} suite cannot run.", file=sys.stderr)
        return DRIVER_MISSING
    if IN_CI:
        print(
            f"CI=true and {name} is unreachable: the {name} suite is required in CI.",
            file=sys.stderr,
        )
        return 2
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
