-- KEYS: locks, q, qkeys, ts, dd, ddc, tt, then (with effects) those of ``effects.lua``.
-- ARGV: thread, owner, state_json ('' leaves the state as is), member, holds ('1': the lock,
-- 's': a slot, '0': nothing -- 'concurrent', where the claim is the lease), pending_ttl_ms|'',
-- claim ('1': mark the cycle's claim done; it must be in progress and the owner's), then
-- (with effects) those of ``effects.lua``.
-- Returns what ``release`` returns (1 when it hands over nothing); {0, holder}: the lease
-- went to another holder, or {0, owner}: the claim is no longer the owner's -- nothing
-- written; {2, message}: an effect cannot be written -- nothing written. The entries
-- gathered (``taken``) are removed before the release hands over the rest; a slot hands over
-- those no other live holder was handed.
local now, now_text = clock()
local locked = ARGV[5] == '1'
local settle = ARGV[7] == '1' or ARGV[5] == '0'
local held, slots, slot = false, false, false
local mine = false  -- the lock's record, read once: the release does not read it again
local head = owner_head(ARGV[2])
if locked then
    mine = call('HGET', KEYS[1], ARGV[1])
    if not owns(mine, head) then
        held = mine and decode(mine)
        local holder = held and held[1] or ''
        if holder ~= ARGV[2] or held[9] then return {0, holder} end
    end
elseif ARGV[5] == 's' then
    -- @slots
    slots = slot_functions()
    local lock = call('HGET', KEYS[1], ARGV[1])
    held = lock and decode(lock)
    slot = slots.index(held, ARGV[2])
    if not slot then return {0, held and slots.first_live(held, now) or ''} end
end
if settle then
    local rec = call('HGET', KEYS[6], ARGV[4])
    if not rec or not (starts(rec, head) or decode(rec)[1] == ARGV[2]) then
        return {0, ARGV[2]}
    end
end
local plan = false
if prepare_effects then
    local err
    plan, err = prepare_effects(8, 8, ARGV[1])
    if not plan then return {2, err} end
end
if settle then call('HDEL', KEYS[6], ARGV[4]) end
if plan then remove_taken(plan, KEYS[2], KEYS[3], ARGV[1]) end
local released = {1, '', {}, {}}
if locked then
    released = release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], false, tonumber(ARGV[6]), now,
                       mine)
elseif slot then
    local expired = expire(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[6]), now)
    local entries = slots.hand_over(KEYS[2], KEYS[3], ARGV[1], ARGV[2], slots.live(held, now),
                                    nil, now)
    slots.free(KEYS[1], KEYS[2], ARGV[1], held, slot, ARGV[2], false)
    released = {1, '', entries, expired}
end
if ARGV[3] ~= '' then
    call('HSET', KEYS[4], ARGV[1], ARGV[3])
    touch(KEYS[7], ARGV[1], now_text)
end
if plan then write_effects(plan, now, now_text) end
if #released[3] == 0 and #released[4] == 0 then return 1 end  -- nothing handed over: short
return released
