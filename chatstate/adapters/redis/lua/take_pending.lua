-- KEYS: locks, q, qkeys. ARGV: key, owner, limit|'', pending_ttl_ms|''.
-- Returns {1, '', entries, expired}, or {0, holder} when ``owner`` does not hold the lock (or
-- a slot of it: then the entries no other live holder was handed, ``lua/slots.lua``).
local rec = call('HGET', KEYS[1], ARGV[1])
local held = rec and decode(rec)
if held and held[9] then
    -- @slots
    return slot_functions().take_pending(KEYS[2], KEYS[3], ARGV[1], held, ARGV[2],
                                         tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms())
end
local holder = held and held[1] or ''
if holder ~= ARGV[2] then return {0, holder} end
local expired = expire(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[4]), now_ms())
return {1, '', take_entries(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[3])), expired}
