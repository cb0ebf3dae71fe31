"""Snapshot format version 3: ``lists`` and ``outbox`` — deterministic text, strict checks
with JSON paths, lenient drops, older versions still read, and the streamed writer and
reader carrying both sections. Pure Python; no database."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest

from chatstate.snapshots.files.reader import SnapshotFile
from chatstate.snapshots.files.writer import UnsortedSection, write_snapshot
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import (
    InvalidSnapshot,
    Snapshot,
    normalize_snapshot_drops,
    validate_snapshot,
)
from tests.snapshots.data import DESIGN_EXAMPLE, LATER, TS_Z, valid

LONG_KEY = "k" * 321


def reply(key: str = "r1", **extra: Any) -> dict[str, Any]:
    entry = {"key": key, "thread_id": "t1", "payload": {"text": "hi"}, "attempts": 0,
             "dead": False, "created_at": TS_Z}  # fmt: skip
    return {**entry, **extra}


SAMPLE = Snapshot(
    subscriptions={"t1"},
    lists={
        "history:t1": {
            "items": [{"role": "user", "text": "é"}, {"role": "bot"}],
            "expires_at": None,
        },
        "user:U1": {"items": [1, "two", [3], None, True], "expires_at": LATER},
        "a" * 320: {"items": [], "expires_at": None},
    },
    outbox=[reply("r2", payload=None, attempts=3, dead=True, due_at=LATER), reply("r1")],
)


# -- the text ------------------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 0, 2])
def test_the_text_is_deterministic_and_round_trips_byte_for_byte(indent: int | None) -> None:
    text = SAMPLE.to_json(indent)
    shuffled = Snapshot(
        subscriptions={"t1"},
        lists=dict(reversed(list(copy.deepcopy(SAMPLE.lists).items()))),
        outbox=[dict(reversed(list(entry.items()))) for entry in SAMPLE.outbox],
    )
    assert shuffled.to_json(indent) == text
    back = Snapshot.from_json(text)
    assert back == SAMPLE and back.to_json(indent) == text
    out = io.StringIO()
    write_snapshot(SnapshotSections.from_snapshot(SAMPLE), out, indent)
    assert out.getvalue() == text
    data = json.loads(text)
    assert data["version"] == 3
    assert list(data["lists"]) == sorted(SAMPLE.lists)  # sorted by key
    assert [e["key"] for e in data["outbox"]] == ["r2", "r1"]  # in commit order
    assert "due_at" not in data["outbox"][1]  # left out where unknown


def test_the_sections_come_after_format_in_key_order() -> None:
    text = SAMPLE.to_json()
    assert text.index('"format"') < text.index('"lists"') < text.index('"locks"')
    assert text.index('"locks"') < text.index('"outbox"') < text.index('"pending_locks"')


def test_the_writer_refuses_lists_out_of_order() -> None:
    sections = SnapshotSections(
        lists=[("b", SAMPLE.lists["user:U1"]), ("a", SAMPLE.lists["user:U1"])]
    )
    with pytest.raises(UnsortedSection, match="lists"):
        write_snapshot(sections, io.StringIO())


# -- strict --------------------------------------------------------------------------------


def test_list_problems_have_paths() -> None:
    problems = validate_snapshot(
        valid(
            lists={
                "": {"items": [], "expires_at": None},
                LONG_KEY: {"items": [], "expires_at": None},
                "nul\x00": {"items": [], "expires_at": None},
                "a": {"items": [1, float("nan"), {"x": "\ud800"}], "expires_at": "tomorrow"},
                "b": {"items": {"not": "a list"}, "expires_at": None},
                "c": {"items": []},
                "d": {"items": [[[]]], "expires_at": None, "extra": 1},
                "e": [],
            }
        )
    )
    assert problems == [
        "lists['']: expected its key to be a non-empty string of at most 320 characters",
        f"lists['{LONG_KEY[:76]}...]: expected its key to be a non-empty string of at most 320 "
        "characters",
        "lists['nul\\x00']: its key contains a NUL character (U+0000)",
        "lists['a'].items[1]: expected a finite number, found nan",
        "lists['a'].items[2].x: contains a lone surrogate (U+D800), which is not text",
        "lists['a'].expires_at: expected an ISO 8601 UTC timestamp or null",
        "lists['b'].items: expected an array",
        "lists['c'].expires_at: missing (expected an ISO 8601 UTC timestamp or null)",
        "lists['d'].extra: unknown key",
        "lists['e']: expected an object",
    ]


def test_outbox_problems_have_paths() -> None:
    problems = validate_snapshot(
        valid(
            outbox=[
                reply(attempts=-1),
                reply("r2", attempts=True, dead="no", created_at="now"),
                reply("", thread_id="x" * 256),
                {k: v for k, v in reply("r3").items() if k != "payload"},
                reply("r1", due_at=None, extra=1),
                reply("r4", attempts=2**63, payload={"n": float("inf")}, due_at="later"),
                "entry",
            ]
        )
    )
    assert problems == [
        "outbox[0].attempts: expected an integer >= 0",
        "outbox[1].attempts: expected an integer >= 0",
        "outbox[1].dead: expected true or false",
        "outbox[1].created_at: expected an ISO 8601 UTC timestamp",
        "outbox[2].key: expected a non-empty string of at most 255 characters",
        "outbox[2].thread_id: expected a non-empty string of at most 255 characters",
        "outbox[3].payload: missing (expected a JSON value)",
        "outbox[4].key: duplicate of outbox[0]",
        "outbox[4].due_at: expected an ISO 8601 UTC timestamp",
        "outbox[4].extra: unknown key",
        "outbox[5].payload.n: expected a finite number, found inf",
        "outbox[5].attempts: expected an integer >= 0 and below 2**63",
        "outbox[5].due_at: expected an ISO 8601 UTC timestamp",
        "outbox[6]: expected an object",
    ]


def test_sections_of_the_wrong_type() -> None:
    assert validate_snapshot(valid(lists=[], outbox={})) == [
        "lists: expected an object",
        "outbox: expected an array",
    ]
    with pytest.raises(InvalidSnapshot, match=r"outbox\[0\]\.dead: expected true or false"):
        Snapshot.from_json(json.dumps(valid(outbox=[reply(dead=None)])))


def test_payloads_and_items_may_be_any_json_value() -> None:
    values = [None, 0, -1.5, "text", [], {}, [{"a": [1, {"b": None}]}]]
    doc = valid(
        lists={"l": {"items": values, "expires_at": None}},
        outbox=[reply(f"r{i}", payload=value) for i, value in enumerate(values)],
    )
    assert validate_snapshot(doc) == []
    assert Snapshot.from_json(json.dumps(doc)).outbox[6]["payload"] == values[6]


# -- older versions --------------------------------------------------------------------------


def test_version_1_and_2_files_still_load_with_the_new_sections_empty() -> None:
    old = Snapshot.from_json(DESIGN_EXAMPLE)
    assert (old.lists, old.outbox) == ({}, [])
    v2 = {**json.loads(SAMPLE.to_json()), "version": 2}
    del v2["lists"], v2["outbox"]
    assert Snapshot.from_json(json.dumps(v2)) == Snapshot(subscriptions={"t1"})


@pytest.mark.parametrize("version", [1, 2])
def test_lists_and_outbox_need_version_3(version: int) -> None:
    doc = {**json.loads(SAMPLE.to_json()), "version": version}
    doc.pop("claims")
    came = "lists and outbox came with version 3"
    assert validate_snapshot(doc) == [
        f"lists: not part of a version {version} snapshot ({came})",
        f"outbox: not part of a version {version} snapshot ({came})",
    ]


# -- lenient ---------------------------------------------------------------------------------


def test_normalize_drops_and_counts_bad_lists_and_outbox_entries() -> None:
    doc = {
        "lists": {
            "ok": {"items": [1, float("nan"), "x", {"s": "\ud800"}], "expires_at": "later"},
            "no-expiry": {"items": ("a",)},
            "no-items": {"expires_at": None},
            "": {"items": [], "expires_at": None},
            "extra": {"items": [], "expires_at": None, "x": 1},
        },
        "outbox": [
            reply("r1", attempts=-1),  # dropped: r1 stays free for the next entry
            reply("r1", due_at="soon", x=1),  # kept, without due_at and x
            reply("r1"),  # a duplicate of the kept one
            reply("r2", due_at=None),  # kept; the null due_at left out, not counted
        ],
    }
    snap, dropped, drops = normalize_snapshot_drops(doc)
    assert snap.lists == {
        "ok": {"items": [1, "x"], "expires_at": None},
        "no-expiry": {"items": ["a"], "expires_at": None},
        "extra": {"items": [], "expires_at": None},
    }
    assert snap.outbox == [reply("r1"), reply("r2")]
    assert drops == [
        "lists['ok'].items[1]: expected a finite number, found nan",
        "lists['ok'].items[3].s: contains a lone surrogate (U+D800), which is not text",
        "lists['ok'].expires_at: expected an ISO 8601 UTC timestamp or null",
        "lists['no-items'].items: expected an array",
        "lists['']: expected its key to be a non-empty string of at most 320 characters",
        "lists['extra'].x: unknown key",
        "outbox[0].attempts: expected an integer >= 0",
        "outbox[1].due_at: expected an ISO 8601 UTC timestamp",
        "outbox[1].x: unknown key",
        "outbox[2].key: duplicate of outbox[1]",
    ]
    assert dropped == len(drops)
    assert validate_snapshot(snap) == []


# -- the streamed reader ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [16, 1 << 20])
def test_the_streamed_reader_carries_both_sections(chunk: int) -> None:
    text = SAMPLE.to_json(indent=1).encode()
    with SnapshotFile(io.BytesIO(text), chunk_size=chunk) as file:
        check = file.check()
        assert (check.problems, check.counts["lists"], check.counts["outbox"]) == ([], 3, 2)
        sections = file.sections()
        assert list(sections.lists) == sorted(SAMPLE.lists.items())
        assert list(sections.outbox) == SAMPLE.outbox
    with SnapshotFile(io.BytesIO(text), chunk_size=chunk) as file:
        file.check()
        out = io.StringIO()
        write_snapshot(file.sections(), out, 1)
    assert out.getvalue() == text.decode()


def test_the_streamed_reader_refuses_a_list_larger_than_the_value_limit() -> None:
    big = Snapshot(lists={"l": {"items": ["x" * 600, "y" * 600], "expires_at": None}}).to_json()
    with SnapshotFile(io.BytesIO(big.encode()), max_value=1000) as file:
        [problem] = file.check().problems
    assert problem.startswith("lists['l']: value larger than 1,000 bytes")
