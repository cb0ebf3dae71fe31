-- KEYS: locks. ARGV: key, owner, ttl_ms. Returns 1 when renewed (ttl_ms becomes its lease);
-- a slot holder's slot is renewed (``lua/slots.lua``).
local rec = call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local held = decode(rec)
local now = now_ms()
if held[9] then
    -- @slots
    return slot_functions().extend(KEYS[1], ARGV[1], held, ARGV[2], tonumber(ARGV[3]), now)
end
if held[1] ~= ARGV[2] or tonumber(held[5]) <= now then return 0 end
held[5] = now + tonumber(ARGV[3])
held[7] = false
held[8] = tonumber(ARGV[3])
call('HSET', KEYS[1], ARGV[1], encode(held))
return 1
