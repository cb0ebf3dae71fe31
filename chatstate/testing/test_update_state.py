"""``update_thread_state`` / ``update_channel_state``: atomic read-modify-write."""

from __future__ import annotations

from typing import Any

import pytest


class Boom(Exception):
    pass


@pytest.fixture(params=["thread", "channel"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_update_of_a_missing_map_starts_from_empty(store: Any, kind: str) -> None:
    seen = []

    def fn(current: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(current))
        return {**current, "n": 1}

    assert getattr(store, f"update_{kind}_state")("x", fn) == {"n": 1}
    assert seen == [{}]
    assert getattr(store, f"{kind}_state")("x") == {"n": 1}


def test_update_applies_fn_to_the_stored_map(store: Any, kind: str) -> None:
    update = getattr(store, f"update_{kind}_state")
    getattr(store, f"put_{kind}_state")("x", {"n": 1, "keep": [1]})
    for _ in range(3):
        update("x", lambda s: {**s, "n": s["n"] + 1})
    assert getattr(store, f"{kind}_state")("x") == {"n": 4, "keep": [1]}


def test_fn_may_mutate_its_argument_and_return_it(store: Any, kind: str) -> None:
    getattr(store, f"put_{kind}_state")("x", {"items": [1]})

    def fn(current: dict[str, Any]) -> dict[str, Any]:
        current["items"].append(2)
        return current

    assert getattr(store, f"update_{kind}_state")("x", fn) == {"items": [1, 2]}
    assert getattr(store, f"{kind}_state")("x") == {"items": [1, 2]}


def test_the_returned_map_is_a_copy(store: Any, kind: str) -> None:
    result = getattr(store, f"update_{kind}_state")("x", lambda s: {"items": [1]})
    result["items"].append(2)
    assert getattr(store, f"{kind}_state")("x") == {"items": [1]}


@pytest.mark.parametrize(
    "bad",
    [[1], None, "text", {1: "int key"}, {"x": object()}, {"x": float("nan")}],
    ids=["list", "none", "str", "int-key", "object", "nan"],
)
def test_a_result_that_is_not_a_json_map_raises_type_error_and_stores_nothing(
    store: Any, kind: str, bad: Any
) -> None:
    getattr(store, f"put_{kind}_state")("x", {"n": 1})
    before = store.snapshot()
    with pytest.raises(TypeError):
        getattr(store, f"update_{kind}_state")("x", lambda s: bad)
    with pytest.raises(TypeError):
        getattr(store, f"update_{kind}_state")("new", lambda s: bad)
    assert store.snapshot() == before


def test_an_exception_in_fn_propagates_and_stores_nothing(store: Any, kind: str) -> None:
    getattr(store, f"put_{kind}_state")("x", {"n": 1})
    before = store.snapshot()

    def fn(current: dict[str, Any]) -> dict[str, Any]:
        current["n"] = 2
        raise Boom

    with pytest.raises(Boom):
        getattr(store, f"update_{kind}_state")("x", fn)
    with pytest.raises(Boom):
        getattr(store, f"update_{kind}_state")("new", fn)
    assert store.snapshot() == before


def test_thread_and_channel_updates_are_separate(store: Any) -> None:
    store.update_thread_state("same", lambda s: {"thread": 1})
    store.update_channel_state("same", lambda s: {**s, "channel": 1})
    assert store.thread_state("same") == {"thread": 1}
    assert store.channel_state("same") == {"channel": 1}
