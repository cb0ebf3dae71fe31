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
from django.db import DatabaseError, connections
from django.test import override_settings

from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.adapters.database.pgdriver import through_pooler
from chatstate.types import BackendUnavailable
from tests.commands.test_commands_restore import export, restore
from tests.commands.test_commands_snapshot import namespace

pytestmark = [
    pytest.mark.run_on("postgresql"),
    pytest.mark.needs_kind("database_pgbouncer", "database_pool"),
    # Committed work on each alias; "default" is named so that the test database exists.
    pytest.mark.django_db(transaction=True, databases=["default", "pgbouncer", "pool"]),
    pytest.mark.usefixtures("_mirror_connections"),  # closed before the database is dropped
]


@pytest.fixture(autouse=True)
def _new_connections() -> None:
    """Start each test on new connections and a new pool: a fault test before may have killed
    the old ones, and PgBouncer hands out a server connection killed while idle once (the
    client sees the server's error, then the bouncer drops it): such ones are drained."""
    import psycopg

    for alias in ("default", "pgbouncer", "pool"):
        connections[alias].close()
    connections["pool"].close_pool()  # its idle connections may have been killed too
    params = connections["pgbouncer"].settings_dict
    for _ in range(12):  # more than default_pool_size
        try:
            with psycopg.connect(
                host=params["HOST"],
                port=params["PORT"],
                user=params["USER"],
                dbname=params["NAME"],
                autocommit=True,
            ) as probe:
                probe.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            continue


def _fresh_pool() -> None:
    """Close Django's pool of the alias "pool": the next checkout opens a new one, whose only
    connection is the one the test opens."""
    connections["pool"].close()
    connections["pool"].close_pool()


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
    _fresh_pool()
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
    _fresh_pool()
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


def _hold_a_server_connection() -> Any:
    """A client of the bouncer of its own, in a transaction: it holds the server connection
    the bouncer hands out next (the one released last: PgBouncer reuses it first)."""
    import psycopg

    params = connections["pgbouncer"].settings_dict
    holder = psycopg.connect(
        host=params["HOST"],
        port=params["PORT"],
        user=params["USER"],
        dbname=params["NAME"],
        autocommit=True,
    )
    holder.execute("BEGIN")
    holder.execute("SELECT 1")
    return holder


@pytest.mark.parametrize("prepared", [True, None])
def test_prepared_statements_do_not_survive_transaction_pooling(prepared: bool | None) -> None:
    """Forced on (``prepared=True``), a statement prepared on one server connection is
    executed by name on another: PgBouncer 1.18 passes the error on. The default detects
    the bouncer and sends it unprepared: the same interleaving works."""
    connections["pgbouncer"].close()  # a client connection new to the adapter
    store = DatabaseStateAdapter(namespace=namespace(), using="pgbouncer", prepared=prepared)
    store.subscribe("t1")  # prepared (or not) on the server connection it ran on
    holder = _hold_a_server_connection()  # ... which is held now: the next call runs elsewhere
    try:
        if prepared:
            with pytest.raises(DatabaseError, match="prepared statement .* does not exist"):
                store.subscribe("t1")
        else:
            store.subscribe("t1")
            assert store.is_subscribed("t1") is True
    finally:
        holder.close()
        connections["pgbouncer"].close()
