-- KEYS: lkeys, the list, lexp. ARGV: list key. Deletes the list; returns how many items it
-- held.
local n = redis.call('LLEN', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return n
