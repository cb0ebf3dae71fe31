"""Lists and the outbox in snapshots of a Redis namespace; :mod:`.streaming` has the rest.

Reading uses the frozen copy. ``lua/freeze.lua`` copies the live lists, ``lexp``, ``ob``
and ``obp``. Lists come sorted by key, each with its items and expiry. Outbox entries
come in id order, which is commit order. A time is the exact text a snapshot gave, while
the stored milliseconds still match it. Otherwise it is made from the milliseconds.

Writing builds a snapshot's lists and outbox under the load's temporary prefix. The
switching script, ``lua/load_lists.lua``, moves them into place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from chatstate.adapters.operations import Op
from chatstate.adapters.redis import records, scripts
from chatstate.adapters.redis.connection import BATCH, CALL, EVAL
from chatstate.adapters.redis.keys import Keys, text
from chatstate.validation import dump_value

Command = tuple[str, tuple[Any, ...]]

#: Attempts at or above this are stored as a decimal string. Lua's ``cjson`` encodes numbers
#: with 14 significant digits. A script rewriting the record would change them.
EXACT_IN_LUA = 10**14


def _time(ms: Any, exact: Any) -> str:
    """A stored time: ``exact``, a snapshot's text, while it names ``ms``; else ``ms``."""
    if isinstance(exact, str) and records.ms(exact, -1) == int(ms):
        return exact
    return records.iso(ms, None)


def outbox_dict(record: Any, payload: Any) -> dict[str, Any]:
    """An outbox record and its payload in the snapshot's form; see ``lua/outbox.lua``."""
    key, thread_id, created, due, attempts, dead, *rest = records.loads(record)
    exact = [*rest[2:4], None, None]
    return {
        "key": key,
        "thread_id": thread_id,
        "payload": records.loads(payload),
        "attempts": int(attempts),
        "dead": bool(dead),
        "created_at": _time(created, exact[0]),
        "due_at": _time(due, exact[1]),
    }


def op_lists_page(frozen: Keys, start: int, stop: int) -> Op[list[Any]]:
    """Lists ``start`` .. ``stop`` of a frozen namespace, sorted by key."""
    found = yield (CALL, "zrange", (frozen.lkeys + ":sorted", start, stop))
    keys = [text(k) for k in found]
    commands: list[Command] = []
    for key in keys:
        commands.append(("lrange", (frozen.list_key(key), 0, -1)))
        commands.append(("zscore", (frozen.lkeys, key)))
        commands.append(("hget", (frozen.lexp, key)))
    replies = yield (BATCH, commands)
    page = []
    for n, key in enumerate(keys):
        items, score, exact = replies[3 * n : 3 * n + 3]
        exact = None if exact is None else text(exact)
        expires = None if float(score) == float("inf") else _time(int(float(score)), exact)
        page.append((key, {"items": [records.loads(i) for i in items], "expires_at": expires}))
    return page


def op_outbox_page(frozen: Keys, start: int, stop: int) -> Op[list[Any]]:
    """Outbox entries ``start`` .. ``stop`` of a frozen namespace, in commit order."""
    sorted_ids = frozen.ob + ":sorted"
    page = yield (EVAL, scripts.HASH_PAGE, [sorted_ids, frozen.ob, frozen.obp], [start, stop])
    _, found, payloads = page
    return [outbox_dict(r, p) for r, p in zip(found, payloads, strict=True)]


def commands(
    lists: Iterable[tuple[str, dict[str, Any]]],
    outbox: Iterable[dict[str, Any]],
    tmp: Keys,
    now: int,
    chunk: int,
    expiring: Callable[..., Iterator[Command]],
) -> Iterator[Command]:
    """Pipeline commands writing a snapshot's lists and outbox entries under ``tmp``.

    Each command carries at most ``chunk`` values. ``expiring`` sets each key to expire.

    Every list key goes into ``tmp.lkeys``, scored by its expiry; ``inf`` means none. The
    items go to ``l:<key>`` for lists with items, not expired at ``now``. ``lexp`` keeps
    the exact expiry texts. Outbox records are numbered 1, 2, … in order, and ``oseq``
    holds their count. They are created and due at the snapshot's times. A missing
    ``due_at`` is ``created_at``. No entry is leased."""
    for key, value in lists:
        expires = value["expires_at"]
        score = "inf" if expires is None else records.ms(expires, now)
        yield from expiring(tmp.lkeys, "zadd", {key: score})
        if expires is not None:
            yield from expiring(tmp.lexp, "hset", key, expires)
        items = value["items"]
        if items and (expires is None or int(score) > now):
            for start in range(0, len(items), chunk):
                part = [dump_value(item, "list item") for item in items[start : start + chunk]]
                yield from expiring(tmp.list_key(key), "rpush", *part)
    count = 0
    for entry in outbox:
        count += 1
        created = entry["created_at"]
        due = entry.get("due_at") or created
        attempts = entry["attempts"]
        record = [
            entry["key"],
            entry["thread_id"],
            records.ms(created, now),
            records.ms(due, now),
            attempts if attempts < EXACT_IN_LUA else str(attempts),
            1 if entry["dead"] else 0,
            "",
            0,
            created,
            due,
        ]
        yield from expiring(tmp.ob, "hset", count, records.dumps(record))
        yield from expiring(tmp.obp, "hset", count, dump_value(entry["payload"], "payload"))
    if count:
        yield from expiring(tmp.prefix + "oseq", "set", count)
