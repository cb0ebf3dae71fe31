"""Hostile files: ``chatstate_restore`` stays bounded (no value larger than
``--max-value-bytes`` is read, a window grows geometrically, garbage is never read whole)
and says what is wrong with a JSON path or a line and column, never a traceback. Sizes here
are small; ``bench/hostile_restore.py`` measures time and memory up to 1 GB."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from chatstate.snapshot import Snapshot
from chatstate.transfer.reader import SnapshotFile
from tests.conformance.helpers import plain
from tests.snapshot_data import DESIGN_EXAMPLE
from tests.test_commands_restore import restore
from tests.test_commands_snapshot import namespace, populate

pytestmark = pytest.mark.django_db(transaction=True)

HEAD = '{"format":"chatstate.snapshot","version":2,'


class Counting(io.BytesIO):
    """A file that remembers the size of every read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.reads.append(len(data))
        return data


def check(data: bytes, **options: Any) -> tuple[list[str], Counting]:
    raw = Counting(data)
    with SnapshotFile(raw, **options) as file:
        return file.check().problems, raw


def refused(tmp_path: Path, text: str | bytes, *args: str) -> list[str]:
    """The problems ``chatstate_restore`` prints for ``text``; the namespace unchanged."""
    path = tmp_path / "in.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    store = populate(namespace())
    before = store.snapshot()
    with pytest.raises(CommandError, match="not a valid snapshot.*nothing was changed"):
        restore(path, store.namespace, *args, stderr=(err := io.StringIO()))
    assert store.snapshot() == before
    return err.getvalue().splitlines()


# -- --max-value-bytes -------------------------------------------------------------------


def test_a_value_larger_than_the_limit_is_refused_with_its_path(tmp_path: Path) -> None:
    state = {"log": ["é" * 100] * 4}  # 423 characters, 823 bytes
    text = Snapshot(thread_state={"t1": state, "t2": {}}).to_json()
    at = text.index('{"log')
    assert refused(tmp_path, text, "--max-value-bytes", "800") == [
        "thread_state['t1']: value larger than 800 bytes (the limit: --max-value-bytes): "
        f"line 1 column {at + 1} (char {at})"
    ]
    target = namespace()
    restore(tmp_path / "in.json", target, "--max-value-bytes", "1K")
    assert Snapshot.from_json(text) == populate_free(target)


def populate_free(ns: str) -> Snapshot:
    from chatstate.adapters.database import DatabaseStateAdapter

    return DatabaseStateAdapter(namespace=ns).snapshot()


@pytest.mark.parametrize("value", ["0", "-5", "many", "1T", ""])
def test_the_limit_must_be_a_size(tmp_path: Path, value: str) -> None:
    with pytest.raises(CommandError, match="--max-value-bytes"):
        restore(tmp_path / "x.json", namespace(), "--max-value-bytes", value)


def test_the_default_limit_is_one_mebibyte(tmp_path: Path) -> None:
    big = HEAD + '"thread_state":{"t":{"s":"' + "x" * (1 << 20) + '"}}}'
    [problem] = refused(tmp_path, big)
    assert problem.startswith("thread_state['t']: value larger than 1,048,576 bytes")


# -- one huge string, unterminated or not ---------------------------------------------------


@pytest.mark.parametrize("end", ['"]}', ""])
def test_a_huge_string_is_read_in_a_few_growing_reads(end: str) -> None:
    data = (HEAD + '"subscriptions":["' + "x" * (3 << 20) + end).encode()
    problems, raw = check(data, chunk_size=1 << 12, max_value=1 << 20)
    at = len(HEAD + '"subscriptions":[')
    assert problems == [
        "subscriptions[0]: value larger than 1,048,576 bytes (the limit: --max-value-bytes): "
        f"line 1 column {at + 1} (char {at})"
    ]
    # The window doubles (never a rescan per chunk) up to the limit; then the rest of the
    # file is only checked to be UTF-8 (as json.loads would), a mebibyte at a time.
    assert len(raw.reads) <= 12 + 3
    assert max(raw.reads) <= 2 << 20


def test_an_unterminated_string_within_the_limit_is_a_syntax_error() -> None:
    data = (HEAD + '"subscriptions":["' + "x" * (1 << 20)).encode()
    problems, raw = check(data, chunk_size=1 << 12, max_value=4 << 20)
    at = len(HEAD + '"subscriptions":[')
    message = f"Unterminated string starting at: line 1 column {at + 1} (char {at})"
    assert problems == [f"$: invalid JSON: {message}"]
    assert len(raw.reads) <= 14


# -- garbage, nesting, numbers ----------------------------------------------------------------


def test_garbage_is_never_read_whole(tmp_path: Path) -> None:
    data = b"GARBAGE " * (1 << 19)  # 4 MiB
    problems, raw = check(data, chunk_size=1 << 16)
    assert problems == ["$: invalid JSON: Expecting value: line 1 column 1 (char 0)"]
    # Read a chunk, or (checking the rest is UTF-8, as json.loads would) a mebibyte, at a time.
    assert max(raw.reads) <= 1 << 20
    assert refused(tmp_path, data) == problems
    assert refused(tmp_path, b"[" + b"1," * 100_000 + b"2]") == ["$: expected an object"]


@pytest.mark.parametrize("depth", [513, 100_000])
def test_deep_nesting_is_an_error_with_a_path(tmp_path: Path, depth: int) -> None:
    text = HEAD + '"thread_state":{"t":{"a":' + "[" * depth + "]" * depth + "}}}"
    at = len(HEAD + '"thread_state":{"t":{"a":') + 512 - 3  # 3 objects around the array
    assert refused(tmp_path, text) == [
        "thread_state['t'].a[0][0][0][0][0]...[0][0][0]: invalid JSON: nested deeper than 512 "
        f"levels: line 1 column {at + 1} (char {at})"
    ]


def test_huge_integers_are_an_error_with_a_path(tmp_path: Path) -> None:
    text = HEAD + '"thread_state":{"t":{"n":' + "9" * 100_000 + "}}}"
    at = len(HEAD + '"thread_state":{"t":{"n":')
    assert refused(tmp_path, text) == [
        "thread_state['t'].n: invalid JSON: integer of 100000 digits (at most 4300): "
        f"line 1 column {at + 1} (char {at})"
    ]
    huge = HEAD + '"subscriptions":[' + "9" * (3 << 20) + "]}"
    [problem] = refused(tmp_path, huge)
    assert problem.startswith("subscriptions[0]: invalid JSON: integer of at least ")


# -- many problems; old files; claims ---------------------------------------------------------


def test_a_thousand_problems_are_listed_and_the_rest_counted(tmp_path: Path) -> None:
    text = json.dumps({"format": "chatstate.snapshot", "version": 2, "subscriptions": [""] * 1200})
    path = tmp_path / "in.json"
    path.write_text(text)
    with pytest.raises(CommandError) as info:
        restore(path, namespace(), stderr=(err := io.StringIO()))
    assert "(1,200 problems, the first 1,000 listed above)" in str(info.value)
    lines = err.getvalue().splitlines()
    assert len(lines) == 1001 and lines[-1] == "... and 200 more problems, not listed"


def test_a_version_1_file_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "v1.json"
    path.write_text(DESIGN_EXAMPLE)
    target = namespace()
    restore(path, target)
    assert plain(populate_free(target)) == plain(Snapshot.from_json(DESIGN_EXAMPLE))


def test_a_dry_run_counts_claims(tmp_path: Path) -> None:
    snapshot = Snapshot(
        dedupe={("s", "m")},
        dedupe_order=[("s", "m")],
        claims={("s", "m"): {"owner": "w", "thread_id": "t", "expires_at": "2030-01-01T00:00:00Z"}},
    )
    path = tmp_path / "c.json"
    path.write_text(snapshot.to_json(indent=2))
    out, _ = restore(path, namespace(), "--dry-run")
    assert "  claims         added 1, replaced 0, removed 0, unchanged 0" in out.splitlines()
