"""What the conformance suite does not show about poolers (PostgreSQL run only).

The conformance and cross-process suites run through both mirror aliases of the test
database (store kinds ``database_pgbouncer`` and ``database_pool``, see ``conftest``).
Here: the fast path's pooler detection, snapshot export and restore (``COPY``) through
PgBouncer in transaction pooling, and a connection of Django's pool moving between threads
with its prepared statements.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.adapters.database.pgdriver import through_pooler
from chatstate.types import BackendUnavailable
from tests.test_commands_restore import export, restore
from tests.test_commands_snapshot import namespace

pytestmark = [
    pytest.mark.run_on("postgresql"),
    pytest.mark.skipif(
        "pgbouncer" not in settings.DATABASES,
        reason=f"PgBouncer unavailable: {getattr(settings, 'PGBOUNCER_ERROR', '')}",
    ),
    # Committed work on each alias; "default" is named so that the test database exists.
    pytest.mark.django_db(transaction=True, databases=["default", "pgbouncer", "pool"]),
    pytest.mark.usefixtures("_mirror_connections"),  # closed before the database is dropped
]


def _raw(alias: str) -> Any:
    connections[alias].ensure_connection()
    return connections[alias].connection


def test_the_fast_path_tells_a_pooler_from_the_server() -> None:
    assert through_pooler(_raw("pgbouncer")) is True
    assert through_pooler(_raw("default")) is False
    assert through_pooler(_raw("pool")) is False  # Django's pool is in the client


def _fill(store: DatabaseStateAdapter, n: int) -> None:
    for i in range(n):
        store.subscribe(f"t{i}")
        store.claim_dedupe(("slack", f"m{i}"), 10_000)
        store.put_thread_state(f"t{i}", {"n": i, "text": "tab\there é"})
        store.lock(f"k{i % 7}", f"w{i}", "queue", {"i": i})


def test_snapshot_export_and_restore_through_pgbouncer(tmp_path: Path) -> None:
    source = DatabaseStateAdapter(namespace=namespace(), using="pgbouncer")
    _fill(source, 300)
    with override_settings(CHATSTATE={"DATABASE": "pgbouncer", "NAMESPACE": "default"}):
        text = export(source, tmp_path / "a.json", None)
        target = DatabaseStateAdapter(namespace=namespace(), using="pgbouncer")
        target.subscribe("stale")  # replaced by the restore
        out, err = restore(tmp_path / "a.json", target.namespace)  # COPY, through the bouncer
        assert f"Restored into namespace '{target.namespace}' (replace)" in out and err == ""
        assert export(target, tmp_path / "b.json", None) == text
    # What went through the bouncer is what the server holds.
    direct = DatabaseStateAdapter(namespace=target.namespace, using="default")
    assert direct.snapshot() == source.snapshot()
    assert len(direct.snapshot().subscriptions) == 300


def test_a_pooled_connection_keeps_its_prepared_statements_across_threads() -> None:
    """Django's pool hands a returned connection to the next thread: the fast path's cursor
    for it (kept per connection) is reused there, its statements still prepared."""
    store = DatabaseStateAdapter(namespace=namespace(), using="pool")
    store.subscribe("t1")
    first = _raw("pool")
    connections["pool"].close()  # back to the pool
    seen: list[Any] = []

    def other_thread() -> None:
        try:
            assert store.is_subscribed("t1") is True
            store.subscribe("t2")
            raw = connections["pool"].connection
            with raw.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_prepared_statements")
                seen.append((raw, cursor.fetchone()[0]))
        finally:
            connections["pool"].close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=30)
    raw, prepared = seen[0]
    assert raw is first  # the same psycopg connection, from the pool
    assert prepared >= 2  # subscribe (first thread) and is_subscribed (second) stay prepared
    assert store.is_subscribed("t2") is True


def test_a_pooled_connection_lost_while_idle_is_unavailable_once() -> None:
    """A connection of the pool whose server went away while it sat idle: the first call on
    it (here the pooler detection of a new adapter) is ``BackendUnavailable``, the
    connection goes back to the pool to be discarded, and the next call works."""
    DatabaseStateAdapter(namespace=namespace(), using="pool").subscribe("t0")
    pid = _raw("pool").info.backend_pid
    connections["pool"].close()  # idle in the pool
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    store = DatabaseStateAdapter(namespace=namespace(), using="pool")
    with pytest.raises(BackendUnavailable):
        store.subscribe("t1")
    store.subscribe("t1")
    assert store.is_subscribed("t1") is True
