"""Hostile files: ``chatstate_restore`` stays bounded (no value larger than
``--max-value-bytes`` is read, a window grows geometrically, garbage is never read whole)
and says what is wrong with a JSON path or a line and column, never a traceback. Sizes here
are small; ``bench/hostile_restore.py`` measures time and memory up to 1 GB."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from chatstate.snapshots.files.reader import SnapshotFile
from chatstate.snapshots.snapshot import Snapshot
from chatstate.testing.helpers import plain
from tests.commands.test_commands_restore import restore
from tests.commands.test_commands_snapshot import namespace, populate
from tests.snapshots.data import DESIGN_EXAMPLE

pytestmark = pytest.mark.django_db(transaction=True)

HEAD = '{"format":"chatstate.snapshot","version":2,'
ROOT = Path(__file__).resolve().parents[2]


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
    store = populate(namespace())  # live (just written): --force, so that the file decides
    before = store.snapshot()
    with pytest.raises(CommandError, match="not a valid snapshot.*nothing was changed"):
        restore(path, store.namespace, "--force", *args, stderr=(err := io.StringIO()))
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
        restore(path, namespace(), "--max-problems", "5000", stderr=(err := io.StringIO()))
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


# -- --max-problems: the first problems, early --------------------------------------------------


def test_checking_stops_at_max_problems_and_says_so(tmp_path: Path) -> None:
    text = json.dumps({"format": "chatstate.snapshot", "version": 3, "subscriptions": [""] * 10})
    path = tmp_path / "in.json"
    path.write_text(text)
    with pytest.raises(CommandError) as info:
        restore(path, namespace(), "--max-problems", "3", stderr=(err := io.StringIO()))
    assert str(info.value) == (
        f"{path} is not a valid snapshot (checking stopped at 3 problems, listed above; the "
        "rest of the file was not checked); nothing was changed"
    )
    assert err.getvalue().splitlines() == [
        *(
            f"subscriptions[{i}]: expected a non-empty string of at most 255 characters"
            for i in range(3)
        ),
        "... checking stopped here (--max-problems 3)",
    ]


@pytest.mark.parametrize("value", ["0", "-3", "many", ""])
def test_max_problems_must_be_a_whole_number(tmp_path: Path, value: str) -> None:
    with pytest.raises(CommandError, match="--max-problems"):
        restore(tmp_path / "x.json", namespace(), "--max-problems", value)


def test_a_duplicate_at_index_1_is_reported_before_the_file_is_read() -> None:
    """The hostile shape of issue 19 (one id repeated): the first duplicates are words the
    moment they are read, so the check stops within the first window."""
    data = (HEAD + '"subscriptions":[' + '"ab",' * (2 << 20) + '"ab"]}').encode()  # 10 MiB
    raw = Counting(data)
    with SnapshotFile(raw, max_problems=100, chunk_size=1 << 16) as file:
        check = file.check()
    assert check.stopped and check.total == 100
    assert check.problems[:2] == [
        "subscriptions[1]: duplicate of subscriptions[0]",
        "subscriptions[2]: duplicate of subscriptions[0]",
    ]
    assert sum(raw.reads) <= 1 << 17  # two windows of 10 MiB
    with SnapshotFile(Counting(data), max_problems=10**9) as file:
        whole = file.check()
    assert (whole.total, whole.stopped, len(whole.problems)) == (2 << 20, False, 1000)
    assert whole.problems[-1] == "subscriptions[1000]: duplicate of subscriptions[0]"


def test_lenient_prints_each_drop_with_its_path_bounded(tmp_path: Path) -> None:
    doc = {"format": "chatstate.snapshot", "version": 3, "subscriptions": ["t", *[""] * 150]}
    path = tmp_path / "in.json"
    path.write_text(json.dumps({**doc, "extra": 1}))
    target = namespace()
    out, _ = restore(path, target, "--lenient")
    lines = out.splitlines()
    assert lines[0] == "Lenient: dropped 151 entries that normalize_snapshot could not keep:"
    assert lines[1:3] == [
        "  dropped extra: unknown key",
        "  dropped subscriptions[1]: expected a non-empty string of at most 255 characters",
    ]
    assert lines[100] == (
        "  dropped subscriptions[99]: expected a non-empty string of at most 255 characters"
    )
    assert lines[101] == "  ... and 51 more"
    assert populate_free(target).subscriptions == {"t"}
    out, _ = restore(path, namespace(), "--lenient", "--max-problems", "2")
    assert out.splitlines()[1:] == [
        "  dropped extra: unknown key",
        "  dropped subscriptions[1]: expected a non-empty string of at most 255 characters",
        "  ... and 149 more",
        *out.splitlines()[4:],
    ]
    assert out.splitlines()[4].startswith("Restored into namespace")


_MEASURED = """
import resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.monotonic() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(done.returncode, f"{seconds:.2f}", peak)
sys.stdout.write(done.stderr)
"""


@pytest.mark.run_on("sqlite")  # one run is enough: the file is refused before any database
def test_a_gibibyte_repeating_one_id_is_refused_in_seconds_in_bounded_memory(
    tmp_path: Path,
) -> None:
    """Issue 19's hostile file at full size: ``chatstate_restore`` (a process of its own,
    measured by a parent that starts nothing else) refuses it in seconds, holding a few
    windows of it, not the file."""
    path = tmp_path / "repeat.json"
    block = b'"ab",' * (1 << 18)  # 1.25 MiB
    with open(path, "wb") as f:
        f.write(HEAD.encode() + b'"subscriptions":[')
        for _ in range((1 << 30) // len(block)):
            f.write(block)
        f.write(b'"ab"]}')
    assert path.stat().st_size > 1 << 30 - 1
    command = [sys.executable, str(ROOT / "manage.py"), "chatstate_restore", str(path)]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    migrate = [sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"]
    subprocess.run(migrate, env=env, cwd=ROOT, check=True, timeout=120)  # a real database
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, *command],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    status, seconds, peak_mb = done.stdout.splitlines()[0].split()
    lines = done.stdout.splitlines()[1:]
    assert status == "1"
    assert lines[:2] == [
        "subscriptions[1]: duplicate of subscriptions[0]",
        "subscriptions[2]: duplicate of subscriptions[0]",
    ]
    assert lines[99:101] == [
        "subscriptions[100]: duplicate of subscriptions[0]",
        "... checking stopped here (--max-problems 100)",
    ]
    assert float(seconds) < 15, seconds  # Django's start included; before: not within 300 s
    assert int(peak_mb) < 150, peak_mb  # the interpreter and Django: about 50 MB


class Repeating(io.RawIOBase):
    """A stream of ``head``, then ``unit`` repeated up to ``size`` bytes (made as read)."""

    def __init__(self, head: bytes, unit: bytes, size: int) -> None:
        self.head, self.block, self.left, self.given = head, unit * (1 << 16), size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = (self.head or self.block)[: min(len(buffer), self.left)]
        self.head = b""
        buffer[: len(data)] = data
        self.left -= len(data)
        self.given += len(data)
        return len(data)


def test_a_pipe_is_refused_early_too(tmp_path: Path) -> None:
    """Through ``-`` the input is copied only as far as it is read: the hostile shape of
    issue 19 is refused after a few mebibytes of a 4 GiB stream."""
    stream = Repeating((HEAD + '"subscriptions":[').encode(), b'"ab",', 4 << 30)
    with pytest.raises(CommandError, match="checking stopped at 100 problems"):
        restore("-", namespace(), stdin=io.BufferedReader(stream), stderr=io.StringIO())
    assert stream.given <= 4 << 20
