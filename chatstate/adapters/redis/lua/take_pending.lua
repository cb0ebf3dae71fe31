-- KEYS: locks, q, qkeys. ARGV: key, owner, limit|'', pending_ttl_ms|''.
-- Returns {1, '', entries, expired}, or {0, holder} when ``owner`` does not hold the lock.
local rec = redis.call('HGET', KEYS[1], ARGV[1])
local holder = rec and cjson.decode(rec)[1] or ''
if holder ~= ARGV[2] then return {0, holder} end
local expired = expire(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[4]), now_ms())
return {1, '', take_entries(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[3])), expired}
