"""PostgreSQL statements whose cost does not depend on what the planner believes.

The outbox claim costs one pass over the outbox. Thousands of entries committed into an
outbox PostgreSQL has no statistics for yet (before autovacuum's ANALYZE) once made the
planner run the claim's per-entry NOT EXISTS checks as nested loops over the whole namespace:
a claim of 100 among 4,000 entries read ~3.3 million buffers (0.7–2.5 s). Every statement of
``chatstate_outbox_claim`` now reads one table with no join and no correlated subquery, so no
plan can do that. Measured here on exactly that state: the table's statistics removed and its
size unknown (as never analyzed), inside the test's transaction (rolled back after), by the
buffers the claims read.

A cycle's commit finds its claim by the row id its entry returned (functions version 8). By
``(namespace, adapter, message_id)``, with the statistics of a dedupe table analyzed while
empty, the planner took the window's order index and read the namespace's whole window on
every commit (90 buffers at 5,000 keys; 9 by id).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = pytest.mark.run_on("postgresql")

ENTRIES, THREADS = 4000, 200

BUFFERS = (
    "SELECT sum(pg_stat_get_xact_blocks_fetched(c.oid)) FROM pg_class c"
    " WHERE c.oid = %s::regclass OR c.oid IN ("
    "SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass)"
)


def _buffers(table: str = "chatstate_outboxmessage") -> int:
    """The buffers this transaction has read of ``table`` and its indexes."""
    with connection.cursor() as cursor:
        cursor.execute(BUFFERS, [table, table])
        return int(cursor.fetchone()[0] or 0)


def _forget_statistics(table: str, rows: int) -> None:
    """``table``'s statistics as PostgreSQL would have them: none, and ``rows`` rows."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", [table])
        cursor.execute(
            "UPDATE pg_class SET reltuples = %s, relpages = 0 WHERE oid = %s::regclass",
            [rows, table],
        )


def test_a_claim_among_thousands_of_entries_without_statistics_reads_each_once(
    db: None,
) -> None:
    assert DatabaseStateAdapter(namespace="claim-plan").fast_sql  # its functions installed
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chatstate_outboxmessage (namespace, key, thread_id, payload, attempts,"
            " dead, created_at, due_at) SELECT 'claim-plan', 'k' || g, 't' || (g %% %s),"
            " '{}'::jsonb, 0, false, now(), now() FROM generate_series(1, %s) g",
            [THREADS, ENTRIES],
        )
    _forget_statistics("chatstate_outboxmessage", -1)  # as if never analyzed
    reads, claimed = [], []
    for owner in ("d1", "d2", "d3"):
        before = _buffers()
        with connection.cursor() as cursor:  # the fast path's statement, in this transaction
            cursor.execute("SELECT chatstate_outbox_claim(%s, %s, 100, 30)", ["claim-plan", owner])
            claimed.append(json.loads(cursor.fetchone()[0]))
        reads.append(_buffers() - before)
    # Each thread's oldest entry (the first 200 keys), 100 threads a claim; then every thread
    # is leased and nothing more can be claimed.
    assert [len(taken) for taken in claimed] == [100, 100, 0]
    keys = [entry[1] for taken in claimed for entry in taken]
    assert keys == [f"k{n}" for n in range(1, THREADS + 1)]
    # A few buffers per entry at most (the nested loops read ~800 per entry).
    assert max(reads) < 10 * ENTRIES, reads


WINDOW = 5000


def _full_window_without_statistics(namespace: str) -> None:
    """A full window of ``WINDOW`` done keys, in a table whose statistics say it is empty (as
    if analyzed while empty)."""
    assert DatabaseStateAdapter(namespace=namespace).fast_sql  # its functions installed
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chatstate_dedupeentry (namespace, adapter, message_id, seq, created_at)"
            " SELECT %s, 'h', 'h' || g, g, now() FROM generate_series(1, %s) g",
            [namespace, WINDOW],
        )
        cursor.execute(
            "INSERT INTO chatstate_dedupewindow (namespace, head) VALUES (%s, %s)",
            [namespace, WINDOW],
        )
    _forget_statistics("chatstate_dedupeentry", 0)


def _cycle_commit_buffers(
    namespace: str, message_id: str, table: str = "chatstate_dedupeentry"
) -> int:
    """A cycle's entry and commit (the fast path's statements, in this transaction), with
    nothing pending for its thread: the buffers of ``table`` and its indexes the commit
    read."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT claimed, result, claim_id FROM chatstate_enter(%s, 's', %s, %s, 't', 'w',"
            " 'reject', '{}'::jsonb, 30, 0, NULL, 'drop_oldest')",
            [namespace, message_id, WINDOW],
        )
        claimed, result, claim_id = cursor.fetchone()
        assert claimed and result == "acquired"
        before = _buffers(table)
        cursor.execute(
            "SELECT released, pending FROM chatstate_commit(%s, 't', 'w', '{}'::jsonb, %s,"
            " true, true, NULL)",
            [namespace, claim_id],
        )
        released, pending = cursor.fetchone()
        assert released and json.loads(pending) == []
        return _buffers(table) - before


def test_a_commit_finds_its_claim_by_id_whatever_the_statistics(db: None) -> None:
    _full_window_without_statistics("commit-plan")
    reads = [_cycle_commit_buffers("commit-plan", f"m{i}") for i in range(8)]
    # The claim's row by its primary key, then marked done: 9 buffers, 20 when the update
    # needs a new page. By the window's order index: 90 on every commit (5,000 keys).
    assert max(reads) < 45, reads


def test_a_claim_reads_no_window_whatever_the_statistics(db: None) -> None:
    """A claim's upsert finds its key through the unique index, whatever the planner
    believes (functions version 16 keeps it: a lookup of the key by a query took the
    window's order index here, and read the namespace's whole window, 100 buffers)."""
    _full_window_without_statistics("entry-plan")
    with connection.cursor() as cursor:
        before = _buffers("chatstate_dedupeentry")
        cursor.execute(
            "SELECT claimed, result FROM chatstate_enter('entry-plan', 's', 'm1', %s, 't', 'w',"
            " 'reject', '{}'::jsonb, 30, 0, NULL, 'drop_oldest')",
            [WINDOW],
        )
        assert cursor.fetchone() == (True, "acquired")
        reads = _buffers("chatstate_dedupeentry") - before
    # About 20: the key's insert, the newest position, the key that left. (Later claims in
    # this one transaction read more: the rows it deleted stay in the indexes until it ends.)
    assert reads < 45, reads


def _others_pending(namespace: str) -> None:
    """``ENTRIES`` pending entries of other keys in ``namespace``; the table's statistics
    as PostgreSQL would have them before its first ANALYZE."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chatstate_pendinglockentry"
            " (namespace, key, owner, strategy, metadata, enqueued_at)"
            " SELECT %s, 'other' || g, 'w' || g, 'queue', '{}', now()"
            " FROM generate_series(1, %s) g",
            [namespace, ENTRIES],
        )
    _forget_statistics("chatstate_pendinglockentry", 0)


def test_a_commit_with_nothing_pending_reads_no_other_keys_entries(db: None) -> None:
    """A commit looks for its own thread's pending entries through their key's index,
    whatever the planner believes (functions version 17). Asked with EXISTS, a table with
    no statistics took the (namespace, owner) index and read every entry of the namespace."""
    _others_pending("pending-plan")
    reads = _cycle_commit_buffers("pending-plan", "m1", "chatstate_pendinglockentry")
    # 2: the key index's root and leaf. Through the owner index: the namespace's 4,000.
    assert reads < 10, reads


def test_a_full_queues_count_reads_no_other_keys_entries(db: None) -> None:
    """A queue with ``max_pending`` counts its key's entries through their key's index,
    whatever the planner believes (functions version 17; counted plainly, a table with no
    statistics took the (namespace, owner) index and read every entry of the namespace)."""
    _others_pending("depth-plan")
    with connection.cursor() as cursor:
        lock = (
            "SELECT result FROM chatstate_lock('depth-plan', 't', %s, %s, '{}'::jsonb, 30, 5,"
            " 'drop_oldest')"
        )
        cursor.execute(lock, ["a", "reject"])
        assert cursor.fetchone()[0] == "acquired"
        before = _buffers("chatstate_pendinglockentry")
        cursor.execute(lock, ["b", "queue"])
        assert cursor.fetchone()[0] == "queued"
        reads = _buffers("chatstate_pendinglockentry") - before
    # About 10: the count through the key's index, the entry's insert into the table and its
    # three indexes. Through the owner index: the namespace's 4,000 entries.
    assert reads < 30, reads
