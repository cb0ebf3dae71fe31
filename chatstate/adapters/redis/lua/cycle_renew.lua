-- KEYS: locks, ddc. ARGV: thread, owner, member, holds ('1': the lock, 's': a slot, '0':
-- nothing), ttl_ms.
-- Renew a cycle's lease: its lock's, its slot's, or under 'concurrent' its claim's. Returns 1
-- when renewed.
local now = now_ms()
if ARGV[4] == '1' then
    local rec = call('HGET', KEYS[1], ARGV[1])
    if not rec then return 0 end
    local held = decode(rec)
    if held[1] ~= ARGV[2] or held[9] or tonumber(held[5]) <= now then return 0 end
    held[5] = now + tonumber(ARGV[5])
    held[7] = false
    call('HSET', KEYS[1], ARGV[1], encode(held))
    return 1
end
if ARGV[4] == 's' then
    local rec = call('HGET', KEYS[1], ARGV[1])
    if not rec then return 0 end
    -- @slots
    return slot_functions().extend(KEYS[1], ARGV[1], decode(rec), ARGV[2],
                                   tonumber(ARGV[5]), now)
end
local rec = call('HGET', KEYS[2], ARGV[3])
if not rec then return 0 end
local claim = decode(rec)
if claim[1] ~= ARGV[2] then return 0 end
claim[3] = now + tonumber(ARGV[5])
claim[4] = false
call('HSET', KEYS[2], ARGV[3], encode(claim))
return 1
