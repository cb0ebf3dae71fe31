"""Snapshots: the whole state of one namespace as a plain value, and its JSON form.

Every reader shares one set of rules, :class:`chatstate.snapshots.scan.Scan`.
``validate_snapshot``, ``Snapshot.from_json``, ``Snapshot.from_dict`` and ``snapshot_from``
are strict. They report every problem, each prefixed with its JSON path. They accept nothing
they would not write back identically. ``normalize_snapshot`` is lenient. It repairs what it
can, drops what it cannot, and never raises. What it returns passes ``validate_snapshot``.

Pure Python; no Django import."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatstate.snapshots import jsontext
from chatstate.snapshots.checks import MAX_ID_LENGTH, STRATEGIES, DedupeKey
from chatstate.snapshots.scan import FORMAT, SECTIONS, VERSION, VERSIONS, Problems, Scan

__all__ = [
    "FORMAT",
    "MAX_ID_LENGTH",
    "SECTIONS",
    "STRATEGIES",
    "VERSION",
    "VERSIONS",
    "DedupeKey",
    "InvalidSnapshot",
    "Snapshot",
    "SnapshotNotJSON",
    "default_snapshot",
    "normalize_snapshot",
    "normalize_snapshot_counting",
    "normalize_snapshot_drops",
    "snapshot_from",
    "validate_snapshot",
]


@dataclass
class Snapshot:
    """The whole state of one namespace; equal when its fields are equal.

    ``claims`` are the dedupe keys a message cycle is handling right now. Each is
    ``{"owner", "thread_id", "expires_at"}``, the time in ISO 8601 UTC. A claim is a dedupe
    entry in progress, so its key is also in ``dedupe``.

    ``lists`` are capped lists by key, from version 3. Thread histories are among them,
    keyed ``history:<thread_id>``. Each is ``{"items": [...], "expires_at": ...}``. The
    items are JSON values, oldest first. ``expires_at`` is ISO 8601 UTC or None.

    ``outbox`` holds the replies waiting for delivery, in commit order, from version 3. Each
    entry is ``{"key", "thread_id", "payload", "attempts", "dead", "created_at"}``, plus
    ``"due_at"`` where known. ``key`` is unique in the snapshot."""

    subscriptions: set[str] = field(default_factory=set)
    dedupe: set[DedupeKey] = field(default_factory=set)
    dedupe_order: list[DedupeKey] = field(default_factory=list)  # oldest first
    thread_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    channel_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    locks: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_locks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    claims: dict[DedupeKey, dict[str, Any]] = field(default_factory=dict)
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as a fresh dict of deep copies.

        ``format`` and ``version`` come first. Sets are sorted. Dedupe keys are 2-element
        lists. Map keys are sorted, in ``lists`` too. Claims are sorted by key. The outbox
        keeps its order. Equal snapshots give equal dicts with equal key order."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "subscriptions": sorted(self.subscriptions),
            "dedupe": [list(key) for key in sorted(self.dedupe)],
            "dedupe_order": [list(key) for key in self.dedupe_order],
            "thread_state": _sorted_copy(self.thread_state),
            "channel_state": _sorted_copy(self.channel_state),
            "locks": _sorted_copy(self.locks),
            "pending_locks": _sorted_copy(self.pending_locks),
            "claims": [
                {"key": list(key), **copy.deepcopy(self.claims[key])} for key in sorted(self.claims)
            ],
            "lists": _sorted_copy(self.lists),
            "outbox": copy.deepcopy(self.outbox),
        }

    def to_json(self, indent: int | None = None) -> str:
        """The JSON text: keys sorted, non-ASCII kept, compact without ``indent``.

        Two equal snapshots give identical text. It raises ``ValueError`` or ``TypeError``
        only for a snapshot holding non-JSON values. ``validate_snapshot`` reports those."""
        return json.dumps(
            self.to_dict(),
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
            indent=indent,
            separators=(",", ":") if indent is None else None,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Parse the JSON form strictly.

        It raises ``InvalidSnapshot``, a ``ValueError``, listing every problem. Invalid JSON
        is one problem, in the words of the interpreter's ``json``, with its line and
        column. A refused value also names its JSON path. Refused values are NaN, Infinity,
        a key repeated in an object, an integer of more than 4300 digits, and nesting deeper
        than 512 levels."""
        try:
            obj = jsontext.loads(text)
        except UnicodeDecodeError as exc:
            raise InvalidSnapshot([f"$: invalid JSON: {exc}"]) from None
        except json.JSONDecodeError as exc:  # nesting too deep before it comes first
            decoded = _text(text)
            if not jsontext.too_deep(decoded, exc.pos):
                raise InvalidSnapshot([f"$: invalid JSON: {exc}"]) from None
            raise InvalidSnapshot([jsontext.document_problem(decoded, exc)]) from None
        except (ValueError, RecursionError) as exc:
            raise InvalidSnapshot([jsontext.document_problem(_text(text), exc)]) from None
        decoded = _text(text)
        if jsontext.too_deep(decoded):
            raise InvalidSnapshot([jsontext.document_problem(decoded, None)])
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: object) -> Snapshot:
        """``from_json`` for an already parsed object, or a ``Snapshot``.

        It raises ``InvalidSnapshot`` unless ``validate_snapshot(obj) == []``. The result is
        a copy that shares no mutable value with ``obj``."""
        snapshot, problems = _scan(obj, strict=True)
        if problems.total:
            raise InvalidSnapshot(problems.lines())
        return snapshot


class InvalidSnapshot(ValueError):
    """A snapshot failed strict validation.

    ``problems`` lists every problem with its path. ``total`` counts them, so a reader that
    lists only the first ones says how many more. ``stopped`` means the reader stopped at
    its ``max_problems``; ``total`` is then a lower bound."""

    def __init__(
        self, problems: list[str], total: int | None = None, stopped: bool = False
    ) -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        self.stopped = stopped
        what = "invalid snapshot, checking stopped" if stopped else "invalid snapshot"
        super().__init__(_describe(what, self.problems, self.total, stopped))


class SnapshotNotJSON(TypeError):
    """A snapshot holds a value no JSON text can hold.

    Such values are an object, a set, NaN, a non-``str`` key. ``problems`` lists every
    problem with its path, those values included."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        message = "snapshot holds values that are not JSON"
        super().__init__(_describe(message, self.problems, len(self.problems)))


def _describe(what: str, problems: list[str], total: int, stopped: bool = False) -> str:
    lines = "\n".join(f"- {problem}" for problem in problems)
    more = f"\n- ... and {total - len(problems)} more" if total > len(problems) else ""
    least = "at least " if stopped else ""
    return f"{what} ({least}{total} problem{'s' if total != 1 else ''}):\n{lines}{more}"


def default_snapshot() -> Snapshot:
    """A snapshot with every field empty."""
    return Snapshot()


def snapshot_from(obj: object) -> Snapshot:
    """A ``Snapshot`` or a mapping in the JSON form, checked strictly; a fresh copy.

    This is what ``load_snapshot`` and ``from_snapshot`` accept. A mapping may leave out
    ``format`` and ``version``; it then means the current version. When present they must be
    valid. ``TypeError`` when ``obj`` is neither. ``SnapshotNotJSON``, a ``TypeError``, when
    it holds a value that is not JSON. Any other problem raises ``InvalidSnapshot``, a
    ``ValueError``. Both list every problem with its JSON path."""
    if not isinstance(obj, (Snapshot, Mapping)):
        raise TypeError(f"snapshot must be a Snapshot or a mapping, not {type(obj).__name__}")
    if isinstance(obj, Mapping) and ("format" not in obj or "version" not in obj):
        obj = {"format": FORMAT, "version": VERSION, **obj}
    snapshot, problems = _scan(obj, strict=True)
    if problems.not_json:
        raise SnapshotNotJSON(problems.lines())
    if problems.total:
        raise InvalidSnapshot(problems.lines())
    return snapshot


def normalize_snapshot(obj: object) -> Snapshot:
    """The best ``Snapshot`` that can be made of ``obj``; never raises.

    ``normalize_snapshot_counting`` gives the rules. The result always passes
    ``validate_snapshot``. It survives ``to_json`` and ``from_json`` unchanged."""
    return normalize_snapshot_counting(obj)[0]


def normalize_snapshot_counting(obj: object) -> tuple[Snapshot, int]:
    """``normalize_snapshot(obj)`` and how many values it dropped.

    - ``obj`` may be a ``Snapshot``; a normalized deep copy is returned. It may be a mapping
      in the JSON form; ``format`` and ``version`` are ignored. ``None`` gives
      ``default_snapshot()`` and drops nothing. Anything else gives ``default_snapshot()``
      and counts 1.
    - Sections may be lists, tuples or sets. A missing or ``None`` section is empty. A
      malformed one is empty and counts 1. Each unknown top-level key counts 1.
    - Entries of the wrong shape are dropped, one count each. Duplicates count as drops.
    - Identifiers are non-empty ``str`` of at most 255 characters, without NUL or lone
      surrogates. Dedupe keys are 2-element lists or tuples of those.
    - State maps are dicts with ``str`` keys. Their values survive a JSON round trip and
      hold storable text, nested at most 512 deep. Nested tuples become lists.
    - Locks and pending entries need an ``owner``, a known ``strategy`` and a dict
      ``metadata``. A ``None`` or missing ``metadata`` becomes ``{}``.
    - Claims need an ``owner``, a ``thread_id``, an ``expires_at`` and a key in ``dedupe``.
    - A list needs an ``items`` array. A bad item is dropped from it. A missing or bad
      ``expires_at`` becomes null; only a bad one is counted.
    - An outbox entry needs a valid ``key``, ``thread_id``, ``payload``, ``attempts``,
      ``dead`` and ``created_at``. The first entry with a key is kept. A bad ``due_at`` is
      dropped from it.
    - In a lock or pending entry, an unknown key is dropped, one count each. So is a
      timestamp that is not an ISO 8601 UTC string; ``None`` counts nothing. Valid
      timestamps are kept exactly as given.
    - ``dedupe_order`` is the authority. Its keys are added to ``dedupe``. Keys only in
      ``dedupe`` are appended to the order, sorted. Afterwards ``set(dedupe_order) ==
      dedupe``.
    """
    snapshot, problems = _scan(obj, strict=False)
    return snapshot, problems.total


def normalize_snapshot_drops(obj: object, listed: int = 1000) -> tuple[Snapshot, int, list[str]]:
    """``normalize_snapshot(obj)``, how many values it dropped, and why.

    The first ``listed`` drops are given as ``"path: why"``, for example
    ``"subscriptions[3]: duplicate of subscriptions[0]"``. They come in the order
    ``validate_snapshot`` reports problems."""
    snapshot, problems = _scan(obj, strict=False, listed=listed)
    return snapshot, problems.total, problems.lines()


def validate_snapshot(obj: object) -> list[str]:
    """Every problem of ``obj``, each prefixed with its JSON path; strict.

    ``obj`` is the JSON form or a ``Snapshot``. A problem reads like ``"dedupe_order[3]:
    expected [adapter, message_id]"``. The result is ``[]`` when ``Snapshot.from_dict(obj)``
    would succeed.

    ``format == "chatstate.snapshot"`` is required. So is a ``version`` from 1 to 3. Claims
    need version 2, lists and outbox version 3. Missing sections are empty. Each of these is
    a problem:

    - An unknown key.
    - A duplicate in ``subscriptions``, ``dedupe``, ``dedupe_order`` or ``claims``.
    - Two outbox entries with the same ``key``.
    - ``set(dedupe_order) != set(dedupe)``.
    - A claim whose key is not in ``dedupe``.
    - Text with a NUL character or a lone surrogate, in any id, key or value.
    - A value that would not survive a JSON round trip unchanged.
    - Nesting deeper than 512 levels.
    - In a list: a key longer than 320 characters, or ``items`` not an array. Also an
      ``expires_at`` missing, or neither a timestamp nor null.
    - In an outbox entry: ``attempts`` not an integer >= 0, or ``dead`` not a boolean. Also
      a ``created_at`` that is not a timestamp, or a ``due_at`` present and not a timestamp.
    """
    return _scan(obj, strict=True)[1].lines()


def _scan(obj: object, strict: bool, listed: int | None = None) -> tuple[Snapshot, Problems]:
    if isinstance(obj, Snapshot):
        obj = _json_form(obj)
    scan = Scan(strict, Problems(listed))
    return Snapshot(**scan.run(obj)), scan.problems


def _json_form(snapshot: Snapshot) -> dict[str, Any]:
    """The fields of ``snapshot`` in the shape the scanner reads, without copies."""
    form: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    form.update((name, getattr(snapshot, name)) for name in SECTIONS if name != "claims")
    form["claims"] = [
        {**claim, "key": key} if isinstance(claim, Mapping) else claim
        for key, claim in snapshot.claims.items()
    ]
    return form


def _text(text: str | bytes) -> str:
    """``text`` as ``json.loads`` decodes it; it gets here only after decoding once."""
    if isinstance(text, str):
        return text
    return text.decode(json.detect_encoding(text), "surrogatepass")


def _sorted_copy(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: copy.deepcopy(mapping[key]) for key in sorted(mapping)}
