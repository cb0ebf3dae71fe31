"""A cycle's plain writes (functions version 16), when another writer holds their key.

A free lock and a new thread's state row are inserted plainly, not upserted. A key written
meanwhile makes the insert fail; its block rolls back, and the call decides as an upsert
would have. A claim stays an upsert: its race with an uncommitted insert of its key, and a
key to drop that another transaction holds, are here too. What they write is in
``test_postgres_wal.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, connections

from chatstate import LockResult
from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = [pytest.mark.run_on("postgresql"), pytest.mark.usefixtures("transactional_db")]


def test_a_state_row_written_during_the_cycle_takes_the_cycles_state() -> None:
    """The entry found no state row; another writer made one before the commit."""
    store = DatabaseStateAdapter(namespace="plain-state")
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as msg:
        assert msg.acquired and msg.state == {}
        DatabaseStateAdapter(namespace="plain-state").put_thread_state("t", {"other": 1})
        msg.state["n"] = 1
    assert store.thread_state("t") == {"n": 1}
    assert store.lock("t", "next") is LockResult.ACQUIRED  # released
    with store.handle_message(("s", "m1"), thread_id="t", owner="w") as again:
        assert again.duplicate and not again.in_progress  # the claim is done


def _waiting_for_a_transaction(timeout: float = 10.0) -> None:
    """Return once some backend waits for another's transaction (a row or key it wrote)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the claim never waited for the other insert")


@pytest.mark.parametrize(("other_commits", "claimed"), [(True, False), (False, True)])
def test_a_claim_racing_an_uncommitted_insert_of_its_key(
    other_commits: bool, claimed: bool
) -> None:
    """The claim's insert waits for another's of its key: a duplicate when that commits, the
    claim's own when it rolls back."""
    store = DatabaseStateAdapter(namespace="plain-claim")
    other = connections.create_connection("default")
    other.set_autocommit(False)
    result: dict[str, Any] = {}

    def claim() -> None:
        try:
            result["claimed"] = store.claim_dedupe(("s", "m1"), 10)
        except Exception as exc:  # reported below
            result["error"] = exc
        finally:
            connections.close_all()

    try:
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO chatstate_dedupeentry"
                " (namespace, adapter, message_id, seq, created_at)"
                " VALUES (%s, 's', 'm1', 1, now())",
                [store.namespace],
            )
        worker = threading.Thread(target=claim)
        worker.start()
        _waiting_for_a_transaction()
        other.commit() if other_commits else other.rollback()
        worker.join(10)
        assert not worker.is_alive()
    finally:
        other.close()
    assert result == {"claimed": claimed}
    assert store.is_duplicate(("s", "m1"))
    assert store.snapshot().dedupe_order == [("s", "m1")]


def test_a_claim_whose_key_to_drop_is_held_elsewhere_waits_a_bounded_time() -> None:
    """Another transaction holds the row of the key that leaves the window: the claim still
    succeeds (it waits at most 20 ms), and the key leaves with a later claim."""
    store = DatabaseStateAdapter(namespace="plain-trim")
    store.mark_dedupe(("s", "m0"), 1)
    other = connections.create_connection("default")
    other.set_autocommit(False)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM chatstate_dedupeentry WHERE namespace = %s FOR UPDATE",
                [store.namespace],
            )
        assert store.claim_dedupe(("s", "m1"), 1) is True
        assert store.is_duplicate(("s", "m0"))  # held: not dropped yet
    finally:
        other.rollback()
        other.close()
    assert store.claim_dedupe(("s", "m2"), 1) is True
    assert store.snapshot().dedupe_order == [("s", "m2")]
