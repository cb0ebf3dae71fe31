-- KEYS: locks, q, qkeys. ARGV: thread, owner, ttl_ms, pending_ttl_ms|''.
-- A look of ``msg.gather()``: when ``owner`` holds the thread's lock, drop the expired
-- entries, renew the lease by ttl_ms and return {1, '', every entry queued (oldest first;
-- none removed: the commit removes those it was given), expired}; else {0, holder}.
local now = now_ms()
local rec = call('HGET', KEYS[1], ARGV[1])
local held = rec and decode(rec)
if not held or held[1] ~= ARGV[2] or held[9] then return {0, held and held[1] or ''} end
local expired = expire(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[4]), now)
held[5] = now + tonumber(ARGV[3])
held[7] = false
call('HSET', KEYS[1], ARGV[1], encode(held))
return {1, '', call('LRANGE', KEYS[2], 0, -1), expired}
