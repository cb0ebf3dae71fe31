-- Version 17 (0029): five functions return a row type of their own, not OUT parameters, so
-- their version 16 (or this copy, applied again, with its two step functions) goes first, and
-- the types are made afresh.
DROP FUNCTION IF EXISTS chatstate_claim(text, text, text, bigint, text, text, float8, float8);
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8,
    float8, integer, text, text, bigint, integer);
DROP FUNCTION IF EXISTS chatstate_settle(text, text, text, jsonb, bigint, boolean, boolean, jsonb,
    boolean, boolean, tid, tid, tid);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb, bigint, boolean, boolean, float8,
    jsonb, boolean, tid, tid, tid);
DROP FUNCTION IF EXISTS chatstate_lock(text, text, text, text, jsonb, float8, integer, text);
DROP FUNCTION IF EXISTS chatstate_claim_step(text, text, text, bigint, text, text, float8, float8);
DROP FUNCTION IF EXISTS chatstate_lock_step(text, text, text, text, jsonb, float8, integer, text);
DROP TYPE IF EXISTS chatstate_claim_row, chatstate_lock_row, chatstate_enter_row,
    chatstate_settle_row, chatstate_commit_row;
CREATE TYPE chatstate_claim_row AS (claim_id bigint, claim_at tid);
CREATE TYPE chatstate_lock_row AS (result text, dropped jsonb, taken_over text, lock_at tid);
CREATE TYPE chatstate_enter_row AS (
    claimed boolean, subscribed boolean, result text, state jsonb, in_progress boolean,
    dropped jsonb, taken_over text, held boolean, history jsonb, claim_id bigint, claim_at tid,
    lock_at tid, state_at tid);
CREATE TYPE chatstate_settle_row AS (ok boolean, holder text);
CREATE TYPE chatstate_commit_row AS (released boolean, holder text, pending jsonb, expired jsonb);
-- chatstate's PostgreSQL functions: the fast path of DatabaseStateAdapter (one call, one round
-- trip and one commit per operation). Installed by migrations from frozen copies of this file
-- (chatstate/migrations/sql/); a change here ships with a new migration and a new version.
--
-- Inside a function every statement takes a fresh snapshot (READ COMMITTED), so a function can
-- lock a row and then read what others committed before they let go of it. Leases are measured
-- on the database's clock, statement_timestamp(). Row locks are taken in one order -- the
-- dedupe window row, a message's dedupe entry, then its thread's lock row, then what a commit
-- writes besides its thread (its channel's row, list heads in key order, outbox keys) -- so
-- that calls do not deadlock (a claim inserting a new entry takes the window row after it:
-- nobody else can hold a row that does not exist yet). A claim that waits for another call's
-- entry (chatstate_drop_oldest) waits at most 20 ms, so it ends any cycle of waits it joins.
--
-- Pending entries travel as JSON arrays [id, owner, strategy, metadata, enqueued_at].
--
-- Slots (capped 'concurrent'): a key held by up to max_concurrent owners at once records them
-- on its lock row, holders = {owner: {"acquired_at", "expires_at" (ISO 8601 UTC text), "ttl",
-- "metadata"}}. The row's owner is '' (an owner is 1-255 characters: no lock owner's check
-- matches a slot row), its strategy 'concurrent', its acquired_at the earliest holder's and its
-- expires_at the latest holder's, so a row whose expires_at has passed is free for everyone and
-- the exclusive strategies judge it as they judge a lock. holders is NULL on a lock. An expired
-- holder stays recorded until someone needs its room (a slot taken), prune, or a lock taking
-- the row; until then its commit still succeeds. A queued entry a holder's drain was handed is
-- marked taken_by that holder: no other holder is handed it while that holder's slot lives.
--
-- Durability: every call commits durably (the server's synchronous_commit), but one. A cycle
-- that acquires its thread commits its claim and lock with synchronous_commit off: they are
-- visible to every connection at once, and durable as soon as the WAL writer flushes them
-- (within ~0.6 s) or the cycle's own commit does (the WAL is written in order, so a durable
-- commit makes all before it durable). A server crash in that gap forgets them: the message,
-- not committed yet, is handled again on its redelivery, as it would be once its lease ran
-- out, and its holder's commit is refused -- its effect is applied once. What would be lost
-- for good (a queued or debounced message, a refusal's withdrawn claim) commits durably.
--
-- Plans (version 7): the functions Python calls plan with enable_seqscan off. PL/pgSQL keeps a
-- statement's plan for the session, and a plan made while a table looked empty (the lock table
-- nearly always does, a new namespace's dedupe window does) scans the whole table on every
-- later call, while it grows with dead rows until the next vacuum. With sequential scans off,
-- every plan is an index lookup, whatever the table's size when it was made.
--
-- Claims by id (version 8): a cycle's entry returns its claim's row id, and its commit and
-- drain steps find the claim by it. Looked up by (namespace, adapter, message_id), a plan made
-- while the dedupe table looked empty could take the window's order index and read the whole
-- namespace's window on every commit.
--
-- Plans kept (version 9): those functions also plan with plan_cache_mode force_generic_plan.
-- PL/pgSQL keeps a statement's plan only while its generic plan looks no dearer than one made
-- for the call's own values; otherwise it plans the statement on every call (10-60 us each,
-- more than most statements take to run). A full list's trim (a range of seq) did so once
-- the table had statistics, and so did a condition that folded to false for a reject cycle.
-- Every function a cycle calls whose body is a query is PL/pgSQL (see chatstate_claim_live).
--
-- Lazy trim (version 10): a list's head keeps its oldest position, first_seq, and reads take
-- the items from there. An append raises it; the rows below are deleted every
-- chatstate_list_batch() appends, in one statement. Deleting the one item that left on
-- every append cost more than its item's insert (about 100k instructions a cycle).
--
-- A commit's lock (version 12): a cycle's commit checks that its lock is its own by deleting
-- it (WHERE owner = p_owner), not by locking the row and deleting it at the end: a row lock
-- is a WAL record and a statement of its own. A full window's claim deletes the key that
-- left it by the row's address (ctid), found through the window's order index: no second
-- lookup through the primary key.
--
-- A withdrawn key's position (version 13): a full window's claim drops the key at position
-- (its own - limit) only while no position from there up is empty. A withdrawal (an abort,
-- the admin's delete) empties a position in the middle of the window, and the window row
-- keeps the newest such position (gap). Until the window has moved past it, the key at that
-- position may be newer than the oldest, so the claim drops the oldest key instead.
--
-- A commit's claim (version 14): a cycle's commit under a lock marks its claim done in one
-- statement that checks the claim is still its own, then checks its lock by deleting it.
-- Locking the claim's row first wrote a WAL record of its own. When the lock is gone, the
-- claim is put back as that statement found it, so the refused commit changes nothing.
--
-- Claims at the same position (version 14): claims that run at the same time can share a
-- position, and then both look for the same key to drop. The one that finds it taken waits
-- for the call that holds it (chatstate_drop_oldest), then drops the window's oldest key
-- from that position up. Until version 13 it counted and trimmed under the window row: at 8
-- busy clients on one namespace, more than half of all claims did, and the server spent about
-- 0.5 ms of CPU a cycle (about 0.37 since).
--
-- A done duplicate (version 14): a claim of a key already done reads it without locking it.
-- A done key never becomes a claim in progress again, and the lock was a WAL record on every
-- redelivery of a handled message. (It also made a redelivery a holder of the key that does
-- not delete it: chatstate_drop_oldest then waited for it.)
--
-- Rows by address (version 15): a cycle's entry returns where its claim's and its lock's rows lie
-- (claim_at, lock_at: their ctid, from chatstate_claim and chatstate_lock), and its commit looks
-- for them there before it looks them up by key. Marking the claim done read the primary key's
-- index, and deleting the lock the lock's unique index: about 4 buffers of the cycle's 56. A row a
-- renewal rewrote since the entry has moved: not found there, it is looked up by key as before.
-- Likewise the thread's state row, where the entry read one (state_at): the commit updates it in
-- place instead of an upsert, which read the unique index and wrote a row lock record first.
--
-- Plain inserts (version 16): a free lock, and the state row of a thread the entry found
-- none of (state_at '(0,0)', an address no row has), are inserted plainly in a block of
-- their own (a subtransaction), not upserted. An upsert looks its key up in the unique index
-- before it inserts, then confirms its row: 3 buffers and a WAL record (about 45 bytes)
-- more. A key taken meanwhile makes the insert fail and its block roll back: the call then
-- decides as before. A lock held is the one common failure: its entry writes an aborted row,
-- where the upsert wrote nothing. A claim stays an upsert (see chatstate_claim): a lookup of
-- its key first would depend on the planner's statistics, and without one a redelivery
-- would write an aborted row. The trim keeps locking the key that left the window before it
-- deletes it (SKIP LOCKED, a 54-byte WAL record): a delete that waits a bounded time needs a
-- lock timeout set and a block, which cost the server more CPU than the record (callgrind).
--
-- Named result types (version 17): the functions of a cycle (chatstate_enter, chatstate_claim,
-- chatstate_lock, chatstate_commit, chatstate_settle) return a composite type of their own
-- (chatstate_<name>_row), not OUT parameters. A function with OUT parameters returns a record,
-- and the server rebuilds its row type from pg_proc (decompressing the names) on each call and
-- each query around it: about 50k instructions a cycle. A commit with nothing pending checks
-- that with one probe instead of starting the delete that hands pending entries out (100k),
-- and a cycle's entry reads its thread's subscription and state in one statement. Every
-- statement a function runs through SPI starts an executor (20-30k): an IF whose condition
-- holds a query is one even when its first operand is false, and so is PERFORM; an
-- assignment of an expression without a query is not. A function with SET clauses saves and
-- restores its settings on every call (11k): chatstate_enter calls chatstate_claim_step and
-- chatstate_lock_step, which run under their caller's settings; chatstate_claim and
-- chatstate_lock set them for a call of their own. Server instructions a cycle (callgrind):
-- 1,360k in version 16, 1,142k in version 17 (a new thread each cycle). A query of a key's
-- pending entries is ordered by id (counted over an ordered subquery): without statistics
-- the planner otherwise took the (namespace, owner) index and read every pending entry of
-- the namespace.

CREATE OR REPLACE FUNCTION chatstate_functions_version() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 17 $$;

-- A list's rows below its first_seq are deleted when its newest position is a multiple of this.
CREATE OR REPLACE FUNCTION chatstate_list_batch() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT 16::bigint $$;

-- Whether a dedupe entry (owner, thread, expires) is a claim in progress and alive: its own
-- lease runs, or its owner holds the lock (or a slot) of its thread unexpired (a lease renewed by
-- extend_lock keeps the claim alive too). The window never trims such a claim.
--
-- The functions a cycle calls are PL/pgSQL, not SQL, wherever their body is a query: a SQL
-- function that is not inlined is parsed and planned again on every call (about 100 µs),
-- while PL/pgSQL keeps its plans for the session (version 5). A done entry (owner NULL) is
-- answered before any query.
CREATE OR REPLACE FUNCTION chatstate_claim_live(
    p_ns text, p_owner text, p_thread text, p_expires timestamptz)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_owner IS NULL THEN RETURN false; END IF;
    IF p_expires > statement_timestamp() THEN RETURN true; END IF;
    RETURN EXISTS (
        SELECT 1 FROM chatstate_lock WHERE namespace = p_ns AND key = p_thread
            AND expires_at > statement_timestamp()
            AND (owner = p_owner OR (holders ? p_owner AND
                 (holders -> p_owner ->> 'expires_at')::timestamptz > statement_timestamp())));
END $$;

-- Whether a dedupe entry still makes its message a duplicate: it is done (owner NULL), or a
-- claim in progress and alive.
CREATE OR REPLACE FUNCTION chatstate_claim_holds(
    p_ns text, p_owner text, p_thread text, p_expires timestamptz)
RETURNS boolean LANGUAGE plpgsql STABLE SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN p_owner IS NULL OR chatstate_claim_live(p_ns, p_owner, p_thread, p_expires);
END $$;

-- Trim the window after a claim added its newest entry p_id (count p_count, its own
-- included): delete the entries older than the newest p_limit, except claims in progress and
-- alive and (p_min_age > 0) entries younger than p_young. Holding the window row, it waits
-- for no entry (one locked by another call is left for a later trim); the new count.
CREATE OR REPLACE FUNCTION chatstate_trim(
    p_ns text, p_id bigint, p_count bigint, p_limit bigint, p_min_age float8,
    p_young timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_seen bigint; v_gone bigint; v_count bigint := p_count;
BEGIN
    FOR attempt IN 1..2 LOOP
        EXIT WHEN v_count <= p_limit;
        WITH oldest AS (
            SELECT id, owner, thread_id, expires_at, created_at FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND id <> p_id ORDER BY seq, id
            LIMIT v_count - p_limit),
        gone AS (
            DELETE FROM chatstate_dedupeentry WHERE id IN (
                SELECT id FROM chatstate_dedupeentry WHERE id IN (
                    SELECT id FROM oldest WHERE (p_min_age = 0 OR created_at < p_young)
                        AND NOT chatstate_claim_live(p_ns, owner, thread_id, expires_at))
                FOR UPDATE SKIP LOCKED)
            RETURNING 1)
        SELECT (SELECT count(*) FROM oldest), (SELECT count(*) FROM gone)
            INTO v_seen, v_gone;
        IF v_seen = v_count - p_limit THEN
            UPDATE chatstate_dedupewindow SET head = head - v_gone WHERE namespace = p_ns
                RETURNING head INTO v_count;
            EXIT;
        END IF;
        -- The count said more than there is (rows deleted behind the adapter's back): count
        -- once, and trim again from the truth.
        SELECT count(*) INTO v_count FROM chatstate_dedupeentry WHERE namespace = p_ns;
        UPDATE chatstate_dedupewindow SET head = v_count WHERE namespace = p_ns;
    END LOOP;
    RETURN v_count;
END $$;

-- A full window's claim whose key to drop, at position p_floor (its own p_own - limit), was
-- gone or held by another call: usually a claim at the same position dropping it. Wait for
-- that call (at most 20 ms: well below deadlock_timeout), then drop the window's oldest
-- key from p_floor up to p_own, not p_id (the claim's own) -- true when dropped. No key can
-- sit below p_floor: the claim found the window full with no position from there up empty,
-- and keys arrive above it. False (the caller counts under the window row): the window
-- changed size, a withdrawal emptied a position from p_floor up, the oldest key is a claim
-- in progress and alive, or the wait ran out.
CREATE OR REPLACE FUNCTION chatstate_drop_oldest(
    p_ns text, p_id bigint, p_floor bigint, p_own bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_head bigint; v_gap bigint; v_ctid tid; v_owner text; v_thread text;
    v_expires timestamptz; v_dropped boolean; v_timeout text := current_setting('lock_timeout');
BEGIN
    FOR attempt IN 1..4 LOOP
        SELECT head, gap INTO v_head, v_gap FROM chatstate_dedupewindow WHERE namespace = p_ns;
        IF v_head IS DISTINCT FROM p_own - p_floor OR v_gap >= p_floor THEN RETURN false; END IF;
        SELECT ctid, owner, thread_id, expires_at INTO v_ctid, v_owner, v_thread, v_expires
            FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND seq >= p_floor AND seq < p_own AND id <> p_id
            ORDER BY seq, id LIMIT 1;
        IF NOT FOUND OR chatstate_claim_live(p_ns, v_owner, v_thread, v_expires) THEN
            RETURN false;
        END IF;
        BEGIN
            PERFORM set_config('lock_timeout', '20ms', true);
            -- (gone or changed meanwhile: nothing deleted, look again)
            DELETE FROM chatstate_dedupeentry d WHERE d.ctid = v_ctid
                AND NOT chatstate_claim_live(d.namespace, d.owner, d.thread_id, d.expires_at);
            v_dropped := FOUND;
            PERFORM set_config('lock_timeout', v_timeout, true);
        EXCEPTION WHEN lock_not_available THEN
            RETURN false;  -- (the setting is restored with the block)
        END;
        IF v_dropped THEN RETURN true; END IF;
    END LOOP;
    RETURN false;
END $$;

-- Claim a dedupe key: claim_id, the id of its row, when this call now holds it, else NULL; and
-- claim_at, where that row lies (a cycle's commit looks there first). p_owner NULL:
-- done at once (claim_dedupe, mark_dedupe); else in progress for p_owner on lock p_thread, with a
-- lease of p_ttl seconds. A key already held (done, or in progress and alive) is a duplicate:
-- false, nothing changes. An in-progress claim whose lease ran out is taken over in its place. A
-- new key is the newest; the window keeps the newest p_limit keys, every key younger than p_min_age
-- seconds and every claim in progress and alive.
CREATE OR REPLACE FUNCTION chatstate_claim(
    p_ns text, p_adapter text, p_mid text, p_limit bigint, p_owner text, p_thread text,
    p_ttl float8, p_min_age float8)
RETURNS chatstate_claim_row
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN chatstate_claim_step(p_ns, p_adapter, p_mid, p_limit, p_owner, p_thread, p_ttl,
                                p_min_age);
END $$;

-- chatstate_claim's work, under its caller's plan settings: chatstate_enter calls it directly,
-- so that a cycle sets them once (each function that sets them costs about 11k instructions a
-- call).
CREATE OR REPLACE FUNCTION chatstate_claim_step(
    p_ns text, p_adapter text, p_mid text, p_limit bigint, p_owner text, p_thread text,
    p_ttl float8, p_min_age float8)
RETURNS chatstate_claim_row LANGUAGE plpgsql AS $$
DECLARE claim_id bigint; claim_at tid;
    v_id bigint; v_seq bigint; v_count bigint; v_excess bigint; v_free bigint[];
    v_gap bigint; v_owner text; v_thread text; v_expires timestamptz; v_minute timestamptz;
    v_now_minute timestamptz := date_trunc('minute', statement_timestamp() AT TIME ZONE 'UTC')
                                AT TIME ZONE 'UTC';
    v_until timestamptz := CASE WHEN p_owner IS NOT NULL
                           THEN statement_timestamp() + make_interval(secs => p_ttl) END;
    v_young timestamptz := statement_timestamp() - make_interval(secs => p_min_age);
BEGIN
    -- A new key first (the common case: one statement). The newest position + 1 (claims at
    -- the same instant may share one: ties are ordered by id). The unique key makes exactly
    -- one of two racing claims of a key win; the loser waits for the winner's commit. (An
    -- upsert, not a lookup and a plain insert as for a lock: the upsert's lookup takes the
    -- unique index whatever the statistics, where a lookup of a table analyzed while empty
    -- takes the window's order index and reads the namespace's whole window.)
    FOR attempt IN 1..2 LOOP
        INSERT INTO chatstate_dedupeentry
                (namespace, adapter, message_id, seq, created_at, owner, thread_id, expires_at)
            SELECT p_ns, p_adapter, p_mid, coalesce(max(d.seq), 0) + 1, statement_timestamp(),
                p_owner, CASE WHEN p_owner IS NOT NULL THEN p_thread END, v_until
            FROM chatstate_dedupeentry d WHERE d.namespace = p_ns
            ON CONFLICT (namespace, adapter, message_id) DO NOTHING
            RETURNING id, seq, ctid INTO v_id, v_seq, claim_at;
        EXIT WHEN FOUND;
        -- The key exists: a duplicate, unless its claim is in progress and its lease ran out
        -- (then taken over in its place). Gone meanwhile (trimmed, withdrawn): insert again.
        -- A done key stays done: it is read without a lock (a lock is a WAL record).
        SELECT id, owner INTO v_id, v_owner FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid;
        IF FOUND AND v_owner IS NULL THEN
            RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
        END IF;
        SELECT id, owner, thread_id, expires_at INTO v_id, v_owner, v_thread, v_expires
            FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid FOR UPDATE;
        IF FOUND THEN
            IF chatstate_claim_holds(p_ns, v_owner, v_thread, v_expires) THEN
                RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
            END IF;
            UPDATE chatstate_dedupeentry
                SET owner = p_owner, thread_id = p_thread, expires_at = v_until
                WHERE id = v_id RETURNING ctid INTO claim_at;
            claim_id := v_id;
            RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
        END IF;
    END LOOP;
    IF v_id IS NULL THEN
        RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
    END IF;
    claim_id := v_id;
    -- The minute's first claim records where the sequence stood (the admin's chart), and
    -- notes on the window row that it did, so later claims of the minute write nothing.
    SELECT head, minute, gap INTO v_count, v_minute, v_gap
        FROM chatstate_dedupewindow WHERE namespace = p_ns;
    IF v_minute IS NULL OR v_minute < v_now_minute THEN
        INSERT INTO chatstate_claimminute (namespace, minute, first_seq)
            VALUES (p_ns, v_now_minute, v_seq)
            ON CONFLICT (namespace, minute) DO NOTHING;
        UPDATE chatstate_dedupewindow SET minute = v_now_minute
            WHERE namespace = p_ns AND (minute IS NULL OR minute < v_now_minute);
    END IF;
    -- ``head`` counts the window's keys. Steady state -- the window is full -- one key in,
    -- one out: drop the key that just left the newest p_limit without touching the window
    -- row, so claims in a namespace do not queue behind one row lock (and its commit) one at
    -- a time. A claim in progress and alive (or a young key) is not dropped. The key at
    -- that position is the oldest while no position from it up is empty (see the top).
    v_excess := v_count + 1 - p_limit;
    IF v_excess = 1 AND p_min_age = 0 AND (v_gap IS NULL OR v_gap < v_seq - p_limit) THEN
        -- (found by its row's address: no second lookup through the primary key)
        DELETE FROM chatstate_dedupeentry d WHERE d.ctid = (
            SELECT ctid FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND seq = v_seq - p_limit
            LIMIT 1 FOR UPDATE SKIP LOCKED)
            AND NOT chatstate_claim_live(d.namespace, d.owner, d.thread_id, d.expires_at);
        IF FOUND OR chatstate_drop_oldest(p_ns, v_id, v_seq - p_limit, v_seq) THEN
            RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
        END IF;
    END IF;
    -- Full, or over-full by claims in progress or young keys: one out for one in when exactly
    -- one of the keys older than the newest p_limit may go, the count unchanged.
    IF v_excess >= 1 THEN
        SELECT array_agg(o.id) INTO v_free FROM (
            SELECT id, owner, thread_id, expires_at, created_at FROM chatstate_dedupeentry
            WHERE namespace = p_ns AND seq < v_seq ORDER BY seq, id LIMIT v_excess) o
            WHERE (p_min_age = 0 OR o.created_at < v_young)
                AND NOT chatstate_claim_live(p_ns, o.owner, o.thread_id, o.expires_at);
        IF cardinality(v_free) = 1 THEN
            DELETE FROM chatstate_dedupeentry WHERE id = (
                SELECT id FROM chatstate_dedupeentry WHERE id = v_free[1]
                FOR UPDATE SKIP LOCKED);
            IF FOUND THEN
                RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
            END IF;
        END IF;
    END IF;
    -- Filling, shrinking (a smaller limit), or contended: count under the window row's lock,
    -- and trim (each transaction changes ``head`` by what it did).
    -- (A new window row: this claim wrote its minute's row above.)
    INSERT INTO chatstate_dedupewindow AS w (namespace, head, minute)
        VALUES (p_ns, 1, v_now_minute)
        ON CONFLICT (namespace) DO UPDATE SET head = w.head + 1
        RETURNING head INTO v_count;
    PERFORM chatstate_trim(p_ns, v_id, v_count, p_limit, p_min_age, v_young);
    RETURN ROW(claim_id, claim_at)::chatstate_claim_row;
END $$;

-- Delete (and return) up to p_limit (NULL: all) oldest pending entries of p_key, or with
-- p_older_than those enqueued more than that many seconds ago.
CREATE OR REPLACE FUNCTION chatstate_take_entries(
    p_ns text, p_key text, p_limit integer, p_older_than float8)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE v_taken jsonb;
BEGIN
    WITH gone AS (
        DELETE FROM chatstate_pendinglockentry WHERE id IN (
            SELECT id FROM chatstate_pendinglockentry
            WHERE namespace = p_ns AND key = p_key AND (p_older_than IS NULL OR
                enqueued_at < statement_timestamp() - make_interval(secs => p_older_than))
            ORDER BY id LIMIT p_limit)
        RETURNING id, owner, strategy, metadata, enqueued_at)
    SELECT coalesce(jsonb_agg(jsonb_build_array(id, owner, strategy, metadata,
        to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) ORDER BY id),
        '[]') INTO v_taken FROM gone;
    RETURN v_taken;
END $$;

-- Entries older than p_ttl seconds, dropped (NULL ttl: none).
CREATE OR REPLACE FUNCTION chatstate_expire_entries(p_ns text, p_key text, p_ttl float8)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF p_ttl IS NULL THEN RETURN '[]'; END IF;
    RETURN chatstate_take_entries(p_ns, p_key, NULL, p_ttl);
END $$;

-- ``lock`` for a non-concurrent strategy: result 'acquired', 'busy', 'queued', 'debounced' or
-- 'dropped'; the entries an overflow or a debounce dropped; the expired holder taken over;
-- where the lock's row lies, when taken (a cycle's commit looks there first). A key held by
-- live slots is held.
CREATE OR REPLACE FUNCTION chatstate_lock(
    p_ns text, p_key text, p_owner text, p_strategy text, p_meta jsonb, p_ttl float8,
    p_max integer, p_overflow text)
RETURNS chatstate_lock_row
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN chatstate_lock_step(p_ns, p_key, p_owner, p_strategy, p_meta, p_ttl, p_max,
                               p_overflow);
END $$;

-- chatstate_lock's work, under its caller's plan settings (see chatstate_claim_step).
CREATE OR REPLACE FUNCTION chatstate_lock_step(
    p_ns text, p_key text, p_owner text, p_strategy text, p_meta jsonb, p_ttl float8,
    p_max integer, p_overflow text)
RETURNS chatstate_lock_row LANGUAGE plpgsql AS $$
DECLARE result text; dropped jsonb; taken_over text; lock_at tid;
    v_depth integer; v_previous text; v_updated boolean; v_constraint text;
BEGIN
    dropped := '[]';
    -- Free (the common case): taken in one statement, nobody taken over; a plain insert (see
    -- version 16 at the top). A key held (or taken meanwhile) fails it: decided below.
    BEGIN
        INSERT INTO chatstate_lock
            (namespace, key, owner, strategy, metadata, acquired_at, expires_at, ttl)
            VALUES (p_ns, p_key, p_owner, p_strategy, p_meta, statement_timestamp(),
                    statement_timestamp() + make_interval(secs => p_ttl), p_ttl)
            RETURNING ctid INTO lock_at;
        result := 'acquired';
        RETURN ROW(result, dropped, taken_over, lock_at)::chatstate_lock_row;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint IS DISTINCT FROM 'chatstate_lock_unique' THEN RAISE; END IF;
    END;
    FOR attempt IN 1..20 LOOP
        SELECT owner INTO v_previous FROM chatstate_lock WHERE namespace = p_ns AND key = p_key;
        -- Free, or the lease expired: take it (pending entries stay for the new holder).
        INSERT INTO chatstate_lock AS l
            (namespace, key, owner, strategy, metadata, acquired_at, expires_at, ttl)
            VALUES (p_ns, p_key, p_owner, p_strategy, p_meta, statement_timestamp(),
                    statement_timestamp() + make_interval(secs => p_ttl), p_ttl)
            ON CONFLICT (namespace, key) DO UPDATE
                SET owner = EXCLUDED.owner, strategy = EXCLUDED.strategy,
                    metadata = EXCLUDED.metadata, acquired_at = EXCLUDED.acquired_at,
                    expires_at = EXCLUDED.expires_at, ttl = EXCLUDED.ttl, holders = NULL
                WHERE l.expires_at <= statement_timestamp()
            RETURNING xmax <> 0, ctid INTO v_updated, lock_at;
        IF FOUND THEN
            result := 'acquired';
            -- (expired slots are no holder taken over: their row's owner is '')
            taken_over := CASE WHEN v_updated THEN nullif(v_previous, '') END;
            RETURN ROW(result, dropped, taken_over, lock_at)::chatstate_lock_row;
        END IF;
        IF p_strategy = 'reject' THEN
            result := 'busy';
            RETURN ROW(result, dropped, taken_over, lock_at)::chatstate_lock_row;
        END IF;
        -- Held: lock the row, so that its release waits for this entry and then sees it.
        PERFORM 1 FROM chatstate_lock
            WHERE namespace = p_ns AND key = p_key AND expires_at > statement_timestamp()
            FOR UPDATE;
        IF FOUND THEN
            IF p_strategy = 'debounce' THEN
                dropped := chatstate_take_entries(p_ns, p_key, NULL, NULL);
            ELSIF p_max IS NOT NULL THEN
                SELECT count(*) INTO v_depth FROM (SELECT id FROM chatstate_pendinglockentry
                    WHERE namespace = p_ns AND key = p_key ORDER BY id) e;  -- (version 17)
                IF v_depth >= p_max THEN
                    IF p_overflow = 'drop_newest' THEN
                        result := 'dropped';
                        RETURN ROW(result, dropped, taken_over, lock_at)::chatstate_lock_row;
                    END IF;
                    dropped := chatstate_take_entries(p_ns, p_key, v_depth - p_max + 1, NULL);
                END IF;
            END IF;
            INSERT INTO chatstate_pendinglockentry
                (namespace, key, owner, strategy, metadata, enqueued_at)
                VALUES (p_ns, p_key, p_owner, p_strategy, p_meta, statement_timestamp());
            result := CASE p_strategy WHEN 'debounce' THEN 'debounced' ELSE 'queued' END;
            RETURN ROW(result, dropped, taken_over, lock_at)::chatstate_lock_row;
        END IF;
        -- Released or expired between the two statements: decide again.
    END LOOP;
    RAISE EXCEPTION 'chatstate_lock: no decision after 20 attempts on %', p_key;
END $$;

-- Release p_owner's lock (p_owner NULL: whoever holds it, slots too) and hand over its pending
-- entries (expired ones dropped). With p_only_if_idle, release only when none is pending;
-- otherwise keep the lock, its lease renewed by its ttl. released false: p_owner does not hold
-- it. p_owner's slot, if it has one: see chatstate_release_slot.
CREATE OR REPLACE FUNCTION chatstate_release(
    p_ns text, p_key text, p_owner text, p_only_if_idle boolean, p_pending_ttl float8,
    OUT released boolean, OUT holder text, OUT pending jsonb, OUT expired jsonb)
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_ttl float8; v_holders jsonb;
BEGIN
    IF NOT p_only_if_idle THEN
        DELETE FROM chatstate_lock
            WHERE namespace = p_ns AND key = p_key AND (p_owner IS NULL OR owner = p_owner);
        IF NOT FOUND AND p_owner IS NOT NULL THEN
            SELECT owner, l.holders INTO holder, v_holders FROM chatstate_lock l
                WHERE namespace = p_ns AND key = p_key;
            IF v_holders ? p_owner THEN
                SELECT r.* INTO released, holder, pending, expired
                    FROM chatstate_release_slot(p_ns, p_key, p_owner, false, p_pending_ttl) r;
                RETURN;
            END IF;
            released := false;
            holder := chatstate_holder_of(holder, v_holders);
            RETURN;
        END IF;
    ELSE
        SELECT owner, ttl, l.holders INTO holder, v_ttl, v_holders FROM chatstate_lock l
            WHERE namespace = p_ns AND key = p_key FOR UPDATE;
        IF holder IS DISTINCT FROM p_owner THEN
            IF v_holders ? p_owner THEN
                SELECT r.* INTO released, holder, pending, expired
                    FROM chatstate_release_slot(p_ns, p_key, p_owner, true, p_pending_ttl) r;
                RETURN;
            END IF;
            released := false;
            holder := chatstate_holder_of(holder, v_holders);
            RETURN;
        END IF;
        holder := NULL;
    END IF;
    released := true;
    expired := chatstate_expire_entries(p_ns, p_key, p_pending_ttl);
    pending := chatstate_take_entries(p_ns, p_key, NULL, NULL);
    IF p_only_if_idle THEN
        IF pending = '[]' THEN
            DELETE FROM chatstate_lock WHERE namespace = p_ns AND key = p_key;
        ELSE
            UPDATE chatstate_lock SET expires_at = statement_timestamp() + make_interval(
                    secs => coalesce(v_ttl, extract(epoch FROM expires_at - acquired_at)))
                WHERE namespace = p_ns AND key = p_key;
        END IF;
    END IF;
END $$;

-- take_pending: up to p_limit oldest pending entries of a lock p_owner holds; of a slot it holds,
-- those no other live holder was handed.
CREATE OR REPLACE FUNCTION chatstate_take_pending(
    p_ns text, p_key text, p_owner text, p_limit integer, p_pending_ttl float8,
    OUT released boolean, OUT holder text, OUT pending jsonb, OUT expired jsonb)
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_holders jsonb;
BEGIN
    SELECT owner, l.holders INTO holder, v_holders FROM chatstate_lock l
        WHERE namespace = p_ns AND key = p_key FOR UPDATE;
    released := holder IS NOT DISTINCT FROM p_owner;
    IF NOT released THEN
        IF NOT coalesce(v_holders ? p_owner, false) THEN
            holder := chatstate_holder_of(holder, v_holders);
            RETURN;
        END IF;
        released := true;
        holder := NULL;
        expired := chatstate_expire_entries(p_ns, p_key, p_pending_ttl);
        pending := chatstate_take_available(p_ns, p_key, p_owner, v_holders, p_limit);
        RETURN;
    END IF;
    holder := NULL;
    expired := chatstate_expire_entries(p_ns, p_key, p_pending_ttl);
    pending := chatstate_take_entries(p_ns, p_key, p_limit, NULL);
END $$;

-- Slots (see the top of this file).

-- A timestamp as the text a holder records: ISO 8601 UTC with microseconds and a Z.
CREATE OR REPLACE FUNCTION chatstate_iso(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The holders of p_holders whose lease runs.
CREATE OR REPLACE FUNCTION chatstate_live_holders(p_holders jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}') FROM jsonb_each(p_holders) h
    WHERE (h.value->>'expires_at')::timestamptz > statement_timestamp()
$$;

-- Who holds a key, for a NotOwner: its lock's owner, or its first live holder (by arrival).
CREATE OR REPLACE FUNCTION chatstate_holder_of(p_owner text, p_holders jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_holders IS NULL THEN p_owner ELSE (
        SELECT h.key FROM jsonb_each(chatstate_live_holders(p_holders)) h
        ORDER BY h.value->>'acquired_at', h.key LIMIT 1) END
$$;

-- p_holders with p_owner's lease renewed to p_ttl seconds from now (p_set_ttl: and p_ttl
-- remembered as its lease).
CREATE OR REPLACE FUNCTION chatstate_renewed(
    p_holders jsonb, p_owner text, p_ttl float8, p_set_ttl boolean)
RETURNS jsonb LANGUAGE sql STABLE STRICT AS $$
    SELECT p_holders || jsonb_build_object(p_owner, (p_holders->p_owner)
        || jsonb_build_object('expires_at',
               chatstate_iso(statement_timestamp() + make_interval(secs => p_ttl)))
        || CASE WHEN p_set_ttl THEN jsonb_build_object('ttl', p_ttl) ELSE '{}' END)
$$;

-- When the latest lease of p_holders ends.
CREATE OR REPLACE FUNCTION chatstate_holders_until(p_holders jsonb) RETURNS timestamptz
LANGUAGE sql STABLE STRICT AS $$
    SELECT max((h.value->>'expires_at')::timestamptz) FROM jsonb_each(p_holders) h
$$;

-- Store p_holders as the slots of p_key (its row locked by the caller), the row summarizing
-- them; none left: the row is deleted.
CREATE OR REPLACE FUNCTION chatstate_put_holders(p_ns text, p_key text, p_holders jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_holders = '{}' THEN
        DELETE FROM chatstate_lock WHERE namespace = p_ns AND key = p_key;
        RETURN;
    END IF;
    UPDATE chatstate_lock SET owner = '', strategy = 'concurrent', metadata = '{}', ttl = NULL,
            holders = p_holders, expires_at = chatstate_holders_until(p_holders),
            acquired_at = (SELECT min((h.value->>'acquired_at')::timestamptz)
                           FROM jsonb_each(p_holders) h)
        WHERE namespace = p_ns AND key = p_key;
END $$;

-- Whether a queued entry marked as handed to p_taken_by (NULL: to nobody) may be handed to
-- p_owner: nobody else who still holds a live slot of p_holders was handed it.
CREATE OR REPLACE FUNCTION chatstate_available(p_holders jsonb, p_taken_by text, p_owner text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT p_taken_by IS NULL OR p_taken_by = p_owner OR coalesce(
        (p_holders->p_taken_by->>'expires_at')::timestamptz <= statement_timestamp(), true)
$$;

-- Delete (and return) up to p_limit (NULL: all) oldest pending entries of p_key available to
-- the holder p_owner (see chatstate_available).
CREATE OR REPLACE FUNCTION chatstate_take_available(
    p_ns text, p_key text, p_owner text, p_holders jsonb, p_limit integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE v_taken jsonb;
BEGIN
    WITH gone AS (
        DELETE FROM chatstate_pendinglockentry WHERE id IN (
            SELECT id FROM chatstate_pendinglockentry
            WHERE namespace = p_ns AND key = p_key
                AND chatstate_available(p_holders, taken_by, p_owner)
            ORDER BY id LIMIT p_limit)
        RETURNING id, owner, strategy, metadata, enqueued_at)
    SELECT coalesce(jsonb_agg(jsonb_build_array(id, owner, strategy, metadata,
        chatstate_iso(enqueued_at)) ORDER BY id), '[]') INTO v_taken FROM gone;
    RETURN v_taken;
END $$;

-- Queue a capped 'concurrent' entry of p_owner behind p_key (its row locked by the caller),
-- within the bound p_max: 'queued', or 'dropped' (drop_newest); the entries dropped.
CREATE OR REPLACE FUNCTION chatstate_enqueue(
    p_ns text, p_key text, p_owner text, p_meta jsonb, p_max integer, p_overflow text,
    OUT result text, OUT dropped jsonb)
LANGUAGE plpgsql AS $$
DECLARE v_depth integer;
BEGIN
    dropped := '[]';
    IF p_max IS NOT NULL THEN
        SELECT count(*) INTO v_depth FROM (SELECT id FROM chatstate_pendinglockentry
            WHERE namespace = p_ns AND key = p_key ORDER BY id) e;  -- (version 17)
        IF v_depth >= p_max THEN
            IF p_overflow = 'drop_newest' THEN result := 'dropped'; RETURN; END IF;
            dropped := chatstate_take_entries(p_ns, p_key, v_depth - p_max + 1, NULL);
        END IF;
    END IF;
    INSERT INTO chatstate_pendinglockentry (namespace, key, owner, strategy, metadata, enqueued_at)
        VALUES (p_ns, p_key, p_owner, 'concurrent', p_meta, statement_timestamp());
    result := 'queued';
END $$;

-- lock() with a capped 'concurrent' strategy: one of p_cap slots of p_key for p_owner, with a
-- lease of p_ttl seconds ('acquired'; expired holders dropped to make room); full, or held by
-- a lock: queued as chatstate_enqueue. holders: the key's holders now (NULL: a lock holds it).
CREATE OR REPLACE FUNCTION chatstate_take_slot(
    p_ns text, p_key text, p_owner text, p_meta jsonb, p_ttl float8, p_max integer,
    p_overflow text, p_cap integer, OUT result text, OUT dropped jsonb, OUT holders jsonb)
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_holders jsonb; v_expires timestamptz;
    v_mine jsonb := jsonb_build_object(p_owner, jsonb_build_object(
        'acquired_at', chatstate_iso(statement_timestamp()),
        'expires_at', chatstate_iso(statement_timestamp() + make_interval(secs => p_ttl)),
        'ttl', p_ttl, 'metadata', p_meta));
BEGIN
    dropped := '[]';
    FOR attempt IN 1..20 LOOP
        SELECT l.holders, l.expires_at INTO v_holders, v_expires FROM chatstate_lock l
            WHERE namespace = p_ns AND key = p_key FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO chatstate_lock (namespace, key, owner, strategy, metadata, acquired_at,
                    expires_at, ttl, holders)
                VALUES (p_ns, p_key, '', 'concurrent', '{}', statement_timestamp(),
                        statement_timestamp() + make_interval(secs => p_ttl), NULL, v_mine)
                ON CONFLICT (namespace, key) DO NOTHING;
            IF FOUND THEN result := 'acquired'; holders := v_mine; RETURN; END IF;
            CONTINUE;  -- another call created the row first: decide again against it
        END IF;
        IF v_holders IS NULL AND v_expires > statement_timestamp() THEN
            holders := NULL;  -- a lock holds the key
        ELSE
            holders := CASE WHEN v_holders IS NULL THEN '{}'
                            ELSE chatstate_live_holders(v_holders) END;
            IF (SELECT count(*) FROM jsonb_object_keys(holders)) < p_cap THEN
                holders := holders || v_mine;
                PERFORM chatstate_put_holders(p_ns, p_key, holders);
                result := 'acquired';
                RETURN;
            END IF;
            holders := v_holders;
        END IF;
        SELECT e.result, e.dropped INTO result, dropped
            FROM chatstate_enqueue(p_ns, p_key, p_owner, p_meta, p_max, p_overflow) e;
        RETURN;
    END LOOP;
    RAISE EXCEPTION 'chatstate_take_slot: no decision after 20 attempts on %', p_key;
END $$;

-- Release p_owner's slot of p_key and hand over the pending entries no other live holder was
-- handed (expired ones dropped); with p_only_if_idle and entries handed over, keep the slot,
-- its lease renewed by its ttl. released false (holder: who holds the key) when p_owner has no
-- slot of it.
CREATE OR REPLACE FUNCTION chatstate_release_slot(
    p_ns text, p_key text, p_owner text, p_only_if_idle boolean, p_pending_ttl float8,
    OUT released boolean, OUT holder text, OUT pending jsonb, OUT expired jsonb)
LANGUAGE plpgsql AS $$
DECLARE v_holders jsonb;
BEGIN
    SELECT owner, l.holders INTO holder, v_holders FROM chatstate_lock l
        WHERE namespace = p_ns AND key = p_key FOR UPDATE;
    released := coalesce(v_holders ? p_owner, false);
    IF NOT released THEN
        holder := chatstate_holder_of(holder, v_holders);
        RETURN;
    END IF;
    holder := NULL;
    expired := chatstate_expire_entries(p_ns, p_key, p_pending_ttl);
    pending := chatstate_take_available(p_ns, p_key, p_owner, v_holders, NULL);
    IF p_only_if_idle AND pending <> '[]' THEN
        PERFORM chatstate_put_holders(p_ns, p_key, chatstate_renewed(v_holders, p_owner,
            (v_holders->p_owner->>'ttl')::float8, false));
    ELSE
        PERFORM chatstate_put_holders(p_ns, p_key, v_holders - p_owner);
    END IF;
END $$;


-- Lists (a thread's history is the list 'history:<thread>'): a head row per list (its newest
-- position last_seq, its expiry) and one row per item, numbered 1, 2, ... in append order.
-- An expired list reads as empty; its next append starts it over.

-- Append p_value to the list p_key as its newest item, then keep its newest p_max items (NULL:
-- all); p_ttl seconds renews its expiry (NULL: left as is). It is a commit's list append
-- alone (chatstate_effects).
CREATE OR REPLACE FUNCTION chatstate_append(
    p_ns text, p_key text, p_value jsonb, p_max bigint, p_ttl float8)
RETURNS void LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM chatstate_effects(p_ns, NULL, jsonb_build_object(
        'lists', jsonb_build_array(jsonb_build_array(p_key, p_value, p_max, p_ttl))));
END $$;

-- The newest p_limit items of the list p_key (NULL: all), oldest first, as a JSON array; []
-- when it does not exist or has expired. Its items run from its head's first_seq.
CREATE OR REPLACE FUNCTION chatstate_list_items(p_ns text, p_key text, p_limit bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(i.value ORDER BY i.seq), '[]') FROM (
        SELECT seq, value FROM chatstate_listitem
        WHERE namespace = p_ns AND key = p_key AND seq >= (
            SELECT first_seq FROM chatstate_listhead WHERE namespace = p_ns AND key = p_key
                AND (expires_at IS NULL OR expires_at > statement_timestamp()))
        ORDER BY seq DESC LIMIT p_limit) i);
END $$;

-- Delete the list p_key: how many items it held (0 when none, or expired). Its head first,
-- so that an append in flight finishes before the items are counted and deleted. Rows below
-- its first_seq were trimmed: deleted, not counted.
CREATE OR REPLACE FUNCTION chatstate_delete_list(p_ns text, p_key text)
RETURNS bigint LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_expires timestamptz; v_first bigint; v_count bigint;
BEGIN
    DELETE FROM chatstate_listhead WHERE namespace = p_ns AND key = p_key
        RETURNING expires_at, first_seq INTO v_expires, v_first;
    WITH gone AS (
        DELETE FROM chatstate_listitem WHERE namespace = p_ns AND key = p_key RETURNING seq)
    SELECT count(*) FILTER (WHERE seq >= v_first) INTO v_count FROM gone;
    RETURN CASE WHEN v_expires <= statement_timestamp() THEN 0 ELSE v_count END;
END $$;

-- Channel-map operations, as chatstate/channelops.py (the reference) applies them.

-- incr: p_cur (a number, else 0) + the number p_by (its JSON text). Integers add exactly;
-- with a float on either side the sum is float8 arithmetic, written so that Python reads the
-- same float back (shortest text, a decimal point kept, no exponent).
CREATE OR REPLACE FUNCTION chatstate_incr(p_cur jsonb, p_by text)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE SET extra_float_digits = 1 AS $$
DECLARE v_cur text := CASE WHEN jsonb_typeof(p_cur) = 'number' THEN p_cur::text ELSE '0' END;
    v_sum text;
BEGIN
    IF v_cur !~ '[.eE]' AND p_by !~ '[.eE]' THEN
        RETURN to_jsonb(v_cur::numeric + p_by::numeric);
    END IF;
    v_sum := (v_cur::float8 + p_by::float8)::text;
    IF v_sum ~ '[eE]' THEN v_sum := v_sum::numeric::text; END IF;
    IF v_sum !~ '[.]' THEN v_sum := v_sum || '.0'; END IF;
    RETURN v_sum::jsonb;
END $$;

-- add / discard: the JSON scalars of p_list (not a list: none) with p_item inserted (kept in
-- order: null, false, true, numbers by value, strings by code point; an equal item already
-- there is kept instead) or removed (the others left as they were).
CREATE OR REPLACE FUNCTION chatstate_scalars(p_list jsonb, p_item jsonb, p_add boolean)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (WITH items AS (
            SELECT e, n FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_list) = 'array'
                THEN p_list ELSE '[]' END) WITH ORDINALITY AS x(e, n)
            WHERE jsonb_typeof(e) IN ('null', 'boolean', 'number', 'string')),
        kept AS (
            SELECT e, n FROM items WHERE e <> p_item
            UNION ALL
            SELECT coalesce((SELECT e FROM items WHERE e = p_item ORDER BY n LIMIT 1), p_item), 0
            WHERE p_add)
        SELECT coalesce(CASE WHEN p_add THEN jsonb_agg(e ORDER BY
                CASE jsonb_typeof(e) WHEN 'null' THEN 0 WHEN 'boolean' THEN 1 WHEN 'number' THEN 2
                    ELSE 3 END,
                CASE WHEN jsonb_typeof(e) = 'boolean' THEN e = 'true' END,
                CASE WHEN jsonb_typeof(e) = 'number' THEN (e #>> '{}')::numeric END,
                CASE WHEN jsonb_typeof(e) = 'string' THEN e #>> '{}' END COLLATE "C", n)
            ELSE jsonb_agg(e ORDER BY n) END, '[]') FROM kept);
END $$;

-- The map p_map after the operations p_ops ([[op, key, value's JSON text], ...]), in order.
-- An integer added to an integer (or to nothing) is summed here; chatstate_incr does the rest.
CREATE OR REPLACE FUNCTION chatstate_channel_ops(p_map jsonb, p_ops jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE v_map jsonb := coalesce(p_map, '{}'); v_op jsonb; v_key text; v_cur jsonb; v_by text;
BEGIN
    FOR i IN 0 .. jsonb_array_length(p_ops) - 1 LOOP
        v_op := p_ops->i;
        v_key := v_op->>1;
        CASE v_op->>0
        WHEN 'incr' THEN
            v_cur := v_map->v_key;
            v_by := v_op->>2;
            IF v_by !~ '[.eE]' AND (v_cur IS NULL OR
                    (jsonb_typeof(v_cur) = 'number' AND v_cur::text !~ '[.eE]')) THEN
                v_map := v_map || jsonb_build_object(v_key,
                    coalesce(v_cur::text, '0')::numeric + v_by::numeric);
            ELSE
                v_map := v_map || jsonb_build_object(v_key, chatstate_incr(v_cur, v_by));
            END IF;
        WHEN 'set' THEN
            v_map := v_map || jsonb_build_object(v_key, (v_op->>2)::jsonb);
        WHEN 'delete' THEN
            v_map := v_map - v_key;
        WHEN 'add' THEN
            v_map := v_map || jsonb_build_object(v_key,
                chatstate_scalars(v_map->v_key, (v_op->>2)::jsonb, true));
        WHEN 'discard' THEN
            IF v_map->v_key IS NOT NULL THEN
                v_map := v_map || jsonb_build_object(v_key,
                    chatstate_scalars(v_map->v_key, (v_op->>2)::jsonb, false));
            END IF;
        ELSE
            RAISE EXCEPTION 'chatstate_channel_ops: unknown operation %', v_op->>0;
        END CASE;
    END LOOP;
    RETURN v_map;
END $$;

-- What a cycle's commit (or drain step) writes besides its thread's state and claim, given
-- as {"channel": id, "ops": [...], "subscribe": true|false|null, "lists": [[key, value,
-- max_length, ttl], ...], "sends": [[key, thread, payload], ...], "taken": [entry id, ...]}
-- (a part left out or empty: nothing of that kind): the queued entries gather handed to the
-- cycle, removed; the channel's operations on its row, locked (cycles of one channel queue
-- on it: none loses another's); the thread's subscription (a subscribe touches it); the list
-- appends; the outbox entries, in order (a key already there: skipped).
--
-- A list append locks the list's head first (created when new), so appends to one list
-- queue behind each other; lists are locked in key order, each list's appends in order. A
-- live list's head is advanced in one UPDATE, first_seq with it (an upsert's conflict check
-- costs more than the probe a new list pays); an expired list starts over. The rows below
-- first_seq go every chatstate_list_batch() appends (and all of them at a restart). A single
-- integer increment is summed in the channel's UPDATE. Both are written here, not called:
-- each statement of a call costs its own executor start-up.
CREATE OR REPLACE FUNCTION chatstate_effects(p_ns text, p_thread text, p_effects jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_ops jsonb := p_effects->'ops'; v_lists jsonb := p_effects->'lists';
    v_channel text; v_op jsonb; v_key text; v_by text; v_append jsonb; v_max bigint;
    v_seq bigint; v_first bigint; v_now timestamptz := statement_timestamp();
    v_expires timestamptz;
BEGIN
    IF p_effects->'taken' <> '[]' THEN
        DELETE FROM chatstate_pendinglockentry WHERE namespace = p_ns AND key = p_thread
            AND id = ANY (ARRAY(SELECT jsonb_array_elements_text(p_effects->'taken')::bigint));
    END IF;
    IF v_ops <> '[]' THEN
        v_channel := p_effects->>'channel';
        v_op := v_ops->0;
        IF v_ops->1 IS NULL AND v_op->>0 = 'incr' AND v_op->>2 !~ '[.eE]' THEN
            v_key := v_op->>1;
            v_by := v_op->>2;
            UPDATE chatstate_channelstate SET value = CASE
                    WHEN value->v_key IS NULL OR (jsonb_typeof(value->v_key) = 'number'
                        AND (value->v_key)::text !~ '[.eE]')
                    THEN value || jsonb_build_object(v_key,
                        coalesce((value->>v_key)::numeric, 0) + v_by::numeric)
                    ELSE chatstate_channel_ops(value, v_ops) END,
                updated_at = v_now
                WHERE namespace = p_ns AND channel_id = v_channel;
        ELSE
            UPDATE chatstate_channelstate
                SET value = chatstate_channel_ops(value, v_ops), updated_at = v_now
                WHERE namespace = p_ns AND channel_id = v_channel;
        END IF;
        IF NOT FOUND THEN
            INSERT INTO chatstate_channelstate AS c (namespace, channel_id, value, updated_at)
                VALUES (p_ns, v_channel, chatstate_channel_ops('{}', v_ops), v_now)
                ON CONFLICT (namespace, channel_id) DO UPDATE
                    SET value = chatstate_channel_ops(c.value, v_ops),
                        updated_at = EXCLUDED.updated_at;
        END IF;
    END IF;
    IF p_effects->'subscribe' = 'true' THEN
        INSERT INTO chatstate_subscription (namespace, thread_id, created_at)
            VALUES (p_ns, p_thread, v_now)
            ON CONFLICT (namespace, thread_id) DO UPDATE SET created_at = EXCLUDED.created_at;
    ELSIF p_effects->'subscribe' = 'false' THEN
        DELETE FROM chatstate_subscription WHERE namespace = p_ns AND thread_id = p_thread;
    END IF;
    IF v_lists->1 IS NOT NULL THEN
        v_lists := (SELECT jsonb_agg(a ORDER BY (a->>0) COLLATE "C", n)
                    FROM jsonb_array_elements(v_lists) WITH ORDINALITY AS x(a, n));
    END IF;
    FOR i IN 0 .. coalesce(jsonb_array_length(v_lists), 0) - 1 LOOP
        v_append := v_lists->i;
        v_key := v_append->>0;
        v_max := (v_append->>2)::bigint;
        v_expires := v_now + make_interval(secs => (v_append->>3)::float8);
        UPDATE chatstate_listhead AS h
            SET last_seq = h.last_seq + 1,
                first_seq = greatest(h.first_seq, h.last_seq + 2 - v_max),
                expires_at = coalesce(v_expires, h.expires_at), updated_at = v_now
            WHERE namespace = p_ns AND key = v_key
                AND (h.expires_at IS NULL OR h.expires_at > v_now)
            RETURNING last_seq, first_seq INTO v_seq, v_first;
        IF v_seq IS NULL THEN
            -- New, expired, or created meanwhile: the conflict locks the head in every case
            -- (no row returned when it has expired).
            INSERT INTO chatstate_listhead AS h
                    (namespace, key, last_seq, first_seq, expires_at, updated_at)
                VALUES (p_ns, v_key, 1, 1, v_expires, v_now)
                ON CONFLICT (namespace, key) DO UPDATE
                    SET last_seq = h.last_seq + 1,
                        first_seq = greatest(h.first_seq, h.last_seq + 2 - v_max),
                        expires_at = coalesce(EXCLUDED.expires_at, h.expires_at),
                        updated_at = EXCLUDED.updated_at
                    WHERE h.expires_at IS NULL OR h.expires_at > EXCLUDED.updated_at
                RETURNING last_seq, first_seq INTO v_seq, v_first;
        END IF;
        IF v_seq IS NULL THEN
            DELETE FROM chatstate_listitem WHERE namespace = p_ns AND key = v_key;
            UPDATE chatstate_listhead
                SET last_seq = last_seq + 1, first_seq = last_seq + 1, expires_at = v_expires,
                    updated_at = v_now
                WHERE namespace = p_ns AND key = v_key
                RETURNING last_seq, first_seq INTO v_seq, v_first;
        END IF;
        INSERT INTO chatstate_listitem (namespace, key, seq, value)
            VALUES (p_ns, v_key, v_seq, v_append->1);
        IF v_seq % chatstate_list_batch() = 0 AND v_first > 1 THEN
            -- The rows trimmed since the last batch, found by seq: a range from the list's
            -- start would walk the rows of every batch before (dead until vacuumed). Older
            -- rows are left only when the list kept more until now (a larger p_max, or none).
            DELETE FROM chatstate_listitem WHERE namespace = p_ns AND key = v_key
                AND seq >= v_first - chatstate_list_batch() AND seq < v_first;
            IF EXISTS (SELECT 1 FROM chatstate_listitem WHERE namespace = p_ns AND key = v_key
                       AND seq = v_first - chatstate_list_batch() - 1) THEN
                DELETE FROM chatstate_listitem
                    WHERE namespace = p_ns AND key = v_key AND seq < v_first;
            END IF;
        END IF;
    END LOOP;
    IF p_effects->'sends' <> '[]' THEN
        INSERT INTO chatstate_outboxmessage
                (namespace, key, thread_id, payload, attempts, dead, created_at, due_at)
            SELECT p_ns, s->>0, s->>1, s->2, 0, false, v_now, v_now
            FROM jsonb_array_elements(p_effects->'sends') WITH ORDINALITY AS x(s, n) ORDER BY n
            ON CONFLICT (namespace, key) DO NOTHING;
    END IF;
END $$;

-- A handle_message cycle's entry: the claim (in progress for p_owner; claim_id, its row, is
-- how the cycle's commit and drain steps find it), the lock, and the reads, in one step. A
-- message queued or debounced behind the lock is done at once; one refused (busy, or dropped by a
-- full queue) has its claim released at once, so that its redelivery is handled. A queue or
-- debounce cycle that takes a lock with entries left queued (its previous holder died or failed)
-- queues its message behind them and holds the lock (held), so that its drain hands them out in
-- arrival order. A cycle that holds its thread reads its state and the newest p_history items of
-- its history list p_history_key. With p_cap ('concurrent' capped at p_cap holders) the cycle takes
-- a slot (chatstate_take_slot); one that takes a slot while entries wait that no other live holder
-- was handed is queued behind them and holds the slot (held), as for a lock.
CREATE OR REPLACE FUNCTION chatstate_enter(
    p_ns text, p_adapter text, p_mid text, p_limit bigint, p_thread text, p_owner text,
    p_strategy text, p_meta jsonb, p_ttl float8, p_min_age float8, p_max integer,
    p_overflow text, p_history_key text DEFAULT NULL, p_history bigint DEFAULT 0,
    p_cap integer DEFAULT NULL)
RETURNS chatstate_enter_row
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE claimed boolean; subscribed boolean; result text; state jsonb; in_progress boolean;
    dropped jsonb; taken_over text; held boolean; history jsonb; claim_id bigint; claim_at tid;
    lock_at tid; state_at tid;
    v_depth integer; v_holders jsonb; v_lock record; v_claim record; v_behind boolean := false;
    v_sync text;
BEGIN
    v_claim := chatstate_claim_step(p_ns, p_adapter, p_mid, p_limit, p_owner, p_thread,
                                    p_ttl, p_min_age);
    claim_id := v_claim.claim_id;
    claim_at := v_claim.claim_at;
    claimed := claim_id IS NOT NULL;
    in_progress := false;
    held := false;
    IF NOT claimed THEN
        -- A duplicate: done, or being handled right now by another delivery.
        in_progress := EXISTS (SELECT 1 FROM chatstate_dedupeentry WHERE namespace = p_ns
            AND adapter = p_adapter AND message_id = p_mid AND owner IS NOT NULL);
    ELSE
        IF p_cap IS NOT NULL THEN
            SELECT l.result, l.dropped, l.holders INTO result, dropped, v_holders
                FROM chatstate_take_slot(p_ns, p_thread, p_owner, p_meta, p_ttl, p_max,
                                         p_overflow, p_cap) l;
        ELSIF p_strategy = 'concurrent' THEN
            result := 'acquired';
        ELSE
            -- (assigned, not selected: a plain call, no query around it)
            v_lock := chatstate_lock_step(p_ns, p_thread, p_owner, p_strategy, p_meta, p_ttl,
                                          p_max, p_overflow);
            result := v_lock.result;
            dropped := v_lock.dropped;
            taken_over := v_lock.taken_over;
            lock_at := v_lock.lock_at;  -- where the lock's row lies, when taken
        END IF;
        held := result = 'acquired';
        IF held AND p_cap IS NOT NULL THEN
            IF EXISTS (SELECT 1 FROM chatstate_pendinglockentry WHERE namespace = p_ns
                    AND key = p_thread AND chatstate_available(v_holders, taken_by, p_owner)) THEN
                -- Behind the entries waiting for a slot, in arrival order.
                SELECT e.result, e.dropped INTO result, dropped FROM chatstate_enqueue(
                    p_ns, p_thread, p_owner, p_meta, p_max, p_overflow) e;
            END IF;
        ELSIF held AND p_strategy IN ('queue', 'debounce') THEN
            -- (a query only here: another strategy's condition is an expression, no query;
            -- ordered by id, as in chatstate_commit)
            PERFORM 1 FROM chatstate_pendinglockentry WHERE namespace = p_ns AND key = p_thread
                ORDER BY id LIMIT 1;
            v_behind := FOUND;
        END IF;
        IF v_behind THEN
            -- Behind the entries a previous holder left, in arrival order.
            result := CASE p_strategy WHEN 'debounce' THEN 'debounced' ELSE 'queued' END;
            IF p_strategy = 'debounce' THEN
                dropped := chatstate_take_entries(p_ns, p_thread, NULL, NULL);
            ELSIF p_max IS NOT NULL THEN
                SELECT count(*) INTO v_depth FROM (SELECT id FROM chatstate_pendinglockentry
                    WHERE namespace = p_ns AND key = p_thread ORDER BY id) e;  -- (version 17)
                IF v_depth >= p_max AND p_overflow = 'drop_newest' THEN
                    result := 'dropped';
                ELSIF v_depth >= p_max THEN
                    dropped := chatstate_take_entries(p_ns, p_thread, v_depth - p_max + 1, NULL);
                END IF;
            END IF;
            IF result <> 'dropped' THEN
                INSERT INTO chatstate_pendinglockentry
                    (namespace, key, owner, strategy, metadata, enqueued_at)
                    VALUES (p_ns, p_thread, p_owner, p_strategy, p_meta, statement_timestamp());
            END IF;
        END IF;
        IF result IN ('busy', 'dropped') THEN
            -- Refused (busy, or a full queue's newest): the claim is released at once (a
            -- redelivery is handled), in place.
            UPDATE chatstate_dedupeentry SET thread_id = NULL, expires_at = statement_timestamp()
                WHERE id = claim_id;
        ELSIF result <> 'acquired' THEN
            -- Queued or debounced: stored behind the lock, the message counts as done.
            UPDATE chatstate_dedupeentry SET owner = NULL, thread_id = NULL, expires_at = NULL
                WHERE id = claim_id;
        END IF;
    END IF;
    -- Read after the lock: a fresh snapshot sees what the previous holder committed.
    IF NOT held THEN
        subscribed := EXISTS (SELECT 1 FROM chatstate_subscription
                              WHERE namespace = p_ns AND thread_id = p_thread);
    ELSE
        IF result = 'acquired' THEN
            -- Nothing here is lost with the crash of the server (see the top of this file).
            -- (assigned: an expression, where PERFORM would run a query)
            v_sync := set_config('synchronous_commit', 'off', true);
        END IF;
        -- (one statement: the subscription, and the state where there is one)
        SELECT EXISTS (SELECT 1 FROM chatstate_subscription
                       WHERE namespace = p_ns AND thread_id = p_thread), t.value, t.ctid
            INTO subscribed, state, state_at
            FROM (SELECT) one LEFT JOIN chatstate_threadstate t
                ON t.namespace = p_ns AND t.thread_id = p_thread;
        state_at := coalesce(state_at, '(0,0)');  -- none: its commit inserts it plainly
        IF p_history > 0 THEN
            history := chatstate_list_items(p_ns, p_history_key, p_history);
        END IF;
    END IF;
    RETURN ROW(claimed, subscribed, result, state, in_progress, dropped, taken_over, held,
               history, claim_id, claim_at, lock_at, state_at)::chatstate_enter_row;
END $$;

-- The start of a cycle's commit or drain step: lock the claim's row (p_claim_id, as the entry
-- returned it; a commit under a lock marks it done instead, see version 14 at the top), then
-- check the lease (the lock's; with p_slot, that p_owner still has its slot; under uncapped
-- 'concurrent', the claim's) and, with p_claim, that the claim is still in progress and
-- p_owner's; then write the state, mark the claim done and write the effects (p_effects, NULL when
-- none: see chatstate_effects). ok false, and nothing written: holder has the lock, or holder is
-- p_owner when the lock is its own but the claim is not (NULL: the slot is gone). With p_release (a
-- commit's, under a lock), the lock is checked by deleting it: released with the rest.
CREATE OR REPLACE FUNCTION chatstate_settle(
    p_ns text, p_thread text, p_owner text, p_state jsonb, p_claim_id bigint,
    p_locked boolean, p_claim boolean, p_effects jsonb, p_slot boolean,
    p_release boolean DEFAULT false, p_claim_at tid DEFAULT NULL, p_lock_at tid DEFAULT NULL,
    p_state_at tid DEFAULT NULL)
RETURNS chatstate_settle_row
LANGUAGE plpgsql AS $$
DECLARE ok boolean; holder text;
    v_id bigint; v_owner text; v_holders jsonb; v_marked boolean := false;
    v_thread text; v_expires timestamptz; v_inserted boolean; v_constraint text;
BEGIN
    IF p_locked AND p_release AND NOT p_slot AND p_claim THEN
        -- A commit under a lock (the common case): the claim marked done if it is still
        -- p_owner's, then the lock checked by deleting it; when the lock is gone, the claim
        -- put back as it was (old: the row as this statement found it, by its address). Each
        -- row is looked for where the entry left it first (p_claim_at, p_lock_at: no index
        -- read), then, when it has moved since (a renewal rewrites it), by its key.
        UPDATE chatstate_dedupeentry e SET owner = NULL, thread_id = NULL, expires_at = NULL
            FROM (SELECT ctid, thread_id, expires_at FROM chatstate_dedupeentry
                  WHERE ctid = p_claim_at AND id = p_claim_id) old
            WHERE e.ctid = old.ctid AND e.owner = p_owner
            RETURNING old.thread_id, old.expires_at INTO v_thread, v_expires;
        v_marked := FOUND;
        IF NOT v_marked THEN
            UPDATE chatstate_dedupeentry e SET owner = NULL, thread_id = NULL, expires_at = NULL
                FROM (SELECT ctid, thread_id, expires_at FROM chatstate_dedupeentry
                      WHERE id = p_claim_id) old
                WHERE e.ctid = old.ctid AND e.owner = p_owner
                RETURNING old.thread_id, old.expires_at INTO v_thread, v_expires;
            v_marked := FOUND;
        END IF;
        ok := false;
        IF v_marked THEN
            DELETE FROM chatstate_lock WHERE ctid = p_lock_at
                AND namespace = p_ns AND key = p_thread AND owner = p_owner;
            ok := FOUND;
            IF NOT ok THEN
                DELETE FROM chatstate_lock
                    WHERE namespace = p_ns AND key = p_thread AND owner = p_owner;
                ok := FOUND;
            END IF;
        END IF;
        IF NOT ok THEN
            IF v_marked THEN
                UPDATE chatstate_dedupeentry
                    SET owner = p_owner, thread_id = v_thread, expires_at = v_expires
                    WHERE id = p_claim_id;
            END IF;
            -- (p_owner: the lock is its own, the claim is not)
            SELECT owner INTO holder FROM chatstate_lock
                WHERE namespace = p_ns AND key = p_thread;
            RETURN ROW(ok, holder)::chatstate_settle_row;
        END IF;
    ELSE
        SELECT id, owner INTO v_id, v_owner FROM chatstate_dedupeentry
            WHERE id = p_claim_id FOR UPDATE;  -- by id alone: no other index can serve it
        IF p_locked AND p_release AND NOT p_slot THEN
            -- (one statement instead of locking the row, then deleting it: a row lock writes
            -- WAL)
            DELETE FROM chatstate_lock
                WHERE namespace = p_ns AND key = p_thread AND owner = p_owner;
            ok := FOUND;
            IF NOT ok THEN
                SELECT owner INTO holder FROM chatstate_lock
                    WHERE namespace = p_ns AND key = p_thread;
            END IF;
        ELSIF p_locked THEN
            SELECT owner INTO holder FROM chatstate_lock
                WHERE namespace = p_ns AND key = p_thread FOR UPDATE;
            ok := holder IS NOT DISTINCT FROM p_owner;
        ELSIF p_slot THEN
            SELECT l.holders INTO v_holders FROM chatstate_lock l
                WHERE namespace = p_ns AND key = p_thread FOR UPDATE;
            ok := coalesce(v_holders ? p_owner, false);
        ELSE
            ok := true;
        END IF;
        IF ok AND (p_claim OR NOT (p_locked OR p_slot)) AND v_owner IS DISTINCT FROM p_owner
        THEN
            ok := false;
            holder := p_owner;
        END IF;
        IF NOT ok THEN RETURN ROW(ok, holder)::chatstate_settle_row; END IF;
    END IF;
    holder := NULL;
    IF p_state IS NOT NULL THEN
        -- Where the entry read it (p_state_at), unless it moved since: no index read, and no
        -- row lock record (an upsert that finds its row locks it, then updates it). Where
        -- the entry found none ('(0,0)'), inserted plainly, unless one was written since.
        v_inserted := false;
        IF p_state_at = '(0,0)' THEN
            BEGIN
                INSERT INTO chatstate_threadstate (namespace, thread_id, value, updated_at)
                    VALUES (p_ns, p_thread, p_state, statement_timestamp());
                v_inserted := true;
            EXCEPTION WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                IF v_constraint IS DISTINCT FROM 'chatstate_threadstate_unique' THEN
                    RAISE;
                END IF;
            END;
        ELSE
            UPDATE chatstate_threadstate SET value = p_state, updated_at = statement_timestamp()
                WHERE ctid = p_state_at AND namespace = p_ns AND thread_id = p_thread;
            v_inserted := FOUND;
        END IF;
        IF NOT v_inserted THEN
            INSERT INTO chatstate_threadstate AS t (namespace, thread_id, value, updated_at)
                VALUES (p_ns, p_thread, p_state, statement_timestamp())
                ON CONFLICT (namespace, thread_id)
                DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;
        END IF;
    END IF;
    IF p_claim AND NOT v_marked THEN
        UPDATE chatstate_dedupeentry SET owner = NULL, thread_id = NULL, expires_at = NULL
            WHERE id = v_id;
    END IF;
    IF p_effects IS NOT NULL THEN
        PERFORM chatstate_effects(p_ns, p_thread, p_effects);
    END IF;
    RETURN ROW(ok, holder)::chatstate_settle_row;
END $$;

-- A cycle's commit: write the state, mark the claim done, write the effects and release the
-- lock (p_slot: the slot, as chatstate_release_slot), in one step, handing over the pending
-- entries; or, when the lease went to another holder (released false, holder: who has it),
-- nothing. p_claim_at, p_lock_at and p_state_at: where the entry left the claim's and the
-- lock's rows, and where it read the thread's state.
CREATE OR REPLACE FUNCTION chatstate_commit(
    p_ns text, p_thread text, p_owner text, p_state jsonb, p_claim_id bigint,
    p_locked boolean, p_claim boolean, p_pending_ttl float8, p_effects jsonb DEFAULT NULL,
    p_slot boolean DEFAULT false, p_claim_at tid DEFAULT NULL, p_lock_at tid DEFAULT NULL,
    p_state_at tid DEFAULT NULL)
RETURNS chatstate_commit_row
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE released boolean; holder text; pending jsonb; expired jsonb;
    v_settled record;
BEGIN
    v_settled := chatstate_settle(p_ns, p_thread, p_owner, p_state, p_claim_id, p_locked,
                                  p_claim, p_effects, p_slot, true, p_claim_at, p_lock_at,
                                  p_state_at);
    released := v_settled.ok;
    holder := v_settled.holder;
    IF released AND p_slot THEN
        SELECT r.pending, r.expired INTO pending, expired
            FROM chatstate_release_slot(p_ns, p_thread, p_owner, false, p_pending_ttl) r;
        RETURN ROW(released, holder, pending, expired)::chatstate_commit_row;
    END IF;
    IF NOT released OR NOT p_locked THEN
        pending := '[]';
        expired := '[]';
        RETURN ROW(released, holder, pending, expired)::chatstate_commit_row;
    END IF;
    -- (the lock row is gone: chatstate_settle deleted it) Nothing pending, the common case:
    -- one index probe, no delete to start. (Ordered by id: without statistics, an EXISTS
    -- takes the (namespace, owner) index and reads the namespace's entries.)
    PERFORM 1 FROM chatstate_pendinglockentry WHERE namespace = p_ns AND key = p_thread
        ORDER BY id LIMIT 1;
    IF NOT FOUND THEN
        pending := '[]';
        expired := '[]';
        RETURN ROW(released, holder, pending, expired)::chatstate_commit_row;
    END IF;
    expired := chatstate_expire_entries(p_ns, p_thread, p_pending_ttl);
    pending := chatstate_take_entries(p_ns, p_thread, NULL, NULL);
    RETURN ROW(released, holder, pending, expired)::chatstate_commit_row;
END $$;

-- One step of a drain: write the state (and, with p_claim, mark the claim done) and the
-- effects, remove the entry just finished, drop expired ones, then hand out the oldest left
-- (it stays queued; the lease renewed by p_ttl) or, when none is left, release the lock. With
-- p_slot, under p_owner's slot: the oldest left that no other live holder was handed, marked
-- as handed to p_owner; none: the slot is freed.
CREATE OR REPLACE FUNCTION chatstate_drain(
    p_ns text, p_thread text, p_owner text, p_state jsonb, p_claim_id bigint,
    p_claim boolean, p_finished bigint, p_ttl float8, p_pending_ttl float8,
    p_effects jsonb DEFAULT NULL, p_slot boolean DEFAULT false,
    OUT released boolean, OUT holder text, OUT entry jsonb, OUT expired jsonb)
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_holders jsonb; v_id bigint;
BEGIN
    SELECT s.ok, s.holder INTO released, holder FROM chatstate_settle(
        p_ns, p_thread, p_owner, p_state, p_claim_id, NOT p_slot, p_claim, p_effects, p_slot) s;
    IF NOT released THEN RETURN; END IF;
    IF p_finished IS NOT NULL THEN
        DELETE FROM chatstate_pendinglockentry
            WHERE id = p_finished AND namespace = p_ns AND key = p_thread;
    END IF;
    expired := chatstate_expire_entries(p_ns, p_thread, p_pending_ttl);
    IF p_slot THEN
        SELECT l.holders INTO v_holders FROM chatstate_lock l
            WHERE namespace = p_ns AND key = p_thread;
        SELECT id, jsonb_build_array(id, owner, strategy, metadata, chatstate_iso(enqueued_at))
            INTO v_id, entry FROM chatstate_pendinglockentry
            WHERE namespace = p_ns AND key = p_thread
                AND chatstate_available(v_holders, taken_by, p_owner)
            ORDER BY id LIMIT 1;
        IF entry IS NULL THEN
            PERFORM chatstate_put_holders(p_ns, p_thread, v_holders - p_owner);
        ELSE
            UPDATE chatstate_pendinglockentry SET taken_by = p_owner WHERE id = v_id;
            PERFORM chatstate_put_holders(p_ns, p_thread,
                                          chatstate_renewed(v_holders, p_owner, p_ttl, false));
        END IF;
        RETURN;
    END IF;
    SELECT jsonb_build_array(id, owner, strategy, metadata,
        to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        INTO entry FROM chatstate_pendinglockentry
        WHERE namespace = p_ns AND key = p_thread ORDER BY id LIMIT 1;
    IF entry IS NULL THEN
        DELETE FROM chatstate_lock WHERE namespace = p_ns AND key = p_thread;
    ELSE
        UPDATE chatstate_lock
            SET expires_at = statement_timestamp() + make_interval(secs => p_ttl)
            WHERE namespace = p_ns AND key = p_thread;
    END IF;
END $$;

-- One look of msg.gather(): the entries queued behind p_owner's lock (oldest first; nothing
-- removed), expired ones dropped, its lease renewed by p_ttl; ok false, nothing changed, when
-- the lock is not p_owner's (holder: whose it is).
CREATE OR REPLACE FUNCTION chatstate_gather(
    p_ns text, p_thread text, p_owner text, p_ttl float8, p_pending_ttl float8,
    OUT ok boolean, OUT holder text, OUT entries jsonb, OUT expired jsonb)
LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_holders jsonb;
BEGIN
    SELECT owner, l.holders INTO holder, v_holders FROM chatstate_lock l
        WHERE namespace = p_ns AND key = p_thread FOR UPDATE;
    ok := holder IS NOT DISTINCT FROM p_owner;
    IF NOT ok THEN
        holder := chatstate_holder_of(holder, v_holders);
        RETURN;
    END IF;
    holder := NULL;
    expired := chatstate_expire_entries(p_ns, p_thread, p_pending_ttl);
    UPDATE chatstate_lock SET expires_at = statement_timestamp() + make_interval(secs => p_ttl)
        WHERE namespace = p_ns AND key = p_thread;
    SELECT coalesce(jsonb_agg(jsonb_build_array(id, owner, strategy, metadata,
            chatstate_iso(enqueued_at)) ORDER BY id), '[]')
        INTO entries FROM chatstate_pendinglockentry WHERE namespace = p_ns AND key = p_thread;
END $$;

-- Renew a cycle's lease by p_ttl: its lock's; with p_slot, its slot's (if it still has it,
-- unexpired) and its claim's; under uncapped 'concurrent', its claim's.
CREATE OR REPLACE FUNCTION chatstate_renew(
    p_ns text, p_thread text, p_owner text, p_adapter text, p_mid text, p_locked boolean,
    p_ttl float8, p_slot boolean DEFAULT false)
RETURNS boolean LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_holders jsonb;
BEGIN
    IF p_slot THEN
        -- The claim's row first (the lock order), then the slot's.
        UPDATE chatstate_dedupeentry
            SET expires_at = statement_timestamp() + make_interval(secs => p_ttl)
            WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid
                AND owner = p_owner;
        SELECT l.holders INTO v_holders FROM chatstate_lock l
            WHERE namespace = p_ns AND key = p_thread FOR UPDATE;
        IF coalesce((v_holders->p_owner->>'expires_at')::timestamptz > statement_timestamp(),
                    false) THEN
            PERFORM chatstate_put_holders(p_ns, p_thread,
                                          chatstate_renewed(v_holders, p_owner, p_ttl, true));
            RETURN true;
        END IF;
        RETURN false;
    ELSIF p_locked THEN
        UPDATE chatstate_lock
            SET expires_at = statement_timestamp() + make_interval(secs => p_ttl), ttl = p_ttl
            WHERE namespace = p_ns AND key = p_thread AND owner = p_owner
                AND expires_at > statement_timestamp();
    ELSE
        UPDATE chatstate_dedupeentry
            SET expires_at = statement_timestamp() + make_interval(secs => p_ttl)
            WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid
                AND owner = p_owner;
    END IF;
    RETURN FOUND;
END $$;

-- A cycle's abort: withdraw the claim if it is still in progress and p_owner's (a commit that
-- ran marked it done: it stays) -- true when withdrawn -- and release the lock if p_owner
-- holds it (p_slot: free its slot and the marks of the entries it was handed), keeping the
-- pending entries for the next holder.
CREATE OR REPLACE FUNCTION chatstate_abort(
    p_ns text, p_adapter text, p_mid text, p_thread text, p_owner text, p_locked boolean,
    p_slot boolean DEFAULT false)
RETURNS boolean LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_withdrawn boolean; v_holders jsonb; v_seq bigint;
BEGIN
    PERFORM 1 FROM chatstate_dedupewindow WHERE namespace = p_ns FOR UPDATE;
    DELETE FROM chatstate_dedupeentry
        WHERE namespace = p_ns AND adapter = p_adapter AND message_id = p_mid
            AND owner = p_owner
        RETURNING seq INTO v_seq;
    v_withdrawn := FOUND;
    IF v_withdrawn THEN
        -- (its position is empty now: see the top of this file)
        UPDATE chatstate_dedupewindow SET head = head - 1, gap = greatest(gap, v_seq)
            WHERE namespace = p_ns;
    END IF;
    IF p_locked THEN
        DELETE FROM chatstate_lock WHERE namespace = p_ns AND key = p_thread AND owner = p_owner;
    ELSIF p_slot THEN
        SELECT l.holders INTO v_holders FROM chatstate_lock l
            WHERE namespace = p_ns AND key = p_thread FOR UPDATE;
        IF v_holders ? p_owner THEN
            PERFORM chatstate_put_holders(p_ns, p_thread, v_holders - p_owner);
        END IF;
        UPDATE chatstate_pendinglockentry SET taken_by = NULL
            WHERE namespace = p_ns AND key = p_thread AND taken_by = p_owner;
    END IF;
    RETURN v_withdrawn;
END $$;

-- The outbox: entries written by commits (chatstate_effects), in commit order (id). One
-- thread's entries leave in that order: an entry is claimable only when every earlier entry
-- of its thread is delivered (deleted) or dead, and no entry of its thread is leased to a
-- live dispatcher. Entries travel as JSON arrays [id, key, thread, payload, attempts, dead,
-- created_at, due_at].

-- Lease up to p_limit due entries to p_owner for p_lease seconds; oldest first. Per thread, a
-- run from its oldest entry not dead, each due; a thread with an entry leased to a live
-- dispatcher is skipped. Concurrent claims never take the same entry nor one thread's entries
-- at once, and never wait for each other: the chosen entries are locked skipping those another
-- claim holds, then judged again on a fresh snapshot -- a thread is taken only from its oldest
-- live entry on, every one of them locked here.
--
-- Every statement reads one table, with no join and no correlated subquery, so that no plan
-- costs more than one pass over the namespace's entries: the planner cannot turn a claim into
-- an entry-by-entry rescan of the outbox (as it did, without statistics on a fresh table, with
-- per-entry NOT EXISTS checks). The leased threads come from the partial index of leased
-- entries (chatstate_outbox_leased); the entries are walked in commit order a chunk at a time,
-- stopping once p_limit are chosen.
CREATE OR REPLACE FUNCTION chatstate_outbox_claim(
    p_ns text, p_owner text, p_limit bigint, p_lease float8)
RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_now timestamptz := statement_timestamp(); v_leased text[]; v_walled text[] := '{}';
    v_chunk bigint := greatest(2 * p_limit, 100); v_after bigint := 0; v_ids bigint[] := '{}';
    v_rows bigint[]; v_threads text[]; v_due boolean[]; v_tids text[]; v_firsts bigint[];
    v_max bigint; v_taken jsonb;
BEGIN
    SELECT coalesce(array_agg(DISTINCT thread_id), '{}') INTO v_leased
        FROM chatstate_outboxmessage
        WHERE namespace = p_ns AND lease_until IS NOT NULL AND lease_until > v_now;
    <<chunks>>
    LOOP
        SELECT array_agg(c.id ORDER BY c.id), array_agg(c.thread_id ORDER BY c.id),
                array_agg(c.due_at <= v_now ORDER BY c.id)
            INTO v_rows, v_threads, v_due FROM (
                SELECT id, thread_id, due_at FROM chatstate_outboxmessage
                WHERE namespace = p_ns AND id > v_after AND NOT dead
                    AND thread_id <> ALL (v_leased)
                ORDER BY id LIMIT v_chunk) c;
        EXIT WHEN v_rows IS NULL;
        FOR i IN 1 .. cardinality(v_rows) LOOP
            IF v_threads[i] = ANY (v_walled) THEN
                CONTINUE;  -- behind an entry not due: the rest of its thread waits
            ELSIF v_due[i] THEN
                v_ids := v_ids || v_rows[i];
                EXIT chunks WHEN cardinality(v_ids) >= p_limit;
            ELSE
                v_walled := v_walled || v_threads[i];
            END IF;
        END LOOP;
        EXIT WHEN cardinality(v_rows) < v_chunk;
        v_after := v_rows[cardinality(v_rows)];
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
        RETURN '[]';
    END IF;
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.thread_id ORDER BY l.id),
            array_agg(DISTINCT l.thread_id), max(l.id)
        INTO v_ids, v_tids, v_threads, v_max FROM (
            SELECT id, thread_id FROM chatstate_outboxmessage
            WHERE id = ANY (v_ids) AND namespace = p_ns AND NOT dead AND due_at <= v_now
                AND (lease_until IS NULL OR lease_until <= v_now)
            ORDER BY id FOR UPDATE SKIP LOCKED) l;  -- (judged on each row's newest version)
    IF v_ids IS NULL THEN
        RETURN '[]';
    END IF;
    -- Judged again on a fresh snapshot: leased meanwhile, or behind a live entry not locked here.
    SELECT coalesce(array_agg(DISTINCT thread_id), '{}') INTO v_leased
        FROM chatstate_outboxmessage
        WHERE namespace = p_ns AND lease_until IS NOT NULL AND lease_until > v_now
            AND thread_id = ANY (v_threads);
    SELECT array_agg(w.thread_id), array_agg(w.first) INTO v_threads, v_firsts FROM (
        SELECT thread_id, min(id) AS first FROM chatstate_outboxmessage
        WHERE namespace = p_ns AND thread_id = ANY (v_threads) AND id < v_max AND NOT dead
            AND id <> ALL (v_ids)
        GROUP BY thread_id) w;
    SELECT array_agg(r.id) INTO v_ids FROM unnest(v_ids, v_tids) AS r(id, thread_id)
        WHERE r.thread_id <> ALL (v_leased) AND NOT EXISTS (
            SELECT 1 FROM unnest(v_threads, v_firsts) AS w(thread_id, first)
            WHERE w.thread_id = r.thread_id AND w.first < r.id);
    IF v_ids IS NULL THEN
        RETURN '[]';
    END IF;
    WITH taken AS (
        UPDATE chatstate_outboxmessage SET lease_owner = p_owner,
                lease_until = v_now + make_interval(secs => p_lease)
            WHERE id = ANY (v_ids)
            RETURNING id, key, thread_id, payload, attempts, dead, created_at, due_at)
    SELECT coalesce(jsonb_agg(jsonb_build_array(id, key, thread_id, payload, attempts, dead,
            chatstate_iso(created_at), chatstate_iso(due_at)) ORDER BY id), '[]')
        INTO v_taken FROM taken;
    RETURN v_taken;
END $$;
