"""Snapshots: the whole state of one namespace as a plain value, and its JSON form.

Two readers share one set of checks (the ``_Scan`` class below):

- ``validate_snapshot`` / ``Snapshot.from_json`` / ``Snapshot.from_dict`` are strict: they
  report every problem, each prefixed with its JSON path, and accept nothing they would not
  write back identically.
- ``normalize_snapshot`` is lenient, like the Elixir original: it repairs what it can, drops
  what it cannot, and never raises. Whatever it returns passes ``validate_snapshot``.

Pure Python; no Django import.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, TypeGuard, TypeVar

FORMAT = "chatstate.snapshot"
VERSION = 1
MAX_ID_LENGTH = 255
STRATEGIES = ("concurrent", "debounce", "queue", "reject")

DedupeKey = tuple[str, str]

_SECTIONS = (
    "subscriptions",
    "dedupe",
    "dedupe_order",
    "thread_state",
    "channel_state",
    "locks",
    "pending_locks",
)
_TOP_LEVEL = ("format", "version", *_SECTIONS)
_ENTRY_FIELDS = ("owner", "strategy", "metadata")
_LOCK_TIMES = ("acquired_at", "expires_at")
_PENDING_TIMES = ("enqueued_at",)

_EXPECTED_ID = f"expected a non-empty string of at most {MAX_ID_LENGTH} characters"
_EXPECTED_MAP_KEY = (
    f"expected its key to be a non-empty string of at most {MAX_ID_LENGTH} characters"
)
_EXPECTED_DEDUPE_KEY = "expected [adapter, message_id]"
_EXPECTED_STRATEGY = "expected one of " + ", ".join(STRATEGIES)
_EXPECTED_OBJECT = "expected an object"
_EXPECTED_ARRAY = "expected an array"
_EXPECTED_JSON = (
    "expected JSON values only (objects with string keys, arrays, strings, finite numbers, "
    "booleans, null)"
)
_EXPECTED_TIME = "expected an ISO 8601 UTC timestamp"

_H = TypeVar("_H", bound=Hashable)


@dataclass
class Snapshot:
    """The whole state of one namespace; equal when its fields are equal."""

    subscriptions: set[str] = field(default_factory=set)
    dedupe: set[DedupeKey] = field(default_factory=set)
    dedupe_order: list[DedupeKey] = field(default_factory=list)  # oldest first
    thread_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    channel_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    locks: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_locks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: a fresh dict (deep copies), ``format`` and ``version`` first, sets
        sorted, dedupe keys as 2-element lists, map keys sorted. Equal snapshots give equal
        dicts with equal key order."""
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
        }

    def to_json(self, indent: int | None = None) -> str:
        """The JSON text: keys sorted, non-ASCII kept, compact without ``indent``. Two equal
        snapshots give identical text. Raises ``ValueError``/``TypeError`` only for a snapshot
        holding non-JSON values (which ``validate_snapshot`` reports)."""
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
        """Parses the JSON form strictly. Raises ``InvalidSnapshot`` (a ``ValueError``) listing
        every problem; invalid JSON (also NaN/Infinity or a repeated key) is one problem."""
        try:
            obj = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise InvalidSnapshot([f"$: invalid JSON: {exc}"]) from exc
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: object) -> Snapshot:
        """Like ``from_json`` for an already parsed object (or a ``Snapshot``): raises
        ``InvalidSnapshot`` unless ``validate_snapshot(obj) == []``; the result is a copy that
        shares no mutable value with ``obj``."""
        scan = _Scan(strict=True)
        snapshot = scan.run(obj)
        if scan.problems:
            raise InvalidSnapshot(scan.problems)
        return snapshot


class InvalidSnapshot(ValueError):
    """A snapshot failed strict validation; ``problems`` lists every problem with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"- {problem}" for problem in self.problems)
        super().__init__(f"invalid snapshot ({len(self.problems)} problems):\n{lines}")


def default_snapshot() -> Snapshot:
    """A snapshot with every field empty."""
    return Snapshot()


def normalize_snapshot(obj: object) -> Snapshot:
    """Lenient: the best ``Snapshot`` that can be made of ``obj``; never raises.

    See ``normalize_snapshot_counting`` for the rules. The result always passes
    ``validate_snapshot`` and survives ``to_json``/``from_json`` unchanged."""
    return normalize_snapshot_counting(obj)[0]


def normalize_snapshot_counting(obj: object) -> tuple[Snapshot, int]:
    """``normalize_snapshot(obj)`` and how many values it dropped.

    - ``obj`` may be a ``Snapshot`` (a normalized deep copy is returned) or a mapping in the
      JSON form; ``format``/``version`` are ignored; anything else (``None`` excepted, which
      drops nothing) gives ``default_snapshot()`` and counts 1.
    - Sections may be lists, tuples or sets; a missing or ``None`` section is empty; a
      malformed one is empty and counts 1; each unknown top-level key counts 1.
    - Entries of the wrong shape are dropped, one count each: identifiers must be non-empty
      ``str`` of at most 255 characters, dedupe keys 2-element lists/tuples of those, state
      maps dicts with ``str`` keys whose values survive a JSON round trip (nested tuples
      become lists), locks and pending entries need an ``owner``, a known ``strategy`` and a
      dict ``metadata`` (``None`` or missing becomes ``{}``). Duplicates count as drops.
    - In a lock or pending entry, an unknown key or a timestamp that is not an ISO 8601 UTC
      string is dropped (one count each; ``None`` counts nothing); valid timestamps are kept
      exactly as given.
    - ``dedupe_order`` is the authority: its keys are added to ``dedupe``; keys only in
      ``dedupe`` are appended to the order, sorted. Afterwards ``set(dedupe_order) == dedupe``.
    """
    scan = _Scan(strict=False)
    snapshot = scan.run(obj)
    return snapshot, len(scan.problems)


def validate_snapshot(obj: object) -> list[str]:
    """Strict: every problem of ``obj`` (the JSON form, or a ``Snapshot``), each prefixed with
    its JSON path, e.g. ``"dedupe_order[3]: expected [adapter, message_id]"``; ``[]`` when
    ``Snapshot.from_dict(obj)`` would succeed.

    Required: ``format == "chatstate.snapshot"`` and ``version == 1``. Sections may be missing
    (empty). Also problems: unknown keys, duplicates in ``subscriptions``/``dedupe``/
    ``dedupe_order``, ``set(dedupe_order) != set(dedupe)``, values that would not survive a
    JSON round trip unchanged."""
    scan = _Scan(strict=True)
    scan.run(obj)
    return scan.problems


# --- the shared predicates ----------------------------------------------------------------


def _is_id(value: object) -> TypeGuard[str]:
    """A thread/channel/lock id, owner or dedupe half: a non-empty str of at most 255 chars."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def _as_id(value: object) -> str | None:
    return value if _is_id(value) else None


def _as_dedupe_key(value: object) -> DedupeKey | None:
    """``(adapter, message_id)`` from a 2-element list or tuple of ids, else ``None``."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        adapter, message_id = value
        if _is_id(adapter) and _is_id(message_id):
            return (adapter, message_id)
    return None


def _as_strategy(value: object) -> str | None:
    """The plain ``str`` name of a known strategy (a ``str`` enum member works too)."""
    if isinstance(value, str):
        for name in STRATEGIES:
            if value == name:
                return name
    return None


def _is_timestamp(value: object) -> bool:
    """An ISO 8601 string with a UTC offset of zero (``Z`` or ``+00:00``)."""
    if not isinstance(value, str):
        return False
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.utcoffset() == timedelta(0)


def _json_object(value: object, strict: bool) -> tuple[dict[str, Any] | None, str | None]:
    """``(copy, None)`` for a dict with str keys that ``json.dumps`` accepts, the copy being
    its JSON round trip; ``(None, problem)`` otherwise. Strict also requires the round trip to
    change nothing (no tuples, no non-str nested keys)."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        return None, _EXPECTED_OBJECT
    try:
        result = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None, _EXPECTED_JSON
    if strict and result != value:
        return None, _EXPECTED_JSON
    return result, None


# --- the one pass shared by validate (strict) and normalize (lenient) -----------------------


class _Scan:
    """Reads a snapshot-like object into a ``Snapshot`` and collects problems.

    Strict: every problem. Lenient: repairs silently what loses nothing, records one problem
    per dropped value (so ``len(problems)`` is the drop count)."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.problems: list[str] = []

    def report(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def run(self, obj: object) -> Snapshot:
        if isinstance(obj, Snapshot):
            obj = {"format": FORMAT, "version": VERSION} | {
                f.name: getattr(obj, f.name) for f in fields(obj)
            }
        if not isinstance(obj, Mapping):
            if self.strict or obj is not None:
                self.report("$", _EXPECTED_OBJECT)
            return default_snapshot()
        for key in obj:
            if key not in _TOP_LEVEL:
                plain = isinstance(key, str) and key.isidentifier()
                self.report(key if plain else _path("$", key), "unknown key")
        if self.strict:
            self.check_header(obj)
        subscriptions = self.unique(
            "subscriptions", self.items(obj, "subscriptions"), _as_id, _EXPECTED_ID
        )
        dedupe = self.unique(
            "dedupe", self.items(obj, "dedupe"), _as_dedupe_key, _EXPECTED_DEDUPE_KEY
        )
        order = self.unique(
            "dedupe_order",
            self.items(obj, "dedupe_order", ordered=True),
            _as_dedupe_key,
            _EXPECTED_DEDUPE_KEY,
        )
        order = self.reconcile(dedupe, order)
        return Snapshot(
            subscriptions=set(subscriptions),
            dedupe=set(order),
            dedupe_order=order,
            thread_state=self.states(obj, "thread_state"),
            channel_state=self.states(obj, "channel_state"),
            locks=self.locks(obj),
            pending_locks=self.pending_locks(obj),
        )

    def check_header(self, obj: Mapping[Any, Any]) -> None:
        if obj.get("format") != FORMAT or not isinstance(obj.get("format"), str):
            self.report("format", f"expected {FORMAT!r}")
        version = obj.get("version")
        knows = f"(this code knows {VERSION})"
        if "version" not in obj:
            self.report("version", f"missing {knows}")
        elif not isinstance(version, int) or isinstance(version, bool):
            self.report("version", f"expected an integer {knows}")
        elif version != VERSION:
            self.report("version", f"unsupported version {version} {knows}")

    def section(self, obj: Mapping[Any, Any], name: str) -> object:
        """The section's value; ``None`` when missing (or, lenient, when ``None``)."""
        value = obj.get(name)
        return None if name not in obj or (value is None and not self.strict) else value

    def items(self, obj: Mapping[Any, Any], name: str, ordered: bool = False) -> list[Any]:
        """The entries of an array section. Sets are accepted where order does not matter
        (and, lenient, everywhere: sorted by ``repr`` for determinism)."""
        value = self.section(obj, name)
        if value is None and name not in obj:
            return []
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, (set, frozenset)) and not (ordered and self.strict):
            return sorted(value, key=repr)
        if value is not None or self.strict:
            self.report(name, _EXPECTED_ARRAY)
        return []

    def unique(
        self, name: str, items: list[Any], convert: Callable[[object], _H | None], expected: str
    ) -> list[_H]:
        """The converted entries, without rejects and duplicates (first occurrence kept)."""
        values: list[_H] = []
        first: dict[_H, int] = {}
        for index, raw in enumerate(items):
            value = convert(raw)
            if value is None:
                self.report(f"{name}[{index}]", expected)
            elif value in first:
                self.report(f"{name}[{index}]", f"duplicate of {name}[{first[value]}]")
            else:
                first[value] = index
                values.append(value)
        return values

    def reconcile(self, dedupe: list[DedupeKey], order: list[DedupeKey]) -> list[DedupeKey]:
        """The order extended with the keys only in ``dedupe`` (sorted); strict reports both
        kinds of mismatch."""
        in_dedupe, in_order = set(dedupe), set(order)
        only_dedupe = sorted(in_dedupe - in_order)
        if self.strict:
            if only_dedupe:
                self.report("dedupe_order", f"missing keys present in dedupe: {_few(only_dedupe)}")
            only_order = [key for key in order if key not in in_dedupe]
            if only_order:
                self.report("dedupe", f"missing keys present in dedupe_order: {_few(only_order)}")
        return order + only_dedupe

    def mapping(self, obj: Mapping[Any, Any], name: str) -> Iterable[tuple[str, str, Any]]:
        """``(key, path, value)`` for each entry of an object section with a valid id key."""
        value = self.section(obj, name)
        if value is None and name not in obj:
            return
        if not isinstance(value, Mapping):
            if value is not None or self.strict:
                self.report(name, _EXPECTED_OBJECT)
            return
        for key, item in value.items():
            path = _path(name, key)
            if _is_id(key):
                yield key, path, item
            else:
                self.report(path, _EXPECTED_MAP_KEY)

    def states(self, obj: Mapping[Any, Any], name: str) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for key, path, value in self.mapping(obj, name):
            state, problem = _json_object(value, self.strict)
            if state is None:
                self.report(path, problem or _EXPECTED_OBJECT)
            else:
                result[key] = state
        return result

    def locks(self, obj: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for key, path, value in self.mapping(obj, "locks"):
            entry = self.entry(path, value, _LOCK_TIMES)
            if entry is not None:
                result[key] = entry
        return result

    def pending_locks(self, obj: Mapping[Any, Any]) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = {}
        for key, path, value in self.mapping(obj, "pending_locks"):
            if not isinstance(value, (list, tuple)):
                self.report(path, _EXPECTED_ARRAY)
                continue
            entries = (
                self.entry(f"{path}[{i}]", raw, _PENDING_TIMES) for i, raw in enumerate(value)
            )
            result[key] = [entry for entry in entries if entry is not None]
        return result

    def entry(self, path: str, value: object, times: tuple[str, ...]) -> dict[str, Any] | None:
        """A lock or pending entry ``{owner, strategy, metadata}`` plus valid ``times``.

        An entry with a bad owner, strategy or metadata is dropped whole (lenient: one
        problem); a bad timestamp or unknown key drops just that key."""
        if not isinstance(value, Mapping):
            self.report(path, _EXPECTED_OBJECT)
            return None
        owner, strategy, metadata = (value.get(name) for name in _ENTRY_FIELDS)
        if metadata is None and not self.strict:
            metadata = {}
        metadata, metadata_problem = _json_object(metadata, self.strict)
        core: list[tuple[str, str]] = []
        if not _is_id(owner):
            core.append((f"{path}.owner", _EXPECTED_ID))
        if _as_strategy(strategy) is None:
            core.append((f"{path}.strategy", _EXPECTED_STRATEGY))
        if metadata_problem is not None:
            core.append((f"{path}.metadata", metadata_problem))
        if core and not self.strict:
            self.report(*core[0])
            return None
        for problem in core:
            self.report(*problem)
        entry = {"owner": owner, "strategy": _as_strategy(strategy), "metadata": metadata}
        for key, item in value.items():
            if key in _ENTRY_FIELDS:
                continue
            sub = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"
            if key not in times:
                self.report(sub, "unknown key")
            elif _is_timestamp(item):
                entry[key] = item
            elif item is not None or self.strict:
                self.report(sub, _EXPECTED_TIME)
        return None if core else entry


# --- small helpers --------------------------------------------------------------------------


def _path(section: str, key: object) -> str:
    """``section['key']``, the key's repr shortened to 80 characters."""
    text = repr(key)
    return f"{section}[{text if len(text) <= 80 else text[:77] + '...'}]"


def _few(keys: list[DedupeKey]) -> str:
    """``"2 (["a", "b"], ["a", "c"])"``: a count and the first three keys."""
    shown = ", ".join(json.dumps(list(key), ensure_ascii=False) for key in keys[:3])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > 3 else ''})"


def _sorted_copy(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(mapping[key]) for key in sorted(mapping)}


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"repeated key {key!r} in an object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def snapshot_from(obj: object) -> Snapshot:
    """The snapshot an adapter loads from ``obj`` (a ``Snapshot`` or the JSON form as a
    mapping); ``TypeError`` for anything else."""
    if not isinstance(obj, (Snapshot, Mapping)):
        raise TypeError(f"snapshot must be a Snapshot or a mapping, not {type(obj).__name__}")
    return normalize_snapshot(obj)
