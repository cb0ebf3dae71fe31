"""Capped lists and the outbox on Redis, mixins of ``RedisStateAdapter``.

Each hook is one script or one command. :mod:`.keys` has the key layout.
``lua/lists.lua`` and ``lua/outbox.lua`` describe the records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from chatstate.adapters.operations import Op, operation
from chatstate.adapters.redis import records, scripts
from chatstate.adapters.redis.connection import CALL, EVAL
from chatstate.adapters.redis.keys import Keys, text
from chatstate.calls import ListAppend, OutboxClaim
from chatstate.types import OutboxEntry, epoch_to_iso

T = TypeVar("T")


class RedisLists:
    """The list hooks: ``l:<key>`` lists, expired by Redis, indexed in ``lkeys``."""

    keys: Keys

    if TYPE_CHECKING:

        def _drive(self, op: Op[T]) -> T: ...

    @operation
    def _do_append_to_list(self, append: ListAppend) -> Op[None]:
        yield (
            EVAL,
            scripts.LIST_APPEND,
            [self.keys.lkeys, self.keys.list_key(append.key)],
            [
                append.key,
                append.value,
                "" if append.max_length is None else append.max_length,
                "" if append.ttl is None else records.ttl_ms(append.ttl),
            ],
        )

    @operation
    def _do_get_list(self, key: str, limit: int | None) -> Op[list[Any]]:
        found = yield (CALL, "lrange", (self.keys.list_key(key), -(limit or 0), -1))
        return [records.loads(item) for item in found]

    @operation
    def _do_delete_list(self, key: str) -> Op[int]:
        keys = [self.keys.lkeys, self.keys.list_key(key), self.keys.lexp]
        return int((yield (EVAL, scripts.LIST_DELETE, keys, [key])))


def _entry(entry_id: Any, record: Any, payload: Any) -> OutboxEntry:
    """An outbox record and its payload as an :class:`OutboxEntry`; see ``lua/outbox.lua``."""
    key, thread_id, created, due, attempts, dead, *_ = records.loads(record)
    return OutboxEntry(
        text(entry_id),
        key,
        thread_id,
        records.loads(payload),
        int(attempts),
        bool(dead),
        epoch_to_iso(created / 1000),
        epoch_to_iso(due / 1000),
    )


class RedisOutbox:
    """The outbox hooks.

    Entries are in ``ob`` and ``obp``, with one queue of ids per thread. ``obh`` orders the
    threads by when their oldest entry is due. So a claim reads only due threads."""

    keys: Keys

    if TYPE_CHECKING:

        def _drive(self, op: Op[T]) -> T: ...

    @operation
    def _do_outbox(self, thread_id: str | None) -> Op[list[OutboxEntry]]:
        found, payloads = yield (EVAL, scripts.OUTBOX_LIST, [self.keys.ob, self.keys.obp], [])
        by_id = dict(zip(payloads[::2], payloads[1::2], strict=True))
        entries = [_entry(found[i], found[i + 1], by_id[found[i]]) for i in range(0, len(found), 2)]
        entries.sort(key=lambda e: int(e.id))
        return [e for e in entries if thread_id is None or e.thread_id == thread_id]

    @operation
    def _do_outbox_claim(self, claim: OutboxClaim) -> Op[list[OutboxEntry]]:
        args = [claim.owner, claim.limit, records.ttl_ms(claim.lease), self.keys.prefix]
        reply = yield (EVAL, scripts.OUTBOX_CLAIM, self.keys.outbox(), args)
        return [_entry(*reply[i : i + 3]) for i in range(0, len(reply), 3)]

    def _settle(
        self, action: str, entry_ids: list[str], owner: str = "", delay: float = 0, most: int = 0
    ) -> Op[int]:
        """One ``outbox_settle.lua`` call; return its count."""
        args = [action, self.keys.prefix, owner, round(delay * 1000), most, *entry_ids]
        return int((yield (EVAL, scripts.OUTBOX_SETTLE, self.keys.outbox(), args)))

    @operation
    def _do_outbox_delivered(self, owner: str, entry_id: str) -> Op[None]:
        yield from self._settle("delivered", [entry_id])

    @operation
    def _do_outbox_failed(
        self, owner: str, entry_id: str, delay: float, max_attempts: int
    ) -> Op[bool]:
        return bool((yield from self._settle("failed", [entry_id], owner, delay, max_attempts)))

    @operation
    def _do_outbox_release(self, owner: str, entry_ids: list[str]) -> Op[None]:
        if entry_ids:
            yield from self._settle("release", entry_ids, owner)

    @operation
    def _do_outbox_requeue(self, entry_ids: list[str]) -> Op[int]:
        if not entry_ids:
            return 0
        return (yield from self._settle("requeue", entry_ids))

    @operation
    def _do_outbox_discard(self, entry_ids: list[str]) -> Op[int]:
        if not entry_ids:
            return 0
        return (yield from self._settle("discard", entry_ids))
