"""``HashRuns``: the 64-bit hashes of many keys, in bounded memory.

With them, the streaming reader decides whether the cross-entry rules of a snapshot hold. It
takes one pass and a few bytes per key. The rules are: no key twice, ``dedupe`` and
``dedupe_order`` holding the same keys, and every claim's key in ``dedupe``.

Memory holds up to ``run`` hashes. Past that, each run is sorted, cut into ``PARTS`` value
ranges and written to a temporary file. A question is answered one value range at a time.
Each range is read from every run into one array. A C-level ``set`` checks it, with no
Python step per hash.

Python's ``hash`` of a ``str`` is salted per process. So a file cannot be made to collide on
purpose. A collision only sends a file to the slower exact check. For ``sums``, it is a
2**-64 chance."""

from __future__ import annotations

import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Iterator
from typing import IO

#: Hashes kept in memory before a sorted run is written out (8 bytes each).
RUN = 1 << 18
#: Value ranges of the 64-bit hashes: a question reads one range of every run at a time
#: (about ``1 / PARTS`` of the hashes).
PARTS = 256
_BOUNDS = [-(1 << 63) + (k << 56) for k in range(1, PARTS)]


def _cuts(ordered: array[int]) -> list[int]:
    """Where each value range starts in the sorted ``ordered``, and its length."""
    return [0, *(bisect_left(ordered, bound) for bound in _BOUNDS), len(ordered)]


class HashRuns:
    """Hashes of keys, added one at a time or many; duplicates kept.

    ``sums`` is an order-free fingerprint of the multiset of keys added by ``add`` and
    ``add_sum``. It is their count and the sum of their hashes. It compares two collections
    without sorting either."""

    def __init__(self, run: int | None = None) -> None:
        self.run = RUN if run is None else run
        self.buf: array[int] = array("q")
        self.runs: list[tuple[int, list[int]]] = []  # (item offset in the file, cuts)
        self.file: IO[bytes] | None = None
        self.count = 0
        self.total = 0

    def add(self, key: Hashable) -> None:
        """Record ``key`` by its hash."""
        h = hash(key)
        self.buf.append(h)
        self.total += h
        if len(self.buf) >= self.run:
            self._spill()

    def extend(self, keys: Iterable[Hashable]) -> None:
        """Record each of ``keys`` for ``sorted()``, in C-level passes.

        ``sums`` counts them but leaves their hashes out of its total."""
        self.buf.extend(map(hash, keys))
        while len(self.buf) >= self.run:
            rest = self.buf[self.run :]
            del self.buf[self.run :]
            self._spill()
            self.buf = rest

    def add_sum(self, key: Hashable) -> None:
        """Record ``key`` in ``sums`` only; ``sorted()`` will not yield it."""
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
        self.runs.append((offset, _cuts(ordered)))
        self.count += len(ordered)
        self.buf = array("q")

    def parts(self) -> Iterator[array[int]]:
        """Every hash added except by ``add_sum``, a value range at a time.

        Each array holds one range's hashes from every run, in no particular order."""
        tail = array("q", sorted(self.buf))
        if not self.runs:
            yield tail
            return
        assert self.file is not None
        tail_cuts = _cuts(tail)
        for p in range(PARTS):
            part: array[int] = array("q")
            for offset, cuts in self.runs:
                if cuts[p + 1] > cuts[p]:
                    self.file.seek((offset + cuts[p]) * part.itemsize)
                    part.fromfile(self.file, cuts[p + 1] - cuts[p])
            part.extend(tail[tail_cuts[p] : tail_cuts[p + 1]])
            yield part

    def repeats(self) -> bool:
        """Whether two hashes added are equal; a C-level ``set`` checks each value range."""
        return any(len(set(part)) != len(part) for part in self.parts())

    def contains_all(self, hashes: Iterable[int]) -> bool:
        """Whether every one of ``hashes`` was added."""
        needles = sorted(set(hashes))
        if not needles:
            return True
        for part in self.parts():
            if part:
                low, high = min(part), max(part)
                inside = needles[bisect_left(needles, low) : bisect_left(needles, high + 1)]
                if not set(part).issuperset(inside):
                    return False
                needles = [n for n in needles if n < low or n > high]
        return not needles

    def sorted(self) -> Iterator[int]:
        """Every hash added except by ``add_sum``, in increasing order."""
        for part in self.parts():
            yield from sorted(part)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
