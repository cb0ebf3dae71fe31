"""The streaming reader of ``chatstate_restore`` (``chatstate.transfer.reader``): it reports
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

from chatstate.snapshot import InvalidSnapshot, Snapshot, normalize_snapshot_counting
from chatstate.transfer import hashruns
from chatstate.transfer.hashruns import HashRuns, all_found, has_repeats
from chatstate.transfer.reader import SnapshotFile

T = "2030-01-02T03:04:05Z"
GOOD = Snapshot(
    subscriptions={"t1", "t2"},
    dedupe={("s", "m1"), ("s", "m2")},
    dedupe_order=[("s", "m1"), ("s", "m2")],
    thread_state={"t1": {"n": 1}},
    locks={"k": {"owner": "o", "strategy": "queue", "metadata": {"x": "\u2028"}}},
    claims={("s", "m2"): {"owner": "w", "thread_id": "t1", "expires_at": T}},
).to_dict()
VALUES: list[Any] = [
    None, 1, "", "x", [], {}, ["s", "m1"], ["s", "m2"], ["s"], "a" * 300, "nul\x00", "\ud800",
    {"owner": "o", "strategy": "bogus", "metadata": {}}, {"a\x00": 1}, {"n": [["\udc00"]]},
    {"key": ["s", "m1"], "owner": "w", "thread_id": "t", "expires_at": T},
    {"key": ["s", "zz"], "owner": "w", "thread_id": "t", "expires_at": T},
    {"key": ["s", "m2"], "owner": "w", "thread_id": "t", "expires_at": "later"},
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


@pytest.mark.parametrize("run", [None, 2])
@pytest.mark.parametrize("seed", range(3))
def test_the_reader_matches_the_snapshot_module(
    seed: int, run: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damaged texts read in tiny windows and large give exactly the problems of
    ``Snapshot.from_json``; lenient, exactly what ``normalize_snapshot_counting`` keeps and
    drops. ``run=2``: every hash list spills to disk in sorted runs."""
    if run is not None:
        monkeypatch.setattr(hashruns, "RUN", run)
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
                kept, dropped = normalize_snapshot_counting(json.loads(text))
                assert (found.dropped, lenient.sections().to_snapshot()) == (dropped, kept), text


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
def test_hash_runs_sort_in_memory_and_on_disk(run: int) -> None:
    keys = [("s", str(i)) for i in range(50)]
    runs, order = HashRuns(run), HashRuns(run)
    for key in keys:
        runs.add(key)
    for key in reversed(keys):
        order.add_sum(key)
    assert list(runs.sorted()) == sorted(hash(key) for key in keys)
    assert not has_repeats(runs.sorted())
    assert runs.sums == order.sums
    assert all_found(sorted(hash(key) for key in keys[:5]), runs.sorted())
    assert not all_found([hash(("s", "x"))], runs.sorted())
    runs.add(("s", "7"))
    assert has_repeats(runs.sorted())
    assert runs.sums != order.sums
    runs.close()
