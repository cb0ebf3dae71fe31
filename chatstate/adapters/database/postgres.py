"""``PostgresStateAdapter``: ``DatabaseStateAdapter`` on PostgreSQL, one round trip a call.

Every hot operation is one statement in autocommit mode — one round trip and one commit —
most of them a ``SELECT`` of a PL/pgSQL function of ``functions.sql`` (installed by the
migrations from their frozen copies); lists and the outbox too (:mod:`.pgeffects`), and a
cycle's commit writes what it staged in its own statement. ``update_*_state``, snapshots and
``prune`` are the ORM's (inherited). ``DatabaseStateAdapter(...)`` builds this class on
PostgreSQL unless ``fast_sql=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from django.db import connections

from chatstate.adapters.database.orm import DatabaseStateAdapter
from chatstate.adapters.database.pgeffects import (
    PostgresListsAndOutbox,
    effects_json,
    jsonb_value,
)
from chatstate.adapters.operations import COUNT, ROW, Op, operation
from chatstate.calls import (
    CycleEntry,
    CycleRequest,
    Handover,
    LockOutcome,
    LockRequest,
    Staged,
    lease_lost,
)
from chatstate.types import RESULTS, STRATEGIES, DedupeKey, LockResult, PendingEntry, not_owner
from chatstate.validation import history_key

#: The version ``chatstate_functions_version()`` reports for the functions this code calls.
FUNCTIONS_VERSION = 17
#: Their source: the text the latest migration installs (``migrations/sql/``).
FUNCTIONS_FILE = Path(__file__).with_name("functions.sql")

T = TypeVar("T")

IS_SUBSCRIBED = (
    "SELECT EXISTS (SELECT 1 FROM chatstate_subscription WHERE namespace = %s AND thread_id = %s)"
)
GET_STATE = {
    "thread": "SELECT value FROM chatstate_threadstate WHERE namespace = %s AND thread_id = %s",
    "channel": "SELECT value FROM chatstate_channelstate WHERE namespace = %s AND channel_id = %s",
}
IS_DUPLICATE = (
    "SELECT EXISTS (SELECT 1 FROM chatstate_dedupeentry d WHERE d.namespace = %s"
    " AND d.adapter = %s AND d.message_id = %s"
    " AND chatstate_claim_holds(d.namespace, d.owner, d.thread_id, d.expires_at))"
)
SUBSCRIBE = (
    "INSERT INTO chatstate_subscription (namespace, thread_id, created_at)"
    " VALUES (%s, %s, statement_timestamp()) ON CONFLICT (namespace, thread_id)"
    " DO UPDATE SET created_at = EXCLUDED.created_at"
)
UNSUBSCRIBE = (
    "DELETE FROM chatstate_subscription WHERE namespace = %s::text AND thread_id = %s::text"
)
PUT_STATE = {
    kind: (
        f"INSERT INTO {table} (namespace, {column}, value, updated_at)"
        " VALUES (%s, %s, %s::jsonb, statement_timestamp())"
        f" ON CONFLICT (namespace, {column})"
        " DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"
    )
    for kind, table, column in (
        ("thread", "chatstate_threadstate", "thread_id"),
        ("channel", "chatstate_channelstate", "channel_id"),
    )
}
CLAIM = (
    "SELECT (chatstate_claim(%s::text, %s::text, %s::text, %s::bigint, NULL, NULL, NULL,"
    " %s::float8)).claim_id IS NOT NULL"
)
LOCK = (
    "SELECT result, dropped, taken_over FROM chatstate_lock(%s::text, %s::text, %s::text,"
    " %s::text, %s::jsonb, %s::float8, %s::integer, %s::text)"
)
TAKE_SLOT = (
    "SELECT result, dropped FROM chatstate_take_slot(%s::text, %s::text, %s::text, %s::jsonb,"
    " %s::float8, %s::integer, %s::text, %s::integer)"
)
#: A lock's lease, or (the row holding slots) the owner's slot's: renewed when unexpired. One
#: statement either way; on a lock row (holders NULL) the slot expressions do nothing.
EXTEND = (
    "UPDATE chatstate_lock SET"
    " expires_at = CASE WHEN holders IS NULL"
    " THEN statement_timestamp() + make_interval(secs => %s::float8)"
    " ELSE chatstate_holders_until(chatstate_renewed(holders, %s::text, %s::float8, true)) END,"
    " ttl = CASE WHEN holders IS NULL THEN %s::float8 ELSE ttl END,"
    " holders = chatstate_renewed(holders, %s::text, %s::float8, true)"
    " WHERE namespace = %s::text AND key = %s::text AND expires_at > statement_timestamp()"
    " AND (owner = %s::text"
    " OR (holders -> %s::text ->> 'expires_at')::timestamptz > statement_timestamp())"
)
RELEASE = "SELECT * FROM chatstate_release(%s::text, %s::text, %s::text, %s::boolean, %s::float8)"
TAKE = "SELECT * FROM chatstate_take_pending(%s::text, %s::text, %s::text, %s::integer, %s::float8)"
ENTER = (
    "SELECT * FROM chatstate_enter(%s::text, %s::text, %s::text, %s::bigint, %s::text,"
    " %s::text, %s::text, %s::jsonb, %s::float8, %s::float8, %s::integer, %s::text,"
    " %s::text, %s::bigint, %s::integer)"
)
COMMIT = (
    "SELECT * FROM chatstate_commit(%s::text, %s::text, %s::text, %s::jsonb, %s::bigint,"
    " %s::boolean, %s::boolean, %s::float8, %s::jsonb, %s::boolean, %s::tid, %s::tid,"
    " %s::tid)"
)
DRAIN = (
    "SELECT * FROM chatstate_drain(%s::text, %s::text, %s::text, %s::jsonb, %s::bigint,"
    " %s::boolean, %s::bigint, %s::float8, %s::float8, %s::jsonb, %s::boolean)"
)
GATHER = "SELECT * FROM chatstate_gather(%s::text, %s::text, %s::text, %s::float8, %s::float8)"
RENEW = (
    "SELECT chatstate_renew(%s::text, %s::text, %s::text, %s::text, %s::text, %s::boolean,"
    " %s::float8, %s::boolean)"
)
ABORT = (
    "SELECT chatstate_abort(%s::text, %s::text, %s::text, %s::text, %s::text, %s::boolean,"
    " %s::boolean)"
)


def installed_functions_version(using: str) -> int | None:
    """The version of the chatstate functions installed in database ``using`` (``None``: none,
    or version 1, which did not report one)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('chatstate_functions_version()') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT chatstate_functions_version()")
        return int(cursor.fetchone()[0])


class PostgresStateAdapter(PostgresListsAndOutbox, DatabaseStateAdapter, vendor="postgresql"):
    """:class:`DatabaseStateAdapter` whose operations are single PostgreSQL statements,
    prepared (``prepared=False``: never, as PgBouncer before 1.21 in transaction pooling
    needs; ``None``, the default: unless the connection goes through a pooler, detected
    once per connection; see :mod:`.pgdriver`), and natively async.

    Each operation below (and the list and outbox hooks of
    :class:`~.pgeffects.PostgresListsAndOutbox`) is one statement (an :func:`operation`
    yielding it), run by :class:`~.pgdriver.SyncDriver` or, for the async twins,
    :class:`~.pgdriver.AsyncDriver`. ``update_*_state``, snapshots and ``prune`` are the
    ORM's (inherited).
    """

    fast_sql = True

    def __init__(
        self,
        namespace: str | None = None,
        using: str | None = None,
        fast_sql: bool = True,
        prepared: bool | None = None,
    ) -> None:
        super().__init__(namespace, using, fast_sql)
        self.prepared = None if prepared is None else bool(prepared)
        # Imported here: psycopg is needed on PostgreSQL only (the ``postgres`` extra), and
        # this module is imported wherever the database adapter is.
        from chatstate.adapters.database import pgdriver

        self._sync: pgdriver.SyncDriver = pgdriver.SyncDriver(self.using, self.prepared)
        self._async: pgdriver.AsyncDriver = pgdriver.AsyncDriver(self.using, self.prepared)

    def _drive(self, op: Op[T]) -> T:
        """Run the operation ``op`` on the Django connection (one statement a request)."""
        result: T = self._sync.drive(op)
        return result

    async def _adrive(self, op: Op[T]) -> T:
        """Run the operation ``op`` on this event loop's async connections."""
        result: T = await self._async.drive(op)
        return result

    def close(self) -> None:
        """Close the async connections this adapter opened (they reopen on next use); for an
        ASGI server's shutdown, or a test's end. The Django connection is Django's."""
        self._async.close()

    # -- subscriptions, state maps, dedupe -----------------------------------------------

    @operation
    def _do_is_subscribed(self, thread_id: str) -> Op[bool]:
        return bool((yield (ROW, IS_SUBSCRIBED, (self.namespace, thread_id)))[0])

    @operation
    def _do_subscribe(self, thread_id: str) -> Op[None]:
        yield (COUNT, SUBSCRIBE, (self.namespace, thread_id))

    @operation
    def _do_unsubscribe(self, thread_id: str) -> Op[None]:
        yield (COUNT, UNSUBSCRIBE, (self.namespace, thread_id))

    @operation
    def _do_get_state(self, kind: str, object_id: str) -> Op[dict[str, Any]]:
        row = yield (ROW, GET_STATE[kind], (self.namespace, object_id))
        return {} if row is None else jsonb_value(row[0])

    @operation
    def _do_put_state(
        self, kind: str, object_id: str, value: dict[str, Any], value_json: str
    ) -> Op[None]:
        yield (COUNT, PUT_STATE[kind], (self.namespace, object_id, value_json))

    @operation
    def _do_is_duplicate(self, key: DedupeKey) -> Op[bool]:
        return bool((yield (ROW, IS_DUPLICATE, (self.namespace, *key)))[0])

    @operation
    def _do_claim_dedupe(self, key: DedupeKey, limit: int, min_age: float) -> Op[bool]:
        return bool((yield (ROW, CLAIM, (self.namespace, *key, limit, min_age)))[0])

    # -- locks ---------------------------------------------------------------------------

    @operation
    def _do_lock(self, request: LockRequest) -> Op[LockOutcome]:
        if request.capped:
            result, dropped = yield (
                ROW,
                TAKE_SLOT,
                (
                    self.namespace,
                    request.key,
                    request.owner,
                    request.metadata,
                    request.ttl,
                    request.max_pending,
                    request.overflow,
                    request.max_concurrent,
                ),
            )
            return LockOutcome(RESULTS[result], _entries(dropped))
        result, dropped, taken_over = yield (
            ROW,
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

    @operation
    def _do_extend_lock(self, key: str, owner: str, ttl: float) -> Op[bool]:
        params = (ttl, owner, ttl, ttl, owner, ttl, self.namespace, key, owner, owner)
        return bool((yield (COUNT, EXTEND, params)))

    @operation
    def _do_release_lock(self, key: str, owner: str, only_if_idle: bool) -> Op[Handover]:
        params = (self.namespace, key, owner, only_if_idle, self.pending_ttl)
        return _handover(key, owner, (yield (ROW, RELEASE, params)))

    @operation
    def _do_take_pending(self, key: str, owner: str, limit: int | None) -> Op[Handover]:
        params = (self.namespace, key, owner, limit, self.pending_ttl)
        return _handover(key, owner, (yield (ROW, TAKE, params)))

    @operation
    def _do_force_release_lock(self, key: str) -> Op[list[PendingEntry]]:
        row = yield (ROW, RELEASE, (self.namespace, key, None, False, None))
        return _entries(row[2])

    # -- the message cycle: one statement each -------------------------------------------

    @operation
    def _do_cycle_enter(self, request: CycleRequest) -> Op[CycleEntry]:
        (
            claimed,
            subscribed,
            result,
            state,
            in_progress,
            dropped,
            taken_over,
            held,
            history,
            claim_id,
            claim_at,
            lock_at,
            state_at,
        ) = yield (
            ROW,
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
                history_key(request.thread_id) if request.history else None,
                request.history,
                request.max_concurrent if request.slots else None,
            ),
        )
        if result == "acquired":
            entry = CycleEntry(True, True, LockResult.ACQUIRED, jsonb_value(state) or {}, held=True)
            entry.subscribed = bool(subscribed)
        else:
            found = result and RESULTS[result]
            entry = CycleEntry(bool(claimed), bool(subscribed), found, in_progress=in_progress)
            if held:
                entry.held, entry.state = True, jsonb_value(state) or {}
        entry.claim_id = claim_id
        entry.rows = (claim_at, lock_at, state_at)
        if history is not None:
            entry.history = jsonb_value(history)
        if dropped is not None and dropped != "[]":
            entry.dropped = _entries(dropped)
        entry.taken_over = taken_over
        return entry

    def _cycle_args(self, request: CycleRequest, staged: Staged) -> tuple[Any, ...]:
        return (self.namespace, request.thread_id, request.owner, staged.state, staged.claim_id)

    @operation
    def _do_cycle_commit(self, request: CycleRequest, staged: Staged) -> Op[Handover]:
        params = (
            *self._cycle_args(request, staged),
            request.locks,
            staged.claim,
            self.pending_ttl,
            effects_json(staged),
            request.slots,
            *(staged.rows or (None, None, None)),
        )
        released, holder, pending, expired = yield (ROW, COMMIT, params)
        if not released:
            raise lease_lost(request, holder)
        return Handover(_entries(pending), _entries(expired))

    @operation
    def _do_cycle_drain(
        self, request: CycleRequest, staged: Staged, finished: str | None
    ) -> Op[Handover]:
        params = (
            *self._cycle_args(request, staged),
            staged.claim,
            None if finished is None else int(finished),
            request.ttl,
            self.pending_ttl,
            effects_json(staged),
            request.slots,
        )
        released, holder, entry, expired = yield (ROW, DRAIN, params)
        if not released:
            raise lease_lost(request, holder)
        return Handover(
            _entries([jsonb_value(entry)] if entry is not None else []), _entries(expired)
        )

    @operation
    def _do_cycle_renew(self, request: CycleRequest) -> Op[bool]:
        params = (
            self.namespace,
            request.thread_id,
            request.owner,
            *request.dedupe_key,
            request.locks,
            request.ttl,
            request.slots,
        )
        return bool((yield (ROW, RENEW, params))[0])

    @operation
    def _do_cycle_gather(self, request: CycleRequest) -> Op[Handover]:
        params = (self.namespace, request.thread_id, request.owner, request.ttl, self.pending_ttl)
        ok, holder, entries, expired = yield (ROW, GATHER, params)
        if not ok:
            raise lease_lost(request, holder)
        return Handover(_entries(entries), _entries(expired))

    @operation
    def _do_cycle_abort(self, request: CycleRequest) -> Op[bool]:
        params = (
            self.namespace,
            *request.dedupe_key,
            request.thread_id,
            request.owner,
            request.locks,
            request.slots,
        )
        return bool((yield (ROW, ABORT, params))[0])


def _handover(key: str, owner: str, row: Any) -> Handover:
    released, holder, pending, expired = row
    if not released:
        raise not_owner(key, owner, holder)
    return Handover(_entries(pending), _entries(expired))


def _entries(rows: Any) -> list[PendingEntry]:
    return [
        PendingEntry(owner, STRATEGIES[strategy], metadata, enqueued_at, str(entry_id))
        for entry_id, owner, strategy, metadata, enqueued_at in jsonb_value(rows) or ()
    ]
