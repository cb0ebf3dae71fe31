"""The dedupe window: ``is_duplicate``, ``mark_dedupe`` (trimmed order), ``claim_dedupe``."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings


def order(store: Any) -> list[tuple[str, str]]:
    snap = store.snapshot()
    assert set(snap.dedupe_order) == snap.dedupe
    return list(snap.dedupe_order)


def test_mark_then_duplicate(store: Any) -> None:
    assert store.is_duplicate(("slack", "m1")) is False
    store.mark_dedupe(("slack", "m1"), 10)
    assert store.is_duplicate(("slack", "m1")) is True
    assert store.is_duplicate(("slack", "m2")) is False
    assert store.is_duplicate(("teams", "m1")) is False


def test_a_list_key_is_the_same_key_as_a_tuple(store: Any) -> None:
    store.mark_dedupe(["slack", "m1"], 10)
    assert store.is_duplicate(("slack", "m1")) is True
    assert order(store) == [("slack", "m1")]


def test_key_halves_are_not_concatenated(store: Any) -> None:
    store.mark_dedupe(("a:b", "c"), 10)
    assert store.is_duplicate(("a", "b:c")) is False
    assert store.claim_dedupe(("a", "b:c"), 10) is True


def test_mark_trims_the_oldest_beyond_the_limit(store: Any) -> None:
    for i in range(5):
        store.mark_dedupe(("s", f"m{i}"), 3)
    assert order(store) == [("s", "m2"), ("s", "m3"), ("s", "m4")]
    assert not store.is_duplicate(("s", "m1"))
    assert store.is_duplicate(("s", "m2"))


def test_a_smaller_limit_trims_the_window_at_once(store: Any) -> None:
    for i in range(4):
        store.mark_dedupe(("s", f"m{i}"), 10)
    store.mark_dedupe(("s", "m4"), 2)
    assert order(store) == [("s", "m3"), ("s", "m4")]


def test_marking_a_key_already_in_the_window_keeps_its_place(store: Any) -> None:
    store.mark_dedupe(("s", "a"), 2)
    store.mark_dedupe(("s", "b"), 2)
    store.mark_dedupe(("s", "a"), 2)
    assert order(store) == [("s", "a"), ("s", "b")]
    store.mark_dedupe(("s", "c"), 2)
    assert order(store) == [("s", "b"), ("s", "c")]


def test_claim_is_true_once_per_key(store: Any) -> None:
    assert store.claim_dedupe(("s", "m1"), 10) is True
    assert store.claim_dedupe(("s", "m1"), 10) is False
    assert store.claim_dedupe(["s", "m1"], 10) is False
    assert store.is_duplicate(("s", "m1")) is True
    store.mark_dedupe(("s", "m2"), 10)
    assert store.claim_dedupe(("s", "m2"), 10) is False
    assert order(store) == [("s", "m1"), ("s", "m2")]


def test_claim_trims_like_mark_and_a_trimmed_key_can_be_claimed_again(store: Any) -> None:
    for i in range(3):
        assert store.claim_dedupe(("s", f"m{i}"), 2)
    assert order(store) == [("s", "m1"), ("s", "m2")]
    assert store.claim_dedupe(("s", "m0"), 2) is True
    assert order(store) == [("s", "m2"), ("s", "m0")]


@pytest.mark.parametrize("method", ["mark_dedupe", "claim_dedupe"])
def test_the_default_limit_is_the_setting(store: Any, make_store: Any, method: str) -> None:
    with override_settings(CHATSTATE={"DEDUPE_LIMIT": 2}):
        small = make_store()
    for i in range(4):
        getattr(small, method)(("s", f"m{i}"))
    assert order(small) == [("s", "m2"), ("s", "m3")]
