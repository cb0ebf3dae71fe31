"""Tests for chatstate.snapshot: pure Python, no database."""

from __future__ import annotations

import enum
import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatstate.snapshot import (
    FORMAT,
    VERSION,
    InvalidSnapshot,
    Snapshot,
    default_snapshot,
    normalize_snapshot,
    normalize_snapshot_counting,
    validate_snapshot,
)

ID_PROBLEM = "expected a non-empty string of at most 255 characters"
KEY_PROBLEM = "expected [adapter, message_id]"
STRATEGY_PROBLEM = "expected one of concurrent, debounce, queue, reject"
JSON_PROBLEM = (
    "expected JSON values only (objects with string keys, arrays, strings, finite numbers, "
    "booleans, null)"
)
TS = "2024-05-01T12:00:00.123456+00:00"
TS_Z = "2024-05-01T12:00:00Z"

DESIGN_EXAMPLE = """
{"format": "chatstate.snapshot", "version": 1,
 "subscriptions": ["slack:C1:1700000000.1"],
 "dedupe": [["slack", "m1"]],
 "dedupe_order": [["slack", "m1"]],
 "thread_state": {"slack:C1:1700000000.1": {"turns": 3}},
 "channel_state": {"slack:C1": {"topic": "support"}},
 "locks": {"slack:C1:1700000000.1": {"owner": "worker-7", "strategy": "queue", "metadata": {}}},
 "pending_locks": {"slack:C1:1700000000.1": [{"owner": "worker-9", "strategy": "queue", "metadata": {"message_id": "m2"}}]}}
"""  # noqa: E501


def lock(owner: str = "w1", strategy: str = "queue", **extra: Any) -> dict[str, Any]:
    return {"owner": owner, "strategy": strategy, "metadata": {}, **extra}


def valid(**sections: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, **sections}


def full_snapshot() -> Snapshot:
    return Snapshot(
        subscriptions={"t1", "t2"},
        dedupe={("slack", "m1"), ("slack", "m2")},
        dedupe_order=[("slack", "m2"), ("slack", "m1")],
        thread_state={"t1": {"turns": 3, "nested": {"a": [1, 2.5, None, True]}}},
        channel_state={"c1": {"topic": "support ✓"}},
        locks={"t1": lock("w7", acquired_at=TS, expires_at=TS_Z)},
        pending_locks={"t1": [lock("w9", metadata={"m": "m2"}, enqueued_at=TS), lock("w8")]},
    )


# --- default_snapshot -------------------------------------------------------------------


def test_constants() -> None:
    assert FORMAT == "chatstate.snapshot"
    assert VERSION == 1


def test_default_snapshot_is_empty_and_fresh() -> None:
    snap = default_snapshot()
    assert snap == Snapshot()
    assert snap.subscriptions == set()
    assert snap.dedupe == set()
    assert snap.dedupe_order == []
    assert snap.thread_state == {}
    assert snap.channel_state == {}
    assert snap.locks == {}
    assert snap.pending_locks == {}
    snap.subscriptions.add("t1")
    assert default_snapshot().subscriptions == set()
    assert validate_snapshot(default_snapshot()) == []


def test_equality_is_field_equality() -> None:
    assert full_snapshot() == full_snapshot()
    other = full_snapshot()
    other.dedupe_order.reverse()
    assert other != full_snapshot()


# --- normalize: accepted shapes ---------------------------------------------------------


@pytest.mark.parametrize("container", [list, tuple, set, frozenset])
def test_normalize_accepts_lists_tuples_and_sets(container: Any) -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "subscriptions": container(["t1", "t2"]),
            "dedupe": container([("s", "m1"), ("s", "m2")]),
            "dedupe_order": container([("s", "m1"), ("s", "m2")]),
        }
    )
    assert dropped == 0
    assert snap.subscriptions == {"t1", "t2"}
    assert snap.dedupe == {("s", "m1"), ("s", "m2")}
    assert snap.dedupe_order == [("s", "m1"), ("s", "m2")]


def test_normalize_accepts_dedupe_keys_as_lists_or_tuples() -> None:
    snap = normalize_snapshot({"dedupe": [["s", "m1"], ("s", "m2")], "dedupe_order": []})
    assert snap.dedupe == {("s", "m1"), ("s", "m2")}
    assert all(type(key) is tuple for key in snap.dedupe_order)


def test_normalize_ignores_format_and_version() -> None:
    snap, dropped = normalize_snapshot_counting(
        {"format": "something else", "version": 99, "subscriptions": ["t1"]}
    )
    assert (snap.subscriptions, dropped) == ({"t1"}, 0)


def test_normalize_of_a_valid_json_form_changes_nothing() -> None:
    expected = full_snapshot()
    snap, dropped = normalize_snapshot_counting(expected.to_dict())
    assert dropped == 0
    assert snap == expected


def test_normalize_snapshot_instance_returns_an_independent_copy() -> None:
    original = full_snapshot()
    snap = normalize_snapshot(original)
    assert snap == original
    assert snap is not original
    snap.thread_state["t1"]["nested"]["a"].append("x")
    snap.locks["t1"]["metadata"]["k"] = 1
    snap.pending_locks["t1"].clear()
    snap.dedupe_order.clear()
    assert original == full_snapshot()


def test_normalize_mapping_values_are_copied() -> None:
    state = {"a": [1]}
    snap = normalize_snapshot({"thread_state": {"t1": state}})
    snap.thread_state["t1"]["a"].append(2)
    assert state == {"a": [1]}


# --- normalize: dropped entries ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "x" * 256, 1, None, ["t"], b"t", ("t",)])
def test_normalize_drops_bad_subscriptions(bad: object) -> None:
    snap, dropped = normalize_snapshot_counting({"subscriptions": ["ok", bad, "x" * 255]})
    assert snap.subscriptions == {"ok", "x" * 255}
    assert dropped == 1


def test_normalize_drops_duplicate_subscriptions_counting_them() -> None:
    snap, dropped = normalize_snapshot_counting({"subscriptions": ["a", "b", "a", "a"]})
    assert (snap.subscriptions, dropped) == ({"a", "b"}, 2)


@pytest.mark.parametrize(
    "bad",
    [["s"], ["s", "m", "x"], ["", "m"], ["s", ""], [1, "m"], ["s", "x" * 256], "sm", {"s": "m"}],
)
def test_normalize_drops_bad_dedupe_keys(bad: object) -> None:
    snap, dropped = normalize_snapshot_counting({"dedupe": [["s", "ok"], bad], "dedupe_order": []})
    assert snap.dedupe == {("s", "ok")}
    assert snap.dedupe_order == [("s", "ok")]
    assert dropped == 1


@pytest.mark.parametrize("section", ["thread_state", "channel_state"])
@pytest.mark.parametrize(
    "bad_value",
    [
        [],
        "text",
        None,
        {1: "non-str key"},
        {"a": object()},
        {"a": float("nan")},
        {"a": {1, 2}},
    ],
)
def test_normalize_drops_bad_state_maps(section: str, bad_value: object) -> None:
    snap, dropped = normalize_snapshot_counting({section: {"ok": {"a": 1}, "bad": bad_value}})
    assert getattr(snap, section) == {"ok": {"a": 1}}
    assert dropped == 1


@pytest.mark.parametrize("bad_key", ["", "x" * 256, 7, ("t",)])
def test_normalize_drops_state_maps_under_bad_ids(bad_key: object) -> None:
    snap, dropped = normalize_snapshot_counting({"thread_state": {"ok": {}, bad_key: {}}})
    assert snap.thread_state == {"ok": {}}
    assert dropped == 1


def test_normalize_canonicalizes_nested_values_through_json() -> None:
    snap, dropped = normalize_snapshot_counting(
        {"thread_state": {"t1": {"pair": (1, 2), "by_int": {1: "one"}}}}
    )
    assert dropped == 0
    assert snap.thread_state == {"t1": {"pair": [1, 2], "by_int": {"1": "one"}}}
    assert validate_snapshot(snap) == []


@pytest.mark.parametrize(
    "bad_lock",
    [
        {"strategy": "queue", "metadata": {}},
        {"owner": "", "strategy": "queue", "metadata": {}},
        {"owner": 5, "strategy": "queue", "metadata": {}},
        {"owner": "w1", "strategy": "wait", "metadata": {}},
        {"owner": "w1", "metadata": {}},
        {"owner": "w1", "strategy": "queue", "metadata": []},
        {"owner": "w1", "strategy": "queue", "metadata": "m"},
        {"owner": "w1", "strategy": "queue", "metadata": {"x": object()}},
        {"owner": "", "strategy": "nope", "metadata": 3},  # several problems: still one drop
        "w1",
        None,
        ["w1", "queue", {}],
    ],
)
def test_normalize_drops_bad_locks(bad_lock: object) -> None:
    snap, dropped = normalize_snapshot_counting({"locks": {"ok": lock(), "bad": bad_lock}})
    assert snap.locks == {"ok": lock()}
    assert dropped == 1


@pytest.mark.parametrize("strategy", ["reject", "queue", "debounce", "concurrent"])
def test_normalize_keeps_every_strategy(strategy: str) -> None:
    snap = normalize_snapshot({"locks": {"k": lock(strategy=strategy)}})
    assert snap.locks["k"]["strategy"] == strategy


def test_normalize_turns_a_str_enum_strategy_into_a_plain_string() -> None:
    class Strategy(str, enum.Enum):
        QUEUE = "queue"

    snap = normalize_snapshot({"locks": {"k": lock(strategy=Strategy.QUEUE)}})
    assert type(snap.locks["k"]["strategy"]) is str
    assert snap.locks["k"]["strategy"] == "queue"


def test_normalize_lock_metadata_none_or_missing_becomes_empty() -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "locks": {
                "a": {"owner": "w1", "strategy": "queue", "metadata": None},
                "b": {"owner": "w1", "strategy": "queue"},
            },
            "pending_locks": {"a": [{"owner": "w2", "strategy": "queue", "metadata": None}]},
        }
    )
    assert dropped == 0
    assert snap.locks == {"a": lock(), "b": lock()}
    assert snap.pending_locks == {"a": [lock("w2")]}


def test_normalize_keeps_valid_timestamps_exactly() -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "locks": {"k": lock(acquired_at=TS, expires_at=TS_Z)},
            "pending_locks": {"k": [lock("w2", enqueued_at="2024-05-01T12:00:00.5+00:00")]},
        }
    )
    assert dropped == 0
    assert snap.locks["k"]["acquired_at"] == TS
    assert snap.locks["k"]["expires_at"] == TS_Z
    assert snap.pending_locks["k"][0]["enqueued_at"] == "2024-05-01T12:00:00.5+00:00"


@pytest.mark.parametrize(
    "bad_time",
    [
        12345,
        "yesterday",
        "",
        "2024-05-01T12:00:00",  # naive
        "2024-05-01T12:00:00+02:00",  # not UTC
        ["2024-05-01T12:00:00Z"],
    ],
)
def test_normalize_drops_bad_timestamps_but_keeps_the_entry(bad_time: object) -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "locks": {"k": lock(acquired_at=TS, expires_at=bad_time)},
            "pending_locks": {"k": [lock("w2", enqueued_at=bad_time)]},
        }
    )
    assert snap.locks == {"k": lock(acquired_at=TS)}
    assert snap.pending_locks == {"k": [lock("w2")]}
    assert dropped == 2


def test_normalize_drops_none_timestamps_without_counting() -> None:
    snap, dropped = normalize_snapshot_counting(
        {"locks": {"k": lock(expires_at=None)}, "pending_locks": {"k": [lock(enqueued_at=None)]}}
    )
    assert snap.locks == {"k": lock()}
    assert snap.pending_locks == {"k": [lock()]}
    assert dropped == 0


def test_normalize_drops_unknown_keys_of_entries() -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "locks": {"k": lock(enqueued_at=TS, extra=1)},  # enqueued_at is for pending entries
            "pending_locks": {"k": [lock(acquired_at=TS)]},
        }
    )
    assert snap.locks == {"k": lock()}
    assert snap.pending_locks == {"k": [lock()]}
    assert dropped == 3


def test_normalize_pending_locks() -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "pending_locks": {
                "k": [lock("w1"), {"owner": "w2"}, "junk", lock("w3", "debounce")],
                "t": (lock("w4"),),
                "bad": "not a list",
                "empty": [],
                "": [lock()],
            }
        }
    )
    assert snap.pending_locks == {
        "k": [lock("w1"), lock("w3", "debounce")],
        "t": [lock("w4")],
        "empty": [],
    }
    assert dropped == 4


# --- normalize: missing and malformed fields, non-mappings --------------------------------


def test_normalize_missing_fields_are_empty() -> None:
    assert normalize_snapshot_counting({}) == (default_snapshot(), 0)
    assert normalize_snapshot_counting({"thread_state": {"t": {}}}) == (
        Snapshot(thread_state={"t": {}}),
        0,
    )


def test_normalize_none_fields_are_empty_and_not_counted() -> None:
    fields = ["subscriptions", "dedupe", "dedupe_order", "thread_state", "channel_state"]
    fields += ["locks", "pending_locks"]
    assert normalize_snapshot_counting(dict.fromkeys(fields)) == (default_snapshot(), 0)


@pytest.mark.parametrize(
    "section, bad",
    [
        ("subscriptions", "t1"),
        ("subscriptions", {"t1": True}),
        ("dedupe", 5),
        ("dedupe_order", "s:m"),
        ("thread_state", [["t1", {}]]),
        ("channel_state", "x"),
        ("locks", []),
        ("pending_locks", 1.5),
    ],
)
def test_normalize_malformed_fields_are_empty_and_count_once(section: str, bad: object) -> None:
    assert normalize_snapshot_counting({section: bad}) == (default_snapshot(), 1)


def test_normalize_counts_unknown_top_level_keys() -> None:
    snap, dropped = normalize_snapshot_counting({"subscription": ["t1"], 3: "x"})
    assert (snap, dropped) == (default_snapshot(), 2)


@pytest.mark.parametrize("obj", [[], ["t1"], "snapshot", 42, b"{}", object()])
def test_normalize_non_mapping_is_default(obj: object) -> None:
    assert normalize_snapshot_counting(obj) == (default_snapshot(), 1)


def test_normalize_none_is_default_dropping_nothing() -> None:
    assert normalize_snapshot_counting(None) == (default_snapshot(), 0)
    assert normalize_snapshot(None) == default_snapshot()


# --- normalize: dedupe reconciliation -----------------------------------------------------


def test_order_is_the_authority_its_keys_join_dedupe() -> None:
    snap, dropped = normalize_snapshot_counting(
        {"dedupe": [["s", "m1"]], "dedupe_order": [["s", "m2"], ["s", "m1"]]}
    )
    assert dropped == 0
    assert snap.dedupe == {("s", "m1"), ("s", "m2")}
    assert snap.dedupe_order == [("s", "m2"), ("s", "m1")]


def test_keys_only_in_dedupe_are_appended_sorted() -> None:
    snap, dropped = normalize_snapshot_counting(
        {"dedupe": [["s", "z"], ["s", "b"], ["a", "q"], ["s", "m"]], "dedupe_order": [["s", "m"]]}
    )
    assert dropped == 0
    assert snap.dedupe_order == [("s", "m"), ("a", "q"), ("s", "b"), ("s", "z")]
    assert set(snap.dedupe_order) == snap.dedupe


def test_dedupe_without_order_gets_a_sorted_order() -> None:
    snap = normalize_snapshot({"dedupe": {("s", "2"), ("s", "1")}})
    assert snap.dedupe_order == [("s", "1"), ("s", "2")]


def test_order_duplicates_are_dropped_keeping_the_first() -> None:
    snap, dropped = normalize_snapshot_counting(
        {"dedupe_order": [["s", "a"], ["s", "b"], ("s", "a"), ["s", "c"], ["s", "b"]]}
    )
    assert snap.dedupe_order == [("s", "a"), ("s", "b"), ("s", "c")]
    assert snap.dedupe == {("s", "a"), ("s", "b"), ("s", "c")}
    assert dropped == 2


def test_normalized_snapshot_instance_with_inconsistent_dedupe_is_repaired() -> None:
    snap = normalize_snapshot(Snapshot(dedupe={("s", "x")}, dedupe_order=[("s", "y"), ("s", "y")]))
    assert snap.dedupe_order == [("s", "y"), ("s", "x")]
    assert snap.dedupe == {("s", "x"), ("s", "y")}


# --- validate ---------------------------------------------------------------------------


def test_valid_forms_have_no_problems() -> None:
    assert validate_snapshot(valid()) == []
    assert validate_snapshot(full_snapshot().to_dict()) == []
    assert validate_snapshot(full_snapshot()) == []
    assert validate_snapshot(json.loads(DESIGN_EXAMPLE)) == []


@pytest.mark.parametrize("obj", [None, [], "x", 1, ["format", "chatstate.snapshot"]])
def test_validate_top_level_must_be_an_object(obj: object) -> None:
    assert validate_snapshot(obj) == ["$: expected an object"]


@pytest.mark.parametrize(
    "header, problem",
    [
        ({"version": 1}, "format: expected 'chatstate.snapshot'"),
        ({"format": "other", "version": 1}, "format: expected 'chatstate.snapshot'"),
        ({"format": FORMAT}, "version: missing (this code knows 1)"),
        ({"format": FORMAT, "version": 2}, "version: unsupported version 2 (this code knows 1)"),
        ({"format": FORMAT, "version": "1"}, "version: expected an integer (this code knows 1)"),
        ({"format": FORMAT, "version": True}, "version: expected an integer (this code knows 1)"),
        ({"format": FORMAT, "version": 1.0}, "version: expected an integer (this code knows 1)"),
    ],
)
def test_validate_header(header: dict[str, Any], problem: str) -> None:
    assert validate_snapshot(header) == [problem]


def test_validate_unknown_top_level_keys() -> None:
    assert validate_snapshot(valid(subscription=["t"], **{"": 1})) == [
        "subscription: unknown key",
        "$['']: unknown key",
    ]
    with_int_key: dict[object, object] = {"format": FORMAT, "version": VERSION, 3: "x", "a b": 1}
    assert validate_snapshot(with_int_key) == ["$[3]: unknown key", "$['a b']: unknown key"]


@pytest.mark.parametrize(
    "section, value, problem",
    [
        ("subscriptions", "t1", "subscriptions: expected an array"),
        ("subscriptions", None, "subscriptions: expected an array"),
        ("dedupe", {"s": "m"}, "dedupe: expected an array"),
        ("dedupe_order", {("s", "m")}, "dedupe_order: expected an array"),
        ("thread_state", [], "thread_state: expected an object"),
        ("channel_state", None, "channel_state: expected an object"),
        ("locks", "k", "locks: expected an object"),
        ("pending_locks", [], "pending_locks: expected an object"),
    ],
)
def test_validate_section_types(section: str, value: object, problem: str) -> None:
    assert validate_snapshot(valid(**{section: value})) == [problem]


def test_validate_subscriptions() -> None:
    assert validate_snapshot(valid(subscriptions=["a", "b", "", "a", 7])) == [
        f"subscriptions[2]: {ID_PROBLEM}",
        "subscriptions[3]: duplicate of subscriptions[0]",
        f"subscriptions[4]: {ID_PROBLEM}",
    ]


def test_validate_dedupe_entries() -> None:
    order = [["s", "a"], ["s", "b"], ["s", "c"], ["s"], ["s", "b"]]
    assert validate_snapshot(
        valid(dedupe=[["s", "a"], ["s", "b"], ["s", "c"], ["s", "a"]], dedupe_order=order)
    ) == [
        "dedupe[3]: duplicate of dedupe[0]",
        f"dedupe_order[3]: {KEY_PROBLEM}",
        "dedupe_order[4]: duplicate of dedupe_order[1]",
    ]


def test_validate_dedupe_and_order_must_hold_the_same_keys() -> None:
    keys = [["s", f"m{i}"] for i in range(5)]
    assert validate_snapshot(valid(dedupe=keys, dedupe_order=keys[:1] + [["x", "y"]])) == [
        'dedupe_order: missing keys present in dedupe: 4 (["s", "m1"], ["s", "m2"], '
        '["s", "m3"], ...)',
        'dedupe: missing keys present in dedupe_order: 1 (["x", "y"])',
    ]
    assert validate_snapshot(valid(dedupe=keys[:2])) == [
        'dedupe_order: missing keys present in dedupe: 2 (["s", "m0"], ["s", "m1"])'
    ]


def test_validate_state_maps() -> None:
    problems = validate_snapshot(
        valid(
            thread_state={"t1": [], "t2": {"a": (1, 2)}, "t3": {"ok": 1}, "": {}},
            channel_state={"c1": {"a": float("inf")}, "c2": {2: "x"}, "c3": {"a": {1: 2}}},
        )
    )
    assert problems == [
        "thread_state['t1']: expected an object",
        f"thread_state['t2']: {JSON_PROBLEM}",
        "thread_state['']: expected its key to be a non-empty string of at most 255 characters",
        f"channel_state['c1']: {JSON_PROBLEM}",
        "channel_state['c2']: expected an object",
        f"channel_state['c3']: {JSON_PROBLEM}",
    ]


def test_validate_shortens_long_keys_in_paths() -> None:
    [problem] = validate_snapshot(valid(thread_state={"k" * 300: {}}))
    path = problem.split(": ")[0]
    assert path.startswith("thread_state['kkk") and path.endswith("...]")
    assert len(path) < 100


def test_validate_locks() -> None:
    problems = validate_snapshot(
        valid(
            locks={
                "k": {"owner": "w1", "strategy": "wait", "metadata": {}},
                "m": {"metadata": None},
                "n": lock(acquired_at="soon", expires_at=TS_Z, color="red", enqueued_at=TS),
                "o": "w1",
            }
        )
    )
    assert problems == [
        f"locks['k'].strategy: {STRATEGY_PROBLEM}",
        f"locks['m'].owner: {ID_PROBLEM}",
        f"locks['m'].strategy: {STRATEGY_PROBLEM}",
        "locks['m'].metadata: expected an object",
        "locks['n'].acquired_at: expected an ISO 8601 UTC timestamp",
        "locks['n'].color: unknown key",
        "locks['n'].enqueued_at: unknown key",
        "locks['o']: expected an object",
    ]


def test_validate_pending_locks() -> None:
    problems = validate_snapshot(
        valid(
            pending_locks={
                "k": [lock(), {"owner": "", "strategy": "queue", "metadata": {}}, 5],
                "m": "x",
                "n": [lock(enqueued_at=None), lock(enqueued_at="2024-05-01T14:00:00+02:00")],
            }
        )
    )
    assert problems == [
        f"pending_locks['k'][1].owner: {ID_PROBLEM}",
        "pending_locks['k'][2]: expected an object",
        "pending_locks['m']: expected an array",
        "pending_locks['n'][0].enqueued_at: expected an ISO 8601 UTC timestamp",
        "pending_locks['n'][1].enqueued_at: expected an ISO 8601 UTC timestamp",
    ]


def test_validate_reports_every_problem_at_once() -> None:
    problems = validate_snapshot(
        {
            "version": 2,
            "extra": 1,
            "subscriptions": [""],
            "dedupe": [["s", "m"]],
            "thread_state": {"t": 1},
            "locks": {"k": lock(strategy="x")},
        }
    )
    assert problems == [
        "extra: unknown key",
        "format: expected 'chatstate.snapshot'",
        "version: unsupported version 2 (this code knows 1)",
        f"subscriptions[0]: {ID_PROBLEM}",
        'dedupe_order: missing keys present in dedupe: 1 (["s", "m"])',
        "thread_state['t']: expected an object",
        f"locks['k'].strategy: {STRATEGY_PROBLEM}",
    ]


def test_validate_accepts_tuples_as_arrays() -> None:
    assert validate_snapshot(valid(dedupe=(("s", "m"),), dedupe_order=[("s", "m")])) == []


def test_validate_snapshot_instance() -> None:
    bad = Snapshot(
        subscriptions={"ok", ""},
        dedupe={("s", "m")},
        thread_state={"t": {"x": (1,)}},
        locks={"k": {"owner": "w", "strategy": "queue"}},
    )
    assert validate_snapshot(bad) == [
        f"subscriptions[0]: {ID_PROBLEM}",
        'dedupe_order: missing keys present in dedupe: 1 (["s", "m"])',
        f"thread_state['t']: {JSON_PROBLEM}",
        "locks['k'].metadata: expected an object",
    ]


# --- to_dict / to_json ------------------------------------------------------------------


def test_to_dict_shape() -> None:
    data = full_snapshot().to_dict()
    assert list(data)[:2] == ["format", "version"]
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["subscriptions"] == ["t1", "t2"]
    assert data["dedupe"] == [["slack", "m1"], ["slack", "m2"]]
    assert data["dedupe_order"] == [["slack", "m2"], ["slack", "m1"]]
    assert data["locks"]["t1"]["expires_at"] == TS_Z


def test_to_dict_is_a_deep_copy() -> None:
    snap = full_snapshot()
    data = snap.to_dict()
    data["thread_state"]["t1"]["nested"]["a"].clear()
    data["pending_locks"]["t1"][0]["metadata"]["m"] = "changed"
    assert snap == full_snapshot()


def test_to_json_is_deterministic_across_insertion_orders() -> None:
    a = Snapshot(
        subscriptions={"a", "b", "c"},
        dedupe={("s", "1"), ("s", "2")},
        dedupe_order=[("s", "2"), ("s", "1")],
        thread_state={"t1": {"x": 1, "y": {"p": 1, "q": 2}}, "t2": {}},
        channel_state={"c2": {}, "c1": {"z": 1, "a": 2}},
        locks={"k2": lock(), "k1": lock("w2", expires_at=TS)},
        pending_locks={"k2": [lock("p1"), lock("p2")], "k1": []},
    )
    b = Snapshot(
        subscriptions={"c", "b", "a"},
        dedupe={("s", "2"), ("s", "1")},
        dedupe_order=[("s", "2"), ("s", "1")],
        thread_state={"t2": {}, "t1": {"y": {"q": 2, "p": 1}, "x": 1}},
        channel_state={"c1": {"a": 2, "z": 1}, "c2": {}},
        locks={"k1": {"expires_at": TS, "metadata": {}, "strategy": "queue", "owner": "w2"}},
        pending_locks={"k1": [], "k2": [lock("p1"), lock("p2")]},
    )
    b.locks["k2"] = lock()
    assert a == b
    assert a.to_json() == b.to_json()
    assert a.to_json(indent=2) == b.to_json(indent=2)
    assert a.to_dict() == b.to_dict()
    assert list(a.to_dict()["thread_state"]) == list(b.to_dict()["thread_state"])


def test_to_json_format() -> None:
    snap = Snapshot(subscriptions={"thé"}, thread_state={"t": {"b": 1, "a": 2}})
    text = snap.to_json()
    assert " " not in text and "\n" not in text
    assert "thé" in text
    assert text.index('"a"') < text.index('"b"')
    assert text == json.dumps(
        json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    indented = snap.to_json(indent=2)
    assert indented.startswith('{\n  "channel_state": {},')
    assert json.loads(indented) == json.loads(text)


def test_to_json_refuses_non_json_values() -> None:
    with pytest.raises(ValueError):
        Snapshot(thread_state={"t": {"x": float("nan")}}).to_json()


# --- from_json / from_dict ----------------------------------------------------------------


def test_round_trip_is_exact() -> None:
    snap = full_snapshot()
    assert Snapshot.from_json(snap.to_json()) == snap
    assert Snapshot.from_json(snap.to_json(indent=4)) == snap
    assert Snapshot.from_json(snap.to_json().encode()) == snap
    assert Snapshot.from_dict(snap.to_dict()) == snap
    assert Snapshot.from_json(snap.to_json()).to_json() == snap.to_json()


def test_round_trip_keeps_timestamps_exactly() -> None:
    stamps = ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000+00:00", "2024-05-01T12:00:00.5Z"]
    snap = Snapshot(
        locks={"k": lock(acquired_at=stamps[0], expires_at=stamps[1])},
        pending_locks={"k": [lock(enqueued_at=stamps[2])]},
    )
    back = Snapshot.from_json(snap.to_json())
    assert back.locks["k"]["acquired_at"] == stamps[0]
    assert back.locks["k"]["expires_at"] == stamps[1]
    assert back.pending_locks["k"][0]["enqueued_at"] == stamps[2]


def test_design_example_parses() -> None:
    snap = Snapshot.from_json(DESIGN_EXAMPLE)
    thread = "slack:C1:1700000000.1"
    assert snap == Snapshot(
        subscriptions={thread},
        dedupe={("slack", "m1")},
        dedupe_order=[("slack", "m1")],
        thread_state={thread: {"turns": 3}},
        channel_state={"slack:C1": {"topic": "support"}},
        locks={thread: {"owner": "worker-7", "strategy": "queue", "metadata": {}}},
        pending_locks={thread: [lock("worker-9", metadata={"message_id": "m2"})]},
    )
    assert json.loads(snap.to_json()) == json.loads(DESIGN_EXAMPLE)


def test_from_json_raises_listing_every_problem() -> None:
    text = json.dumps({"format": FORMAT, "version": 3, "subscriptions": [""], "bogus": 1})
    with pytest.raises(ValueError) as info:
        Snapshot.from_json(text)
    assert isinstance(info.value, InvalidSnapshot)
    assert info.value.problems == [
        "bogus: unknown key",
        "version: unsupported version 3 (this code knows 1)",
        f"subscriptions[0]: {ID_PROBLEM}",
    ]
    message = str(info.value)
    assert "3 problems" in message
    assert all(problem in message for problem in info.value.problems)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json",
        '{"format": "chatstate.snapshot", "version": NaN}',
        '{"format": "chatstate.snapshot", "version": 1, "version": 1}',
        b"\xff\xfe\x00",
    ],
)
def test_from_json_invalid_json_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError) as info:
        Snapshot.from_json(text)
    assert isinstance(info.value, InvalidSnapshot)
    [problem] = info.value.problems
    assert problem.startswith("$: invalid JSON: ")


def test_from_json_rejects_a_non_object() -> None:
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json("[1, 2]")
    assert info.value.problems == ["$: expected an object"]


def test_from_json_requires_the_header() -> None:
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json('{"subscriptions": ["t"]}')
    assert info.value.problems == [
        "format: expected 'chatstate.snapshot'",
        "version: missing (this code knows 1)",
    ]


def test_from_dict_copies_and_accepts_snapshots() -> None:
    data = full_snapshot().to_dict()
    snap = Snapshot.from_dict(data)
    data["thread_state"]["t1"]["turns"] = 99
    assert snap == full_snapshot()
    assert Snapshot.from_dict(full_snapshot()) == full_snapshot()
    with pytest.raises(InvalidSnapshot):
        Snapshot.from_dict(Snapshot(dedupe={("s", "m")}))


# --- properties ---------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)  # noqa: E501
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=3)
timestamps = st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat) | st.just(TS_Z)
strategies_ = st.sampled_from(["reject", "queue", "debounce", "concurrent"])


@st.composite
def entries(draw: st.DrawFn, times: tuple[str, ...]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "owner": draw(ids),
        "strategy": draw(strategies_),
        "metadata": draw(json_objects),
    }
    for name in times:
        if draw(st.booleans()):
            entry[name] = draw(timestamps)
    return entry


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    keys = st.tuples(ids, ids)
    order = draw(st.lists(keys, unique=True, max_size=6))
    return Snapshot(
        subscriptions=draw(st.sets(ids, max_size=5)),
        dedupe=set(order),
        dedupe_order=order,
        thread_state=draw(st.dictionaries(ids, json_objects, max_size=3)),
        channel_state=draw(st.dictionaries(ids, json_objects, max_size=3)),
        locks=draw(st.dictionaries(ids, entries(("acquired_at", "expires_at")), max_size=3)),
        pending_locks=draw(
            st.dictionaries(ids, st.lists(entries(("enqueued_at",)), max_size=3), max_size=3)
        ),
    )


# Anything at all, shaped roughly like a snapshot, to throw at normalize.
junk = st.recursive(
    json_scalars | st.tuples(ids, ids) | st.just(float("nan")) | st.builds(object),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4)
    ),
    max_leaves=12,
)
sections = st.sampled_from(
    ["subscriptions", "dedupe", "dedupe_order", "thread_state", "channel_state", "locks",
     "pending_locks", "format", "other"]
)  # fmt: skip
messy = st.dictionaries(
    sections,
    junk
    | st.lists(ids | st.tuples(ids, ids) | junk, max_size=4)
    | st.dictionaries(ids, junk | json_objects | entries(("expires_at",)), max_size=3)
    | st.dictionaries(ids, st.lists(entries(("enqueued_at",)) | junk, max_size=3), max_size=3),
    max_size=8,
)


@settings(deadline=None, max_examples=200)
@given(snapshots())
def test_property_valid_snapshots_round_trip_through_json(snap: Snapshot) -> None:
    assert validate_snapshot(snap) == []
    assert normalize_snapshot_counting(snap) == (snap, 0)
    text = snap.to_json()
    back = Snapshot.from_json(text)
    assert back == snap
    assert back.to_json() == text


@settings(deadline=None, max_examples=300)
@given(messy | junk)
def test_property_normalize_output_is_valid_and_round_trips(obj: object) -> None:
    snap = normalize_snapshot(obj)
    assert set(snap.dedupe_order) == snap.dedupe
    assert len(snap.dedupe_order) == len(snap.dedupe)
    assert validate_snapshot(snap) == []
    assert Snapshot.from_json(snap.to_json()) == snap
    assert normalize_snapshot(snap) == snap
