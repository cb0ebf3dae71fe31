-- Back to version 1: drop version 2's functions, then reinstall version 1's.
DROP FUNCTION IF EXISTS chatstate_abort(text, text, text, text, text, boolean);
DROP FUNCTION IF EXISTS chatstate_renew(text, text, text, text, text, boolean, float8);
DROP FUNCTION IF EXISTS chatstate_drain(text, text, text, jsonb, text, text, bigint, float8, float8);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb, text, text, boolean, float8);
DROP FUNCTION IF EXISTS chatstate_settle(text, text, text, jsonb, text, text, boolean);
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8, float8, integer, text);
DROP FUNCTION IF EXISTS chatstate_take_pending(text, text, text, integer, float8);
DROP FUNCTION IF EXISTS chatstate_release(text, text, text, boolean, float8);
DROP FUNCTION IF EXISTS chatstate_lock(text, text, text, text, jsonb, float8, integer, text);
DROP FUNCTION IF EXISTS chatstate_expire_entries(text, text, float8);
DROP FUNCTION IF EXISTS chatstate_take_entries(text, text, integer, float8);
DROP FUNCTION IF EXISTS chatstate_claim(text, text, text, bigint, text, text, float8, float8);
DROP FUNCTION IF EXISTS chatstate_claim_holds(text, text, text, timestamptz);
DROP FUNCTION IF EXISTS chatstate_functions_version();

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
        to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) ORDER BY id), '[]')
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
