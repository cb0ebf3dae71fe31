
DROP FUNCTION IF EXISTS chatstate_abort(text, text, text, text, text, boolean);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb);
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8);
DROP FUNCTION IF EXISTS chatstate_release(text, text, text, boolean);
DROP FUNCTION IF EXISTS chatstate_lock(text, text, text, text, jsonb, float8, integer, text);
DROP FUNCTION IF EXISTS chatstate_withdraw(text, text, text);
DROP FUNCTION IF EXISTS chatstate_claim(text, text, text, bigint);
