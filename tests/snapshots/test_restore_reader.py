"""The streaming reader of ``chatstate_restore`` (``chatstate.snapshots.files.reader``): it reports
exactly what ``Snapshot.from_json`` reports (lenient: keeps exactly what
``normalize_snapshot`` keeps), in tiny windows and large, with its cross-entry checks on
hashes held in memory or spilled to disk. Pure Python; no database."""

from __future__ import annotations

import copy
import io
import json
import random
from typing import Any

import pytest

from chatstate.snapshots.files import hashruns, seen
from chatstate.snapshots.files.hashruns import HashRuns
from chatstate.snapshots.files.reader import SnapshotFile
from chatstate.snapshots.snapshot import (
    InvalidSnapshot,
    Snapshot,
    normalize_snapshot_counting,
    normalize_snapshot_drops,
)

T = "2030-01-02T03:04:05Z"
GOOD = Snapshot(
    subscriptions={"t1", "t2"},
    dedupe={("s", "m1"), ("s", "m2")},
    dedupe_order=[("s", "m1"), ("s", "m2")],
    thread_state={"t1": {"n": 1}},
    locks={"k": {"owner": "o", "strategy": "queue", "metadata": {"x": "\u2028"}}},
    claims={("s", "m2"): {"owner": "w", "thread_id": "t1", "expires_at": T}},
    lists={"history:t1": {"items": [{"role": "user"}, "hi"], "expires_at": None}},
    outbox=[
        {
            "key": "r1",
            "thread_id": "t1",
            "payload": {"text": "a"},
            "attempts": 0,
            "dead": False,
            "created_at": T,
        },
        {
            "key": "r2",
            "thread_id": "t1",
            "payload": None,
            "attempts": 2,
            "dead": True,
            "created_at": T,
            "due_at": T,
        },
    ],
).to_dict()
VALUES: list[Any] = [
    None, 1, "", "x", [], {}, ["s", "m1"], ["s", "m2"], ["s"], "a" * 300, "nul\x00", "\ud800",
    {"owner": "o", "strategy": "bogus", "metadata": {}}, {"a\x00": 1}, {"n": [["\udc00"]]},
    {"key": ["s", "m1"], "owner": "w", "thread_id": "t", "expires_at": T},
    {"key": ["s", "zz"], "owner": "w", "thread_id": "t", "expires_at": T},
    {"key": ["s", "m2"], "owner": "w", "thread_id": "t", "expires_at": "later"},
    {"items": [1, [2]], "expires_at": None}, {"items": [{"a": "\udc00"}], "expires_at": T},
    {"items": "x", "expires_at": None}, {"items": [], "expires_at": "soon", "x": 1},
    {"key": "r1", "thread_id": "t1", "payload": [], "attempts": 1, "dead": False,
     "created_at": T}, {"key": "r3", "thread_id": "", "payload": 1, "attempts": -2,
     "dead": False, "created_at": T}, {"key": "r4", "thread_id": "t", "payload": {},
     "attempts": 0, "dead": True, "created_at": T, "due_at": "x", "y": 2},
]  # fmt: skip


def damaged(rnd: random.Random) -> str:
    """GOOD with one to three values replaced and, half the time, a syntax error."""
    doc = copy.deepcopy(GOOD)
    for _ in range(rnd.randint(1, 3)):
        key = rnd.choice([*doc, "extra"])
        if isinstance(doc.get(key), list) and doc[key] and rnd.random() < 0.6:
            doc[key][rnd.randrange(len(doc[key]))] = copy.deepcopy(rnd.choice(VALUES))
        elif isinstance(doc.get(key), list) and rnd.random() < 0.5:
            doc[key].append(copy.deepcopy(rnd.choice([*doc[key], *VALUES])))  # duplicates
        elif isinstance(doc.get(key), dict) and rnd.random() < 0.6:
            doc[key][rnd.choice(["t1", "", "new", "k"])] = copy.deepcopy(rnd.choice(VALUES))
        else:
            doc[key] = copy.deepcopy(rnd.choice(VALUES))
    text = json.dumps(doc, indent=rnd.choice([None, 1]), ensure_ascii=False)
    if rnd.random() < 0.5:
        at = rnd.randrange(len(text))
        text = text[:at] + rnd.choice(["", ",", "]", '"', "}", " x", "NaN"]) + text[at + 1 :]
    return text


@pytest.mark.parametrize("run, limit", [(None, None), (2, None), (None, 0), (2, 1)])
@pytest.mark.parametrize("seed", range(3))
def test_the_reader_matches_the_snapshot_module(
    seed: int, run: int | None, limit: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damaged texts read in tiny windows and large give exactly the problems of
    ``Snapshot.from_json``; lenient, exactly what ``normalize_snapshot_drops`` keeps and
    drops, and why. ``run=2``: every hash list spills to disk in sorted runs; ``limit=1``:
    ``Seen`` keeps one key per section, so duplicates go through the hashes and the
    ledger."""
    if run is not None:
        monkeypatch.setattr(hashruns, "RUN", run)
    if limit is not None:
        monkeypatch.setattr(seen, "LIMIT", limit)
    rnd = random.Random(seed)
    for _ in range(120):
        text = damaged(rnd)
        data = text.encode("utf-8", "surrogatepass")
        expected: list[str] = []
        try:
            Snapshot.from_json(data)
        except InvalidSnapshot as exc:
            expected = exc.problems
        for chunk in (16, 1 << 20):
            with SnapshotFile(io.BytesIO(data), chunk_size=chunk) as strict:
                assert strict.check().problems == expected, text
                if not expected:
                    assert strict.sections().to_snapshot() == Snapshot.from_json(data)
            if expected and "invalid JSON" in expected[0]:
                continue
            with SnapshotFile(io.BytesIO(data), lenient=True, chunk_size=chunk) as lenient:
                found = lenient.check()
                kept, dropped, drops = normalize_snapshot_drops(json.loads(text))
                assert (found.dropped, lenient.sections().to_snapshot()) == (dropped, kept), text
                assert found.drops == drops, text


DUPLICATES = {
    "subscriptions": ["b", "a", "b", "c", "a", "c", "d"],
    "dedupe": [["s", "3"], ["s", "1"], ["s", "2"], ["s", "1"], ["s", "3"]],
    "dedupe_order": [["s", "2"], ["s", "9"], ["s", "2"], ["s", "9"]],
    "claims": [
        {"key": ["s", "3"], "owner": "w", "thread_id": "t", "expires_at": T},
        {"key": ["s", "3"], "owner": "v", "thread_id": "t", "expires_at": T},
        {"key": ["s", "8"], "owner": "w", "thread_id": "t", "expires_at": T},
        {"key": ["s", "8"], "owner": "", "thread_id": "t", "expires_at": T},
    ],
    "outbox": [
        {"key": k, "thread_id": "t", "payload": i, "attempts": i, "dead": False, "created_at": T}
        for i, k in enumerate(["r2", "r1", "r2", "r3", "r1", "r1"])
    ],
}


@pytest.mark.parametrize("limit", [None, 0, 1, 2])
@pytest.mark.parametrize("run", [None, 2])
def test_duplicates_are_worded_alike_in_memory_and_on_disk(
    limit: int | None, run: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every duplicate is worded as ``Snapshot.from_json`` words it, and repaired as
    ``normalize_snapshot`` repairs it, whether ``Seen`` kept its first occurrence (in
    memory: ``limit=None``), none (``0``: hashes, then the ledger) or some of them."""
    if run is not None:
        monkeypatch.setattr(hashruns, "RUN", run)
    if limit is not None:
        monkeypatch.setattr(seen, "LIMIT", limit)
    text = json.dumps({"format": "chatstate.snapshot", "version": 3, **DUPLICATES})
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json(text)
    with SnapshotFile(io.BytesIO(text.encode())) as strict:
        check = strict.check()
    assert (check.problems, check.total) == (info.value.problems, len(info.value.problems))
    assert "outbox[4].key: duplicate of outbox[1]" in check.problems
    with SnapshotFile(io.BytesIO(text.encode()), lenient=True) as lenient:
        found = lenient.check()
        kept, dropped, drops = normalize_snapshot_drops(json.loads(text))
        assert (found.dropped, found.drops) == (dropped, drops)
        assert lenient.sections().to_snapshot() == kept
    assert [entry["key"] for entry in kept.outbox] == ["r2", "r1", "r3"]


def read(text: str, **options: Any) -> list[str]:
    with SnapshotFile(io.BytesIO(text.encode("utf-8", "surrogatepass")), **options) as file:
        return file.check().problems


def test_lenient_repairs_through_the_exact_path() -> None:
    doc = {
        "subscriptions": ["b", "a", "b", "c", "a"],
        "dedupe": [["s", "3"], ["s", "1"], ["s", "2"], ["s", "1"]],
        "dedupe_order": [["s", "2"], ["s", "9"], ["s", "2"]],
        "claims": [
            {"key": ["s", "3"], "owner": "w", "thread_id": "t", "expires_at": T},
            {"key": ["s", "3"], "owner": "v", "thread_id": "t", "expires_at": T},
            {"key": ["s", "8"], "owner": "w", "thread_id": "t", "expires_at": T},
        ],
    }
    data = json.dumps(doc).encode()
    with SnapshotFile(io.BytesIO(data), lenient=True) as file:
        check = file.check()
        snapshot = file.sections().to_snapshot()
    kept, dropped = normalize_snapshot_counting(doc)
    assert (check.dropped, snapshot) == (dropped, kept)
    assert dropped == 6  # b, a; ["s", "1"]; ["s", "2"]; the second claim of s/3; s/8
    assert snapshot.dedupe_order == [("s", "2"), ("s", "9"), ("s", "1"), ("s", "3")]
    assert list(snapshot.claims) == [("s", "3")]
    assert check.counts["dedupe"] == 4 and check.counts["subscriptions"] == 3


def test_at_most_1000_problems_are_listed_and_all_counted() -> None:
    text = json.dumps({**GOOD, "subscriptions": [""] * 1500, "extra": 1})
    with SnapshotFile(io.BytesIO(text.encode())) as file:
        check = file.check()
    assert check.total == 1501
    assert len(check.problems) == 1000
    assert check.problems[:2] == [
        "extra: unknown key",
        "subscriptions[0]: expected a non-empty string of at most 255 characters",
    ]


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"subscriptions": ["a",]}', None),
        ('{"subscriptions": [],}', None),
        ('{"thread_state": {"t": {},}}', None),
        ('{"thread_state": {"t": {"a": [1,]}}}', None),
        ('{"a": 1 "b": 2}', None),
        ('{"a" 1}', None),
        ("[1, 2", None),
        ('{"format": "chatstate.snapshot"} x', None),
        ('{"locks": {"k": {"a": 1, "a": 2}}}',
         "locks['k'].a: invalid JSON: repeated key 'a': line 1 column 26 (char 25)"),
        ('{"locks": {"k": 1, "k": 2}}',
         "locks['k']: invalid JSON: repeated key 'k': line 1 column 20 (char 19)"),
        ('{"subscriptions": [], "subscriptions": []}',
         "subscriptions: invalid JSON: repeated key 'subscriptions': line 1 column 23 (char 22)"),
        ('{"thread_state": {"t": {"n": [1, -Infinity]}}}',
         "thread_state['t'].n[1]: invalid JSON: -Infinity is not valid JSON: line 1 column 34 "
         "(char 33)"),
    ],
)  # fmt: skip
def test_json_errors_in_the_words_of_this_python(text: str, problem: str | None) -> None:
    """Syntax errors are ``json``'s own message (3.13 words trailing commas its way); the
    values ``json`` would take but a snapshot refuses name their path."""
    if problem is None:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"$: invalid JSON: {exc}"
    assert read(text) == read(text, chunk_size=16) == [problem]
    with pytest.raises(InvalidSnapshot) as info:
        Snapshot.from_json(text)
    assert info.value.problems == [problem]


# -- the hashes --------------------------------------------------------------------------


@pytest.mark.parametrize("run", [3, 1000])
def test_hash_runs_answer_in_memory_and_on_disk(run: int) -> None:
    keys = [("s", str(i)) for i in range(50)]
    runs, order = HashRuns(run), HashRuns(run)
    for key in keys:
        runs.add(key)
    for key in reversed(keys):
        order.add_sum(key)
    assert list(runs.sorted()) == sorted(hash(key) for key in keys)
    assert not runs.repeats()
    assert runs.sums == order.sums
    assert runs.contains_all(hash(key) for key in keys[:5])
    assert not runs.contains_all([hash(("s", "x"))])
    runs.add(("s", "7"))
    assert runs.repeats()
    assert runs.sums != order.sums
    many = HashRuns(run)
    many.extend(keys)
    assert list(many.sorted()) == sorted(hash(key) for key in keys)
    assert many.sums == (50, 0)  # extend counts, and leaves the hashes out of the total
    for hashes in (runs, order, many):
        hashes.close()
