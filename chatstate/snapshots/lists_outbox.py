"""The checks of the two sections snapshot version 3 added, entry by entry, with JSON paths.

- ``lists``: capped lists, ``{key: {"items": [...], "expires_at": ...}}``. The items are
  JSON values. ``expires_at`` is ISO 8601 UTC or null. Thread histories are among them,
  keyed ``history:<thread_id>``.
- ``outbox``: the replies waiting for delivery, oldest first. Each is ``{"key", "thread_id",
  "payload", "attempts", "dead", "created_at"}``, with an optional ``"due_at"``.

:class:`ListsOutboxScan` is a part of :class:`chatstate.snapshots.scan.Scan`. The streaming
reader of :mod:`chatstate.snapshots.files` calls the same per-entry functions, one entry at
a time. Pure Python; no Django import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chatstate.snapshots.checks import (
    EXPECTED_ARRAY,
    EXPECTED_OBJECT,
    EXPECTED_TIME,
    NOT_JSON,
    Problem,
    Problems,
    field_path,
    id_problem,
    is_timestamp,
    json_copy,
    text_problem,
)

MAX_LIST_KEY_LENGTH = 320
LIST_FIELDS = ("items", "expires_at")
OUTBOX_FIELDS = ("key", "thread_id", "payload", "attempts", "dead", "created_at", "due_at")
#: An outbox entry's attempts are stored in a 64-bit integer.
MAX_ATTEMPTS = 2**63 - 1

EXPECTED_LIST_KEY = (
    f"expected its key to be a non-empty string of at most {MAX_LIST_KEY_LENGTH} characters"
)
EXPECTED_ATTEMPTS = "expected an integer >= 0"
EXPECTED_BOOL = "expected true or false"
EXPECTED_TIME_OR_NULL = f"{EXPECTED_TIME} or null"
MISSING = f"missing ({NOT_JSON})"

#: Arrays/objects around a list's ``items`` (the document, ``lists``, the list) and around
#: an outbox entry's ``payload`` (the document, ``outbox``, the entry).
ITEMS_ABOVE = 3
PAYLOAD_ABOVE = 3


def _not_json(value: object) -> bool:
    return not (value is None or isinstance(value, (str, int, float, list, tuple, dict)))


def _unknown(path: str, name: object) -> Problem:
    return Problem(field_path(path, name), "unknown key", not isinstance(name, str))


def list_key_problem(key: object) -> str | None:
    """Why ``key`` cannot name a list, as the problem of its entry; None when it can.

    A list key is a non-empty ``str`` of at most 320 characters every backend can store."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_LIST_KEY_LENGTH:
        return EXPECTED_LIST_KEY
    problem = text_problem(key)
    return None if problem is None else f"its key {problem}"


def list_entry(
    path: str, value: object, strict: bool
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """``(list, problems)`` of one list: ``{"items": [...], "expires_at": ISO or None}``.

    A strict read reports every problem, and gives the list only when there is none. A
    lenient read counts one problem per value dropped. A list whose ``items`` is not an
    array is dropped whole. A bad item is dropped from it. A bad ``expires_at`` becomes
    null. A missing one is null and not counted. An unknown key is dropped. Items are
    checked as state values are. They must survive a JSON round trip, hold storable text,
    and nest at most 512 levels deep in the document."""
    if not isinstance(value, Mapping):
        return None, [Problem(path, EXPECTED_OBJECT, _not_json(value))]
    items = value.get("items")
    if not isinstance(items, list) and (strict or not isinstance(items, tuple)):
        return None, [Problem(f"{path}.items", EXPECTED_ARRAY, _not_json(items))]
    problems: list[Problem] = []
    kept, item_problems = json_copy(items, f"{path}.items", ITEMS_ABOVE, strict)
    if item_problems and strict:
        problems.extend(item_problems)
    elif item_problems:
        kept = []
        for index, item in enumerate(items):
            copy, bad = json_copy(item, f"{path}.items[{index}]", ITEMS_ABOVE + 1, False)
            if bad:
                problems.append(bad[0])
            else:
                kept.append(copy)
    expires = value.get("expires_at")
    if "expires_at" not in value and strict:
        problems.append(Problem(f"{path}.expires_at", f"missing ({EXPECTED_TIME_OR_NULL})"))
    elif expires is not None and not is_timestamp(expires):
        problems.append(Problem(f"{path}.expires_at", EXPECTED_TIME_OR_NULL, _not_json(expires)))
        expires = None
    for name in value:
        if name not in LIST_FIELDS:
            problems.append(_unknown(path, name))
    if strict and problems:
        return None, problems
    return {"items": kept, "expires_at": expires}, problems


def outbox_entry(
    index: int, raw: object, strict: bool
) -> tuple[str | None, dict[str, Any] | None, list[Problem]]:
    """``(key, entry, problems)`` of the outbox entry at ``index`` on its own.

    Whether its key repeats an earlier entry's is for the caller to judge. ``key`` is its
    key when that is valid. A strict read reports every problem, and gives the entry only
    when there is none. A lenient read drops the entry whole, with its first problem, when
    its ``key``, ``thread_id``, ``payload``, ``attempts``, ``dead`` or ``created_at`` is
    bad. A bad ``due_at`` or an unknown key is dropped from it, one problem each. A null
    ``due_at`` is dropped without one."""
    path = f"outbox[{index}]"
    if not isinstance(raw, Mapping):
        return None, None, [Problem(path, EXPECTED_OBJECT, _not_json(raw))]
    core: list[Problem] = []
    key = raw.get("key")
    for name in ("key", "thread_id"):
        problem = id_problem(raw.get(name))
        if problem is not None:
            core.append(Problem(f"{path}.{name}", problem, _not_json(raw.get(name))))
            key = None if name == "key" else key
    payload = None
    if "payload" not in raw:
        core.append(Problem(f"{path}.payload", MISSING))
    else:
        payload, bad = json_copy(raw["payload"], f"{path}.payload", PAYLOAD_ABOVE, strict)
        core.extend(bad)
    attempts = raw.get("attempts")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        core.append(Problem(f"{path}.attempts", EXPECTED_ATTEMPTS, _not_json(attempts)))
    elif attempts > MAX_ATTEMPTS:
        core.append(Problem(f"{path}.attempts", f"{EXPECTED_ATTEMPTS} and below 2**63"))
    if not isinstance(raw.get("dead"), bool):
        core.append(Problem(f"{path}.dead", EXPECTED_BOOL, _not_json(raw.get("dead"))))
    if not is_timestamp(raw.get("created_at")):
        core.append(Problem(f"{path}.created_at", EXPECTED_TIME, _not_json(raw.get("created_at"))))
    if core and not strict:
        return key, None, core[:1]
    entry = {name: raw.get(name) for name in ("key", "thread_id", "attempts", "dead")}
    entry.update(created_at=raw.get("created_at"), payload=payload)
    problems = core
    for name, value in raw.items():
        if name == "due_at":
            if is_timestamp(value):
                entry["due_at"] = value
            elif value is not None or strict:
                problems.append(Problem(f"{path}.due_at", EXPECTED_TIME, _not_json(value)))
        elif name not in OUTBOX_FIELDS:
            problems.append(_unknown(path, name))
    return key, (None if strict and problems else entry), problems


class ListsOutboxScan:
    """The ``lists`` and ``outbox`` rules of :class:`chatstate.snapshots.scan.Scan`.

    These methods use the scan's ``strict`` and ``problems``."""

    strict: bool
    problems: Problems

    def list_value(self, path: str, value: object) -> dict[str, Any] | None:
        """One list as kept, or ``None``; its problems recorded, one per drop when lenient."""
        kept, problems = list_entry(path, value, self.strict)
        for problem in problems:
            self.problems.add(problem)
        return kept

    def outbox(self, items: Iterable[Any]) -> list[dict[str, Any]]:
        """The kept outbox entries, in order: each valid, and the first with its key.

        In a strict read, a key repeats any earlier entry's valid key. In a lenient read, it
        repeats an earlier kept entry's."""
        kept: list[dict[str, Any]] = []
        first: dict[str, int] = {}
        for index, raw in enumerate(items):
            key, entry, problems = outbox_entry(index, raw, self.strict)
            repeated = None
            if key is not None and (self.strict or entry is not None):
                if key in first:
                    repeated = f"duplicate of outbox[{first[key]}]"
                else:
                    first[key] = index
            self.outbox_problems(index, repeated, problems)
            if entry is not None and repeated is None:
                kept.append(entry)
        return kept

    def outbox_problems(self, index: int, repeated: str | None, others: list[Problem]) -> None:
        """Report an outbox entry's problems, its key's repetition first.

        A lenient read reports only the repetition, and drops the entry. Then come the other
        problems. When lenient, a kept entry reports the values dropped from it, one each. A
        dropped entry reports its first problem."""
        if repeated is not None:
            self.problems.add(Problem(f"outbox[{index}].key", repeated))
            if not self.strict:
                return
        for problem in others:
            self.problems.add(problem)
