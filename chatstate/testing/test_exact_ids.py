"""Ids compare exactly: two ids that differ in case, accents, trailing spaces or by a letter a
collation folds (``ß``/``ss``) are two ids on every backend — two dedupe keys, two locks, two
subscriptions, two states, two namespaces. (On MariaDB/MySQL this is the binary collation of
migration ``0009``; a case-insensitive default collation would make them one.)"""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LockResult, NotOwner

PAIRS = [("MsgA", "msga"), ("é1", "e1"), ("abc", "abc "), ("straße", "strasse")]
IDS = ["case", "accent", "trailing-space", "folding"]
pairs = pytest.mark.parametrize(("one", "other"), PAIRS, ids=IDS)


@pairs
def test_dedupe_keys_differing_only_so_are_two_messages(store: Any, one: str, other: str) -> None:
    assert store.claim_dedupe(("tg", one)) is True
    assert store.is_duplicate(("tg", other)) is False
    assert store.claim_dedupe(("tg", other)) is True
    assert store.claim_dedupe(("tg", one)) is False
    assert store.claim_dedupe((one, "m1")) is True
    assert store.claim_dedupe((other, "m1")) is True
    assert store.snapshot().dedupe_order == [("tg", one), ("tg", other), (one, "m1"), (other, "m1")]


@pairs
def test_lock_keys_differing_only_so_are_independent(store: Any, one: str, other: str) -> None:
    assert store.lock(one, "a") is LockResult.ACQUIRED
    assert store.lock(other, "b") is LockResult.ACQUIRED
    assert {k: v["owner"] for k, v in store.snapshot().locks.items()} == {one: "a", other: "b"}
    store.release_lock(one, "a")
    assert set(store.snapshot().locks) == {other}


@pairs
def test_an_owner_differing_only_so_is_another_owner(store: Any, one: str, other: str) -> None:
    store.lock("k", one)
    with pytest.raises(NotOwner):
        store.release_lock("k", other)
    assert store.extend_lock("k", other) is False
    assert store.snapshot().locks["k"]["owner"] == one


@pairs
def test_subscriptions_differing_only_so_are_two(store: Any, one: str, other: str) -> None:
    store.subscribe(one)
    assert store.is_subscribed(other) is False
    store.subscribe(other)
    assert store.snapshot().subscriptions == {one, other}
    store.unsubscribe(other)
    assert store.is_subscribed(one) is True


@pairs
def test_states_differing_only_so_are_two(store: Any, one: str, other: str) -> None:
    store.put_thread_state(one, {"v": 1})
    store.put_channel_state(one, {"v": 1})
    assert store.thread_state(other) == {}
    assert store.channel_state(other) == {}
    store.put_thread_state(other, {"v": 2})
    store.put_channel_state(other, {"v": 2})
    assert (store.thread_state(one), store.thread_state(other)) == ({"v": 1}, {"v": 2})
    assert (store.channel_state(one), store.channel_state(other)) == ({"v": 1}, {"v": 2})


@pairs
def test_namespaces_differing_only_so_are_two(make_store: Any, one: str, other: str) -> None:
    first, second = make_store(f"ns-{one}"), make_store(f"ns-{other}")
    first.subscribe("t")
    assert first.claim_dedupe(("tg", "m")) is True
    assert second.is_subscribed("t") is False
    assert second.claim_dedupe(("tg", "m")) is True
