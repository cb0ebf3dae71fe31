"""Snapshots of adapters: ``snapshot``, ``load_snapshot`` (replace / merge, all or nothing,
strict: nothing changes on any problem), ``from_snapshot``, JSON round trips, timestamps
kept."""

from __future__ import annotations

from typing import Any

import pytest

from chatstate import LockResult, Snapshot, default_snapshot, normalize_snapshot
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import InvalidSnapshot, SnapshotNotJSON
from chatstate.testing.helpers import clone_options, entries, plain, populate

T1 = "2030-01-02T03:04:05.123456Z"
T2 = "2030-01-02T04:04:05.000000Z"
T0 = "2024-05-01T12:00:00.500000Z"


def sample() -> Snapshot:
    """A snapshot with every field set, timestamps in the canonical form, locks unexpired."""
    return Snapshot(
        subscriptions={"s1", "s2"},
        dedupe={("slack", "m1"), ("teams", "m2"), ("slack", "m3")},
        dedupe_order=[("slack", "m3"), ("slack", "m1"), ("teams", "m2")],
        thread_state={"s1": {"turns": 3, "log": ["a"]}},
        channel_state={"c1": {"topic": "support"}},
        locks={
            "s1": {
                "owner": "w7",
                "strategy": "queue",
                "metadata": {"x": 1},
                "acquired_at": T1,
                "expires_at": T2,
            },
        },
        pending_locks={
            "s1": [
                {"owner": "w9", "strategy": "queue", "metadata": {"m": 2}, "enqueued_at": T0},
                {"owner": "w8", "strategy": "debounce", "metadata": {}, "enqueued_at": T1},
            ],
            "orphan": [{"owner": "w1", "strategy": "queue", "metadata": {}, "enqueued_at": T0}],
        },
    )


def another(store: Any, make_store: Any, request: pytest.FixtureRequest, snap: Any) -> Any:
    """``type(store).from_snapshot(snap)`` in a fresh namespace, cleaned up after the test."""
    adapter = type(store).from_snapshot(snap, **clone_options(store, make_store().namespace))
    if hasattr(adapter, "clear"):
        request.addfinalizer(adapter.clear)
    return adapter


def test_an_empty_store_has_the_default_snapshot(store: Any) -> None:
    assert store.snapshot() == default_snapshot()


def test_the_snapshot_shows_everything_in_the_namespace(store: Any) -> None:
    populate(store)
    snap = store.snapshot()
    assert plain(snap) == {
        "format": "chatstate.snapshot",
        "version": 3,
        "subscriptions": ["t1", "t2"],
        "dedupe": [["slack", "m1"], ["slack", "m2"]],
        "dedupe_order": [["slack", "m1"], ["slack", "m2"]],
        "thread_state": {"t1": {"nested": {"a": [1, 2]}, "turns": 1}},
        "channel_state": {"c1": {"topic": "support"}},
        "locks": {"k": {"owner": "a", "strategy": "queue", "metadata": {"m": 0}}},
        "pending_locks": {
            "k": [
                {"owner": "b", "strategy": "queue", "metadata": {"m": 1}},
                {"owner": "c", "strategy": "queue", "metadata": {"m": 2}},
            ]
        },
        "claims": [],
        "lists": {},
        "outbox": [],
    }
    assert set(snap.locks["k"]) == {"owner", "strategy", "metadata", "acquired_at", "expires_at"}
    assert normalize_snapshot(snap) == snap


def test_the_snapshot_is_a_copy(store: Any) -> None:
    populate(store)
    snap = store.snapshot()
    snap.thread_state["t1"]["turns"] = 99
    snap.subscriptions.add("x")
    snap.pending_locks["k"].clear()
    assert store.thread_state("t1")["turns"] == 1
    assert not store.is_subscribed("x")
    assert len(store.snapshot().pending_locks["k"]) == 2


def test_load_replaces_the_state_and_keeps_timestamps(store: Any) -> None:
    populate(store)
    store.load_snapshot(sample())
    assert store.snapshot() == sample()
    assert not store.is_subscribed("t1") and store.thread_state("t1") == {}
    assert store.lock("k", "z") is LockResult.ACQUIRED
    assert store.lock("s1", "z") is LockResult.BUSY
    assert entries(store.release_lock("s1", "w7")) == [
        ("w9", "queue", {"m": 2}),
        ("w8", "debounce", {}),
    ]
    assert entries(store.force_release_lock("orphan")) == [("w1", "queue", {})]


def test_load_of_the_empty_snapshot_clears_the_namespace(store: Any) -> None:
    populate(store)
    store.load_snapshot(default_snapshot())
    assert store.snapshot() == default_snapshot()


def test_load_accepts_the_json_form(store: Any) -> None:
    data = sample().to_dict()
    store.load_snapshot(data)
    assert store.snapshot() == sample()
    del data["format"], data["version"]  # a mapping may leave the header out: this version
    store.load_snapshot(default_snapshot())
    store.load_snapshot(data)
    assert store.snapshot() == sample()


BAD_MAPPINGS: dict[str, tuple[dict[str, Any], type[Exception], list[str]]] = {
    "a misspelt section": ({"thread_states": {"t": {}}}, ValueError,
                           ["thread_states: unknown key"]),
    "a dropped subscription": (
        {"subscriptions": ["ok", ""]},
        ValueError,
        ["subscriptions[1]: expected a non-empty string of at most 255 characters"],
    ),
    "a key only in dedupe": (
        {"dedupe": [["a", "b"]], "dedupe_order": []},
        ValueError,
        ['dedupe_order: missing keys present in dedupe: 1 (["a", "b"])'],
    ),
    "an unknown version": ({"format": "chatstate.snapshot", "version": 9}, ValueError,
                           ["version: unsupported version 9 (this code reads 1, 2 and 3)"]),
    "a NUL in a state": ({"thread_state": {"t": {"a": ["x\x00"]}}}, ValueError,
                         ["thread_state['t'].a[0]: contains a NUL character (U+0000)"]),
    "a lone surrogate in an id": ({"subscriptions": ["t\ud800"]}, ValueError,
                                  ["subscriptions[0]: contains a lone surrogate (U+D800), "
                                   "which is not text"]),
    "an object in a state": ({"thread_state": {"t": {"a": object()}}}, TypeError,
                             ["thread_state['t'].a: expected a JSON value, found object"]),
    "NaN in metadata": (
        {"locks": {"k": {"owner": "w", "strategy": "queue", "metadata": {"n": float("nan")}}}},
        TypeError,
        ["locks['k'].metadata.n: expected a finite number, found nan"],
    ),
    "a set in a state": ({"thread_state": {"t": {"s": {1}}}}, TypeError,
                         ["thread_state['t'].s: expected a JSON value, found set"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_MAPPINGS))
def test_load_refuses_any_problem_and_changes_nothing(store: Any, case: str) -> None:
    """Strict: a value that is not JSON raises ``TypeError``, any other problem
    ``ValueError``, each listing every problem with its path; nothing changes."""
    mapping, error, problems = BAD_MAPPINGS[case]
    populate(store)
    before = store.snapshot()
    with pytest.raises(error) as info:
        store.load_snapshot({**sample().to_dict(), **mapping})
    assert isinstance(info.value, (InvalidSnapshot, SnapshotNotJSON))
    assert info.value.problems == problems
    with pytest.raises(error):
        store.load_snapshot(mapping, merge=True)
    assert store.snapshot() == before


def test_load_refuses_a_snapshot_holding_values_that_are_not_json(store: Any) -> None:
    populate(store)
    before = store.snapshot()
    bad = sample()
    bad.thread_state["s1"]["when"] = (1, 2)
    bad.channel_state["c1"]["tags"] = {"a"}
    with pytest.raises(TypeError) as info:
        store.load_snapshot(bad)
    assert info.value.problems == [  # type: ignore[attr-defined]
        "thread_state['s1'].when: expected a JSON value, found tuple",
        "channel_state['c1'].tags: expected a JSON value, found set",
    ]
    assert store.snapshot() == before


def test_merge_incoming_wins_and_pending_is_appended(store: Any) -> None:
    store.load_snapshot(sample())
    store.lock("k2", "mine", "queue", ttl=60)
    incoming = Snapshot(
        subscriptions={"s3"},
        dedupe={("slack", "m1"), ("new", "n1")},
        dedupe_order=[("new", "n1"), ("slack", "m1")],
        thread_state={"s1": {"replaced": True}, "s9": {"n": 9}},
        channel_state={"c2": {"x": 1}},
        locks={
            "s1": {
                "owner": "incoming",
                "strategy": "reject",
                "metadata": {},
                "acquired_at": T1,
                "expires_at": T2,
            }
        },
        pending_locks={
            "s1": [{"owner": "late", "strategy": "queue", "metadata": {}, "enqueued_at": T2}]
        },
    )
    store.load_snapshot(incoming, merge=True)
    snap = store.snapshot()
    assert snap.subscriptions == {"s1", "s2", "s3"}
    assert snap.dedupe_order == [("slack", "m3"), ("slack", "m1"), ("teams", "m2"), ("new", "n1")]
    assert snap.thread_state == {"s1": {"replaced": True}, "s9": {"n": 9}}
    assert snap.channel_state == {"c1": {"topic": "support"}, "c2": {"x": 1}}
    assert snap.locks["s1"] == incoming.locks["s1"]
    assert snap.locks["k2"]["owner"] == "mine"
    assert [e["owner"] for e in snap.pending_locks["s1"]] == ["w9", "w8", "late"]
    assert snap.pending_locks["orphan"] == sample().pending_locks["orphan"]


def test_merge_into_an_empty_store_equals_replace(store: Any) -> None:
    store.load_snapshot(sample(), merge=True)
    assert store.snapshot() == sample()


def test_a_load_that_fails_midway_changes_nothing(store: Any) -> None:
    """All or nothing: a load whose last section breaks after the others were read (here the
    stream of a restore, failing midway) must undo the rest."""
    populate(store)
    before = store.snapshot()
    sections = SnapshotSections.from_snapshot(sample())
    pending = list(sections.pending_locks)

    def broken() -> Any:
        yield pending[0]
        raise RuntimeError("load failed midway")

    sections.pending_locks = broken()
    with pytest.raises(RuntimeError, match="midway"):
        store.load_snapshot_stream(sections)
    assert store.snapshot() == before


def test_a_snapshot_a_backend_cannot_store_is_refused_first(store: Any) -> None:
    """A lone surrogate (valid in a ``str``, not UTF-8) is refused with its path before
    anything is written, by every backend alike."""
    populate(store)
    before = store.snapshot()
    poisoned = sample()
    poisoned.pending_locks["zz-last"] = [{"owner": "bad\ud800", "strategy": "queue",
                                          "metadata": {}, "enqueued_at": T0}]  # fmt: skip
    with pytest.raises(ValueError) as info:
        store.load_snapshot(poisoned)
    assert info.value.problems == [  # type: ignore[attr-defined]
        "pending_locks['zz-last'][0].owner: contains a lone surrogate (U+D800), which is not text"
    ]
    assert store.snapshot() == before


def test_json_round_trip_of_an_adapter_snapshot_is_exact(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    populate(store)
    store.lock("k", "d", "debounce", {"m": 3})
    snap = store.snapshot()
    text = snap.to_json()
    assert Snapshot.from_json(text) == snap
    copy = another(store, make_store, request, Snapshot.from_json(text))
    assert copy.snapshot() == snap
    assert copy.snapshot().to_json() == text


def test_from_snapshot_builds_a_store_holding_the_snapshot(
    store: Any, make_store: Any, request: pytest.FixtureRequest
) -> None:
    copy = another(store, make_store, request, sample())
    assert type(copy) is type(store) and copy.namespace != store.namespace
    assert copy.snapshot() == sample()
    assert store.snapshot() == default_snapshot()
    assert copy.is_subscribed("s1") and copy.thread_state("s1") == {"turns": 3, "log": ["a"]}


def test_the_snapshot_survives_load_into_the_same_store(store: Any) -> None:
    populate(store)
    snap = store.snapshot()
    store.load_snapshot(snap)
    assert store.snapshot() == snap
    store.load_snapshot(snap, merge=True)
    merged = store.snapshot()
    assert merged.locks == snap.locks
    assert [e["owner"] for e in merged.pending_locks["k"]] == ["b", "c", "b", "c"]
