-- A step that sends nothing: no outbox library.
local ob_enqueue = false
