"""Channel-map operations: what ``msg.channel`` stages and a commit applies, in order.

Each backend applies them on its side, in the commit's atomic step. So two cycles in
different threads of one channel never lose each other's operations. The application does no
read-modify-write. This module is the reference. The memory and ORM backends run it. The
PostgreSQL functions and the Redis scripts mirror it. The conformance suite checks them.

* ``set(key, value)``: ``map[key] = value``.
* ``delete(key)``: removes ``key``; nothing happens when it is absent.
* ``incr(key, by)``: ``map[key] = current + by``. A missing value, or one that is not a
  number, counts as 0. Integers stay integers. A float on either side gives a float.
* ``add(key, item)`` and ``discard(key, item)`` insert or remove the item. The value at
  ``key`` is a sorted list of distinct JSON scalars. A missing value, or one that is not a
  list, counts as empty. The order is ``null``, ``false``, ``true``, numbers by value, then
  strings by code point. ``1`` and ``1.0`` are the same item, and the first one is kept.
"""

from __future__ import annotations

import json
from typing import Any

from chatstate.calls import ChannelOp

OPS = ("set", "delete", "incr", "add", "discard")


def scalar_order(item: Any) -> tuple[int, Any]:
    """The sort key of a JSON scalar in an ``add`` list."""
    if item is None:
        return (0, 0)
    if isinstance(item, bool):
        return (1, int(item))
    if isinstance(item, (int, float)):
        return (2, item)
    return (3, item)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return value


def _scalars(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    return [x for x in value if x is None or isinstance(x, (bool, int, float, str))]


def apply_ops(value: dict[str, Any], ops: tuple[ChannelOp, ...] | list[ChannelOp]) -> None:
    """Apply ``ops`` to the map ``value``, in place; the ops hold JSON text values, as staged."""
    for op, key, text in ops:
        if op == "set":
            value[key] = json.loads(text)  # type: ignore[arg-type]
        elif op == "delete":
            value.pop(key, None)
        elif op == "incr":
            value[key] = _number(value.get(key)) + json.loads(text)  # type: ignore[arg-type]
        else:
            item = json.loads(text)  # type: ignore[arg-type]
            items = _scalars(value.get(key))
            rank = scalar_order(item)
            kept = [x for x in items if scalar_order(x) != rank]
            if op == "add":
                same = [x for x in items if scalar_order(x) == rank]
                kept.append(same[0] if same else item)
                kept.sort(key=scalar_order)
                value[key] = kept
            elif key in value:
                value[key] = kept
