"""What one pass over a snapshot file learns of each section, entry by entry, with the
rules of :class:`chatstate.snapshot_scan.Scan`: the problems of each entry on its own (the
first ones, tagged with the entry's index, all counted) and the hashes the cross-entry
rules need (see :mod:`chatstate.transfer.hashruns`)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

from chatstate.snapshot_checks import Problem, as_dedupe_key, as_id
from chatstate.snapshot_scan import Problems, Scan
from chatstate.transfer.hashruns import HashRuns, all_found, has_repeats
from chatstate.transfer.jsonstream import JsonStream

#: Problems listed per section and in all (the rest are counted).
MAX_LISTED = 1000

Tagged = tuple[int, int, Problem]  # (entry index, order within the entry, problem)


class Bucket(Problems):
    """The problems of one section, each tagged with ``index`` (set by the caller before
    checking an entry): the first ``cap`` kept, all counted."""

    def __init__(self, cap: int = MAX_LISTED) -> None:
        super().__init__(cap)
        self.tagged: list[Tagged] = []
        self.index = 0
        self.order = 0

    def add(self, problem: Problem) -> None:
        super().add(problem)
        if len(self.tagged) < (self.cap or 0):
            self.tagged.append((self.index, self.order, problem))
            self.order += 1

    def merged(self, other: Iterable[Tagged], other_total: int) -> Bucket:
        """A bucket holding this one's problems and ``other``'s, in index order."""
        result = Bucket(self.cap or MAX_LISTED)
        for index, order, problem in heapq.merge(self.tagged, other, key=lambda t: t[:2]):
            result.index, result.order = index, order
            result.add(problem)
        result.total = self.total + other_total
        return result

    @property
    def items(self) -> list[Problem]:
        return [problem for _, _, problem in self.tagged]


class ArrayFacts:
    """An array section of ids or dedupe keys: entry problems (no duplicates yet), the valid
    entries' hashes (``keep_hashes``) and their order-free fingerprint."""

    def __init__(self, name: str, strict: bool, keep_hashes: bool) -> None:
        self.name = name
        self.bucket = Bucket()
        self.scan = Scan(strict, self.bucket)
        self.runs = HashRuns()
        self.keep = keep_hashes
        self.count = 0  # valid entries

    def read(self, stream: JsonStream) -> ArrayFacts:
        name, item, bucket, runs = self.name, self.scan.item, self.bucket, self.runs
        add = runs.add if self.keep else runs.add_sum
        convert = as_id if name == "subscriptions" else as_dedupe_key
        for index, raw in enumerate(stream.elements((name,))):
            value = convert(raw)
            if value is None:  # (the scan words the problem)
                bucket.index = index
                item(name, index, raw)
            else:
                add(value)
        self.count = runs.sums[0]
        return self

    def has_repeats(self) -> bool:
        return has_repeats(self.runs.sorted())


class MapFacts:
    """An object section: entry problems, how many entries are kept, the keys' hashes."""

    def __init__(self, name: str, strict: bool) -> None:
        self.name = name
        self.bucket = Bucket()
        self.scan = Scan(strict, self.bucket)
        self.runs = HashRuns()
        self.kept = 0

    def read(self, stream: JsonStream) -> MapFacts:
        name, entry, bucket = self.name, self.scan.entry, self.bucket
        for index, key in enumerate(stream.members((name,))):
            self.runs.add(key)
            value = stream.value((name, key))
            bucket.index = index
            if entry(name, key, value) is not None:
                self.kept += 1
        return self

    def has_repeats(self) -> bool:
        return has_repeats(self.runs.sorted())


class ClaimFacts:
    """``claims``: each entry's problems on its own, the hashes of the valid keys."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.bucket = Bucket()
        self.scan = Scan(strict, self.bucket)
        self.runs = HashRuns()
        self.kept = 0

    def read(self, stream: JsonStream) -> ClaimFacts:
        for index, raw in enumerate(stream.elements(("claims",))):
            key, claim, problems = self.scan.claim(index, raw)
            self.bucket.index = index
            self.scan.claim_problems(index, None, problems)
            if key is not None:
                self.runs.add(key)
            if claim is not None:
                self.kept += 1
        return self

    def clean_keys(self, dedupe: HashRuns) -> bool:
        """No key twice, every key in ``dedupe`` (by hash)."""
        if not self.runs.sums[0]:
            return True
        return not has_repeats(self.runs.sorted()) and all_found(
            _unique(self.runs.sorted()), dedupe.sorted()
        )


def _unique(ordered: Iterator[int]) -> Iterator[int]:
    last: int | None = None
    for value in ordered:
        if value != last:
            yield value
            last = value


def placeholder(stream: JsonStream, where: tuple[object, ...]) -> Any:
    """The value at the stream, read whole when it is a scalar; an array or object is
    consumed (checked, bounded) and stands as ``[]``/``{}``: only its kind matters where
    a section or header value has the wrong type."""
    char = stream.peek()
    if char in "[{":
        stream.skip(where)
        return [] if char == "[" else {}
    return stream.value(where)
