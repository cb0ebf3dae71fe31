"""``SnapshotSections``: a snapshot as one stream per section, never all in memory at once.

The streaming hooks of :class:`~chatstate.adapters.base.StateAdapter` exchange it:
``snapshot_sections`` and ``load_snapshot_stream``. The writer of
:mod:`chatstate.snapshots.files` turns it into JSON. Its reader produces it from a file.
Pure Python; no Django import."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chatstate.snapshots.snapshot import SECTIONS, Snapshot

DedupeKey = tuple[str, str]
Entry = tuple[str, dict[str, Any]]
PendingList = tuple[str, list[dict[str, Any]]]
Claim = tuple[DedupeKey, dict[str, Any]]
_T = TypeVar("_T")

__all__ = ["SECTIONS", "Claim", "DedupeKey", "Entry", "PendingList", "SnapshotSections"]


@dataclass
class SnapshotSections:
    """A snapshot as iterables, one per section; ``counts`` gives their lengths if known.

    The orders are those ``Snapshot.to_json`` writes, so the writer never sorts:

    - ``subscriptions``: thread ids, sorted in code-point order, as Python sorts ``str``.
    - ``dedupe``: ``(adapter, message_id)`` tuples, sorted.
    - ``dedupe_order``: the same keys, oldest first.
    - ``thread_state`` and ``channel_state``: ``(id, map)`` pairs sorted by id.
    - ``locks``: ``(key, {"owner", "strategy", "metadata"})`` sorted by key. The lock may
      also hold ``"acquired_at"`` and ``"expires_at"``.
    - ``pending_locks``: ``(key, [entry, ...])`` sorted by key, entries in arrival order.
    - ``claims``: ``((adapter, message_id), {"owner", "thread_id", "expires_at"})`` sorted
      by key. These are the dedupe keys a message cycle is handling right now. Each is also
      in the dedupe sections.
    - ``lists``: ``(key, {"items": [...], "expires_at": ISO or None})`` sorted by key.
    - ``outbox``: entry dicts ``{"key", "thread_id", "payload", "attempts", "dead",
      "created_at"}`` in commit order, oldest first. An entry may also hold ``"due_at"``.

    Each iterable is consumed at most once, section by section in any order. Values are what
    ``validate_snapshot`` accepts, so a loader may trust them. A producer that only feeds a
    loader may leave ``dedupe`` empty. Loaders read ``dedupe_order``, the authority. The
    file reader, :class:`~chatstate.snapshots.files.reader.SnapshotFile`, yields each
    section in the file's order. For a file this package wrote, that is the order above."""

    subscriptions: Iterable[str] = ()
    dedupe: Iterable[DedupeKey] = ()
    dedupe_order: Iterable[DedupeKey] = ()
    thread_state: Iterable[Entry] = ()
    channel_state: Iterable[Entry] = ()
    locks: Iterable[Entry] = ()
    pending_locks: Iterable[PendingList] = ()
    claims: Iterable[Claim] = ()
    lists: Iterable[Entry] = ()
    outbox: Iterable[dict[str, Any]] = ()
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> SnapshotSections:
        """The sections of an in-memory ``snapshot``, with its JSON form's orders and values."""
        data = snapshot.to_dict()
        sections = cls(
            subscriptions=data["subscriptions"],
            dedupe=[(a, m) for a, m in data["dedupe"]],
            dedupe_order=[(a, m) for a, m in data["dedupe_order"]],
            thread_state=list(data["thread_state"].items()),
            channel_state=list(data["channel_state"].items()),
            locks=list(data["locks"].items()),
            pending_locks=list(data["pending_locks"].items()),
            claims=[((c["key"][0], c["key"][1]), _claim(c)) for c in data["claims"]],
            lists=list(data["lists"].items()),
            outbox=data["outbox"],
        )
        sections.counts = {name: len(getattr(sections, name)) for name in SECTIONS}
        return sections

    def to_snapshot(self) -> Snapshot:
        """Consume every section into one in-memory ``Snapshot``; for small namespaces."""
        order = list(self.dedupe_order)
        return Snapshot(
            subscriptions=set(self.subscriptions),
            dedupe=set(order) | set(self.dedupe),
            dedupe_order=order,
            thread_state=dict(self.thread_state),
            channel_state=dict(self.channel_state),
            locks=dict(self.locks),
            pending_locks=dict(self.pending_locks),
            claims=dict(self.claims),
            lists=dict(self.lists),
            outbox=list(self.outbox),
        )

    def total(self) -> int:
        """Entries over every section, from the ``counts`` known; for progress reports."""
        return sum(self.counts.values())

    def observed(self, tick: Callable[[int], None], every: int = 10_000) -> SnapshotSections:
        """The same sections, each iterable calling ``tick(n)`` after every ``every`` entries.

        It also calls it at its end with the remainder. So a caller can show progress."""
        wrapped = {name: _ticking(getattr(self, name), tick, every) for name in SECTIONS}
        return SnapshotSections(**wrapped, counts=dict(self.counts))


def _claim(entry: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in entry.items() if name != "key"}


def _ticking(items: Iterable[_T], tick: Callable[[int], None], every: int) -> Iterator[_T]:
    n = 0
    for item in items:
        yield item
        n += 1
        if n == every:
            tick(n)
            n = 0
    if n:
        tick(n)
