-- KEYS: locks, q, qkeys, ts, dd, ddc, tt.
-- ARGV: thread, owner, state_json ('' leaves the state as is), member, locked ('1'|'0'),
-- pending_ttl_ms|''.
-- Returns what ``release`` returns ({0, holder}: the lease went to another holder, nothing
-- written). Under 'concurrent' the claim is the lease.
local now = now_ms()
local rec = redis.call('HGET', KEYS[6], ARGV[4])
local claim_owner = rec and cjson.decode(rec)[1] or ''
local released = {1, '', {}, {}}
if ARGV[5] == '1' then
    released = release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], false, tonumber(ARGV[6]), now)
    if released[1] == 0 then return released end
elseif claim_owner ~= ARGV[2] and redis.call('ZSCORE', KEYS[5], ARGV[4]) then
    return {0, claim_owner}
end
if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
    touch(KEYS[7], ARGV[1], now)
end
if claim_owner == ARGV[2] then redis.call('HDEL', KEYS[6], ARGV[4]) end
return released
