-- Back to version 11 (0022's frozen copy follows): version 12's chatstate_settle goes.
DROP FUNCTION IF EXISTS chatstate_settle(text, text, text, jsonb, bigint, boolean, boolean, jsonb,
                                         boolean, boolean);
