"""``SnapshotFile``: a snapshot JSON file checked, then read, section by section.

``check()`` (pass 1) walks the whole file once and reports what ``Snapshot.from_json`` would
report of it — the same problems, with the same JSON paths, in the same order (the first
1,000 listed, all counted) — or, lenient, how many entries ``normalize_snapshot`` would
drop; it keeps the position of each section. ``sections()`` (pass 2) then streams the
sections from those positions. Memory is bounded whatever the file: no value larger than
``max_value`` bytes is read, entries are checked one at a time with the very rules of
:class:`chatstate.snapshot_scan.Scan`, and the cross-entry rules are checked on hashes
(:mod:`~chatstate.transfer.hashruns`); only when those show a problem (or, lenient, a
repair) are the keys loaded into a temporary database (:mod:`~chatstate.transfer.ledger`)
for the exact words (:mod:`~chatstate.transfer.exact`).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, NoReturn

from chatstate.sections import SnapshotSections
from chatstate.snapshot import Snapshot
from chatstate.snapshot_checks import as_dedupe_key, as_id, path_of
from chatstate.snapshot_json import MAP_SECTIONS, problem
from chatstate.snapshot_scan import ARRAYS, MAPS, SECTIONS, TOP_LEVEL, Scan
from chatstate.transfer import exact
from chatstate.transfer.facts import (
    MAX_LISTED,
    ArrayFacts,
    Bucket,
    ClaimFacts,
    MapFacts,
    placeholder,
)
from chatstate.transfer.hashruns import HashRuns, has_repeats
from chatstate.transfer.jsonstream import (
    DEFAULT_MAX_VALUE_BYTES,
    JsonStream,
    JsonSyntaxError,
    Mark,
)
from chatstate.transfer.ledger import Ledger

_HEADER = ("format", "version")


@dataclass
class Check:
    """What pass 1 found. ``problems``: strict problems (``[]`` when valid), or the one
    invalid-JSON problem, the first 1,000 listed; ``total``: how many there are;
    ``dropped``: lenient drop count; ``warnings``: header problems a lenient read ignores;
    ``counts``: entries per section that would be loaded."""

    problems: list[str] = field(default_factory=list)
    total: int = 0
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
    """The JSON text of ``raw`` (a seekable binary file), read as a snapshot in two passes.

    A context manager: leaving it removes the temporary files the exact path made."""

    def __init__(
        self,
        raw: BinaryIO,
        lenient: bool = False,
        chunk_size: int = 1 << 20,
        max_value: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        self.raw = raw
        self.lenient = lenient
        self.chunk_size = chunk_size
        self.max_value = max_value
        self.marks: dict[str, Mark] = {}  # streamed sections: where the value starts
        self.small: dict[str, Any] = {}  # header values, sections of a wrong type
        self.whole: Snapshot | None = None  # lenient, the text is not an object
        self.checked: Check | None = None
        self.ledger: Ledger | None = None
        self.exact: set[str] = set()  # groups read through the ledger (lenient repairs)

    def __enter__(self) -> SnapshotFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def stream(self, mark: Mark | None = None, trusted: bool = False) -> JsonStream:
        """A stream at ``mark`` (a section's value: inside the top object), or the start."""
        return JsonStream(
            self.raw,
            mark,
            chunk_size=self.chunk_size,
            max_value=self.max_value,
            trusted=trusted,
            depth=0 if mark is None else 1,
        )

    def get_ledger(self) -> Ledger:
        if self.ledger is None:
            self.ledger = Ledger()
        return self.ledger

    # -- pass 1 --------------------------------------------------------------------------

    def check(self) -> Check:
        """Pass 1: what ``Snapshot.from_json`` (or, lenient, ``normalize_snapshot``) makes of
        the text. Never raises for bad content; ``OSError`` if the file cannot be read."""
        try:
            result = self._check()
        except JsonSyntaxError as exc:
            first = self.stream(trusted=True).decode_error() or exc
            result = Check(problems=[first.problem], total=1)
        self.checked = result
        return result

    def _check(self) -> Check:
        stream = self.stream()
        if stream.peek() != "{":
            return self._check_other(stream)
        strict = not self.lenient
        unknown = Bucket()
        top = HashRuns()
        facts: dict[str, Any] = {}
        try:
            for key in stream.members(()):
                top.add(key)
                char = stream.peek()
                if key in ARRAYS and char == "[":
                    self.marks[key] = stream.mark()
                    facts[key] = ArrayFacts(key, strict, key != "dedupe_order").read(stream)
                elif key in MAPS and char == "{":
                    self.marks[key] = stream.mark()
                    facts[key] = MapFacts(key, strict).read(stream)
                    if facts[key].has_repeats():
                        self._raise_repeat(key)
                elif key == "claims" and char == "[":
                    self.marks[key] = stream.mark()
                    facts[key] = ClaimFacts(strict).read(stream)
                elif key in TOP_LEVEL:
                    self.small[key] = placeholder(stream, (key,))
                else:
                    stream.skip((key,))
                    Scan(strict, unknown).unknown_keys({key: None})
            stream.end()
            if top.sums[0] > 1 and _repeats(top):
                self._raise_repeat(None)
            return self._assemble(facts, unknown)
        finally:
            for item in [top, *(f.runs for f in facts.values())]:
                item.close()

    def _check_other(self, stream: JsonStream) -> Check:
        """The text is not a JSON object: check it (bounded), it cannot hold a snapshot."""
        value: object = placeholder(stream, ())
        stream.end()
        if not self.lenient:
            return Check(problems=["$: expected an object"], total=1)
        self.whole = Snapshot()
        return Check(dropped=int(value is not None), counts=dict.fromkeys(SECTIONS, 0))

    def _raise_repeat(self, section: str | None) -> NoReturn:
        """The exact "repeated key" error of the top object or of ``section``."""
        where: tuple[str, ...] = () if section is None else (section,)
        stream = self.stream(None if section is None else self.marks[section], trusted=True)

        def names() -> Iterator[tuple[int, str, int]]:
            for index, key in enumerate(stream.members(where)):
                yield index, key, stream.key_at
                stream.skip((*where, key))

        ledger = self.get_ledger()
        ledger.fill_names("names", names())
        found = ledger.first_repeat("names")
        assert found is not None, "hashes repeat, so keys do"
        _, key, at = found
        line, column = self.line_column(at)
        path = path_of((*where, key), MAP_SECTIONS)
        raise JsonSyntaxError(problem(path, f"repeated key {key!r}", line, column, at))

    def line_column(self, char: int) -> tuple[int, int]:
        """Line and column of the text's character ``char`` (read again from the start)."""
        stream = self.stream(trusted=True)
        while stream.base_chars + len(stream.buf) <= char and not stream.eof:
            stream.pos = len(stream.buf)
            stream.fill()
        return stream.line_column(char - stream.base_chars)

    def _assemble(self, facts: dict[str, Any], unknown: Bucket) -> Check:
        """Every section's problems in ``Scan``'s order (or, lenient, the drop count)."""
        strict = not self.lenient
        result = Check()
        parts: list[Bucket] = [unknown]
        header = {name: self.small[name] for name in _HEADER if name in self.small}
        if "claims" in self.small or "claims" in facts:
            header["claims"] = None
        head = Bucket()
        Scan(True, head).check_header(header)
        if strict:
            parts.append(head)
        else:
            result.warnings = head.lines()
        typed = {name: self._typed(name) for name in SECTIONS if name in self.small}
        groups = exact.Groups(self, facts, typed, strict)
        parts.extend(groups.buckets())
        for name in MAPS:
            if name in typed:
                parts.append(typed[name])
            elif name in facts:
                parts.append(facts[name].bucket)
                result.counts[name] = facts[name].kept
        parts.append(groups.claims_bucket())
        result.counts.update(groups.counts)
        result.total = sum(part.total for part in parts)
        result.problems = [line for part in parts for line in part.lines()][:MAX_LISTED]
        if not strict:
            result.dropped, result.total, result.problems = result.total, 0, []
        return result

    def _typed(self, name: str) -> Bucket:
        """The problem of a section of the wrong type (or, lenient, ``None``: none)."""
        bucket = Bucket()
        scan = Scan(not self.lenient, bucket)
        if name in MAPS:
            list(scan.map_entries(self.small, name))
        else:
            scan.items(self.small, name)
        return bucket

    # -- pass 2 --------------------------------------------------------------------------

    def sections(self) -> SnapshotSections:
        """Pass 2, after a ``check()`` without problems: the sections, streamed from the
        file (lenient: as ``normalize_snapshot`` keeps them), each in the file's order
        (lenient repairs: ``normalize_snapshot``'s). ``dedupe`` is left empty:
        ``dedupe_order`` holds the same keys."""
        checked = self.checked
        if checked is None or checked.problems:
            raise ValueError("sections() needs a check() that found no problems")
        if self.whole is not None:
            return SnapshotSections.from_snapshot(self.whole)
        counts = {**dict.fromkeys(SECTIONS, 0), **checked.counts}
        return SnapshotSections(
            subscriptions=self._ids(),
            dedupe_order=self._order(),
            thread_state=self._map("thread_state"),
            channel_state=self._map("channel_state"),
            locks=self._map("locks"),
            pending_locks=self._map("pending_locks"),
            claims=self._claims(),
            counts=counts,
        )

    def _elements(self, name: str) -> Iterator[Any]:
        if name in self.marks:
            yield from self.stream(self.marks[name], trusted=True).elements((name,))

    def _ids(self) -> Iterator[str]:
        if "subscriptions" in self.exact:
            yield from exact.kept_ids(self.get_ledger())
            return
        for raw in self._elements("subscriptions"):
            if not self.lenient or as_id(raw) is not None:
                yield raw

    def _order(self) -> Iterator[tuple[str, str]]:
        if "dedupe" in self.exact:
            yield from exact.kept_order(self.get_ledger())
            return
        if not self.lenient:  # checked in pass 1: every entry is a valid key
            for raw in self._elements("dedupe_order"):
                yield raw[0], raw[1]
            return
        for raw in self._elements("dedupe_order"):
            key = as_dedupe_key(raw)
            if key is not None:
                yield key

    def _map(self, name: str) -> Iterator[tuple[str, Any]]:
        if name not in self.marks:
            return
        stream = self.stream(self.marks[name], trusted=True)
        entry = Scan(not self.lenient).entry
        for key in stream.members((name,)):
            value = stream.value((name, key))
            kept = value if not self.lenient else entry(name, key, value)
            if kept is not None:
                yield key, kept

    def _claims(self) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
        if "dedupe" in self.exact:
            yield from exact.kept_claims(self.get_ledger())
            return
        scan = Scan(not self.lenient)
        for index, raw in enumerate(self._elements("claims")):
            key, claim, _ = scan.claim(index, raw)
            if key is not None and claim is not None:
                yield key, claim


def _repeats(runs: HashRuns) -> bool:
    return has_repeats(runs.sorted())
