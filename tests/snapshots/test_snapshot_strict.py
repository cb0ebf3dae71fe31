"""Strict input: ``snapshot_from`` (what ``load_snapshot`` runs), text no backend can store,
claims (snapshot version 2), timestamps read alike on every Python. Pure Python."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chatstate.isotime import is_utc_timestamp, parse_iso8601
from chatstate.snapshots.files.writer import UnsortedSection, write_snapshot
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import (
    FORMAT,
    InvalidSnapshot,
    Snapshot,
    SnapshotNotJSON,
    normalize_snapshot,
    normalize_snapshot_counting,
    snapshot_from,
    validate_snapshot,
)
from chatstate.types import from_iso
from tests.snapshots.data import KNOWS, LATER, NUL, TS, TS_Z, claim, full_snapshot, lock, valid

NOON = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
SURROGATE = "contains a lone surrogate (U+D800), which is not text"


# --- snapshot_from --------------------------------------------------------------------------


def test_snapshot_from_accepts_snapshots_and_the_json_form() -> None:
    snap = full_snapshot()
    assert snapshot_from(snap) == snap
    assert snapshot_from(snap.to_dict()) == snap
    data = snap.to_dict()
    del data["format"], data["version"]
    assert snapshot_from(data) == snap  # the header may be left out of a mapping
    copy = snapshot_from(snap)
    copy.thread_state["t1"]["turns"] = 99
    assert snap == full_snapshot()  # a copy, sharing nothing


@pytest.mark.parametrize("obj", [None, [], "{}", 5, b"{}"])
def test_snapshot_from_refuses_other_types(obj: object) -> None:
    with pytest.raises(TypeError, match="snapshot must be a Snapshot or a mapping"):
        snapshot_from(obj)


@pytest.mark.parametrize(
    "header, problem",
    [
        ({"format": "other"}, "format: expected 'chatstate.snapshot'"),
        ({"version": 7}, f"version: unsupported version 7 {KNOWS}"),
        ({"version": None}, f"version: expected an integer {KNOWS}"),
    ],
)
def test_snapshot_from_checks_a_header_that_is_there(header: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidSnapshot) as info:
        snapshot_from({**header, "subscriptions": ["t"]})
    assert info.value.problems == [problem]


def test_snapshot_from_lists_every_problem_and_types_first_decide_the_class() -> None:
    bad = {
        "thread_states": {},
        "subscriptions": ["", "ok"],
        "thread_state": {"t": {"when": {1, 2}, "n": float("nan")}},
        "locks": {"k": lock(metadata={"o": object()})},
    }
    with pytest.raises(SnapshotNotJSON) as info:
        snapshot_from(bad)
    assert isinstance(info.value, TypeError)
    assert info.value.problems == [
        "thread_states: unknown key",
        "subscriptions[0]: expected a non-empty string of at most 255 characters",
        "thread_state['t'].when: expected a JSON value, found set",
        "thread_state['t'].n: expected a finite number, found nan",
        "locks['k'].metadata.o: expected a JSON value, found object",
    ]
    assert "5 problems" in str(info.value)
    del bad["thread_state"], bad["locks"]
    with pytest.raises(InvalidSnapshot) as value_error:
        snapshot_from(bad)
    assert len(value_error.value.problems) == 2


# --- text no backend can store ----------------------------------------------------------------


def test_nul_and_lone_surrogates_are_refused_everywhere_with_their_path() -> None:
    bad = valid(
        subscriptions=["a\x00"],
        dedupe=[["s", "m"], ["s\ud800", "m"]],
        dedupe_order=[["s", "m"]],
        thread_state={"t\ud800": {}, "t": {"k\x00": 1, "list": ["ok", "\ud800"]}},
        channel_state={"c": {"deep": {"deeper": {"x\ud800y": "v"}}}},
        locks={"k": lock("w\x00", metadata={"m": "\x00"})},
        pending_locks={"k": [lock("w", metadata={}, enqueued_at="2030-01-01T00:00:00Z\x00")]},
        claims=[{"key": ["s", "m"], **claim(thread_id="t\ud800")}],
    )
    assert validate_snapshot(bad) == [
        f"subscriptions[0]: {NUL}",
        f"dedupe[1][0]: {SURROGATE}",
        f"thread_state['t\\ud800']: its key {SURROGATE}",
        f"thread_state['t']['k\\x00']: its key {NUL}",
        f"thread_state['t'].list[1]: {SURROGATE}",
        f"channel_state['c'].deep.deeper['x\\ud800y']: its key {SURROGATE}",
        f"locks['k'].owner: {NUL}",
        f"locks['k'].metadata.m: {NUL}",
        "pending_locks['k'][0].enqueued_at: expected an ISO 8601 UTC timestamp",
        f"claims[0].thread_id: {SURROGATE}",
    ]


def test_the_json_text_of_nul_and_surrogates_is_refused_by_from_json() -> None:
    text = json.dumps(valid(subscriptions=["a\x00"], thread_state={"t": {"x": "\udc00"}}))
    assert "\\u0000" in text and "\\udc00" in text
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json(text)
    assert info.value.problems == [
        f"subscriptions[0]: {NUL}",
        "thread_state['t'].x: contains a lone surrogate (U+DC00), which is not text",
    ]


def test_an_astral_character_is_text() -> None:
    snap = Snapshot(subscriptions={"😀"}, thread_state={"😀": {"😀": "😀"}})
    assert validate_snapshot(snap) == []
    assert Snapshot.from_json(snap.to_json().encode()) == snap
    assert Snapshot.from_json(json.dumps(snap.to_dict())) == snap  # \ud83d\ude00 escapes


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "section, around",
    [("thread_state", 2), ("channel_state", 2), ("locks", 3), ("pending_locks", 4)],
)
def test_512_levels_nest_in_every_section_and_513_do_not(section: str, around: int) -> None:
    """The document nests at most 512 deep, counted alike in text and in Python values."""
    for total in (512, 513):
        value = _nested(total - around)
        if section == "locks":
            value = {"k": lock(metadata=value)}
        elif section == "pending_locks":
            value = {"k": [lock(metadata=value)]}
        else:
            value = {"t": value}
        doc = valid(**{section: value})
        problems = validate_snapshot(doc)
        try:
            Snapshot.from_json(json.dumps(doc))
            from_json: list[str] = []
        except InvalidSnapshot as exc:
            from_json = exc.problems
        if total == 512:
            assert problems == from_json == []
        else:
            assert len(problems) == len(from_json) == 1
            assert problems[0].endswith(".a.a.a: nested deeper than 512 levels")
            assert "invalid JSON: nested deeper than 512 levels: line 1" in from_json[0]
            assert len(problems[0]) < 200 and len(from_json[0]) < 200


# --- claims --------------------------------------------------------------------------------------


def test_claims_are_written_sorted_by_key_after_channel_state() -> None:
    snap = Snapshot(
        dedupe={("s", "b"), ("s", "a")},
        dedupe_order=[("s", "b"), ("s", "a")],
        claims={("s", "b"): claim("w2"), ("s", "a"): claim("w1")},
    )
    data = snap.to_dict()
    assert data["version"] == 3
    assert data["claims"] == [
        {"key": ["s", "a"], **claim("w1")},
        {"key": ["s", "b"], **claim("w2")},
    ]
    text = snap.to_json()
    assert text.index('"channel_state"') < text.index('"claims"') < text.index('"dedupe"')
    assert Snapshot.from_json(text) == snap
    for indent in (None, 0, 2):
        out = io.StringIO()
        write_snapshot(SnapshotSections.from_snapshot(snap), out, indent)
        assert out.getvalue() == snap.to_json(indent)


def test_the_writer_refuses_unsorted_claims() -> None:
    sections = SnapshotSections(claims=[(("s", "b"), claim()), (("s", "a"), claim())])
    with pytest.raises(UnsortedSection, match="claims"):
        write_snapshot(sections, io.StringIO())


def test_sections_carry_claims_both_ways() -> None:
    snap = full_snapshot()
    sections = SnapshotSections.from_snapshot(snap)
    assert sections.counts["claims"] == 1
    assert SnapshotSections.from_snapshot(snap).to_snapshot() == snap
    assert list(sections.claims) == [(("slack", "m2"), claim("w7", "t1"))]


def test_claim_problems_have_paths() -> None:
    claims = [
        {"key": ["s", "x"], **claim()},
        {"key": ["s", "m"], "owner": "", "thread_id": 3, "expires_at": "2030-01-01T00:00:00"},
        {"key": ["s", "m"], **claim(), "state": "done"},
        "claim",
        {"key": "s/m", **claim()},
        {"key": ["s", "m"], **claim()},
    ]
    assert validate_snapshot(
        valid(dedupe=[["s", "m"]], dedupe_order=[["s", "m"]], claims=claims)
    ) == [
        "claims[0].key: not in dedupe",
        "claims[1].owner: expected a non-empty string of at most 255 characters",
        "claims[1].thread_id: expected a non-empty string of at most 255 characters",
        "claims[1].expires_at: expected an ISO 8601 UTC timestamp",
        "claims[2].key: duplicate of claims[1]",
        "claims[2].state: unknown key",
        "claims[3]: expected an object",
        "claims[4].key: expected [adapter, message_id]",
        "claims[5].key: duplicate of claims[1]",
    ]


def test_claims_need_version_2_and_version_1_still_loads() -> None:
    v1 = {"format": FORMAT, "version": 1, "dedupe": [["s", "m"]], "dedupe_order": [["s", "m"]]}
    assert Snapshot.from_dict(v1) == Snapshot(dedupe={("s", "m")}, dedupe_order=[("s", "m")])
    with_claims = {**v1, "claims": [{"key": ["s", "m"], **claim()}]}
    assert validate_snapshot(with_claims) == [
        "claims: not part of a version 1 snapshot (claims came with version 2)"
    ]
    assert validate_snapshot({**with_claims, "version": 2}) == []
    assert validate_snapshot(valid(claims={"s": "m"})) == ["claims: expected an array"]


def test_a_snapshot_instance_holding_a_bad_claim() -> None:
    snap = Snapshot(
        dedupe={("s", "m")}, dedupe_order=[("s", "m")], claims={("s", "m"): {"owner": "w"}}
    )
    assert validate_snapshot(snap) == [
        "claims[0].thread_id: expected a non-empty string of at most 255 characters",
        "claims[0].expires_at: expected an ISO 8601 UTC timestamp",
    ]


# --- normalize: claims ----------------------------------------------------------------------


def test_normalize_keeps_valid_claims_exactly() -> None:
    snap, dropped = normalize_snapshot_counting(
        {
            "dedupe_order": [["s", "m1"], ["s", "m2"]],
            "claims": [
                {"key": ["s", "m2"], **claim("w2", "t2", TS_Z)},
                {"key": ("s", "m1"), **claim("w1", "t1", TS)},
            ],
        }
    )
    assert dropped == 0
    assert snap.claims == {("s", "m1"): claim("w1", "t1", TS), ("s", "m2"): claim("w2", "t2", TS_Z)}
    assert validate_snapshot(snap) == []


@pytest.mark.parametrize(
    "bad",
    [
        "x",
        {"key": ["s", "m1"], "owner": "w", "thread_id": "t"},  # no expires_at
        {"key": ["s", "m1"], **claim(), "extra": 1},
        {"key": ["s"], **claim()},
        {"key": ["s", "m1"], **claim(owner="")},
        {"key": ["s", "m1"], **claim(thread_id="t\x00")},
        {"key": ["s", "m1"], **claim(expires_at="2030-01-02T03:04:05+02:00")},
        {"key": ["s", "m1"], **claim(expires_at="soon")},
        {"key": ["s", "other"], **claim()},  # not in dedupe
    ],
)
def test_normalize_drops_bad_claims_one_count_each(bad: object) -> None:
    snap, dropped = normalize_snapshot_counting(
        {"dedupe_order": [["s", "m1"], ["s", "m2"]],
         "claims": [bad, {"key": ["s", "m2"], **claim()}]}
    )  # fmt: skip
    assert snap.claims == {("s", "m2"): claim()}
    assert dropped == 1


def test_normalize_keeps_the_first_claim_of_a_key() -> None:
    first, second = claim("w1"), claim("w2")
    snap, dropped = normalize_snapshot_counting(
        {
            "dedupe": [["s", "m"]],
            "claims": [{"key": ["s", "m"], **first}, {"key": ["s", "m"], **second}],
        }
    )
    assert (snap.claims, dropped) == ({("s", "m"): first}, 1)


def test_normalize_claims_of_a_snapshot_instance() -> None:
    claims: dict[Any, Any] = {("s", "m"): claim(), ("s", "gone"): claim(), ("x",): claim()}
    snap = Snapshot(dedupe={("s", "m")}, dedupe_order=[("s", "m")], claims=claims)
    assert normalize_snapshot_counting(snap) == (
        Snapshot(dedupe={("s", "m")}, dedupe_order=[("s", "m")], claims={("s", "m"): claim()}),
        2,
    )


def test_normalize_reads_claims_of_any_version() -> None:
    doc = {"format": FORMAT, "version": 1, "dedupe": [["s", "m"]],
           "claims": [{"key": ["s", "m"], **claim()}]}  # fmt: skip
    assert normalize_snapshot(doc).claims == {("s", "m"): claim()}


# --- timestamps: one grammar on every Python ---------------------------------------------------


@pytest.mark.parametrize(
    "text, moment",
    [
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00.5Z", NOON.replace(microsecond=500000)),
        ("2024-05-01T12:00:00.12+00:00", NOON.replace(microsecond=120000)),
        ("2024-05-01t12:00:00.1234z", NOON.replace(microsecond=123400)),
        ("2024-05-01 12:00:00,12345-0000", NOON.replace(microsecond=123450)),
        ("2024-05-01T12:00:00.123456789Z", NOON.replace(microsecond=123456)),
        ("2024-05-01T12:00Z", NOON),
    ],
)  # fmt: skip
def test_utc_timestamps_with_any_fraction(text: str, moment: datetime) -> None:
    """1 to 5 fraction digits are valid (``datetime.fromisoformat`` refuses them on 3.10)."""
    assert is_utc_timestamp(text)
    assert parse_iso8601(text) == from_iso(text) == moment
    snap = Snapshot(locks={"k": lock(expires_at=text)})
    assert Snapshot.from_json(snap.to_json()).locks["k"]["expires_at"] == text


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T12:00:00", "2024-05-01T12:00:00+01:00", "2024-05-01", "2024-13-01T00:00:00Z",
     "2024-02-30T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:00:60Z", "20240501T120000Z",
     "２０２４-05-01T12:00:00Z", "2024-05-01T12:00:00.Z", " 2024-05-01T12:00:00Z", ""],
)  # fmt: skip
def test_not_utc_timestamps(text: str) -> None:
    assert not is_utc_timestamp(text)


def test_from_iso_reads_offsets_and_naive_as_utc() -> None:
    assert from_iso("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert from_iso("2024-05-01T14:00:00+02:00") == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert from_iso("2024-05-01T14:00:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError):
        from_iso("yesterday")
    with pytest.raises(ValueError):
        from_iso("2024-05-01T12:00:00+24:00")
    assert from_iso(LATER).year == 2030
