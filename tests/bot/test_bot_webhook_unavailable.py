"""The example webhook when chatstate's backend is down: 503 with ``Retry-After``, no 500.

Real adapters pointed at a dead address (a local port nothing listens on), configured through
``override_settings(CHATSTATE=...)`` as a deployment would: a Redis adapter on a cache alias,
and a database adapter on a database alias. Nothing is mocked.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import AsyncClient, Client, override_settings

from chatstate import get_adapter
from chatstate.testing.helpers import run_async
from example_project.bot import views
from example_project.demo.replay import signed_headers

SECRET = "unavailable-signing-secret"
DEAD_ALIAS = "chatstate_dead"
BODY = json.dumps(
    {
        "platform": "slack",
        "message_id": "m1",
        "channel_id": "C1",
        "thread_id": "T1",
        "user": "alice",
        "text": "@bot hi",
        "ts": 1.5,
    }
).encode()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(autouse=True)
def bot_settings(settings: Any) -> None:
    settings.BOT_SIGNING_SECRET = SECRET
    settings.BOT_THINK_SECONDS = 0


@pytest.fixture
def dead_redis() -> Iterator[None]:
    """``CHATSTATE`` uses the Redis adapter on a cache alias whose server is not there."""
    caches = {
        **django_settings.CACHES,
        DEAD_ALIAS: {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
    }
    chatstate = {
        "ADAPTER": "chatstate.adapters.redis.RedisStateAdapter",
        "NAMESPACE": "dead",
        "OPTIONS": {"alias": DEAD_ALIAS},
    }
    with override_settings(CACHES=caches, CHATSTATE=chatstate):
        yield


@pytest.fixture
def dead_database(django_db_blocker: Any) -> Iterator[None]:
    """``CHATSTATE`` uses the database adapter on a PostgreSQL alias whose server is not there.

    The alias is added to the connection handler for this test only (``DATABASES`` cannot be
    overridden) and removed after. The test runs outside a test case's transaction (whose
    guard refuses aliases it was not told about), with database access unblocked: only the
    dead alias is used.
    """
    dead = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": str(closed_port()),
        "NAME": "chatstate_dead",
        "USER": "postgres",
        "OPTIONS": {"connect_timeout": 2},
    }
    configured = connections.configure_settings(
        {DEFAULT_DB_ALIAS: dict(connections.settings[DEFAULT_DB_ALIAS]), DEAD_ALIAS: dead}
    )  # Django's defaults filled in, as for an alias of DATABASES
    connections.settings[DEAD_ALIAS] = configured[DEAD_ALIAS]
    chatstate = {
        "ADAPTER": "chatstate.adapters.database.DatabaseStateAdapter",
        "NAMESPACE": "dead",
        "OPTIONS": {"using": DEAD_ALIAS},
    }
    try:
        with django_db_blocker.unblock(), override_settings(CHATSTATE=chatstate):
            yield
    finally:
        connections[DEAD_ALIAS].close()
        del connections[DEAD_ALIAS]
        del connections.settings[DEAD_ALIAS]


@pytest.fixture(params=["dead_redis", "dead_database"])
def dead_backend(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue(request.param)
    return str(request.param)


def assert_retry_later(response: Any) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == str(views.BACKEND_RETRY_AFTER)
    answer = response.json()
    assert answer["field"] is None
    assert "unavailable" in answer["error"]
    assert "127.0.0.1" not in answer["error"]  # the cause is logged, not sent


def test_sync_webhook_answers_503(dead_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    assert get_adapter().namespace == "dead"  # the dead adapter is the one in use
    assert_retry_later(
        Client().post(
            "/bot/webhook",
            BODY,
            content_type="application/json",
            headers=signed_headers(BODY, SECRET),
        )
    )
    logged = [r.getMessage() for r in caplog.records if r.name == views.logger.name]
    assert len(logged) == 1 and "127.0.0.1" in logged[0]  # the operator sees the cause


def test_async_webhook_answers_503(dead_backend: str) -> None:
    async def post() -> Any:
        return await AsyncClient().post(
            "/bot/webhook-async",
            BODY,
            content_type="application/json",
            headers=signed_headers(BODY, SECRET),
        )

    assert_retry_later(run_async(post))


def test_bad_input_is_still_400_while_the_backend_is_down(dead_backend: str) -> None:
    """Validation comes first: a poison message is refused even when nothing is reachable."""
    body = BODY.replace(b'"@bot hi"', b'"\\u0000"')
    response = Client().post(
        "/bot/webhook", body, content_type="application/json", headers=signed_headers(body, SECRET)
    )
    assert (response.status_code, response.json()["field"]) == (400, "text")
