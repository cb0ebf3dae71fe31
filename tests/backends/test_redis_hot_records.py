"""The records the Redis cycle writes and checks without cjson (issue 24).

The entry builds its claim and lock records by concatenation, and the commit reads the
owner from their text. These tests hold both to what cjson did: the same JSON values for
owners and threads that need escaping, and a decode whenever the text is written otherwise.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from chatstate.adapters.redis import RedisStateAdapter
from chatstate.adapters.redis.keys import member
from chatstate.types import LeaseLost

pytestmark = pytest.mark.needs_kind("redis")

_names = itertools.count(1)
ODD = 'w/1 "é" \\ \x01 ☃'  # a slash, quotes, a backslash, a control character, non-ASCII


@pytest.fixture
def rstore() -> Iterator[RedisStateAdapter]:
    adapter = RedisStateAdapter(namespace=f"hot{os.getpid()}-{next(_names)}", alias="chatstate")
    yield adapter
    adapter.clear()


def _raw(adapter: RedisStateAdapter, key: str, field: str) -> Any:
    return adapter.connection.hget(key, field)


@pytest.mark.parametrize(("owner", "thread"), [("w-1", "t-1"), (ODD, ODD + "t")])
def test_the_cycle_writes_the_records_cjson_wrote(
    rstore: RedisStateAdapter, owner: str, thread: str
) -> None:
    k = rstore.keys
    with rstore.handle_message(
        ("t", "m1"), thread_id=thread, owner=owner, metadata={"a": "b/c"}
    ) as msg:
        lock = json.loads(_raw(rstore, k.locks, thread))
        claim = json.loads(_raw(rstore, k.ddc, member(("t", "m1"))))
        msg.state["n"] = 1
    assert lock[:3] == [owner, "reject", '{"a":"b/c"}']
    assert lock[5:7] == [False, False]
    assert all(type(n) is int for n in (lock[3], lock[4], lock[7]))
    assert lock[4] - lock[3] == lock[7] == rstore.lock_ttl * 1000
    assert claim == [owner, thread, lock[4], False]
    assert _raw(rstore, k.locks, thread) is None  # released
    assert not rstore.connection.hexists(k.ddc, member(("t", "m1")))  # done
    assert rstore.thread_state(thread) == {"n": 1}


@pytest.mark.parametrize("owner", ["w-1", ODD])
def test_records_written_with_other_spacing_are_decoded_at_the_commit(
    rstore: RedisStateAdapter, owner: str
) -> None:
    k, thread = rstore.keys, "t-2"
    with rstore.handle_message(("t", "m2"), thread_id=thread, owner=owner) as msg:
        for key, field in ((k.locks, thread), (k.ddc, member(("t", "m2")))):
            spaced = json.dumps(json.loads(_raw(rstore, key, field)))  # ", " and \\u escapes
            rstore.connection.hset(key, field, spaced)
        msg.state["n"] = 2
    assert rstore.thread_state(thread) == {"n": 2}
    assert _raw(rstore, k.locks, thread) is None


def test_a_lock_record_of_another_owner_or_of_slots_fails_the_commit(
    rstore: RedisStateAdapter,
) -> None:
    k, thread = rstore.keys, "t-3"
    for n, other in enumerate(
        (
            lambda rec: ["w-10", *rec[1:]],  # an owner the cycle's is a prefix of
            lambda rec: [rec[0], "concurrent", *rec[2:], [[rec[0], rec[4]]]],  # slots
        )
    ):
        with (
            pytest.raises(LeaseLost),
            rstore.handle_message(("t", f"m3-{n}"), thread_id=thread, owner="w-1") as msg,
        ):
            rec = json.loads(_raw(rstore, k.locks, thread))
            rstore.connection.hset(k.locks, thread, json.dumps(other(rec), separators=(",", ":")))
            msg.state["n"] = 3
        rstore.force_release_lock(thread)
    assert rstore.thread_state(thread) == {}
