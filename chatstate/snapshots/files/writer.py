"""``write_snapshot``: the JSON form of a snapshot, written section by section.

The text written is exactly ``Snapshot.to_json(indent)`` of the same state. Keys and sets
are sorted, non-ASCII is kept, and the separators are the same. It is produced from
``SnapshotSections`` iterables, holding at most one batch of entries."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable
from itertools import islice, pairwise
from typing import Any, Protocol

from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import FORMAT, VERSION

try:  # the C string encoder json itself uses for ensure_ascii=False
    from _json import encode_basestring as _enc_c

    _enc: Callable[[str], str] = _enc_c
except ImportError:  # pragma: no cover - CPython always has _json
    from json.encoder import py_encode_basestring as _enc

_BATCH = 8192


class TextSink(Protocol):
    def write(self, text: str, /) -> Any: ...


class UnsortedSection(ValueError):
    """A producer yielded a section out of order; the output would not be deterministic."""


def write_snapshot(sections: SnapshotSections, out: TextSink, indent: int | None = None) -> None:
    """Write the JSON form of ``sections`` to ``out``: ``Snapshot.to_json(indent)``'s text.

    It raises ``UnsortedSection`` when a sorted section arrives out of order or repeats an
    entry; ``SnapshotSections`` lists the sorted ones. It raises ``ValueError`` or
    ``TypeError`` for a non-JSON value. The text written before the error is then
    incomplete. Callers writing files write a temporary one."""
    if indent is not None and (isinstance(indent, bool) or indent < 0):
        raise ValueError(f"indent must be an int >= 0 or None, not {indent!r}")
    _Writer(out, indent).write(sections)


class _Writer:
    def __init__(self, out: TextSink, indent: int | None) -> None:
        self.out = out
        self.indent = indent
        pad = "" if indent is None else " " * indent
        self.compact = indent is None
        # Line breaks before an item at depth 1, 2, 3 (empty strings when compact).
        self.nl = ["" if self.compact else "\n" + pad * depth for depth in range(4)]
        self.colon = ":" if self.compact else ": "
        self.dumps = json.JSONEncoder(
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
            indent=indent,
            separators=(",", ":") if indent is None else None,
        ).encode

    def write(self, sections: SnapshotSections) -> None:
        self.out.write("{")
        header = {"format": _enc(FORMAT), "version": str(VERSION)}
        parts: list[tuple[str, Callable[[], None]]] = [
            ("channel_state", lambda: self.mapping(sections.channel_state, "channel_state")),
            ("claims", lambda: self.claims(sections.claims)),
            ("dedupe", lambda: self.keys(sections.dedupe, "dedupe", check=True)),
            ("dedupe_order", lambda: self.keys(sections.dedupe_order, "dedupe_order")),
            ("format", lambda: self.out.write(header["format"])),
            ("lists", lambda: self.mapping(sections.lists, "lists")),
            ("locks", lambda: self.mapping(sections.locks, "locks")),
            ("outbox", lambda: self.entries(sections.outbox)),
            ("pending_locks", lambda: self.mapping(sections.pending_locks, "pending_locks")),
            ("subscriptions", lambda: self.ids(sections.subscriptions)),
            ("thread_state", lambda: self.mapping(sections.thread_state, "thread_state")),
            ("version", lambda: self.out.write(header["version"])),
        ]
        for index, (name, body) in enumerate(parts):
            self.out.write(("," if index else "") + self.nl[1] + _enc(name) + self.colon)
            body()
        self.out.write(self.nl[0] + "}")

    def value(self, value: Any, depth: int) -> str:
        text: str = self.dumps(value)
        return text if self.compact else text.replace("\n", self.nl[depth])

    def container(
        self,
        open_: str,
        close: str,
        items: Iterable[Any],
        render: Callable[[list[Any]], str],
        order: _Order | None,
    ) -> None:
        """``open_`` items ``close`` at depth 1, the items at depth 2.

        ``render`` renders the items a batch at a time, joined by the separator. ``order``
        checks they strictly increase."""
        sep = "," + self.nl[2]
        first = True
        iterator = iter(items)
        while batch := list(islice(iterator, _BATCH)):
            if order is not None:
                order.check(batch)
            self.out.write((open_ + self.nl[2] if first else sep) + render(batch))
            first = False
        self.out.write(open_ + close if first else self.nl[1] + close)

    def array(self, batch: list[Any]) -> str:
        """A batch of ids or keys, compact, as the C encoder writes a list, without its brackets.

        These are exactly the items ``to_json`` writes."""
        return self.dumps(batch)[1:-1]

    def ids(self, items: Iterable[str]) -> None:
        sep = "," + self.nl[2]
        render = self.array if self.compact else lambda b: sep.join([_enc(i) for i in b])
        self.container("[", "]", items, render, _Order("subscriptions"))

    def keys(self, items: Iterable[tuple[str, str]], name: str, check: bool = False) -> None:
        inner, close, sep = self.nl[3], self.nl[2], "," + self.nl[2]

        def indented(batch: list[tuple[str, str]]) -> str:
            return sep.join([f"[{inner}{_enc(a)},{inner}{_enc(m)}{close}]" for a, m in batch])

        render = self.array if self.compact else indented
        self.container("[", "]", items, render, _Order(name) if check else None)

    def mapping(self, items: Iterable[tuple[str, Any]], name: str) -> None:
        colon, value, sep = self.colon, self.value, "," + self.nl[2]

        def render(batch: list[tuple[str, Any]]) -> str:
            if self.compact:  # keys arrive sorted and unique: the encoder keeps their order
                return self.dumps(dict(batch))[1:-1]
            return sep.join([_enc(k) + colon + value(v, 2) for k, v in batch])

        self.container("{", "}", items, render, _Order(name, by_key=True))

    def claims(self, items: Iterable[tuple[tuple[str, str], dict[str, Any]]]) -> None:
        value, sep = self.value, "," + self.nl[2]

        def render(batch: list[tuple[tuple[str, str], dict[str, Any]]]) -> str:
            entries = [{**claim, "key": [key[0], key[1]]} for key, claim in batch]
            if self.compact:
                return self.dumps(entries)[1:-1]
            return sep.join([value(entry, 2) for entry in entries])

        self.container("[", "]", items, render, _Order("claims", by_key=True))

    def entries(self, items: Iterable[dict[str, Any]]) -> None:
        """An array of objects in the order given; for the outbox, commit order."""
        value, sep = self.value, "," + self.nl[2]

        def render(batch: list[dict[str, Any]]) -> str:
            if self.compact:
                return self.dumps(batch)[1:-1]
            return sep.join([value(entry, 2) for entry in batch])

        self.container("[", "]", items, render, None)


class _Order:
    """Check that a section's items, seen a batch at a time, strictly increase.

    With ``by_key``, they are compared by their first element. ``UnsortedSection`` is raised
    at the first violation."""

    def __init__(self, name: str, by_key: bool = False) -> None:
        self.name = name
        self.by_key = by_key
        self.last: Any = None

    def check(self, batch: list[Any]) -> None:
        keys = [item[0] for item in batch] if self.by_key else batch
        if self.last is not None:
            keys = [self.last, *keys]
        if not all(map(operator.lt, keys, islice(keys, 1, None))):
            for before, after in pairwise(keys):
                if not before < after:
                    raise UnsortedSection(f"{self.name}: {after!r} arrives after {before!r}")
        self.last = keys[-1]
