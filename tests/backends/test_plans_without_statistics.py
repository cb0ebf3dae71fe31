"""The PostgreSQL outbox claim costs one pass over the outbox whatever the planner believes.

Thousands of entries committed into an outbox PostgreSQL has no statistics for yet (before
autovacuum's ANALYZE) once made the planner run the claim's per-entry NOT EXISTS checks as
nested loops over the whole namespace: a claim of 100 among 4,000 entries read ~3.3 million
buffers (0.7–2.5 s). Every statement of ``chatstate_outbox_claim`` now reads one table with no
join and no correlated subquery, so no plan can do that. Measured here on exactly that state:
the table's statistics removed and its size unknown (as never analyzed), inside the test's
transaction (rolled back after), by the buffers the claims read.
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
    " WHERE c.oid = 'chatstate_outboxmessage'::regclass OR c.oid IN ("
    "SELECT indexrelid FROM pg_index WHERE indrelid = 'chatstate_outboxmessage'::regclass)"
)


def _buffers() -> int:
    with connection.cursor() as cursor:
        cursor.execute(BUFFERS)
        return int(cursor.fetchone()[0] or 0)


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
        # As if never analyzed: no column statistics, no row count.
        cursor.execute(
            "DELETE FROM pg_statistic WHERE starelid = 'chatstate_outboxmessage'::regclass"
        )
        cursor.execute(
            "UPDATE pg_class SET reltuples = -1, relpages = 0"
            " WHERE oid = 'chatstate_outboxmessage'::regclass"
        )
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
