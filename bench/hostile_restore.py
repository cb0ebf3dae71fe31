"""Hostile snapshot files against ``chatstate_restore`` (not a test): time and peak RSS.

Writes each file into a temporary directory (one at a time, removed after its run), runs
``manage.py chatstate_restore --dry-run FILE`` under ``/usr/bin/time -v`` against a fresh,
migrated SQLite database (the example project's settings), and prints one row per case:
size, wall seconds, peak RSS and the command's verdict (its first problem line, or what it
would restore). The valid files are also restored for real into the SQLite database.

    .venv/bin/python bench/hostile_restore.py [--size 1G] [--keys-size 256M] [--only CASE ...]
        [--max-value-bytes N] [--no-real] [--dir DIR]

Cases (``--size`` each unless said):

- ``garbage``: text that does not start with ``{``;
- ``huge-string``: one thread state holding one string of the whole size, closed;
- ``unterminated``: the same string, never closed;
- ``deep-nesting``: a thread state nesting ``[`` for the whole size;
- ``huge-integer``: a thread state holding one integer of the whole size;
- ``repeated-id``: ``subscriptions`` repeating one id (``["ab","ab",…]``, issue 19): refused
  at its first ``--max-problems`` duplicates;
- ``valid-states``: a valid snapshot of 10 KB thread states (plus 100,000 dedupe keys);
- ``valid-keys`` (``--keys-size``): a valid snapshot of dedupe keys only (the cross-entry
  checks' worst case: every key hashed, sorted in runs on disk).

Targets (issue 11): peak RSS under 100 MB and time linear in the size, for any input up to
1 GB (a real restore of a large valid file also holds the load's own cost: on SQLite one
batch of 5,000 rows at a time).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAD = b'{"format":"chatstate.snapshot","version":2,'
CHUNK = 1 << 20
T = "2030-01-01T00:00:00Z"


def size(text: str) -> int:
    match = re.fullmatch(r"([0-9.]+)\s*([KMG]?)", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(float(match[1]) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match[2]])


def repeat(unit: bytes, total: int) -> Iterator[bytes]:
    """``unit`` repeated to ``total`` bytes, a mebibyte at a time."""
    block = unit * max(1, CHUNK // len(unit))
    left = total
    while left > 0:
        part = block[:left]
        left -= len(part)
        yield part


def garbage(n: int) -> Iterator[bytes]:
    yield from repeat(b"GARBAGE, not a snapshot; ", n)


def huge_string(n: int, closed: bool = True) -> Iterator[bytes]:
    yield HEAD + b'"thread_state":{"t":{"s":"'
    yield from repeat(b"x", n)
    if closed:
        yield b'"}}}'


def deep_nesting(n: int) -> Iterator[bytes]:
    yield HEAD + b'"thread_state":{"t":{"a":'
    yield from repeat(b"[", n)


def huge_integer(n: int) -> Iterator[bytes]:
    yield HEAD + b'"thread_state":{"t":{"n":'
    yield from repeat(b"7", n)
    yield b"}}}"


def repeated_id(n: int) -> Iterator[bytes]:
    yield HEAD + b'"subscriptions":['
    yield from repeat(b'"ab",', n)
    yield b'"ab"]}'


def valid_states(n: int) -> Iterator[bytes]:
    """Sections in the order the writer writes them (keys sorted): valid and sorted."""
    keys = 100_000
    yield b'{"channel_state":{},"claims":[{"expires_at":"' + T.encode()
    yield b'","key":["slack","m0000000"],"owner":"w1","thread_id":"t0000000"}],"dedupe":['
    yield ",".join(f'["slack","m{i:07d}"]' for i in range(keys)).encode()
    yield b'],"dedupe_order":['
    yield ",".join(f'["slack","m{i:07d}"]' for i in range(keys)).encode()
    yield b'],"format":"chatstate.snapshot","locks":{},"pending_locks":{},"subscriptions":[],'
    yield b'"thread_state":{'
    body = ('{"log":[' + ",".join(['"' + "hello world " * 40 + '"'] * 20) + '],"turns":3}').encode()
    count = max(1, (n - 4 * keys * 20) // (len(body) + 12))
    for i in range(count):
        yield (b"," if i else b"") + f'"t{i:07d}":'.encode() + body
    yield b'},"version":2}'


def valid_keys(n: int) -> Iterator[bytes]:
    count = max(1, n // 38)
    yield b'{"channel_state":{},"claims":[],"dedupe":['
    for part in _keys(count):
        yield part
    yield b'],"dedupe_order":['
    for part in _keys(count):
        yield part
    yield b'],"format":"chatstate.snapshot","locks":{},"pending_locks":{},"subscriptions":[],'
    yield b'"thread_state":{},"version":2}'


def _keys(count: int) -> Iterator[bytes]:
    for start in range(0, count, 50_000):
        stop = min(count, start + 50_000)
        text = ",".join(f'["slack","m{i:09d}"]' for i in range(start, stop))
        yield (b"," if start else b"") + text.encode()


CASES: dict[str, tuple[Callable[[int], Iterator[bytes]], bool]] = {
    "garbage": (garbage, False),
    "huge-string": (huge_string, False),
    "unterminated": (lambda n: huge_string(n, closed=False), False),
    "deep-nesting": (deep_nesting, False),
    "huge-integer": (huge_integer, False),
    "repeated-id": (repeated_id, False),
    "valid-states": (valid_states, True),
    "valid-keys": (valid_keys, True),
}


def write(path: Path, parts: Iterator[bytes]) -> int:
    with open(path, "wb") as f:
        for part in parts:
            f.write(part)
    return path.stat().st_size


def env(database: Path) -> dict[str, str]:
    return {**os.environ, "EXAMPLE_SQLITE_PATH": str(database), "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "example_project.settings"}  # fmt: skip


def timed(args: list[str], database: Path) -> tuple[float, float, int, str, str]:
    """``(seconds, peak RSS MB, exit status, stdout, stderr)`` of one command."""
    start = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, str(ROOT / "manage.py"), *args],
        env=env(database), cwd=ROOT, capture_output=True, text=True, errors="replace",
    )  # fmt: skip
    seconds = time.monotonic() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    err = done.stderr.split("\tCommand being timed")[0]
    return seconds, int(rss[1]) / 1024 if rss else float("nan"), done.returncode, done.stdout, err


def verdict(code: int, out: str, err: str) -> str:
    if code == 0:
        rows = [line.split(None, 1) for line in out.splitlines() if line.startswith("  ")]
        if "Dry run" in out:  # "  dedupe   added 100,000, replaced 0, ..."
            added = [(name, rest.split(", ")[0].split()[-1]) for name, rest in rows]
            return "valid; would add " + ", ".join(f"{n} {a}" for n, a in added if a != "0")
        loaded = [(name, rest.split()[0]) for name, rest in rows]
        return "restored " + ", ".join(f"{n} {c}" for n, c in loaded if c != "0")
    first = next((line for line in err.splitlines() if line.strip()), "(no output)")
    return first if len(first) <= 150 else first[:147] + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=size, default=size("1G"))
    parser.add_argument("--keys-size", type=size, default=size("256M"))
    parser.add_argument("--only", nargs="*", choices=list(CASES))
    parser.add_argument("--dir", help="where to write the files (default: a temporary dir)")
    parser.add_argument("--no-real", action="store_true", help="dry runs only")
    parser.add_argument(
        "--max-value-bytes", help="passed on to chatstate_restore (default: its own, 1M)"
    )
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile-", dir=options.dir))
    database = work / "db.sqlite3"
    try:
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"],
                       env=env(database), cwd=ROOT, check=True)  # fmt: skip
        print("| case | run | file size | seconds | peak RSS MB | result |")
        print("| --- | --- | ---: | ---: | ---: | --- |")
        for name in options.only or CASES:
            make, valid = CASES[name]
            path = work / f"{name}.json"
            n = options.keys_size if name == "valid-keys" else options.size
            file_size = write(path, make(n))
            runs = [("dry run", ["--dry-run"])]
            if valid and not options.no_real:
                runs.append(("restore", []))
            limit = (
                ["--max-value-bytes", options.max_value_bytes] if options.max_value_bytes else []
            )
            for label, extra in runs:
                extra = [*extra, *limit]
                seconds, rss, code, out, err = timed(
                    ["chatstate_restore", str(path), "--namespace", f"hostile-{name}", *extra],
                    database,
                )
                print(f"| {name} | {label} | {file_size / 2**20:,.0f} MiB | {seconds:,.1f} | "
                      f"{rss:,.0f} | {verdict(code, out, err)} |", flush=True)  # fmt: skip
            path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
