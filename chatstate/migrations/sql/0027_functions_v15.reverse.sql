-- Back to version 14 (0026's frozen copy follows): version 15's five changed signatures go.
DROP FUNCTION IF EXISTS chatstate_claim(text, text, text, bigint, text, text, float8, float8);
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8,
    float8, integer, text, text, bigint, integer);
DROP FUNCTION IF EXISTS chatstate_settle(text, text, text, jsonb, bigint, boolean, boolean, jsonb,
    boolean, boolean, tid, tid, tid);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb, bigint, boolean, boolean, float8,
    jsonb, boolean, tid, tid, tid);
DROP FUNCTION IF EXISTS chatstate_lock(text, text, text, text, jsonb, float8, integer, text);
