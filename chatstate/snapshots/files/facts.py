"""What one pass over a snapshot file learns of each section, entry by entry.

The rules are those of :class:`chatstate.snapshots.scan.Scan`. Each entry's own problems are
kept: the first ones, tagged with the entry's index, and all counted. A duplicate is worded
the moment it is read, when :class:`~chatstate.snapshots.files.seen.Seen` keeps its first
occurrence. The cross-entry rules get what they need at the section's end.

Every problem is spent from the reader's :class:`Budget`. Checking stops at ``max_problems``
(:class:`Enough`). So a file full of problems is refused after reading only the part that
holds them."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from itertools import chain
from typing import Any

from chatstate.snapshots.checks import Problem, Problems, all_ids, as_dedupe_key, as_id
from chatstate.snapshots.files.bulk import chunks
from chatstate.snapshots.files.hashruns import HashRuns
from chatstate.snapshots.files.jsonstream import JsonStream
from chatstate.snapshots.files.seen import Seen
from chatstate.snapshots.lists_outbox import outbox_entry
from chatstate.snapshots.scan import Scan

#: Problems listed per section and in all (the rest are counted).
MAX_LISTED = 1000
#: Entries of a batch recorded at once when the whole batch cannot be.
_SLICE = 1024

Tagged = tuple[int, int, Problem]  # (entry index, order within the entry, problem)


class Enough(Exception):
    """The problems found reached the reader's ``max_problems``; checking stops here."""


class Budget:
    """How many problems may be found before checking stops; a ``limit`` of None sets no limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int = 1) -> None:
        """Count ``n`` problems found; raise ``Enough`` once they reach the limit."""
        self.used += n
        if self.limit is not None and self.used >= self.limit:
            raise Enough

    def allows(self, n: int) -> bool:
        """Whether ``n`` more problems stay below the limit, so they can be counted at once."""
        return self.limit is None or self.used + n < self.limit


class Bucket(Problems):
    """The problems of one section: the first ``cap`` kept, all counted and spent from ``budget``.

    Each is tagged with ``index``. The caller sets it before checking an entry."""

    def __init__(self, cap: int = MAX_LISTED, budget: Budget | None = None) -> None:
        super().__init__(cap)
        self.tagged: list[Tagged] = []
        self.index = 0
        self.order = 0
        self.budget = budget

    def add(self, problem: Problem) -> None:
        super().add(problem)
        if len(self.tagged) < (self.cap or 0):
            self.tagged.append((self.index, self.order, problem))
            self.order += 1
        if self.budget is not None:
            self.budget.spend()

    def can_count(self, n: int) -> bool:
        """Whether ``n`` problems may be counted without listing them.

        That is, the list is full and they do not reach the budget's limit."""
        full = len(self.tagged) >= (self.cap or 0)
        return full and (self.budget is None or self.budget.allows(n))

    def count(self, n: int) -> None:
        """Count ``n`` problems that would not be listed; see :meth:`can_count`."""
        self.total += n
        if self.budget is not None and n:
            self.budget.spend(n)

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
    """An array section of ids or dedupe keys.

    It holds each entry's problems in ``bucket``, and each duplicate worded as read in
    ``duplicates``. It counts the valid entries. With ``fingerprint``, it sums their hashes.
    That sum is an order-free fingerprint of the multiset, kept while no key repeats.

    It reads a window at a time, through :func:`chatstate.snapshots.files.bulk.chunks`. A
    batch of valid keys is checked, recorded and fingerprinted in C-level passes. Its
    repeats are counted at once, once the listing is full and below the budget. Only a batch
    holding a problem still to be listed is read key by key."""

    def __init__(self, name: str, strict: bool, budget: Budget | None, fingerprint: bool) -> None:
        self.name = name
        self.bucket = Bucket(budget=budget)
        self.duplicates = Bucket(budget=budget)
        self.scan = Scan(strict, self.bucket)
        self.seen = Seen()
        self.fingerprint = fingerprint
        self.count = 0
        self.total = 0
        self._late_repeats: bool | None = None

    def read(self, stream: JsonStream) -> ArrayFacts:
        index = 0
        for batch in chunks(stream, (self.name,)):
            if not self.add_keys(batch, index):  # then a slice at a time, else key by key
                for at in range(0, len(batch), _SLICE):
                    part = batch[at : at + _SLICE]
                    if not self.add_keys(part, index + at):
                        self.one_by_one(part, index + at)
            index += len(batch)
        return self

    def add_keys(self, batch: list[Any], start: int) -> bool:
        """Record ``batch`` in C-level passes, and return True, when that loses nothing.

        Every entry must be valid, with no problem of it left to list. Else it returns False
        and records nothing."""
        keys = self.keys(batch)
        return keys is not None and self.add_batch(keys, start)

    def keys(self, batch: list[Any]) -> list[Any] | None:
        """The keys of ``batch`` when every entry is valid, else None."""
        if self.name == "subscriptions":
            return batch if all_ids(batch) else None
        if set(map(type, batch)) != {list} or set(map(len, batch)) != {2}:
            return None
        return list(map(tuple, batch)) if all_ids(list(chain.from_iterable(batch))) else None

    def add_batch(self, keys: list[Any], start: int) -> bool:
        seen, before = self.seen, self.seen.repeats
        if not seen.add_batch(keys, start, self.duplicates.can_count(len(keys))):
            return False
        self.count += len(keys)
        if self.fingerprint and not seen.repeats:
            self.total += sum(map(hash, keys))
        self.duplicates.count(seen.repeats - before)
        return True

    def one_by_one(self, batch: list[Any], start: int) -> None:
        name, item, seen = self.name, self.scan.item, self.seen
        convert = as_id if name == "subscriptions" else as_dedupe_key
        for index, raw in enumerate(batch, start):
            key = convert(raw)
            if key is None:  # (the scan words the problem)
                self.bucket.index = index
                item(name, index, raw)
                continue
            self.count += 1
            first = seen.add(key, index)
            if first is not None:
                self.duplicates.index = index
                self.duplicates.add(Problem(f"{name}[{index}]", f"duplicate of {name}[{first}]"))
            elif self.fingerprint and not seen.repeats:
                self.total += hash(key)

    @property
    def sums(self) -> tuple[int, int]:
        return self.count, self.total

    def late_repeats(self) -> bool:
        """Whether keys ``Seen`` did not keep may repeat; only the exact path then words them."""
        if self._late_repeats is None:
            self._late_repeats = self.seen.late_repeats()
        return self._late_repeats

    def repeats(self) -> bool:
        """Whether a key may be there twice."""
        return bool(self.seen.repeats) or self.late_repeats()

    def as_read(self) -> Bucket:
        """The section's problems as read: entry problems and the duplicates worded."""
        return self.bucket.merged(self.duplicates.tagged, self.duplicates.total)

    def close(self) -> None:
        self.seen.close()


class MapFacts:
    """An object section: entry problems, how many entries are kept, the keys' hashes."""

    def __init__(self, name: str, strict: bool, budget: Budget | None) -> None:
        self.name = name
        self.bucket = Bucket(budget=budget)
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
        return self.runs.repeats()

    def as_read(self) -> Bucket:
        return self.bucket

    def close(self) -> None:
        self.runs.close()


class KeyedFacts:
    """An array of objects with a key: ``claims`` or ``outbox``.

    It holds each entry's own problems and its key's repetition, worded as read by ``Seen``.
    It counts the entries kept. A key counts once valid. In a lenient outbox, a key counts
    once its entry is kept. So a damaged entry never pushes out a good one with its key.
    Whether a claim's key is in ``dedupe`` is decided when every section is read, in
    :mod:`~chatstate.snapshots.files.exact`."""

    def __init__(self, name: str, strict: bool, budget: Budget | None) -> None:
        self.name = name
        self.strict = strict
        self.bucket = Bucket(budget=budget)
        self.scan = Scan(strict, self.bucket)
        self.seen = Seen()
        self.kept = 0

    def entry(self, index: int, raw: Any) -> tuple[Any, Any, list[Problem]]:
        """``(key, entry, problems)`` of one entry on its own."""
        if self.name == "claims":
            return self.scan.claim(index, raw)
        return outbox_entry(index, raw, self.strict)

    def registers(self, key: Any, entry: Any) -> bool:
        """Whether an entry with ``key`` makes later entries with it duplicates.

        ``key`` is None for an invalid entry."""
        return key is not None and (self.strict or self.name == "claims" or entry is not None)

    def report(self, scan: Scan, index: int, repeated: str | None, problems: list[Problem]) -> None:
        if self.name == "claims":
            scan.claim_problems(index, repeated, problems)
        else:
            scan.outbox_problems(index, repeated, problems)

    def read(self, stream: JsonStream) -> KeyedFacts:
        for index, raw in enumerate(stream.elements((self.name,))):
            key, entry, problems = self.entry(index, raw)
            self.bucket.index = index
            repeated = None
            if self.registers(key, entry):
                first = self.seen.add(key, index)
                repeated = None if first is None else f"duplicate of {self.name}[{first}]"
            self.report(self.scan, index, repeated, problems)
            self.kept += entry is not None and repeated is None
        return self

    def late_repeats(self) -> bool:
        return self.seen.late_repeats()

    def as_read(self) -> Bucket:
        return self.bucket

    def close(self) -> None:
        self.seen.close()


def placeholder(stream: JsonStream, where: tuple[object, ...]) -> Any:
    """The value at the stream, read whole when it is a scalar.

    An array or object is consumed, checked and bounded. It stands as ``[]`` or ``{}``. Only
    its kind matters where a section or header value has the wrong type."""
    char = stream.peek()
    if char in "[{":
        stream.skip(where)
        return [] if char == "[" else {}
    return stream.value(where)
