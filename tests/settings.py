"""Settings for the test suite: ``CHATSTATE_TEST_DB`` selects SQLite, PostgreSQL or MariaDB/MySQL
(``sqlite``, ``postgres``, ``mysql``)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from tests import pgbouncer, redis_cluster, services

TEST_DB = os.environ.get("CHATSTATE_TEST_DB", "sqlite")

SECRET_KEY = "chatstate-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chatstate",
    "example_project.bot",
    "bench",  # the benchmark (manage.py chatstate_bench): source tree only, not in the wheel
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
# The admin tests make a user (and the browser tests log in) for each test: Django's default
# hasher spends about half a second of CPU a password by design, which the suite does not test.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Django's task framework (built in from Django 6.0; the django-tasks backport on 5.2) with
# the database backend, whose worker (`manage.py db_worker`) the outbox task tests run.
if importlib.util.find_spec("django.tasks") is None:
    INSTALLED_APPS.append("django_tasks")
INSTALLED_APPS.append("django_tasks_db")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

DATABASES: dict[str, dict[str, Any]]
if TEST_DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("CHATSTATE_SQLITE_NAME", "chatstate-tests.sqlite3"),
            "OPTIONS": {"timeout": 20},
            "TEST": {"NAME": os.environ.get("CHATSTATE_SQLITE_TEST_NAME")},
        }
    }
elif TEST_DB == "postgres":
    if not services.postgres_reachable():
        raise ImproperlyConfigured(
            f"CHATSTATE_TEST_DB=postgres but PostgreSQL at {services.PG['HOST']}:"
            f"{services.PG['PORT']} is unreachable"
        )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": services.PG["HOST"],
            "PORT": services.PG["PORT"],
            "USER": services.PG["USER"],
            "PASSWORD": services.PG["PASSWORD"],
            "NAME": services.PG["NAME"],
            "TEST": {"NAME": services.PG["TEST_NAME"]},
        }
    }
    # The same test database through Django's own psycopg pool (Django 5.1+), and through a
    # PgBouncer in transaction pooling that the run starts (tests/pgbouncer.py). Both mirror
    # the default alias: no database of their own, NAME becomes the test database's.
    DATABASES["pool"] = {
        **DATABASES["default"],
        "OPTIONS": {
            "pool": {"min_size": 0, "max_size": 4, "timeout": 10},
            "application_name": "chatstate-tests-pool",  # tests counting connections skip it
        },
        "TEST": {"MIRROR": "default"},
    }
    try:
        PGBOUNCER_PORT: int | None = pgbouncer.ensure()
        PGBOUNCER_ERROR = ""
    except pgbouncer.PgBouncerError as exc:
        PGBOUNCER_PORT, PGBOUNCER_ERROR = None, str(exc)
    if PGBOUNCER_PORT is not None:
        DATABASES["pgbouncer"] = {
            **DATABASES["default"],
            "HOST": "127.0.0.1",
            "PORT": str(PGBOUNCER_PORT),
            # Transaction pooling: a named cursor does not outlive its transaction's server.
            "DISABLE_SERVER_SIDE_CURSORS": True,
            "OPTIONS": {"application_name": "chatstate-tests-pgbouncer"},  # (its servers')
            "TEST": {"MIRROR": "default"},
        }
elif TEST_DB == "mysql":
    if not services.mysql_reachable():
        raise ImproperlyConfigured(
            f"CHATSTATE_TEST_DB=mysql but MariaDB/MySQL at {services.MYSQL['HOST']}:"
            f"{services.MYSQL['PORT']} is unreachable"
        )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": services.MYSQL["HOST"],
            "PORT": services.MYSQL["PORT"],
            "USER": services.MYSQL["USER"],
            "PASSWORD": services.MYSQL["PASSWORD"],
            "NAME": services.MYSQL["NAME"],
            # What the README asks of a deployment: 4-byte UTF-8 on the connection.
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": services.MYSQL["TEST_NAME"],
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
            },
        }
    }
else:
    raise ImproperlyConfigured(
        f"CHATSTATE_TEST_DB must be sqlite, postgres or mysql, not {TEST_DB!r}"
    )

# Redis joins the run when reachable (always required under CI=true, see conftest).
REDIS_AVAILABLE = services.redis_reachable()
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "chatstate": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": services.REDIS_URL,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    },
    # The tests' own Redis Cluster (tests.redis_cluster, started by the redis_cluster fixture).
    "chatstate_cluster": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": redis_cluster.URLS,
        "OPTIONS": {"CHATSTATE_CLUSTER": True, "SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 10},
    },
}

CHATSTATE = {
    "ADAPTER": "chatstate.adapters.database.DatabaseStateAdapter",
    "NAMESPACE": "default",
}
