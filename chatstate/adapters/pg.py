"""The PostgreSQL fast path of ``DatabaseStateAdapter``: one round trip, one commit per call.

Each hot operation is one ``SELECT`` of a PL/pgSQL function installed by migration 0002.
Inside a function every statement takes a fresh snapshot (READ COMMITTED), so a function can
lock a row and then read what others committed before they let go of it — what
``select_for_update()`` followed by a query gives the ORM path, without the round trips.
Leases are measured on the database's clock, ``statement_timestamp()`` (which, unlike
``now()``, moves on inside a long transaction).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.db import connections

from chatstate.types import (
    RESULTS,
    STRATEGIES,
    LockResult,
    NotOwner,
    PendingEntry,
    Strategy,
)

if TYPE_CHECKING:
    from chatstate.adapters.base import CycleEntry, DedupeKey
    from chatstate.adapters.database import DatabaseStateAdapter

#: The adapter hooks this module replaces when the database is PostgreSQL.
FAST_METHODS = (
    "_do_subscribe",
    "_do_unsubscribe",
    "_do_put_state",
    "_do_claim_dedupe",
    "_do_withdraw_dedupe",
    "_do_lock",
    "_do_extend_lock",
    "_do_release_lock",
    "_do_force_release_lock",
    "_cycle_enter",
    "_cycle_commit",
    "_cycle_abort",
)

_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

FUNCTIONS_SQL = (
    r"""
CREATE OR REPLACE FUNCTION chatstate_claim(p_ns text, p_adapter text, p_mid text, p_limit bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_id bigint; v_seq bigint; v_count bigint; v_gone bigint;
BEGIN
    PERFORM 1 FROM chatstate_dedupeentry
        WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid;
    IF FOUND THEN RETURN false; END IF;
    -- The newest position + 1 (claims at the same instant may share one: ties are ordered
    -- by id). The unique key makes exactly one of two racing claims of a key win.
    INSERT INTO chatstate_dedupeentry (namespace, adapter, message_id, seq, created_at)
        SELECT p_ns, p_adapter, p_mid, coalesce(max(d.seq), 0) + 1, statement_timestamp()
        FROM chatstate_dedupeentry d WHERE d.namespace = p_ns
        ON CONFLICT (namespace, adapter, message_id) DO NOTHING
        RETURNING id, seq INTO v_id, v_seq;
    IF NOT FOUND THEN RETURN false; END IF;
    -- ``head`` counts the window's keys. Steady state -- the window is full -- one key in,
    -- one out: drop the oldest without touching the window row, so claims in a namespace
    -- do not queue behind one row lock (and its commit) one at a time.
    SELECT head INTO v_count FROM chatstate_dedupewindow WHERE namespace = p_ns;
    IF v_count = p_limit THEN
        DELETE FROM chatstate_dedupeentry WHERE id = (
            SELECT id FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND seq = v_seq - p_limit
            LIMIT 1 FOR UPDATE SKIP LOCKED);
        IF FOUND THEN RETURN true; END IF;
        DELETE FROM chatstate_dedupeentry WHERE id = (
            SELECT id FROM chatstate_dedupeentry WHERE namespace = p_ns AND seq < v_seq
            ORDER BY seq, id LIMIT 1 FOR UPDATE SKIP LOCKED);
        IF FOUND THEN RETURN true; END IF;
    END IF;
    -- Filling, shrinking (a smaller limit) or contended: count under the window row's lock,
    -- and trim to the limit (each transaction changes ``head`` by exactly what it did).
    INSERT INTO chatstate_dedupewindow AS w (namespace, head) VALUES (p_ns, 1)
        ON CONFLICT (namespace) DO UPDATE SET head = w.head + 1
        RETURNING head INTO v_count;
    WHILE v_count > p_limit LOOP
        WITH gone AS (
            DELETE FROM chatstate_dedupeentry WHERE id IN (
                SELECT id FROM chatstate_dedupeentry WHERE namespace = p_ns AND id <> v_id
                ORDER BY seq, id LIMIT v_count - p_limit FOR UPDATE)
            RETURNING 1)
        SELECT count(*) INTO v_gone FROM gone;
        IF v_gone = 0 THEN
            -- The count says more than there is (rows deleted behind the adapter's back):
            -- count once, and carry on from the truth.
            SELECT count(*) INTO v_count FROM chatstate_dedupeentry WHERE namespace = p_ns;
            UPDATE chatstate_dedupewindow SET head = v_count WHERE namespace = p_ns;
            CONTINUE;
        END IF;
        UPDATE chatstate_dedupewindow SET head = head - v_gone WHERE namespace = p_ns
            RETURNING head INTO v_count;
    END LOOP;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION chatstate_withdraw(p_ns text, p_adapter text, p_mid text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- The window row first, as the claim's trim takes it: one lock order, no deadlock.
    PERFORM 1 FROM chatstate_dedupewindow WHERE namespace = p_ns FOR UPDATE;
    DELETE FROM chatstate_dedupeentry
        WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid;
    IF FOUND THEN
        UPDATE chatstate_dedupewindow SET head = head - 1 WHERE namespace = p_ns;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION chatstate_lock(
    p_ns text, p_key text, p_owner text, p_strategy text, p_meta jsonb, p_ttl float8,
    p_max integer, p_overflow text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_depth integer;
BEGIN
    FOR attempt IN 1..20 LOOP
        -- Free, or the lease expired: take it (pending entries stay for the new holder).
        INSERT INTO chatstate_lock AS l
            (namespace, key, owner, strategy, metadata, acquired_at, expires_at)
            VALUES (p_ns, p_key, p_owner, p_strategy, p_meta, statement_timestamp(),
                    statement_timestamp() + make_interval(secs => p_ttl))
            ON CONFLICT (namespace, key) DO UPDATE
                SET owner = EXCLUDED.owner, strategy = EXCLUDED.strategy,
                    metadata = EXCLUDED.metadata, acquired_at = EXCLUDED.acquired_at,
                    expires_at = EXCLUDED.expires_at
                WHERE l.expires_at <= statement_timestamp();
        IF FOUND THEN RETURN 'acquired'; END IF;
        IF p_strategy = 'reject' THEN RETURN 'busy'; END IF;
        -- Held: lock the row, so that its release waits for this entry and then sees it.
        PERFORM 1 FROM chatstate_lock
            WHERE namespace = p_ns AND key = p_key AND expires_at > statement_timestamp()
            FOR UPDATE;
        IF FOUND THEN
            IF p_strategy = 'debounce' THEN
                DELETE FROM chatstate_pendinglockentry WHERE namespace = p_ns AND key = p_key;
            ELSIF p_max IS NOT NULL THEN
                SELECT count(*) INTO v_depth FROM chatstate_pendinglockentry
                    WHERE namespace = p_ns AND key = p_key;
                IF v_depth >= p_max THEN
                    IF p_overflow = 'drop_newest' THEN RETURN 'dropped'; END IF;
                    DELETE FROM chatstate_pendinglockentry WHERE id IN (
                        SELECT id FROM chatstate_pendinglockentry
                        WHERE namespace = p_ns AND key = p_key
                        ORDER BY id LIMIT v_depth - p_max + 1);
                END IF;
            END IF;
            INSERT INTO chatstate_pendinglockentry
                (namespace, key, owner, strategy, metadata, enqueued_at)
                VALUES (p_ns, p_key, p_owner, p_strategy, p_meta, statement_timestamp());
            RETURN CASE p_strategy WHEN 'debounce' THEN 'debounced' ELSE 'queued' END;
        END IF;
        -- Released or expired between the two statements: decide again.
    END LOOP;
    RAISE EXCEPTION 'chatstate_lock: no decision after 20 attempts on %', p_key;
END $$;

CREATE OR REPLACE FUNCTION chatstate_release(
    p_ns text, p_key text, p_owner text, p_keep boolean,
    OUT released boolean, OUT holder text, OUT pending jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    -- p_owner NULL: force release, whoever holds it.
    DELETE FROM chatstate_lock
        WHERE namespace = p_ns AND key = p_key AND (p_owner IS NULL OR owner = p_owner);
    IF NOT FOUND AND p_owner IS NOT NULL THEN
        released := false;
        SELECT owner INTO holder FROM chatstate_lock WHERE namespace = p_ns AND key = p_key;
        RETURN;
    END IF;
    released := true;
    IF p_keep THEN pending := '[]'; RETURN; END IF;
    WITH gone AS (
        DELETE FROM chatstate_pendinglockentry WHERE namespace = p_ns AND key = p_key
        RETURNING id, owner, strategy, metadata, enqueued_at)
    SELECT coalesce(jsonb_agg(jsonb_build_array(owner, strategy, metadata,
        """
    + _ISO.format("enqueued_at")
    + r""") ORDER BY id), '[]')
        INTO pending FROM gone;
END $$;

CREATE OR REPLACE FUNCTION chatstate_enter(
    p_ns text, p_adapter text, p_mid text, p_limit bigint, p_thread text, p_owner text,
    p_strategy text, p_meta jsonb, p_ttl float8,
    OUT claimed boolean, OUT subscribed boolean, OUT result text, OUT state jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    claimed := chatstate_claim(p_ns, p_adapter, p_mid, p_limit);
    IF claimed THEN
        IF p_strategy = 'concurrent' THEN
            result := 'acquired';
        ELSE
            result := chatstate_lock(p_ns, p_thread, p_owner, p_strategy, p_meta, p_ttl,
                                     NULL, 'drop_oldest');
        END IF;
    END IF;
    -- Read after the lock: a fresh snapshot sees what the previous holder committed.
    subscribed := EXISTS (SELECT 1 FROM chatstate_subscription
                          WHERE namespace = p_ns AND thread_id = p_thread);
    IF result = 'acquired' THEN
        SELECT value INTO state FROM chatstate_threadstate
            WHERE namespace = p_ns AND thread_id = p_thread;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION chatstate_commit(
    p_ns text, p_thread text, p_owner text, p_state jsonb,
    OUT released boolean, OUT holder text, OUT pending jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT r.released, r.holder, r.pending INTO released, holder, pending
        FROM chatstate_release(p_ns, p_thread, p_owner, false) r;
    IF released AND p_state IS NOT NULL THEN
        INSERT INTO chatstate_threadstate AS t (namespace, thread_id, value, updated_at)
            VALUES (p_ns, p_thread, p_state, statement_timestamp())
            ON CONFLICT (namespace, thread_id)
            DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION chatstate_abort(
    p_ns text, p_adapter text, p_mid text, p_thread text, p_owner text, p_locked boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM chatstate_withdraw(p_ns, p_adapter, p_mid);
    IF p_locked THEN
        PERFORM 1 FROM chatstate_release(p_ns, p_thread, p_owner, true);
    END IF;
END $$;
"""
)

DROP_SQL = """
DROP FUNCTION IF EXISTS chatstate_abort(text, text, text, text, text, boolean);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb);
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8);
DROP FUNCTION IF EXISTS chatstate_release(text, text, text, boolean);
DROP FUNCTION IF EXISTS chatstate_lock(text, text, text, text, jsonb, float8, integer, text);
DROP FUNCTION IF EXISTS chatstate_withdraw(text, text, text);
DROP FUNCTION IF EXISTS chatstate_claim(text, text, text, bigint);
"""


def _call(adapter: DatabaseStateAdapter, sql: str, params: tuple[Any, ...]) -> Any:
    with connections[adapter.using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _execute(adapter: DatabaseStateAdapter, sql: str, params: tuple[Any, ...]) -> None:
    with connections[adapter.using].cursor() as cursor:
        cursor.execute(sql, params)


def _json(value: Any) -> Any:
    # Django's psycopg setup hands jsonb back as text; a bare connection parses it.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _entries(pending: Any) -> list[PendingEntry]:
    return [
        PendingEntry(owner, STRATEGIES[strategy], metadata, enqueued_at)
        for owner, strategy, metadata, enqueued_at in _json(pending) or ()
    ]


def _released(adapter: DatabaseStateAdapter, key: str, owner: str, row: Any) -> list[PendingEntry]:
    released, holder, pending = row
    if not released:
        held_by = "nobody" if holder is None else repr(holder)
        raise NotOwner(f"{owner!r} does not hold the lock {key!r} (held by {held_by})")
    return _entries(pending)


# Each function below replaces the DatabaseStateAdapter hook of the same name.

# One statement is atomic on its own: sent in autocommit mode, it is one round trip and one
# commit (the ORM's bulk_create / delete would wrap it in BEGIN ... COMMIT: three).
_STATE_TABLES = {
    "thread": ("chatstate_threadstate", "thread_id"),
    "channel": ("chatstate_channelstate", "channel_id"),
}


def _do_subscribe(self: DatabaseStateAdapter, thread_id: str) -> None:
    _execute(
        self,
        "INSERT INTO chatstate_subscription (namespace, thread_id, created_at)"
        " VALUES (%s, %s, statement_timestamp()) ON CONFLICT (namespace, thread_id) DO NOTHING",
        (self.namespace, thread_id),
    )


def _do_unsubscribe(self: DatabaseStateAdapter, thread_id: str) -> None:
    _execute(
        self,
        "DELETE FROM chatstate_subscription WHERE namespace = %s AND thread_id = %s",
        (self.namespace, thread_id),
    )


def _do_put_state(
    self: DatabaseStateAdapter, kind: str, object_id: str, value: dict[str, Any], value_json: str
) -> None:
    table, column = _STATE_TABLES[kind]
    _execute(
        self,
        f"INSERT INTO {table} (namespace, {column}, value, updated_at)"
        " VALUES (%s, %s, %s::jsonb, statement_timestamp())"
        f" ON CONFLICT (namespace, {column})"
        " DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
        (self.namespace, object_id, value_json),
    )


def _do_claim_dedupe(self: DatabaseStateAdapter, key: DedupeKey, limit: int) -> bool:
    row = _call(
        self,
        "SELECT chatstate_claim(%s::text, %s::text, %s::text, %s::bigint)",
        (self.namespace, *key, limit),
    )
    return bool(row[0])


def _do_withdraw_dedupe(self: DatabaseStateAdapter, key: DedupeKey) -> None:
    _call(self, "SELECT chatstate_withdraw(%s::text, %s::text, %s::text)", (self.namespace, *key))


def _do_lock(
    self: DatabaseStateAdapter,
    key: str,
    owner: str,
    strategy: Strategy,
    metadata: str,
    ttl: float,
    max_pending: int | None,
    overflow: str,
) -> LockResult:
    row = _call(
        self,
        "SELECT chatstate_lock(%s::text, %s::text, %s::text, %s::text, %s::jsonb, %s::float8,"
        " %s::integer, %s::text)",
        (self.namespace, key, owner, strategy.value, metadata, ttl, max_pending, overflow),
    )
    return RESULTS[row[0]]


def _do_extend_lock(self: DatabaseStateAdapter, key: str, owner: str, ttl: float) -> bool:
    with connections[self.using].cursor() as cursor:
        cursor.execute(
            "UPDATE chatstate_lock"
            " SET expires_at = statement_timestamp() + make_interval(secs => %s::float8)"
            " WHERE namespace = %s AND key = %s AND owner = %s"
            " AND expires_at > statement_timestamp()",
            (ttl, self.namespace, key, owner),
        )
        return bool(cursor.rowcount)


def _do_release_lock(
    self: DatabaseStateAdapter, key: str, owner: str, keep_pending: bool
) -> list[PendingEntry]:
    row = _call(
        self,
        "SELECT * FROM chatstate_release(%s::text, %s::text, %s::text, %s::boolean)",
        (self.namespace, key, owner, keep_pending),
    )
    return _released(self, key, owner, row)


def _do_force_release_lock(self: DatabaseStateAdapter, key: str) -> list[PendingEntry]:
    row = _call(
        self,
        "SELECT * FROM chatstate_release(%s::text, %s::text, NULL, false)",
        (self.namespace, key),
    )
    return _entries(row[2])


def _cycle_enter(
    self: DatabaseStateAdapter,
    dedupe_key: DedupeKey,
    thread_id: str,
    owner: str,
    strategy: Strategy,
    metadata: str,
    limit: int,
    ttl: float,
) -> CycleEntry:
    claimed, subscribed, result, state = _call(
        self,
        "SELECT * FROM chatstate_enter(%s::text, %s::text, %s::text, %s::bigint, %s::text,"
        " %s::text, %s::text, %s::jsonb, %s::float8)",
        (self.namespace, *dedupe_key, limit, thread_id, owner, strategy.value, metadata, ttl),
    )
    return (
        bool(claimed),
        bool(subscribed),
        None if result is None else RESULTS[result],
        (_json(state) or {}) if result == "acquired" else {},
    )


def _cycle_commit(
    self: DatabaseStateAdapter,
    thread_id: str,
    owner: str,
    strategy: Strategy,
    state: dict[str, Any] | None,
    state_json: str | None,
) -> list[PendingEntry]:
    if strategy is Strategy.CONCURRENT:
        if state is not None and state_json is not None:
            self._do_put_state("thread", thread_id, state, state_json)
        return []
    row = _call(
        self,
        "SELECT * FROM chatstate_commit(%s::text, %s::text, %s::text, %s::jsonb)",
        (self.namespace, thread_id, owner, state_json),
    )
    return _released(self, thread_id, owner, row)


def _cycle_abort(
    self: DatabaseStateAdapter,
    dedupe_key: DedupeKey,
    thread_id: str,
    owner: str,
    strategy: Strategy,
) -> None:
    _call(
        self,
        "SELECT chatstate_abort(%s::text, %s::text, %s::text, %s::text, %s::text, %s::boolean)",
        (self.namespace, *dedupe_key, thread_id, owner, strategy is not Strategy.CONCURRENT),
    )
