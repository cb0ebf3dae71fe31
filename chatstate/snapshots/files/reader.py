"""``SnapshotFile``: a snapshot JSON file checked, then read, section by section.

``check()`` is pass 1. It walks the whole file once. It reports what ``Snapshot.from_json``
would report: the same problems, with the same JSON paths, in the same order. The first
1,000 are listed and all are counted. A lenient check reports the entries
``normalize_snapshot`` would drop, and why. Pass 1 keeps the position of each section. With
``max_problems`` it stops at that many problems and reports those. So a file full of
problems is refused early. ``sections()`` is pass 2. It streams the sections from those
positions.

Memory is bounded whatever the file. No value larger than ``max_value`` bytes is read.
Entries are checked with the very rules of :class:`chatstate.snapshots.scan.Scan`. Arrays of
keys are read a window at a time by :mod:`~chatstate.snapshots.files.bulk`. Duplicates are
worded as read when :mod:`~chatstate.snapshots.files.seen` keeps their first occurrence. The
other cross-entry rules are checked on hashes by :mod:`~chatstate.snapshots.files.hashruns`.
Only when those show a problem, or a lenient repair, are the keys loaded into a temporary
database. That is :mod:`~chatstate.snapshots.files.ledger`, and
:mod:`~chatstate.snapshots.files.exact` gives the exact words."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn

from chatstate.snapshots.checks import as_dedupe_key, as_id, path_of
from chatstate.snapshots.files import exact
from chatstate.snapshots.files.bulk import chunks
from chatstate.snapshots.files.facts import (
    MAX_LISTED,
    ArrayFacts,
    Bucket,
    Budget,
    Enough,
    KeyedFacts,
    MapFacts,
    placeholder,
)
from chatstate.snapshots.files.hashruns import HashRuns
from chatstate.snapshots.files.jsonstream import (
    DEFAULT_MAX_VALUE_BYTES,
    JsonStream,
    JsonSyntaxError,
    Mark,
)
from chatstate.snapshots.files.ledger import Ledger
from chatstate.snapshots.jsontext import MAP_SECTIONS, problem
from chatstate.snapshots.lists_outbox import outbox_entry
from chatstate.snapshots.scan import ARRAYS, FORMAT, MAPS, SECTIONS, TOP_LEVEL, VERSION, Scan
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot

_HEADER = ("format", "version")
#: Object sections (streamed entry by entry) and arrays of keyed objects.
_OBJECTS = (*MAPS, "lists")
_KEYED = ("claims", "outbox")


@dataclass
class Check:
    """What pass 1 found.

    ``problems`` holds the strict problems, or the one invalid-JSON problem; ``[]`` when
    valid. The first 1,000 are listed, and ``total`` counts them all. ``stopped`` means
    checking stopped at ``max_problems``. The rest of the file was not read, so ``total`` is
    a lower bound. ``dropped`` is the lenient drop count. ``drops`` lists the first 1,000 as
    ``path: why``. ``warnings`` holds header problems a lenient read ignores. ``counts``
    gives the entries per section that would be loaded."""

    problems: list[str] = field(default_factory=list)
    total: int = 0
    stopped: bool = False
    dropped: int = 0
    drops: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class SnapshotFile:
    """The JSON text of ``raw``, a seekable binary file, read as a snapshot in two passes.

    In strict reads, checking stops once ``max_problems`` problems are found; ``None`` never
    stops. It is a context manager. Leaving it removes the temporary files."""

    def __init__(
        self,
        raw: BinaryIO,
        lenient: bool = False,
        chunk_size: int = 1 << 20,
        max_value: int = DEFAULT_MAX_VALUE_BYTES,
        max_problems: int | None = None,
    ) -> None:
        if max_problems is not None and max_problems < 1:
            raise ValueError(f"max_problems must be at least 1, not {max_problems}")
        self.raw = raw
        self.lenient = lenient
        self.chunk_size = chunk_size
        self.max_value = max_value
        self.budget = Budget(None if lenient else max_problems)
        self.marks: dict[str, Mark] = {}  # streamed sections: where the value starts
        self.small: dict[str, Any] = {}  # header values, sections of a wrong type
        self.facts: dict[str, Any] = {}  # what pass 1 learnt of each streamed section
        self.whole: Snapshot | None = None  # lenient, the text is not an object
        self.checked: Check | None = None
        self.ledger: Ledger | None = None
        self.exact: set[str] = set()  # groups repaired through the ledger (lenient)
        self.memory: set[str] = set()  # groups whose rules were decided in memory

    def __enter__(self) -> SnapshotFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for facts in self.facts.values():
            facts.close()
        self.facts = {}
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def stream(self, mark: Mark | None = None, trusted: bool = False) -> JsonStream:
        """A stream at ``mark``, a section's value inside the top object, or at the start."""
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
        """Pass 1: what ``Snapshot.from_json`` makes of the text.

        A lenient read gives what ``normalize_snapshot`` makes of it. A strict read stops at
        the ``max_problems``-th problem. It never raises for bad content. ``OSError`` if the
        file cannot be read."""
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
        strict, budget = not self.lenient, self.budget
        unknown = Bucket(budget=budget)
        top = HashRuns()
        facts = self.facts
        try:
            for key in stream.members(()):
                top.add(key)
                char = stream.peek()
                # Each section's facts are kept before they are read: a read that stops
                # at ``max_problems`` (``Enough``) leaves what it found in them.
                if key in ARRAYS and char == "[":
                    self.marks[key] = stream.mark()
                    fingerprint = key != "subscriptions"
                    facts[key] = ArrayFacts(key, strict, budget, fingerprint)
                    facts[key].read(stream)
                elif key in _OBJECTS and char == "{":
                    self.marks[key] = stream.mark()
                    facts[key] = MapFacts(key, strict, budget)
                    if facts[key].read(stream).has_repeats():
                        self._raise_repeat(key)
                elif key in _KEYED and char == "[":
                    self.marks[key] = stream.mark()
                    facts[key] = KeyedFacts(key, strict, budget)
                    facts[key].read(stream)
                elif key in TOP_LEVEL:
                    self.small[key] = placeholder(stream, (key,))
                else:
                    stream.skip((key,))
                    Scan(strict, unknown).unknown_keys({key: None})
            stream.end()
            if top.sums[0] > 1 and top.repeats():
                self._raise_repeat(None)
            return self._assemble(unknown)
        except Enough:
            return self._stopped(unknown)
        finally:
            top.close()

    def _check_other(self, stream: JsonStream) -> Check:
        """The text is not a JSON object: check it, bounded; it cannot hold a snapshot."""
        value: object = placeholder(stream, ())
        stream.end()
        if not self.lenient:
            return Check(problems=["$: expected an object"], total=1)
        self.whole = Snapshot()
        dropped = int(value is not None)
        drops = ["$: expected an object"] if dropped else []
        return Check(dropped=dropped, drops=drops, counts=dict.fromkeys(SECTIONS, 0))

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
        """Line and column of the text's character ``char``, read again from the start."""
        stream = self.stream(trusted=True)
        while stream.base_chars + len(stream.buf) <= char and not stream.eof:
            stream.pos = len(stream.buf)
            stream.fill()
        return stream.line_column(char - stream.base_chars)

    def _header(self, complete: bool) -> Bucket:
        """The header's problems; read whole, so a missing ``format`` or ``version`` counts too."""
        header = {name: self.small[name] for name in _HEADER if name in self.small}
        if not complete:  # not read yet is not missing
            header = {"format": FORMAT, "version": VERSION, **header}
        for name in ("claims", "lists", "outbox"):
            if name in self.small or name in self.facts:
                header[name] = None
        head = Bucket()
        Scan(True, head).check_header(header)
        return head

    def _assemble(self, unknown: Bucket) -> Check:
        """Every section's problems in ``Scan``'s order; when lenient, the drops."""
        strict, facts = not self.lenient, self.facts
        result = Check()
        parts: list[Bucket] = [unknown]
        head = self._header(complete=True)
        if strict:
            parts.append(head)
        else:
            result.warnings = head.lines()
        typed = {name: self._typed(name) for name in SECTIONS if name in self.small}
        groups = exact.Groups(self, facts, typed, strict)
        parts.extend(groups.buckets())
        for name in MAPS:
            parts.append(self._object_part(name, typed, result))
        parts.append(groups.claims_bucket())
        parts.append(self._object_part("lists", typed, result))
        parts.append(groups.outbox_bucket())
        result.counts.update(groups.counts)
        result.total = sum(part.total for part in parts)
        lines = [line for part in parts for line in part.lines()][:MAX_LISTED]
        if strict:
            limit = self.budget.limit
            result.problems = lines[:limit] if limit is not None else lines
        else:
            result.dropped, result.total, result.drops = result.total, 0, lines
        return result

    def _object_part(self, name: str, typed: dict[str, Bucket], result: Check) -> Bucket:
        if name in typed:
            return typed[name]
        if name in self.facts:
            result.counts[name] = self.facts[name].kept
            return self.facts[name].as_read()
        return Bucket()

    def _stopped(self, unknown: Bucket) -> Check:
        """The problems found so far, in ``Scan``'s order, once a strict read hit
        ``max_problems``. Sections not read yet hold none. The cross-entry rules are not
        checked."""
        parts = [unknown, self._header(complete=False)]
        for name in SECTIONS:
            if name in self.facts:
                parts.append(self.facts[name].as_read())
            elif name in self.small:
                parts.append(self._typed(name))
        lines = [line for part in parts for line in part.lines()]
        total = sum(part.total for part in parts)
        limit = self.budget.limit or len(lines)
        return Check(problems=lines[: min(limit, MAX_LISTED)], total=total, stopped=True)

    def _typed(self, name: str) -> Bucket:
        """The problem of a section of the wrong type; ``None`` when lenient."""
        bucket = Bucket()
        scan = Scan(not self.lenient, bucket)
        if name in _OBJECTS:
            list(scan.map_entries(self.small, name))
        else:
            scan.items(self.small, name)
        return bucket

    # -- pass 2 --------------------------------------------------------------------------

    def sections(self) -> SnapshotSections:
        """Pass 2, after a ``check()`` without problems: the sections, streamed from the file.

        Each comes in the file's order. A lenient read gives them as ``normalize_snapshot``
        keeps and repairs them. ``dedupe`` is left empty: ``dedupe_order`` holds the same
        keys."""
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
            lists=self._map("lists"),
            outbox=self._outbox(),
            counts=counts,
        )

    def elements(self, name: str) -> Iterator[Any]:
        """The elements of the array section ``name``; none when it is not streamed."""
        if name in self.marks:
            for batch in chunks(self.stream(self.marks[name], trusted=True), (name,)):
                yield from batch

    def _first(self, name: str) -> dict[Any, int]:
        """The first occurrences of the section's keys that pass 1 kept, for a lenient read."""
        facts = self.facts.get(name)
        return facts.seen.first if facts is not None else {}

    def _ids(self) -> Iterator[str]:
        if "subscriptions" in self.exact:
            yield from exact.kept_ids(self.get_ledger())
            return
        if not self.lenient:
            yield from self.elements("subscriptions")
            return
        first = self._first("subscriptions")
        for index, raw in enumerate(self.elements("subscriptions")):
            if as_id(raw) is not None and first.get(raw, index) == index:
                yield raw

    def _order(self) -> Iterator[tuple[str, str]]:
        if "dedupe" in self.exact:
            yield from exact.kept_order(self.get_ledger())
            return
        if not self.lenient:  # checked in pass 1: every entry is a valid key
            for raw in self.elements("dedupe_order"):
                yield raw[0], raw[1]
            return
        first = self._first("dedupe_order")
        for index, raw in enumerate(self.elements("dedupe_order")):
            key = as_dedupe_key(raw)
            if key is not None and first.get(key, index) == index:
                yield key
        if "dedupe" in self.memory:  # then every key is in the two ``first``
            yield from sorted(self._first("dedupe").keys() - first.keys())

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
        first = self._first("claims")
        known = self._first("dedupe").keys() | self._first("dedupe_order").keys()
        in_memory = "dedupe" in self.memory
        for index, raw in enumerate(self.elements("claims")):
            key, claim, _ = scan.claim(index, raw)
            if key is None or claim is None or first.get(key, index) != index:
                continue
            if not in_memory or key in known:
                yield key, claim

    def _outbox(self) -> Iterator[dict[str, Any]]:
        strict = not self.lenient
        firsts = None
        if "outbox" in self.exact:
            firsts = exact.first_indexes(self.get_ledger(), "outbox")
        first = self._first("outbox")
        for index, raw in enumerate(self.elements("outbox")):
            key, entry, _ = outbox_entry(index, raw, strict)
            if entry is None:
                continue
            at = firsts(index) if firsts is not None else first.get(key, index)
            if at == index:
                yield entry
