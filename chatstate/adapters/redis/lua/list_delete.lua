-- KEYS: lkeys, the list, lexp. ARGV: list key. Deletes the list; returns how many items it
-- held.
local n = call('LLEN', KEYS[2])
call('DEL', KEYS[2])
call('ZREM', KEYS[1], ARGV[1])
call('HDEL', KEYS[3], ARGV[1])
return n
