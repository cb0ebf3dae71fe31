"""A connection a kill left with a command in progress is replaced, not reused forever.

A kill can leave psycopg's connection open, with a statement sent and its reply never read
(transaction status ``ACTIVE``). Every later statement on it fails with "another command is
already in progress". The adapter must close it, so that the call after the one that found it
reconnects. Before, a worker stayed on it: every delivery after the kill was unavailable.
"""

from __future__ import annotations

import pytest
from django.db import connection

from chatstate import BackendUnavailable
from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = [pytest.mark.run_on("postgresql"), pytest.mark.usefixtures("transactional_db")]


def _leave_a_command_in_progress() -> None:
    """What the kill left: a statement sent on the connection, its reply never read."""
    connection.ensure_connection()
    raw = connection.connection
    raw.pgconn.send_query(b"SELECT 1")
    assert raw.info.transaction_status.name == "ACTIVE"


@pytest.mark.parametrize("fast_sql", [True, False], ids=["database", "database_orm"])
def test_a_connection_left_mid_command_is_replaced(fast_sql: bool) -> None:
    store = DatabaseStateAdapter(namespace="stuck", fast_sql=fast_sql)
    outcomes = []
    for n in range(4):
        if n == 1:
            _leave_a_command_in_progress()
        try:
            with store.handle_message(("p", f"m{n}"), thread_id="t", owner=f"w{n}") as msg:
                msg.state["seen"] = [*msg.state.get("seen", []), n]
            outcomes.append("handled")
        except BackendUnavailable:
            outcomes.append("unavailable")
    # The one cycle that found it says so (its message is redelivered); the next reconnect.
    assert outcomes == ["handled", "unavailable", "handled", "handled"]
    assert store.thread_state("t") == {"seen": [0, 2, 3]}


def test_an_async_connection_left_mid_command_is_not_taken_again() -> None:
    """As a coroutine cancelled mid-statement leaves one in its loop's pool."""
    import asyncio

    store = DatabaseStateAdapter(namespace="stuck-async")

    async def run() -> None:
        await store.asubscribe("t")  # the loop's pool now holds one idle connection
        (conn,) = store._async._pool().idle
        conn.pgconn.send_query(b"SELECT 1")
        assert await store.ais_subscribed("t")  # on a new connection
        assert conn.closed
        (fresh,) = store._async._pool().idle
        assert fresh is not conn

    asyncio.run(run())
