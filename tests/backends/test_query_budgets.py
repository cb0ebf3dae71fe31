"""Query budgets: how many statements and commits each operation sends, fixed at their optimum.

A regression (an extra round trip, an extra commit) fails here; speed itself is judged by
``manage.py chatstate_bench``, never by a timed test.

The tests run on ``transactional_db`` (no wrapping test transaction), so the counts are
those of production in autocommit mode. A budget is ``(round trips, commits)``:

* round trips — what ``django_assert_num_queries`` counts: every statement, plus the BEGIN
  and COMMIT around each ``transaction.atomic()`` block (Django >= 4.2 logs those too);
  :func:`bench.counting.count_statements` must agree;
* commits — committed transactions, counted by ``count_statements``: a statement outside
  ``transaction.atomic()`` is one (autocommit), an outermost atomic block is one.

* PostgreSQL fast path (``DatabaseStateAdapter`` on PostgreSQL): defined in the PostgreSQL
  run only. Each primitive is one statement and one commit; the uncontended
  ``handle_message`` cycle is two (``chatstate_enter``, ``chatstate_commit``).
* Portable ORM path (``fast_sql=False`` on PostgreSQL; the only path on SQLite): its own
  budgets, per vendor, so that a regression there shows too.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections

from bench.counting import count_statements
from chatstate.adapters.database import DatabaseStateAdapter
from chatstate.types import LockResult

VENDOR = connection.vendor
_names = itertools.count(1)

Op = Callable[[DatabaseStateAdapter], Any]


def _setup_lock(s: DatabaseStateAdapter) -> None:
    s.lock("k", "a")


def _setup_queue(s: DatabaseStateAdapter) -> None:
    s.lock("k", "a")
    s.lock("k", "b", "queue")


def _setup_state(s: DatabaseStateAdapter) -> None:
    s.put_thread_state("t", {"n": 1})


def _setup_subscribed(s: DatabaseStateAdapter) -> None:
    s.subscribe("t")
    s.put_thread_state("t", {"n": 1})


def _cycle(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w") as msg:
        assert msg.acquired
        msg.state["n"] += 1


def _cycle_unchanged(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w") as msg:
        assert msg.acquired


def _cycle_duplicate(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m0"), thread_id="t", owner="w") as msg:
        assert msg.duplicate


def _setup_duplicate(s: DatabaseStateAdapter) -> None:
    _setup_subscribed(s)
    s.mark_dedupe(("slack", "m0"))


def _noop(s: DatabaseStateAdapter) -> None:
    pass


def _cycle_draining_nothing(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w", strategy="queue") as msg:
        msg.state["n"] += 1
        assert list(msg.drain()) == []


def _cycle_draining_one(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w", strategy="queue") as msg:
        msg.state["n"] += 1
        s.lock("t", "other", "queue")  # setup inside the block: one entry queued
        for _ in msg.drain():
            msg.state["n"] += 1


def _cycle_with_effects(s: DatabaseStateAdapter) -> None:
    """A cycle that reads the history and stages every kind of effect: still entry + commit."""
    key = ("slack", "m1")
    with s.handle_message(key, thread_id="t", owner="w", channel_id="c", history=20) as msg:
        assert msg.acquired and msg.history.items == [{"n": 0}]
        msg.state["n"] = 1
        msg.channel.incr("messages")
        msg.channel.add("threads", "t")
        msg.channel.set("last", {"thread": "t"})
        msg.subscribe()
        msg.history.append({"n": 1})
        msg.append_to_list("user:U1", {"n": 1}, max_length=10, ttl=60)
        msg.send({"text": "hello"})


def _setup_history(s: DatabaseStateAdapter) -> None:
    s.append_to_list("history:t", {"n": 0})


def _setup_outbox(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m0"), thread_id="t", owner="w") as msg:
        msg.send({"text": "hello"})


CAPPED = {"strategy": "concurrent", "max_concurrent": 2}


def _setup_slot(s: DatabaseStateAdapter) -> None:
    _setup_subscribed(s)
    s.lock("t", "other", **CAPPED)


def _setup_full(s: DatabaseStateAdapter) -> None:
    _setup_subscribed(s)
    s.lock("t", "a", **CAPPED)
    s.lock("t", "b", **CAPPED)


def _cycle_capped(s: DatabaseStateAdapter) -> None:
    """A capped ``concurrent`` cycle beside another holder: a slot taken, then freed."""
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w", **CAPPED) as msg:
        assert msg.acquired
        msg.state["n"] += 1


def _cycle_capped_full(s: DatabaseStateAdapter) -> None:
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w", **CAPPED) as msg:
        assert msg.result is not None and msg.result.value == "queued"


def _cycle_gathering(s: DatabaseStateAdapter) -> None:
    """A cycle whose block gathers once (window 0: one look) and takes the queued entry."""
    with s.handle_message(("slack", "m1"), thread_id="t", owner="w", strategy="queue") as msg:
        s.lock("t", "other", "queue")  # setup inside the block: one entry queued
        assert len(msg.gather(0)) == 1
        msg.state["n"] += 1


#: name -> (setup, operation). Each runs in a fresh namespace.
OPERATIONS: dict[str, tuple[Op, Op]] = {
    "is_subscribed": (_noop, lambda s: s.is_subscribed("t")),
    "subscribe": (_noop, lambda s: s.subscribe("t")),
    "unsubscribe": (_setup_subscribed, lambda s: s.unsubscribe("t")),
    "thread_state": (_setup_state, lambda s: s.thread_state("t")),
    "put_thread_state": (_setup_state, lambda s: s.put_thread_state("t", {"n": 2})),
    "channel_state": (_noop, lambda s: s.channel_state("c")),
    "put_channel_state": (_noop, lambda s: s.put_channel_state("c", {"n": 2})),
    "is_duplicate": (_noop, lambda s: s.is_duplicate(("slack", "m1"))),
    "claim_dedupe": (_noop, lambda s: s.claim_dedupe(("slack", "m1"))),
    "claim_dedupe_duplicate": (_setup_duplicate, lambda s: s.claim_dedupe(("slack", "m0"))),
    "mark_dedupe": (_noop, lambda s: s.mark_dedupe(("slack", "m1"))),
    "lock": (_noop, lambda s: s.lock("k", "a")),
    "lock_busy": (_setup_lock, lambda s: s.lock("k", "b")),
    "lock_queue": (_setup_lock, lambda s: s.lock("k", "b", "queue")),
    "lock_debounce": (_setup_queue, lambda s: s.lock("k", "c", "debounce")),
    "extend_lock": (_setup_lock, lambda s: s.extend_lock("k", "a", 60)),
    "release_lock": (_setup_lock, lambda s: s.release_lock("k", "a")),
    "release_lock_with_pending": (_setup_queue, lambda s: s.release_lock("k", "a")),
    "force_release_lock": (_setup_lock, lambda s: s.force_release_lock("k")),
    "update_thread_state": (
        _setup_state,
        lambda s: s.update_thread_state("t", lambda m: {**m, "n": 2}),
    ),
    "handle_message": (_setup_subscribed, _cycle),
    "handle_message_unchanged_state": (_setup_subscribed, _cycle_unchanged),
    "handle_message_duplicate": (_setup_duplicate, _cycle_duplicate),
    "handle_message_drain_nothing": (_setup_subscribed, _cycle_draining_nothing),
    "release_lock_only_if_idle": (
        _setup_queue,
        lambda s: s.release_lock("k", "a", only_if_idle=True),
    ),
    "take_pending": (_setup_queue, lambda s: s.take_pending("k", "a")),
    "handle_message_with_effects": (_setup_history, _cycle_with_effects),
    "append_to_list": (_setup_history, lambda s: s.append_to_list("history:t", 1, max_length=5)),
    "get_list": (_setup_history, lambda s: s.get_list("history:t", limit=5)),
    "delete_list": (_setup_history, lambda s: s.delete_list("history:t")),
    "outbox": (_setup_outbox, lambda s: s.outbox()),
    "dispatch_outbox": (_setup_outbox, lambda s: s.dispatch_outbox(lambda entry: None)),
    "lock_slot": (_setup_slot, lambda s: s.lock("t", "w", **CAPPED)),
    "release_slot": (_setup_slot, lambda s: s.release_lock("t", "other")),
    "extend_slot": (_setup_slot, lambda s: s.extend_lock("t", "other", 60)),
    "handle_message_capped": (_setup_slot, _cycle_capped),
    "handle_message_capped_full": (_setup_full, _cycle_capped_full),
}
#: The operations of a capped cycle and of gather (the ``lock()`` inside the gathering block
#: is one round trip of its own, the look is another).
SLOT_OPERATIONS = {
    "handle_message_gather_one_look": (_setup_subscribed, _cycle_gathering),
}
OPERATIONS.update(SLOT_OPERATIONS)

#: PostgreSQL fast path: name -> (round trips, commits). Every primitive is one statement in
#: autocommit mode; ``update_thread_state`` keeps ``select_for_update`` on the state row inside
#: one transaction (BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT).
FAST_BUDGETS: dict[str, tuple[int, int]] = {
    "is_subscribed": (1, 1),
    "subscribe": (1, 1),
    "unsubscribe": (1, 1),
    "thread_state": (1, 1),
    "put_thread_state": (1, 1),
    "channel_state": (1, 1),
    "put_channel_state": (1, 1),
    "is_duplicate": (1, 1),
    "claim_dedupe": (1, 1),
    "claim_dedupe_duplicate": (1, 1),
    "mark_dedupe": (1, 1),
    "lock": (1, 1),
    "lock_busy": (1, 1),
    "lock_queue": (1, 1),
    "lock_debounce": (1, 1),
    "extend_lock": (1, 1),
    "release_lock": (1, 1),
    "release_lock_with_pending": (1, 1),
    "force_release_lock": (1, 1),
    "update_thread_state": (4, 1),
    "handle_message": (2, 2),
    "handle_message_unchanged_state": (2, 2),
    "handle_message_duplicate": (1, 1),
    # A drain that finds nothing is the commit: no extra round trip.
    "handle_message_drain_nothing": (2, 2),
    "release_lock_only_if_idle": (1, 1),
    "take_pending": (1, 1),
    # Channel operations, a subscription, list appends and a send ride on the commit, the
    # history read on the entry: no round trip of their own.
    "handle_message_with_effects": (2, 2),
    "append_to_list": (1, 1),
    "get_list": (1, 1),
    "delete_list": (1, 1),
    "outbox": (1, 1),
    # The claim, then the removal of the delivered entry.
    "dispatch_outbox": (2, 2),
    # Slots (capped concurrent): one statement each; a capped cycle enters and commits in one
    # statement each, like a locking one; over the cap, its entry is all.
    "lock_slot": (1, 1),
    "release_slot": (1, 1),
    "extend_slot": (1, 1),
    "handle_message_capped": (2, 2),
    "handle_message_capped_full": (1, 1),
    # enter, the queueing lock() inside the block, one look, the commit (which removes the
    # gathered entry): one round trip per look.
    "handle_message_gather_one_look": (4, 4),
}

#: Portable ORM path, per vendor: name -> (round trips, commits). On SQLite a write
#: transaction starts with Django's BEGIN and one statement that takes the write lock.
ORM_BUDGETS: dict[str, dict[str, tuple[int, int]]] = {
    "postgresql": {
        "is_subscribed": (1, 1),
        "subscribe": (5, 1),
        "unsubscribe": (3, 1),
        "thread_state": (1, 1),
        "put_thread_state": (3, 1),
        "channel_state": (1, 1),
        "put_channel_state": (3, 1),
        "is_duplicate": (1, 1),
        "claim_dedupe": (12, 2),
        "claim_dedupe_duplicate": (1, 1),
        "mark_dedupe": (12, 2),
        "lock": (7, 1),
        "lock_busy": (4, 1),
        "lock_queue": (6, 1),
        "lock_debounce": (7, 1),
        "extend_lock": (4, 1),
        "release_lock": (5, 1),
        "release_lock_with_pending": (6, 1),
        "force_release_lock": (4, 1),
        "update_thread_state": (4, 1),
        "handle_message": (26, 3),
        "handle_message_unchanged_state": (25, 3),
        "handle_message_duplicate": (2, 2),
        "handle_message_drain_nothing": (27, 3),
        "release_lock_only_if_idle": (7, 1),
        "take_pending": (5, 1),
        "lock_slot": (5, 1),
        "release_slot": (6, 1),
        "extend_slot": (6, 1),
        "handle_message_capped": (27, 3),
        "handle_message_capped_full": (17, 2),
        "handle_message_gather_one_look": (40, 5),
    },
    "sqlite": {
        "is_subscribed": (1, 1),
        "subscribe": (5, 1),
        "unsubscribe": (4, 1),
        "thread_state": (1, 1),
        "put_thread_state": (4, 1),
        "channel_state": (1, 1),
        "put_channel_state": (4, 1),
        "is_duplicate": (1, 1),
        "claim_dedupe": (12, 2),
        "claim_dedupe_duplicate": (1, 1),
        "mark_dedupe": (12, 2),
        "lock": (7, 1),
        "lock_busy": (4, 1),
        "lock_queue": (6, 1),
        "lock_debounce": (7, 1),
        "extend_lock": (4, 1),
        "release_lock": (6, 1),
        "release_lock_with_pending": (7, 1),
        "force_release_lock": (5, 1),
        "update_thread_state": (5, 1),
        "handle_message": (27, 3),
        "handle_message_unchanged_state": (26, 3),
        "handle_message_duplicate": (2, 2),
        "handle_message_drain_nothing": (28, 3),
        "release_lock_only_if_idle": (7, 1),
        "take_pending": (6, 1),
        "lock_slot": (5, 1),
        "release_slot": (6, 1),
        "extend_slot": (6, 1),
        "handle_message_capped": (27, 3),
        "handle_message_capped_full": (17, 2),
        "handle_message_gather_one_look": (41, 5),
    },
}
#: MariaDB/MySQL: the same statements as PostgreSQL's ORM path (upserts are one
#: ``INSERT ... ON DUPLICATE KEY UPDATE``, row locks ``SELECT ... FOR UPDATE``).
ORM_BUDGETS["mysql"] = ORM_BUDGETS["postgresql"]


def _measure(
    adapter: DatabaseStateAdapter, name: str, assert_num_queries: Any, round_trips: int
) -> tuple[int, list[str]]:
    """Run operation ``name`` after its setup; assert its round trips; (commits, SQL sent).

    The SQL is what the cursor was given (Django's query log shows no text for a statement
    the server already holds prepared)."""
    setup, operation = OPERATIONS[name]
    setup(adapter)
    sent: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(sql)
        return execute(sql, params, many, context)

    with (
        assert_num_queries(round_trips),
        count_statements(adapter.using) as counts,
        connections[adapter.using].execute_wrapper(record),
    ):
        operation(adapter)
    assert counts["round_trips"] == round_trips
    return counts["commits"], sent


def _adapter(fast_sql: bool) -> DatabaseStateAdapter:
    return DatabaseStateAdapter(namespace=f"budget-{next(_names)}", fast_sql=fast_sql)


if VENDOR == "postgresql":
    # Defined in the PostgreSQL run only: on SQLite there is no fast path to budget.

    @pytest.mark.parametrize("name", list(FAST_BUDGETS))
    def test_fast_path_budget(
        name: str, transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        assert adapter.fast_sql
        round_trips, commits = FAST_BUDGETS[name]
        counted_commits, _ = _measure(adapter, name, django_assert_num_queries, round_trips)
        assert counted_commits == commits, f"{name}: {counted_commits} commits, budget {commits}"

    def test_the_fast_cycle_is_one_function_call_on_entry_and_one_on_exit(
        transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        _, sqls = _measure(adapter, "handle_message", django_assert_num_queries, 2)
        assert "chatstate_enter(" in sqls[0]
        assert "chatstate_commit(" in sqls[1]

    def test_a_cycle_with_effects_writes_them_in_its_commit(
        transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        _, sqls = _measure(adapter, "handle_message_with_effects", django_assert_num_queries, 2)
        assert "chatstate_enter(" in sqls[0]
        assert "chatstate_commit(" in sqls[1]
        assert adapter.channel_state("c") == {
            "messages": 1,
            "threads": ["t"],
            "last": {"thread": "t"},
        }
        assert adapter.is_subscribed("t")
        assert adapter.history("t") == [{"n": 0}, {"n": 1}]
        assert adapter.get_list("user:U1") == [{"n": 1}]
        assert [e.payload for e in adapter.outbox()] == [{"text": "hello"}]

    def test_queueing_locks_the_held_lock_row_inside_the_lock_function(
        transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        _, sqls = _measure(adapter, "lock_queue", django_assert_num_queries, 1)
        assert "chatstate_lock(" in sqls[0]
        with connection.cursor() as cursor:
            # (chatstate_lock sets the plan settings, then calls its step function)
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'chatstate_lock_step'")
            source = cursor.fetchone()[0]
        assert re.search(r"FROM chatstate_lock\s+WHERE .*FOR UPDATE", source, re.S)


@pytest.mark.parametrize("name", list(ORM_BUDGETS["postgresql"]))
def test_orm_path_budget(name: str, transactional_db: None, django_assert_num_queries: Any) -> None:
    adapter = _adapter(fast_sql=False)
    assert not adapter.fast_sql
    round_trips, commits = ORM_BUDGETS[VENDOR][name]
    counted_commits, _ = _measure(adapter, name, django_assert_num_queries, round_trips)
    assert counted_commits == commits, f"{name}: {counted_commits} commits, budget {commits}"


def test_update_thread_state_reads_the_row_for_update(
    transactional_db: None, django_assert_num_queries: Any
) -> None:
    for fast_sql in (True, False):
        adapter = _adapter(fast_sql=fast_sql)
        round_trips = (FAST_BUDGETS if adapter.fast_sql else ORM_BUDGETS[VENDOR])[
            "update_thread_state"
        ][0]
        _, sqls = _measure(adapter, "update_thread_state", django_assert_num_queries, round_trips)
        reads = [sql for sql in sqls if "chatstate_threadstate" in sql and "SELECT" in sql]
        if VENDOR != "sqlite":
            assert "FOR UPDATE" in reads[0]
        else:
            # SQLite has no row locks: the transaction holds the database write lock first.
            assert sqls[1].startswith("UPDATE chatstate_dedupewindow SET head = head WHERE 0")


if VENDOR == "postgresql":

    def test_each_drained_entry_costs_one_round_trip_on_the_fast_path(
        transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        _setup_subscribed(adapter)
        # enter, the queueing lock() inside the block, one step handing the entry out, one
        # step finishing it and releasing: the commit's round trip plus one per entry.
        with django_assert_num_queries(4):
            _cycle_draining_one(adapter)
        assert adapter.thread_state("t") == {"n": 3}

    def test_each_look_of_gather_is_one_round_trip_on_the_fast_path(
        transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        _setup_subscribed(adapter)
        sent: list[str] = []

        def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            sent.append(sql)
            return execute(sql, params, many, context)

        with (
            count_statements(adapter.using) as counts,
            connections[adapter.using].execute_wrapper(record),
            adapter.handle_message(("s", "m1"), thread_id="t", owner="w", strategy="queue") as msg,
        ):
            adapter.lock("t", "a", "queue")
            assert len(msg.gather(0.05)) == 1  # a few looks over a quiet window
        looks = [sql for sql in sent if "chatstate_gather(" in sql]
        assert len(looks) >= 2
        # enter, the lock() inside the block, the commit: and one per look.
        assert counts["round_trips"] == 3 + len(looks)
        assert adapter.snapshot().pending_locks == {}

    def test_a_capped_cycle_is_one_function_call_on_entry_and_one_on_exit(
        transactional_db: None, django_assert_num_queries: Any
    ) -> None:
        adapter = _adapter(fast_sql=True)
        _, sqls = _measure(adapter, "handle_message_capped", django_assert_num_queries, 2)
        assert "chatstate_enter(" in sqls[0]
        assert "chatstate_commit(" in sqls[1]
        assert adapter.thread_state("t") == {"n": 2}


# -- Redis -------------------------------------------------------------------------------
#
# The Redis adapter's budget is in round trips: scripts or commands sent (each script is one
# atomic step, so there are no commits to count), counted by ``tests.redis_counting``. A
# cycle is one script to enter and one to commit, whatever its block staged: channel
# operations, a subscription change, a history append and an outbox entry go in the commit's
# own script. A cycle in a slot (``max_concurrent``) is the same two scripts; each look of
# ``msg.gather()`` is one, and the entries it gathered are removed by the commit's script.


def _cycle_staging_everything(s: Any, message_id: str) -> None:
    with s.handle_message(
        ("slack", message_id), thread_id="t", owner="w", channel_id="c", history=5
    ) as msg:
        assert msg.acquired
        msg.state["n"] += 1
        msg.channel.incr("messages")
        msg.channel.add("threads", "t")
        msg.channel.set("last", {"text": "a/b"})
        msg.subscribe()
        msg.history.append({"role": "user", "text": message_id})
        msg.send({"text": f"re {message_id}"})


def _cycle_plain(s: Any, message_id: str) -> None:
    with s.handle_message(("slack", message_id), thread_id="t", owner="w") as msg:
        assert msg.acquired
        msg.state["n"] += 1


def _cycle_capped(s: Any, message_id: str) -> None:
    with s.handle_message(("slack", message_id), thread_id="t", owner=message_id,
                          strategy="concurrent", max_concurrent=2) as msg:  # fmt: skip
        assert msg.acquired
        msg.state["n"] += 1


def _cycle_capped_draining_one(s: Any, message_id: str) -> None:
    # enter, the lock() queueing over the cap inside the block, one step handing the entry
    # out, one step finishing it and freeing the slot.
    cap = {"strategy": "concurrent", "max_concurrent": 1}
    with s.handle_message(("slack", message_id), thread_id="t", owner=message_id, **cap) as msg:
        assert msg.acquired
        msg.state["n"] += 1
        assert s.lock("t", f"{message_id}-next", **cap) is LockResult.QUEUED
        for _ in msg.drain():
            msg.state["n"] += 1


def _cycle_gathering(s: Any, message_id: str) -> None:
    # enter, the lock() queueing behind it inside the block, one look, the commit (which
    # removes the entry gathered).
    with s.handle_message(("slack", message_id), thread_id="t", owner="w", strategy="queue") as msg:
        assert msg.acquired
        s.lock("t", f"{message_id}-next", "queue")
        assert len(msg.gather(0)) == 1
        msg.state["n"] += 1
    assert msg.pending == []


def _cycle_again(s: Any, message_id: str) -> None:
    with s.handle_message(("slack", "done"), thread_id="t", owner="w") as msg:
        assert msg.duplicate


#: name -> (cycle, round trips).
REDIS_BUDGETS: dict[str, tuple[Callable[[Any, str], None], int]] = {
    "handle_message": (_cycle_plain, 2),
    "handle_message_staging_everything": (_cycle_staging_everything, 2),
    "handle_message_duplicate": (_cycle_again, 1),
    "handle_message_capped": (_cycle_capped, 2),
    "handle_message_capped_draining_one": (_cycle_capped_draining_one, 4),
    "handle_message_gathering": (_cycle_gathering, 4),
}


@pytest.mark.needs_kind("redis")
@pytest.mark.parametrize("name", list(REDIS_BUDGETS))
def test_redis_cycle_budget(name: str) -> None:
    from chatstate.adapters.redis import RedisStateAdapter
    from tests.redis_counting import counting, round_trips

    adapter = RedisStateAdapter(namespace=f"budget-redis-{next(_names)}", alias="chatstate")
    try:
        adapter.put_thread_state("t", {"n": 0})
        adapter.mark_dedupe(("slack", "done"))
        cycle, budget = REDIS_BUDGETS[name]
        sent = counting(adapter)
        cycle(adapter, "m0")  # a first run loads the scripts (not found + FUNCTION LOAD)
        assert round_trips(sent, cycle, adapter, "m1") == budget
        assert all(b"FCALL" in line for line in sent[-budget:])
        if name == "handle_message_staging_everything":
            assert adapter.thread_state("t") == {"n": 2}
            assert adapter.channel_state("c") == {
                "messages": 2,
                "threads": ["t"],
                "last": {"text": "a/b"},
            }
            assert adapter.is_subscribed("t")
            assert [e.payload for e in adapter.outbox()] == [{"text": "re m0"}, {"text": "re m1"}]
            assert adapter.history("t") == [
                {"role": "user", "text": "m0"},
                {"role": "user", "text": "m1"},
            ]
        if name in ("handle_message_capped", "handle_message_gathering"):
            assert adapter.thread_state("t") == {"n": 2}
        if name == "handle_message_capped_draining_one":
            assert adapter.thread_state("t") == {"n": 4}
        snap = adapter.snapshot()
        assert snap.locks == {} and snap.pending_locks == {}
    finally:
        adapter.clear()
