-- Back to version 14 (0026's frozen copy follows): version 15's chatstate_drop_oldest goes.
DROP FUNCTION IF EXISTS chatstate_drop_oldest(text, bigint, bigint, bigint);
