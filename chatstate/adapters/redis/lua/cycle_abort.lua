-- KEYS: dd, ddc, ddt, locks[, q with a slot]. ARGV: member, thread, owner, holds ('1': the
-- lock, 's': a slot, '0': nothing). Withdraws the claim only if it is in progress and
-- ``owner``'s (returns 1 then); releases the lock only if ``owner`` holds it (its pending list
-- stays for the next holder); frees ``owner``'s slot and unmarks the entries it was handed
-- (they stay queued).
local withdrawn = 0
local rec = call('HGET', KEYS[2], ARGV[1])
if rec and decode(rec)[1] == ARGV[3] then
    call('ZREM', KEYS[1], ARGV[1])
    call('HDEL', KEYS[2], ARGV[1])
    call('HDEL', KEYS[3], ARGV[1])
    withdrawn = 1
end
if ARGV[4] == '1' then
    local lock = call('HGET', KEYS[4], ARGV[2])
    local held = lock and decode(lock)
    if held and held[1] == ARGV[3] and not held[9] then call('HDEL', KEYS[4], ARGV[2]) end
elseif ARGV[4] == 's' then
    local lock = call('HGET', KEYS[4], ARGV[2])
    local held = lock and decode(lock)
    -- @slots
    local slots = slot_functions()
    local slot = slots.index(held, ARGV[3])
    if slot then slots.free(KEYS[4], KEYS[5], ARGV[2], held, slot, ARGV[3], true) end
end
return withdrawn
