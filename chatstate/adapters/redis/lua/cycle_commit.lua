-- KEYS: locks, q, qkeys, ts, dd, ddc, tt, then (with effects) those of ``effects.lua``.
-- ARGV: thread, owner, state_json ('' leaves the state as is), member, locked ('1'|'0'),
-- pending_ttl_ms|'', claim ('1': mark the cycle's claim done; it must be in progress and
-- the owner's), then (with effects) those of ``effects.lua``.
-- Returns what ``release`` returns; {0, holder}: the lease went to another holder, or
-- {0, owner}: the claim is no longer the owner's -- nothing written; {2, message}: an effect
-- cannot be written -- nothing written. Under 'concurrent' the claim is the lease.
local now = now_ms()
local locked, claim = ARGV[5] == '1', ARGV[7] == '1'
local settle = claim or not locked
if locked then
    local lock = redis.call('HGET', KEYS[1], ARGV[1])
    local holder = lock and cjson.decode(lock)[1] or ''
    if holder ~= ARGV[2] then return {0, holder} end
end
if settle then
    local rec = redis.call('HGET', KEYS[6], ARGV[4])
    if not rec or cjson.decode(rec)[1] ~= ARGV[2] then return {0, ARGV[2]} end
end
local plan = false
if prepare_effects then
    local err
    plan, err = prepare_effects(8, 8, ARGV[1])
    if not plan then return {2, err} end
end
if settle then redis.call('HDEL', KEYS[6], ARGV[4]) end
local released = {1, '', {}, {}}
if locked then
    released = release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], false, tonumber(ARGV[6]), now)
end
if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
    touch(KEYS[7], ARGV[1], now)
end
if plan then write_effects(plan, now) end
return released
