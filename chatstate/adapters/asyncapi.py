"""The async twins of ``StateAdapter``'s methods (``a…``), safe to call from an ASGI view.

Each checks its arguments exactly as its sync twin does. It then runs the same hook through
``_arun``. That runs natively on a backend's asyncio client where it has one, else in a
worker thread."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatstate.adapters.hooks import StateBackend, StateFn
from chatstate.liveness import DEFAULT_QUIET_FOR, activity_report
from chatstate.snapshots.snapshot import Snapshot, snapshot_from
from chatstate.staging import list_append
from chatstate.types import DedupeKey, LockResult, OutboxEntry, PendingEntry, Strategy
from chatstate.validation import (
    check_dedupe_key,
    check_id,
    check_limit,
    check_list_key,
    check_seconds,
    check_ttl,
    dump_map,
    history_key,
)


class AsyncStateAPI(StateBackend):
    """The ``a…`` methods.

    Each guarantees what its sync twin in :class:`~chatstate.adapters.base.StateAdapter`
    does."""

    async def ais_subscribed(self, thread_id: str) -> bool:
        return await self._arun(self._do_is_subscribed, check_id(thread_id, "thread_id"))

    async def asubscribe(self, thread_id: str) -> None:
        await self._arun(self._do_subscribe, check_id(thread_id, "thread_id"))

    async def aunsubscribe(self, thread_id: str) -> None:
        await self._arun(self._do_unsubscribe, check_id(thread_id, "thread_id"))

    async def athread_state(self, thread_id: str) -> dict[str, Any]:
        return await self._arun(self._do_get_state, "thread", check_id(thread_id, "thread_id"))

    async def aput_thread_state(self, thread_id: str, value: dict[str, Any]) -> None:
        thread_id = check_id(thread_id, "thread_id")
        await self._arun(self._do_put_state, "thread", thread_id, value, dump_map(value))

    async def achannel_state(self, channel_id: str) -> dict[str, Any]:
        return await self._arun(self._do_get_state, "channel", check_id(channel_id, "channel_id"))

    async def aput_channel_state(self, channel_id: str, value: dict[str, Any]) -> None:
        channel_id = check_id(channel_id, "channel_id")
        await self._arun(self._do_put_state, "channel", channel_id, value, dump_map(value))

    async def aupdate_thread_state(self, thread_id: str, fn: StateFn) -> dict[str, Any]:
        thread_id = check_id(thread_id, "thread_id")
        return await self._arun(self._do_update_state, "thread", thread_id, fn)

    async def aupdate_channel_state(self, channel_id: str, fn: StateFn) -> dict[str, Any]:
        channel_id = check_id(channel_id, "channel_id")
        return await self._arun(self._do_update_state, "channel", channel_id, fn)

    async def aappend_to_list(
        self, key: str, value: Any, *, max_length: int | None = None, ttl: float | None = None
    ) -> None:
        append = list_append(key, value, max_length, ttl, "append_to_list")
        await self._arun(self._do_append_to_list, append)

    async def aget_list(self, key: str, limit: int | None = None) -> list[Any]:
        n = None if limit is None else check_limit(limit)
        return await self._arun(self._do_get_list, check_list_key(key), n)

    async def adelete_list(self, key: str) -> int:
        return await self._arun(self._do_delete_list, check_list_key(key))

    async def ahistory(self, thread_id: str, limit: int | None = None) -> list[Any]:
        return await self.aget_list(history_key(check_id(thread_id, "thread_id")), limit)

    async def aoutbox(self, thread_id: str | None = None) -> list[OutboxEntry]:
        thread = None if thread_id is None else check_id(thread_id, "thread_id")
        return await self._arun(self._do_outbox, thread)

    async def ais_duplicate(self, key: DedupeKey | list[str]) -> bool:
        return await self._arun(self._do_is_duplicate, check_dedupe_key(key))

    async def amark_dedupe(
        self, key: DedupeKey | list[str], limit: int | None = None, *, min_age: float | None = None
    ) -> None:
        await self.aclaim_dedupe(key, limit, min_age=min_age)

    async def aclaim_dedupe(
        self, key: DedupeKey | list[str], limit: int | None = None, *, min_age: float | None = None
    ) -> bool:
        key = check_dedupe_key(key)
        n = self.dedupe_limit if limit is None else check_limit(limit)
        return await self._arun(self._do_claim_dedupe, key, n, self._min_age(min_age))

    async def alock(
        self,
        key: str,
        owner: str,
        strategy: Strategy | str = Strategy.REJECT,
        metadata: Mapping[str, Any] | None = None,
        *,
        ttl: float | None = None,
        max_pending: int | None = None,
        overflow: str | None = None,
        max_concurrent: int | None = None,
    ) -> LockResult:
        request = self._lock_request(
            key, owner, strategy, metadata, ttl, max_pending, overflow, max_concurrent
        )
        if request.strategy is Strategy.CONCURRENT and not request.capped:
            return LockResult.ACQUIRED
        return self._locked(request, await self._arun(self._do_lock, request))

    async def aextend_lock(self, key: str, owner: str, ttl: float | None = None) -> bool:
        key = check_id(key, "key")
        owner = check_id(owner, "owner")
        n = self.lock_ttl if ttl is None else check_ttl(ttl)
        return await self._arun(self._do_extend_lock, key, owner, n)

    async def arelease_lock(
        self, key: str, owner: str, *, only_if_idle: bool = False
    ) -> list[PendingEntry]:
        key, owner = check_id(key, "key"), check_id(owner, "owner")
        handover = await self._arun(self._do_release_lock, key, owner, bool(only_if_idle))
        return self._handed(key, handover)

    async def atake_pending(
        self, key: str, owner: str, limit: int | None = None
    ) -> list[PendingEntry]:
        key, owner = check_id(key, "key"), check_id(owner, "owner")
        n = None if limit is None else check_limit(limit)
        return self._handed(key, await self._arun(self._do_take_pending, key, owner, n))

    async def aforce_release_lock(self, key: str) -> list[PendingEntry]:
        return await self._arun(self._do_force_release_lock, check_id(key, "key"))

    async def asnapshot(self) -> Snapshot:
        return await self._arun(self._do_snapshot)

    async def aload_snapshot(
        self, snapshot: Snapshot | Mapping[str, Any], merge: bool = False
    ) -> None:
        await self._arun(self._do_load_snapshot, snapshot_from(snapshot), bool(merge))

    async def aprune(
        self,
        dedupe_limit: int | None = None,
        dry_run: bool = False,
        *,
        state_older_than: float | None = None,
    ) -> dict[str, int]:
        request = self._prune_request(dedupe_limit, dry_run, state_older_than)
        return self._pruned(await self._arun(self._do_prune, request))

    async def aactivity(self, quiet_for: float = DEFAULT_QUIET_FOR) -> dict[str, Any]:
        quiet_for = check_seconds(quiet_for, "quiet_for")
        return activity_report(*(await self._arun(self._do_activity)), quiet_for)
