-- Back to version 9 (0020's frozen copy follows): version 10's function that version 9 does
-- not have.
DROP FUNCTION IF EXISTS chatstate_list_batch();
