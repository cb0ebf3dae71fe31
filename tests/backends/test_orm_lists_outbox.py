"""Lists and the outbox on the ORM path, row by row (SQLite, MariaDB/MySQL, and PostgreSQL
with ``fast_sql=False``): what the tables hold after appends, restarts and prune; the
history read inside the entry step's transaction; a claim passing over a thread whose
oldest entry another transaction has locked, without waiting for it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from bench.counting import count_statements
from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.calls import OutboxClaim
from chatstate.models import ListHead, ListItem, OutboxMessage
from tests.conftest import next_namespace


@pytest.fixture
def store(db: None) -> DatabaseStateAdapter:
    return DatabaseStateAdapter(namespace=next_namespace(), fast_sql=False)


def items(store: DatabaseStateAdapter, key: str) -> list[tuple[int, Any]]:
    rows = ListItem.objects.filter(namespace=store.namespace, key=key).order_by("seq")
    return list(rows.values_list("seq", "value"))


def reply(store: DatabaseStateAdapter, message: str, thread: str) -> str:
    with store.handle_message(("s", message), thread_id=thread, owner=message) as msg:
        return msg.send({"text": message})


def test_a_capped_list_keeps_only_its_newest_rows(store: DatabaseStateAdapter) -> None:
    for n in range(5):
        store.append_to_list("k", n, max_length=2)
    assert items(store, "k") == [(4, 3), (5, 4)]
    store.append_to_list("k", 5)  # no max_length: nothing trimmed
    assert items(store, "k") == [(4, 3), (5, 4), (6, 5)]
    assert ListHead.objects.get(namespace=store.namespace, key="k").last_seq == 6


def test_an_expired_list_starts_over_without_its_old_rows(store: DatabaseStateAdapter) -> None:
    store.append_to_list("k", "old", ttl=0.5)
    store.append_to_list("k", "old too")  # within the ttl, even on a loaded machine
    time.sleep(0.6)
    store.append_to_list("k", "new")
    assert [value for _, value in items(store, "k")] == ["new"]
    assert ListHead.objects.get(namespace=store.namespace, key="k").expires_at is None


def test_a_commit_appends_many_in_order_trimming_within_the_commit(
    store: DatabaseStateAdapter,
) -> None:
    with store.handle_message(("s", "m1"), thread_id="t", owner="w", history=3) as msg:
        for n in range(4):
            msg.append_to_list("k", n, max_length=3)
        msg.append_to_list("other", "x")
    assert items(store, "k") == [(2, 1), (3, 2), (4, 3)]  # item 1 was never written
    assert store.get_list("other") == ["x"]


def test_prune_deletes_the_rows_of_expired_lists(store: DatabaseStateAdapter) -> None:
    store.append_to_list("gone", 1, ttl=0.5)
    store.append_to_list("gone", 2)  # within the ttl, even on a loaded machine
    store.append_to_list("kept", 1)
    time.sleep(0.6)
    assert store.prune(dedupe_limit=10)["lists_expired"] == 1
    assert list(
        ListHead.objects.filter(namespace=store.namespace).values_list("key", flat=True)
    ) == ["kept"]
    assert items(store, "gone") == [] and items(store, "kept") == [(1, 1)]


def test_the_history_is_read_inside_the_entry_transaction(transactional_db: None) -> None:
    """Reading the history adds a statement to the entry step, never a commit."""
    store = DatabaseStateAdapter(namespace=next_namespace(), fast_sql=False)
    store.append_to_list("history:t", "h")
    commits = []
    for n, history in enumerate((0, 5)):
        with (
            count_statements(store.using) as counts,
            store.handle_message(("s", f"m{n}"), thread_id="t", owner="w", history=history) as m,
        ):
            assert m.history.items == ([] if history == 0 else ["h"])
        commits.append(counts["commits"])
    assert commits[0] == commits[1]


def test_bad_outbox_ids_match_nothing(store: DatabaseStateAdapter) -> None:
    reply(store, "m1", "t")
    bad = ["x", "-1", "0", "1.0", "²", str(2**64), ""]
    assert store.requeue_outbox(bad) == 0 and store.discard_outbox(bad) == 0
    assert len(store.outbox()) == 1


def test_settling_an_entry_leased_to_another_dispatcher_changes_nothing(
    store: DatabaseStateAdapter,
) -> None:
    reply(store, "m1", "t")
    (entry,) = store._do_outbox_claim(OutboxClaim("d1", 10, 60))
    assert store._do_outbox_failed("d2", entry.id, 0, 1) is False
    store._do_outbox_release("d2", [entry.id])
    row = OutboxMessage.objects.get(pk=entry.id)
    assert (row.lease_owner, row.attempts, row.dead) == ("d1", 0, False)
    assert store._do_outbox_claim(OutboxClaim("d2", 10, 60)) == []  # still d1's
    assert store.requeue_outbox([entry.id]) == 0  # not dead


def test_a_dead_entry_does_not_hold_back_its_thread(store: DatabaseStateAdapter) -> None:
    first, second = reply(store, "m1", "t"), reply(store, "m2", "t")
    (entry, _) = store._do_outbox_claim(OutboxClaim("d1", 10, 60))
    assert entry.key == first
    assert store._do_outbox_failed("d1", entry.id, 0, 1) is True  # dead at once
    store._do_outbox_release("d1", [e.id for e in store.outbox() if e.key == second])
    assert [e.key for e in store._do_outbox_claim(OutboxClaim("d2", 10, 60))] == [second]


@pytest.mark.run_on("postgresql", "mysql")  # SQLite has no row locks: one writer at a time
def test_a_claim_passes_over_a_thread_whose_oldest_entry_is_locked(
    transactional_db: None,
) -> None:
    """Another transaction holds the oldest entry of thread ``a`` (as a concurrent claim
    would): the claim neither waits for it nor takes ``a``'s later entries."""
    store = DatabaseStateAdapter(namespace=next_namespace(), fast_sql=False)
    for message, thread in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")):
        reply(store, message, thread)
    oldest = OutboxMessage.objects.filter(namespace=store.namespace).order_by("id").first()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                OutboxMessage.objects.select_for_update().get(pk=oldest.pk)
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=10)
        started = time.monotonic()
        with CaptureQueriesContext(connection) as queries:
            taken = store._do_outbox_claim(OutboxClaim("d", 10, 60))
        assert time.monotonic() - started < 5  # did not wait for the lock
        assert [e.payload["text"] for e in taken] == ["b1", "b2"]
        assert any("SKIP LOCKED" in q["sql"] for q in queries)
    finally:
        release.set()
        holder.join(timeout=30)
    assert [e.payload["text"] for e in store._do_outbox_claim(OutboxClaim("e", 10, 60))] == [
        "a1",
        "a2",
    ]
