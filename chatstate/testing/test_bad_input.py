"""Bad input: every method refuses it with a clear error, before anything changes.

Each case runs against a populated store (a held lock ``"k"`` with pending entries, state,
dedupe keys, subscriptions), through the sync method and through its async twin, and
compares ``store.snapshot()`` before and after.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from chatstate.testing.helpers import populate, run_async

X = "\x00marker"  # where the bad identifier goes
BAD_IDS: list[tuple[Any, type[Exception]]] = [
    (5, TypeError),
    (None, TypeError),
    (b"bytes", TypeError),
    (["t1"], TypeError),
    ("", ValueError),
    ("x" * 256, ValueError),
    # Text not every backend can store: refused by all alike.
    ("nul\x00id", ValueError),
    ("lone\udc00surrogate", ValueError),
]
KEY = ("slack", "m9")


#: A map that holds itself: a value JSON cannot write.
_CIRCULAR: dict[str, Any] = {"x": []}
_CIRCULAR["x"].append(_CIRCULAR)


def keep(state: dict[str, Any]) -> dict[str, Any]:
    return state


# (method, args, kwargs) with X where an identifier goes.
ID_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("is_subscribed", (X,), {}),
    ("subscribe", (X,), {}),
    ("unsubscribe", (X,), {}),
    ("thread_state", (X,), {}),
    ("put_thread_state", (X, {"n": 1}), {}),
    ("channel_state", (X,), {}),
    ("put_channel_state", (X, {"n": 1}), {}),
    ("update_thread_state", (X, keep), {}),
    ("update_channel_state", (X, keep), {}),
    ("lock", (X, "z", "queue"), {}),
    ("lock", ("k", X, "queue"), {}),
    ("extend_lock", (X, "a", 60), {}),
    ("extend_lock", ("k", X, 60), {}),
    ("release_lock", (X, "a"), {}),
    ("release_lock", ("k", X), {}),
    ("force_release_lock", (X,), {}),
    ("is_duplicate", ((X, "m1"),), {}),
    ("mark_dedupe", (("slack", X), 10), {}),
    ("claim_dedupe", ((X, "m9"), 10), {}),
    ("handle_message", (KEY,), {"thread_id": X, "owner": "w"}),
    ("handle_message", (KEY,), {"thread_id": "k", "owner": X}),
    ("handle_message", ((X, "m9"),), {"thread_id": "k", "owner": "w"}),
]


def _put(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    def sub(v: Any) -> Any:
        if v == X:
            return value
        if isinstance(v, tuple) and X in v:
            return tuple(value if p == X else p for p in v)
        return v

    return tuple(sub(a) for a in args), {k: sub(v) for k, v in kwargs.items()}


class _Unjsonable:
    pass


def _returns(value: Any) -> Any:
    return lambda state: value


OTHER_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception]]] = [
    # dedupe keys of the wrong shape
    *[
        (method, (key,), {}, exc)
        for method in ("is_duplicate", "mark_dedupe", "claim_dedupe")
        for key, exc in [
            ("slack:m9", TypeError),
            (None, TypeError),
            (("slack",), ValueError),
            (("slack", "m9", "x"), ValueError),
            ({"slack": "m9"}, TypeError),
        ]
    ],
    ("handle_message", ("slack:m9",), {"thread_id": "k", "owner": "w"}, TypeError),
    # limits
    *[
        (method, (KEY, limit), {}, ValueError)
        for method in ("mark_dedupe", "claim_dedupe")
        for limit in (0, -1, 1.5, True, "3")
    ],
    ("handle_message", (KEY,), {"thread_id": "k", "owner": "w", "dedupe_limit": 0}, ValueError),
    ("prune", (0,), {}, ValueError),
    ("prune", ("10",), {}, ValueError),
    ("lock", ("k", "z", "queue"), {"max_pending": 0}, ValueError),
    ("lock", ("k", "z", "queue"), {"max_pending": 2.0}, ValueError),
    # ttl
    *[
        ("lock", ("k", "z", "queue"), {"ttl": ttl}, ValueError)
        for ttl in (0, -1, "5", True, float("nan"), float("inf"))
    ],
    ("extend_lock", ("k", "a", 0), {}, ValueError),
    ("extend_lock", ("k", "a", -5), {}, ValueError),
    ("handle_message", (KEY,), {"thread_id": "k", "owner": "w", "ttl": 0}, ValueError),
    # strategy and overflow
    ("lock", ("k", "z", "sideways"), {}, ValueError),
    ("lock", ("k", "z", None), {}, ValueError),
    ("lock", ("k", "z", "QUEUE"), {}, ValueError),
    ("lock", ("k", "z", "queue"), {"overflow": "drop_all"}, ValueError),
    ("handle_message", (KEY,), {"thread_id": "k", "owner": "w", "strategy": "x"}, ValueError),
    # state maps
    *[
        (method, ("t1", value), {}, TypeError)
        for method in ("put_thread_state", "put_channel_state")
        for value in (
            [1],
            None,
            "{}",
            {1: "int key"},
            {"x": _Unjsonable()},
            {"x": float("nan")},
            {"x": {"y": [_Unjsonable()]}},
            {"x": "nul\x00"},
            {"x": ["lone\ud800"]},
            _CIRCULAR,
        )
    ],
    ("append_to_list", ("l1", _CIRCULAR["x"]), {}, TypeError),
    ("update_thread_state", ("t1", _returns([1])), {}, TypeError),
    ("update_thread_state", ("t1", _returns({"x": {1, 2}})), {}, TypeError),
    ("update_channel_state", ("c1", _returns(None)), {}, TypeError),
    # metadata
    *[
        ("lock", ("k", "z", "queue", meta), {}, TypeError)
        for meta in (
            [1],
            "meta",
            {1: "x"},
            {"x": _Unjsonable()},
            {"x": float("inf")},
            {"x": "nul\x00"},
        )
    ],
    (
        "handle_message",
        (KEY,),
        {"thread_id": "k", "owner": "w", "strategy": "queue", "metadata": ["x"]},
        TypeError,
    ),
    # snapshots
    ("load_snapshot", (5,), {}, TypeError),
    ("load_snapshot", ("{}",), {}, TypeError),
    ("load_snapshot", ([],), {}, TypeError),
]


def _id(case: tuple[Any, ...]) -> str:
    """A test id that is the same in every process (no object addresses)."""
    method, args, kwargs, *exc = case
    shown = re.sub(r" at 0x[0-9a-f]+", "", repr((args, kwargs)))
    return f"{method}-{exc[0].__name__ if exc else 'id'}-{shown[:40]}"


def call(store: Any, method: str, asynchronous: bool, args: Any, kwargs: Any) -> Any:
    if method == "handle_message":
        name = "ahandle_message" if asynchronous else "handle_message"
        return getattr(store, name)(*args, **kwargs)  # refuses before entering
    if asynchronous:
        return run_async(getattr(store, f"a{method}"), *args, **kwargs)
    return getattr(store, method)(*args, **kwargs)


def refused(store: Any, exc: type[Exception], method: str, *rest: Any) -> None:
    with pytest.raises(exc) as info:
        call(store, method, *rest)
    assert type(info.value) is exc  # no subclass such as a database error
    assert str(info.value)  # says what was wrong


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("method", "args", "kwargs"), ID_CALLS, ids=map(_id, ID_CALLS))
def test_a_bad_identifier_raises_and_changes_nothing(
    store: Any, method: str, args: Any, kwargs: Any, asynchronous: bool
) -> None:
    populate(store)
    before = store.snapshot()
    for value, exc in BAD_IDS:
        refused(store, exc, method, asynchronous, *_put(value, args, kwargs))
    # A change made by any of these calls would last to the end: one comparison sees it.
    assert store.snapshot() == before


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("method", "args", "kwargs", "exc"), OTHER_CASES, ids=map(_id, OTHER_CASES)
)
def test_a_bad_argument_raises_and_changes_nothing(
    store: Any, method: str, args: Any, kwargs: Any, exc: type[Exception], asynchronous: bool
) -> None:
    populate(store)
    before = store.snapshot()
    refused(store, exc, method, asynchronous, args, kwargs)
    assert store.snapshot() == before


@pytest.mark.parametrize(
    ("what", "value", "match"),
    [
        ("thread_id", 5, "thread_id must be a str, not int"),
        ("thread_id", "", "thread_id must be 1-255 characters"),
        ("owner", "o" * 256, "owner must be 1-255 characters, got 256"),
    ],
)
def test_the_error_names_the_argument(store: Any, what: str, value: Any, match: str) -> None:
    kwargs = {"thread_id": "t", "owner": "w", what: value}
    with pytest.raises((TypeError, ValueError), match=match):
        store.handle_message(KEY, **kwargs)
