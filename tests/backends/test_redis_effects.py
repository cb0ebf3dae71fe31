"""What only the Redis adapter does for a cycle's staged effects, lists and the outbox.

Channel operations run in Lua on the stored JSON text (``lua/channel.lua``), never through
cjson, so values they do not touch come back byte for byte, and the ones they touch follow
``chatstate.channelops`` exactly: checked here against it on random maps and operations. The
list and outbox keys (``chatstate.adapters.redis.keys``) are checked too.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatstate import OutboxEntry
from chatstate.adapters.redis import RedisStateAdapter
from chatstate.channelops import apply_ops
from chatstate.validation import dump_map

pytestmark = pytest.mark.needs_kind("redis")

_names = itertools.count(1)
_messages = itertools.count(1)


@pytest.fixture
def rstore() -> Iterator[RedisStateAdapter]:
    adapter = RedisStateAdapter(namespace=f"rx{os.getpid()}-{next(_names)}", alias="chatstate")
    yield adapter
    adapter.clear()


def typed(value: Any) -> Any:
    """``value`` with its numbers' types spelled out (``1 == 1.0`` in Python; not here) and
    its maps' key order kept."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, list):
        return [typed(v) for v in value]
    return [(k, typed(v)) for k, v in value.items()]


def commit_ops(store: RedisStateAdapter, channel: str, ops: list[tuple[Any, ...]]) -> None:
    """Stage ``ops`` (``(name, key, *args)``) on ``channel`` in one cycle, and commit."""
    message = ("s", f"m{next(_messages)}")
    with store.handle_message(message, thread_id="t", owner="w", channel_id=channel) as msg:
        for name, key, *args in ops:
            getattr(msg.channel, name)(key, *args)


def raw_channel(store: RedisStateAdapter, channel: str) -> str:
    return store.connection.hget(store.keys.cs, channel).decode()


# -- channel operations ----------------------------------------------------------------

TRICKY = {
    "big": 2**64 + 1,
    "neg_big": -(2**70),
    "tenth": 0.1,
    "third": 1 / 3,
    "huge": 1e300,
    "tiny": 5e-324,
    "slash": 'a/b\\c"d\n\u00e9\u2028\U0001f600',
    "empty_list": [],
    "empty_map": {},
    "nested": {"a": [[], {}, {"b": []}], "s": "x/y"},
    "floats": [1.0, 2.5e15, 1e16, -0.0],
    "unsorted": ["b", 3, None, "a", 1, 1.0, True, False, "a"],
    "zero": 0,
    "text": "not a number",
    "true": True,
}


def test_untouched_values_come_back_byte_for_byte(rstore: RedisStateAdapter) -> None:
    rstore.put_channel_state("c", TRICKY)
    before = raw_channel(rstore, "c")
    assert before == dump_map(TRICKY)
    commit_ops(rstore, "c", [("incr", "n"), ("add", "tags", "x")])
    after = raw_channel(rstore, "c")
    assert after == before[:-1] + ',"n":1,"tags":["x"]}'
    assert typed(rstore.channel_state("c")) == typed({**TRICKY, "n": 1, "tags": ["x"]})


def test_old_channel_text_still_reads_and_takes_operations(rstore: RedisStateAdapter) -> None:
    # One JSON text per channel in ``cs``, as the previous version (and any JSON writer) left
    # it: spaces, escapes Python's json does not write ("\/", "\u00e9"), a repeated key.
    old = ' { "a\\/b" : [ 3 , "x" ] , "n" : 2 , "\\u00e9" : {"k": [ ]}, "n": 5 } '
    rstore.connection.hset(rstore.keys.cs, "c", old)
    assert rstore.channel_state("c") == json.loads(old)
    commit_ops(rstore, "c", [("incr", "n", 1), ("add", "a/b", 1), ("set", "é", 0)])
    assert typed(rstore.channel_state("c")) == typed({"a/b": [1, 3, "x"], "n": 6, "é": 0})


@pytest.mark.parametrize(
    ("stored", "by", "expected"),
    [
        (2**53, 1, 2**53 + 1),
        (10**30, -(10**30) - 1, -1),
        (-5, 10**20, 10**20 - 5),
        (999999999999999, 1, 10**15),
        (0.1, 0.2, 0.1 + 0.2),
        (1, 0.5, 1.5),
        (2.5e15, 1, 2.5e15 + 1),
        (1e16, 1, 1e16 + 1),
        (3, 0.0, 3.0),
        (-0.0, 0, 0.0),
        (1e-7, 1e-9, 1e-7 + 1e-9),
    ],
)
def test_incr_is_exact(rstore: RedisStateAdapter, stored: Any, by: Any, expected: Any) -> None:
    rstore.put_channel_state("c", {"n": stored})
    commit_ops(rstore, "c", [("incr", "n", by)])
    assert typed(rstore.channel_state("c")) == typed({"n": expected})


@pytest.mark.parametrize(
    ("stored", "ops"),
    [
        ("{}", [("incr", "n", 1)]),
        ("{ }", [("incr", "n", 1)]),
        ('{"n":41}', [("incr", "n", 1), ("incr", "m", 2), ("incr", "n", -50)]),
        ('{"a":"v,",":5,":1}', [("incr", ",", 1)]),  # '","' is not a key here
        ('{"k":"n","n":1}', [("incr", "n", 1)]),  # the key's text is a value too
        ('{"n":1,"n":2}', [("incr", "n", 1)]),  # a repeated key
        ('{"n": 1}', [("incr", "n", 1)]),
        ('{"n":1 }', [("incr", "m", 1)]),
        ('{"n":1.5}', [("incr", "n", 1)]),
        ('{"n":"x"}', [("incr", "n", 1)]),
        ('{"n":1}', [("incr", "n", 0.5)]),
        ('{"n":999999999999999}', [("incr", "n", 10**20)]),
        ('{"n":1,"l":[1]}', [("incr", "n", 1)]),
        ('{"n":1,"s":"a\\"b"}', [("incr", "n", 1)]),
        # keys that start as a closing quote may be followed: the fast path leaves them
        ('{"a":"x","}":1}', [("incr", "}", 1)]),
        ('{"a":"x"," n":1}', [("incr", " n", 2)]),
        ('{"a":"",":":1}', [("incr", ":", 1)]),
        ('{"":1,"a":""}', [("incr", "", 1)]),
        ('{"a":"","":1}', [("incr", "", 1)]),
        ('{"n":-0,"m":7}', [("incr", "n", 1), ("incr", "m", -7)]),
    ],
)
def test_increments_of_flat_maps_match_the_reference(
    rstore: RedisStateAdapter, stored: str, ops: list[tuple[Any, ...]]
) -> None:
    """Integers of a flat map (no nesting, no escape) are rewritten in place; anything else
    takes the full split; both agree with ``chatstate.channelops``."""
    rstore.connection.hset(rstore.keys.cs, "c", stored)
    commit_ops(rstore, "c", ops)
    expected = json.loads(stored)
    apply_ops(expected, [(name, key, json.dumps(by)) for name, key, by in ops])
    assert typed(rstore.channel_state("c")) == typed(expected)


def test_an_incr_out_of_range_writes_nothing(rstore: RedisStateAdapter) -> None:
    rstore.put_channel_state("c", {"n": 1e308})
    message = ("s", "overflow")
    with (
        pytest.raises(TypeError, match="out of range"),
        rstore.handle_message(message, thread_id="t", owner="w", channel_id="c") as msg,
    ):
        msg.state["x"] = 1
        msg.subscribe()
        msg.history.append("h")
        msg.send({"text": "hi"})
        msg.channel.incr("n", 1e308)
    assert rstore.channel_state("c") == {"n": 1e308}
    assert rstore.thread_state("t") == {} and not rstore.is_subscribed("t")
    assert rstore.history("t") == [] and rstore.outbox() == []
    assert not rstore.is_duplicate(message)  # withdrawn: a redelivery is handled


def _scalar(rng: random.Random) -> Any:
    if rng.random() < 0.5:  # a small pool: lists with repeated and equal items
        return rng.choice([1, 1.0, "a", None, True, 0, -0.0, False])
    return rng.choice(
        [
            None,
            True,
            False,
            rng.randint(-3, 3),
            float(rng.randint(-3, 3)),
            rng.choice([0.5, -2.25, 1e-5, 2**53 + 1, 10**20, 3.0e20]),
            rng.choice(["a", "b", "B", "é", "z", "", "a/b", '"', "\\", "\u00ff", "\U0001f600"]),
        ]
    )


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 2 else 3)
    if kind < 3:
        return _scalar(rng)
    if kind == 3:
        return [_scalar(rng) for _ in range(rng.randrange(5))]
    if kind == 4:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice("abcé/"): _value(rng, depth + 1) for _ in range(rng.randrange(3))}


def _op(rng: random.Random, keys: str) -> tuple[Any, ...]:
    name = rng.choice(["set", "delete", "incr", "incr", "add", "add", "discard"])
    key = rng.choice(keys)
    if name == "set":
        return (name, key, _value(rng))
    if name == "delete":
        return (name, key)
    if name == "incr":
        return (name, key, rng.choice([1, -2, 0.5, 2**60, 1e-3, 7]))
    return (name, key, _scalar(rng))


def test_operations_match_the_reference_on_random_maps(rstore: RedisStateAdapter) -> None:
    rng = random.Random(20)
    keys = 'abcdefg/é"\\'
    for case in range(150):
        start = {rng.choice(keys): _value(rng) for _ in range(rng.randrange(6))}
        ops = [_op(rng, keys) for _ in range(rng.randrange(1, 8))]
        channel = f"c{case}"
        rstore.put_channel_state(channel, start)
        commit_ops(rstore, channel, ops)
        expected = json.loads(dump_map(start))
        staged = []
        for name, key, *args in ops:
            text = None if name == "delete" else json.dumps(args[0])
            staged.append((name, key, text))
        apply_ops(expected, staged)
        got = rstore.channel_state(channel)
        assert typed(got) == typed(expected), (start, ops)


def test_add_keeps_the_first_equal_item_and_sorts_stably(rstore: RedisStateAdapter) -> None:
    rstore.put_channel_state("c", {"s": [2, 1.0, 2.0, 1, "x", 1.0], "d": [3, 1, 1.0, 3.0, 2]})
    commit_ops(rstore, "c", [("add", "s", 1), ("add", "d", 0), ("discard", "d", 3)])
    expected = {"s": [1.0, 2, 2.0, "x"], "d": [0, 1, 1.0, 2]}
    assert typed(rstore.channel_state("c")) == typed(expected)
    commit_ops(rstore, "c", [("add", "d", 1.0)])  # the first equal item stays, alone
    assert typed(rstore.channel_state("c")) == typed({**expected, "d": [0, 1, 2]})


def test_strings_sort_by_code_point_not_by_locale(rstore: RedisStateAdapter) -> None:
    items = ["b", "B", "a", "é", "e", "Z", "\U0001f600", "\uffff", "aa", "a a", ""]
    commit_ops(rstore, "c", [("add", "s", item) for item in items])
    assert rstore.channel_state("c") == {"s": sorted(items)}


# -- lists -------------------------------------------------------------------------------


def _keys_under(store: RedisStateAdapter) -> dict[str, str]:
    conn, prefix = store.connection, store.keys.prefix
    return {
        key.decode()[len(prefix) :]: conn.type(key).decode()
        for key in conn.scan_iter(match=prefix.replace("\\", "\\\\") + "*", count=1000)
    }


def test_lists_and_the_outbox_live_under_the_namespace_prefix(rstore: RedisStateAdapter) -> None:
    rstore.append_to_list("k", 1)
    with rstore.handle_message(("s", "m"), thread_id="t", owner="w", channel_id="c") as msg:
        msg.history.append("h")
        msg.send({"text": "hi"})
    layout = _keys_under(rstore)
    assert {k: v for k, v in layout.items() if k.startswith(("l", "o"))} == {
        "l:k": "list",
        "l:history:t": "list",
        "lkeys": "zset",
        "ob": "hash",
        "obp": "hash",
        "obk": "hash",
        "oseq": "string",
        "obq:t": "list",
        "obh": "zset",
    }
    (entry,) = rstore.outbox()
    rstore.dispatch_outbox(lambda e: None)
    assert not [k for k in _keys_under(rstore) if k.startswith(("ob", "obq"))]
    assert rstore.delete_list("k") == 1 and rstore.delete_list("history:t") == 1
    assert "lkeys" not in _keys_under(rstore)


def test_prune_drops_expired_lists_from_the_index(rstore: RedisStateAdapter) -> None:
    rstore.append_to_list("short", 1, ttl=0.1)
    rstore.append_to_list("kept", 1, ttl=60)
    rstore.append_to_list("forever", 1)
    conn, lkeys = rstore.connection, rstore.keys.lkeys
    assert conn.zscore(lkeys, "forever") == float("inf")
    time.sleep(0.2)
    rstore.prune(dry_run=True)
    assert conn.zcard(lkeys) == 3
    rstore.prune()
    assert sorted(conn.zrange(lkeys, 0, -1)) == [b"forever", b"kept"]
    rstore.append_to_list("short", 2)  # starts over, without an expiry
    assert rstore.get_list("short") == [2] and conn.zscore(lkeys, "short") == float("inf")


def test_replacing_the_state_removes_lists_and_the_outbox(rstore: RedisStateAdapter) -> None:
    rstore.append_to_list("k", 1)
    with rstore.handle_message(("s", "m"), thread_id="t", owner="w") as msg:
        msg.send({"text": "hi"})
    rstore.load_snapshot({"subscriptions": ["t"]})
    assert rstore.get_list("k") == [] and rstore.outbox() == []
    assert set(_keys_under(rstore)) == {"subs", "subt", "oseq"}  # ids are never reused


# -- the outbox ------------------------------------------------------------------------


def test_a_claim_reads_only_due_threads(rstore: RedisStateAdapter, settings: Any) -> None:
    settings.CHATSTATE = {**getattr(settings, "CHATSTATE", {}), "OUTBOX_RETRY_DELAYS": (60,)}
    for n in range(3):
        with rstore.handle_message(("s", f"m{n}"), thread_id=f"t{n}", owner="w") as msg:
            msg.send({"n": n})

    def fail_one(entry: OutboxEntry) -> None:
        if entry.payload["n"] == 1:
            raise RuntimeError("down")

    assert rstore.dispatch_outbox(fail_one) == {"sent": 2, "retried": 1, "dead": 0}
    conn = rstore.connection
    # Only t1 is left, placed at its retry time, a minute from now.
    ((thread, due),) = conn.zrange(rstore.keys.obh, 0, -1, withscores=True)
    assert thread == b"t1" and due > time.time() * 1000 + 50_000
    assert rstore.dispatch_outbox(fail_one) == {"sent": 0, "retried": 0, "dead": 0}


def test_concurrent_dispatchers_deliver_each_entry_once_in_thread_order(
    rstore: RedisStateAdapter,
) -> None:
    threads, per_thread = 12, 15
    for n in range(per_thread):
        for t in range(threads):
            with rstore.handle_message(("s", f"{t}-{n}"), thread_id=f"t{t}", owner="w") as msg:
                msg.send({"t": t, "n": n})
    delivered: list[tuple[int, int]] = []
    lock = threading.Lock()

    def sender(entry: OutboxEntry) -> None:
        time.sleep(0.0005)
        with lock:
            delivered.append((entry.payload["t"], entry.payload["n"]))

    def worker() -> None:
        adapter = RedisStateAdapter(namespace=rstore.namespace, alias="chatstate")
        while adapter.outbox():
            adapter.dispatch_outbox(sender, limit=7)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(delivered) == [(t, n) for t in range(threads) for n in range(per_thread)]
    for t in range(threads):
        assert [n for tt, n in delivered if tt == t] == list(range(per_thread))
