"""The upgrade path of the PostgreSQL functions: frozen copies, a reported version, a check."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chatstate import LockResult
from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.adapters.database.postgres import (
    FUNCTIONS_FILE,
    FUNCTIONS_VERSION,
    installed_functions_version,
)
from chatstate.checks import check_functions
from chatstate.migrations import frozen_sql
from chatstate.models import ListHead
from tests.conftest import VENDOR


def _latest() -> str:
    executor = MigrationExecutor(connection)
    (leaf,) = executor.loader.graph.leaf_nodes("chatstate")
    return leaf[1]


def test_the_latest_migration_installs_the_functions_the_code_calls() -> None:
    """A change to functions.sql must ship in a migration (its frozen copy), not alone."""
    installed = frozen_sql(f"{_latest_functions_migration()}.sql")
    assert installed.endswith(FUNCTIONS_FILE.read_text(encoding="utf-8"))
    assert f"SELECT {FUNCTIONS_VERSION} $$" in FUNCTIONS_FILE.read_text(encoding="utf-8")


def _latest_functions_migration() -> str:
    from chatstate.migrations import SQL_DIR

    names = sorted(p.stem for p in SQL_DIR.glob("*.sql") if not p.stem.endswith(".reverse"))
    return names[-1]


def _migrate(target: str) -> None:
    call_command("migrate", "chatstate", target, verbosity=0)


def _has_function(signature: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [signature])
        return bool(cursor.fetchone()[0])


if VENDOR == "postgresql":

    def test_a_database_of_0002_upgrades_to_the_current_functions(transactional_db: None) -> None:
        latest = _latest()
        try:
            _migrate("0002")
            assert installed_functions_version("default") is None
            assert _has_function("chatstate_claim(text, text, text, bigint)")
            assert check_functions(databases=["default"]) == []  # migrations pending: quiet
            _migrate(latest)
            assert installed_functions_version("default") == FUNCTIONS_VERSION
            assert not _has_function("chatstate_claim(text, text, text, bigint)")
            assert check_functions(databases=["default"]) == []
            _smoke(DatabaseStateAdapter(namespace="upgraded"))
        finally:
            _migrate(latest)

    def test_lists_keep_their_items_through_0021_and_back(transactional_db: None) -> None:
        latest, store = _latest(), DatabaseStateAdapter(namespace="lazy")

        def rows() -> list[int]:
            with connection.cursor() as cursor:
                cursor.execute("SELECT seq FROM chatstate_listitem WHERE key = 'k' ORDER BY seq")
                return [seq for (seq,) in cursor.fetchall()]

        try:
            for n in range(20):  # kept: positions 18-20; 14-17 trimmed, their rows left
                store.append_to_list("k", n, max_length=3)
            assert rows() == [14, 15, 16, 17, 18, 19, 20]
            _migrate("0020")  # version 9 reads every row: the trimmed ones are deleted
            assert rows() == [18, 19, 20] and store.get_list("k") == [17, 18, 19]
            _migrate(latest)  # each head starts at its oldest row
            assert ListHead.objects.get(namespace="lazy", key="k").first_seq == 18
            assert store.get_list("k") == [17, 18, 19]
        finally:
            _migrate(latest)

    def test_0023_drops_the_thread_ids_trigram_index_and_builds_it_back(
        transactional_db: None,
    ) -> None:
        """Reversible: an operator going back gets the admin's fragment search back."""
        latest = _latest()

        def built() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass('chatstate_threadstate_trgm') IS NOT NULL")
                return bool(cursor.fetchone()[0])

        try:
            assert not built()
            _migrate("0022")
            assert built()
            _migrate(latest)
            assert not built()
        finally:
            _migrate(latest)

    def test_version_15_goes_back_to_14_and_forward(transactional_db: None) -> None:
        """0027 changes four signatures: reversed, version 14's are back, and none of 15's."""
        latest = _latest()
        v14 = (
            "chatstate_commit(text, text, text, jsonb, bigint, boolean, boolean, float8, jsonb,"
            " boolean)"
        )
        v15 = v14.replace("boolean)", "boolean, tid, tid, tid)")
        try:
            _migrate("0026")
            assert installed_functions_version("default") == 14
            assert _has_function(v14) and not _has_function(v15)
            _migrate(latest)
            assert installed_functions_version("default") == FUNCTIONS_VERSION
            assert _has_function(v15) and not _has_function(v14)
            _smoke(DatabaseStateAdapter(namespace="back-and-forth"))
        finally:
            _migrate(latest)

    def test_version_17_goes_back_to_16_and_forward(transactional_db: None) -> None:
        """0029 gives five functions row types of their own: reversed, the types are gone;
        forward again, they are back and a cycle runs."""
        latest = _latest()

        def row_types() -> int:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_type WHERE typname IN ('chatstate_claim_row',"
                    " 'chatstate_lock_row', 'chatstate_enter_row', 'chatstate_settle_row',"
                    " 'chatstate_commit_row')"
                )
                return int(cursor.fetchone()[0])

        try:
            _migrate("0028")
            assert installed_functions_version("default") == 16
            assert row_types() == 0
            _migrate(latest)
            assert installed_functions_version("default") == FUNCTIONS_VERSION
            assert row_types() == 5
            _smoke(DatabaseStateAdapter(namespace="forward-to-17"))
        finally:
            _migrate(latest)

    def test_outdated_functions_are_a_system_check_error(transactional_db: None) -> None:
        with connection.cursor() as cursor:
            cursor.execute("DROP FUNCTION chatstate_functions_version()")
        try:
            (error,) = check_functions(databases=["default"])
            assert error.id == "chatstate.E006"
            assert f"version 1; this chatstate calls version {FUNCTIONS_VERSION}" in error.msg
        finally:
            with connection.cursor() as cursor:
                cursor.execute(frozen_sql(f"{_latest_functions_migration()}.sql"))
        assert check_functions(databases=["default"]) == []

    def test_sqlmigrate_prints_the_functions(db: None) -> None:
        import io

        out = io.StringIO()
        call_command("sqlmigrate", "chatstate", _latest_functions_migration(), stdout=out)
        assert "CREATE OR REPLACE FUNCTION chatstate_enter(" in out.getvalue()
        assert "CANNOT BE WRITTEN AS SQL" not in out.getvalue()


def _smoke(store: Any) -> None:
    """The conformance suite's smoke: a cycle, a duplicate, a lock, a lease-held claim."""
    assert store.fast_sql
    store.subscribe("t")
    with store.handle_message(("s", "m1"), thread_id="t", owner="a") as msg:
        assert msg.acquired and msg.subscribed
        msg.state["n"] = 1
        with store.handle_message(("s", "m1"), thread_id="t", owner="b") as again:
            assert again.duplicate and again.in_progress
    with store.handle_message(("s", "m1"), thread_id="t", owner="c") as done:
        assert done.duplicate and not done.in_progress
    assert store.thread_state("t") == {"n": 1}
    assert store.lock("t", "a") is LockResult.ACQUIRED
    assert store.lock("t", "b", "queue") is LockResult.QUEUED
    assert [e.owner for e in store.release_lock("t", "a")] == ["b"]


@pytest.mark.parametrize(
    "name",
    [
        "0002_postgresql_functions",
        "0008_functions_v2",
        "0010_functions_v3",
        "0014_functions_v4",
        "0015_functions_v5",
        "0016_functions_v6",
        "0018_functions_v7",
    ],
)
def test_frozen_copies_are_not_empty(name: str) -> None:
    assert "CREATE OR REPLACE FUNCTION" in frozen_sql(f"{name}.sql")


def test_a_claim_records_its_minute_for_the_admin(db: None) -> None:
    from chatstate.models import ClaimMinute

    store = DatabaseStateAdapter(namespace="minutes")
    for n in range(3):
        with store.handle_message(("s", f"m{n}"), thread_id="t", owner=f"w{n}"):
            pass
    (row,) = ClaimMinute.objects.filter(namespace="minutes")
    assert row.first_seq == 1 and row.minute.second == 0 and row.minute.microsecond == 0


@pytest.mark.run_on("mysql")
def test_every_id_column_compares_exactly_on_mysql(transactional_db: None) -> None:
    """Migration 0009 gives every id column of chatstate's tables (each varchar but the
    strategy) an exact collation, 0011 those of the list and outbox tables and 0013 the
    hand-out mark of pending entries; reversed,
    ids fold again (the test database's default collation is case-insensitive), so the
    conformance suite's exact-id tests have teeth."""
    import importlib

    exact_ids = importlib.import_module("chatstate.migrations.0009_exact_ids_on_mysql")
    lists_and_outbox = importlib.import_module("chatstate.migrations.0011_lists_and_outbox")
    slots = importlib.import_module("chatstate.migrations.0013_slots_and_outbox_leases")
    collation = exact_ids.exact_collation(connection)
    listed = {(table, column) for table, column, _ in exact_ids.ID_COLUMNS}
    listed |= {(table, column) for table, column, _, _ in lists_and_outbox.ID_COLUMNS}
    listed |= {(table, column) for table, column, _, _ in slots.ID_COLUMNS}

    def collations() -> dict[tuple[str, str], str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'chatstate\\_%%'"
                " AND DATA_TYPE = 'varchar' AND COLUMN_NAME <> 'strategy'"
            )
            return {(t, c): name for t, c, name in cursor.fetchall()}

    def matching(message_id: str) -> int:  # raw SQL: the models are the latest schema's
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM chatstate_dedupeentry"
                " WHERE namespace = 'folded' AND message_id = %s",
                [message_id],
            )
            return int(cursor.fetchone()[0])

    assert collations() == dict.fromkeys(listed, collation)
    assert DatabaseStateAdapter(namespace="folded").claim_dedupe(("tg", "MsgA")) is True
    assert matching("msga") == 0
    latest = _latest()
    try:
        _migrate("0008")
        assert collation not in set(collations().values())
        assert matching("msga") == 1  # "msga" finds "MsgA": what 0009 fixes
    finally:
        _migrate(latest)
    assert collations() == dict.fromkeys(listed, collation)
    assert matching("msga") == 0
