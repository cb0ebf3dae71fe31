"""``write_snapshot``: the JSON form of a snapshot, written section by section.

The text written is exactly ``Snapshot.to_json(indent)`` of the same state (keys sorted,
sets sorted, non-ASCII kept, the same separators), produced from ``SnapshotSections``
iterables without holding more than one batch of entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from chatstate.snapshot import FORMAT, VERSION
from chatstate.transfer.sections import SnapshotSections

try:  # the C string encoder json itself uses for ensure_ascii=False
    from _json import encode_basestring as _enc_c

    _enc: Callable[[str], str] = _enc_c
except ImportError:  # pragma: no cover - CPython always has _json
    from json.encoder import py_encode_basestring as _enc

_BATCH = 8192


class TextSink(Protocol):
    def write(self, text: str, /) -> Any: ...


class UnsortedSection(ValueError):
    """A producer yielded a section out of order: the output would not be deterministic."""


def write_snapshot(sections: SnapshotSections, out: TextSink, indent: int | None = None) -> None:
    """Write the JSON form of ``sections`` to ``out``: ``Snapshot.to_json(indent)``'s text.

    Raises ``UnsortedSection`` when a sorted section (see ``SnapshotSections``) arrives out
    of order or repeats an entry, ``ValueError``/``TypeError`` for a non-JSON value; what was
    written before the error is then incomplete (callers writing files write a temporary one).
    """
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
            ("dedupe", lambda: self.keys(sections.dedupe, "dedupe", check=True)),
            ("dedupe_order", lambda: self.keys(sections.dedupe_order, "dedupe_order")),
            ("format", lambda: self.out.write(header["format"])),
            ("locks", lambda: self.mapping(sections.locks, "locks")),
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

    def container(self, open_: str, close: str, items: Iterable[str]) -> None:
        """``open_`` items… ``close`` at depth 1, items (already rendered) at depth 2."""
        batch: list[str] = []
        sep = "," + self.nl[2]
        first = True
        for item in items:
            batch.append(item)
            if len(batch) >= _BATCH:
                self.out.write((open_ + self.nl[2] if first else sep) + sep.join(batch))
                first = False
                batch.clear()
        if batch:
            self.out.write((open_ + self.nl[2] if first else sep) + sep.join(batch))
            first = False
        self.out.write(open_ + close if first else self.nl[1] + close)

    def ids(self, items: Iterable[str]) -> None:
        self.container("[", "]", (_enc(i) for i in _strictly_sorted(items, "subscriptions")))

    def keys(self, items: Iterable[tuple[str, str]], name: str, check: bool = False) -> None:
        if check:
            items = _strictly_sorted(items, name)
        inner, close = self.nl[3], self.nl[2]
        rendered = ("[" + inner + _enc(a) + "," + inner + _enc(m) + close + "]" for a, m in items)
        self.container("[", "]", rendered)

    def mapping(self, items: Iterable[tuple[str, Any]], name: str) -> None:
        colon = self.colon
        self.container(
            "{",
            "}",
            (_enc(k) + colon + self.value(v, 2) for k, v in _strictly_sorted(items, name, True)),
        )


def _strictly_sorted(items: Iterable[Any], name: str, by_key: bool = False) -> Iterable[Any]:
    """``items`` unchanged, checked to be strictly increasing (by first element if
    ``by_key``); raises ``UnsortedSection`` at the first violation."""
    previous: Any = None
    for item in items:
        key = item[0] if by_key else item
        if previous is not None and not previous < key:
            raise UnsortedSection(f"{name}: {key!r} arrives after {previous!r}")
        previous = key
        yield item
