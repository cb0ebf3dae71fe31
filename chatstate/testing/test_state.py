"""Thread and channel state maps: whole-map replace, copies, separation."""

from __future__ import annotations

from typing import Any

import pytest

VALUE = {
    "turns": 3,
    "ok": True,
    "none": None,
    "pi": 1.5,
    "list": [1, "two", {"x": []}],
    "text": "héllo ✓",
    "nested": {"a": {"b": {"c": 1}}},
}


@pytest.mark.parametrize("kind", ["thread", "channel"])
def test_missing_map_is_empty(store: Any, kind: str) -> None:
    assert getattr(store, f"{kind}_state")("x") == {}


@pytest.mark.parametrize("kind", ["thread", "channel"])
def test_put_then_get_round_trips_json_values(store: Any, kind: str) -> None:
    getattr(store, f"put_{kind}_state")("x", VALUE)
    assert getattr(store, f"{kind}_state")("x") == VALUE


@pytest.mark.parametrize("kind", ["thread", "channel"])
def test_put_replaces_the_whole_map(store: Any, kind: str) -> None:
    put, get = getattr(store, f"put_{kind}_state"), getattr(store, f"{kind}_state")
    put("x", {"a": 1, "b": 2})
    put("x", {"c": 3})
    assert get("x") == {"c": 3}
    put("x", {})
    assert get("x") == {}


@pytest.mark.parametrize("kind", ["thread", "channel"])
def test_the_map_returned_is_a_copy(store: Any, kind: str) -> None:
    put, get = getattr(store, f"put_{kind}_state"), getattr(store, f"{kind}_state")
    put("x", {"list": [1], "nested": {"a": 1}})
    got = get("x")
    got["list"].append(2)
    got["nested"]["a"] = 99
    got["new"] = True
    assert get("x") == {"list": [1], "nested": {"a": 1}}


@pytest.mark.parametrize("kind", ["thread", "channel"])
def test_mutating_the_value_after_put_changes_nothing_stored(store: Any, kind: str) -> None:
    put, get = getattr(store, f"put_{kind}_state"), getattr(store, f"{kind}_state")
    value: dict[str, Any] = {"list": [1]}
    put("x", value)
    value["list"].append(2)
    value["more"] = 1
    assert get("x") == {"list": [1]}


def test_a_thread_and_a_channel_with_the_same_id_are_separate(store: Any) -> None:
    store.put_thread_state("same", {"thread": 1})
    store.put_channel_state("same", {"channel": 1})
    assert store.thread_state("same") == {"thread": 1}
    assert store.channel_state("same") == {"channel": 1}
    snap = store.snapshot()
    assert snap.thread_state == {"same": {"thread": 1}}
    assert snap.channel_state == {"same": {"channel": 1}}


def test_maps_of_different_ids_are_separate(store: Any) -> None:
    store.put_thread_state("a", {"n": 1})
    store.put_thread_state("b", {"n": 2})
    assert (store.thread_state("a"), store.thread_state("b")) == ({"n": 1}, {"n": 2})
