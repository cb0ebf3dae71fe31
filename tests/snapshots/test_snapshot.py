"""``normalize_snapshot`` and ``default_snapshot``: pure Python, no database."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from chatstate.snapshots.snapshot import (
    FORMAT,
    VERSION,
    VERSIONS,
    Snapshot,
    default_snapshot,
    normalize_snapshot,
    normalize_snapshot_counting,
    validate_snapshot,
)
from tests.snapshots.data import TS, TS_Z, full_snapshot, lock

# --- default_snapshot -------------------------------------------------------------------


def test_constants() -> None:
    assert FORMAT == "chatstate.snapshot"
    assert VERSION == 3
    assert VERSIONS == (1, 2, 3)


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
    assert snap.claims == {}
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
    snap.claims[("slack", "m2")]["owner"] = "other"
    snap.dedupe_order.clear()
    assert original == full_snapshot()


def test_normalize_mapping_values_are_copied() -> None:
    state = {"a": [1]}
    snap = normalize_snapshot({"thread_state": {"t1": state}})
    snap.thread_state["t1"]["a"].append(2)
    assert state == {"a": [1]}


# --- normalize: dropped entries ---------------------------------------------------------


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "bad", ["", "x" * 256, 1, None, ["t"], b"t", ("t",), "nul\x00", "lone\ud800", "\udfff"]
)
def test_normalize_drops_bad_subscriptions(bad: object) -> None:
    snap, dropped = normalize_snapshot_counting({"subscriptions": ["ok", bad, "x" * 255]})
    assert snap.subscriptions == {"ok", "x" * 255}
    assert dropped == 1


def test_normalize_drops_duplicate_subscriptions_counting_them() -> None:
    snap, dropped = normalize_snapshot_counting({"subscriptions": ["a", "b", "a", "a"]})
    assert (snap.subscriptions, dropped) == ({"a", "b"}, 2)


@pytest.mark.parametrize(
    "bad",
    [["s"], ["s", "m", "x"], ["", "m"], ["s", ""], [1, "m"], ["s", "x" * 256], "sm", {"s": "m"},
     ["s\x00", "m"], ["s", "m\ud83d"]],
)  # fmt: skip
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
        {"a": "nul\x00"},
        {"a\x00": 1},
        {"a": ["\ud800"]},
        {"a": {"b\udc00": 1}},
        {"deep": _nested(600)},
        {"a": 10**5000},
    ],
)
def test_normalize_drops_bad_state_maps(section: str, bad_value: object) -> None:
    snap, dropped = normalize_snapshot_counting({section: {"ok": {"a": 1}, "bad": bad_value}})
    assert getattr(snap, section) == {"ok": {"a": 1}}
    assert dropped == 1


@pytest.mark.parametrize("bad_key", ["", "x" * 256, 7, ("t",), "t\x00", "t\ud800"])
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
        {"owner": "w1\x00", "strategy": "queue", "metadata": {}},
        {"owner": "w1", "strategy": "queue", "metadata": {"x": "\ud800"}},
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
    fields += ["locks", "pending_locks", "claims"]
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
        ("claims", {"k": 1}),
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
