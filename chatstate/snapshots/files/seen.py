"""``Seen``: the keys of one section as they are read, so a duplicate is worded at once.

The first ``limit`` distinct keys are kept exactly, each with the index of its first
occurrence. A key repeating one of them is a duplicate known the moment it is read. Its
words are exact: ``subscriptions[1]: duplicate of subscriptions[0]``. Keys past the limit
are kept only as hashes, in :class:`~chatstate.snapshots.files.hashruns.HashRuns`. They are
checked once the section ends. Only when those repeat does the reader need its slower, exact
path on disk. Memory holds at most ``limit`` keys, whatever the file.

Batches are recorded in a few C-level passes over the keys, not one Python step per key. So
a section repeating one key over and over reads as fast as a valid one. See
:meth:`Seen.add_batch`."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from chatstate.snapshots.files.hashruns import HashRuns

#: Distinct keys kept exactly per section: about 5 MB for keys of 30 characters, 25 MB
#: at most (dedupe keys of two 255-character ids).
LIMIT = 1 << 15


class Seen:
    """The keys of one section read so far; the module's docstring says how."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = LIMIT if limit is None else limit
        self.first: dict[Hashable, int] = {}  # key -> index of its first occurrence
        self.late = HashRuns()  # hashes of the keys read once ``first`` was full
        self.repeats = 0  # occurrences found repeating a key of ``first``

    @property
    def complete(self) -> bool:
        """Whether every key read is in ``first``; no key went to ``late``."""
        return self.late.sums[0] == 0

    def add(self, key: Hashable, index: int) -> int | None:
        """Record ``key`` read at ``index``.

        It returns the index of its first occurrence when it repeats a key of ``first``.
        That duplicate is worded now. Else None."""
        first = self.first
        at = first.get(key)
        if at is not None:
            self.repeats += 1
            return at
        if len(first) < self.limit:
            first[key] = index
        else:
            self.late.add(key)
        return None

    def add_batch(self, keys: Sequence[Hashable], start: int, count_repeats: bool) -> bool:
        """Record ``keys`` read at ``start``, ``start + 1``, and so on.

        True when none repeats a key read before or in the batch. Otherwise, with
        ``count_repeats``, they are recorded as :meth:`add` would, the repeats counted, and
        the result is True. Without it, nothing is recorded and the result is False. The
        caller then words each one with :meth:`add`. The passes are C-level: a ``set`` of
        the batch and ``isdisjoint`` with ``first``. Repeats are counted from the batch's
        distinct keys."""
        first = self.first
        room = self.limit - len(first)
        distinct = set(keys)
        if len(distinct) == len(keys) and first.keys().isdisjoint(distinct):
            room = max(min(room, len(keys)), 0)
            first.update(zip(keys[:room], range(start, start + room), strict=True))
            if room < len(keys):
                self.late.extend(keys[room:])
            return True
        if not count_repeats:
            return False
        new = distinct - first.keys()
        if len(new) > room:  # ``first`` fills up within the batch: key by key
            for index, key in enumerate(keys, start):
                self.add(key, index)
            return True
        if new:  # each new key's first index: the last write of ``dict`` wins, so reversed
            end = start + len(keys) - 1
            at = dict(zip(reversed(keys), range(end, start - 1, -1), strict=True))
            first.update(zip(new, map(at.__getitem__, new), strict=True))
        self.repeats += len(keys) - len(new)
        return True

    def late_repeats(self) -> bool:
        """Whether two keys read after ``first`` was full may be equal: their hashes are."""
        return not self.complete and self.late.repeats()

    def close(self) -> None:
        self.late.close()
