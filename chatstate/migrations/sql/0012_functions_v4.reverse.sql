-- Back to version 3 (0010's frozen copy follows): version 4's functions whose signatures or
-- results version 3 does not have.
DROP FUNCTION IF EXISTS chatstate_enter(text, text, text, bigint, text, text, text, jsonb, float8, float8, integer, text, text, bigint);
DROP FUNCTION IF EXISTS chatstate_commit(text, text, text, jsonb, text, text, boolean, boolean, float8, jsonb);
DROP FUNCTION IF EXISTS chatstate_drain(text, text, text, jsonb, text, text, boolean, bigint, float8, float8, jsonb);
DROP FUNCTION IF EXISTS chatstate_settle(text, text, text, jsonb, text, text, boolean, boolean, jsonb);
DROP FUNCTION IF EXISTS chatstate_trim(text, bigint, bigint, bigint, float8, timestamptz);
DROP FUNCTION IF EXISTS chatstate_claim_holds(text, text, text, timestamptz);
DROP FUNCTION IF EXISTS chatstate_claim_live(text, text, text, timestamptz);
DROP FUNCTION IF EXISTS chatstate_effects(text, text, jsonb);
DROP FUNCTION IF EXISTS chatstate_channel_ops(jsonb, jsonb);
DROP FUNCTION IF EXISTS chatstate_scalars(jsonb, jsonb, boolean);
DROP FUNCTION IF EXISTS chatstate_incr(jsonb, text);
DROP FUNCTION IF EXISTS chatstate_delete_list(text, text);
DROP FUNCTION IF EXISTS chatstate_list_items(text, text, bigint);
DROP FUNCTION IF EXISTS chatstate_append(text, text, jsonb, bigint, float8);
DROP FUNCTION IF EXISTS chatstate_outbox_claim(text, text, bigint, float8);
