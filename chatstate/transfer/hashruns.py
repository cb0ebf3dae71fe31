"""``HashRuns``: the 64-bit hashes of many keys, sorted with bounded memory.

The streaming reader decides with them, in one pass and a few bytes per key, whether the
cross-entry rules of a snapshot hold (no key twice, ``dedupe`` and ``dedupe_order`` holding
the same keys, every claim's key in ``dedupe``). Hashes are kept in memory up to ``run``
of them; past that each run is sorted and written to a temporary file, and the runs are
merged when read. Python's ``hash`` of a ``str`` is salted per process, so a file cannot be
made to collide on purpose; a collision would only ever send a file to the exact (slower)
check, or, for ``same_keys``, is a 2**-64 chance.
"""

from __future__ import annotations

import heapq
import operator
import tempfile
from array import array
from collections.abc import Hashable, Iterable, Iterator
from itertools import islice, tee
from typing import IO

#: Hashes kept in memory before a sorted run is written out (8 bytes each).
RUN = 1 << 18


class HashRuns:
    """Hashes added one at a time; ``sorted()`` yields them in order (duplicates kept).

    ``sums`` is an order-free fingerprint of the multiset of keys added (their count and the
    sum of their hashes), for comparing two collections without sorting either."""

    def __init__(self, run: int | None = None) -> None:
        self.run = RUN if run is None else run
        self.buf = array("q")
        self.runs: list[tuple[int, int]] = []  # (item offset in the file, length)
        self.file: IO[bytes] | None = None
        self.count = 0
        self.total = 0

    def add(self, key: Hashable) -> None:
        """Record ``key`` (by its hash)."""
        h = hash(key)
        self.buf.append(h)
        self.total += h
        if len(self.buf) >= self.run:
            self._spill()

    def add_sum(self, key: Hashable) -> None:
        """Record ``key`` in ``sums`` only (``sorted()`` will not yield it)."""
        self.count += 1
        self.total += hash(key)

    @property
    def sums(self) -> tuple[int, int]:
        return (self.count + len(self.buf), self.total)

    def _spill(self) -> None:
        if self.file is None:
            self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        ordered = array("q", sorted(self.buf))
        self.file.seek(0, 2)
        offset = self.file.tell() // ordered.itemsize
        ordered.tofile(self.file)
        self.runs.append((offset, len(ordered)))
        self.count += len(ordered)
        self.buf = array("q")

    def sorted(self) -> Iterator[int]:
        """Every hash added, in increasing order (read from the runs, merged)."""
        tail = array("q", sorted(self.buf))
        if not self.runs:
            return iter(tail)
        chunk = max(1024, (1 << 21) // (len(self.runs) + 1))
        readers = [self._read(offset, length, chunk) for offset, length in self.runs]
        return heapq.merge(*readers, iter(tail))

    def _read(self, offset: int, length: int, chunk: int) -> Iterator[int]:
        assert self.file is not None
        done = 0
        while done < length:
            part = array("q")
            self.file.seek((offset + done) * part.itemsize)
            part.fromfile(self.file, min(chunk, length - done))
            done += len(part)
            yield from part

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def has_repeats(ordered: Iterable[int]) -> bool:
    """Whether two neighbours of an ordered sequence are equal."""
    first, second = tee(ordered)
    return any(map(operator.eq, first, islice(second, 1, None)))


def all_found(needles: Iterable[int], haystack: Iterable[int]) -> bool:
    """Whether every value of the ordered ``needles`` is in the ordered ``haystack``."""
    hay = iter(haystack)
    current: int | None = None
    for needle in needles:
        while current is None or current < needle:
            current = next(hay, None)
            if current is None:
                return False
        if current != needle:
            return False
    return True
