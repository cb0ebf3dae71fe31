-- KEYS: dd, ddc, ddt, locks. ARGV: member, thread, owner, locked ('1'|'0'). Withdraws the
-- claim only if it is in progress and ``owner``'s (returns 1 then); releases the lock only if
-- ``owner`` holds it (its pending list stays for the next holder).
local withdrawn = 0
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if rec and cjson.decode(rec)[1] == ARGV[3] then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    withdrawn = 1
end
if ARGV[4] == '1' then
    local lock = redis.call('HGET', KEYS[4], ARGV[2])
    if lock and cjson.decode(lock)[1] == ARGV[3] then redis.call('HDEL', KEYS[4], ARGV[2]) end
end
return withdrawn
