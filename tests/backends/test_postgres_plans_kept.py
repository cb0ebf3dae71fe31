"""A warm PostgreSQL session plans none of the statements a message cycle runs.

PL/pgSQL keeps a statement's plan for the session, but only while its generic plan looks no
dearer than a plan made for the call's own values; otherwise it plans the statement on every
call. A SQL function that is not inlined plans its query once per transaction. Each planning
costs 10–60 µs of server time, more than most statements take to run. Functions version 8
planned four statements of a cycle every time: the history read (a SQL function), a full
list's trim (a range of ``seq``, once the table has statistics), the sorted-list channel
operations (a SQL function), and the entry's look for queued entries (for a ``reject`` or
``concurrent`` cycle, a condition that folds to false).

The test asks PostgreSQL to report each plan it makes (``debug_print_plan``, sent to this
client as a LOG notice). After a warm-up, with statistics on long lists, a cycle of each kind
reading the history and staging every effect makes none. The cycles commit one by one, as
in production (``transactional_db``): the per-transaction planning shows only then.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from chatstate import Strategy
from chatstate.adapters.database import DatabaseStateAdapter

pytestmark = [pytest.mark.run_on("postgresql"), pytest.mark.usefixtures("transactional_db")]

#: Cycles of each kind before the count: PL/pgSQL chooses between plans after five calls.
WARM = 12
#: Counted cycles: positions 25-32 of each list, so the last deletes the trimmed rows, as
#: every 16th append does (the warm-up's 16th did too: its statements are planned).
COUNTED = 8
#: Other lists, long ones, for the planner's statistics to know about.
FILL = (
    "INSERT INTO chatstate_listitem (namespace, key, seq, value)"
    " SELECT 'plans-fill', 'l' || k, seq, '0' FROM generate_series(1, 20) k,"
    " generate_series(1, 500) seq"
)
KINDS: dict[str, dict[str, Any]] = {
    "reject": {"strategy": Strategy.REJECT},
    "queue": {"strategy": Strategy.QUEUE},
    "queue, capped": {"strategy": Strategy.QUEUE, "max_pending": 2},
    "debounce": {"strategy": Strategy.DEBOUNCE},
    "concurrent": {"strategy": Strategy.CONCURRENT},
    "concurrent, capped": {"strategy": Strategy.CONCURRENT, "max_concurrent": 2},
}


def _cycle(store: DatabaseStateAdapter, n: int, options: dict[str, Any]) -> None:
    """A cycle reading the history and staging every effect (a full history: trimmed)."""
    with store.handle_message(
        ("plans", f"m{n}"), thread_id="t", owner="w", channel_id="c", history=2, **options
    ) as msg:
        if not msg.acquired:
            return
        msg.state["n"] = n
        msg.channel.incr("messages")
        msg.channel.add("seen", n % 3)
        msg.channel.discard("seen", (n + 1) % 3)
        msg.history.append({"n": n})
        msg.append_to_list("audit", n, max_length=2)
        msg.subscribe() if n % 2 else msg.unsubscribe()
        msg.send({"reply": n})
        if options["strategy"] == Strategy.QUEUE:
            for _ in msg.drain():
                pass


@contextmanager
def _plans() -> Iterator[list[str]]:
    """The tables of each plan the server makes meanwhile, one list per plan."""
    made: list[str] = []
    connection.ensure_connection()
    raw = connection.connection

    def noted(diagnostic: Any) -> None:
        if diagnostic.message_primary == "plan:":
            made.append(diagnostic.message_detail or "")

    raw.add_notice_handler(noted)
    with connection.cursor() as cursor:
        cursor.execute("SET client_min_messages = log")
        cursor.execute("SET debug_print_plan = on")
    try:
        yield made
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET debug_print_plan")
            cursor.execute("RESET client_min_messages")
        raw.remove_notice_handler(noted)


def _tables(plan: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE oid = ANY(%s::oid[]) ORDER BY 1",
            [[int(oid) for oid in set(re.findall(r":relid (\d+)", plan))]],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("kind", KINDS)
def test_a_warm_cycle_plans_no_statement(kind: str) -> None:
    store = DatabaseStateAdapter(namespace=f"plans-{kind}")
    assert store.fast_sql
    store.history_limit = 2  # full after two cycles: each append then trims one
    for n in range(WARM):
        _cycle(store, n, KINDS[kind])
    with connection.cursor() as cursor:
        cursor.execute(FILL)
        cursor.execute("ANALYZE chatstate_listitem, chatstate_listhead")
    for n in range(WARM, 2 * WARM):
        _cycle(store, n, KINDS[kind])
    with _plans() as made:
        for n in range(2 * WARM, 2 * WARM + COUNTED):
            _cycle(store, n, KINDS[kind])
    assert [_tables(plan) for plan in made] == []
    with connection.cursor() as cursor:  # the last cycle's append deleted the trimmed rows
        cursor.execute("SELECT chatstate_list_batch()")
        assert (2 * WARM + COUNTED) % cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM chatstate_listitem WHERE namespace = %s AND key = 'history:t'",
            [store.namespace],
        )
        assert cursor.fetchone()[0] == 2
