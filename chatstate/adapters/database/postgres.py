"""``PostgresStateAdapter``: ``DatabaseStateAdapter`` on PostgreSQL, one round trip a call.

Every hot operation is one statement in autocommit mode — one round trip and one commit —
most of them a ``SELECT`` of a PL/pgSQL function of ``functions.sql`` (installed by the
migrations from their frozen copies). Reads, ``update_*_state``, snapshots and ``prune`` are
the ORM's (inherited). ``DatabaseStateAdapter(...)`` builds this class on PostgreSQL unless
``fast_sql=False``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import connections

from chatstate.adapters.database import connection
from chatstate.adapters.database.orm import DatabaseStateAdapter
from chatstate.calls import CycleEntry, CycleRequest, Handover, LockOutcome, LockRequest, lease_lost
from chatstate.types import RESULTS, STRATEGIES, DedupeKey, LockResult, PendingEntry, not_owner

#: The version ``chatstate_functions_version()`` reports for the functions this code calls.
FUNCTIONS_VERSION = 2
#: Their source: the text the latest migration installs (``migrations/sql/``).
FUNCTIONS_FILE = Path(__file__).with_name("functions.sql")

_STATE_TABLES = {
    "thread": ("chatstate_threadstate", "thread_id"),
    "channel": ("chatstate_channelstate", "channel_id"),
}
SUBSCRIBE = (
    "INSERT INTO chatstate_subscription (namespace, thread_id, created_at)"
    " VALUES (%s, %s, statement_timestamp()) ON CONFLICT (namespace, thread_id)"
    " DO UPDATE SET created_at = EXCLUDED.created_at"
)
UNSUBSCRIBE = "DELETE FROM chatstate_subscription WHERE namespace = %s AND thread_id = %s"
PUT_STATE = (
    "INSERT INTO {table} (namespace, {column}, value, updated_at)"
    " VALUES (%s, %s, %s::jsonb, statement_timestamp())"
    " ON CONFLICT (namespace, {column})"
    " DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"
)
CLAIM = (
    "SELECT chatstate_claim(%s::text, %s::text, %s::text, %s::bigint, NULL, NULL, NULL, %s::float8)"
)
LOCK = (
    "SELECT * FROM chatstate_lock(%s::text, %s::text, %s::text, %s::text, %s::jsonb,"
    " %s::float8, %s::integer, %s::text)"
)
EXTEND = (
    "UPDATE chatstate_lock"
    " SET expires_at = statement_timestamp() + make_interval(secs => %s::float8), ttl = %s"
    " WHERE namespace = %s AND key = %s AND owner = %s AND expires_at > statement_timestamp()"
)
RELEASE = "SELECT * FROM chatstate_release(%s::text, %s::text, %s::text, %s::boolean, %s::float8)"
TAKE = "SELECT * FROM chatstate_take_pending(%s::text, %s::text, %s::text, %s::integer, %s::float8)"
ENTER = (
    "SELECT * FROM chatstate_enter(%s::text, %s::text, %s::text, %s::bigint, %s::text,"
    " %s::text, %s::text, %s::jsonb, %s::float8, %s::float8, %s::integer, %s::text)"
)
COMMIT = (
    "SELECT * FROM chatstate_commit(%s::text, %s::text, %s::text, %s::jsonb, %s::text,"
    " %s::text, %s::boolean, %s::float8)"
)
DRAIN = (
    "SELECT * FROM chatstate_drain(%s::text, %s::text, %s::text, %s::jsonb, %s::text,"
    " %s::text, %s::bigint, %s::float8, %s::float8)"
)
RENEW = (
    "SELECT chatstate_renew(%s::text, %s::text, %s::text, %s::text, %s::text, %s::boolean,"
    " %s::float8)"
)
ABORT = "SELECT chatstate_abort(%s::text, %s::text, %s::text, %s::text, %s::text, %s::boolean)"


def installed_functions_version(using: str) -> int | None:
    """The version of the chatstate functions installed in database ``using`` (``None``: none,
    or version 1, which did not report one)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('chatstate_functions_version()') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT chatstate_functions_version()")
        return int(cursor.fetchone()[0])


class PostgresStateAdapter(DatabaseStateAdapter, vendor="postgresql"):
    """:class:`DatabaseStateAdapter` whose hot operations are single PostgreSQL statements."""

    fast_sql = True

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> Any:
        """Run one statement (autocommit: its own transaction); its first row."""
        with connection.guard(self.using), connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement; its row count."""
        with connection.guard(self.using), connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    # -- primitives ----------------------------------------------------------------------

    def _do_subscribe(self, thread_id: str) -> None:
        self._execute(SUBSCRIBE, (self.namespace, thread_id))

    def _do_unsubscribe(self, thread_id: str) -> None:
        self._execute(UNSUBSCRIBE, (self.namespace, thread_id))

    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> None:
        table, column = _STATE_TABLES[kind]
        sql = PUT_STATE.format(table=table, column=column)
        self._execute(sql, (self.namespace, object_id, value_json))

    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> bool:
        return bool(self._fetch(CLAIM, (self.namespace, *key, limit, min_age))[0])

    def _do_lock(self, request: LockRequest) -> LockOutcome:
        result, dropped, taken_over = self._fetch(
            LOCK,
            (
                self.namespace,
                request.key,
                request.owner,
                request.strategy.value,
                request.metadata,
                request.ttl,
                request.max_pending,
                request.overflow,
            ),
        )
        return LockOutcome(RESULTS[result], _entries(dropped), taken_over)

    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> bool:
        return bool(self._execute(EXTEND, (ttl, ttl, self.namespace, key, owner)))

    def _handover(self, key: str, owner: str, row: Any) -> Handover:
        released, holder, pending, expired = row
        if not released:
            raise not_owner(key, owner, holder)
        return Handover(_entries(pending), _entries(expired))

    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Handover:
        row = self._fetch(RELEASE, (self.namespace, key, owner, only_if_idle, self.pending_ttl))
        return self._handover(key, owner, row)

    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Handover:
        row = self._fetch(TAKE, (self.namespace, key, owner, limit, self.pending_ttl))
        return self._handover(key, owner, row)

    def _do_force_release_lock(self, key: str) -> list[PendingEntry]:
        return _entries(self._fetch(RELEASE, (self.namespace, key, None, False, None))[2])

    # -- the message cycle: one statement each -------------------------------------------

    def cycle_enter(self, request: CycleRequest) -> CycleEntry:
        claimed, subscribed, result, state, in_progress, dropped, taken_over = self._fetch(
            ENTER,
            (
                self.namespace,
                *request.dedupe_key,
                request.dedupe_limit,
                request.thread_id,
                request.owner,
                request.strategy.value,
                request.metadata,
                request.ttl,
                request.min_age,
                request.max_pending,
                request.overflow,
            ),
        )
        if result == "acquired":
            entry = CycleEntry(True, bool(subscribed), LockResult.ACQUIRED, _json(state) or {})
        else:
            found = result and RESULTS[result]
            entry = CycleEntry(bool(claimed), bool(subscribed), found, in_progress=in_progress)
        if dropped is not None:
            entry.dropped = _entries(dropped)
        entry.taken_over = taken_over
        return entry

    def _cycle_args(self, request: CycleRequest, state_json: str | None) -> tuple[Any, ...]:
        return (self.namespace, request.thread_id, request.owner, state_json, *request.dedupe_key)

    def cycle_commit(self, request: CycleRequest, state_json: str | None) -> Handover:
        released, holder, pending, expired = self._fetch(
            COMMIT, (*self._cycle_args(request, state_json), request.locks, self.pending_ttl)
        )
        if not released:
            raise lease_lost(request, holder)
        return Handover(_entries(pending), _entries(expired))

    def cycle_drain(
        self, request: CycleRequest, state_json: str | None, finished: str | None, first: bool
    ) -> Handover:
        released, holder, entry, expired = self._fetch(
            DRAIN,
            (
                *self._cycle_args(request, state_json),
                None if finished is None else int(finished),
                request.ttl,
                self.pending_ttl,
            ),
        )
        if not released:
            raise lease_lost(request, holder)
        return Handover(_entries([_json(entry)] if entry is not None else []), _entries(expired))

    def cycle_renew(self, request: CycleRequest) -> bool:
        return bool(
            self._fetch(
                RENEW,
                (
                    self.namespace,
                    request.thread_id,
                    request.owner,
                    *request.dedupe_key,
                    request.locks,
                    request.ttl,
                ),
            )[0]
        )

    def cycle_abort(self, request: CycleRequest) -> bool:
        return bool(
            self._fetch(
                ABORT,
                (
                    self.namespace,
                    *request.dedupe_key,
                    request.thread_id,
                    request.owner,
                    request.locks,
                ),
            )[0]
        )


def _json(value: Any) -> Any:
    # Django's psycopg setup hands jsonb back as text; a bare connection parses it.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _entries(rows: Any) -> list[PendingEntry]:
    return [
        PendingEntry(owner, STRATEGIES[strategy], metadata, enqueued_at, str(entry_id))
        for entry_id, owner, strategy, metadata, enqueued_at in _json(rows) or ()
    ]
