"""``Scan``: read a snapshot-like object and report its problems, each with its JSON path.

Every reader shares this one set of rules. ``validate_snapshot`` and ``Snapshot.from_json``
are strict and report every problem. ``normalize_snapshot`` is lenient. It repairs what
loses nothing and drops the rest, one problem per dropped value. The streaming reader of
:mod:`chatstate.snapshots.files` feeds the same per-entry methods one entry at a time. Pure
Python; no Django import."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from chatstate.snapshots.checks import (
    EXPECTED_ARRAY,
    EXPECTED_DEDUPE_KEY,
    EXPECTED_ID,
    EXPECTED_MAP_KEY,
    EXPECTED_OBJECT,
    EXPECTED_STRATEGY,
    EXPECTED_TIME,
    DedupeKey,
    Problem,
    Problems,
    as_dedupe_key,
    as_strategy,
    dedupe_key_problem,
    field_path,
    id_problem,
    is_timestamp,
    json_copy,
    key_path,
)
from chatstate.snapshots.lists_outbox import ListsOutboxScan, list_key_problem

FORMAT = "chatstate.snapshot"
#: The version written; every version in ``VERSIONS`` is read.
VERSION = 3
VERSIONS = (1, 2, 3)
ARRAYS = ("subscriptions", "dedupe", "dedupe_order")
MAPS = ("thread_state", "channel_state", "locks", "pending_locks")
#: The sections each version added after the first, and the sections, in the order
#: problems are reported.
ADDED = {"claims": 2, "lists": 3, "outbox": 3}
SECTIONS = (*ARRAYS, *MAPS, "claims", "lists", "outbox")
TOP_LEVEL = ("format", "version", *SECTIONS)
ENTRY_FIELDS = ("owner", "strategy", "metadata")
LOCK_TIMES = ("acquired_at", "expires_at")
PENDING_TIMES = ("enqueued_at",)
CLAIM_FIELDS = ("owner", "thread_id", "expires_at")
#: How many arrays/objects hold an entry of each object section (a pending entry is one
#: level further down, inside its list); metadata is one level below its entry.
_ABOVE = {"thread_state": 2, "channel_state": 2, "locks": 2, "pending_locks": 3}
_KNOWS = "(this code reads " + ", ".join(map(str, VERSIONS[:-1])) + f" and {VERSIONS[-1]})"

_H = TypeVar("_H", bound=Hashable)


def has_json_form(value: object) -> bool:
    """Whether ``value`` is of a type JSON text can hold; a container's contents aside."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, list, tuple, dict))


class Scan(ListsOutboxScan):
    """Read a snapshot-like object into the fields of a ``Snapshot`` and collect problems.

    A strict scan reports every problem. A lenient scan silently repairs what loses nothing.
    It records one problem per dropped value, so ``problems.total`` is the drop count."""

    def __init__(self, strict: bool, problems: Problems | None = None) -> None:
        self.strict = strict
        self.problems = problems if problems is not None else Problems()

    def report(self, path: str, message: str, not_json: bool = False) -> None:
        self.problems.add(Problem(path, message, not_json))

    # -- a whole object ------------------------------------------------------------------

    def run(self, obj: object) -> dict[str, Any]:
        """The fields of a ``Snapshot`` read from ``obj``, the JSON form."""
        if not isinstance(obj, Mapping):
            if self.strict or obj is not None:
                self.report("$", EXPECTED_OBJECT, not has_json_form(obj))
            return Scan(False).run({})
        self.unknown_keys(obj)
        if self.strict:
            self.check_header(obj)
        subscriptions = self.unique("subscriptions", self.items(obj, "subscriptions"))
        dedupe = self.unique("dedupe", self.items(obj, "dedupe"))
        order = self.unique("dedupe_order", self.items(obj, "dedupe_order", ordered=True))
        order = self.reconcile(dedupe, order)
        fields: dict[str, Any] = {"subscriptions": set(subscriptions), "dedupe": set(order)}
        fields["dedupe_order"] = order
        for name in MAPS:
            fields[name] = dict(self.map_entries(obj, name))
        fields["claims"] = self.claims(self.items(obj, "claims", ordered=True), fields["dedupe"])
        fields["lists"] = dict(self.map_entries(obj, "lists"))
        fields["outbox"] = self.outbox(self.items(obj, "outbox", ordered=True))
        return fields

    def unknown_keys(self, obj: Mapping[Any, Any]) -> None:
        for key in obj:
            if key not in TOP_LEVEL:
                self.report(field_path("$", key), "unknown key", not isinstance(key, str))

    def check_header(self, obj: Mapping[Any, Any]) -> None:
        """Check ``format`` and ``version``, both required, and what the version allows."""
        if obj.get("format") != FORMAT or not isinstance(obj.get("format"), str):
            self.report("format", f"expected {FORMAT!r}")
        version = obj.get("version")
        if "version" not in obj:
            self.report("version", f"missing {_KNOWS}")
        elif not isinstance(version, int) or isinstance(version, bool):
            self.report("version", f"expected an integer {_KNOWS}")
        elif version not in VERSIONS:
            self.report("version", f"unsupported version {version} {_KNOWS}")
        else:
            for name, since in ADDED.items():
                if version < since and name in obj:
                    came = "lists and outbox came" if since == 3 else "claims came"
                    why = f"({came} with version {since})"
                    self.report(name, f"not part of a version {version} snapshot {why}")

    def section(self, obj: Mapping[Any, Any], name: str) -> object:
        """The section's value; ``None`` when missing, or when ``None`` in a lenient scan."""
        value = obj.get(name)
        return None if name not in obj or (value is None and not self.strict) else value

    def items(self, obj: Mapping[Any, Any], name: str, ordered: bool = False) -> list[Any]:
        """The entries of an array section.

        Sets are accepted where order does not matter. A lenient scan accepts them
        everywhere, sorted by ``repr`` for determinism."""
        value = self.section(obj, name)
        if value is None and name not in obj:
            return []
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, (set, frozenset)) and not (ordered and self.strict):
            return sorted(value, key=repr)
        if value is not None or self.strict:
            self.report(name, EXPECTED_ARRAY, not has_json_form(value))
        return []

    # -- arrays ----------------------------------------------------------------------------

    def item(self, name: str, index: int, raw: object) -> Any:
        """A converted entry of an array section, or ``None`` after reporting why not.

        An entry is an id or a dedupe key. The caller handles duplicates; see ``unique``."""
        if name == "subscriptions":
            problem = id_problem(raw)
            if problem is None:
                return raw
            self.report(f"{name}[{index}]", problem, not has_json_form(raw))
            return None
        key = as_dedupe_key(raw)
        if key is None:
            sub, message = dedupe_key_problem(raw) or ("", EXPECTED_DEDUPE_KEY)
            self.report(f"{name}[{index}]{sub}", message, not has_json_form(raw))
        return key

    def unique(self, name: str, items: Iterable[Any]) -> list[Any]:
        """The converted entries, without rejects and duplicates; first occurrences kept."""
        values: list[Any] = []
        first: dict[Any, int] = {}
        for index, raw in enumerate(items):
            value = self.item(name, index, raw)
            if value is None:
                continue
            if value in first:
                self.report(f"{name}[{index}]", f"duplicate of {name}[{first[value]}]")
            else:
                first[value] = index
                values.append(value)
        return values

    def reconcile(self, dedupe: list[DedupeKey], order: list[DedupeKey]) -> list[DedupeKey]:
        """The order extended with the keys only in ``dedupe``, sorted.

        A strict scan reports both kinds of mismatch."""
        in_dedupe, in_order = set(dedupe), set(order)
        only_dedupe = sorted(in_dedupe - in_order)
        if self.strict:
            only_order = [key for key in order if key not in in_dedupe]
            self.mismatch(len(only_dedupe), only_dedupe[:3], len(only_order), only_order[:3])
        return order + only_dedupe

    def mismatch(
        self, n_dedupe: int, first_dedupe: list[Any], n_order: int, first_order: list[Any]
    ) -> None:
        """The two strict problems of ``dedupe`` and ``dedupe_order`` holding other keys."""
        if n_dedupe:
            missing = few(n_dedupe, first_dedupe)
            self.report("dedupe_order", f"missing keys present in dedupe: {missing}")
        if n_order:
            missing = few(n_order, first_order)
            self.report("dedupe", f"missing keys present in dedupe_order: {missing}")

    # -- maps ------------------------------------------------------------------------------

    def map_entries(self, obj: Mapping[Any, Any], name: str) -> Iterator[tuple[str, Any]]:
        """The kept ``(key, value)`` entries of an object section."""
        value = self.section(obj, name)
        if value is None and name not in obj:
            return
        if not isinstance(value, Mapping):
            if value is not None or self.strict:
                self.report(name, EXPECTED_OBJECT, not has_json_form(value))
            return
        for key, item in value.items():
            kept = self.entry(name, key, item)
            if kept is not None:
                yield key, kept

    def entry(self, name: str, key: object, value: object) -> Any:
        """One entry of the object section ``name`` as kept, or ``None`` after reporting it."""
        path = key_path(name, key)
        if name == "lists":
            problem = list_key_problem(key)
            if problem is not None:
                self.report(path, problem, not isinstance(key, str))
                return None
            return self.list_value(path, value)
        problem = id_problem(key)
        if problem is not None:
            message = EXPECTED_MAP_KEY if problem == EXPECTED_ID else f"its key {problem}"
            self.report(path, message, not isinstance(key, str))
            return None
        if name == "locks":
            entry = self.lock_entry(path, value, (*LOCK_TIMES, "holders"), _ABOVE[name])
            if entry is not None and "holders" in entry:
                holders = self.holders(f"{path}.holders", entry["holders"], _ABOVE[name] + 1)
                if holders is None:
                    return None if self.strict else {**entry, "holders": []}
                entry["holders"] = holders
            return entry
        if name == "pending_locks":
            if not isinstance(value, (list, tuple)):
                self.report(path, EXPECTED_ARRAY, not has_json_form(value))
                return None
            entries = (
                self.lock_entry(f"{path}[{i}]", raw, PENDING_TIMES, _ABOVE[name])
                for i, raw in enumerate(value)
            )
            return [entry for entry in entries if entry is not None]
        return self.json_map(path, value, _ABOVE[name])

    def json_map(self, path: str, value: object, above: int) -> dict[str, Any] | None:
        """A copy of a state map or metadata, a JSON object; or ``None`` after reporting it."""
        if not isinstance(value, dict):
            self.report(path, EXPECTED_OBJECT, not has_json_form(value))
            return None
        if not self.strict:
            for key in value:
                if not isinstance(key, str):
                    self.report(
                        field_path(path, key), f"expected a str key, found {type(key).__name__}"
                    )
                    return None
        copy, problems = json_copy(value, path, above, self.strict)
        for problem in problems if self.strict else problems[:1]:
            self.problems.add(problem)
        return copy if not problems else None

    def lock_entry(
        self, path: str, value: object, times: tuple[str, ...], above: int
    ) -> dict[str, Any] | None:
        """A lock or pending entry ``{owner, strategy, metadata}`` plus valid ``times``.

        An entry with a bad owner, strategy or metadata is dropped whole. A lenient scan
        reports one problem for it. A bad timestamp or unknown key drops just that key."""
        if not isinstance(value, Mapping):
            self.report(path, EXPECTED_OBJECT, not has_json_form(value))
            return None
        owner, strategy, metadata = (value.get(name) for name in ENTRY_FIELDS)
        if metadata is None and not self.strict:
            metadata = {}
        core = Scan(self.strict)
        owner_problem = id_problem(owner)
        if owner_problem is not None:
            core.report(f"{path}.owner", owner_problem, not has_json_form(owner))
        if as_strategy(strategy) is None:
            core.report(f"{path}.strategy", EXPECTED_STRATEGY, not has_json_form(strategy))
        kept_metadata = core.json_map(f"{path}.metadata", metadata, above + 1)
        if core.problems.total:
            for problem in core.problems.listed if self.strict else core.problems.listed[:1]:
                self.problems.add(problem)
            if not self.strict:
                return None
        entry = {"owner": owner, "strategy": as_strategy(strategy), "metadata": kept_metadata}
        for key, item in value.items():
            if key in ENTRY_FIELDS:
                continue
            sub = field_path(path, key)
            if key not in times:
                self.report(sub, "unknown key", not isinstance(key, str))
            elif key == "holders" or is_timestamp(item):
                entry[key] = item
            elif item is not None or self.strict:
                self.report(sub, EXPECTED_TIME, not has_json_form(item))
        return None if core.problems.total else entry

    def holders(self, path: str, value: object, above: int) -> list[dict[str, Any]] | None:
        """The holders of a key held by slots, or ``None`` after reporting it.

        Slots serve ``concurrent`` with a cap. The holders are a list of ``{"owner",
        "metadata", "acquired_at", "expires_at"}``, owners distinct."""
        if not isinstance(value, list) or not value:
            self.report(path, "expected a non-empty array of holders", not has_json_form(value))
            return None
        kept: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, raw in enumerate(value):
            sub = f"{path}[{i}]"
            holder = raw if isinstance(raw, Mapping) else None
            problem = EXPECTED_OBJECT if holder is None else id_problem(holder.get("owner"))
            if problem is None and holder is not None:
                unknown = set(holder) - {"owner", "metadata", "acquired_at", "expires_at"}
                times_ok = all(is_timestamp(holder.get(t)) for t in LOCK_TIMES)
                if unknown:
                    problem = f"unknown key {sorted(unknown)[0]!r}"
                elif not times_ok:
                    problem = "expected acquired_at and expires_at timestamps"
                elif holder["owner"] in seen:
                    problem = f"owner {holder['owner']!r} holds twice"
            metadata = None
            if problem is None and holder is not None:
                metadata = self.json_map(f"{sub}.metadata", holder.get("metadata", {}), above + 1)
                if metadata is None:
                    return None
            if problem is not None or holder is None:
                self.report(sub, problem or EXPECTED_OBJECT, not has_json_form(raw))
                return None
            seen.add(holder["owner"])
            kept.append({**holder, "metadata": metadata})
        return kept

    # -- claims ----------------------------------------------------------------------------

    def claims(
        self, items: Iterable[Any], dedupe: Callable[[DedupeKey], bool] | set[DedupeKey]
    ) -> dict[DedupeKey, dict[str, Any]]:
        """The kept claims: each has a key in ``dedupe`` and no earlier claim has it."""
        known = dedupe.__contains__ if isinstance(dedupe, set) else dedupe
        result: dict[DedupeKey, dict[str, Any]] = {}
        first: dict[DedupeKey, int] = {}
        for index, raw in enumerate(items):
            key, claim, problems = self.claim(index, raw)
            key_problem = None
            if key is not None:
                if key in first:
                    key_problem = f"duplicate of claims[{first[key]}]"
                else:
                    first[key] = index
                    key_problem = None if known(key) else "not in dedupe"
            self.claim_problems(index, key_problem, problems)
            if key is not None and claim is not None and key_problem is None and not problems:
                result[key] = claim
        return result

    def claim_problems(self, index: int, key_problem: str | None, others: list[Problem]) -> None:
        """Report a claim's problems, its key's first; a lenient scan reports just one."""
        if key_problem is not None:
            self.report(f"claims[{index}].key", key_problem)
        for problem in others if self.strict or key_problem is None else []:
            self.problems.add(problem)
            if not self.strict:
                break

    def claim(
        self, index: int, raw: object
    ) -> tuple[DedupeKey | None, dict[str, Any] | None, list[Problem]]:
        """``(key, claim, problems)`` of one entry of ``claims`` on its own.

        The caller judges whether its key is in ``dedupe`` or repeats an earlier one.
        ``claim`` is ``{"owner", "thread_id", "expires_at"}`` when ``problems`` is empty."""
        path = f"claims[{index}]"
        if not isinstance(raw, Mapping):
            return None, None, [Problem(path, EXPECTED_OBJECT, not has_json_form(raw))]
        problems: list[Problem] = []
        key = as_dedupe_key(raw.get("key"))
        if key is None:
            sub, message = dedupe_key_problem(raw.get("key")) or ("", EXPECTED_DEDUPE_KEY)
            problems.append(Problem(f"{path}.key{sub}", message))
        for name in ("owner", "thread_id"):
            problem = id_problem(raw.get(name))
            if problem is not None:
                not_json = not has_json_form(raw.get(name))
                problems.append(Problem(f"{path}.{name}", problem, not_json))
        if not is_timestamp(raw.get("expires_at")):
            problems.append(Problem(f"{path}.expires_at", EXPECTED_TIME))
        for name in raw:
            if name != "key" and name not in CLAIM_FIELDS:
                problems.append(Problem(field_path(path, name), "unknown key"))
        claim = {name: raw.get(name) for name in CLAIM_FIELDS}
        return key, (None if problems else claim), problems


def few(count: int, keys: list[Any]) -> str:
    """``'2 (["a", "b"], ["a", "c"])'``: a count and the first three keys."""
    shown = ", ".join(json.dumps(list(key), ensure_ascii=False) for key in keys[:3])
    return f"{count} ({shown}{', ...' if count > 3 else ''})"
