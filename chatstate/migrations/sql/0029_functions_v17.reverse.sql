-- Back to version 16 (0028's frozen copy follows): version 17's five functions and their row
-- types go, and the two step functions it adds.
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
