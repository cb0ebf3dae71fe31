"""Properties of snapshots (hypothesis): valid snapshots round trip, ``normalize_snapshot``
always yields a valid one, and any text gives ``Snapshot.from_json`` and the streaming reader
either a clean error or a valid snapshot — the same one."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chatstate.adapters.memory import MemoryStateAdapter
from chatstate.snapshots.files.reader import SnapshotFile
from chatstate.snapshots.snapshot import (
    InvalidSnapshot,
    Snapshot,
    normalize_snapshot,
    normalize_snapshot_counting,
    snapshot_from,
    validate_snapshot,
)
from tests.snapshots.data import TS_Z

# --- strategies ---------------------------------------------------------------------------

#: Text every backend stores: no NUL, no lone surrogate.
storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
text = st.text(alphabet=storable, max_size=8)
ids = st.text(alphabet=storable, min_size=1, max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(text, json_values, max_size=3)
fractions = st.sampled_from(["", ".5", ".12", ".123", ".1234", ".12345", ".123456", ".1234567"])
timestamps = (
    st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat)
    | st.builds(
        lambda dt, fraction, zone: dt.isoformat(timespec="seconds") + fraction + zone,
        st.datetimes(),
        fractions,
        st.sampled_from(["Z", "+00:00", "z", "-00:00"]),
    )
    | st.just(TS_Z)
)
strategies_ = st.sampled_from(["reject", "queue", "debounce", "concurrent"])
list_keys = st.text(alphabet=storable, min_size=1, max_size=20) | ids.map("history:".__add__)
capped_lists = st.fixed_dictionaries(
    {"items": st.lists(json_values, max_size=3), "expires_at": st.none() | timestamps}
)


@st.composite
def outbox_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": draw(ids),
        "thread_id": draw(ids),
        "payload": draw(json_values),
        "attempts": draw(st.integers(0, 2**63 - 1)),
        "dead": draw(st.booleans()),
        "created_at": draw(timestamps),
    }
    if draw(st.booleans()):
        entry["due_at"] = draw(timestamps)
    return entry


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
    claimed = draw(st.lists(st.sampled_from(order), unique=True) if order else st.just([]))
    claim = st.fixed_dictionaries({"owner": ids, "thread_id": ids, "expires_at": timestamps})
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
        claims={key: draw(claim) for key in claimed},
        lists=draw(st.dictionaries(list_keys, capped_lists, max_size=3)),
        outbox=draw(st.lists(outbox_entries(), max_size=3, unique_by=lambda e: e["key"])),
    )


# Anything at all, shaped roughly like a snapshot, to throw at normalize.
junk = st.recursive(
    json_scalars
    | st.tuples(ids, ids)
    | st.just(float("nan"))
    | st.builds(object)
    | st.sampled_from(["nul\x00", "\ud800", "a\udfffb"])
    | st.builds(lambda: 10**4400),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4)
    ),
    max_leaves=12,
)
sections = st.sampled_from(
    ["subscriptions", "dedupe", "dedupe_order", "thread_state", "channel_state", "locks",
     "pending_locks", "claims", "lists", "outbox", "format", "other"]
)  # fmt: skip
messy = st.dictionaries(
    sections,
    junk
    | st.lists(ids | st.tuples(ids, ids) | junk, max_size=4)
    | st.dictionaries(ids, junk | json_objects | entries(("expires_at",)), max_size=3)
    | st.dictionaries(ids, st.lists(entries(("enqueued_at",)) | junk, max_size=3), max_size=3)
    | st.lists(st.fixed_dictionaries({"key": st.tuples(ids, ids) | junk, "owner": ids,
                                      "thread_id": ids | junk, "expires_at": timestamps | junk}),
               max_size=3)
    | st.dictionaries(list_keys | st.integers() | st.just(""), capped_lists | junk, max_size=3)
    | st.lists(outbox_entries() | junk, max_size=3),
    max_size=8,
)  # fmt: skip


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


# --- fuzzing the readers: a clean error or a valid load, the same from both ---------------

PROBLEM = re.compile(r"^(\$|[A-Za-z_]\w*)\S*(\[.*\])?[^\s]*: \S")
WHERE = re.compile(r"line \d+ column \d+ \(char \d+\)$|in position \d+(-\d+)?: ")
TOKENS = [
    "{", "}", "[", "]", ",", ":", " ", "\n", '"format"', '"chatstate.snapshot"', '"version"',
    "1", "2", "3", '"subscriptions"', '"dedupe"', '"dedupe_order"', '"thread_state"',
    '"channel_state"', '"locks"', '"pending_locks"', '"claims"', '"key"', '"owner"',
    '"thread_id"', '"expires_at"', '"strategy"', '"metadata"', '"queue"', '"t"', '"s"',
    '"lists"', '"outbox"', '"items"', '"payload"', '"attempts"', '"dead"', '"created_at"',
    '"2030-01-01T00:00:00Z"', '"\\u0000"', '"\\ud800"', '"a\\udc00"', "NaN", "-Infinity",
    "null", "true", "1e999", "-0.5", '"x"', "9" * 4301, "[" * 520, "]" * 520, '"',
]  # fmt: skip
MUTATIONS = ["", ",", "]", "}", "[", "{", '"', ":", "NaN", "1" * 4400, '"\\u0000"', ",,", " x",
             '"\\ud83d"', "\\", "\x00", "[" * 515, '"format":1,']  # fmt: skip


def outcome(data: bytes, chunk: int | None = None) -> Snapshot | list[str]:
    """A valid snapshot or the problems: of ``Snapshot.from_json`` (``chunk`` None), else of
    the streaming reader reading ``chunk`` bytes at a time."""
    if chunk is None:
        try:
            return Snapshot.from_json(data)
        except InvalidSnapshot as exc:
            return exc.problems
    with SnapshotFile(io.BytesIO(data), chunk_size=chunk) as reader:
        check = reader.check()
        return check.problems if check.problems else reader.sections().to_snapshot()


def assert_clean(data: bytes) -> None:
    """Both readers end cleanly, agree (when the text is UTF-8, all the reader reads), and
    each problem names a path and, for invalid JSON, a line and column."""
    expected = outcome(data)
    if isinstance(expected, Snapshot):
        assert validate_snapshot(expected) == []
        assert Snapshot.from_json(expected.to_json()) == expected
    else:
        assert expected, "problems are listed"
        for problem in expected:
            assert PROBLEM.match(problem), problem
            assert "invalid JSON" not in problem or WHERE.search(problem), problem
    if json.detect_encoding(data) not in ("utf-8", "utf-8-sig"):
        return
    for chunk in (16, 1 << 20):
        assert outcome(data, chunk) == expected, (data[:300], chunk)


@settings(deadline=None, max_examples=120)
@given(st.binary(max_size=120))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    assert_clean(data)


@settings(deadline=None, max_examples=150)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_fuzz_json_ish_text(tokens: list[str]) -> None:
    assert_clean("".join(tokens).encode("utf-8", "surrogatepass"))


@settings(deadline=None, max_examples=120)
@given(
    snapshots(),
    st.sampled_from([None, 1]),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3), st.sampled_from(MUTATIONS)), max_size=3),
)
def test_fuzz_mutated_snapshots(
    snap: Snapshot, indent: int | None, edits: list[tuple[float, int, str]]
) -> None:
    text = snap.to_json(indent=indent)
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut :]
    assert_clean(text.encode("utf-8", "surrogatepass"))
    # The adapter API: a strict load of the parsed mapping changes nothing unless it is valid.
    try:
        obj = json.loads(text)
    except ValueError:
        return
    store = MemoryStateAdapter()
    store.subscribe("before")
    before = store.snapshot()
    try:
        store.load_snapshot(obj) if isinstance(obj, dict) else None
    except (TypeError, ValueError) as exc:
        assert getattr(exc, "problems", None) or not isinstance(obj, dict), exc
        assert store.snapshot() == before
    else:
        if isinstance(obj, dict):  # (adapters keep no empty pending list: compare the rest)
            loaded, expected = store.snapshot(), snapshot_from(obj)
            assert (loaded.subscriptions, loaded.dedupe_order, loaded.thread_state) == (
                expected.subscriptions,
                expected.dedupe_order,
                expected.thread_state,
            )
