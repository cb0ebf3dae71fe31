-- Back to version 13 (0025's frozen copy follows): version 14's chatstate_drop_oldest goes.
DROP FUNCTION IF EXISTS chatstate_drop_oldest(text, bigint, bigint, bigint);
