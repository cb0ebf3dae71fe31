"""Snapshots of a Redis namespace: read from a frozen copy, written under a temporary prefix.

Reading starts with one script, ``scripts.FREEZE``. It copies the namespace under
``snap:<token>:`` in one step. Redis pauses about half a second per million dedupe keys.
Sorted views of the copy are then built chunk by chunk. Each section is read page by page,
``CHUNK`` items per round trip. Then the copies are removed.

Writing builds the new state under ``tmp:<token>:`` in pipelines. Then one script,
``LOAD_REPLACE`` or ``LOAD_MERGE``, switches to it. A load is all or nothing.

Each function here is an operation, as in :mod:`chatstate.adapters.operations`. Or it runs
operations through the ``drive`` it is given.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from chatstate.adapters.operations import Op
from chatstate.adapters.redis import records, scripts, snaplists
from chatstate.adapters.redis.connection import BATCH, CALL, EVAL, SCAN
from chatstate.adapters.redis.keys import Keys, glob_escape, member, text, unmembers
from chatstate.snapshots.sections import SnapshotSections
from chatstate.snapshots.snapshot import Snapshot
from chatstate.types import DedupeKey
from chatstate.validation import dump_map, dump_metadata

T = TypeVar("T")

CHUNK = 2000
"""Items per round trip when a snapshot is read or written, in ``SCAN`` and pipelines."""

LOAD_TTL_MS = 3_600_000
"""How long the keys of an interrupted load or snapshot survive before Redis drops them."""


class Sections(NamedTuple):
    """What a load reads: the iterables of a ``Snapshot`` or of ``SnapshotSections``."""

    subscriptions: Iterable[str]
    dedupe_order: Iterable[DedupeKey]
    thread_state: Iterable[tuple[str, dict[str, Any]]]
    channel_state: Iterable[tuple[str, dict[str, Any]]]
    locks: Iterable[tuple[str, dict[str, Any]]]
    pending_locks: Iterable[tuple[str, list[dict[str, Any]]]]
    claims: Iterable[tuple[DedupeKey, dict[str, Any]]]
    lists: Iterable[tuple[str, dict[str, Any]]] = ()
    outbox: Iterable[dict[str, Any]] = ()

    @classmethod
    def of(cls, source: Snapshot | SnapshotSections) -> Sections:
        if isinstance(source, Snapshot):
            return cls(
                source.subscriptions,
                source.dedupe_order,
                source.thread_state.items(),
                source.channel_state.items(),
                source.locks.items(),
                source.pending_locks.items(),
                source.claims.items(),
                source.lists.items(),
                source.outbox,
            )
        return cls(
            source.subscriptions,
            source.dedupe_order,
            source.thread_state,
            source.channel_state,
            source.locks,
            source.pending_locks,
            source.claims,
            source.lists,
            source.outbox,
        )


# -- reading -------------------------------------------------------------------------------


def op_snapshot(keys: Keys) -> Op[Snapshot]:
    """The namespace's whole state, read from one frozen copy."""
    frozen, counts = yield from op_freeze(keys)
    pages: dict[str, list[Any]] = {}
    try:
        for section, count in counts.items():
            pages[section] = []
            for start in range(0, count, CHUNK):
                pages[section].extend((yield from op_page(frozen, section, start)))
    except Exception:
        yield from op_unlink_prefix(frozen.prefix)
        raise
    yield from op_unlink_prefix(frozen.prefix)
    return Snapshot(
        subscriptions=set(pages["subscriptions"]),
        dedupe=set(pages["dedupe_order"]),
        dedupe_order=pages["dedupe_order"],
        thread_state=dict(pages["thread_state"]),
        channel_state=dict(pages["channel_state"]),
        locks=dict(pages["locks"]),
        pending_locks=dict(pages["pending_locks"]),
        claims=dict(pages["claims"]),
        lists=dict(pages["lists"]),
        outbox=pages["outbox"],
    )


@contextlib.contextmanager
def snapshot_sections(keys: Keys, drive: Callable[[Op[Any]], Any]) -> Iterator[SnapshotSections]:
    """The namespace as streamed sections of one frozen state, valid inside the block."""
    frozen, counts = drive(op_freeze(keys))

    def pages(section: str, count: int) -> Iterator[Any]:
        for start in range(0, count, CHUNK):
            yield from drive(op_page(frozen, section, start))

    try:
        yield SnapshotSections(
            **{name: pages(name, n) for name, n in counts.items()},
            dedupe=pages("dedupe", counts["dedupe_order"]),
            counts={**counts, "dedupe": counts["dedupe_order"]},
        )
    finally:
        drive(op_unlink_prefix(frozen.prefix))


def op_freeze(keys: Keys) -> Op[tuple[Keys, dict[str, int]]]:
    """Copy the namespace in one step under a fresh prefix, then build sorted views."""
    frozen = Keys(f"{keys.prefix}snap:{uuid.uuid4().hex}:")
    # ``subs`` is not read as such. On a cluster it routes the script to the namespace's slot.
    reply = yield (EVAL, scripts.FREEZE, [keys.subs], [keys.prefix, frozen.prefix, LOAD_TTL_MS])
    subs, dedupe, threads, channels, locks, pending, claims, lists, outbox = map(int, reply)
    for kind, source in (
        ("set", frozen.subs),
        ("zset", frozen.dd),
        ("hash", frozen.ts),
        ("hash", frozen.cs),
        ("hash", frozen.locks),
        ("set", frozen.qkeys),
        ("hash", frozen.ddc),
        ("zset", frozen.lkeys),
        ("ids", frozen.ob),
    ):
        position: Any = 0
        while True:
            position = yield (
                EVAL,
                scripts.SORT_CHUNK,
                [source, source + ":sorted"],
                [kind, position, CHUNK, LOAD_TTL_MS],
            )
            if text(position) == "0":
                break
    counts = {
        "subscriptions": subs,
        "dedupe_order": dedupe,
        "thread_state": threads,
        "channel_state": channels,
        "locks": locks,
        "pending_locks": pending,
        "claims": claims,
        "lists": lists,
        "outbox": outbox,
    }
    return frozen, counts


def op_page(frozen: Keys, section: str, start: int) -> Op[list[Any]]:
    """Items ``start`` .. ``start + CHUNK`` of a frozen section, in snapshot order."""
    stop = start + CHUNK - 1
    if section == "lists":
        return (yield from snaplists.op_lists_page(frozen, start, stop))
    if section == "outbox":
        return (yield from snaplists.op_outbox_page(frozen, start, stop))
    if section == "subscriptions":
        found = yield (CALL, "zrange", (frozen.subs + ":sorted", start, stop))
        return [text(t) for t in found]
    if section in ("dedupe", "dedupe_order"):
        key = frozen.dd if section == "dedupe_order" else frozen.dd + ":sorted"
        return unmembers((yield (CALL, "zrange", (key, start, stop))))
    if section == "pending_locks":
        found = yield (CALL, "zrange", (frozen.qkeys + ":sorted", start, stop))
        lock_keys = [text(k) for k in found]
        lists = yield (BATCH, [("lrange", (frozen.q(k), 0, -1)) for k in lock_keys])
        return [
            (k, [records.pending_entry(raw).to_dict() for raw in items])
            for k, items in zip(lock_keys, lists, strict=True)
        ]
    hash_key = {"thread_state": frozen.ts, "channel_state": frozen.cs, "claims": frozen.ddc}.get(
        section, frozen.locks
    )
    ids, values = yield (
        EVAL,
        scripts.HASH_PAGE,
        [hash_key + ":sorted", hash_key],
        [start, stop],
    )
    if section == "locks":
        return [(text(i), records.lock_dict(v)) for i, v in zip(ids, values, strict=True)]
    if section == "claims":
        return list(zip(unmembers(ids), map(records.claim_dict, values), strict=True))
    return [(text(i), records.loads(v)) for i, v in zip(ids, values, strict=True)]


# -- writing -------------------------------------------------------------------------------


def op_load(keys: Keys, sections: Sections, merge: bool, lock_ttl: float) -> Op[None]:
    """Build the new state under a temporary prefix, then switch to it in one script.

    It is all or nothing. Until the switching script runs, the live keys are untouched. If
    the build fails, the temporary keys are removed. Any left expire after ``LOAD_TTL_MS``.
    """
    seconds, micros = yield (CALL, "time", ())
    now = int(seconds) * 1000 + int(micros) // 1000
    tmp = Keys(f"{keys.prefix}tmp:{uuid.uuid4().hex}:")
    try:
        for batch in parts(build_commands(sections, tmp, now, lock_ttl), CHUNK // 10):
            yield (BATCH, batch)
        script = scripts.LOAD_MERGE if merge else scripts.LOAD_REPLACE
        yield (EVAL, script, [keys.subs], [keys.prefix, tmp.prefix])  # routed by the key
    except Exception:
        yield from op_unlink_prefix(tmp.prefix)
        raise


def build_commands(
    sections: Sections, tmp: Keys, now: int, lock_ttl: float
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Pipeline commands writing ``sections`` under ``tmp``, each key set to expire."""
    yield from lists_and_outbox_commands(sections, tmp, now)

    def expiring(key: str, method: str, *args: Any) -> Iterator[tuple[str, tuple[Any, ...]]]:
        yield method, (key, *args)
        yield "pexpire", (key, LOAD_TTL_MS)

    # What is loaded counts as touched and claimed now, for retention and the window's age.
    for part in parts(sections.subscriptions, CHUNK):
        yield from expiring(tmp.subs, "sadd", *part)
        yield from expiring(tmp.subt, "zadd", dict.fromkeys(part, now))
    seq = 0
    for dedupe_keys in parts(sections.dedupe_order, CHUNK):
        members = [member(key) for key in dedupe_keys]
        yield from expiring(tmp.dd, "zadd", {m: seq + i for i, m in enumerate(members, 1)})
        yield from expiring(tmp.ddt, "hset", None, None, dict.fromkeys(members, now))
        seq += len(dedupe_keys)
    if seq:
        yield from expiring(tmp.ddseq, "set", seq)
    for kind, maps in (("thread", sections.thread_state), ("channel", sections.channel_state)):
        for state_part in parts(maps, CHUNK):
            mapping = {i: dump_map(v) for i, v in state_part}
            yield from expiring(tmp.states[kind], "hset", None, None, mapping)
            yield from expiring(tmp.touched[kind], "zadd", dict.fromkeys(mapping, now))
    default_expiry = now + records.ttl_ms(lock_ttl)
    for lock_part in parts(sections.locks, CHUNK):
        lock_records = {
            key: records.dumps(lock_record(lock, now, default_expiry)) for key, lock in lock_part
        }
        yield from expiring(tmp.locks, "hset", None, None, lock_records)
    for claim_part in parts(sections.claims, CHUNK):
        claim_records = {
            member(key): records.dumps(
                [
                    claim["owner"],
                    claim["thread_id"],
                    records.ms(claim["expires_at"], now),
                    claim["expires_at"],
                ]
            )
            for key, claim in claim_part
        }
        yield from expiring(tmp.ddc, "hset", None, None, claim_records)
    token = tmp.prefix.rsplit(":", 2)[-2]  # ids of loaded entries: unique to this load
    loaded = itertools.count(1)
    for key, entries in sections.pending_locks:
        items = [
            records.dumps(
                [
                    e["owner"],
                    e["strategy"],
                    dump_metadata(e.get("metadata")),
                    records.ms(e.get("enqueued_at"), now),
                    e.get("enqueued_at") or False,
                    f"{token}-{next(loaded)}",
                ]
            )
            for e in entries
        ]
        if items:
            for part in parts(items, CHUNK):
                yield from expiring(tmp.q(key), "rpush", *part)
            yield from expiring(tmp.qkeys, "sadd", key)


def lists_and_outbox_commands(
    sections: Sections, tmp: Keys, now: int
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Pipeline commands writing a snapshot's capped lists and outbox entries under ``tmp``.

    :func:`.snaplists.commands` makes them, each key set to expire. The load's switching
    script, ``lua/load_lists.lua``, then moves them. A list replaces the live list of its
    key. A replace removed all lists first. An outbox entry is appended unless its key is
    there. Each section is consumed once."""

    def expiring(key: str, method: str, *args: Any) -> Iterator[tuple[str, tuple[Any, ...]]]:
        yield method, (key, *args)
        yield "pexpire", (key, LOAD_TTL_MS)

    yield from snaplists.commands(sections.lists, sections.outbox, tmp, now, CHUNK, expiring)


# -- helpers -------------------------------------------------------------------------------


def lock_record(lock: dict[str, Any], now: int, default_expiry: int) -> list[Any]:
    """A snapshot lock as its record; :mod:`.scripts` has the layout.

    With ``holders``, it is the record of a key held by slots; see ``lua/slots.lua``. The
    key is held until its latest holder's lease ends."""
    acquired, expires = (
        records.ms(lock.get("acquired_at"), now),
        records.ms(lock.get("expires_at"), default_expiry),
    )
    record = [
        lock["owner"],
        lock["strategy"],
        dump_metadata(lock.get("metadata")),
        acquired,
        expires,
        lock.get("acquired_at") or False,
        lock.get("expires_at") or False,
        max(1, expires - acquired),
    ]
    if lock.get("holders"):
        holders = []
        for holder in lock["holders"]:
            since = records.ms(holder.get("acquired_at"), now)
            until = records.ms(holder.get("expires_at"), default_expiry)
            holders.append([holder["owner"], until, since, max(1, until - since),
                            dump_metadata(holder.get("metadata")),
                            holder.get("acquired_at") or False,
                            holder.get("expires_at") or False])  # fmt: skip
        record[4] = max(h[1] for h in holders)
        record.append(holders)
    return record


def op_unlink_prefix(prefix: str) -> Op[int]:
    """Delete every key starting with ``prefix`` by ``SCAN`` and ``UNLINK``; return how many.

    The keys sharing ``prefix``'s hash tag are one namespace's. On a cluster they live on
    one node, the one scanned."""
    cursor, removed = 0, 0
    pattern = glob_escape(prefix) + "*"
    while True:
        cursor, found = yield (SCAN, prefix, cursor, pattern, 10 * CHUNK)
        if found:
            removed += (yield (CALL, "unlink", tuple(found))) or 0
        if not int(cursor):
            return removed


def parts(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, consumed lazily."""
    iterator = iter(items)
    while part := list(itertools.islice(iterator, size)):
        yield part
