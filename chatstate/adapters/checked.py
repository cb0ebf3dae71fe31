"""The settings a backend reads, the checked requests its hooks receive, and the signals of
what they report (a base of :class:`~chatstate.adapters.hooks.StateBackend`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chatstate import conf, signals
from chatstate.calls import (
    CycleRequest,
    Handover,
    LockOutcome,
    LockRequest,
    Pruned,
    PruneRequest,
)
from chatstate.types import DedupeKey, LockResult, PendingEntry, Strategy
from chatstate.validation import (
    check_dedupe_key,
    check_id,
    check_limit,
    check_optional_limit,
    check_optional_ttl,
    check_overflow,
    check_seconds,
    check_strategy,
    check_ttl,
    dump_metadata,
)


class CheckedCalls:
    """One namespace's settings (from ``CHATSTATE``), and the requests built from them."""

    #: Short backend name, for the benchmark and messages ("memory", "database", "redis").
    name: str = "base"

    def __init__(self, namespace: str | None = None) -> None:
        settings = conf.chatstate_settings()
        self.namespace: str = check_id(
            settings["NAMESPACE"] if namespace is None else namespace, "namespace"
        )
        self.dedupe_limit: int = check_limit(settings["DEDUPE_LIMIT"], "DEDUPE_LIMIT")
        self.lock_ttl: float = check_ttl(settings["LOCK_TTL"])
        self.max_pending: int | None = check_optional_limit(settings["MAX_PENDING"], "MAX_PENDING")
        self.overflow: str = check_overflow(settings["OVERFLOW"])
        self.pending_ttl: float | None = check_optional_ttl(settings["PENDING_TTL"], "PENDING_TTL")
        self.dedupe_min_age: float = check_seconds(settings["DEDUPE_MIN_AGE"], "DEDUPE_MIN_AGE")
        self.history_limit: int = check_limit(settings["HISTORY_LIMIT"], "HISTORY_LIMIT")
        self.history_ttl: float | None = check_optional_ttl(settings["HISTORY_TTL"], "HISTORY_TTL")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} namespace={self.namespace!r}>"

    # -- the checked requests the hooks receive ------------------------------------------

    def _lock_request(
        self,
        key: str,
        owner: str,
        strategy: Strategy | str,
        metadata: Mapping[str, Any] | None,
        ttl: float | None,
        max_pending: int | None,
        overflow: str | None,
        max_concurrent: int | None = None,
    ) -> LockRequest:
        return LockRequest(
            check_id(key, "key"),
            check_id(owner, "owner"),
            check_strategy(strategy),
            dump_metadata(metadata),
            self.lock_ttl if ttl is None else check_ttl(ttl),
            self.max_pending if max_pending is None else check_limit(max_pending, "max_pending"),
            self.overflow if overflow is None else check_overflow(overflow),
            check_optional_limit(max_concurrent, "max_concurrent"),
        )

    def _cycle_request(
        self,
        dedupe_key: DedupeKey | list[str],
        thread_id: str,
        owner: str,
        strategy: Strategy | str,
        metadata: Mapping[str, Any] | None,
        dedupe_limit: int | None,
        ttl: float | None,
        keepalive: bool,
        max_pending: int | None,
        overflow: str | None,
        min_age: float | None,
        channel_id: str | None = None,
        history: int = 0,
        max_concurrent: int | None = None,
    ) -> CycleRequest:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be an int >= 0, got {history!r}")
        return CycleRequest(
            check_dedupe_key(dedupe_key),
            check_id(thread_id, "thread_id"),
            check_id(owner, "owner"),
            check_strategy(strategy),
            dump_metadata(metadata),
            self.dedupe_limit if dedupe_limit is None else check_limit(dedupe_limit),
            self.lock_ttl if ttl is None else check_ttl(ttl),
            self.max_pending if max_pending is None else check_limit(max_pending, "max_pending"),
            self.overflow if overflow is None else check_overflow(overflow),
            self._min_age(min_age),
            bool(keepalive),
            None if channel_id is None else check_id(channel_id, "channel_id"),
            history,
            check_optional_limit(max_concurrent, "max_concurrent"),
        )

    def _min_age(self, min_age: float | None) -> float:
        return self.dedupe_min_age if min_age is None else check_seconds(min_age, "min_age")

    def _prune_request(
        self, dedupe_limit: int | None, dry_run: bool, state_older_than: float | None
    ) -> PruneRequest:
        return PruneRequest(
            self.dedupe_limit if dedupe_limit is None else check_limit(dedupe_limit),
            bool(dry_run),
            self.dedupe_min_age,
            self.pending_ttl,
            check_optional_ttl(state_older_than, "state_older_than"),
        )

    # -- what the hooks report -----------------------------------------------------------

    def _locked(self, request: LockRequest, outcome: LockOutcome) -> LockResult:
        """Send the signals of a lock's ``outcome``; its result."""
        result = outcome.result
        if result is not LockResult.ACQUIRED:
            signals.contended(self, request.key, request.owner, result)
        dropped = outcome.dropped
        if result is LockResult.DROPPED:  # drop_newest: the newcomer itself
            dropped = [PendingEntry(request.owner, request.strategy, json.loads(request.metadata))]
        if dropped:
            why = "debounce" if request.strategy is Strategy.DEBOUNCE else "overflow"
            signals.dropped(self, request.key, dropped, why)
        signals.taken_over(self, request.key, request.owner, outcome.taken_over)
        return result

    def _pruned(self, pruned: Pruned) -> dict[str, int]:
        """Report the entries a prune dropped as expired; its counts."""
        for key, entries in pruned.expired.items():
            signals.dropped(self, key, entries, "expired")
        return pruned.counts

    def _handed(self, key: str, handover: Handover) -> list[PendingEntry]:
        """Report the expired entries of a ``handover``; the entries handed over."""
        signals.dropped(self, key, handover.expired, "expired")
        return handover.entries
