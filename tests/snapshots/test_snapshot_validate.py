"""``validate_snapshot``, ``to_dict``/``to_json``, ``from_json``/``from_dict``: pure Python."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatstate.snapshots.snapshot import (
    FORMAT,
    VERSION,
    InvalidSnapshot,
    Snapshot,
    validate_snapshot,
)
from tests.snapshots.data import (
    DESIGN_EXAMPLE,
    ID_PROBLEM,
    KEY_PROBLEM,
    KNOWS,
    STRATEGY_PROBLEM,
    TS,
    TS_Z,
    full_snapshot,
    lock,
    valid,
)

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
        ({"format": FORMAT}, f"version: missing {KNOWS}"),
        ({"format": FORMAT, "version": 4}, f"version: unsupported version 4 {KNOWS}"),
        ({"format": FORMAT, "version": 0}, f"version: unsupported version 0 {KNOWS}"),
        ({"format": FORMAT, "version": "1"}, f"version: expected an integer {KNOWS}"),
        ({"format": FORMAT, "version": True}, f"version: expected an integer {KNOWS}"),
        ({"format": FORMAT, "version": 2.0}, f"version: expected an integer {KNOWS}"),
        (
            {"format": FORMAT, "version": 1, "claims": []},
            "claims: not part of a version 1 snapshot (claims came with version 2)",
        ),
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
        "thread_state['t2'].a: expected a JSON value, found tuple",
        "thread_state['']: expected its key to be a non-empty string of at most 255 characters",
        "channel_state['c1'].a: expected a finite number, found inf",
        "channel_state['c2'][2]: expected a str key, found int",
        "channel_state['c3'].a[1]: expected a str key, found int",
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
            "version": 4,
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
        f"version: unsupported version 4 {KNOWS}",
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
        "thread_state['t'].x: expected a JSON value, found tuple",
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
    written = json.loads(snap.to_json())  # a version 1 file is written back as version 3
    added = (written.pop("claims"), written.pop("lists"), written.pop("outbox"))
    assert (written.pop("version"), *added) == (3, [], {}, [])
    expected = json.loads(DESIGN_EXAMPLE)
    assert expected.pop("version") == 1
    assert written == expected


def test_from_json_raises_listing_every_problem() -> None:
    text = json.dumps({"format": FORMAT, "version": 4, "subscriptions": [""], "bogus": 1})
    with pytest.raises(ValueError) as info:
        Snapshot.from_json(text)
    assert isinstance(info.value, InvalidSnapshot)
    assert info.value.problems == [
        "bogus: unknown key",
        f"version: unsupported version 4 {KNOWS}",
        f"subscriptions[0]: {ID_PROBLEM}",
    ]
    message = str(info.value)
    assert "3 problems" in message
    assert all(problem in message for problem in info.value.problems)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "$: invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ("{", "$: invalid JSON: Expecting property name enclosed in double quotes: line 1 "
              "column 2 (char 1)"),
        ("not json", "$: invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"format": "chatstate.snapshot", "version": NaN}',
         "version: invalid JSON: NaN is not valid JSON: line 1 column 45 (char 44)"),
        ('{"format": "chatstate.snapshot", "version": 1, "version": 1}',
         "version: invalid JSON: repeated key 'version': line 1 column 48 (char 47)"),
        (b"\xff\xfe\x00", None),
    ],
)  # fmt: skip
def test_from_json_invalid_json_is_a_value_error(text: str | bytes, problem: str | None) -> None:
    with pytest.raises(ValueError) as info:
        Snapshot.from_json(text)
    assert isinstance(info.value, InvalidSnapshot)
    [found] = info.value.problems
    if problem is None:
        assert found.startswith("$: invalid JSON: ")
    else:
        assert found == problem


def test_from_json_rejects_a_non_object() -> None:
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json("[1, 2]")
    assert info.value.problems == ["$: expected an object"]


def test_from_json_requires_the_header() -> None:
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json('{"subscriptions": ["t"]}')
    assert info.value.problems == [
        "format: expected 'chatstate.snapshot'",
        f"version: missing {KNOWS}",
    ]


def test_from_dict_copies_and_accepts_snapshots() -> None:
    data = full_snapshot().to_dict()
    snap = Snapshot.from_dict(data)
    data["thread_state"]["t1"]["turns"] = 99
    assert snap == full_snapshot()
    assert Snapshot.from_dict(full_snapshot()) == full_snapshot()
    with pytest.raises(InvalidSnapshot):
        Snapshot.from_dict(Snapshot(dedupe={("s", "m")}))
