"""The admin's search: exact ids, a channel's threads, any part of an id (trigram index on
PostgreSQL), prefixes; each through an index (plans checked on PostgreSQL and SQLite)."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chatstate.admin import search
from chatstate.admin.indexed import distinct_leading_parts, distinct_values
from chatstate.models import DedupeEntry, ThreadState
from tests.admin.helpers import (
    MODELS,
    THREAD,
    THREAD_PAGES,
    changelist,
    populate_channels,
    populate_state,
    rows_shown,
)


@pytest.fixture
def state(db: None) -> dict[str, Any]:
    return populate_state()


@pytest.fixture
def channels(state: dict[str, Any]) -> list[str]:
    return populate_channels(state["a"])


def test_search_matches_an_exact_id(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"q": THREAD})
    found = rows_shown(response)
    assert THREAD in found
    # Only ids containing it (with a trigram index, slack:C1:1700000000.10 contains it).
    assert all(THREAD in row for row in found) and "slack:C2:1" not in found


@pytest.mark.parametrize("model_name", THREAD_PAGES)
def test_a_channel_id_finds_its_threads(
    admin_client: Client, channels: list[str], model_name: str
) -> None:
    response = admin_client.get(changelist(model_name), {"q": "C-support"})
    found = set(rows_shown(response))
    assert {"slack:C-support:1700000001.1", "discord:C-support:9"} <= found
    assert not found & {THREAD, "slack:C2:1", "discord:G1:1"}


@pytest.mark.parametrize("model_name", THREAD_PAGES)
def test_a_platform_and_channel_finds_that_channels_threads(
    admin_client: Client, channels: list[str], model_name: str
) -> None:
    response = admin_client.get(changelist(model_name), {"q": "slack:C-support"})
    found = set(rows_shown(response))
    assert "slack:C-support:1700000001.1" in found
    assert "discord:C-support:9" not in found


def test_a_channel_id_finds_the_channel_state(admin_client: Client, channels: Any) -> None:
    response = admin_client.get(changelist("channelstate"), {"q": "C-support"})
    assert rows_shown(response) == ["slack:C-support"]


def test_a_short_channel_id_finds_its_threads(admin_client: Client, state: Any) -> None:
    """Two characters are too few for a trigram index: the id's parts still match."""
    response = admin_client.get(changelist("subscription"), {"q": "C1"})
    assert sorted(rows_shown(response)) == sorted([THREAD, "slack:C1:1700000000.10"])
    response = admin_client.get(changelist("subscription"), {"q": "SLACK:C1:*"})
    assert rows_shown(response) == []  # case counts in a prefix too (not SQLite's LIKE)


#: The trigram indexes migrations 0017 and 0023 drop: message cycles wrote them.
DROPPED = {"chatstate_dedupe_message_trgm", "chatstate_threadstate_trgm"}


@pytest.mark.run_on("postgresql")
@pytest.mark.parametrize("model_name", ["subscription"])
def test_any_part_of_an_id_is_found_with_the_trigram_index(
    admin_client: Client, channels: list[str], model_name: str
) -> None:
    built = set(search.TRIGRAM_INDEXES.values()) - DROPPED
    assert search.valid_trigram_indexes("default") == built
    response = admin_client.get(changelist(model_name), {"q": "support"})
    assert set(rows_shown(response)) == set(channels)  # C-supportive too: a substring
    response = admin_client.get(changelist(model_name), {"q": "1700000000"})
    assert THREAD in rows_shown(response)
    assert "Any part of an id" in response.content.decode()


@pytest.mark.run_on("postgresql")
@pytest.mark.parametrize(
    ("model_name", "index", "fragment", "prefix", "found"),
    [
        # Migration 0017: every claim wrote it.
        (
            "dedupeentry",
            "chatstate_dedupe_message_trgm",
            "000100",
            "1700000000*",
            "1700000000.000100",
        ),
        # Migration 0023: every cycle on a new thread wrote it.
        (
            "threadstate",
            "chatstate_threadstate_trgm",
            "upport",
            "slack:C-support:*",
            "slack:C-support:1700000001.1",
        ),
    ],
)
def test_a_fragment_is_found_once_its_trigram_index_is_built(
    admin_client: Client,
    state: dict[str, Any],
    channels: list[str],
    model_name: str,
    index: str,
    fragment: str,
    prefix: str,
    found: str,
) -> None:
    """A dropped index is gone, prefixes still match, and the docs' statement builds it."""
    state["a"].claim_dedupe(("slack", "1700000000.000100"), 100)
    assert index not in search.valid_trigram_indexes("default")
    assert found not in rows_shown(admin_client.get(changelist(model_name), {"q": fragment}))
    assert found in rows_shown(admin_client.get(changelist(model_name), {"q": prefix}))
    docs = (Path(__file__).parents[2] / "docs" / "operations.rst").read_text()
    (statement,) = re.findall(rf"CREATE INDEX CONCURRENTLY {index}[^;]*", docs)
    with connection.cursor() as cursor:  # the docs' statement, in the test's transaction
        cursor.execute(statement.replace(" CONCURRENTLY", ""))
    assert index in search.valid_trigram_indexes("default")
    assert found in rows_shown(admin_client.get(changelist(model_name), {"q": fragment}))


@pytest.mark.run_on("postgresql")
def test_without_the_trigram_index_search_matches_parts_of_ids(
    admin_client: Client, channels: list[str]
) -> None:
    """As where ``pg_trgm`` cannot be created: the admin falls back to the index it has."""
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        for name in search.TRIGRAM_INDEXES.values():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
    assert search.valid_trigram_indexes("default") == frozenset()
    response = admin_client.get(changelist("threadstate"), {"q": "support"})
    assert rows_shown(response) == []
    assert "An exact id; a part of a platform:channel:thread id" in response.content.decode()
    response = admin_client.get(changelist("threadstate"), {"q": "C-support"})
    assert sorted(rows_shown(response)) == ["discord:C-support:9", "slack:C-support:1700000001.1"]


@pytest.mark.run_on("sqlite")
def test_on_sqlite_a_fragment_of_an_id_is_not_a_match(
    admin_client: Client, channels: list[str]
) -> None:
    response = admin_client.get(changelist("threadstate"), {"q": "support"})
    assert rows_shown(response) == []
    assert "An exact id; a part of a platform:channel:thread id" in response.content.decode()


@pytest.mark.run_on("sqlite")
def test_on_sqlite_a_channel_search_reads_through_indexes(
    admin_client: Client, channels: list[str]
) -> None:
    """No statement of the page scans the thread table (SQLite's own query plans)."""
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(changelist("threadstate"), {"q": "C-support"})
    selects = [q["sql"] for q in queries if '"chatstate_threadstate"' in q["sql"]]
    assert selects
    with connection.cursor() as cursor:
        for sql in selects:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = [row[-1] for row in cursor.fetchall()]
            assert not any(step.startswith("SCAN chatstate_threadstate") for step in plan), (
                sql,
                plan,
            )


def test_lock_search_matches_any_part_of_a_key_or_owner(
    admin_client: Client, channels: list[str]
) -> None:
    response = admin_client.get(changelist("lock"), {"q": "orker-3"})
    assert rows_shown(response) == ["slack:C2:1"]
    response = admin_client.get(changelist("lock"), {"q": "ORKER-3"})
    assert rows_shown(response) == []  # case counts, on SQLite too
    response = admin_client.get(changelist("pendinglockentry"), {"q": "supportive"})
    assert rows_shown(response) == ["slack:C-supportive:2"]
    assert "Any part of a key or an owner" in response.content.decode()


def test_search_by_prefix_with_a_star(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"q": "slack:C1:*"})
    assert sorted(rows_shown(response)) == sorted([THREAD, "slack:C1:1700000000.10"])


def test_search_is_case_sensitive_like_the_ids(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"q": THREAD.upper()})
    assert rows_shown(response) == []


def test_dedupe_search_by_message_id_or_adapter_and_message_id(
    admin_client: Client, state: Any
) -> None:
    both = admin_client.get(changelist("dedupeentry"), {"q": "m2"}).content.decode()
    assert both.count('<th class="field-message_id_column">') == 2  # slack and discord
    one = admin_client.get(changelist("dedupeentry"), {"q": "discord:m2"})
    assert rows_shown(one) == ["m2"]
    assert '<td class="field-adapter">discord</td>' in one.content.decode()


def test_lock_search_by_owner(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("lock"), {"q": "worker-3"})
    assert rows_shown(response) == ["slack:C2:1"]
    response = admin_client.get(changelist("pendinglockentry"), {"q": "worker-8"})
    assert rows_shown(response) == [THREAD]


def test_lock_search_finds_slot_holders(admin_client: Client, state: Any) -> None:
    """A key held by slots has no owner of its own: its holders' owners are searched."""
    store = state["a"]
    store.lock("slack:C9:1", "pool-worker-12", "concurrent", max_concurrent=2)
    store.lock("slack:C9:1", "pool-worker-13", "concurrent", max_concurrent=2)
    for term in ("worker-12", "pool-worker-13", "pool-*"):
        response = admin_client.get(changelist("lock"), {"q": term})
        assert rows_shown(response) == ["slack:C9:1"], term
    response = admin_client.get(changelist("lock"), {"q": "worker-12*"})
    assert rows_shown(response) == []


def test_namespace_filter_lists_namespaces_and_filters(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("subscription"), {"namespace": "ns-b"})
    assert rows_shown(response) == ["discord:G1:1"]
    page = response.content.decode()
    assert "?namespace=ns-a" in page and "?namespace=ns-b" in page


def test_strategy_filter(admin_client: Client, state: Any) -> None:
    response = admin_client.get(changelist("lock"), {"strategy__exact": "debounce"})
    assert rows_shown(response) == ["discord:G1:1"]


def test_distinct_leading_parts_lists_the_platforms(channels: Any) -> None:
    ThreadState.objects.create(namespace="ns-a", thread_id="no-separator", value={})
    ThreadState.objects.create(namespace="ns-a", thread_id="slack;odd", value={})
    parts = distinct_leading_parts(ThreadState, "default", "thread_id", "ns-a")
    assert parts == ["discord", "slack"]
    assert distinct_leading_parts(ThreadState, "default", "thread_id", "nowhere") == []


def test_distinct_values_reads_every_namespace(state: Any) -> None:
    assert distinct_values(DedupeEntry, "default", "namespace") == ["ns-a", "ns-b"]
    assert distinct_values(DedupeEntry, "default", "adapter", {"namespace": "ns-a"}) == [
        "discord",
        "slack",
    ]


@pytest.mark.run_on("postgresql")  # EXPLAIN plans are PostgreSQL's
@pytest.mark.parametrize(
    ("model_name", "term"),
    [
        ("dedupeentry", "m2"),
        ("dedupeentry", "slack:m2"),
        ("dedupeentry", "m2*"),
        ("subscription", THREAD),
        ("dedupeentry", "1700000000"),  # any part: the trigram index
        ("subscription", THREAD),
        ("subscription", "C1"),  # a whole part (too short for trigrams): index ranges
        ("threadstate", "slack:C1:*"),
        ("threadstate", "C-support"),  # a whole part (no trigram index since 0023)
        ("threadstate", "slack:C-sup"),  # starts with a platform: an index range
        ("channelstate", "slack:C1"),
        ("listhead", THREAD),  # a thread id finds its history
        ("listhead", "slack:C1:*"),
        ("listhead", "C1"),
        ("outboxmessage", THREAD),
        ("outboxmessage", "slack:m1:0"),
    ],
)
def test_searches_can_use_an_index(
    admin_client: Client, state: Any, model_name: str, term: str
) -> None:
    """With sequential scans priced out, the search's plan reads the table only by index.

    (Lock and pending-entry searches match keys and owners by substring with a scan: those
    two tables hold live locks and queued messages only.)
    """
    table = MODELS[model_name]._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(changelist(model_name), {"q": term})
    selects = [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"] and "LIMIT" in q["sql"]]
    assert selects
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in selects:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert f"Seq Scan on {table}" not in plan, plan
        cursor.execute("SET LOCAL enable_seqscan = on")


# -- the migration of the trigram indexes ------------------------------------------------


def trigram_migration() -> tuple[str, Any]:
    """The name and module of chatstate's migration that adds the trigram indexes."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    for (app, name), migration in loader.disk_migrations.items():
        kinds = {type(operation).__name__ for operation in migration.operations}
        if app == "chatstate" and "TrigramSearchIndexes" in kinds:
            return name, sys.modules[type(migration).__module__]
    raise AssertionError("no migration adds the trigram indexes")


@pytest.mark.run_on("postgresql")
def test_sqlmigrate_shows_the_trigram_indexes(db: None) -> None:
    name, _ = trigram_migration()
    out = io.StringIO()
    call_command("sqlmigrate", "chatstate", name, stdout=out)
    sql = out.getvalue()
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in sql
    for index in search.TRIGRAM_INDEXES.values():
        assert f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}"' in sql


@pytest.mark.run_on("sqlite")
def test_the_trigram_migration_is_a_no_op_on_sqlite(transactional_db: None) -> None:
    name, _ = trigram_migration()
    out = io.StringIO()
    call_command("sqlmigrate", "chatstate", name, stdout=out)
    assert "(no-op)" in out.getvalue()


@pytest.mark.run_on("postgresql")
def test_the_migration_does_nothing_where_pg_trgm_cannot_be_created(db: None) -> None:
    """A role without CREATE on the database cannot create the (trusted) extension: the
    migration goes on without it, and the admin searches without trigram indexes."""
    _, module = trigram_migration()
    role = f"chatstate_no_create_{os.getpid()}"
    with connection.cursor() as cursor:  # all rolled back with the test's transaction
        cursor.execute("DROP EXTENSION pg_trgm CASCADE")
        cursor.execute(f'CREATE ROLE "{role}"')
        cursor.execute(f'SET LOCAL ROLE "{role}"')
    with connection.schema_editor(atomic=False) as editor:
        module.create_indexes(editor)  # no error
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    assert module.extension_schema(connection) is None
    assert search.valid_trigram_indexes("default") == frozenset()
