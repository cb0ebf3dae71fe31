"""A cycle's commit finds its rows where its entry left them (functions version 15).

The entry returns where the claim's, the lock's and the thread state's rows lie. The commit
looks there first, and reads no index for them; a row that moved since is looked up by key.
Index scans are counted in ``pg_stat_user_indexes``; what the commit writes is in
``test_postgres_wal.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from chatstate import LockResult
from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = [pytest.mark.run_on("postgresql"), pytest.mark.usefixtures("transactional_db")]

INDEXES = ("chatstate_dedupeentry_pkey", "chatstate_lock_unique", "chatstate_threadstate_unique")


def index_scans() -> dict[str, int]:
    """Index scans so far, this connection's included (its stats flushed first)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # flushed as its statement ends
        cursor.execute(
            "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE indexrelname = ANY(%s)",
            [list(INDEXES)],
        )
        return dict(cursor.fetchall())


def test_a_commit_reads_no_index_to_find_its_claim_its_lock_and_its_state() -> None:
    store = DatabaseStateAdapter(namespace="by-address")
    store.put_thread_state("t", {"n": 0})  # a thread with a state row: it is updated
    scans: dict[str, Any] = {}
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
        assert msg.acquired and msg.state == {"n": 0}
        scans["before"] = index_scans()
        msg.state["n"] = 1
    after = index_scans()
    assert {name: after[name] - scans["before"][name] for name in INDEXES} == dict.fromkeys(
        INDEXES, 0
    )
    assert store.thread_state("t") == {"n": 1}
    assert store.lock("t", "other") is LockResult.ACQUIRED  # released
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as again:
        assert again.duplicate and not again.in_progress  # the claim is done


def test_a_commit_finds_its_rows_by_key_when_they_moved_after_the_entry() -> None:
    """A renewal rewrites the claim's and the lock's rows, and another writer the state's:
    the addresses the entry gave are stale, and the commit still does all it must."""
    store = DatabaseStateAdapter(namespace="moved")
    store.put_thread_state("t", {"n": 0})
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
        assert msg.acquired
        with connection.cursor() as cursor:
            for table, column in (
                ("chatstate_dedupeentry", "expires_at"),
                ("chatstate_lock", "expires_at"),
                ("chatstate_threadstate", "updated_at"),
            ):
                cursor.execute(
                    f"UPDATE {table} SET {column} = {column} + interval '1 second'"  # noqa: S608
                    " WHERE namespace = %s RETURNING ctid",
                    [store.namespace],
                )
                assert cursor.fetchone() is not None
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    assert store.lock("t", "other") is LockResult.ACQUIRED
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as again:
        assert again.duplicate and not again.in_progress
