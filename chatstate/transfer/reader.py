"""``SnapshotFile``: a snapshot JSON file checked, then read, section by section.

``check()`` (pass 1) walks the whole file once and reports what ``Snapshot.from_json`` would
report of it — the same problems, with the same JSON paths, in the same order — or, lenient,
how many entries ``normalize_snapshot`` would drop; it keeps the file offset of each
section. ``sections()`` (pass 2) then streams the sections from those offsets. Neither pass
holds the file or a whole section in memory: entries are checked in chunks with the very
checks of :mod:`chatstate.snapshot`, and the cross-entry rules of the big arrays
(no duplicates, ``dedupe`` and ``dedupe_order`` holding the same keys) are checked on 64-bit
hashes, 8 bytes a key. Only when those hashes show a problem (or, lenient, a repair) are the
arrays read whole and handed to the snapshot module's own checks, so the wording is exact.
"""

from __future__ import annotations

import json
import operator
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any, BinaryIO

from chatstate.snapshot import (
    FORMAT,
    VERSION,
    Snapshot,
    _as_dedupe_key,
    _as_id,
    _Scan,
    normalize_snapshot_counting,
)
from chatstate.transfer.jsonstream import JsonStream, repeated_key
from chatstate.transfer.sections import SECTIONS, SnapshotSections

ARRAYS = ("subscriptions", "dedupe", "dedupe_order")
MAPS = ("thread_state", "channel_state", "locks", "pending_locks")
_GROUPS = (("subscriptions",), ("dedupe", "dedupe_order"))
_CHUNK = 2000
_HEADER = {"format": FORMAT, "version": VERSION}


@dataclass
class Check:
    """What pass 1 found. ``problems``: strict problems (``[]`` when valid), or the one
    ``"$: invalid JSON: …"`` problem; ``dropped``: lenient drop count; ``warnings``: header
    problems a lenient read ignores; ``counts``: entries per section that would be loaded."""

    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def open_source(path: str, stdin: IO[Any] | None = None) -> BinaryIO:
    """A seekable binary file for ``path``; ``"-"`` spools ``stdin`` (default: the process's
    standard input; a text stream is encoded as UTF-8) to a temporary file, since both passes
    need to read it. ``OSError`` when the file cannot be opened."""
    if path != "-":
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    source: IO[Any] = stdin if stdin is not None else sys.stdin
    source = getattr(source, "buffer", source)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned open
    while chunk := source.read(1 << 20):
        spool.write(chunk.encode("utf-8", "surrogatepass") if isinstance(chunk, str) else chunk)
    spool.seek(0)
    return spool


class SnapshotFile:
    """The JSON text of ``raw`` (a seekable binary file), read as a snapshot in two passes."""

    def __init__(self, raw: BinaryIO, lenient: bool = False, chunk_size: int = 1 << 20) -> None:
        self.raw = raw
        self.lenient = lenient
        self.chunk_size = chunk_size
        self.offsets: dict[str, int] = {}  # streamed sections: file offset of the value
        self.small: dict[str, Any] = {}  # other sections (wrong type): the decoded value
        self.repaired = Snapshot()  # lenient: the arrays normalize rewrote…
        self.repaired_names: set[str] = set()  # …and which they are
        self.whole: Snapshot | None = None  # the text is not an object: read whole
        self.checked: Check | None = None

    # -- pass 1 --------------------------------------------------------------------------

    def check(self) -> Check:
        """Pass 1: what ``Snapshot.from_json`` (or, lenient, ``normalize_snapshot``) makes of
        the text. Never raises for bad content; ``OSError`` if the file cannot be read."""
        try:
            result = self._check()
        except (ValueError, RecursionError) as exc:
            result = Check(problems=[f"$: invalid JSON: {exc}"])
        self.checked = result
        return result

    def _stream(self, offset: int = 0, trusted: bool = False) -> JsonStream:
        return JsonStream(self.raw, offset, self.chunk_size, trusted)

    def _check(self) -> Check:
        stream = self._stream()
        if stream.peek() != "{":
            return self._check_whole()
        stream.pos += 1
        strict = not self.lenient
        top: dict[str, Any] = {}  # header values, unknown keys (as None)
        facts: dict[str, _ArrayFacts] = {}
        maps: dict[str, tuple[list[str], int, int]] = {}
        seen: set[str] = set()
        repeated: str | None = None
        for key in stream.members():
            if key in seen and repeated is None:
                repeated = key
            seen.add(key)
            char = stream.peek()
            if key in ARRAYS and char == "[":
                self.offsets[key] = stream.tell()
                stream.pos += 1
                facts[key] = _ArrayFacts.scan(key, stream.elements())
            elif key in MAPS and char == "{":
                self.offsets[key] = stream.tell()
                stream.pos += 1
                maps[key] = _check_map(key, stream.entries(), strict)
            elif key in SECTIONS:
                self.small[key] = stream.value()
            else:
                value = stream.value()
                top[key] = value if key in _HEADER else None  # unknown: only its name counts
        if repeated is not None:
            raise repeated_key(repeated)
        if stream.peek() != "":
            raise stream.error("Extra data", stream.pos)

        result = Check()
        head = _Scan(strict)
        head.run(top)  # unknown keys, then (strict) format and version
        result.problems.extend(head.problems)
        if self.lenient:
            result.dropped += len(head.problems)
            result.problems = []
            warn = _Scan(True)
            warn.check_header(top)
            result.warnings = warn.problems
        for group in _GROUPS:
            self._check_group(group, facts, result)
        for name in MAPS:
            if name in maps:
                problems, dropped, count = maps[name]
            else:
                problems, dropped, count = _check_value(name, self.small, strict)
            result.problems.extend(problems)
            result.dropped += dropped
            result.counts[name] = count
        return result

    def _check_group(
        self, group: tuple[str, ...], facts: dict[str, _ArrayFacts], result: Check
    ) -> None:
        """The array sections of ``group``: clean by their hashes, else read whole and
        checked (or, lenient, repaired) by the snapshot module itself."""
        streamed = [facts[name] for name in group if name in facts]
        clean = (
            all(name in facts or name not in self.small for name in group)
            and all(f.clean for f in streamed)
            and (len(group) == 1 or _same_keys(*(facts.get(n) for n in group)))
        )
        if clean:
            for name in group:
                result.counts[name] = facts[name].count if name in facts else 0
            return
        obj = dict(_HEADER)
        for name in group:
            if name in facts:
                obj[name] = self._stream(self.offsets[name]).value()
            elif name in self.small:
                obj[name] = self.small[name]
        scan = _Scan(not self.lenient)
        repaired = scan.run(obj)
        if self.lenient:
            result.dropped += len(scan.problems)
            for name in group:
                setattr(self.repaired, name, getattr(repaired, name))
                self.repaired_names.add(name)
                result.counts[name] = len(getattr(repaired, name))
        else:
            result.problems.extend(scan.problems)

    def _check_whole(self) -> Check:
        """The text is not a JSON object: read it whole (it cannot hold a snapshot)."""
        self.raw.seek(0)
        text = self.raw.read()
        if not self.lenient:
            try:
                Snapshot.from_json(text)
            except ValueError as exc:
                return Check(problems=list(getattr(exc, "problems", [f"$: {exc}"])))
            raise AssertionError("unreachable: a non-object is never a valid snapshot")
        obj = json.loads(text)
        self.whole, dropped = normalize_snapshot_counting(obj)
        return Check(dropped=dropped, counts=dict.fromkeys(SECTIONS, 0))

    # -- pass 2 --------------------------------------------------------------------------

    def sections(self) -> SnapshotSections:
        """Pass 2, after a ``check()`` without problems: the sections, streamed from the
        file (lenient: as ``normalize_snapshot`` keeps them). ``dedupe`` is left empty:
        ``dedupe_order`` holds the same keys."""
        checked = self.checked
        if checked is None or checked.problems:
            raise ValueError("sections() needs a check() that found no problems")
        if self.whole is not None:
            return SnapshotSections.from_snapshot(self.whole)
        sections = SnapshotSections(counts={**dict.fromkeys(SECTIONS, 0), **checked.counts})
        sections.counts["dedupe"] = sections.counts.get("dedupe_order", 0)
        sections.subscriptions = self._array("subscriptions", lambda v: v)
        sections.dedupe_order = self._array("dedupe_order", lambda v: (v[0], v[1]))
        for name in MAPS:
            setattr(sections, name, self._map(name))
        return sections

    def _array(self, name: str, convert: Callable[[Any], Any]) -> Iterator[Any]:
        if name in self.repaired_names:
            values = getattr(self.repaired, name)
            yield from sorted(values) if isinstance(values, set) else values
            return
        if name not in self.offsets:
            return
        stream = self._stream(self.offsets[name], trusted=True)
        stream.pos += 1 if stream.peek() == "[" else 0
        for value in stream.elements():
            yield convert(value)

    def _map(self, name: str) -> Iterator[tuple[str, Any]]:
        if name not in self.offsets:
            return
        stream = self._stream(self.offsets[name], trusted=True)
        stream.pos += 1 if stream.peek() == "{" else 0
        entries = stream.entries()
        if not self.lenient:
            yield from entries
            return
        while chunk := dict(islice(entries, _CHUNK)):
            kept = _Scan(False).run({**_HEADER, name: chunk})
            yield from getattr(kept, name).items()


# -- pass 1 helpers ----------------------------------------------------------------------


class _ArrayFacts:
    """What one streamed array section holds, as far as its cross-entry rules go."""

    def __init__(self) -> None:
        self.count = 0
        self.invalid = 0
        self.hashes = array("q")

    @classmethod
    def scan(cls, name: str, elements: Iterable[Any]) -> _ArrayFacts:
        facts = cls()
        convert: Callable[[object], Any] = _as_id if name == "subscriptions" else _as_dedupe_key
        append = facts.hashes.append
        for raw in elements:
            value = convert(raw)
            if value is None:
                facts.invalid += 1
            else:
                append(hash(value))
        facts.count = len(facts.hashes)
        ordered = sorted(facts.hashes)
        facts.hashes = array("q", ordered)
        del ordered
        return facts

    @property
    def clean(self) -> bool:
        """No invalid entry and, by hash, no duplicate."""
        h = self.hashes
        return not self.invalid and not any(map(operator.eq, h, islice(h, 1, None)))


def _same_keys(a: _ArrayFacts | None, b: _ArrayFacts | None) -> bool:
    """Whether two clean key arrays (``None``: missing, empty) hold the same keys by hash."""
    return (a.hashes if a else array("q")) == (b.hashes if b else array("q"))


def _check_map(
    name: str, entries: Iterator[tuple[str, Any]], strict: bool
) -> tuple[list[str], int, int]:
    """``(problems, dropped, kept)`` of a streamed object section, checked in chunks."""
    problems: list[str] = []
    kept = 0
    while chunk := dict(islice(entries, _CHUNK)):
        scan = _Scan(strict)
        result = scan.run({**_HEADER, name: chunk})
        problems.extend(scan.problems)
        kept += len(getattr(result, name))
    return (problems, 0, kept) if strict else ([], len(problems), kept)


def _check_value(name: str, small: dict[str, Any], strict: bool) -> tuple[list[str], int, int]:
    """``(problems, dropped, kept)`` of an object section read whole (or missing)."""
    if name not in small:
        return [], 0, 0
    scan = _Scan(strict)
    result = scan.run({**_HEADER, name: small[name]})
    kept = len(getattr(result, name))
    return (scan.problems, 0, kept) if strict else ([], len(scan.problems), kept)
