"""Async twins: every ``a…`` method behaves exactly like its sync method.

One table of ``(method, args, kwargs)``: each case runs the sync method on one populated
store and the async twin on an identically populated store of the same backend, then
compares what they returned (or raised) and the state they left.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from chatstate import PendingEntry, Snapshot, StateAdapter
from chatstate.testing.helpers import entries, plain, populate, run_async

# Async twins on a database store run on connections of their own (natively, on PostgreSQL):
# they see what the tests commit, not what a test wrote in a transaction rolled back later.
pytestmark = pytest.mark.usefixtures("transactional_db")


def incr(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "n": state.get("n", 0) + 1}


LOADED = Snapshot(
    subscriptions={"s1"},
    dedupe={("x", "1")},
    dedupe_order=[("x", "1")],
    thread_state={"t1": {"loaded": True}},
    locks={"k": {"owner": "w", "strategy": "queue", "metadata": {}}},
    pending_locks={"k": [{"owner": "p", "strategy": "queue", "metadata": {}}]},
)

CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("is_subscribed", ("t1",), {}),
    ("is_subscribed", ("nope",), {}),
    ("subscribe", ("t3",), {}),
    ("unsubscribe", ("t1",), {}),
    ("thread_state", ("t1",), {}),
    ("put_thread_state", ("t1", {"x": 2}), {}),
    ("channel_state", ("c1",), {}),
    ("put_channel_state", ("c1", {"x": 3}), {}),
    ("update_thread_state", ("t1", incr), {}),
    ("update_channel_state", ("c9", incr), {}),
    ("is_duplicate", (("slack", "m1"),), {}),
    ("is_duplicate", (["slack", "m9"],), {}),
    ("mark_dedupe", (("slack", "m3"), 2), {}),
    ("claim_dedupe", (("slack", "m3"), 2), {}),
    ("claim_dedupe", (("slack", "m1"),), {}),
    ("lock", ("k", "d", "queue", {"m": 3}), {}),
    ("lock", ("k", "d", "debounce"), {}),
    ("lock", ("k", "d"), {}),
    ("lock", ("k", "d", "concurrent"), {}),
    ("lock", ("k2", "d", "queue"), {"ttl": 30}),
    ("lock", ("k", "d", "queue"), {"max_pending": 1, "overflow": "drop_newest"}),
    ("lock", ("k", "d", "queue"), {"max_pending": 1}),
    ("extend_lock", ("k", "a", 60), {}),
    ("extend_lock", ("k", "b", 60), {}),
    ("release_lock", ("k", "a"), {}),
    ("release_lock", ("k", "b"), {}),
    ("force_release_lock", ("k",), {}),
    ("force_release_lock", ("free",), {}),
    ("snapshot", (), {}),
    ("load_snapshot", (LOADED,), {}),
    ("load_snapshot", (LOADED,), {"merge": True}),
    ("prune", (), {"dedupe_limit": 1}),
    ("prune", (1,), {"dry_run": True}),
]


def comparable(value: Any) -> Any:
    """What a call returned, in a form equal between two stores (no timestamps)."""
    if isinstance(value, Snapshot):
        return plain(value)
    if isinstance(value, list) and all(isinstance(v, PendingEntry) for v in value):
        return entries(value)
    return value


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "returned", comparable(call())
    except Exception as exc:  # the twins must raise the same error
        return "raised", type(exc)


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    CASES,
    ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)],
)
def test_the_async_twin_behaves_like_the_sync_method(
    store: Any, make_store: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    twin = make_store()
    populate(store)
    populate(twin)
    sync = outcome(lambda: getattr(store, method)(*args, **kwargs))
    asyn = outcome(lambda: run_async(getattr(twin, f"a{method}"), *args, **kwargs))
    assert asyn == sync
    assert plain(twin.snapshot()) == plain(store.snapshot())


#: The method table of DESIGN.md and issue 3 (the contract every twin must follow).
CONTRACT = {
    "is_subscribed",
    "subscribe",
    "unsubscribe",
    "thread_state",
    "put_thread_state",
    "channel_state",
    "put_channel_state",
    "update_thread_state",
    "update_channel_state",
    "is_duplicate",
    "mark_dedupe",
    "claim_dedupe",
    "lock",
    "extend_lock",
    "release_lock",
    "force_release_lock",
    "snapshot",
    "load_snapshot",
    "prune",
    "handle_message",
}


def test_every_contract_method_has_an_async_twin_in_the_table() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(StateAdapter, inspect.isfunction)
        if not name.startswith(("_", "a"))
    }
    assert public >= CONTRACT
    assert CONTRACT - {"handle_message"} == {method for method, _, _ in CASES}
    for name in CONTRACT - {"handle_message"}:
        assert inspect.iscoroutinefunction(getattr(StateAdapter, f"a{name}")), name
    assert hasattr(StateAdapter, "ahandle_message")


def test_async_twins_refuse_bad_input_like_the_sync_methods(store: Any) -> None:
    populate(store)
    before = store.snapshot()
    with pytest.raises(TypeError):
        run_async(store.asubscribe, 5)
    with pytest.raises(ValueError):
        run_async(store.alock, "k", "z", "sideways")
    with pytest.raises(TypeError):
        run_async(store.aput_thread_state, "t1", [1])
    assert store.snapshot() == before


def test_async_twins_share_state_with_the_sync_methods(store: Any) -> None:
    async def steps() -> list[Any]:
        await store.asubscribe("t")
        await store.aput_thread_state("t", {"n": 1})
        return [
            await store.ais_subscribed("t"),
            await store.athread_state("t"),
            await store.aclaim_dedupe(("s", "1"), 5),
            await store.alock("k", "a"),
        ]

    assert run_async(steps) == [True, {"n": 1}, True, "acquired"]
    assert store.is_subscribed("t") and store.thread_state("t") == {"n": 1}
    assert store.is_duplicate(("s", "1")) and store.release_lock("k", "a") == []
