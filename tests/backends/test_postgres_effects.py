"""The PostgreSQL fast path's effects, lists and outbox under real concurrency, and its
channel operations against the Python reference (:mod:`chatstate.channelops`).

The conformance suite checks the semantics one call at a time; here several connections
race: cycles of one channel from many threads, appends to one list, dispatchers on one
outbox, and a claim made while another dispatcher holds row locks.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from django.db import DataError, connection, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatstate import OutboxEntry
from chatstate.adapters.database import DatabaseStateAdapter, PostgresStateAdapter
from chatstate.channelops import apply_ops

pytestmark = [
    pytest.mark.run_on("postgresql"),
    pytest.mark.usefixtures("transactional_db"),
]

_names = iter(range(1, 10**6))


def adapter() -> PostgresStateAdapter:
    store = DatabaseStateAdapter(namespace=f"effects-{next(_names)}")
    assert isinstance(store, PostgresStateAdapter)
    return store


def in_threads(workers: int, fn: Any) -> list[Any]:
    """``fn(i)`` for each worker at once, each on its own database connection."""

    def run(i: int) -> Any:
        try:
            return fn(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(workers)))


# -- channel operations: the SQL functions against the Python reference --------------------

# Floats below 2**53, whose shortest text has no exponent: a float the database stores keeps
# its type and its value (1e+20 comes back from jsonb as an integer, as any stored map would).
floats = st.floats(min_value=-(2.0**52), max_value=2.0**52, allow_nan=False).filter(
    lambda x: "e" not in repr(x)
)
numbers = st.one_of(st.integers(-(2**70), 2**70), floats)
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=4)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)
keys = st.sampled_from(["a", "b", "c"])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("delete"), keys, st.none()),
        st.tuples(st.just("incr"), keys, numbers),
        st.tuples(st.just("add"), keys, scalars),
        st.tuples(st.just("discard"), keys, scalars),
    ),
    max_size=8,
)


def typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type: 1, 1.0 and True differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, repr(value))


def stored(value: Any) -> Any:
    """``value`` as jsonb keeps it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb", [json.dumps(value)])
        return json.loads(cursor.fetchone()[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.dictionaries(keys, values, max_size=3), staged=ops)
def test_channel_operations_match_the_reference(start: dict[str, Any], staged: list[Any]) -> None:
    start = stored(start)
    as_staged = [(op, key, None if v is None and op == "delete" else json.dumps(v))
                 for op, key, v in staged]  # fmt: skip
    expected = json.loads(json.dumps(start))
    apply_ops(expected, as_staged)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT chatstate_channel_ops(%s::jsonb, %s::jsonb)",
            [json.dumps(start), json.dumps([list(op) for op in as_staged])],
        )
        got = json.loads(cursor.fetchone()[0])
    # As jsonb keeps the reference's result: numeric has no negative zero (-0.0 is 0.0).
    assert typed(got) == typed(stored(expected))


@pytest.mark.parametrize(
    ("start", "by", "expected"),
    [
        (1, 2.5, 3.5),
        (0.1, 0.2, 0.30000000000000004),
        (2, 3, 5),
        (1.0, 2, 3.0),
        (2**70, 1, 2**70 + 1),
        (9e15, 9e15, 1.8e16),
        (0.0001, -0.00009, 0.0001 - 0.00009),
        (True, 1, 1),
    ],
)
def test_incr_is_python_arithmetic(start: Any, by: Any, expected: Any) -> None:
    store = adapter()
    store.put_channel_state("c", {"n": start})
    with store.handle_message(("s", "m"), thread_id="t", owner="w", channel_id="c") as msg:
        msg.channel.incr("n", by)
    got = store.channel_state("c")["n"]
    assert typed(got) == typed(expected)


def test_add_orders_strings_by_code_point() -> None:
    store = adapter()
    with store.handle_message(("s", "m"), thread_id="t", owner="w", channel_id="c") as msg:
        for item in ("é", "z", "Z", "a", "B", "😀", "ａ", 10, 9.5, "10"):
            msg.channel.add("k", item)
    assert store.channel_state("c")["k"] == [9.5, 10, "10", "B", "Z", "a", "z", "é", "ａ", "😀"]


# -- concurrency ----------------------------------------------------------------------------


def test_cycles_of_one_channel_from_many_threads_lose_no_operation() -> None:
    store, workers, cycles = adapter(), 4, 15

    def worker(i: int) -> None:
        for n in range(cycles):
            thread = f"t{i}"
            key = ("s", f"{i}-{n}")
            with store.handle_message(key, thread_id=thread, owner=f"w{i}", channel_id="c") as msg:
                assert msg.acquired
                msg.channel.incr("messages")
                msg.channel.incr("weight", 0.5)
                msg.channel.add("threads", thread)
                msg.history.append(n)
                msg.send({"n": n})

    in_threads(workers, worker)
    assert store.channel_state("c") == {
        "messages": workers * cycles,
        "weight": workers * cycles * 0.5,
        "threads": [f"t{i}" for i in range(workers)],
    }
    for i in range(workers):
        assert store.history(f"t{i}") == list(range(cycles))
        assert [e.payload["n"] for e in store.outbox(f"t{i}")] == list(range(cycles))


def test_concurrent_appends_to_one_list_keep_every_item_and_the_cap() -> None:
    store, workers, appends = adapter(), 4, 20

    def worker(i: int) -> None:
        for n in range(appends):
            store.append_to_list("shared", [i, n], max_length=1000)
            store.append_to_list("capped", [i, n], max_length=7)

    in_threads(workers, worker)
    items = store.get_list("shared")
    assert sorted(map(tuple, items)) == [(i, n) for i in range(workers) for n in range(appends)]
    for i in range(workers):  # each worker's items in its own order
        assert [n for w, n in items if w == i] == list(range(appends))
    capped = store.get_list("capped")
    assert len(capped) == 7 and len(set(map(tuple, capped))) == 7
    for i in range(workers):
        assert [n for w, n in capped if w == i] == sorted(n for w, n in capped if w == i)
    assert any(n == appends - 1 for _, n in capped)  # the newest append is kept
    assert (workers * appends) % list_batch() == 0  # the last append deleted the trimmed rows
    assert stored_rows(store, "capped") == 7


def list_batch() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT chatstate_list_batch()")
        return int(cursor.fetchone()[0])


def stored_rows(store: PostgresStateAdapter, key: str) -> int:
    """The rows of list ``key``, trimmed ones included."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM chatstate_listitem WHERE namespace = %s AND key = %s",
            [store.namespace, key],
        )
        return int(cursor.fetchone()[0])


def test_trimmed_rows_are_deleted_in_batches() -> None:
    store, batch = adapter(), list_batch()
    for n in range(batch):  # positions 1 … batch: the last append deletes what was trimmed
        store.append_to_list("k", n, max_length=3)
    assert stored_rows(store, "k") == 3
    for n in range(batch, batch + 5):
        store.append_to_list("k", n, max_length=3)
    assert stored_rows(store, "k") == 3 + 5  # five trimmed rows wait for the next batch
    assert store.get_list("k") == [batch + 2, batch + 3, batch + 4]
    for n in range(40):  # no max: 40 rows kept
        store.append_to_list("big", n)
    for n in range(40, 3 * batch):  # a max at last; the final append is a batch's
        store.append_to_list("big", n, max_length=2)
    assert stored_rows(store, "big") == 2  # the rows before the last batch's range too
    assert store.get_list("big") == [3 * batch - 2, 3 * batch - 1]


def test_concurrent_dispatchers_deliver_each_entry_once_in_thread_order() -> None:
    store, threads, per_thread = adapter(), 5, 8
    for n in range(per_thread):
        for t in range(threads):
            with store.handle_message(("s", f"{t}-{n}"), thread_id=f"t{t}", owner="w") as msg:
                msg.send({"t": t, "n": n})
    delivered: list[tuple[int, int]] = []
    busy: dict[int, int] = {}  # thread -> dispatchers inside its sender right now
    guard = threading.Lock()

    def sender(entry: OutboxEntry) -> None:
        t = entry.payload["t"]
        with guard:
            busy[t] = busy.get(t, 0) + 1
            assert busy[t] == 1, f"two dispatchers inside thread t{t} at once"
        time.sleep(random.uniform(0, 0.004))
        with guard:
            delivered.append((t, entry.payload["n"]))
            busy[t] -= 1

    def dispatcher(i: int) -> None:
        deadline = time.monotonic() + 30
        while store.outbox() and time.monotonic() < deadline:
            store.dispatch_outbox(sender, limit=3)

    in_threads(4, dispatcher)
    assert store.outbox() == []
    assert sorted(delivered) == [(t, n) for t in range(threads) for n in range(per_thread)]
    for t in range(threads):
        assert [n for d, n in delivered if d == t] == list(range(per_thread))


def test_a_claim_skips_what_another_claim_holds_without_waiting() -> None:
    """A dispatcher holding thread a's oldest entry (row locked, not committed yet): a claim
    takes thread b at once, and nothing of thread a (not even a's later entries, free)."""
    store = adapter()
    for thread in ("a", "a", "b"):
        with store.handle_message(("s", f"{thread}{time.monotonic_ns()}"), thread_id=thread,
                                  owner="w") as msg:  # fmt: skip
            msg.send({"thread": thread})
    first_a = store.outbox("a")[0].id
    params = connections["default"].get_connection_params()
    for name in ("cursor_factory", "pool", "server_side_binding", "assume_role"):
        params.pop(name, None)
    with psycopg.connect(**params) as other:
        other.execute("SELECT 1 FROM chatstate_outboxmessage WHERE id = %s FOR UPDATE", [first_a])
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '5s'")
        sender_got: list[str] = []
        started = time.monotonic()
        counts = store.dispatch_outbox(lambda e: sender_got.append(e.thread_id))
        assert time.monotonic() - started < 2
        assert counts["sent"] == 1 and sender_got == ["b"]
        other.rollback()
    with connection.cursor() as cursor:
        cursor.execute("RESET statement_timeout")
    assert store.dispatch_outbox(lambda e: sender_got.append(e.thread_id))["sent"] == 2
    assert sender_got == ["b", "a", "a"]


def test_a_failed_commit_writes_none_of_its_effects() -> None:
    """An effect the database refuses (a float sum out of range) fails the whole commit: the
    state, the claim, the history and the outbox stay as they were."""
    store = adapter()
    store.put_channel_state("c", {"n": 1e308})
    before = store.channel_state("c")
    with (
        pytest.raises(DataError),
        store.handle_message(("s", "m"), thread_id="t", owner="w", channel_id="c") as msg,
    ):
        msg.state["touched"] = True
        msg.history.append("x")
        msg.send({"text": "hi"})
        msg.subscribe()
        msg.channel.incr("n", 1e308)
    assert store.thread_state("t") == {}
    assert store.history("t") == [] and store.outbox() == []
    assert not store.is_subscribed("t")
    assert store.channel_state("c") == before
    assert not store.is_duplicate(("s", "m"))


def test_limits_beyond_32_bits_are_accepted() -> None:
    store = adapter()
    big = 2**40
    store.append_to_list("history:t", 1, max_length=big)
    assert store.get_list("history:t", limit=big) == [1]
    with store.handle_message(("s", "m"), thread_id="t", owner="w", history=big) as msg:
        assert msg.history.items == [1]
        msg.send({"text": "hi"})
    assert store.dispatch_outbox(lambda e: None, limit=big)["sent"] == 1
