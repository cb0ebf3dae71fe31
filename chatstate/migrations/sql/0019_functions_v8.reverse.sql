-- Back to version 7 (0018's frozen copy follows): version 8's functions whose signatures or
-- results version 7 does not have.
DROP FUNCTION IF EXISTS chatstate_claim(text, text, text, bigint, text, text, float8, float8);
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8, float8, integer, text, text, bigint, integer);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb, bigint, boolean, boolean, float8, jsonb, boolean);
DROP FUNCTION IF EXISTS chatstate_drain(text, text, text, jsonb, bigint, boolean, bigint, float8, float8, jsonb, boolean);
DROP FUNCTION IF EXISTS chatstate_settle(text, text, text, jsonb, bigint, boolean, boolean, jsonb, boolean);
