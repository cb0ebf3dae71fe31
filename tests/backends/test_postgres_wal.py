"""What a message cycle writes to PostgreSQL's WAL, record by record (pg_walinspect).

Counts, not times: a commit's lock row is inserted once and deleted once, with no row lock
between (functions version 12), and a new thread's state writes no trigram index (0023). A
free lock and a new thread's state are plain inserts, not upserts (version 16): no
speculative insert and its confirmation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from chatstate import LeaseLost, LockResult
from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = [pytest.mark.run_on("postgresql"), pytest.mark.usefixtures("transactional_db")]


def heap_records(table: str, run: Callable[[], None]) -> Counter[str]:
    """The heap records ``run()`` wrote to ``table``, by type (``INSERT``, ``LOCK``…).

    ``run`` ends with a durable commit, so every record it wrote is flushed."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        cursor.execute(  # a block reference reads "rel <tablespace>/<database>/<file> ..."
            "SELECT format('/%%s/%%s ', d.oid, pg_relation_filenode(%s))"
            " FROM pg_database d WHERE d.datname = current_database()",
            [table],
        )
        (relation,) = cursor.fetchone()
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        (start,) = cursor.fetchone()
    run()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT record_type FROM pg_get_wal_records_info(%s, pg_current_wal_flush_lsn())"
            " WHERE resource_manager = 'Heap' AND position(%s IN block_ref) > 0",
            [start, relation],
        )
        # ("INSERT+INIT": an insert that starts a new page)
        return Counter(record_type.split("+")[0] for (record_type,) in cursor.fetchall())


def acquired_cycle(store: DatabaseStateAdapter) -> Callable[[], None]:
    """A cycle of message m1 on thread t that acquires it and writes {"n": 1}."""

    def cycle() -> None:
        with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
            assert msg.acquired
            msg.state["n"] = 1

    return cycle


def test_a_commit_releases_its_lock_without_locking_its_row_first() -> None:
    cycle = acquired_cycle(DatabaseStateAdapter(namespace="wal-lock"))
    # (an upsert would be a speculative insert, then its confirmation: version 16 inserts)
    assert heap_records("chatstate_lock", cycle) == {"INSERT": 1, "DELETE": 1}


def test_a_refused_commit_writes_nothing_to_the_lock() -> None:
    """The lease went to another holder: the commit's delete finds nothing, and is refused."""
    store = DatabaseStateAdapter(namespace="wal-refused")

    def cycle() -> None:
        with (
            pytest.raises(LeaseLost),
            store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg,
        ):
            store.release_lock("t", "w")  # then another takes it
            assert store.lock("t", "other") is LockResult.ACQUIRED
            msg.state["n"] = 1

    records = heap_records("chatstate_lock", cycle)
    # w's lock, its release, other's lock; the commit's delete found no row of w's
    assert records == {"INSERT": 2, "DELETE": 1}
    assert store.thread_state("t") == {}


def test_a_commit_marks_its_claim_done_without_locking_its_row_first() -> None:
    records = heap_records(
        "chatstate_dedupeentry", acquired_cycle(DatabaseStateAdapter(namespace="wal-claim"))
    )
    # the claim's insert, its confirmation, and one update that marks it done (version 14)
    assert records["LOCK"] == 0
    assert (records["INSERT"], records["HEAP_CONFIRM"]) == (1, 1)
    assert records["UPDATE"] + records["HOT_UPDATE"] == 1


def test_a_redelivery_of_a_handled_message_writes_nothing() -> None:
    """A done key is read without a lock (version 14): no WAL, so no flush to wait for."""
    store = DatabaseStateAdapter(namespace="wal-duplicate")
    store.mark_dedupe(("s", "m1"), 5)

    def redelivered() -> None:
        assert store.claim_dedupe(("s", "m1"), 5) is False
        with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
            assert msg.duplicate
        store.mark_dedupe(("s", "flush"), 5)  # a durable commit after, so all is flushed

    assert heap_records("chatstate_dedupeentry", redelivered) == {"INSERT": 1, "HEAP_CONFIRM": 1}


def test_a_commit_updates_a_threads_state_row_without_locking_it_first() -> None:
    """The state's row is updated where the entry read it (version 15): an upsert that finds
    its row locks it first, a WAL record of its own."""
    store = DatabaseStateAdapter(namespace="wal-state")
    store.put_thread_state("t", {"n": 0})
    records = heap_records("chatstate_threadstate", acquired_cycle(store))
    assert records["LOCK"] == 0
    assert records["UPDATE"] + records["HOT_UPDATE"] == 1
    assert store.thread_state("t") == {"n": 1}


def test_a_new_threads_state_row_is_inserted_plainly() -> None:
    """The entry found no state row: the commit inserts one, with no upsert (version 16)."""
    store = DatabaseStateAdapter(namespace="wal-new-state")
    assert heap_records("chatstate_threadstate", acquired_cycle(store)) == {"INSERT": 1}
    assert store.thread_state("t") == {"n": 1}
